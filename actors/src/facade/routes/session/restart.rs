//! `PATCH /session/{name}`: restart the session's main kernel (204), as `backend.ai session
//! restart` asks.

use actix_web::{HttpRequest, HttpResponse, web};

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

pub async fn restart(
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
    slog::info!(state.log, "RESTART"; "access_key" => &caller.access_key, "session" => &reference);
    interaction
        .restart(&reference, &owner)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(HttpResponse::NoContent().finish())
}
