//! The whole session path, end to end: signed `POST /session` (`enqueueOnly`) → the scheduler's
//! pass → `create_kernels` RPC → the agents' kernel events → RUNNING → signed
//! `DELETE /session/{name}` → `destroy_kernel` → `kernel_terminated` → TERMINATED with the
//! slots freed, on a release `bai-manager start-server` over a private PostgreSQL/Redis/etcd
//! stack, with N simulated agents (RPC and events) in child processes of this program.
//!
//!     cargo bench --bench session_e2e                      # 1,000 agents, 26.x events
//!     BENCH_AGENTS=10000 cargo bench --bench session_e2e
//!     BENCH_FORMAT=23.09 cargo bench --bench session_e2e   # 23.09 agents and events
//!
//! Knobs (environment): BENCH_AGENTS (1000), BENCH_FORMAT (`26` or `23.09`), BENCH_SECONDS (60,
//! the sustained run), BENCH_RATES (`100,1000`: fixed-rate runs, sessions/s), BENCH_RATE_SECONDS
//! (20 per fixed-rate run), BENCH_WARMUP (5), BENCH_IN_FLIGHT (1000 sessions between create and
//! TERMINATED in the sustained run), BENCH_CONNECTIONS (32 for creates, as many for destroys),
//! BENCH_NUM_PROC (1 manager worker), BENCH_AGENT_CPUS (16), BENCH_AGENT_MEM_GIB (64),
//! BENCH_PORT_BASE (20000: agent n listens on base + n), BENCH_HEARTBEAT_SECONDS (3),
//! BENCH_AGENT_IMAGES (0: the images each 23.09 agent lists in every heartbeat, the same for
//! all agents, as in a cluster whose nodes were provisioned alike),
//! BENCH_AGENTS_PER_SIMULATOR (4000; one process cannot hold 10,000 listeners and their
//! accepted connections under a 20,000 descriptor limit), BENCH_COUNT_STATEMENTS (1: the
//! manager reaches PostgreSQL through a relay that counts its statements), BENCH_STATEMENT_PROFILE
//! (0; 1 lists the statements the manager parsed and executed per session at the end, and
//! where PostgreSQL spent its time: `pg_stat_statements`, preloaded for this run; the manager
//! then logs at INFO, so each run also lists its scheduling passes and their timings),
//! BENCH_MANAGER_ENV (`NAME=value;NAME=value`, added to the manager's environment: a heap
//! profiler's `LD_PRELOAD`), BENCH_MANAGER_BIN (the manager binary to run instead of the one
//! built with this bench, e.g. one built with link-time optimization:
//! `CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 cargo build --release`).
//!
//! Measured per run:
//! * sessions/s: the sustained run keeps BENCH_IN_FLIGHT sessions in the cycle (a new one is
//!   created when one is TERMINATED) and counts the sessions that reached TERMINATED in the
//!   window (and in its second half, past the ramp-up of a run that starts empty); the
//!   fixed-rate runs create at their rate (open loop, due times fixed in advance);
//! * create→RUNNING: from the moment a create was due (sent) to the session's `RUNNING` entry of
//!   `status_history`, written by the manager on the same clock; p50/p99;
//! * the `DELETE /session/{name}` reply time (sent → reply), p50/p99, of the destroys answered
//!   within the run's window;
//! * per session, from the first create of the run until its last session is TERMINATED: CPU of
//!   the manager processes (utime+stime in /proc) and of the whole machine (/proc/stat), split
//!   into the manager, PostgreSQL (the server with its backends), Redis and etcd, the
//!   simulators, this program and the other processes; the
//!   statements the manager sent (counted by the relay; BEGIN and COMMIT count), PostgreSQL
//!   commits (`pg_stat_database.xact_commit`, minus this program's own reads; auto-commit
//!   statements count as one each) and rows written to `sessions`, `kernels` and `agents`
//!   (`pg_stat_user_tables`); the peak RSS of each worker;
//! * once, before the runs: what the idle cluster writes per second (heartbeats, the timers of
//!   the scheduler and the reconciler), so that a run's write transactions per session can be
//!   told with and without it; and the cores it keeps busy, split as above (at 10,000 agents
//!   the heartbeats alone take a share of the two cores that no session can use).
//!
//! How a session moves on: this program polls PostgreSQL (one `status = ANY` query every 25 ms
//! over the sessions in flight) and destroys each session it finds RUNNING.
//!
//! At the end, in SQL: no agent over-committed, every session TERMINATED, every agent's
//! `occupied_slots` back to zero, and the simulators' ledger: each kernel created exactly once,
//! as many kernels created as sessions that reached RUNNING.

// Tests and benches read rows with `Row::get`: a drifted schema fails them loudly, which is
// what a test should do (the non-test code may not; see clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "support/pg_wire_counter.rs"]
mod pg_wire_counter;
#[path = "support/proc_stats.rs"]
mod proc_stats;
// Only the signed request and the keep-alive connection of the shared load helpers are used.
#[allow(dead_code)]
#[path = "support/signed_load.rs"]
mod signed_load;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bai_actors::wire::WireFormat;
use bai_actors::wire::agent_info::AgentImage;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter, fleet, run_heartbeats};
use bai_schema::{SlotAmount, SlotUnit};
use bai_testkit::TestEnv;
use bai_testkit::process::ServiceProcess;
use bai_testkit::scheduling::over_committed_agents;
use pg_wire_counter::{WireCounts, WireSnapshot};
use proc_stats::{
    children_of, cpu_seconds, machine_busy_seconds, parent_of, pids_with_cmdline, rss_mib,
    tree_cpu_seconds,
};
use signed_load::{ADMIN_ACCESS_KEY, Connection, Target, knob, raise_admin_rate_limit};
use tokio::sync::{Mutex as AsyncMutex, Semaphore, mpsc};
use uuid::Uuid;

const IMAGE: &str = "cr.backend.ai/testing/python:3.9-ubuntu20.04";
/// Set in a child process: `first:count` of the agents it simulates.
const SIMULATOR_ENV: &str = "BENCH_E2E_SIMULATOR";
/// The Redis `host:port` a simulator child writes events to.
const SIMULATOR_REDIS_ENV: &str = "BENCH_E2E_REDIS";
const AGENT_PREFIX: &str = "i-e2e-";
/// How often the driver looks at the sessions in flight.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

struct Knobs {
    agents: usize,
    format: WireFormat,
    seconds: u64,
    rates: Vec<u64>,
    rate_seconds: u64,
    warmup: u64,
    in_flight: usize,
    connections: u64,
    num_proc: u64,
    agent_cpus: u64,
    agent_mem_gib: u64,
    port_base: u16,
    heartbeat_seconds: u64,
    agent_images: usize,
    per_simulator: usize,
    count_statements: bool,
    statement_profile: bool,
    history: u64,
}

