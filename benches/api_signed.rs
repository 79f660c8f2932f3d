//! Load test of signed API requests: a bai-manager (`start-server`, `num-proc` workers) on real
//! PostgreSQL, etcd and Redis, and a load generator that signs every request as the official
//! client does (HMAC-SHA256 over method, path, date, host, content type and version).
//!
//! Two measurements per path (`GET /auth/role`, `GET /resource/presets`):
//! - throughput: `BENCH_CONNECTIONS` keep-alive connections in a closed loop for
//!   `BENCH_SECONDS`; requests per second and latency percentiles;
//! - latency at a fixed rate: `BENCH_RATE` requests per second spread over the connections,
//!   each latency measured from the request's scheduled time (no coordinated omission).
//!
//! `cargo bench --bench api_signed`. Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (32),
//! BENCH_RATE (2000), BENCH_NUM_PROC (2). `BENCH_TARGET=http://127.0.0.1:PORT` (with
//! BENCH_ACCESS_KEY/BENCH_SECRET_KEY, default the example admin) measures another manager,
//! e.g. the original, instead of starting one.

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

const ADMIN_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const ADMIN_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const API_VERSION: &str = "v6.20220615";

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where to send requests and as whom.
struct Target {
    addr: SocketAddr,
    host: String,
    access_key: String,
    secret_key: String,
}

impl Target {
    /// A signed `GET path` request, dated now, exactly as the client sends it.
    fn request(&self, path: &str) -> Vec<u8> {
        let now = Utc::now();
        let date = now.to_rfc3339_opts(SecondsFormat::Micros, false);
        let key_date = now.format("%Y%m%d").to_string();
        let parts = SignedParts {
            method: "GET",
            path_and_query: path,
            raw_date: &date,
            host: &self.host,
            content_type: "text/plain",
            modern_version_header: true,
            version: API_VERSION,
            key_date: &key_date,
        };
        let signature = compute_signature(&self.secret_key, &parts, HashAlgorithm::Sha256);
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bai-bench\r\n\
             X-BackendAI-Domain: default\r\nX-BackendAI-Version: {API_VERSION}\r\n\
             Date: {date}\r\nContent-Type: text/plain\r\n\
             Authorization: BackendAI signMethod=HMAC-SHA256, credential={ak}:{signature}\r\n\
             Content-Length: 0\r\n\r\n",
            host = self.host,
            ak = self.access_key,
        )
        .into_bytes()
    }
}

/// One keep-alive connection that sends a request and reads the whole reply.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(8192),
        })
    }

    /// Sends `request`, returns the reply's status code.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 8192];
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
            if self.buffer.len() >= head_end + 4 + length {
                return Ok(status);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Latencies in microseconds, and failures.
#[derive(Default)]
struct Outcome {
    latencies: Vec<u64>,
    failures: u64,
    /// Replies other than 200, by status (0: the connection failed).
    failed_statuses: std::collections::BTreeMap<u16, u64>,
}

impl Outcome {
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
            "{label:<44} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({count} ok, {} failed {:?})",
            count as f64 / elapsed.as_secs_f64(),
            Outcome::percentile(&self.latencies, 0.50),
            Outcome::percentile(&self.latencies, 0.99),
            Outcome::percentile(&self.latencies, 1.0),
            self.failures,
            self.failed_statuses,
        );
    }
}

