//! A terminal's keystrokes as a ZeroMQ PUB on one TCP connection to the kernel runner's stdin
//! SUB, spoken directly (ZMTP 3.0, NULL mechanism) instead of through the `zeromq` crate's
//! `PubSocket`. That socket queues up to 100,000 messages per peer in memory when the kernel
//! stops reading; here each message is written to the TCP connection before the next is taken,
//! so a kernel that stops reading stops the keyboard side of the relay, and through it the
//! client's WebSocket (TCP back-pressure), with at most one message in hand.
//!
//! The handshake and framing are the small part of ZMTP 3.0 a PUB needs: the 64-byte greeting,
//! a READY command with `Socket-Type=PUB`, then one-frame messages. Whatever the SUB sends
//! afterwards (its subscriptions) is read and discarded, so its side never blocks.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// The greeting's length in ZMTP 3.x.
const GREETING_BYTES: usize = 64;
/// The largest command a SUB's READY may be (it carries a few short properties).
const MAX_COMMAND_BYTES: u64 = 4096;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;

#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("did not finish the ZMTP handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the ZMTP handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    #[error("the peer is not a ZMTP 3 socket: {0}")]
    NotZmtp3(&'static str),
    #[error("cannot write to the kernel's terminal: {0}")]
    Write(#[source] std::io::Error),
}

/// Our greeting: ZMTP 3.0, mechanism NULL, as-server false.
pub fn greeting() -> [u8; GREETING_BYTES] {
    let mut greeting = [0u8; GREETING_BYTES];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[11] = 0;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting
}

/// Checks the peer's greeting: the signature, version 3 or later and the NULL mechanism.
pub fn check_greeting(peer: &[u8; GREETING_BYTES]) -> Result<(), PublisherError> {
    if peer[0] != 0xff || peer[9] & 0x01 != 0x01 {
        return Err(PublisherError::NotZmtp3("no ZMTP signature"));
    }
    if peer[10] < 3 {
        return Err(PublisherError::NotZmtp3("the peer speaks ZMTP 2 or older"));
    }
    let mechanism = &peer[12..32];
    if !mechanism.starts_with(b"NULL") || mechanism[4..].iter().any(|b| *b != 0) {
        return Err(PublisherError::NotZmtp3(
            "the peer wants a security mechanism",
        ));
    }
    Ok(())
}

/// The frame header of a body of `length` bytes with the given flags.
fn frame_header(flags: u8, length: usize) -> Vec<u8> {
    match u8::try_from(length) {
        Ok(short) => vec![flags, short],
        Err(_) => {
            let mut header = vec![flags | FLAG_LONG];
            header.extend_from_slice(&(length as u64).to_be_bytes());
            header
        }
    }
}

/// Our READY command: `Socket-Type=PUB`.
pub fn ready_command() -> Vec<u8> {
    let mut body = vec![5u8];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&3u32.to_be_bytes());
    body.extend_from_slice(b"PUB");
    let mut command = frame_header(FLAG_COMMAND, body.len());
    command.extend_from_slice(&body);
    command
}

/// A one-frame message.
pub fn message_frame(data: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(0, data.len());
    frame.extend_from_slice(data);
    frame
}

/// Reads one frame; returns its flags and body (bodies over `limit` are refused).
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    limit: u64,
) -> Result<(u8, Vec<u8>), PublisherError> {
    let flags = reader.read_u8().await.map_err(PublisherError::Handshake)?;
    let length = if flags & FLAG_LONG != 0 {
        reader.read_u64().await.map_err(PublisherError::Handshake)?
    } else {
        u64::from(reader.read_u8().await.map_err(PublisherError::Handshake)?)
    };
    if length > limit {
        return Err(PublisherError::NotZmtp3("a handshake command is too large"));
    }
    let mut body = vec![0u8; length as usize];
    reader
        .read_exact(&mut body)
        .await
        .map_err(PublisherError::Handshake)?;
    Ok((flags, body))
}

/// Keystrokes to one kernel's terminal.
pub struct StdinPublisher {
    writer: OwnedWriteHalf,
    drain: tokio::task::JoinHandle<()>,
}

impl Drop for StdinPublisher {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

impl StdinPublisher {
    /// Connects to `addr` (`host:port`) and completes the handshake within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<StdinPublisher, PublisherError> {
        tokio::time::timeout(timeout, Self::handshake(addr))
            .await
            .map_err(|_| PublisherError::HandshakeTimeout(timeout))?
    }