impl Knobs {
    fn from_env() -> Knobs {
        let format = match std::env::var("BENCH_FORMAT").as_deref() {
            Ok("23.09") | Ok("23") | Ok("args") => WireFormat::Args,
            _ => WireFormat::Payload,
        };
        let rates = std::env::var("BENCH_RATES")
            .unwrap_or_else(|_| "100,1000".to_owned())
            .split(',')
            .filter_map(|rate| rate.trim().parse().ok())
            .filter(|rate| *rate > 0)
            .collect();
        Knobs {
            agents: knob("BENCH_AGENTS", 1000) as usize,
            format,
            seconds: knob("BENCH_SECONDS", 60),
            rates,
            rate_seconds: knob("BENCH_RATE_SECONDS", 20),
            warmup: knob("BENCH_WARMUP", 5),
            in_flight: knob("BENCH_IN_FLIGHT", 1000) as usize,
            connections: knob("BENCH_CONNECTIONS", 32).max(1),
            num_proc: knob("BENCH_NUM_PROC", 1).max(1),
            agent_cpus: knob("BENCH_AGENT_CPUS", 16),
            agent_mem_gib: knob("BENCH_AGENT_MEM_GIB", 64),
            port_base: knob("BENCH_PORT_BASE", 20000) as u16,
            heartbeat_seconds: knob("BENCH_HEARTBEAT_SECONDS", 3).max(1),
            agent_images: knob("BENCH_AGENT_IMAGES", 0) as usize,
            per_simulator: (knob("BENCH_AGENTS_PER_SIMULATOR", 4000) as usize).max(1),
            count_statements: knob("BENCH_COUNT_STATEMENTS", 1) != 0,
            statement_profile: knob("BENCH_STATEMENT_PROFILE", 0) != 0,
            history: knob("BENCH_HISTORY", 20_000),
        }
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            WireFormat::Args => "23.09",
            WireFormat::Payload => "26.x",
        }
    }

    /// Agents `first .. first + count` of the fleet, with this run's slots (and images).
    fn agents(&self, first: usize, count: usize) -> Vec<SimAgent> {
        let images: Vec<AgentImage> = (0..self.agent_images)
            .map(|n| AgentImage {
                canonical: format!("cr.backend.ai/stable/python:3.{n}-ubuntu22.04"),
                digest: format!("sha256:{n:064x}"),
            })
            .collect();
        fleet(AGENT_PREFIX, self.agents, self.format, self.port_base)
            .into_iter()
            .skip(first)
            .take(count)
            .map(|agent| {
                let agent = match self.format {
                    WireFormat::Args if !images.is_empty() => agent.with_images(images.clone()),
                    _ => agent,
                };
                agent
                    .with_slot(
                        "cpu",
                        SlotUnit::Count,
                        SlotAmount::from(self.agent_cpus as i64),
                    )
                    .with_slot(
                        "mem",
                        SlotUnit::Bytes,
                        SlotAmount::from((self.agent_mem_gib << 30) as i64),
                    )
            })
            .collect()
    }
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The simulator child: agents answering RPC and heartbeating, until its stdin closes.

/// Runs in a child process: serves agents `first .. first + count`, heartbeats them, prints
/// `ready <bound> <failed>`, and when stdin closes prints its ledger and exits.
fn simulator_main(spec: &str) {
    let knobs = Knobs::from_env();
    let (first, count) = spec
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .unwrap_or_else(|| panic!("{SIMULATOR_ENV}={spec:?} is not first:count"));
    let redis = std::env::var(SIMULATOR_REDIS_ENV).expect("the Redis address");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let agents = knobs.agents(first, count);
        let writer = StreamWriter::connect(&redis)
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let servers = serve_fleet(&agents, &writer, &ledger);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let failed = servers.iter().filter(|server| server.is_finished()).count();
        let mut heartbeat_writer = writer.clone();
        let interval = Duration::from_secs(knobs.heartbeat_seconds);
        let slices = (agents.len() / 50).max(1);
        let heartbeats = tokio::spawn(async move {
            let _ =
                run_heartbeats(&mut heartbeat_writer, &agents, interval, slices, u64::MAX).await;
        });
        println!("ready {} {failed}", count - failed);
        let _ = std::io::stdout().flush();
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        })
        .await;
        heartbeats.abort();
        let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        let twice = ledger.created.values().filter(|n| **n > 1).count();
        let creates = ledger.calls.get("create_kernels").copied().unwrap_or(0);
        println!(
            "ledger {} {twice} {} {creates}",
            ledger.created.len(),
            ledger.destroyed.len()
        );
        let _ = std::io::stdout().flush();
        for server in servers {
            server.abort();
        }
    });
}

/// A simulator child process; killed if dropped before [`Simulator::finish`].
struct Simulator {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

/// What the simulators did, summed.
#[derive(Debug, Default)]
struct SimLedger {
    kernels_created: u64,
    created_twice: u64,
    kernels_destroyed: u64,
    create_calls: u64,
}

impl Simulator {
    fn start(redis: &str, first: usize, count: usize) -> (Simulator, usize) {
        let mut child = Command::new(std::env::current_exe().expect("this program's path"))
            .env(SIMULATOR_ENV, format!("{first}:{count}"))
            .env(SIMULATOR_REDIS_ENV, redis)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting a simulator");
        let stdout = child.stdout.take().expect("the simulator's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        let fields: Vec<usize> = ready
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let failed = fields.get(1).copied().unwrap_or(count);
        (Simulator { child, lines }, failed)
    }

    fn finish(mut self) -> SimLedger {
        drop(self.child.stdin.take());
        let line = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.starts_with("ledger "))
            .unwrap_or_default();
        let _ = self.child.wait();
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        SimLedger {
            kernels_created: fields.first().copied().unwrap_or(0),
            created_twice: fields.get(1).copied().unwrap_or(0),
            kernels_destroyed: fields.get(2).copied().unwrap_or(0),
            create_calls: fields.get(3).copied().unwrap_or(0),
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc figures of the manager processes.

/// The manager's processes (the supervisor and its workers), and the others of the stack.
struct ManagerProcs {
    supervisor: u32,
    workers: Vec<u32>,
    simulators: Vec<u32>,
    /// The PostgreSQL server (postmaster) of the test kit.
    postmaster: Option<u32>,
    /// The Redis and etcd servers of the test kit.
    redis_etcd: Vec<u32>,
    /// The manager's log, where each scheduling pass leaves a line with its timings.
    log: std::path::PathBuf,
}

impl ManagerProcs {
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.supervisor) + self.workers.iter().map(|&w| cpu_seconds(w)).sum::<f64>()
    }

    fn cpu_split(&self) -> CpuSplit {
        CpuSplit {
            machine: machine_busy_seconds(),
            manager: self.cpu_seconds(),
            simulators: self.simulators.iter().map(|&pid| cpu_seconds(pid)).sum(),
            bench: cpu_seconds(std::process::id()),
            postgres: self.postmaster.map_or(0.0, tree_cpu_seconds),
            redis_etcd: self.redis_etcd.iter().map(|&pid| cpu_seconds(pid)).sum(),
        }
    }
}

/// CPU seconds spent so far: by the whole machine, and by the parts this program knows.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    machine: f64,
    manager: f64,
    simulators: f64,
    /// This program: the load, the PostgreSQL relay that counts statements, the heartbeats'
    /// timer (the simulators send them) and the polling.
    bench: f64,
    postgres: f64,
    redis_etcd: f64,
}

impl CpuSplit {
    fn scaled(&self, factor: f64) -> CpuSplit {
        CpuSplit {
            machine: self.machine * factor,
            manager: self.manager * factor,
            simulators: self.simulators * factor,
            bench: self.bench * factor,
            postgres: self.postgres * factor,
            redis_etcd: self.redis_etcd * factor,
        }
    }

