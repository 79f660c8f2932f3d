//! `DELETE /session/{name}`: a PENDING session is cancelled here (compare-and-set, so a
//! session the scheduler takes at the same moment is not cancelled behind its back); a session
//! past PENDING is handed to the scheduler, which asks its agents to destroy the kernels.

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::SessionStatus;
use bai_schema::queries::session::cancel_pending_session;
use chrono::Utc;
use serde_json::{Value, json};

use super::{find_session, produce_event};
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::session::control::{
    DestroySession, SessionControl, scheduler_missing, scheduler_unreachable,
};
use crate::facade::state::AppState;
use crate::wire::{Event, KernelEvent, KernelEventKind, SessionEvent, SessionEventKind};

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
) -> Result<HttpResponse, Problem> {
    let reference = request.match_info().get("session_name").unwrap_or_default();
    let forced = params.to_bool(&["forced"], false)?;
    let owner_key = params.opt_string(&["owner_access_key"])?;
    let mut client = db_client(&state).await?;
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

    if session.status == SessionStatus::Pending {
        let transaction = client
            .transaction()
            .await
            .map_err(query_failed(&state, "starting a transaction"))?;
        let cancellation = cancel_pending_session(&transaction, session.id, reason, Utc::now())
            .await
            .map_err(query_failed(&state, "cancelling the session"))?;
        transaction
            .commit()
            .await
            .map_err(query_failed(&state, "committing the cancellation"))?;
        if cancellation.session_cancelled {
            for kernel_id in cancellation.kernel_ids {
                produce_event(
                    &state,
                    Event::Kernel(KernelEvent {
                        kind: KernelEventKind::Cancelled,
                        kernel_id,
                        session_id: session.id,
                        reason: reason.to_owned(),
                        creation_info: Value::Null,
                        exit_code: None,
                    }),
                )
                .await;
            }
            produce_event(
                &state,
                Event::Session(SessionEvent {
                    kind: SessionEventKind::Cancelled,
                    session_id: session.id,
                    creation_id: session.creation_id.clone(),
                    reason: reason.to_owned(),
                    exit_code: None,
                }),
            )
            .await;
            // A kernel never placed on an agent reports as terminated (the original's reply).
            return Ok(reply::json(&json!({"stats": {"status": "terminated"}})));
        }
        // The scheduler took the session meanwhile: destroy it the regular way.
    }

    let Some(control) = control else {
        return Err(scheduler_missing("destroying a session that left PENDING"));
    };
    let outcome = control
        .destroy
        .send(DestroySession {
            session_id: session.id,
            access_key: scope.owner.clone(),
            forced,
            reason: reason.to_owned(),
        })
        .await
        .map_err(scheduler_unreachable)??;
    let mut stats = match outcome.main_last_stat {
        Some(Value::Object(stat)) => stat,
        _ => serde_json::Map::new(),
    };
    stats.insert("status".into(), json!("terminated"));
    Ok(reply::json(&json!({ "stats": stats })))
}
