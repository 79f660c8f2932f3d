//! Load generation for the HTTP benchmarks: requests signed as the official client signs them,
//! keep-alive connections, a closed loop and a fixed-rate open loop (latency counted from each
//! request's scheduled time, so no coordinated omission), and a bai-manager to aim them at.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_actors::facade::auth::signature::{HashAlgorithm, SignedParts, compute_signature};
use bai_testkit::TestEnv;
use bai_testkit::process::ServiceProcess;
use chrono::{SecondsFormat, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ADMIN_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const ADMIN_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const API_VERSION: &str = "v6.20220615";
/// Large enough for a 100-item GraphQL page in a few reads.
const READ_CHUNK: usize = 65536;

/// A whole-number knob from the environment.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where to send requests and as whom.
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Target {
    /// The example superadmin at `addr`.
    pub fn admin(addr: SocketAddr) -> Target {
        Target {
            addr,
            host: addr.to_string(),
            access_key: ADMIN_ACCESS_KEY.into(),
            secret_key: ADMIN_SECRET_KEY.into(),
        }
    }

    /// A signed request, dated now, exactly as the client sends it.
    pub fn request(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
        let now = Utc::now();
        let date = now.to_rfc3339_opts(SecondsFormat::Micros, false);
        let key_date = now.format("%Y%m%d").to_string();
        let parts = SignedParts {
            method,
            path_and_query: path,
            raw_date: &date,
            host: &self.host,
            content_type,
            modern_version_header: true,
            version: API_VERSION,
            key_date: &key_date,
        };
        let signature = compute_signature(&self.secret_key, &parts, HashAlgorithm::Sha256);
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bai-bench\r\n\
             X-BackendAI-Domain: default\r\nX-BackendAI-Version: {API_VERSION}\r\n\
             Date: {date}\r\nContent-Type: {content_type}\r\n\
             Authorization: BackendAI signMethod=HMAC-SHA256, credential={ak}:{signature}\r\n\
             Content-Length: {length}\r\n\r\n",
            host = self.host,
            ak = self.access_key,
            length = body.len(),
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }
}

/// What one benchmark sends, and which replies count as successes.
pub struct Workload {
    pub label: String,
    pub method: &'static str,
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Whether a reply (status, body) is a success.
    pub accept: fn(u16, &[u8]) -> bool,
}

impl Workload {
    /// The next request, signed anew (the date is part of the signature).
    fn request(&self, target: &Target) -> Vec<u8> {
        target.request(self.method, self.path, self.content_type, &self.body)
    }
}

/// One keep-alive connection that sends a request and reads the whole reply.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
        })
    }

    /// Sends `request`; returns the reply's status and body.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
            let Some(head_end) = find(&self.buffer, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let body_start = head_end + 4;
            if self.buffer.len() >= body_start + length {
                return Ok((status, &self.buffer[body_start..body_start + length]));
            }
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Latencies in microseconds, and failures.
#[derive(Default)]
struct Outcome {
    latencies: Vec<u64>,
    failures: u64,
    /// Failed replies by status (0: the connection failed).
    failed_statuses: BTreeMap<u16, u64>,
}

impl Outcome {
    /// Records one exchange; false when the connection must be reopened.
    fn record(
        &mut self,
        result: std::io::Result<(u16, &[u8])>,
        accept: fn(u16, &[u8]) -> bool,
        since: Instant,
    ) -> bool {
        let status = match result {
            Ok((status, body)) if accept(status, body) => {
                self.latencies.push(since.elapsed().as_micros() as u64);
                return true;
            }
            Ok((status, _)) => status,
            Err(_) => 0,
        };
        self.failures += 1;
        *self.failed_statuses.entry(status).or_default() += 1;
        status != 0
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        for (status, count) in other.failed_statuses {
            *self.failed_statuses.entry(status).or_default() += count;
        }
    }

    fn percentile(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index] as f64 / 1000.0
    }

    fn report(mut self, label: &str, elapsed: Duration) {
        self.latencies.sort_unstable();
        let count = self.latencies.len();
        println!(
            "{label:<52} {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({count} ok, {} failed {:?})",
            count as f64 / elapsed.as_secs_f64(),
            Outcome::percentile(&self.latencies, 0.50),
            Outcome::percentile(&self.latencies, 0.99),
            Outcome::percentile(&self.latencies, 1.0),
            self.failures,
            self.failed_statuses,
        );
    }
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Outcome {
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.expect("a load task"));
    }
    total
}