    fn since(&self, before: &CpuSplit) -> CpuSplit {
        CpuSplit {
            machine: self.machine - before.machine,
            manager: self.manager - before.manager,
            simulators: self.simulators - before.simulators,
            bench: self.bench - before.bench,
            postgres: self.postgres - before.postgres,
            redis_etcd: self.redis_etcd - before.redis_etcd,
        }
    }
}

/// Where PostgreSQL spent its time (planning and execution, per session, all clients of the
/// database: the manager's and this program's), from `pg_stat_statements`.
async fn print_postgres_time(client: &tokio_postgres::Client, sessions: f64) {
    let _ = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await;
    let rows = match client
        .query(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 150),
                    calls, total_plan_time + total_exec_time, total_plan_time
               FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              ORDER BY total_plan_time + total_exec_time DESC LIMIT 25",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            println!("pg_stat_statements: {error}");
            return;
        }
    };
    println!(
        "PostgreSQL's time per session, by statement (planning + execution; all runs, this program's own included):"
    );
    for row in rows {
        let text: String = row.get(0);
        let calls: i64 = row.get(1);
        let millis: f64 = row.get(2);
        let planning: f64 = row.get(3);
        println!(
            "  {:>7.0} µs ({:>5.0} planning) {:>6.2} calls  {text}",
            millis * 1000.0 / sessions,
            planning * 1000.0 / sessions,
            calls as f64 / sessions
        );
    }
}

/// The PostgreSQL server behind `client`: the parent of its backend.
async fn postmaster_of(client: &tokio_postgres::Client) -> Option<u32> {
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    parent_of(u32::try_from(backend).ok()?)
}

// ---------------------------------------------------------------------------------------------
// The driver: creates, watches, destroys.

struct Live {
    name: String,
    phase: usize,
    closed_loop: bool,
    destroy_sent: bool,
}

#[derive(Default)]
struct Tracker {
    live: HashMap<Uuid, Live>,
    /// Per phase: (session, epoch seconds its create was due).
    created: Vec<Vec<(Uuid, f64)>>,
    /// Per phase: when each of its sessions ended, and how.
    ended: Vec<Vec<(Instant, String)>>,
    create_failures: BTreeMap<u16, u64>,
    destroy_failures: BTreeMap<u16, u64>,
    /// Each successful `DELETE /session/{name}`: when its reply came and how long it took (ms).
    destroy_latencies: Vec<(Instant, f64)>,
}

struct Driver {
    target: Arc<Target>,
    tracker: std::sync::Mutex<Tracker>,
    in_flight: Arc<Semaphore>,
    destroys: mpsc::UnboundedSender<String>,
    next_name: AtomicU64,
    /// Statements this program sent to PostgreSQL (its own commits, to subtract).
    own_statements: AtomicU64,
    stop: AtomicBool,
}

impl Driver {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin_phase(&self) -> usize {
        let mut tracker = self.tracker();
        tracker.created.push(Vec::new());
        tracker.ended.push(Vec::new());
        tracker.created.len() - 1
    }

    /// Creates one session; its create is counted from `due` (epoch seconds).
    async fn create(
        &self,
        connection: &mut Option<Connection>,
        phase: usize,
        closed_loop: bool,
        due: f64,
    ) {
        let name = format!("e2e-{}", self.next_name.fetch_add(1, Ordering::Relaxed));
        let body = serde_json::json!({
            "tag": null, "name": name,
            "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "512m"},
                       "resource_opts": {}, "scalingGroup": null, "mount_map": {},
                       "preopen_ports": null},
            "dependencies": [], "callback_url": null, "architecture": "x86_64",
            "clusterSize": 1, "clusterMode": "single-node", "starts_at": null,
            "bootstrap_script": null, "owner_access_key": null, "domain": "default",
            "group": "default", "type": "interactive", "enqueueOnly": true,
            "maxWaitSeconds": 0, "reuseIfExists": false, "startupCommand": null,
            "image": IMAGE
        })
        .to_string();
        let request = self
            .target
            .request("POST", "/session", "application/json", body.as_bytes());
        let outcome = exchange(&self.target, connection, &request).await;
        let id = match &outcome {
            Ok((201, body)) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|reply| reply["sessionId"].as_str()?.parse::<Uuid>().ok()),
            _ => None,
        };
        let mut tracker = self.tracker();
        match id {
            Some(id) => {
                tracker.created[phase].push((id, due));
                tracker.live.insert(
                    id,
                    Live {
                        name,
                        phase,
                        closed_loop,
                        destroy_sent: false,
                    },
                );
            }
            None => {
                let status = outcome.map(|(status, _)| status).unwrap_or(0);
                *tracker.create_failures.entry(status).or_default() += 1;
                if closed_loop {
                    self.in_flight.add_permits(1);
                }
            }
        }
    }

    fn live_ids(&self) -> Vec<Uuid> {
        self.tracker().live.keys().copied().collect()
    }

    fn in_flight_count(&self) -> usize {
        self.tracker().live.len()
    }

    /// One look at the sessions in flight: destroys the RUNNING ones, retires the ended ones.
    async fn watch_once(&self, client: &tokio_postgres::Client) {
        let ids = self.live_ids();
        if ids.is_empty() {
            return;
        }
        self.own_statements.fetch_add(1, Ordering::Relaxed);
        let Ok(rows) = client
            .query(
                "SELECT id, status::text FROM sessions
                  WHERE id = ANY($1) AND status IN ('RUNNING', 'TERMINATED', 'ERROR', 'CANCELLED')",
                &[&ids],
            )
            .await
        else {
            return;
        };
        let now = Instant::now();
        let mut tracker = self.tracker();
        for row in rows {
            let id: Uuid = row.get(0);
            let status: String = row.get(1);
            if status == "RUNNING" {
                if let Some(live) = tracker.live.get_mut(&id)
                    && !live.destroy_sent
                {
                    live.destroy_sent = true;
                    let _ = self.destroys.send(live.name.clone());
                }
                continue;
            }
            if let Some(live) = tracker.live.remove(&id) {
                tracker.ended[live.phase].push((now, status));
                if live.closed_loop {
                    self.in_flight.add_permits(1);
                }
            }
        }
    }
}

