//! Scheduler throughput: a backlog of PENDING sessions (default 100,000) drained onto simulated
//! agents (default 10,000) by the scheduler's own pass, on a private PostgreSQL/Redis/etcd stack.
//!
//!     cargo bench --bench sched_throughput
//!
//! Knobs (environment): BENCH_SESSIONS (100000), BENCH_AGENTS (10000), BENCH_AGENT_CPUS (16),
//! BENCH_AGENT_MEM_GIB (64), BENCH_SESSION_CPUS (1), BENCH_SESSION_MEM_GIB (2), BENCH_LOCK
//! (`pg_advisory`, or `etcd`, `filelock`), BENCH_COUNT_STATEMENTS (1; 0 connects the scheduler
//! straight to PostgreSQL, without the counting relay and its small cost).
//!
//! What runs, and what is measured:
//! * The agents are the simulator's (`bai_agent_sim::fleet`, 26.x agents with BENCH_AGENT_CPUS
//!   cpus and BENCH_AGENT_MEM_GIB GiB), registered with the heartbeat tracker's own first-contact
//!   insert (`heartbeat::store::insert_new_agents`, the rows a first heartbeat writes).
//! * The sessions are single-kernel INTERACTIVE sessions of the example fixtures' admin and user
//!   keypairs (alternating blocks of 10,000), written to `sessions`/`kernels` as `POST /session`
//!   stores them, 1 ms apart, then ANALYZEd (as autovacuum would).
//! * The scheduler is the worker's code in this process: the scheduling lock from the configured
//!   backend (its fencing token is checked in every transaction), then consecutive
//!   `scheduler::pass::run_pass` calls (snapshot, placement, reservation, outcomes), each reading
//!   at most `MAX_PENDING_PER_PASS` sessions, until a pass leaves nothing to do, exactly as the
//!   worker's `locked_pass` loop. Dispatch (`create_kernels` to agents) is NOT included: the
//!   figure is PENDING → SCHEDULED reservations committed.
//! * Placements/s = sessions SCHEDULED / wall time from asking for the lock to the end of the
//!   last pass. Per pass: its duration (load + plan + write), sessions scheduled, transactions
//!   (PostgreSQL's `xact_commit` delta, which counts each auto-commit statement as one), and the
//!   statements and round trips the scheduler's connection sent (counted by a relay in front of
//!   PostgreSQL).
//! * At the end, in SQL: no agent over-committed (occupied ≤ available per slot, and the sum of
//!   its kernels' slots ≤ available), every session SCHEDULED exactly once with its kernel, and
//!   every agent's `occupied_slots` equal to the sum of its kernels.
//!
//! Measured 2026-11-28 on the 2-core dev machine (release, load average 2.3 rising to 3.8 from
//! other builds): 100,000 sessions onto 10,000 agents, 6,998 placements/s (14.3 s), 5 passes of
//! 20,000 sessions plus one empty, pass p50/max 2.64/2.90 s (load 0.68 / plan 0.20 / write
//! 1.76 s on average), 21 transactions and 175 statements per pass, over-commit none.
//! After the hot-path changes of migration 0003 and `scheduler::{load,reserve}` (pending queue
//! index, agents' fillfactor, usage per request shape, reservation batches grouped by agent),
//! same machine, load average 2.1-2.6: 9,532 and 8,628 placements/s in two consecutive runs
//! (10.5 / 11.6 s), pass p50/max 2.02/2.23 s and 2.12/2.58 s (load 0.30 / plan 0.21 / write
//! 1.52 s on average), 20 transactions and 175 statements per pass, over-commit none.

// Tests and benches read rows with `Row::get`: a drifted schema fails them loudly, which is
// what a test should do (the non-test code may not; see clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "support/pg_wire_counter.rs"]
mod pg_wire_counter;

use std::time::{Duration, Instant};

use bai_actors::heartbeat::store::insert_new_agents;
use bai_actors::lock::{LockBackendKind, LockId, LockService, LockSettings};
use bai_actors::scheduler::actor::MAX_PENDING_PER_PASS;
use bai_actors::scheduler::load::{LoadOptions, SharedAgentCache};
use bai_actors::scheduler::pass::run_pass;
use bai_actors::scheduler::reserve::Admission;
use bai_actors::scheduler::snapshot::default_resource_priority;
use bai_actors::wire::WireFormat;
use bai_agent_sim::fleet;
use bai_schema::{DbSettings, SlotAmount, SlotUnit};
use bai_testkit::TestEnv;
use bai_testkit::scheduling::over_committed_agents;

