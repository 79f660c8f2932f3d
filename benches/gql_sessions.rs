//! `compute_session_list` under load: 10,000 sessions (one kernel each) in a bai-manager
//! (`start-server`, `num-proc` workers) on real PostgreSQL, etcd and Redis, and signed
//! `POST /admin/gql` requests carrying the official CLI's `session list` query with
//! `limit: 100`.
//!
//! Measurements, each for `BENCH_SECONDS`:
//! - closed loop: `BENCH_CONNECTIONS` keep-alive connections sending back to back;
//! - fixed rate: `BENCH_RATE` requests per second over the connections, each latency measured
//!   from the request's scheduled time (no coordinated omission);
//!
//! Both for the CLI's default status list (active sessions) and for every status. Then the SQL
//! the query runs, with `EXPLAIN ANALYZE`.
//!
//! `cargo bench --bench gql_sessions`. Knobs: BENCH_SESSIONS (10000), BENCH_SECONDS (10),
//! BENCH_CONNECTIONS (4), BENCH_RATE (100), BENCH_NUM_PROC (2), BENCH_VACUUM (1: vacuum the
//! filled tables as autovacuum would; 0: measure right after the bulk insert).

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

/// The official client's `session list` query (23.09.10).
const SESSION_LIST: &str = "query($limit:Int!, $offset:Int!, $status: String, $access_key: String, $filter: String, $order: String) {\n  compute_session_list(\n      limit:$limit, offset:$offset, status:$status, access_key:$access_key, filter:$filter, order:$order) {\n    items { name access_key id group_name main_kernel_id image type status status_info status_changed result }\n    total_count\n  }\n}";

const ACTIVE: &str =
    "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RUNNING_DEGRADED,TERMINATING,ERROR";
const EVERY: &str = "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RESTARTING,RUNNING_DEGRADED,TERMINATING,TERMINATED,ERROR,CANCELLED";

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    fn request(&self, body: &str) -> Vec<u8> {
        let now = Utc::now();
        let date = now.to_rfc3339_opts(SecondsFormat::Micros, false);
        let key_date = now.format("%Y%m%d").to_string();
        let parts = SignedParts {
            method: "POST",
            path_and_query: "/admin/gql",
            raw_date: &date,
            host: &self.host,
            content_type: "application/json",
            modern_version_header: true,
            version: API_VERSION,
            key_date: &key_date,
        };
        let signature = compute_signature(ADMIN_SECRET_KEY, &parts, HashAlgorithm::Sha256);
        let mut request = format!(
            "POST /admin/gql HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bai-bench\r\n\
             X-BackendAI-Domain: default\r\nX-BackendAI-Version: {API_VERSION}\r\n\
             Date: {date}\r\nContent-Type: application/json\r\n\
             Authorization: BackendAI signMethod=HMAC-SHA256, credential={ADMIN_ACCESS_KEY}:{signature}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len(),
            host = self.host,
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        request
    }
}

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
            buffer: Vec::with_capacity(65536),
        })
    }

    /// Sends a request; returns the status and whether the body was a GraphQL success.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 65536];
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
                let body = &self.buffer[head_end + 4..head_end + 4 + length];
                return Ok((status, find(body, b"\"errors\"").is_none()));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<u64>,
    failures: u64,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
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
            "{label:<52} {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({count} ok, {} failed)",
            count as f64 / elapsed.as_secs_f64(),
            Outcome::percentile(&self.latencies, 0.50),
            Outcome::percentile(&self.latencies, 0.99),
            Outcome::percentile(&self.latencies, 1.0),
            self.failures,
        );
    }

    fn record(&mut self, result: std::io::Result<(u16, bool)>, since: Instant) -> bool {
        match result {
            Ok((200, true)) => {
                self.latencies.push(since.elapsed().as_micros() as u64);
                true
            }
            Ok(_) => {
                self.failures += 1;
                true
            }
            Err(_) => {
                self.failures += 1;
                false
            }
        }
    }
}