/// Sends `request` on `connection` (opened or reopened as needed); the reply's status and body.
async fn exchange(
    target: &Target,
    connection: &mut Option<Connection>,
    request: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    if connection.is_none() {
        *connection = Some(Connection::open(target.addr).await?);
    }
    let Some(open) = connection.as_mut() else {
        return Err(std::io::ErrorKind::NotConnected.into());
    };
    match open.exchange(request).await {
        Ok((status, body)) => Ok((status, body.to_vec())),
        Err(error) => {
            *connection = None;
            Err(error)
        }
    }
}

async fn destroyer(driver: Arc<Driver>, names: Arc<AsyncMutex<mpsc::UnboundedReceiver<String>>>) {
    let mut connection = None;
    loop {
        let next = names.lock().await.recv().await;
        let Some(name) = next else {
            return;
        };
        let request = driver.target.request(
            "DELETE",
            &format!("/session/{name}"),
            "application/json",
            b"",
        );
        let sent = Instant::now();
        let status = match exchange(&driver.target, &mut connection, &request).await {
            Ok((status, _)) if (200..300).contains(&status) => {
                let took = sent.elapsed().as_secs_f64() * 1000.0;
                driver
                    .tracker()
                    .destroy_latencies
                    .push((Instant::now(), took));
                continue;
            }
            Ok((status, _)) => status,
            Err(_) => 0,
        };
        *driver.tracker().destroy_failures.entry(status).or_default() += 1;
    }
}