use pg_wire_counter::WireSnapshot;

/// The example fixtures' project (`default` group) and keypairs.
const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const KEYPAIRS: [&str; 2] = ["AKIAIOSFODNN7EXAMPLE", "AKIANABBDUSEREXAMPLE"];
/// Sessions per enqueue statement (and per keypair block).
const ENQUEUE_CHUNK: usize = 10_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

struct Knobs {
    sessions: usize,
    agents: usize,
    agent_cpus: u64,
    agent_mem_gib: u64,
    session_cpus: u64,
    session_mem_gib: u64,
    lock: LockBackendKind,
    count_statements: bool,
}

impl Knobs {
    fn from_env() -> Knobs {
        let lock = std::env::var("BENCH_LOCK").unwrap_or_else(|_| "pg_advisory".to_owned());
        Knobs {
            sessions: env_number("BENCH_SESSIONS", 100_000) as usize,
            agents: env_number("BENCH_AGENTS", 10_000) as usize,
            agent_cpus: env_number("BENCH_AGENT_CPUS", 16),
            agent_mem_gib: env_number("BENCH_AGENT_MEM_GIB", 64),
            session_cpus: env_number("BENCH_SESSION_CPUS", 1),
            session_mem_gib: env_number("BENCH_SESSION_MEM_GIB", 2),
            lock: LockBackendKind::parse(&lock)
                .unwrap_or_else(|e| panic!("BENCH_LOCK={lock:?}: {e}")),
            count_statements: env_number("BENCH_COUNT_STATEMENTS", 1) != 0,
        }
    }
}

fn db_settings(env: &TestEnv, port: u16) -> DbSettings {
    DbSettings {
        host: env.db.host.clone(),
        port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 4,
    }
}

/// The example fixtures with every keypair on an unlimited policy.
async fn scheduling_world(env: &TestEnv) {
    env.load_example_fixtures().await;
    env.db
        .connect()
        .await
        .batch_execute(
            "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,
                max_concurrent_sessions, max_containers_per_session)
             VALUES ('sched-bench', 'UNLIMITED', '{}', 0, 8);
             UPDATE keypairs SET resource_policy = 'sched-bench';",
        )
        .await
        .expect("setting up an unlimited policy");
}

async fn register_agents(env: &TestEnv, knobs: &Knobs) {
    let agents: Vec<_> = fleet("i-bench-", knobs.agents, WireFormat::Payload, 20_000)
        .into_iter()
        .map(|agent| {
            agent
                .with_slot(
                    "cpu",
                    SlotUnit::Count,
                    SlotAmount::from(knobs.agent_cpus as i64),
                )
                .with_slot(
                    "mem",
                    SlotUnit::Bytes,
                    SlotAmount::from((knobs.agent_mem_gib << 30) as i64),
                )
        })
        .collect();
    let pool = db_settings(env, env.db.port)
        .connect_pool()
        .await
        .expect("a pool to the bench database");
    let rows: Vec<(&str, &bai_actors::wire::AgentInfo)> = agents
        .iter()
        .map(|agent| (agent.id.as_str(), &agent.info))
        .collect();
    let inserted = insert_new_agents(&pool, &rows)
        .await
        .expect("registering the agents");
    assert_eq!(inserted.len(), knobs.agents, "every agent registered");
}