/// Closed loop: every connection sends its next request as soon as the previous reply came.
pub async fn closed_loop(
    target: Arc<Target>,
    workload: Arc<Workload>,
    connections: u64,
    seconds: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks = (0..connections)
        .map(|_| {
            let (target, workload) = (Arc::clone(&target), Arc::clone(&workload));
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut connection = Connection::open(target.addr).await.expect("connecting");
                while Instant::now() < deadline {
                    let request = workload.request(&target);
                    let sent = Instant::now();
                    let result = connection.exchange(&request).await;
                    if !outcome.record(result, workload.accept, sent) {
                        connection = Connection::open(target.addr).await.expect("reconnecting");
                    }
                }
                outcome
            })
        })
        .collect();
    gather(tasks).await.report(
        &format!("{}: closed loop, {connections} conns", workload.label),
        started.elapsed(),
    );
}

/// Open loop: requests are due at a fixed rate; latency counts from when each was due.
pub async fn fixed_rate(
    target: Arc<Target>,
    workload: Arc<Workload>,
    rate: u64,
    connections: u64,
    seconds: u64,
) {
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let per_connection = rate * seconds / connections;
    let tasks = (0..connections)
        .map(|index| {
            let (target, workload) = (Arc::clone(&target), Arc::clone(&workload));
            let offset = Duration::from_secs_f64(index as f64 / rate as f64);
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut connection = Connection::open(target.addr).await.expect("connecting");
                for k in 0..per_connection {
                    let due = start + offset + interval * k as u32;
                    tokio::time::sleep_until(due.into()).await;
                    let request = workload.request(&target);
                    let result = connection.exchange(&request).await;
                    if !outcome.record(result, workload.accept, due) {
                        connection = Connection::open(target.addr).await.expect("reconnecting");
                    }
                }
                outcome
            })
        })
        .collect();
    // A server that cannot keep up takes longer than planned: report what it achieved.
    gather(tasks).await.report(
        &format!("{}: offered {rate} req/s", workload.label),
        start.elapsed().max(Duration::from_secs(seconds)),
    );
}

/// Lifts the example admin's rate limit (30,000 requests per 15 minutes; a load test makes more).
pub async fn raise_admin_rate_limit(client: &tokio_postgres::Client) {
    client
        .execute(
            "UPDATE keypairs SET rate_limit = 2000000000 WHERE access_key = $1",
            &[&ADMIN_ACCESS_KEY],
        )
        .await
        .expect("raising the benchmark keypair's rate limit");
}

/// Starts `bai-manager start-server` with `num_proc` workers on `env`, logging warnings only;
/// returns it (stopped when dropped) and a target for the example admin.
pub fn start_manager(env: &TestEnv, num_proc: u64) -> (ServiceProcess, Target) {
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config).expect("reading manager.toml");
    let text = text
        .replace("num-proc = 1", &format!("num-proc = {num_proc}"))
        .replace("level = \"INFO\"", "level = \"WARNING\"");
    std::fs::write(&config, text).expect("writing manager.toml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bai-manager"));
    command.arg("-f").arg(&config).arg("start-server");
    let mut manager = ServiceProcess::spawn(
        "bai-manager",
        command,
        &env.path("manager.log"),
        libc::SIGTERM,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], env.service_port));
    manager.wait_for_port(addr, Duration::from_secs(60));
    (manager, Target::admin(addr))
}
