//! `GET /stream/session/{name}/execute`: a WebSocket that is one run. The client sends
//! `{"mode": "query"|"batch", "code", "options"}`; the manager calls `execute` until the run
//! finishes, sending each round's `{status, console, exitCode, options, files}`, and reads one
//! text message as input whenever the kernel waits for it. `backend.ai run` uses this.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, MessageStream, Session};
use serde_json::{Value as Json, json};

use super::interaction_edge::{owner_key, problem, service, session_reference};
use super::session_end::StreamStop;
use super::tcp_relay::CLOSE_TIMEOUT;
use crate::facade::auth::Authenticated;
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::Problem;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;
use crate::interaction::execute::{fresh_run_id, stream_message};
use crate::interaction::service::{ExecuteRound, ReadyKernel};
use crate::wire::Value;

/// The original's `[manager] max-wsmsg-size` default (16 MiB).
pub const MAX_WS_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The statuses after which the run goes on with `mode: continue` (the runner has more output
/// or the next batch step); `waiting-input` goes on with `mode: input`.
pub const CONTINUED_STATUSES: [&str; 3] = ["continued", "build-finished", "clean-finished"];
/// How long the agent gathers output before each streamed round (the original's 0.2 s).
pub const STREAM_FLUSH_TIMEOUT: f64 = 0.2;

pub async fn stream_execute(
    caller: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
    version: ApiVersion,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let interaction = service(interaction)?;
    let reference = session_reference(&request);
    let owner_param = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "owner_access_key")
        .map(|(_, value)| value.into_owned());
    let owner = owner_key(&caller, &state, owner_param.as_deref()).await?;
    slog::info!(state.log, "STREAM_EXECUTE"; "access_key" => &caller.access_key,
        "session" => &reference);
    let ready = interaction
        .ready(&reference, &owner, "execute code")
        .await
        .map_err(|e| problem(&state, e))?;
    let (response, session, stream) = actix_ws::handle(&request, payload)
        .map_err(|e| Problem::invalid_params(format!("not a WebSocket request: {e}")))?;
    let stream = stream.max_frame_size(MAX_WS_MESSAGE_BYTES);
    let log = state.log.clone();
    let stopping = state.pipeline.stopping.clone();
    actix_web::rt::spawn(async move {
        let closer = session.clone();
        let outcome = tokio::select! {
            outcome = run(&interaction, &ready, version.major, session, stream) => outcome,
            () = stopping.cancelled() => {
                let stop = StreamStop::ManagerStopping;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, closer.close(Some(stop.close_reason())))
                    .await;
                Err(stop.description())
            }
        };
        if let Err(reason) = outcome {
            slog::debug!(log, "execute stream ended early"; "session" => %ready.kernel.session_id,
                "reason" => reason);
        }
    });
    Ok(response)
}

/// The next text message, skipping pings; `None` when the client closed.
async fn next_text(session: &mut Session, stream: &mut MessageStream) -> Option<String> {
    use futures::StreamExt;
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Ping(bytes)) => {
                if session.pong(&bytes).await.is_err() {
                    return None;
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

async fn send(session: &mut Session, message: &Json) -> Result<(), &'static str> {
    session
        .text(message.to_string())
        .await
        .map_err(|_| "the client closed the stream")
}

async fn run(
    interaction: &SessionInteraction,
    ready: &ReadyKernel,
    api_major: u32,
    mut session: Session,
    mut stream: MessageStream,
) -> Result<(), &'static str> {
    let Some(first) = next_text(&mut session, &mut stream).await else {
        return Err("the client closed before sending the run");
    };
    let params: Json = match serde_json::from_str(&first) {
        Ok(params @ Json::Object(_)) => params,
        _ => {
            let reply = json!({"status": "error", "msg": "Invalid API parameters: the first message must be a JSON object"});
            send(&mut session, &reply).await?;
            let _ = session.close(None).await;
            return Ok(());
        }
    };
    let mut mode = params["mode"].as_str().unwrap_or_default().to_owned();
    if !matches!(mode.as_str(), "query" | "batch") {
        let reply =
            json!({"status": "error", "msg": "Invalid API parameters: mode has an invalid value."});
        send(&mut session, &reply).await?;
        let _ = session.close(None).await;
        return Ok(());
    }
    let mut code = params["code"].as_str().unwrap_or_default().to_owned();
    let mut opts = match &params["options"] {
        options @ Json::Object(_) => options.clone(),
        _ => json!({}),
    };
    // The WebSocket itself is the run.
    let run_id = fresh_run_id();
    loop {
        let round = ExecuteRound {
            api_major,
            run_id: Some(run_id.clone()),
            mode: mode.clone(),
            code: std::mem::take(&mut code),
            opts: std::mem::replace(&mut opts, json!({})),
            flush_timeout: STREAM_FLUSH_TIMEOUT,
        };
        let raw = interaction.execute_round(ready, round).await;
        let raw = match raw {
            Ok(raw) => raw,
            Err(error) => {
                let reply = json!({"status": "error", "msg": format!("BackendError: {error}")});
                send(&mut session, &reply).await?;
                break;
            }
        };
        if raw.is_nil() {
            mode = "continue".into();
            continue;
        }
        if let Err(closed) = send(&mut session, &stream_message(&raw)).await {
            // Nobody reads the output any more: stop the code as the original does.
            let _ = interaction.interrupt_ready(ready).await;
            return Err(closed);
        }
        match raw.get("status").and_then(Value::as_str) {
            Some("waiting-input") => {
                let Some(input) = next_text(&mut session, &mut stream).await else {
                    let _ = interaction.interrupt_ready(ready).await;
                    return Err("the client closed while the kernel waited for input");
                };
                mode = "input".into();
                code = input;
            }
            Some(status) if CONTINUED_STATUSES.contains(&status) => mode = "continue".into(),
            // `finished`, and anything the kernel runner does not continue from (e.g. the
            // dummy agent's `not-implemented`): asking again would loop forever.
            _ => break,
        }
    }
    let _ = session.close(None).await;
    Ok(())
}