/// Enqueues single-kernel PENDING sessions as `POST /session` stores them, `ENQUEUE_CHUNK` per
/// statement, created 1 ms apart.
async fn enqueue_sessions(client: &tokio_postgres::Client, knobs: &Knobs) {
    let slots = serde_json::json!({
        "cpu": knobs.session_cpus.to_string(),
        "mem": (knobs.session_mem_gib << 30).to_string(),
    });
    let group: uuid::Uuid = DEFAULT_GROUP.parse().expect("group id");
    let mut offset = 0usize;
    while offset < knobs.sessions {
        let count = ENQUEUE_CHUNK.min(knobs.sessions - offset);
        let access_key = KEYPAIRS[(offset / ENQUEUE_CHUNK) % KEYPAIRS.len()];
        let ids: Vec<uuid::Uuid> = (0..count).map(|_| uuid::Uuid::new_v4()).collect();
        client
            .execute(
                "WITH owner AS (SELECT \"user\" AS uuid FROM keypairs WHERE access_key = $2),
                      new AS (SELECT id, ordinality FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ordinality)),
                      s AS (
                    INSERT INTO sessions (id, creation_id, name, session_type, cluster_mode, cluster_size,
                        scaling_group_name, target_sgroup_names, domain_name, group_id, user_uuid, access_key,
                        images, requested_slots, created_at, status, status_history)
                    SELECT new.id, left(replace(new.id::text, '-', ''), 22), 'bench-' || ($5 + new.ordinality),
                           'INTERACTIVE', 'single-node', 1, 'default', ARRAY['default']::varchar[], 'default',
                           $4, owner.uuid, $2, ARRAY['cr.backend.ai/stable/python:3.9-ubuntu20.04']::varchar[],
                           $3, now() + ($5 + new.ordinality) * interval '1 millisecond', 'PENDING',
                           jsonb_build_object('PENDING', now())
                      FROM new, owner
                    RETURNING id, name, user_uuid, created_at)
                 INSERT INTO kernels (id, session_id, session_name, session_type, cluster_mode, cluster_size,
                     cluster_role, cluster_idx, local_rank, cluster_hostname, scaling_group, domain_name,
                     group_id, user_uuid, access_key, image, architecture, registry, tag, occupied_slots,
                     requested_slots, created_at, status, status_history)
                 SELECT gen_random_uuid(), s.id, s.name, 'INTERACTIVE', 'single-node', 1, 'main', 1, 0, 'main1',
                        'default', 'default', $4, s.user_uuid, $2,
                        'cr.backend.ai/stable/python:3.9-ubuntu20.04', 'x86_64', 'cr.backend.ai',
                        '3.9-ubuntu20.04', $3, $3, s.created_at, 'PENDING', '{}'
                   FROM s",
                &[&ids, &access_key, &slots, &group, &(offset as i64)],
            )
            .await
            .expect("enqueueing sessions");
        offset += count;
    }
    client
        .batch_execute("ANALYZE sessions; ANALYZE kernels; ANALYZE agents;")
        .await
        .expect("analyzing the tables");
}

async fn xact_commits(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .unwrap_or(0)
}

