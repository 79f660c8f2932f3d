//! The terminal of a session's main kernel, as the original's `stream_pty` reaches it: the
//! kernel runner binds a SUB socket on its stdin port and a PUB socket on its stdout port
//! (`TerminalRunner`: `tcp://*:2002` and `tcp://*:2003`, mapped to the kernel's
//! `stdin_port`/`stdout_port`); the manager connects a PUB to the first (its own ZMTP writer,
//! [`super::stdin_publisher`], so keystrokes are never queued beyond one message) and a SUB
//! (subscribed to everything) to the second. Keystrokes go out as one-frame messages; each
//! one-frame message from the kernel is terminal output.
//!
//! What a client sends (`{"type": "stdin", "chars": <base64>}`, `resize`, `ping`, `restart`)
//! is parsed here without I/O ([`parse_pty_input`]), and output is framed as the 22.09
//! manager sends it ([`out_message`]).

use std::time::Duration;

use base64::Engine;
use serde_json::Value as Json;
use zeromq::{Socket, SubSocket};

use super::stdin_publisher::{PublisherError, StdinPublisher};

/// How long connecting to the kernel's terminal sockets may take (a kernel runner that is up
/// answers the ZMTP handshake in milliseconds; one that is not never will).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("the kernel reports no terminal ports (stdin_port/stdout_port)")]
    NoPorts,
    #[error("cannot connect to the kernel's terminal at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: zeromq::ZmqError,
    },
    #[error("the kernel's terminal at {addr} did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("cannot open the kernel's terminal input at {addr}: {source}")]
    Stdin {
        addr: String,
        #[source]
        source: PublisherError,
    },
    #[error("cannot send to the kernel's terminal: {0}")]
    Send(#[source] PublisherError),
}

/// Why a client message of a pty stream cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PtyInputError {
    #[error("the message is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the message has no type")]
    NoType,
    #[error("stdin has no chars")]
    NoChars,
    #[error("chars is not base64: {0}")]
    NotBase64(#[source] base64::DecodeError),
    #[error("{0} must be a number in 0..65535")]
    BadSize(&'static str),
}

/// One client message of a pty stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyInput {
    /// Keystrokes (decoded) for the kernel's stdin.
    Stdin(Vec<u8>),
    /// `%resize rows cols`, run as a query on the kernel.
    Resize { rows: u16, cols: u16 },
    /// `%ping`, run as a query on the kernel.
    Ping,
    /// Restart the kernel and reconnect to its (new) terminal.
    Restart,
    /// Any other `type`: the original ignores it.
    Other,
}

impl PtyInput {
    /// The query the kernel runner runs for a control message (`None` for the rest).
    pub fn query_code(&self) -> Option<String> {
        match self {
            PtyInput::Resize { rows, cols } => Some(format!("%resize {rows} {cols}")),
            PtyInput::Ping => Some("%ping".to_owned()),
            _ => None,
        }
    }
}

/// Parses a text message of the client. A message that is not JSON, has no `type`, or carries
/// bad `chars`/`rows`/`cols` is an error (the original ends the stream on it). Sizes must be
/// integers: they become a command line the kernel runner parses.
pub fn parse_pty_input(text: &str) -> Result<PtyInput, PtyInputError> {
    let message: Json = serde_json::from_str(text).map_err(PtyInputError::NotJson)?;
    let kind = message
        .get("type")
        .and_then(Json::as_str)
        .ok_or(PtyInputError::NoType)?;
    let size = |key: &'static str| {
        message
            .get(key)
            .and_then(Json::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(PtyInputError::BadSize(key))
    };
    Ok(match kind {
        "stdin" => {
            let chars = message
                .get("chars")
                .and_then(Json::as_str)
                .ok_or(PtyInputError::NoChars)?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(chars)
                .map_err(PtyInputError::NotBase64)?;
            PtyInput::Stdin(data)
        }
        "resize" => PtyInput::Resize {
            rows: size("rows")?,
            cols: size("cols")?,
        },
        "ping" => PtyInput::Ping,
        "restart" => PtyInput::Restart,
        _ => PtyInput::Other,
    })
}

