//! One terminal WebSocket relayed to a kernel's terminal sockets, as the original's
//! `stream_pty`: keystrokes (`stdin`) go to the kernel's stdin PUB, every message of its stdout
//! SUB goes to the client as `{"type": "out", "data": <base64>}`; `resize` and `ping` run
//! `%resize ROWS COLS` and `%ping` as queries on the kernel, and `restart` restarts the kernel
//! and reconnects both sockets (to the ports the kernel row has then).
//!
//! Back-pressure: one kernel message is handed to the WebSocket's 32-message channel before
//! the next is read from the SUB socket, whose TCP connection then fills (the kernel runner's
//! PUB drops beyond its high-water mark, as it does for the original). A client message is
//! handled before the next one is read (keystrokes are written into the kernel's stdin
//! connection first, so a kernel that stops reading stops the client's side too), and one
//! message is at most [`MAX_PTY_MESSAGE_BYTES`]. Control queries run on the keyboard side, so
//! output keeps flowing while the kernel answers them.

use std::cell::RefCell;
use std::future::Future;

use actix_web::web;
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;
use zeromq::{SocketRecv, SubSocket, ZmqError};

use super::session_end::StreamStop;
use super::tcp_relay::CLOSE_TIMEOUT;
use crate::interaction::SessionInteraction;
use crate::interaction::apps::kernel_host;
use crate::interaction::execute::fresh_run_id;
use crate::interaction::pty::{
    PtyInput, PtySockets, out_message, parse_pty_input, send_stdin, terminal_ports,
};
use crate::interaction::service::{ExecuteRound, REST_FLUSH_TIMEOUT, ReadyKernel};
use crate::interaction::stdin_publisher::StdinPublisher;

/// The largest client message taken (keystrokes and pastes; the original takes up to its
/// `max-wsmsg-size`, 16 MiB, which a terminal never needs).
pub const MAX_PTY_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why the kernel's terminal cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum PtyConnectError {
    #[error(transparent)]
    Endpoints(#[from] crate::interaction::InteractionError),
    #[error("the kernel has no host to connect to")]
    NoHost,
    #[error(transparent)]
    Terminal(#[from] crate::interaction::pty::PtyError),
}

/// How a terminal stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyEnd {
    /// The client closed the WebSocket (or went away).
    ClientClosed,
    /// The session (or its main kernel) ended under the stream, or the worker is stopping.
    Stopped(StreamStop),
    /// The client sent a message the stream cannot read.
    BadMessage(String),
    /// The kernel's terminal could not be reached or restarted.
    KernelFailed(String),
}

impl PtyEnd {
    /// The close frame: 1001 (going away) when the session ended, 1007 for an unreadable
    /// message, 1011 when the kernel's terminal failed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        let (code, description) = match self {
            PtyEnd::ClientClosed => return None,
            PtyEnd::Stopped(stop) => return Some(stop.close_reason()),
            PtyEnd::BadMessage(error) => (CloseCode::Invalid, error.clone()),
            PtyEnd::KernelFailed(error) => {
                (CloseCode::Error, format!("the terminal failed: {error}"))
            }
        };
        Some(CloseReason {
            code,
            description: Some(description),
        })
    }
}

/// What a terminal stream calls the kernel with.
pub struct PtyCall {
    pub interaction: web::Data<SessionInteraction>,
    pub reference: String,
    pub owner: String,
    pub ready: ReadyKernel,
    pub api_major: u32,
    pub log: slog::Logger,
}

impl PtyCall {
    /// Connects to the terminal sockets the kernel row names now.
    pub async fn connect(&self) -> Result<PtySockets, PtyConnectError> {
        let endpoints = self.interaction.endpoints(&self.ready).await?;
        let host = kernel_host(
            endpoints.kernel_host.as_deref(),
            self.ready
                .kernel
                .agent_id
                .as_ref()
                .map(|_| self.ready.agent.addr.as_str()),
        )
        .ok_or(PtyConnectError::NoHost)?;
        let (stdin, stdout) = terminal_ports(endpoints.stdin_port, endpoints.stdout_port)?;
        Ok(PtySockets::connect(&host, stdin, stdout).await?)
    }

    /// `%resize`/`%ping` as a query on the kernel; counted as a use of the session, as the
    /// original's `increment_session_usage` before each.
    async fn query(&self, code: String) {
        let round = ExecuteRound {
            api_major: self.api_major,
            run_id: Some(fresh_run_id()),
            mode: "query".to_owned(),
            code,
            opts: json!({}),
            flush_timeout: REST_FLUSH_TIMEOUT,
        };
        let outcome = match self
            .interaction
            .ready(&self.reference, &self.owner, "take terminal commands")
            .await
        {
            Ok(ready) => self
                .interaction
                .execute_round(&ready, round)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            slog::warn!(self.log, "a terminal command failed";
                "session" => %self.ready.kernel.session_id, "error" => %error);
        }
    }
}

