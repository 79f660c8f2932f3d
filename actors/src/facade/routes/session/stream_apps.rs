//! `GET /stream/session/{name}/apps`: the apps the session's main kernel serves (`name`,
//! `protocol`, container `ports`, `url_template`, ...), as the original's `get_stream_apps`;
//! `backend.ai app -l` and the Web UI's app launcher read it.

use actix_web::{HttpRequest, HttpResponse, web};

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

pub async fn stream_apps(
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
    let apps = interaction
        .apps(&reference, &owner)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&apps))
}