/// Terminal output as the 22.09 manager sends it: a text message
/// `{"type": "out", "data": <base64>}`.
pub fn out_message(data: &[u8]) -> String {
    serde_json::json!({
        "type": "out",
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    })
    .to_string()
}

/// The ports of a kernel's terminal, when it reports both (0 is the column's "unknown").
pub fn terminal_ports(
    stdin_port: Option<i32>,
    stdout_port: Option<i32>,
) -> Result<(u16, u16), PtyError> {
    let port = |port: Option<i32>| port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
    match (port(stdin_port), port(stdout_port)) {
        (Some(stdin), Some(stdout)) => Ok((stdin, stdout)),
        _ => Err(PtyError::NoPorts),
    }
}

/// The manager's two sockets of one terminal.
pub struct PtySockets {
    pub stdin: StdinPublisher,
    pub stdout: SubSocket,
}

impl PtySockets {
    /// Connects a publisher to the kernel's stdin port and a SUB, subscribed to everything, to
    /// its stdout port.
    pub async fn connect(host: &str, stdin_port: u16, stdout_port: u16) -> Result<Self, PtyError> {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let stdin_addr = format!("{host}:{stdin_port}");
        let stdout_addr = format!("tcp://{host}:{stdout_port}");
        let stdin = StdinPublisher::connect(&stdin_addr, CONNECT_TIMEOUT)
            .await
            .map_err(|source| PtyError::Stdin {
                addr: format!("tcp://{stdin_addr}"),
                source,
            })?;
        let mut stdout = SubSocket::new();
        within(&stdout_addr, stdout.connect(&stdout_addr)).await?;
        stdout
            .subscribe("")
            .await
            .map_err(|source| PtyError::Connect {
                addr: stdout_addr,
                source,
            })?;
        Ok(PtySockets { stdin, stdout })
    }
}

async fn within(
    addr: &str,
    connect: impl Future<Output = zeromq::ZmqResult<()>>,
) -> Result<(), PtyError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(PtyError::Connect {
            addr: addr.to_owned(),
            source,
        }),
        Err(_) => Err(PtyError::Timeout {
            addr: addr.to_owned(),
        }),
    }
}

/// Keystrokes as one one-frame message; waits while the kernel's connection is full.
pub async fn send_stdin(publisher: &mut StdinPublisher, data: &[u8]) -> Result<(), PtyError> {
    publisher.send(data).await.map_err(PtyError::Send)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_are_read_as_the_original_reads_them() {
        assert_eq!(
            parse_pty_input(r#"{"type":"stdin","chars":"bHMK"}"#).unwrap(),
            PtyInput::Stdin(b"ls\n".to_vec())
        );
        let resize = parse_pty_input(r#"{"type":"resize","rows":24,"cols":80}"#).unwrap();
        assert_eq!(resize.query_code().as_deref(), Some("%resize 24 80"));
        assert_eq!(
            parse_pty_input(r#"{"type":"ping"}"#)
                .unwrap()
                .query_code()
                .as_deref(),
            Some("%ping")
        );
        assert_eq!(
            parse_pty_input(r#"{"type":"restart"}"#).unwrap(),
            PtyInput::Restart
        );
        assert_eq!(
            parse_pty_input(r#"{"type":"what"}"#).unwrap(),
            PtyInput::Other
        );
        assert!(parse_pty_input("not json").is_err());
        assert!(parse_pty_input(r#"{"type":"stdin","chars":"%%%"}"#).is_err());
        assert!(parse_pty_input(r#"{"type":"resize","rows":"24; rm","cols":80}"#).is_err());
    }

    #[test]
    fn output_is_framed_as_the_22_09_manager_frames_it() {
        let message: Json = serde_json::from_str(&out_message(b"hi\r\n")).unwrap();
        assert_eq!(message["type"], "out");
        assert_eq!(message["data"], "aGkNCg==");
    }

    #[test]
    fn both_terminal_ports_are_needed() {
        assert_eq!(
            terminal_ports(Some(2002), Some(2003)).unwrap(),
            (2002, 2003)
        );
        assert!(terminal_ports(Some(0), Some(2003)).is_err());
        assert!(terminal_ports(None, Some(2003)).is_err());
    }
}
