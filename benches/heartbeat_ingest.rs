//! Heartbeat ingest: N simulated agents (default 10,000) heartbeat once per second into ONE
//! `bai-manager` worker (`num-proc = 1`), on a private PostgreSQL/Redis/etcd stack.
//!
//!     cargo bench --bench heartbeat_ingest            # BENCH_AGENTS, BENCH_SECONDS, BENCH_WARMUP
//!
//! After a warm-up (every agent's first heartbeat inserts its row), it measures for
//! BENCH_SECONDS: the worker's CPU (utime+stime from /proc, in cores), its peak RSS, the
//! database's commits per second (pg_stat_database.xact_commit, minus this program's own
//! reads), rows rewritten in `agents`, and the event lag: sampled every 100 ms as the age of the
//! oldest entry the worker's group has not yet acknowledged (0 when caught up); p50/p99/max.
//! The simulator runs in this process on the same 2 cores, so the figures are pessimistic.
//!
//! Measured 2026-11-28 on the 2-core dev machine (load average ~7 from other builds):
//! 10,000 agents, worker CPU 0.14 cores, peak RSS 50.6 MiB, event lag p50/p99/max
//! 4/36/48 ms, 0 `agents` rows written and 0.13 commits/s (4 in 30 s, none from heartbeats).

// Tests and benches read rows with `Row::get`: a drifted schema fails them loudly, which is
// what a test should do (the non-test code may not; see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

#[path = "support/proc_stats.rs"]
mod proc_stats;

use bai_actors::wire::WireFormat;
use bai_agent_sim::{StreamWriter, fleet, run_heartbeats};
use bai_testkit::TestEnv;
use proc_stats::{children_of, cpu_seconds, rss_mib};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn stream_id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The age (ms) of the oldest entry the group `manager` has not acknowledged.
async fn oldest_unhandled_age_ms(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("events")
        .arg("manager")
        .query_async(redis)
        .await
        .unwrap_or(redis::Value::Nil);
    let mut oldest: Option<u64> = match &pending {
        redis::Value::Array(parts) => match parts.get(1) {
            Some(redis::Value::BulkString(id)) => stream_id_ms(&String::from_utf8_lossy(id)),
            _ => None,
        },
        _ => None,
    };
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("events")
        .query_async(redis)
        .await
        .unwrap_or_default();
    let delivered = groups
        .iter()
        .find(|group| {
            matches!(group.get("name"), Some(redis::Value::BulkString(name)) if name == b"manager")
        })
        .and_then(|group| match group.get("last-delivered-id") {
            Some(redis::Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
            _ => None,
        });
    if let Some(delivered) = delivered {
        let next: redis::Value = redis::cmd("XRANGE")
            .arg("events")
            .arg(format!("({delivered}"))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(redis)
            .await
            .unwrap_or(redis::Value::Nil);
        if let redis::Value::Array(entries) = next
            && let Some(redis::Value::Array(entry)) = entries.first()
            && let Some(redis::Value::BulkString(id)) = entry.first()
            && let Some(ms) = stream_id_ms(&String::from_utf8_lossy(id))
        {
            oldest = Some(oldest.map_or(ms, |pending| pending.min(ms)));
        }
    }
    oldest.map_or(0, |ms| now_ms().saturating_sub(ms))
}

async fn xact_commits(env: &TestEnv) -> i64 {
    env.db
        .connect()
        .await
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0)
}

async fn agent_row_writes(env: &TestEnv) -> i64 {
    env.db
        .connect()
        .await
        .query_one(
            "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'agents'",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let agents_count = env_number("BENCH_AGENTS", 10_000) as usize;
    let seconds = env_number("BENCH_SECONDS", 30);
    let warmup = env_number("BENCH_WARMUP", 15);
    let env = TestEnv::new().await;
    env.db
        .connect()
        .await
        .execute(
            "INSERT INTO scaling_groups (name, driver, scheduler) VALUES ('default', 'static', 'fifo')",
            &[],
        )
        .await
        .expect("creating the default scaling group");
    let config = env.manager_toml("");
    let log_path = env.path("manager.out");
    let log = std::fs::File::create(&log_path).expect("manager output file");
    let mut manager = std::process::Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .arg("-f")
        .arg(&config)
        .arg("start-server")
        .stdout(log.try_clone().expect("file handle"))
        .stderr(log)
        .spawn()
        .expect("starting bai-manager");
    let worker = loop {
        if let Some(pid) = children_of(manager.id()).first() {
            break *pid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the worker create the consumer group before the first heartbeat.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let agents = fleet("i-bench-", agents_count, WireFormat::Args, 20000);
    let mut writer = StreamWriter::connect(&env.redis.addr())
        .await
        .expect("redis");
    let sim_agents = agents.clone();
    let total_rounds = warmup + seconds + 1;
    let simulator = tokio::spawn(async move {
        run_heartbeats(
            &mut writer,
            &sim_agents,
            Duration::from_secs(1),
            50,
            total_rounds,
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    let mut redis = env.redis.connection(4).await;
    let commits_before = xact_commits(&env).await;
    let rows_before = agent_row_writes(&env).await;
    let cpu_before = cpu_seconds(worker);
    let started = Instant::now();
    let mut lags = Vec::new();
    let mut peak_rss: f64 = 0.0;
    while started.elapsed() < Duration::from_secs(seconds) {
        lags.push(oldest_unhandled_age_ms(&mut redis).await);
        peak_rss = peak_rss.max(rss_mib(worker));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(worker) - cpu_before) / elapsed;
    // pg_stat counters are flushed by backends about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // This program's own statements in the window: agent_row_writes and this read.
    let own_statements = 2;
    let commits = xact_commits(&env).await - commits_before - own_statements;
    let rows = agent_row_writes(&env).await - rows_before;
    let sent = simulator.await.ok().and_then(Result::ok).unwrap_or(0);
    lags.sort_unstable();
    let agents_rows: i64 = env
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM agents WHERE status = 'ALIVE'", &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(0);
    println!(
        "heartbeat_ingest: {agents_count} agents x 1 heartbeat/s into one worker, measured {elapsed:.0} s after {warmup} s warm-up"
    );
    println!("  heartbeats sent in total     {sent}");
    println!("  agents ALIVE in the table    {agents_rows}");
    println!("  worker CPU                   {cpu:.2} cores");
    println!("  worker peak RSS              {peak_rss:.1} MiB");
    println!(
        "  event lag p50 / p99 / max    {} / {} / {} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0)
    );
    println!(
        "  PostgreSQL commits/s         {:.2} ({commits} in the window)",
        commits as f64 / elapsed
    );
    println!("  agents rows written          {rows}");
    let _ = manager.kill();
    let _ = manager.wait();
}
