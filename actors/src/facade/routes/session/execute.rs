//! `POST /session/{name}` (execute one round of a run), `POST /session/{name}/complete` and
//! `POST /session/{name}/interrupt`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::interaction_edge::{SessionCall, problem, session_call};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;
use crate::interaction::execute::{ExecuteRequest, fresh_run_id};

/// `POST /session/{name}`: `{"result": {status, runId, exitCode, options, files, console}}`.
pub async fn execute(
    caller: Authenticated,
    request: HttpRequest,
    version: ApiVersion,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    slog::info!(state.log, "EXECUTE"; "access_key" => &caller.access_key, "owner" => &owner,
        "session" => &reference);
    let body = serde_json::Value::Object(params.values().clone());
    let execute = ExecuteRequest::parse(&body, version.major, fresh_run_id)
        .map_err(|e| problem(&state, e))?;
    let result = interaction
        .execute(&reference, &owner, version.major, execute)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&result))
}

/// `POST /session/{name}/complete`: `{"result": <the agent's completions>}`.
pub async fn complete(
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
    slog::info!(state.log, "COMPLETE"; "access_key" => &caller.access_key, "session" => &reference);
    let code = params.opt_string(&["code"])?.unwrap_or_default();
    let opts = params
        .opt_object(&["options"])?
        .map(|options| serde_json::Value::Object(options.clone()))
        .unwrap_or_else(|| json!({}));
    let result = interaction
        .complete(&reference, &owner, &code, &opts)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&result))
}

/// `POST /session/{name}/interrupt`: 204 once the agent has sent the interrupt.
pub async fn interrupt(
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
    slog::info!(state.log, "INTERRUPT"; "access_key" => &caller.access_key, "session" => &reference);
    interaction
        .interrupt(&reference, &owner)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(HttpResponse::NoContent().finish())
}
