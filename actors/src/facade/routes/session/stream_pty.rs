//! `GET /stream/session/{name}/pty`: the terminal of the session's main kernel over a
//! WebSocket, as the original's `stream_pty` (the Web UI's terminal and `backend.ai` clients
//! use it). The relay is [`super::pty_relay`]; this route checks the caller and the session as
//! the app streams do, accounts the open terminal in Redis
//! ([`crate::interaction::app_connections`], service `pty`) and closes it with 1001 when the
//! session ends.

use actix_web::{HttpRequest, HttpResponse, web};

use super::interaction_edge::{owner_key, problem, service, session_reference};
use super::pty_relay::{MAX_PTY_MESSAGE_BYTES, PtyCall, PtyEnd, pty_relay};
use super::session_end::stream_stop;
use super::tcp_relay::CLOSE_TIMEOUT;
use crate::facade::auth::Authenticated;
use crate::facade::event_feed::{self, FeedData};
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::Problem;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;
use crate::interaction::app_connections::AppConnection;

/// The service name a terminal is accounted under in `active_app_connections`.
pub const PTY_SERVICE: &str = "pty";

pub async fn stream_pty(
    caller: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
    version: ApiVersion,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
    feed: FeedData,
) -> Result<HttpResponse, Problem> {
    let interaction = service(interaction)?;
    let reference = session_reference(&request);
    let owner_param = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "owner_access_key")
        .map(|(_, value)| value.into_owned());
    let owner = owner_key(&caller, &state, owner_param.as_deref()).await?;
    let ready = interaction
        .ready(&reference, &owner, "open a terminal")
        .await
        .map_err(|e| problem(&state, e))?;
    slog::info!(state.log, "STREAM_PTY"; "access_key" => &caller.access_key,
        "session" => &reference);
    // Subscribed before the upgrade, so a termination during the handshake is not missed.
    let events =
        event_feed::subscribe(feed, &state.log, "cannot follow the session's events").await?;
    let (response, session, stream) = actix_ws::handle(&request, payload)
        .map_err(|e| Problem::invalid_params(format!("not a WebSocket request: {e}")))?;
    let stream = stream.max_frame_size(MAX_PTY_MESSAGE_BYTES);
    let redis = state.redis.live.clone();
    let (session_id, kernel_id) = (ready.kernel.session_id, ready.kernel.kernel_id);
    let call = PtyCall {
        interaction: interaction.clone(),
        reference,
        owner,
        ready,
        api_major: version.major,
        log: state.log.clone(),
    };
    let open_streams = state.pipeline.open_streams.clone();
    let stopping = state.pipeline.stopping.clone();
    open_streams.ensure_collector(redis.clone(), state.etcd.clone(), state.log.clone());
    actix_web::rt::spawn(async move {
        let sockets = match call.connect().await {
            Ok(sockets) => sockets,
            Err(error) => {
                slog::warn!(call.log, "cannot reach a kernel's terminal";
                    "session" => %session_id, "error" => %error);
                let end = PtyEnd::KernelFailed(error.to_string());
                let _ =
                    tokio::time::timeout(CLOSE_TIMEOUT, session.close(end.close_reason())).await;
                return;
            }
        };
        let _open_stream = open_streams.open(kernel_id);
        let stream_id = uuid::Uuid::new_v4().simple().to_string();
        let mut tracked = match AppConnection::open(redis, kernel_id, PTY_SERVICE, &stream_id).await
        {
            Ok(tracked) => Some(tracked),
            Err(error) => {
                slog::warn!(call.log, "cannot account a terminal in Redis"; "error" => %error);
                None
            }
        };
        let ended = stream_stop(events, session_id, kernel_id, stopping);
        let end = pty_relay(&call, session, stream, sockets, ended, || {
            if let Some(tracked) = tracked.as_mut() {
                tracked.touch();
            }
        })
        .await;
        if let Some(tracked) = tracked {
            tracked.close().await;
        }
        slog::debug!(call.log, "terminal stream ended"; "session" => %session_id, "end" => ?end);
    });
    Ok(response)
}