/// Relays until the client closes, the kernel's terminal fails or `ended` completes, then
/// closes the WebSocket with the matching code. `on_traffic` runs for every message either way.
pub async fn pty_relay(
    call: &PtyCall,
    session: Session,
    stream: MessageStream,
    sockets: PtySockets,
    ended: impl Future<Output = StreamStop>,
    on_traffic: impl FnMut(),
) -> PtyEnd {
    let traffic = RefCell::new(on_traffic);
    let touch = || (traffic.borrow_mut())();
    let (swaps, swapped) = mpsc::channel(1);
    let end = tokio::select! {
        end = keyboard(call, stream, sockets.stdin, swaps, session.clone(), &touch) => end,
        end = screen(sockets.stdout, swapped, session.clone(), &touch) => end,
        stop = ended => PtyEnd::Stopped(stop),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(end.close_reason())).await;
    end
}

/// Client → kernel.
async fn keyboard(
    call: &PtyCall,
    mut stream: MessageStream,
    mut stdin: StdinPublisher,
    swaps: mpsc::Sender<SubSocket>,
    mut session: Session,
    touch: &impl Fn(),
) -> PtyEnd {
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Ping(bytes)) => {
                if session.pong(&bytes).await.is_err() {
                    return PtyEnd::ClientClosed;
                }
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        touch();
        let input = match parse_pty_input(&text) {
            Ok(input) => input,
            Err(error) => return PtyEnd::BadMessage(error.to_string()),
        };
        match input {
            PtyInput::Stdin(data) => {
                if let Err(error) = send_stdin(&mut stdin, &data).await {
                    return PtyEnd::KernelFailed(error.to_string());
                }
            }
            PtyInput::Resize { .. } | PtyInput::Ping => {
                if let Some(code) = input.query_code() {
                    call.query(code).await;
                }
            }
            PtyInput::Restart => {
                slog::info!(call.log, "restarting a kernel for its terminal";
                    "session" => %call.ready.kernel.session_id);
                if let Err(error) = call.interaction.restart(&call.reference, &call.owner).await {
                    return PtyEnd::KernelFailed(format!("the kernel could not restart: {error}"));
                }
                let fresh = match call.connect().await {
                    Ok(fresh) => fresh,
                    Err(error) => return PtyEnd::KernelFailed(error.to_string()),
                };
                stdin = fresh.stdin;
                if swaps.send(fresh.stdout).await.is_err() {
                    return PtyEnd::ClientClosed;
                }
            }
            PtyInput::Other => {}
        }
    }
    PtyEnd::ClientClosed
}

/// Kernel → client. The SUB socket reconnects by itself when the kernel's side drops.
async fn screen(
    mut stdout: SubSocket,
    mut swapped: mpsc::Receiver<SubSocket>,
    mut session: Session,
    touch: &impl Fn(),
) -> PtyEnd {
    loop {
        tokio::select! {
            biased;
            fresh = swapped.recv() => match fresh {
                Some(fresh) => stdout = fresh,
                None => std::future::pending::<()>().await,
            },
            received = stdout.recv() => match received {
                Ok(message) => {
                    let Some(data) = message.get(0) else { continue };
                    touch();
                    if session.text(out_message(data)).await.is_err() {
                        return PtyEnd::ClientClosed;
                    }
                }
                // No connection to read from: output resumes after a restart swaps sockets.
                Err(ZmqError::NoMessage) => match swapped.recv().await {
                    Some(fresh) => stdout = fresh,
                    None => std::future::pending::<()>().await,
                },
                // A dropped connection: the socket reconnects, the next read waits for it.
                Err(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_has_its_close_code() {
        assert_eq!(PtyEnd::ClientClosed.close_reason(), None);
        let code = |end: PtyEnd| end.close_reason().map(|reason| reason.code);
        assert_eq!(
            code(PtyEnd::Stopped(StreamStop::SessionEnded)),
            Some(CloseCode::Away)
        );
        assert_eq!(
            code(PtyEnd::Stopped(StreamStop::ManagerStopping)),
            Some(CloseCode::Away)
        );
        assert_eq!(
            code(PtyEnd::BadMessage("x".into())),
            Some(CloseCode::Invalid)
        );
        assert_eq!(
            code(PtyEnd::KernelFailed("x".into())),
            Some(CloseCode::Error)
        );
    }
}