async fn watcher(driver: Arc<Driver>, client: tokio_postgres::Client) {
    while !driver.stop.load(Ordering::Relaxed) {
        driver.watch_once(&client).await;
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Keeps `in_flight` sessions in the cycle for `seconds`.
async fn closed_loop(driver: &Arc<Driver>, phase: usize, connections: u64, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let driver = Arc::clone(driver);
            tokio::spawn(async move {
                let mut connection = None;
                while Instant::now() < deadline {
                    let Ok(permit) = driver.in_flight.acquire().await else {
                        return;
                    };
                    permit.forget();
                    if Instant::now() >= deadline {
                        driver.in_flight.add_permits(1);
                        return;
                    }
                    driver
                        .create(&mut connection, phase, true, epoch_now())
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Creates `rate` sessions per second for `seconds`, each due at a fixed time.
async fn fixed_rate(driver: &Arc<Driver>, phase: usize, rate: u64, connections: u64, seconds: u64) {
    let connections = connections.min(rate).max(1);
    let interval = Duration::from_secs_f64(connections as f64 / rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let start_epoch = epoch_now() + 0.05;
    let per_connection = rate * seconds / connections;
    let tasks: Vec<_> = (0..connections)
        .map(|index| {
            let driver = Arc::clone(driver);
            let offset = Duration::from_secs_f64(index as f64 / rate as f64);
            tokio::spawn(async move {
                let mut connection = None;
                for k in 0..per_connection {
                    let due = offset + interval * k as u32;
                    tokio::time::sleep_until((start + due).into()).await;
                    driver
                        .create(
                            &mut connection,
                            phase,
                            false,
                            start_epoch + due.as_secs_f64(),
                        )
                        .await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

/// Waits until every session in flight has ended (or `limit` passed); false on timeout.
/// Where the sessions that did not end are stuck: counts by session status, kernel status and
/// the kernel's status_info.
/// The kernels the reconciler ended because their `kernel_terminated` never arrived (26.x
/// agents trim the stream to ~128 entries), summed from its warnings in the manager's log.
/// The scheduling passes a run's part of the manager log records, with their timings (sorted).
#[derive(Default)]
struct PassLog {
    placed: u64,
    load: Vec<f64>,
    plan: Vec<f64>,
    write: Vec<f64>,
}

fn pass_log(log: &std::path::Path, offset: u64) -> PassLog {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
    let field = |line: &str, key: &str| -> Option<f64> {
        line.split(&format!("{key}="))
            .nth(1)?
            .split([',', ' '])
            .next()?
            .parse()
            .ok()
    };
    let mut passes = PassLog::default();
    for line in text.lines().filter(|line| line.contains("scheduling pass")) {
        let (Some(load), Some(plan), Some(write)) = (
            field(line, "load_ms"),
            field(line, "plan_ms"),
            field(line, "write_ms"),
        ) else {
            continue;
        };
        passes.placed += field(line, "scheduled").unwrap_or(0.0) as u64;
        passes.load.push(load);
        passes.plan.push(plan);
        passes.write.push(write);
    }
    for times in [&mut passes.load, &mut passes.plan, &mut passes.write] {
        times.sort_by(f64::total_cmp);
    }
    passes
}

fn lost_terminations(log: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split("lost_terminations=").nth(1))
        .filter_map(|rest| rest.split([',', ' ']).next()?.parse::<u64>().ok())
        .sum()
}

async fn report_stuck(client: &tokio_postgres::Client, sessions: &[Uuid]) {
    let Ok(rows) = client
        .query(
            "SELECT s.status::text, k.status::text, coalesce(k.status_info, ''), count(*)
               FROM sessions s JOIN kernels k ON k.session_id = s.id
              WHERE s.id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 4 DESC",
            &[&sessions],
        )
        .await
    else {
        return;
    };
    println!("  stuck sessions (session status, kernel status, kernel status_info: count):");
    for row in rows {
        let (session, kernel, info, count): (String, String, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        println!("    {session}, {kernel}, {info:?}: {count}");
    }
}

async fn drain(driver: &Driver, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while driver.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Counters around a run.

#[derive(Clone, Copy)]
struct Counters {
    cpu: CpuSplit,
    wire: WireSnapshot,
    commits: i64,
    rows: i64,
    next_xid: i64,
    own: u64,
}

/// `(xact_commit, rows written, next transaction id)`: every transaction that writes gets an
/// id, read-only ones do not, so the ids handed out count the write transactions.
async fn database_counters(client: &tokio_postgres::Client, driver: &Driver) -> (i64, i64, i64) {
    driver.own_statements.fetch_add(3, Ordering::Relaxed);
    let next_xid = client
        .query_one("SELECT txid_snapshot_xmax(txid_current_snapshot())", &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(0);
    let commits = client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0);
    let rows = client
        .query_one(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 FROM pg_stat_user_tables
              WHERE relname IN ('sessions', 'kernels', 'agents')",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0);
    (commits, rows, next_xid)
}

/// What the cluster writes with no session at all: heartbeats, the scheduler's and
/// reconciler's timers. Measured once before the runs, so a run can tell it apart.
struct IdleRates {
    writes_per_second: f64,
    commits_per_second: f64,
    /// CPU seconds per second (cores busy), by part.
    cores: CpuSplit,
}

async fn idle_rates(
    client: &tokio_postgres::Client,
    driver: &Driver,
    manager: &ManagerProcs,
) -> IdleRates {
    const WINDOW: Duration = Duration::from_secs(10);
    let own_before = driver.own_statements.load(Ordering::Relaxed);
    let (commits_before, _, xid_before) = database_counters(client, driver).await;
    let cpu_before = manager.cpu_split();
    let started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let cpu = manager.cpu_split().since(&cpu_before);
    let cpu_seconds = started.elapsed().as_secs_f64();
    // pg_stat counters are flushed by backends about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (commits_after, _, xid_after) = database_counters(client, driver).await;
    let own = driver.own_statements.load(Ordering::Relaxed) - own_before;
    let seconds = WINDOW.as_secs_f64() + 1.5;
    IdleRates {
        writes_per_second: (xid_after - xid_before) as f64 / seconds,
        commits_per_second: (commits_after - commits_before - own as i64) as f64 / seconds,
        cores: cpu.scaled(1.0 / cpu_seconds),
    }
}

async fn counters(
    client: &tokio_postgres::Client,
    driver: &Driver,
    manager: &ManagerProcs,
    wire: &WireCounts,
) -> Counters {
    let cpu = manager.cpu_split();
    let wire = wire.snapshot();
    let own = driver.own_statements.load(Ordering::Relaxed);
    let (commits, rows, next_xid) = database_counters(client, driver).await;
    Counters {
        cpu,
        wire,
        commits,
        rows,
        next_xid,
        own,
    }
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// create→RUNNING latencies (ms) of `phase`'s sessions, sorted; and how many never ran.
async fn running_latencies(
    client: &tokio_postgres::Client,
    driver: &Driver,
    phase: usize,
) -> (Vec<f64>, usize) {
    let created: HashMap<Uuid, f64> = driver.tracker().created[phase].iter().copied().collect();
    let ids: Vec<Uuid> = created.keys().copied().collect();
    driver.own_statements.fetch_add(1, Ordering::Relaxed);
    let rows = client
        .query(
            "SELECT id, extract(epoch FROM (status_history ->> 'RUNNING')::timestamptz)::float8
               FROM sessions WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("reading the sessions' status history");
    let mut latencies = Vec::with_capacity(rows.len());
    let mut never = 0;
    for row in rows {
        let id: Uuid = row.get(0);
        match (row.get::<_, Option<f64>>(1), created.get(&id)) {
            (Some(running), Some(due)) => latencies.push((running - due) * 1000.0),
            _ => never += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, never)
}

/// The session statuses in the order a session passes them.
const STAGES: [&str; 9] = [
    "PENDING",
    "SCHEDULED",
    "PREPARING",
    "PULLING",
    "PREPARED",
    "CREATING",
    "RUNNING",
    "TERMINATING",
    "TERMINATED",
];

/// Per stage of `phase`'s sessions, the time from the previous stage the session passed
/// (`status_history`, the manager's clock; PENDING from when the create was due): p50/p99 ms.
async fn stage_times(
    client: &tokio_postgres::Client,
    driver: &Driver,
    phase: usize,
) -> Vec<(&'static str, f64, f64, usize)> {
    let created: HashMap<Uuid, f64> = driver.tracker().created[phase].iter().copied().collect();
    let ids: Vec<Uuid> = created.keys().copied().collect();
    driver.own_statements.fetch_add(1, Ordering::Relaxed);
    let rows = client
        .query(
            "SELECT id, status_history::text FROM sessions WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("reading the sessions' status history");
    let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    for row in rows {
        let id: Uuid = row.get(0);
        let text: Option<String> = row.get(1);
        let (Some(text), Some(due)) = (text, created.get(&id)) else {
            continue;
        };
        let Ok(history) = serde_json::from_str::<HashMap<String, String>>(&text) else {
            continue;
        };
        let mut previous = *due;
        for (index, stage) in STAGES.iter().enumerate() {
            let Some(at) = history
                .get(*stage)
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            else {
                continue;
            };
            let at = at.timestamp_micros() as f64 / 1e6;
            gaps[index].push((at - previous) * 1000.0);
            previous = at;
        }
    }
    STAGES
        .iter()
        .zip(gaps)
        .filter(|(_, gap)| !gap.is_empty())
        .map(|(stage, mut gap)| {
            gap.sort_by(f64::total_cmp);
            (
                *stage,
                percentile(&gap, 0.5),
                percentile(&gap, 0.99),
                gap.len(),
            )
        })
        .collect()
}

/// Peak RSS of each worker, sampled while a run goes on.
async fn sample_rss(workers: Vec<u32>, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut peaks = vec![0.0f64; workers.len()];
    while !stop.load(Ordering::Relaxed) {
        for (peak, &worker) in peaks.iter_mut().zip(&workers) {
            *peak = peak.max(rss_mib(worker));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peaks
}

struct RunSpec {
    label: String,
    rate: Option<u64>,
    seconds: u64,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    spec: &RunSpec,
    knobs: &Knobs,
    driver: &Arc<Driver>,
    observer: &tokio_postgres::Client,
    manager: &ManagerProcs,
    wire: &WireCounts,
    idle: &IdleRates,
) {
    let phase = driver.begin_phase();
    let log_offset = std::fs::metadata(&manager.log).map_or(0, |m| m.len());
    let before = counters(observer, driver, manager, wire).await;
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss = tokio::spawn(sample_rss(manager.workers.clone(), Arc::clone(&rss_stop)));
    let started = Instant::now();
    match spec.rate {
        None => closed_loop(driver, phase, knobs.connections, spec.seconds).await,
        Some(rate) => fixed_rate(driver, phase, rate, knobs.connections, spec.seconds).await,
    }
    let window_end = started + Duration::from_secs(spec.seconds);
    let creating = started.elapsed();
    let drained = drain(driver, Duration::from_secs(120)).await;
    let cycle = started.elapsed();
    let cpu_wire_after = (manager.cpu_split(), wire.snapshot());
    rss_stop.store(true, Ordering::Relaxed);
    let peaks = rss.await.unwrap_or_default();
    // pg_stat counters are flushed by backends about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let own_after = driver.own_statements.load(Ordering::Relaxed);
    let (commits_after, rows_after, next_xid_after) = database_counters(observer, driver).await;

    let second_half = started + Duration::from_secs_f64(spec.seconds as f64 / 2.0);
    let (created, ended_in_window, ended_in_second_half, ended, statuses) = {
        let tracker = driver.tracker();
        let ended = &tracker.ended[phase];
        let mut statuses: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, status) in ended {
            *statuses.entry(status.as_str()).or_default() += 1;
        }
        let statuses = format!("{statuses:?}");
        (
            tracker.created[phase].len(),
            ended.iter().filter(|(at, _)| *at <= window_end).count(),
            ended
                .iter()
                .filter(|(at, _)| *at > second_half && *at <= window_end)
                .count(),
            ended.len(),
            statuses,
        )
    };
    let (latencies, never_ran) = running_latencies(observer, driver, phase).await;
    let mut destroy_latencies: Vec<f64> = driver
        .tracker()
        .destroy_latencies
        .iter()
        .filter(|(at, _)| *at >= started && *at <= window_end)
        .map(|(_, took)| *took)
        .collect();
    destroy_latencies.sort_by(f64::total_cmp);
    let sessions = created.max(1) as f64;
    let statements = cpu_wire_after.1.since(&before.wire);
    let own = (own_after - before.own) as i64;
    let commits = commits_after - before.commits - own;
    println!("{}", spec.label);
    println!(
        "  created                      {created} in {:.1} s ({:.0}/s offered){}",
        creating.as_secs_f64(),
        created as f64 / creating.as_secs_f64(),
        if drained {
            String::new()
        } else {
            format!(
                "; NOT DRAINED: {} still in flight",
                driver.in_flight_count()
            )
        }
    );
    println!(
        "  sessions/s, whole cycle      {:.0} TERMINATED within the {} s window ({:.0} in its second half, past the ramp-up); all {ended} ended {statuses} {:.1} s after the first create",
        ended_in_window as f64 / spec.seconds as f64,
        spec.seconds,
        ended_in_second_half as f64 / (spec.seconds as f64 / 2.0),
        cycle.as_secs_f64()
    );
    println!(
        "  create→RUNNING p50 / p99     {:.1} / {:.1} ms (max {:.1} ms; {never_ran} never RUNNING)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  DELETE reply p50 / p99       {:.1} / {:.1} ms (max {:.1} ms; {} in the window)",
        percentile(&destroy_latencies, 0.5),
        percentile(&destroy_latencies, 0.99),
        destroy_latencies.last().copied().unwrap_or(f64::NAN),
        destroy_latencies.len()
    );
    for (stage, p50, p99, count) in stage_times(observer, driver, phase).await {
        println!(
            "    → {stage:<11} p50 / p99 {p50:>8.1} / {p99:>8.1} ms after the previous stage ({count})"
        );
    }
    let passes = pass_log(&manager.log, log_offset);
    if !passes.load.is_empty() {
        println!(
            "  scheduling passes            {} ({:.1} sessions placed per pass); load / plan / write p50 {:.0} / {:.0} / {:.0} ms, p99 {:.0} / {:.0} / {:.0} ms",
            passes.load.len(),
            passes.placed as f64 / passes.load.len() as f64,
            percentile(&passes.load, 0.5),
            percentile(&passes.plan, 0.5),
            percentile(&passes.write, 0.5),
            percentile(&passes.load, 0.99),
            percentile(&passes.plan, 0.99),
            percentile(&passes.write, 0.99),
        );
    }
    let cpu = cpu_wire_after.0.since(&before.cpu);
    println!(
        "  manager CPU per session      {:.0} µs ({:.2} cores over the cycle)",
        cpu.manager / sessions * 1e6,
        cpu.manager / cycle.as_secs_f64()
    );
    let per_session = |seconds: f64| seconds / sessions * 1e6;
    println!(
        "  machine CPU per session      {:.0} µs ({:.2} of {} cores busy over the cycle): manager {:.0}, PostgreSQL {:.0}, Redis and etcd {:.0}, simulated agents {:.0}, this program {:.0}, other processes {:.0}",
        per_session(cpu.machine),
        cpu.machine / cycle.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        per_session(cpu.manager),
        per_session(cpu.postgres),
        per_session(cpu.redis_etcd),
        per_session(cpu.simulators),
        per_session(cpu.bench),
        per_session(
            cpu.machine - cpu.manager - cpu.postgres - cpu.redis_etcd - cpu.simulators - cpu.bench
        ),
    );
    println!(
        "  peak RSS per worker          {}",
        peaks
            .iter()
            .map(|mib| format!("{mib:.1} MiB"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if knobs.count_statements {
        println!(
            "  statements per session       {:.2} ({:.2} round trips, {:.2} parses)",
            statements.statements() as f64 / sessions,
            statements.round_trips() as f64 / sessions,
            statements.parses as f64 / sessions,
        );
    }
    println!(
        "  commits per session          {:.2} (PostgreSQL xact_commit, {commits} in all, heartbeats included)",
        commits as f64 / sessions
    );
    let writes = (next_xid_after - before.next_xid) as f64;
    let background_writes = idle.writes_per_second * cycle.as_secs_f64();
    println!(
        "  write transactions per sess. {:.2} (transaction ids handed out: the commits that write); {:.2} without the idle cluster's {:.1}/s over the cycle",
        writes / sessions,
        (writes - background_writes).max(0.0) / sessions,
        idle.writes_per_second
    );
    println!(
        "  rows written per session     {:.2} (sessions, kernels, agents)",
        (rows_after - before.rows) as f64 / sessions
    );
}

// ---------------------------------------------------------------------------------------------
// Set-up and the end-of-run checks.

async fn prepare_world(env: &TestEnv, history: u64) -> tokio_postgres::Client {
    env.load_example_fixtures().await;
    let client = env.db.connect().await;
    client
        .batch_execute(&format!(
            "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,
                max_concurrent_sessions, max_containers_per_session)
             VALUES ('e2e-bench', 'UNLIMITED', '{{}}', 0, 8);
             UPDATE keypairs SET resource_policy = 'e2e-bench';
             INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                                 size_bytes, labels, resources)
             VALUES ('{IMAGE}', 'testing', 'testing/python', '3.9-ubuntu20.04', 'cr.backend.ai',
                     'x86_64', 'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340',
                     938, '{{\"ai.backend.kernelspec\": \"1\", \"ai.backend.features\": \"batch query uid-match user-input\",
                       \"ai.backend.runtime-type\": \"python\", \"ai.backend.runtime-path\": \"/usr/bin/python3\"}}',
                     '{{\"cpu\": {{\"min\": \"1\"}}, \"mem\": {{\"min\": \"256m\"}}}}');
             UPDATE domains SET allowed_docker_registries = array_append(allowed_docker_registries, 'cr.backend.ai')
              WHERE name = 'default';"
        ))
        .await
        .expect("preparing the bench world");
    raise_admin_rate_limit(&client).await;
    seed_history(&client, history).await;
    client
}

/// `count` sessions of the past, TERMINATED, each with its kernel, owned by the keypairs of the
/// fixtures (most by the admin, who runs the bench's sessions), then `ANALYZE`: a cluster in
/// service has a history and fresh planner statistics, and the lookups by name must be measured
/// against both (with tables that start empty, every plan is a scan of a table that grows).
async fn seed_history(client: &tokio_postgres::Client, count: u64) {
    if count == 0 {
        return;
    }
    client
        .batch_execute(&format!(
            "CREATE TEMP TABLE history AS
             SELECT gen_random_uuid() AS id, 'past-' || n AS name, k.access_key, u.uuid AS user_uuid,
                    u.domain_name, g.group_id, now() - n * interval '1 minute' AS created_at
               FROM generate_series(1, {count}) n
               JOIN LATERAL (SELECT access_key, user_id FROM keypairs WHERE is_active
                              ORDER BY (access_key = '{ADMIN_ACCESS_KEY}') = (n % 4 <> 0) DESC, access_key
                              LIMIT 1) k ON true
               JOIN users u ON u.email = k.user_id
               JOIN LATERAL (SELECT group_id FROM association_groups_users a
                              WHERE a.user_id = u.uuid ORDER BY group_id LIMIT 1) g ON true;
             INSERT INTO sessions (id, name, domain_name, group_id, user_uuid, access_key, status,
                                   status_info, created_at, terminated_at, status_history)
             SELECT id, name, domain_name, group_id, user_uuid, access_key, 'TERMINATED',
                    'user-requested', created_at, created_at + interval '30 seconds',
                    jsonb_build_object('PENDING', created_at::text, 'TERMINATED',
                                       (created_at + interval '30 seconds')::text)
               FROM history;
             INSERT INTO kernels (id, session_id, session_name, cluster_hostname, domain_name,
                                  group_id, user_uuid, access_key, image, status, status_info,
                                  created_at, terminated_at)
             SELECT gen_random_uuid(), id, name, 'main1', domain_name, group_id, user_uuid,
                    access_key, '{IMAGE}', 'TERMINATED', 'user-requested', created_at,
                    created_at + interval '30 seconds'
               FROM history;
             DROP TABLE history;
             ANALYZE;"
        ))
        .await
        .expect("seeding the sessions of the past");
}

/// Starts the manager with its database connections through `db_port`.
fn start_manager(env: &TestEnv, knobs: &Knobs, db_port: u16) -> ServiceProcess {
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config).expect("reading manager.toml");
    let text = text
        .replace(
            &format!("port = {} }}", env.db.port),
            &format!("port = {db_port} }}"),
        )
        .replace("num-proc = 1", &format!("num-proc = {}", knobs.num_proc));
    let text = if knobs.statement_profile {
        text
    } else {
        text.replace("level = \"INFO\"", "level = \"WARNING\"")
    };
    std::fs::write(&config, text).expect("writing manager.toml");
    let binary = std::env::var("BENCH_MANAGER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bai-manager").to_owned());
    let mut command = Command::new(binary);
    command.arg("-f").arg(&config).arg("start-server");
    // For profilers that need the manager's environment (a heap profiler's preload library).
    if let Ok(extra) = std::env::var("BENCH_MANAGER_ENV") {
        for (name, value) in extra.split(';').filter_map(|pair| pair.split_once('=')) {
            command.env(name, value);
        }
    }
    let mut manager = ServiceProcess::spawn(
        "bai-manager",
        command,
        &env.path("manager.log"),
        libc::SIGTERM,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], env.service_port));
    manager.wait_for_port(addr, Duration::from_secs(60));
    manager
}

async fn count(client: &tokio_postgres::Client, query: &str) -> i64 {
    client
        .query_one(query, &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1)
}

async fn wait_for_agents(client: &tokio_postgres::Client, agents: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let alive = count(client, "SELECT count(*) FROM agents WHERE status = 'ALIVE'").await;
        if alive >= agents as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {alive} of {agents} agents ALIVE"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The end-of-run invariants; a description of every violation.
async fn invariant_violations(client: &tokio_postgres::Client, ledger: &SimLedger) -> Vec<String> {
    client
        .batch_execute("ANALYZE sessions; ANALYZE kernels; ANALYZE agents;")
        .await
        .expect("analyzing the tables");
    let mut violations = Vec::new();
    let over_committed = over_committed_agents(client).await;
    if !over_committed.is_empty() {
        violations.push(format!(
            "{} agents over-committed, e.g. {:?}",
            over_committed.len(),
            &over_committed[..over_committed.len().min(5)]
        ));
    }
    let not_terminated = count(
        client,
        "SELECT count(*) FROM sessions WHERE status <> 'TERMINATED'",
    )
    .await;
    if not_terminated != 0 {
        violations.push(format!("{not_terminated} sessions not TERMINATED"));
    }
    let kernels_alive = count(
        client,
        "SELECT count(*) FROM kernels WHERE status <> 'TERMINATED'",
    )
    .await;
    if kernels_alive != 0 {
        violations.push(format!("{kernels_alive} kernels not TERMINATED"));
    }
    let occupied = count(
        client,
        "SELECT count(*) FROM agents a
          WHERE EXISTS (SELECT 1 FROM jsonb_each_text(a.occupied_slots) o WHERE o.value::numeric <> 0)",
    )
    .await;
    if occupied != 0 {
        violations.push(format!("{occupied} agents with occupied slots left"));
    }
    let ran = count(
        client,
        "SELECT count(*) FROM kernels WHERE status_history ? 'RUNNING'",
    )
    .await;
    if ledger.created_twice != 0 {
        violations.push(format!(
            "{} kernels created more than once",
            ledger.created_twice
        ));
    }
    if ledger.kernels_created as i64 != ran {
        violations.push(format!(
            "the agents created {} kernels, the database has {ran} that ran",
            ledger.kernels_created
        ));
    }
    violations
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if let Ok(spec) = std::env::var(SIMULATOR_ENV) {
        simulator_main(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let knobs = Knobs::from_env();
    if knobs.statement_profile {
        // SAFETY: no other thread runs yet (the runtime is built below).
        unsafe { std::env::set_var(bai_testkit::postgres::PG_STAT_STATEMENTS_ENV, "1") };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench(knobs));
}

async fn bench(knobs: Knobs) {
    let load_before = load_average();
    let env = TestEnv::new().await;
    let observer = prepare_world(&env, knobs.history).await;
    let (relay_port, wire) = pg_wire_counter::start(format!("{}:{}", env.db.host, env.db.port))
        .await
        .expect("starting the PostgreSQL relay");
    wire.record_texts
        .store(knobs.statement_profile, Ordering::Relaxed);
    let db_port = if knobs.count_statements {
        relay_port
    } else {
        env.db.port
    };
    let manager = start_manager(&env, &knobs, db_port);
    let supervisor = manager.pid();
    let mut workers = children_of(supervisor);
    while workers.len() < knobs.num_proc as usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
        workers = children_of(supervisor);
    }
    let mut procs = ManagerProcs {
        log: env.path("manager.log"),
        supervisor,
        workers,
        simulators: Vec::new(),
        postmaster: postmaster_of(&observer).await,
        redis_etcd: [
            env.redis.addr(),
            env.etcd_endpoint.trim_start_matches("http://").to_owned(),
        ]
        .iter()
        .flat_map(|addr| pids_with_cmdline(addr))
        .filter(|&pid| pid != std::process::id())
        .collect(),
    };
    // Let the workers create the consumer group before the first event.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let redis = env.redis.addr();
    let mut simulators = Vec::new();
    let mut first = 0;
    while first < knobs.agents {
        let count = knobs.per_simulator.min(knobs.agents - first);
        let (simulator, failed) = Simulator::start(&redis, first, count);
        assert_eq!(
            failed, 0,
            "{failed} simulated agents could not bind their RPC port (BENCH_PORT_BASE={})",
            knobs.port_base
        );
        procs.simulators.push(simulator.child.id());
        simulators.push(simulator);
        first += count;
    }
    let setup = Instant::now();
    wait_for_agents(&observer, knobs.agents).await;
    println!(
        "session_e2e: {} agents ({} format, {} cpu / {} GiB{} each, heartbeat every {} s, {} simulator processes), {} worker(s), sessions of 1 cpu / 512 MiB",
        knobs.agents,
        knobs.format_name(),
        knobs.agent_cpus,
        knobs.agent_mem_gib,
        match (knobs.format, knobs.agent_images) {
            (WireFormat::Args, images) if images > 0 => format!(" / {images} images"),
            _ => String::new(),
        },
        knobs.heartbeat_seconds,
        simulators.len(),
        knobs.num_proc
    );
    println!(
        "  agents ALIVE after           {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let (destroys, destroy_queue) = mpsc::unbounded_channel();
    let driver = Arc::new(Driver {
        target: Arc::new(Target::admin(SocketAddr::from((
            [127, 0, 0, 1],
            env.service_port,
        )))),
        tracker: std::sync::Mutex::new(Tracker::default()),
        in_flight: Arc::new(Semaphore::new(knobs.in_flight)),
        destroys,
        next_name: AtomicU64::new(0),
        own_statements: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let destroy_queue = Arc::new(AsyncMutex::new(destroy_queue));
    let destroyers: Vec<_> = (0..knobs.connections)
        .map(|_| tokio::spawn(destroyer(Arc::clone(&driver), Arc::clone(&destroy_queue))))
        .collect();
    let watcher = tokio::spawn(watcher(Arc::clone(&driver), env.db.connect().await));

    let warmup = driver.begin_phase();
    closed_loop(&driver, warmup, knobs.connections, knobs.warmup).await;
    if !drain(&driver, Duration::from_secs(120)).await {
        report_stuck(&observer, &driver.live_ids()).await;
        // The test world's directory goes with it; the log stays for a look.
        let kept = std::env::temp_dir().join("session_e2e-manager.log");
        let _ = std::fs::copy(env.path("manager.log"), &kept);
        panic!(
            "the warm-up sessions did not end: {} in flight (manager log: {})",
            driver.in_flight_count(),
            kept.display()
        );
    }
    let idle = idle_rates(&observer, &driver, &procs).await;
    println!(
        "  idle cluster (no sessions)   {:.1} write transactions/s, {:.1} commits/s (heartbeats, timers)",
        idle.writes_per_second, idle.commits_per_second
    );
    let cores = &idle.cores;
    println!(
        "  idle cluster's cores busy    {:.2} of {}: manager {:.2}, PostgreSQL {:.2}, Redis and etcd {:.2}, simulated agents {:.2}, this program {:.2}, other processes {:.2}",
        cores.machine,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cores.manager,
        cores.postgres,
        cores.redis_etcd,
        cores.simulators,
        cores.bench,
        cores.machine
            - cores.manager
            - cores.postgres
            - cores.redis_etcd
            - cores.simulators
            - cores.bench
    );
    let mut runs = vec![RunSpec {
        label: format!(
            "sustained, {} sessions in the cycle, {} s",
            knobs.in_flight, knobs.seconds
        ),
        rate: None,
        seconds: knobs.seconds,
    }];
    for &rate in &knobs.rates {
        runs.push(RunSpec {
            label: format!("fixed {rate} sessions/s, {} s", knobs.rate_seconds),
            rate: Some(rate),
            seconds: knobs.rate_seconds,
        });
    }
    for spec in &runs {
        run(spec, &knobs, &driver, &observer, &procs, &wire, &idle).await;
    }

    driver.stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    for destroyer in destroyers {
        destroyer.abort();
    }
    let (create_failures, destroy_failures) = {
        let tracker = driver.tracker();
        (
            tracker.create_failures.clone(),
            tracker.destroy_failures.clone(),
        )
    };
    let mut ledger = SimLedger::default();
    for simulator in simulators {
        let one = simulator.finish();
        ledger.kernels_created += one.kernels_created;
        ledger.created_twice += one.created_twice;
        ledger.kernels_destroyed += one.kernels_destroyed;
        ledger.create_calls += one.create_calls;
    }
    let violations = invariant_violations(&observer, &ledger).await;
    if knobs.statement_profile {
        let sessions = driver.next_name.load(Ordering::Relaxed).max(1) as f64;
        println!("statements the manager parsed, per session (all runs and the warm-up):");
        for (text, count) in wire.top_texts().into_iter().take(30) {
            println!("  {:>6.2}  {text}", count as f64 / sessions);
        }
        println!("statements the manager executed, per session (all runs and the warm-up):");
        for (text, count) in wire.top_executed_texts().into_iter().take(40) {
            println!("  {:>6.2}  {text}", count as f64 / sessions);
        }
        print_postgres_time(&observer, sessions).await;
    }
    println!(
        "  failed creates / destroys    {create_failures:?} / {destroy_failures:?} (by HTTP status; 0 = connection)"
    );
    println!(
        "  simulators' ledger           {} kernels created ({} create_kernels calls), {} destroyed, {} created twice",
        ledger.kernels_created, ledger.create_calls, ledger.kernels_destroyed, ledger.created_twice
    );
    println!(
        "  invariants (SQL)             {}",
        if violations.is_empty() {
            "no over-commit, every session TERMINATED and created once, every agent's slots back to zero".to_owned()
        } else {
            violations.join("; ")
        }
    );
    println!(
        "  kernel_terminated lost       {} (ended by the reconciler after asking the agent; from the manager log)",
        lost_terminations(&env.path("manager.log"))
    );
    println!(
        "  load average before / after  {load_before} / {}",
        load_average()
    );
    drop(manager);
    assert!(violations.is_empty(), "invariants violated: {violations:?}");
}
