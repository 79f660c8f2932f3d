//! One WebSocket relayed to one TCP connection, both ways, as the original's `TCPProxy`:
//! binary (and text) messages from the client are written to the service, bytes from the
//! service go out as binary messages.
//!
//! Back-pressure holds both ways without a queue of our own: a chunk read from the service is
//! sent before the next read (the WebSocket's outgoing channel has 32 slots and the HTTP
//! writer pulls from it only as the client's socket drains), and a client message is written
//! to the service before the next one is read. A stalled side stops the other side's reads,
//! so the kernel's TCP window and the client's fill up instead of the manager's memory. An
//! idle stream holds no read buffer: one is allocated only when the service has bytes.

use std::future::Future;
use std::io::ErrorKind;

use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::session_end::StreamStop;

/// The most bytes one read from the service takes (one WebSocket message).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How long the close frame may wait for room in the outgoing channel.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed the WebSocket (or went away).
    ClientClosed,
    /// The service closed its connection.
    ServiceClosed,
    /// The service connection failed.
    ServiceFailed(String),
    /// The session ended under the stream, or the worker is stopping.
    Stopped(StreamStop),
}

impl RelayEnd {
    /// The close frame the client gets: 1000 when the service closed normally, 1001 (going
    /// away) when the session ended, 1011 when the service connection broke.
    pub fn close_reason(&self) -> Option<CloseReason> {
        let (code, description) = match self {
            RelayEnd::ClientClosed => return None,
            RelayEnd::Stopped(stop) => return Some(stop.close_reason()),
            RelayEnd::ServiceClosed => (CloseCode::Normal, "the app closed the connection".into()),
            RelayEnd::ServiceFailed(error) => {
                (CloseCode::Error, format!("the app failed: {error}"))
            }
        };
        Some(CloseReason {
            code,
            description: Some(description),
        })
    }
}

/// Relays until one side closes or `ended` completes, then closes the WebSocket with the
/// matching code. `on_traffic` runs for every chunk in either direction.
pub async fn relay(
    session: Session,
    stream: MessageStream,
    service: TcpStream,
    ended: impl Future<Output = StreamStop>,
    on_traffic: impl FnMut(),
) -> RelayEnd {
    let _ = service.set_nodelay(true);
    let (reader, writer) = service.into_split();
    let traffic = std::cell::RefCell::new(on_traffic);
    let touch = || (traffic.borrow_mut())();
    let end = tokio::select! {
        end = downstream(reader, session.clone(), &touch) => end,
        end = upstream(stream, writer, session.clone(), &touch) => end,
        stop = ended => RelayEnd::Stopped(stop),
    };
    // A client that stopped reading leaves the outgoing channel full; the close frame then
    // cannot be queued and the relay gives up on it rather than wait forever.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(end.close_reason())).await;
    end
}

/// Service → client.
async fn downstream(reader: OwnedReadHalf, mut session: Session, touch: &impl Fn()) -> RelayEnd {
    loop {
        if let Err(error) = reader.readable().await {
            return RelayEnd::ServiceFailed(error.to_string());
        }
        let mut chunk = BytesMut::with_capacity(CHUNK_BYTES);
        match reader.try_read_buf(&mut chunk) {
            Ok(0) => return RelayEnd::ServiceClosed,
            Ok(_) => {
                touch();
                if session.binary(chunk.freeze()).await.is_err() {
                    return RelayEnd::ClientClosed;
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => continue,
            Err(error) => return RelayEnd::ServiceFailed(error.to_string()),
        }
    }
}

/// Client → service.
async fn upstream(
    mut stream: MessageStream,
    mut writer: OwnedWriteHalf,
    mut session: Session,
    touch: &impl Fn(),
) -> RelayEnd {
    while let Some(message) = stream.next().await {
        let bytes = match message {
            Ok(Message::Binary(bytes)) => bytes,
            Ok(Message::Text(text)) => text.into_bytes(),
            Ok(Message::Ping(bytes)) => {
                touch();
                if session.pong(&bytes).await.is_err() {
                    return RelayEnd::ClientClosed;
                }
                continue;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        touch();
        if let Err(error) = writer.write_all(&bytes).await {
            return RelayEnd::ServiceFailed(error.to_string());
        }
    }
    let _ = writer.shutdown().await;
    RelayEnd::ClientClosed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_has_its_close_code() {
        assert_eq!(RelayEnd::ClientClosed.close_reason(), None);
        let code = |end: RelayEnd| end.close_reason().map(|reason| reason.code);
        assert_eq!(code(RelayEnd::ServiceClosed), Some(CloseCode::Normal));
        assert_eq!(
            code(RelayEnd::Stopped(StreamStop::SessionEnded)),
            Some(CloseCode::Away)
        );
        assert_eq!(
            code(RelayEnd::Stopped(StreamStop::ManagerStopping)),
            Some(CloseCode::Away)
        );
        assert_eq!(
            code(RelayEnd::ServiceFailed("reset".into())),
            Some(CloseCode::Error)
        );
    }
}
