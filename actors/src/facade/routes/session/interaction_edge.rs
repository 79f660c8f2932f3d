//! The edge between the session-interaction routes and [`SessionInteraction`]: whose session a
//! request names (the caller's, or `owner_access_key`'s when delegated), and the original's
//! problem for each [`InteractionError`].

use actix_web::{HttpRequest, web};
use serde_json::json;

use crate::agent_rpc::RpcError;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::routes::db_client;
use crate::facade::state::AppState;
use crate::interaction::error::AgentOperation;
use crate::interaction::{InteractionError, SessionInteraction};

/// The session reference in the path.
pub fn session_reference(request: &HttpRequest) -> String {
    request
        .match_info()
        .get("session_name")
        .unwrap_or_default()
        .to_owned()
}

/// The access key whose sessions the request may name: the caller's, or the delegated owner's
/// (checked as the original's `get_access_key_scopes`). Only a delegation needs the database.
pub async fn owner_key(
    caller: &Authenticated,
    state: &AppState,
    owner_access_key: Option<&str>,
) -> Result<String, Problem> {
    match owner_access_key.filter(|owner| *owner != caller.access_key) {
        None => Ok(caller.access_key.clone()),
        Some(owner) => {
            let client = db_client(state).await?;
            Ok(access_key_scope(caller, &client, Some(owner)).await?.owner)
        }
    }
}

/// The worker's interaction service, or 503 when the worker runs without agents.
pub fn service(
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<web::Data<SessionInteraction>, Problem> {
    interaction.ok_or_else(|| {
        Problem::new(ProblemKind::QueryNotImplemented)
            .with_msg("calls on a running session need the agent RPC client, which is not running")
    })
}

/// What every call on a running session starts from: the worker's interaction service, the
/// session reference in the path and whose sessions it may name.
pub struct SessionCall {
    pub interaction: web::Data<SessionInteraction>,
    pub reference: String,
    pub owner: String,
}

/// The [`SessionCall`] of a request (503 without the service, `owner_access_key` checked).
pub async fn session_call(
    caller: &Authenticated,
    request: &HttpRequest,
    params: &ApiParams,
    state: &AppState,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<SessionCall, Problem> {
    let interaction = service(interaction)?;
    let reference = session_reference(request);
    let owner = owner_key(
        caller,
        state,
        params.opt_string(&["owner_access_key"])?.as_deref(),
    )
    .await?;
    Ok(SessionCall {
        interaction,
        reference,
        owner,
    })
}

/// Maps an interaction failure to the original's problem, logging what the operator needs.
pub fn problem(state: &AppState, error: InteractionError) -> Problem {
    match error {
        InteractionError::NotFound { reference } => Problem::not_found("session")
            .with_msg(format!("Session (id={reference}) does not exist.")),
        InteractionError::TooManyMatches { matches, .. } => {
            Problem::new(ProblemKind::TooManySessionsMatched).with_data(json!({
                "matches": matches
                    .iter()
                    .map(|(id, name, status)| json!({"id": id.to_string(), "name": name, "status": status.as_str()}))
                    .collect::<Vec<_>>()
            }))
        }
        error @ InteractionError::InvalidState { .. } => {
            Problem::new(ProblemKind::InvalidSessionState).with_msg(error.to_string())
        }
        InteractionError::AppNotFound(service) => {
            Problem::not_found("app service").with_msg(service)
        }
        InteractionError::ServiceFailed(detail) => {
            slog::warn!(state.log, "the kernel could not start an app"; "error" => &detail);
            Problem::internal("Failed to launch the app service").with_data(json!(detail))
        }
        InteractionError::BadParameter(msg) => Problem::invalid_params(msg),
        InteractionError::TooLarge(msg) => Problem::new(ProblemKind::PayloadTooLarge).with_msg(msg),
        InteractionError::FileNotFound => Problem::invalid_params("The file is not found."),
        InteractionError::Agent { operation, source } => {
            slog::warn!(state.log, "an agent call on a session failed"; "error" => %source);
            let kind = match operation {
                AgentOperation::Execute => ProblemKind::KernelExecutionFailed,
                AgentOperation::Restart => ProblemKind::KernelRestartFailed,
                AgentOperation::Other => ProblemKind::InternalServerError,
            };
            let reachable = !matches!(
                source,
                RpcError::Connect { .. } | RpcError::Handshake { .. } | RpcError::Timeout { .. }
            );
            let problem = Problem::new(kind).with_msg(source.to_string());
            if reachable {
                problem
            } else {
                problem.with_data(json!({"agent_unreachable": true}))
            }
        }
        InteractionError::Database(error) => {
            slog::error!(state.log, "database query failed"; "while" => "calling a session", "error" => %error);
            Problem::internal("database error while reading the session")
        }
    }
}
