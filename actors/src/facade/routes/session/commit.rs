//! `POST /session/{name}/commit` (start committing the main container to an image file, 201)
//! and `GET /session/{name}/commit` (whether a commit is under way).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

pub async fn commit(
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
    let filename = params.opt_string(&["filename", "fname"])?;
    slog::info!(state.log, "COMMIT_SESSION"; "access_key" => &caller.access_key,
        "session" => &reference);
    let started = interaction
        .commit(&reference, &owner, filename.as_deref())
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json_with_status(StatusCode::CREATED, &started))
}

pub async fn commit_status(
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
    let status = interaction
        .commit_status(&reference, &owner)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&status))
}
