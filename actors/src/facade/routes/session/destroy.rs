//! `DELETE /session/{name}`: the scheduler cancels a PENDING session (`CancelPendingSession`, a
//! compare-and-set, so a session it takes at the same moment is not cancelled behind its back)
//! and destroys one past PENDING (`DestroySession`: it asks the agents to destroy the kernels).

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::SessionStatus;
use serde_json::{Value, json};

use super::find_session;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::session::control::{
    CancelPendingSession, DestroySession, SessionControl, SessionQueue, queue_problem,
    scheduler_missing, scheduler_unreachable,
};
use crate::facade::state::AppState;

/// `status_info` of a session destroyed by its owner or an admin.
pub const USER_REQUESTED: &str = "user-requested";
/// `status_info` of a forced destruction.
pub const FORCE_TERMINATED: &str = "force-terminated";

pub async fn destroy(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    control: Option<web::Data<SessionControl>>,
    queue: Option<web::Data<SessionQueue>>,
) -> Result<HttpResponse, Problem> {
    let reference = request.match_info().get("session_name").unwrap_or_default();
    let forced = params.to_bool(&["forced"], false)?;
    let owner_key = params.opt_string(&["owner_access_key"])?;
    let client = db_client(&state).await?;
    let scope = access_key_scope(&caller, &client, owner_key.as_deref()).await?;
    if scope.is_delegated() && !caller.has_admin_role() {
        return Err(Problem::new(ProblemKind::InsufficientPrivilege)
            .with_msg("You are not allowed to force-terminate others's sessions"));
    }
    slog::info!(state.log, "DESTROY";
        "access_key" => &scope.requester, "owner" => &scope.owner,
        "session" => reference, "forced" => forced);
    let session = find_session(&client, reference, &scope.owner, false, &state).await?;
    let reason = if forced {
        FORCE_TERMINATED
    } else {
        USER_REQUESTED
    };

    // Neither the cancellation nor the destruction needs this connection.
    drop(client);
    if session.status == SessionStatus::Pending {
        let Some(queue) = queue else {
            return Err(scheduler_missing("cancelling a session"));
        };
        let cancelled = crate::supervision::tracked(
            crate::scheduler::actor::ACTOR_NAME,
            queue.cancel.send(CancelPendingSession {
                pool: state.db.clone(),
                session_id: session.id,
                creation_id: session.creation_id.clone(),
                reason: reason.to_owned(),
            }),
        )
        .await
        .map_err(scheduler_unreachable)?
        .map_err(|error| queue_problem(&state, "cancelling the session", error))?;
        if cancelled {
            // A kernel never placed on an agent reports as terminated (the original's reply).
            return Ok(reply::json(&json!({"stats": {"status": "terminated"}})));
        }
        // The scheduler took the session meanwhile: destroy it the regular way.
    }

    let Some(control) = control else {
        return Err(scheduler_missing("destroying a session that left PENDING"));
    };
    let outcome = crate::supervision::tracked(
        crate::scheduler::actor::ACTOR_NAME,
        control.destroy.send(DestroySession {
            session_id: session.id,
            access_key: scope.owner.clone(),
            forced,
            reason: reason.to_owned(),
        }),
    )
    .await
    .map_err(scheduler_unreachable)??;
    let mut stats = match outcome.main_last_stat {
        Some(Value::Object(stat)) => stat,
        _ => serde_json::Map::new(),
    };
    stats.insert("status".into(), json!("terminated"));
    Ok(reply::json(&json!({ "stats": stats })))
}
