//! `POST /session/{name}/start-service`: the app-proxy flow of the 23.09 Web UI, as the
//! original's `start_service`. The session's scaling group must have an app proxy (wsproxy);
//! the agent starts the app, the app proxy registers the kernel's host port for it
//! (`POST {wsproxy}/v2/conf`) and the reply is `{"token", "wsproxy_addr"}` for the browser.

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::queries::interaction::session_app_proxy;
use serde_json::{Value as Json, json};

use super::interaction_edge::{SessionCall, problem, session_call};
use super::stream_proxy::app_params;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;
use crate::interaction::app_proxy::{AppOwner, AppProxyError, advertised_addr, conf_body};
use crate::interaction::apps::{app_destination, kernel_host};

/// A parameter as text: JSON strings as they are, numbers printed.
fn param_text(params: &ApiParams, key: &str) -> Option<String> {
    match params.raw(&[key]).map(|(_, value)| value) {
        Some(Json::String(text)) => Some(text.clone()),
        Some(Json::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

/// The app proxy's failures as the original reports them: unreachable is a misconfiguration.
pub fn app_proxy_problem(state: &AppState, error: AppProxyError) -> Problem {
    slog::error!(state.log, "the app proxy failed"; "error" => %error);
    Problem::new(ProblemKind::ServerMisconfigured).with_msg(error.to_string())
}

pub async fn start_service(
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
    let app = app_params(|key| param_text(&params, key))
        .map_err(|e| Problem::invalid_params(e.to_string()))?;
    let login_session_token = param_text(&params, "login_session_token");
    let ready = interaction
        .ready(&reference, &owner, "serve apps")
        .await
        .map_err(|e| problem(&state, e))?;
    let client = db_client(&state).await?;
    let session = session_app_proxy(&client, ready.kernel.session_id)
        .await
        .map_err(query_failed(&state, "reading the session's app proxy"))?
        .ok_or_else(|| Problem::not_found("session"))?;
    drop(client);
    let wsproxy_addr = session
        .wsproxy_addr
        .clone()
        .filter(|addr| !addr.is_empty())
        .ok_or_else(|| {
            Problem::new(ProblemKind::ServiceUnavailable)
                .with_msg("No coordinator configured for this resource group")
        })?;
    let proxy =
        crate::interaction::app_proxy::shared_client().map_err(|e| app_proxy_problem(&state, e))?;
    let status = proxy
        .status(&wsproxy_addr)
        .await
        .map_err(|e| app_proxy_problem(&state, e))?;
    let endpoints = interaction
        .endpoints(&ready)
        .await
        .map_err(|e| problem(&state, e))?;
    let host = kernel_host(
        endpoints.kernel_host.as_deref(),
        Some(ready.agent.addr.as_str()),
    )
    .ok_or_else(|| Problem::internal("the kernel has no host to connect to"))?;
    let destination = app_destination(endpoints.service_ports.as_ref(), &host, &app.app, app.port)
        .map_err(|e| problem(&state, e))?;
    slog::info!(state.log, "START_SERVICE"; "access_key" => &caller.access_key,
        "session" => &reference, "app" => &app.app);
    interaction
        .start_service(&ready, &app.app, &app.opts)
        .await
        .map_err(|e| problem(&state, e))?;
    let owner = AppOwner {
        session_id: ready.kernel.session_id,
        user_uuid: session.user_uuid,
        group_id: session.group_id,
        access_key: session.access_key,
        domain_name: session.domain_name,
    };
    let body = conf_body(
        login_session_token.as_deref(),
        &destination.host,
        destination.port,
        &owner,
    );
    let token = proxy
        .register(&wsproxy_addr, &body)
        .await
        .map_err(|e| app_proxy_problem(&state, e))?;
    Ok(reply::json(&json!({
        "token": token,
        "wsproxy_addr": advertised_addr(&status, &wsproxy_addr),
    })))
}
