//! `GET /stream/session/{name}/tcpproxy` and `/httpproxy?app=<service>[&port=][&envs=]
//! [&arguments=]`: a WebSocket relayed to the TCP port of one app of the session's main kernel,
//! after the agent's `start_service`, as the original's `stream_proxy` (`backend.ai app` uses
//! tcpproxy; both relay plain TCP). Each open stream is accounted in Redis
//! ([`crate::interaction::app_connections`]) and closes when the session ends.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value as Json};

use super::interaction_edge::{owner_key, problem, service, session_reference};
use super::session_end::stream_stop;
use super::stream_execute::MAX_WS_MESSAGE_BYTES;
use super::tcp_relay::{RelayEnd, relay};
use crate::facade::auth::Authenticated;
use crate::facade::event_feed::{self, FeedData};
use crate::facade::problem::Problem;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;
use crate::interaction::app_connections::AppConnection;
use crate::interaction::apps::{app_destination, kernel_host};

/// The longest `envs`/`arguments` parameter taken (a JSON object of a few settings).
pub const MAX_OPTION_BYTES: usize = 64 * 1024;

/// The query parameters of a proxy stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyParams {
    pub app: String,
    pub port: Option<u16>,
    /// `start_service` options: `arguments` and `envs` when given.
    pub opts: Json,
}

/// Why the app parameters of a stream or `start_service` are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppParamsError {
    #[error("app is missing")]
    MissingApp,
    #[error("port must be a number in 1024..65535, not {0}")]
    BadPort(String),
    #[error("{0} is over {MAX_OPTION_BYTES} bytes")]
    OptionTooLarge(&'static str),
    #[error("{key} is not JSON: {reason}")]
    OptionNotJson { key: &'static str, reason: String },
}

/// Parses the query string as the original's `check_api_params` (`app` or `service`, `port`
/// in 1024..65535, `envs`/`arguments` as JSON text).
pub fn proxy_params(query: &str) -> Result<ProxyParams, AppParamsError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    app_params(|key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
}

/// The app parameters from any source of named text values (a query string or a JSON body).
pub fn app_params(get: impl Fn(&str) -> Option<String>) -> Result<ProxyParams, AppParamsError> {
    let app = get("app")
        .or_else(|| get("service"))
        .filter(|app| !app.is_empty())
        .ok_or(AppParamsError::MissingApp)?;
    let port = match get("port").as_deref() {
        None | Some("") => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port >= 1024 => Some(port),
            _ => return Err(AppParamsError::BadPort(text.to_owned())),
        },
    };
    let mut opts = Map::new();
    for key in ["arguments", "envs"] {
        if let Some(text) = get(key).filter(|text| text != "null") {
            if text.len() > MAX_OPTION_BYTES {
                return Err(AppParamsError::OptionTooLarge(key));
            }
            let value: Json =
                serde_json::from_str(&text).map_err(|e| AppParamsError::OptionNotJson {
                    key,
                    reason: e.to_string(),
                })?;
            opts.insert(key.to_owned(), value);
        }
    }
    Ok(ProxyParams {
        app,
        port,
        opts: Json::Object(opts),
    })
}

pub async fn stream_proxy(
    caller: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
    feed: FeedData,
) -> Result<HttpResponse, Problem> {
    let interaction = service(interaction)?;
    let reference = session_reference(&request);
    let params =
        proxy_params(request.query_string()).map_err(|e| Problem::invalid_params(e.to_string()))?;
    let owner_param = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "owner_access_key")
        .map(|(_, value)| value.into_owned());
    let owner = owner_key(&caller, &state, owner_param.as_deref()).await?;
    let ready = interaction
        .ready(&reference, &owner, "serve apps")
        .await
        .map_err(|e| problem(&state, e))?;
    let endpoints = interaction
        .endpoints(&ready)
        .await
        .map_err(|e| problem(&state, e))?;
    let host = kernel_host(
        endpoints.kernel_host.as_deref(),
        ready
            .kernel
            .agent_id
            .as_ref()
            .map(|_| ready.agent.addr.as_str()),
    )
    .ok_or_else(|| Problem::internal("the kernel has no host to connect to"))?;
    let destination = app_destination(
        endpoints.service_ports.as_ref(),
        &host,
        &params.app,
        params.port,
    )
    .map_err(|e| problem(&state, e))?;
    slog::info!(state.log, "STREAM_WSPROXY"; "access_key" => &caller.access_key,
        "session" => &reference, "app" => &params.app, "protocol" => &destination.protocol,
        "destination" => format!("{}:{}", destination.host, destination.port));
    interaction
        .start_service(&ready, &params.app, &params.opts)
        .await
        .map_err(|e| problem(&state, e))?;
    // Subscribed before the upgrade, so a termination during the handshake is not missed.
    let events =
        event_feed::subscribe(feed, &state.log, "cannot follow the session's events").await?;
    let (response, session, stream) = actix_ws::handle(&request, payload)
        .map_err(|e| Problem::invalid_params(format!("not a WebSocket request: {e}")))?;
    let stream = stream.max_frame_size(MAX_WS_MESSAGE_BYTES);
    let log = state.log.clone();
    let redis = state.redis.live.clone();
    let (session_id, kernel_id) = (ready.kernel.session_id, ready.kernel.kernel_id);
    let open_streams = state.pipeline.open_streams.clone();
    let stopping = state.pipeline.stopping.clone();
    open_streams.ensure_collector(redis.clone(), state.etcd.clone(), state.log.clone());
    actix_web::rt::spawn(async move {
        let address = (destination.host.as_str(), destination.port);
        let service = match tokio::net::TcpStream::connect(address).await {
            Ok(service) => service,
            Err(error) => {
                let end = RelayEnd::ServiceFailed(format!(
                    "cannot connect to {}:{}: {error}",
                    destination.host, destination.port
                ));
                let _ = session.close(end.close_reason()).await;
                return;
            }
        };
        let _open_stream = open_streams.open(kernel_id);
        let stream_id = uuid::Uuid::new_v4().simple().to_string();
        let mut tracked = match AppConnection::open(redis, kernel_id, &params.app, &stream_id).await
        {
            Ok(tracked) => Some(tracked),
            Err(error) => {
                slog::warn!(log, "cannot account an app stream in Redis"; "error" => %error);
                None
            }
        };
        let ended = stream_stop(events, session_id, kernel_id, stopping);
        let end = relay(session, stream, service, ended, || {
            if let Some(tracked) = tracked.as_mut() {
                tracked.touch();
            }
        })
        .await;
        if let Some(tracked) = tracked {
            tracked.close().await;
        }
        slog::debug!(log, "app stream ended"; "session" => %session_id, "end" => ?end);
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_like_the_original() {
        let params = proxy_params("app=jupyter&port=8081&envs=%7B%22A%22%3A%221%22%7D").unwrap();
        assert_eq!(params.app, "jupyter");
        assert_eq!(params.port, Some(8081));
        assert_eq!(params.opts["envs"]["A"], "1");
        assert_eq!(proxy_params("service=ssh").unwrap().app, "ssh");
        assert!(proxy_params("").is_err());
        assert!(proxy_params("app=x&port=80").is_err());
        assert!(proxy_params("app=x&arguments=nope").is_err());
    }
}
