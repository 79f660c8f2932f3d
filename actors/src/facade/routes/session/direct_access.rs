//! `GET /session/{name}/direct-access-info`: sshd/sftpd ports of SYSTEM sessions; other session types get {} (as the original, which only fills it for private session types).

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::queries::session::Staleness;
use serde_json::json;

use super::interaction_edge::{owner_key, problem, service, session_reference};
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
    let interaction = service(interaction)?;
    let reference = session_reference(&request);
    let owner = owner_key(
        &caller,
        &state,
        params.opt_string(&["owner_access_key"])?.as_deref(),
    )
    .await?;
    // The session must exist for this owner (404 otherwise); nothing more is reported yet.
    interaction
        .resolve(&reference, &owner, Staleness::LiveOnly)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&json!({})))
}
