//! `GET /session/{name}/direct-access-info`: sshd/sftpd ports of SYSTEM sessions; other session types get {} (as the original, which only fills it for private session types).

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::queries::session::Staleness;
use serde_json::json;

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

pub async fn direct_access(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    // The session must exist for this owner (404 otherwise); nothing more is reported yet.
    interaction
        .resolve(&reference, &owner, Staleness::LiveOnly)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&json!({})))
}