/// One pass as the benchmark saw it.
struct PassFigures {
    duration: Duration,
    scheduled: usize,
    load: Duration,
    plan: Duration,
    write: Duration,
    reported_transactions: usize,
    wire: WireSnapshot,
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn load_options(agent_cache: &SharedAgentCache) -> LoadOptions {
    LoadOptions {
        now: chrono::Utc::now(),
        known_slots: bai_schema::slots::intrinsic_slot_types(),
        resource_priority: default_resource_priority(),
        max_container_count: None,
        roundrobin: Default::default(),
        max_pending: MAX_PENDING_PER_PASS,
        agent_cache: Some(std::sync::Arc::clone(agent_cache)),
    }
}

/// The checks that must hold after the drain; returns a description of every violation.
async fn invariant_violations(client: &tokio_postgres::Client) -> Vec<String> {
    // Fresh statistics, so the checks below are planned as joins over the drained tables (with
    // the statistics of the PENDING backlog, a per-agent subquery became a scan per agent).
    client
        .batch_execute("ANALYZE sessions; ANALYZE kernels; ANALYZE agents;")
        .await
        .expect("analyzing the drained tables");
    let mut violations = Vec::new();
    let over_committed = over_committed_agents(client).await;
    if !over_committed.is_empty() {
        violations.push(format!(
            "{} agents over-committed, e.g. {:?}",
            over_committed.len(),
            &over_committed[..over_committed.len().min(5)]
        ));
    }
    let inconsistent: i64 = client
        .query_one(
            "WITH placed AS (
                    SELECT agent, sum((occupied_slots ->> 'cpu')::numeric) AS cpu,
                           sum((occupied_slots ->> 'mem')::numeric) AS mem
                      FROM kernels WHERE status = 'SCHEDULED' AND agent IS NOT NULL GROUP BY agent)
             SELECT count(*) FROM agents a LEFT JOIN placed p ON p.agent = a.id
              WHERE coalesce((a.occupied_slots ->> 'cpu')::numeric, 0) <> coalesce(p.cpu, 0)
                 OR coalesce((a.occupied_slots ->> 'mem')::numeric, 0) <> coalesce(p.mem, 0)",
            &[],
        )
        .await
        .expect("checking agents against their kernels")
        .get(0);
    if inconsistent != 0 {
        violations.push(format!(
            "{inconsistent} agents' occupied_slots differ from the sum of their kernels"
        ));
    }
    let mismatched: i64 = client
        .query_one(
            "WITH on_agent AS (
                    SELECT k.session_id, count(*) AS kernels
                      FROM kernels k JOIN sessions s ON s.id = k.session_id
                     WHERE k.status = 'SCHEDULED' AND k.agent = ANY(s.agent_ids)
                     GROUP BY k.session_id)
             SELECT count(*) FROM sessions s LEFT JOIN on_agent o ON o.session_id = s.id
              WHERE s.status = 'SCHEDULED' AND coalesce(o.kernels, 0) <> 1",
            &[],
        )
        .await
        .expect("checking placements")
        .get(0);
    if mismatched != 0 {
        violations.push(format!(
            "{mismatched} SCHEDULED sessions without exactly one kernel on their agent"
        ));
    }
    violations
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let knobs = Knobs::from_env();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let env = TestEnv::new().await;
    scheduling_world(&env).await;
    let setup = Instant::now();
    register_agents(&env, &knobs).await;
    let observer = env.db.connect().await;
    enqueue_sessions(&observer, &knobs).await;
    let setup_time = setup.elapsed();

    // The scheduler's connection goes through the counting relay; the lock's does not.
    let (relay_port, wire) = pg_wire_counter::start(format!("{}:{}", env.db.host, env.db.port))
        .await
        .expect("starting the PostgreSQL relay");
    let direct = db_settings(&env, env.db.port);
    let lock_pool = direct.connect_pool().await.expect("lock pool");
    let etcd = match knobs.lock {
        LockBackendKind::Etcd => Some((env.etcd_client().await, env.namespace.clone())),
        _ => None,
    };
    let locks = LockService::new(
        LockSettings {
            backend: knobs.lock,
            manager_id: "sched-bench".to_owned(),
            ipc_base_path: env.path("ipc"),
            etcd,
            db: Some(direct.clone()),
            lifetime: bai_actors::lock::defaults::LIFETIME,
            acquire_timeout: bai_actors::lock::defaults::ACQUIRE_TIMEOUT,
        },
        lock_pool,
    );
    std::fs::create_dir_all(env.path("ipc")).expect("ipc dir");
    let scheduler_port = if knobs.count_statements {
        relay_port
    } else {
        env.db.port
    };
    let mut scheduler = db_settings(&env, scheduler_port)
        .connect_one()
        .await
        .expect("the scheduler's connection");

    let commits_before = xact_commits(&observer).await;
    let drain = Instant::now();
    let guard = locks
        .acquire(&LockId::Schedule.name(), None)
        .await
        .expect("taking the scheduling lock")
        .expect("the scheduling lock is free");
    let lock_time = drain.elapsed();
    let mut passes: Vec<PassFigures> = Vec::new();
    // Kept across the passes, as a worker keeps it.
    let agent_cache = SharedAgentCache::default();
    loop {
        let wire_before = wire.snapshot();
        let started = Instant::now();
        let report = run_pass(
            &mut scheduler,
            Some(guard.fence()),
            load_options(&agent_cache),
            Admission::Scheduled,
        )
        .await
        .expect("a scheduling pass");
        let duration = started.elapsed();
        let more = report.pending as i64 >= MAX_PENDING_PER_PASS && !report.scheduled.is_empty();
        println!(
            "  pass {:>3}: pending {:>6}  scheduled {:>6}  load {:>6.0} ms  plan {:>6.0} ms  write {:>6.0} ms",
            passes.len() + 1,
            report.pending,
            report.scheduled.len(),
            report.load_time.as_secs_f64() * 1e3,
            report.plan_time.as_secs_f64() * 1e3,
            report.write_time.as_secs_f64() * 1e3,
        );
        passes.push(PassFigures {
            duration,
            scheduled: report.scheduled.len(),
            load: report.load_time,
            plan: report.plan_time,
            write: report.write_time,
            reported_transactions: report.transactions,
            wire: wire.snapshot().since(&wire_before),
        });
        if !more {
            break;
        }
    }
    guard.release().await;
    let drain_time = drain.elapsed();
    // pg_stat counters are flushed by backends about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let commits = xact_commits(&observer).await - commits_before;

    let scheduled: usize = passes.iter().map(|p| p.scheduled).sum();
    let still_pending: i64 = observer
        .query_one(
            "SELECT count(*) FROM sessions WHERE status = 'PENDING'",
            &[],
        )
        .await
        .expect("counting pending sessions")
        .get(0);
    let violations = invariant_violations(&observer).await;
    let working: Vec<&PassFigures> = passes.iter().filter(|p| p.scheduled > 0).collect();
    let mut durations: Vec<Duration> = working.iter().map(|p| p.duration).collect();
    durations.sort_unstable();
    let sum = |f: fn(&PassFigures) -> u64| working.iter().map(|p| f(p)).sum::<u64>();
    let per_pass = |total: u64| total as f64 / working.len().max(1) as f64;
    let wire_total = passes
        .iter()
        .fold(WireSnapshot::default(), |total, pass| WireSnapshot {
            simple_queries: total.simple_queries + pass.wire.simple_queries,
            executes: total.executes + pass.wire.executes,
            parses: total.parses + pass.wire.parses,
            syncs: total.syncs + pass.wire.syncs,
            bytes_sent: total.bytes_sent + pass.wire.bytes_sent,
        });

    println!(
        "sched_throughput: {} PENDING sessions ({} cpu, {} GiB each) onto {} agents ({} cpu, {} GiB each), lock {}",
        knobs.sessions,
        knobs.session_cpus,
        knobs.session_mem_gib,
        knobs.agents,
        knobs.agent_cpus,
        knobs.agent_mem_gib,
        knobs.lock.as_str()
    );
    println!(
        "  included                     snapshot, placement, reservation, outcomes; NOT dispatch"
    );
    println!(
        "  setup (agents + enqueue)     {:.1} s",
        setup_time.as_secs_f64()
    );
    println!(
        "  placements/s (sustained)     {:.0}   ({scheduled} SCHEDULED in {:.2} s, lock wait {} ms)",
        scheduled as f64 / drain_time.as_secs_f64(),
        drain_time.as_secs_f64(),
        lock_time.as_millis()
    );
    println!(
        "  passes                       {} ({} with placements; the loop stops after a pass that read fewer than {MAX_PENDING_PER_PASS} or placed none)",
        passes.len(),
        working.len()
    );
    println!(
        "  pass duration p50 / max      {:.0} / {:.0} ms",
        percentile(&durations, 0.5).as_secs_f64() * 1e3,
        durations.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  pass load / plan / write     {:.0} / {:.0} / {:.0} ms on average",
        per_pass(sum(|p| p.load.as_millis() as u64)),
        per_pass(sum(|p| p.plan.as_millis() as u64)),
        per_pass(sum(|p| p.write.as_millis() as u64)),
    );
    println!(
        "  sessions per pass            {:.0} (read at most {MAX_PENDING_PER_PASS})",
        per_pass(sum(|p| p.scheduled as u64))
    );
    println!(
        "  transactions per pass        {:.1} written by the pass ({} in all passes); PostgreSQL counted {commits} commits in the drain (auto-commit statements count as one each)",
        per_pass(sum(|p| p.reported_transactions as u64)),
        passes
            .iter()
            .map(|p| p.reported_transactions)
            .sum::<usize>()
    );
    if knobs.count_statements {
        println!(
            "  statements per pass          {:.1} ({:.1} round trips, {:.1} parses, {:.1} MiB sent per pass)",
            per_pass(sum(|p| p.wire.statements())),
            per_pass(sum(|p| p.wire.round_trips())),
            per_pass(sum(|p| p.wire.parses)),
            per_pass(sum(|p| p.wire.bytes_sent)) / 1_048_576.0
        );
        println!(
            "  all passes                   {} statements, {} round trips",
            wire_total.statements(),
            wire_total.round_trips()
        );
    } else {
        println!("  statements                   not counted (BENCH_COUNT_STATEMENTS=0)");
    }
    println!("  still PENDING                {still_pending}");
    println!(
        "  over-commit / double placement  {}",
        if violations.is_empty() {
            "none (checked in SQL)".to_owned()
        } else {
            violations.join("; ")
        }
    );
    println!(
        "  load average before / after  {} / {}",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(violations.is_empty(), "invariants violated: {violations:?}");
}