/// Closed loop: every connection sends its next request as soon as the previous reply came.
async fn throughput(target: Arc<Target>, path: &'static str, connections: u64, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let target = Arc::clone(&target);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection = Connection::open(target.addr).await.expect("connecting");
            while Instant::now() < deadline {
                let request = target.request(path);
                let sent = Instant::now();
                match connection.exchange(&request).await {
                    Ok(200) => outcome.latencies.push(sent.elapsed().as_micros() as u64),
                    Ok(status) => {
                        outcome.failures += 1;
                        *outcome.failed_statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => {
                        outcome.failures += 1;
                        *outcome.failed_statuses.entry(0).or_default() += 1;
                        connection = Connection::open(target.addr).await.expect("reconnecting");
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.expect("a load task"));
    }
    total.report(
        &format!("GET {path} closed loop, {connections} conns"),
        started.elapsed(),
    );
}

/// Open loop: requests are due at a fixed rate; latency counts from when each was due.
async fn fixed_rate(
    target: Arc<Target>,
    path: &'static str,
    rate: u64,
    connections: u64,
    seconds: u64,
) {
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let total_per_connection = rate * seconds / connections;
    let mut tasks = Vec::new();
    for index in 0..connections {
        let target = Arc::clone(&target);
        let offset = Duration::from_secs_f64(index as f64 / rate as f64);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection = Connection::open(target.addr).await.expect("connecting");
            for k in 0..total_per_connection {
                let due = start + offset + interval * k as u32;
                tokio::time::sleep_until(due.into()).await;
                let request = target.request(path);
                match connection.exchange(&request).await {
                    Ok(200) => outcome.latencies.push(due.elapsed().as_micros() as u64),
                    Ok(status) => {
                        outcome.failures += 1;
                        *outcome.failed_statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => {
                        outcome.failures += 1;
                        *outcome.failed_statuses.entry(0).or_default() += 1;
                        connection = Connection::open(target.addr).await.expect("reconnecting");
                    }
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        total.merge(task.await.expect("a load task"));
    }
    // A server that cannot keep up takes longer than planned: report what it achieved.
    total.report(
        &format!("GET {path} offered {rate} req/s"),
        start.elapsed().max(Duration::from_secs(seconds)),
    );
}

/// Starts a bai-manager on a test world with the example fixtures.
async fn start_manager(num_proc: u64) -> (TestEnv, ServiceProcess, Target) {
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    // The example keypairs allow 30,000 requests per 15 minutes; a load test makes more.
    env.db
        .connect()
        .await
        .execute(
            "UPDATE keypairs SET rate_limit = 2000000000 WHERE access_key = $1",
            &[&ADMIN_ACCESS_KEY],
        )
        .await
        .expect("raising the benchmark keypair's rate limit");
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
    let target = Target {
        addr,
        host: format!("127.0.0.1:{}", env.service_port),
        access_key: ADMIN_ACCESS_KEY.into(),
        secret_key: ADMIN_SECRET_KEY.into(),
    };
    (env, manager, target)
}

fn external_target(endpoint: &str) -> Target {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    Target {
        addr: host.parse().expect("BENCH_TARGET must be http://IP:PORT"),
        host,
        access_key: std::env::var("BENCH_ACCESS_KEY").unwrap_or_else(|_| ADMIN_ACCESS_KEY.into()),
        secret_key: std::env::var("BENCH_SECRET_KEY").unwrap_or_else(|_| ADMIN_SECRET_KEY.into()),
    }
}

fn main() {
    let seconds = knob("BENCH_SECONDS", 10);
    let connections = knob("BENCH_CONNECTIONS", 32);
    let rate = knob("BENCH_RATE", 2000);
    let num_proc = knob("BENCH_NUM_PROC", 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (_world, target) = match std::env::var("BENCH_TARGET") {
            Ok(endpoint) => (None, external_target(&endpoint)),
            Err(_) => {
                let (env, manager, target) = start_manager(num_proc).await;
                (Some((env, manager)), target)
            }
        };
        let target = Arc::new(target);
        println!(
            "target {} ({} s per run, {connections} connections, one load-generator thread)",
            target.host, seconds
        );
        // Warm up: caches, prepared statements, connection pools.
        throughput(Arc::clone(&target), "/auth/role", 4, 2).await;
        for path in ["/auth/role", "/resource/presets"] {
            throughput(Arc::clone(&target), path, connections, seconds).await;
            fixed_rate(Arc::clone(&target), path, rate, connections.max(8), seconds).await;
        }
    });
}