    async fn handshake(addr: &str) -> Result<StdinPublisher, PublisherError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(PublisherError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        writer
            .write_all(&greeting())
            .await
            .map_err(PublisherError::Handshake)?;
        let mut peer = [0u8; GREETING_BYTES];
        reader
            .read_exact(&mut peer)
            .await
            .map_err(PublisherError::Handshake)?;
        check_greeting(&peer)?;
        writer
            .write_all(&ready_command())
            .await
            .map_err(PublisherError::Handshake)?;
        let (flags, body) = read_frame(&mut reader, MAX_COMMAND_BYTES).await?;
        if flags & FLAG_COMMAND == 0 || !body.starts_with(b"\x05READY") {
            return Err(PublisherError::NotZmtp3(
                "the peer's first command is not READY",
            ));
        }
        // Subscriptions and anything else the SUB sends: read so its side never fills.
        let drain = tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        Ok(StdinPublisher { writer, drain })
    }

    /// Writes one message; completes once the kernel's connection took it.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), PublisherError> {
        self.writer
            .write_all(&message_frame(data))
            .await
            .map_err(PublisherError::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_zmtp_3() {
        let greeting = greeting();
        assert_eq!(greeting[0], 0xff);
        assert_eq!(greeting[9], 0x7f);
        assert_eq!(&greeting[10..12], &[3, 0]);
        assert_eq!(&greeting[12..16], b"NULL");
        assert!(check_greeting(&greeting).is_ok());
        let mut curve = greeting;
        curve[12..17].copy_from_slice(b"CURVE");
        assert!(check_greeting(&curve).is_err());
        let mut old = greeting;
        old[10] = 2;
        assert!(check_greeting(&old).is_err());

        assert_eq!(
            ready_command(),
            b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB".to_vec()
        );
        assert_eq!(message_frame(b"ls\n"), b"\x00\x03ls\n".to_vec());
        let long = message_frame(&[7u8; 300]);
        assert_eq!(&long[..9], &[0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c]);
        assert_eq!(long.len(), 9 + 300);
    }

    /// The `zeromq` crate's SUB, bound as the kernel runner binds its stdin socket, receives
    /// what the publisher sends.
    #[tokio::test]
    async fn a_zeromq_sub_receives_the_keystrokes() {
        use zeromq::{Socket, SocketRecv};
        let mut sub = zeromq::SubSocket::new();
        let endpoint = sub.bind("tcp://127.0.0.1:0").await.unwrap();
        sub.subscribe("").await.unwrap();
        let addr = endpoint.to_string().trim_start_matches("tcp://").to_owned();
        let mut publisher = StdinPublisher::connect(&addr, Duration::from_secs(10))
            .await
            .unwrap();
        // A SUB learns of the subscription's delivery only after the handshake; keep sending
        // until one message arrives, as a user keeps typing.
        let received = loop {
            publisher.send(b"whoami\n").await.unwrap();
            if let Ok(message) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await
            {
                break message.unwrap();
            }
        };
        assert_eq!(
            received.get(0).map(|b| b.to_vec()),
            Some(b"whoami\n".to_vec())
        );
    }

    /// A kernel that completes the handshake and then never reads: the publisher stops after
    /// the socket buffers fill, instead of queueing in memory.
    #[tokio::test]
    async fn a_kernel_that_stops_reading_stops_the_publisher() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let kernel = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut peer = [0u8; GREETING_BYTES];
            stream.read_exact(&mut peer).await.unwrap();
            stream.write_all(&greeting()).await.unwrap();
            let mut ready = b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB".to_vec();
            ready[1] = (ready.len() - 2) as u8;
            stream.write_all(&ready).await.unwrap();
            // Hold the connection open without reading.
            std::future::pending::<()>().await;
            drop(stream);
        });
        let mut publisher = StdinPublisher::connect(&addr, Duration::from_secs(10))
            .await
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut written: u64 = 0;
        let limit: u64 = 256 * 1024 * 1024;
        while written < limit {
            match tokio::time::timeout(Duration::from_secs(2), publisher.send(&chunk)).await {
                Ok(result) => {
                    result.unwrap();
                    written += chunk.len() as u64;
                }
                Err(_) => break,
            }
        }
        assert!(
            written < 64 * 1024 * 1024,
            "{written} bytes went out to a kernel that reads nothing"
        );
        kernel.abort();
    }
}