fn body(status: &str) -> String {
    serde_json::json!({
        "query": SESSION_LIST,
        "variables": {"status": status, "access_key": null, "filter": null, "order": null, "limit": 100, "offset": 0},
    })
    .to_string()
}

async fn closed_loop(
    target: Arc<Target>,
    body: Arc<String>,
    label: &str,
    connections: u64,
    seconds: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, body) = (Arc::clone(&target), Arc::clone(&body));
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection = Connection::open(target.addr).await.expect("connecting");
            while Instant::now() < deadline {
                let request = target.request(&body);
                let sent = Instant::now();
                let result = connection.exchange(&request).await;
                if !outcome.record(result, sent) {
                    connection = Connection::open(target.addr).await.expect("reconnecting");
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
        &format!("{label}: closed loop, {connections} conns"),
        started.elapsed(),
    );
}

async fn fixed_rate(
    target: Arc<Target>,
    body: Arc<String>,
    label: &str,
    rate: u64,
    connections: u64,
    seconds: u64,
) {
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let per_connection = rate * seconds / connections;
    let mut tasks = Vec::new();
    for index in 0..connections {
        let (target, body) = (Arc::clone(&target), Arc::clone(&body));
        let offset = Duration::from_secs_f64(index as f64 / rate as f64);
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut connection = Connection::open(target.addr).await.expect("connecting");
            for k in 0..per_connection {
                let due = start + offset + interval * k as u32;
                tokio::time::sleep_until(due.into()).await;
                let request = target.request(&body);
                let result = connection.exchange(&request).await;
                if !outcome.record(result, due) {
                    connection = Connection::open(target.addr).await.expect("reconnecting");
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
        &format!("{label}: offered {rate} req/s"),
        start.elapsed().max(Duration::from_secs(seconds)),
    );
}

/// `count` sessions with one kernel each, spread over the example users, 30 days and the
/// statuses a busy cluster shows (mostly finished, a fifth running or failed). PENDING is left
/// out: the manager's scheduler would act on it during the run.
///
/// With `vacuum`, the tables end as autovacuum leaves a table of mostly finished sessions (the
/// visibility map set, so the total count is an index-only scan on the status index); without
/// it, as right after a bulk insert, before autovacuum came by (the count reads the whole heap).
async fn fill_sessions(client: &tokio_postgres::Client, count: i32, vacuum: bool) {
    client
        .execute(
            "INSERT INTO sessions (id, name, session_type, domain_name, group_id, user_uuid, access_key, \
                 images, status, status_history, created_at, terminated_at, occupying_slots, \
                 requested_slots, scaling_group_name, result) \
             SELECT uuid_generate_v4(), 'sess-' || n, 'INTERACTIVE', 'default', \
                 '2de2b969-1d04-48a6-af16-0bc8adb3c831', k.\"user\", k.access_key, \
                 ARRAY['cr.backend.ai/stable/python:3.9-ubuntu20.04'], st.status, \
                 jsonb_build_object(st.status::text, (now() - n * interval '4 minutes')::text), \
                 now() - n * interval '4 minutes', \
                 CASE WHEN st.status IN ('TERMINATED', 'CANCELLED') \
                      THEN now() - n * interval '4 minutes' + interval '1 hour' END, \
                 '{\"cpu\": \"1\", \"mem\": \"1073741824\"}', '{\"cpu\": \"1\", \"mem\": \"1073741824\"}', \
                 'default', 'UNDEFINED' \
             FROM generate_series(1, $1::int4) AS n \
             JOIN (SELECT access_key, \"user\", row_number() OVER (ORDER BY access_key) - 1 AS i \
                   FROM keypairs) k ON k.i = n % 5 \
             CROSS JOIN LATERAL (SELECT (CASE WHEN n % 10 < 7 THEN 'TERMINATED' \
                 WHEN n % 10 = 7 THEN 'CANCELLED' WHEN n % 10 = 8 THEN 'RUNNING' \
                 ELSE 'ERROR' END)::sessionstatus AS status) st",
            &[&count],
        )
        .await
        .expect("inserting sessions");
    client
        .execute(
            "INSERT INTO kernels (session_id, session_name, cluster_role, cluster_idx, cluster_hostname, \
                 scaling_group, domain_name, group_id, user_uuid, access_key, image, registry, \
                 occupied_slots, requested_slots, status, created_at, terminated_at) \
             SELECT s.id, s.name, 'main', 1, 'main1', 'default', s.domain_name, s.group_id, \
                 s.user_uuid, s.access_key, s.images[1], 'cr.backend.ai', s.occupying_slots, \
                 s.requested_slots, (CASE WHEN s.status::text = 'TERMINATED' THEN 'TERMINATED' \
                     WHEN s.status::text = 'CANCELLED' THEN 'CANCELLED' \
                     WHEN s.status::text = 'RUNNING' THEN 'RUNNING' ELSE 'ERROR' END)::kernelstatus, \
                 s.created_at, s.terminated_at FROM sessions s",
            &[],
        )
        .await
        .expect("inserting kernels");
    let maintenance = if vacuum {
        "VACUUM ANALYZE sessions, kernels"
    } else {
        "ANALYZE sessions; ANALYZE kernels;"
    };
    client
        .batch_execute(maintenance)
        .await
        .expect("vacuum/analyze");
}

async fn explain(client: &tokio_postgres::Client) {
    let (items, count) = bai_actors::gql::session::cli_session_list_statements();
    let statuses: Vec<String> = ACTIVE.split(',').map(str::to_owned).collect();
    println!("\nSQL of one `session list` (limit 100), as sent:\n{items}\n{count}\n");
    for (label, sql, with_page) in [("items", &items, true), ("count", &count, false)] {
        let statement = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}");
        let limit: i64 = 100;
        let offset: i64 = 0;
        let rows = if with_page {
            client
                .query(&statement, &[&statuses, &limit, &offset])
                .await
        } else {
            client.query(&statement, &[&statuses]).await
        }
        .expect("explain");
        println!("EXPLAIN ANALYZE ({label}):");
        for row in rows {
            println!("  {}", row.get::<_, String>(0));
        }
    }
}

#[tokio::main]
async fn main() {
    let sessions = knob("BENCH_SESSIONS", 10_000) as i32;
    let seconds = knob("BENCH_SECONDS", 10);
    let connections = knob("BENCH_CONNECTIONS", 4);
    let rate = knob("BENCH_RATE", 100);
    let num_proc = knob("BENCH_NUM_PROC", 2);
    let vacuum = knob("BENCH_VACUUM", 1) != 0;

    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let db = env.db.connect().await;
    db.execute(
        "UPDATE keypairs SET rate_limit = 2000000000 WHERE access_key = $1",
        &[&ADMIN_ACCESS_KEY],
    )
    .await
    .expect("raising the benchmark keypair's rate limit");
    let filling = Instant::now();
    fill_sessions(&db, sessions, vacuum).await;
    println!(
        "{sessions} sessions with one kernel each inserted in {:.1} s ({})",
        filling.elapsed().as_secs_f64(),
        if vacuum {
            "then VACUUM ANALYZE, as autovacuum leaves the tables"
        } else {
            "ANALYZE only: the visibility map not yet set"
        }
    );

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
    let target = Arc::new(Target {
        addr,
        host: format!("127.0.0.1:{}", env.service_port),
    });
    println!(
        "bai-manager start-server, num-proc {num_proc}; {} cores on this machine\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Warm up the workers' connections and prepared statements.
    for status in [ACTIVE, EVERY] {
        closed_loop(
            Arc::clone(&target),
            Arc::new(body(status)),
            "warm-up",
            connections,
            2,
        )
        .await;
    }
    println!();
    for (label, status) in [
        ("session list (active statuses)", ACTIVE),
        ("session list (every status)", EVERY),
    ] {
        let body = Arc::new(body(status));
        closed_loop(
            Arc::clone(&target),
            Arc::clone(&body),
            label,
            connections,
            seconds,
        )
        .await;
        fixed_rate(Arc::clone(&target), body, label, rate, connections, seconds).await;
    }
    explain(&db).await;
    drop(manager);
}
