//! A loopback TCP relay in front of PostgreSQL that counts what its clients send, so a benchmark
//! can report the statements and round trips of the code under test as the server saw them
//! (PostgreSQL itself counts transactions, not statements, without `pg_stat_statements`).
//!
//! Frontend messages are framed as a type byte and a 4-byte length (after an untyped start-up
//! packet, possibly preceded by an untyped SSLRequest); the relay forwards every byte unchanged
//! and only tallies the message types. Server → client bytes are copied as they are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// The SSLRequest / GSSENCRequest codes of the start-up phase (answered by one byte).
const ENCRYPTION_REQUEST_CODES: [u32; 2] = [80_877_103, 80_877_104];

/// Buffer size of each direction of a relayed connection.
const RELAY_BUFFER: usize = 64 * 1024;

/// Message counts since the relay started.
#[derive(Debug, Default)]
pub struct WireCounts {
    /// `Q`: simple-protocol queries (tokio-postgres sends BEGIN/COMMIT/ROLLBACK this way).
    pub simple_queries: AtomicU64,
    /// `E`: executions of a bound extended-protocol statement.
    pub executes: AtomicU64,
    /// `P`: statements parsed (prepared) by the server.
    pub parses: AtomicU64,
    /// `S`: syncs, i.e. extended-protocol round trips.
    pub syncs: AtomicU64,
    /// Bytes sent to the server.
    pub bytes_sent: AtomicU64,
    /// When set, the text of every parsed statement and simple query is counted in `texts`
    /// (a profile of what the clients send; statements prepared once are counted once).
    pub record_texts: std::sync::atomic::AtomicBool,
    pub texts: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// With `record_texts`, the text of every statement executed (bound), prepared once or not,
    /// and every simple query: where the server's work goes.
    pub executed_texts: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// A copy of the counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireSnapshot {
    pub simple_queries: u64,
    pub executes: u64,
    pub parses: u64,
    pub syncs: u64,
    pub bytes_sent: u64,
}

impl WireSnapshot {
    /// Statements the server executed: extended executions plus simple queries.
    pub fn statements(&self) -> u64 {
        self.executes + self.simple_queries
    }

    /// Request/response exchanges: one per sync and one per simple query.
    pub fn round_trips(&self) -> u64 {
        self.syncs + self.simple_queries
    }

    pub fn since(&self, earlier: &WireSnapshot) -> WireSnapshot {
        WireSnapshot {
            simple_queries: self.simple_queries - earlier.simple_queries,
            executes: self.executes - earlier.executes,
            parses: self.parses - earlier.parses,
            syncs: self.syncs - earlier.syncs,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
        }
    }
}

impl WireCounts {
    pub fn snapshot(&self) -> WireSnapshot {
        WireSnapshot {
            simple_queries: self.simple_queries.load(Ordering::Relaxed),
            executes: self.executes.load(Ordering::Relaxed),
            parses: self.parses.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// The recorded statement texts, most frequent first.
    #[allow(dead_code)] // not every bench that counts statements profiles them
    pub fn top_texts(&self) -> Vec<(String, u64)> {
        let texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        let mut top: Vec<(String, u64)> = texts.iter().map(|(t, n)| (t.clone(), *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top
    }

    /// The recorded texts of executed statements, most frequent first.
    #[allow(dead_code)] // not every bench that counts statements profiles them
    pub fn top_executed_texts(&self) -> Vec<(String, u64)> {
        let texts = self
            .executed_texts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut top: Vec<(String, u64)> = texts.iter().map(|(t, n)| (t.clone(), *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top
    }

    /// Counts a parse or simple query in `texts` (a simple query also as executed), and
    /// remembers a parsed statement's text under its name in `names`, for its executions.
    fn record_text(&self, message: &[u8], names: &mut std::collections::HashMap<Vec<u8>, String>) {
        // `P`: name NUL query NUL ...; `Q`: query NUL; `B`: portal NUL statement NUL ...
        let body = message.get(5..).unwrap_or_default();
        let mut fields = body.split(|&b| b == 0);
        let (name, query) = match message.first() {
            Some(b'P') => (fields.next(), fields.next()),
            Some(b'Q') => (None, fields.next()),
            Some(b'B') => {
                let statement = fields.nth(1).unwrap_or_default();
                if let Some(text) = names.get(statement) {
                    let mut executed = self
                        .executed_texts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    *executed.entry(text.clone()).or_default() += 1;
                }
                return;
            }
            _ => return,
        };
        let Some(query) = query else {
            return;
        };
        let text = String::from_utf8_lossy(query)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let key: String = text.chars().take(150).collect();
        match name {
            Some(name) => {
                names.insert(name.to_vec(), key.clone());
            }
            None => {
                let mut executed = self
                    .executed_texts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                *executed.entry(key.clone()).or_default() += 1;
            }
        }
        let mut texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        *texts.entry(key).or_default() += 1;
    }

    fn tally(&self, message_type: u8, bytes: usize) {
        let counter = match message_type {
            b'Q' => Some(&self.simple_queries),
            b'E' => Some(&self.executes),
            b'P' => Some(&self.parses),
            b'S' => Some(&self.syncs),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Starts relaying 127.0.0.1:<returned port> to `server` (`host:port`).
pub async fn start(server: String) -> std::io::Result<(u16, Arc<WireCounts>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let counts = Arc::new(WireCounts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = server.clone();
            let counts = shared.clone();
            tokio::spawn(async move {
                if let Ok(upstream) = TcpStream::connect(&server).await {
                    let _ = relay(client, upstream, counts).await;
                }
            });
        }
    });
    Ok((port, counts))
}

async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    counts: Arc<WireCounts>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = upstream.into_split();
    // Buffered both ways on the counted side; flushed whenever the client has paused, so a
    // pipeline the client sent in one packet leaves in one packet.
    let mut client_read = BufReader::with_capacity(RELAY_BUFFER, client_read);
    let mut server_write = BufWriter::with_capacity(RELAY_BUFFER, server_write);
    let downstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let result: std::io::Result<()> = async {
        // Start-up: untyped packets until one that is not an encryption request.
        loop {
            let length = client_read.read_u32().await? as usize;
            let mut body = vec![0u8; length.saturating_sub(4)];
            client_read.read_exact(&mut body).await?;
            server_write.write_u32(length as u32).await?;
            server_write.write_all(&body).await?;
            server_write.flush().await?;
            let code = body
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(0);
            if !ENCRYPTION_REQUEST_CODES.contains(&code) {
                break;
            }
        }
        let mut message = Vec::new();
        let mut names: std::collections::HashMap<Vec<u8>, String> =
            std::collections::HashMap::new();
        loop {
            let message_type = client_read.read_u8().await?;
            let length = client_read.read_u32().await?;
            message.clear();
            message.push(message_type);
            message.extend_from_slice(&length.to_be_bytes());
            message.resize(1 + length.max(4) as usize, 0);
            client_read.read_exact(&mut message[5..]).await?;
            counts.tally(message_type, message.len());
            if matches!(message_type, b'P' | b'Q' | b'B')
                && counts.record_texts.load(Ordering::Relaxed)
            {
                counts.record_text(&message, &mut names);
            }
            server_write.write_all(&message).await?;
            if client_read.buffer().is_empty() {
                server_write.flush().await?;
            }
        }
    }
    .await;
    let _ = server_write.shutdown().await;
    downstream.abort();
    result
}
