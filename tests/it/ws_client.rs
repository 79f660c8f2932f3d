//! A minimal signed WebSocket client for the stream routes: the HTTP upgrade with the official
//! client's signature headers on a plain TCP connection, then the manager's RFC 6455 frames read
//! by hand (it sends them unfragmented).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api_support::Signer;

/// One frame from the manager.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close code, when the frame has one.
    Close(Option<u16>),
}

/// An open WebSocket.
pub struct WsClient {
    tcp: TcpStream,
    /// The text of the last close frame received.
    pub close_reason: String,
}

impl WsClient {
    /// Opens `path_and_query` on the manager at `port`; `Err` carries the HTTP reply head and
    /// body when the manager refused the upgrade.
    pub async fn connect(
        port: u16,
        signer: &Signer,
        path_and_query: &str,
    ) -> Result<WsClient, String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "GET {path_and_query} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in signer.headers("GET", path_and_query, "text/plain", chrono::Utc::now())
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // Byte by byte up to the end of the reply head, so no frame byte is read here.
        let mut reply = Vec::new();
        while !reply.ends_with(b"\r\n\r\n") {
            let byte = tcp.read_u8().await.map_err(|e| e.to_string())?;
            reply.push(byte);
        }
        let reply = String::from_utf8_lossy(&reply).into_owned();
        if !reply.starts_with("HTTP/1.1 101") {
            let mut body = vec![0u8; 4096];
            let read = tcp.read(&mut body).await.unwrap_or(0);
            return Err(format!("{reply}{}", String::from_utf8_lossy(&body[..read])));
        }
        Ok(WsClient {
            tcp,
            close_reason: String::new(),
        })
    }

    /// The next frame; `None` when the connection ended.
    pub async fn next(&mut self) -> Option<Frame> {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await.ok()?;
        let length = match head[1] & 0x7f {
            126 => u64::from(self.tcp.read_u16().await.ok()?),
            127 => self.tcp.read_u64().await.ok()?,
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(length).ok()?];
        self.tcp.read_exact(&mut payload).await.ok()?;
        Some(match head[0] & 0x0f {
            0x1 => Frame::Text(String::from_utf8_lossy(&payload).into_owned()),
            0x2 => Frame::Binary(payload),
            0x8 => {
                self.close_reason =
                    String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                Frame::Close(
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                )
            }
            0x9 => Frame::Ping(payload),
            0xa => Frame::Pong(payload),
            other => panic!("unexpected WebSocket opcode {other}"),
        })
    }

    /// Sends one text message (masked, as a client must).
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        let payload = text.as_bytes();
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await
    }

    /// Frames up to the close frame; returns the close code (`None`: no close frame came).
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some(frame) = self.next().await {
            if let Frame::Close(code) = frame {
                return code;
            }
        }
        None
    }
}
