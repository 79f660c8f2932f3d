//! `GET /session/{name}/dependency-graph` (`backend.ai session show-graph` of the 23.09 client):
//! the session and, nested under `depends_on`, the sessions it waits for.

use actix_web::{HttpRequest, HttpResponse, web};

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

pub async fn dependency_graph(
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
    let graph = interaction
        .dependency_graph(&reference, &owner)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&graph))
}
