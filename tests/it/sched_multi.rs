//! Many manager processes scheduling at once, one killed with SIGKILL half-way: 1,000 sessions
//! onto 50 simulated agents (heartbeats on the real Redis stream, callosum RPC servers that
//! record every kernel they create), with the real `bai-manager start-server` processes sharing
//! PostgreSQL, Redis and etcd. Every session ends up RUNNING, each kernel created exactly once
//! (the simulator's ledger), and no agent over-committed (checked in SQL).
//!
//! * two separate managers (two "hosts") with `distributed-lock = "etcd"`, one killed;
//! * one manager with `num-proc = 2` and `distributed-lock = "filelock"`, one worker killed;
//! * one manager with one worker whose scheduler is stopped (restarted in place by its
//!   supervisor) and then panics (the worker exits, the supervisor starts a new one) while
//!   kernel events stream in: no kernel event is lost (issue 18, items 2 and 3).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bai_actors::wire::{Event, Trigger, WireFormat};
use bai_agent_sim::rpc::{SharedLedger, serve_fleet_with_delay};
use bai_agent_sim::{SimAgent, StreamWriter, run_heartbeats};
use bai_schema::{SlotAmount, SlotUnit};
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::wait::wait_for;

use crate::agents_support::producer;
use crate::manager_process::ManagerProcess;
use crate::sched_support::{
    ADMIN_AK, USER_AK, enqueue_sessions, over_committed_agents, scheduling_world,
};

const AGENTS: usize = 50;
const SESSIONS_PER_WAVE: usize = 100;
const WAVES: usize = 10;
/// Each agent takes exactly 20 one-cpu, one-GiB sessions: the 1,000 sessions fill the fleet.
const AGENT_CPUS: i64 = 20;
const AGENT_MEM: i64 = 32 << 30;
/// Slow container starts keep many dispatches in flight when the manager is killed.
const START_DELAY: Duration = Duration::from_millis(1500);
/// The reconciler's timeout in the managers: short, so the survivor takes over the dead one's
/// sessions within the test (it is safe at any value: every re-drive is a compare-and-set).
const TRANSITION_TIMEOUT_SECS: u32 = 8;
/// Generous deadline for the whole backlog to be RUNNING (a state, not a timing assertion).
const FINISH_DEADLINE: Duration = Duration::from_secs(240);

fn fleet() -> Vec<SimAgent> {
    (0..AGENTS)
        .map(|n| {
            SimAgent::new(format!("i-multi-{n:03}"), WireFormat::Payload, free_port())
                .with_slot("cpu", SlotUnit::Count, SlotAmount::from(AGENT_CPUS))
                .with_slot("mem", SlotUnit::Bytes, SlotAmount::from(AGENT_MEM))
        })
        .collect()
}

/// A manager.toml of `env` for manager `name`, with its own id, port, pid file and ipc folder.
fn manager_config(env: &TestEnv, name: &str, lock: &str, num_proc: u32) -> (PathBuf, u16) {
    let base = env.manager_toml(&format!(
        "lock-lifetime = 4.0\nsession-transition-timeout = {TRANSITION_TIMEOUT_SECS}.0"
    ));
    let text = std::fs::read_to_string(&base).expect("reading manager.toml");
    let port = free_port();
    let text = text
        .replace(
            &format!("port = {} }}", env.service_port),
            &format!("port = {port} }}"),
        )
        .replace(
            &format!("id = \"i-test-{}\"", env.namespace),
            &format!("id = \"i-{name}\""),
        )
        .replace("manager.pid", &format!("manager-{name}.pid"))
        .replace("/ipc\"", &format!("/ipc-{name}\""))
        .replace(
            "distributed-lock = \"filelock\"",
            &format!("distributed-lock = \"{lock}\""),
        )
        .replace("num-proc = 1", &format!("num-proc = {num_proc}"));
    let path = env.path(&format!("manager-{name}.toml"));
    std::fs::write(&path, text).expect("writing manager.toml");
    (path, port)
}

fn start_manager(env: &TestEnv, config: &Path, port: u16, name: &str) -> ManagerProcess {
    let mut manager =
        ManagerProcess::start_server(config, &[], &env.path(&format!("manager-{name}.out")));
    manager.wait_for_port(port);
    manager
}

/// SIGKILL for a process (no clean-up of any kind: a crash).
fn kill9(pid: u32) {
    // SAFETY: kill(2) on a process this test started (a manager or one of its workers).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

async fn count(client: &tokio_postgres::Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.expect("counting").get(0)
}

async fn status_counts(client: &tokio_postgres::Client) -> String {
    client
        .query(
            "SELECT status::text, count(*) FROM sessions GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("counting sessions")
        .iter()
        .map(|row| format!("{}={}", row.get::<_, String>(0), row.get::<_, i64>(1)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The world both variants share: agents heartbeating and answering RPC, sessions enqueued in
/// waves with a `do_schedule` after each.
struct World {
    env: TestEnv,
    client: tokio_postgres::Client,
    ledger: SharedLedger,
    _servers: Vec<tokio::task::JoinHandle<Result<(), bai_agent_sim::SimError>>>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl World {
    async fn new() -> World {
        let env = TestEnv::new().await;
        let client = scheduling_world(&env).await;
        let agents = fleet();
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let servers = serve_fleet_with_delay(&agents, &writer, &ledger, START_DELAY);
        let mut heartbeat_writer = writer.clone();
        let heartbeats = tokio::spawn(async move {
            let _ = run_heartbeats(
                &mut heartbeat_writer,
                &agents,
                Duration::from_secs(3),
                5,
                u64::MAX,
            )
            .await;
        });
        World {
            env,
            client,
            ledger,
            _servers: servers,
            heartbeats,
        }
    }

    async fn wait_for_agents(&self) {
        wait_for(
            "every simulated agent to be ALIVE",
            Duration::from_secs(60),
            || async {
                let alive = count(
                    &self.client,
                    "SELECT count(*) FROM agents WHERE status = 'ALIVE'",
                )
                .await;
                if alive == AGENTS as i64 {
                    Ok(())
                } else {
                    Err(format!("{alive} ALIVE"))
                }
            },
        )
        .await;
    }

    async fn enqueue_waves(&self, waves: std::ops::Range<usize>) {
        let producer = producer(&self.env).await;
        for wave in waves {
            let owner = if wave % 2 == 0 { ADMIN_AK } else { USER_AK };
            enqueue_sessions(&self.client, owner, SESSIONS_PER_WAVE, 1, 1).await;
            producer
                .produce(&Event::Trigger(Trigger::DoSchedule))
                .await
                .expect("producing do_schedule");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_for_running(&self, at_least: i64, limit: Duration, what: &str) {
        wait_for(what, limit, || async {
            let running = count(
                &self.client,
                "SELECT count(*) FROM sessions WHERE status = 'RUNNING'",
            )
            .await;
            if running >= at_least {
                Ok(())
            } else {
                Err(format!(
                    "{}; not running: {}",
                    status_counts(&self.client).await,
                    self.not_running().await
                ))
            }
        })
        .await;
    }

    /// The kernels of sessions that are not RUNNING (a few), to tell why they are stuck.
    async fn not_running(&self) -> String {
        self.client
            .query(
                "SELECT s.status::text, k.status::text, coalesce(k.status_info, ''),
                        coalesce(k.agent, ''), k.id::text,
                        coalesce(k.status_changed::text, ''),
                        coalesce(s.status_data::text, '')
                   FROM sessions s JOIN kernels k ON k.session_id = s.id
                  WHERE s.status <> 'RUNNING' ORDER BY k.status_changed LIMIT 8",
                &[],
            )
            .await
            .expect("listing kernels")
            .iter()
            .map(|row| {
                (0..7)
                    .map(|i| row.get::<_, String>(i))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Everything placed exactly once, nothing over-committed, agents full.
    async fn check_outcome(&self) {
        let total = (SESSIONS_PER_WAVE * WAVES) as i64;
        let kernels: Vec<String> = self
            .client
            .query("SELECT id::text FROM kernels WHERE status = 'RUNNING'", &[])
            .await
            .expect("listing kernels")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            kernels.len() as i64,
            total,
            "{}",
            status_counts(&self.client).await
        );
        {
            let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            let twice: Vec<_> = ledger.created.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                twice.is_empty(),
                "kernels created more than once: {twice:?}"
            );
            for kernel in &kernels {
                assert_eq!(
                    ledger.created.get(kernel),
                    Some(&1),
                    "kernel {kernel} is RUNNING but was not created exactly once by an agent"
                );
            }
            assert_eq!(
                ledger.created.len(),
                kernels.len(),
                "the agents created kernels the database does not have RUNNING"
            );
        }
        assert_eq!(
            over_committed_agents(&self.client).await,
            Vec::<String>::new()
        );
        let inconsistent = count(
            &self.client,
            "SELECT count(*) FROM agents a
              WHERE (a.occupied_slots ->> 'cpu')::numeric IS DISTINCT FROM (
                    SELECT sum((k.occupied_slots ->> 'cpu')::numeric) FROM kernels k
                     WHERE k.agent = a.id AND k.status = 'RUNNING')",
        )
        .await;
        assert_eq!(
            inconsistent, 0,
            "agents whose occupied slots are not the sum of their running kernels"
        );
        let full = count(
            &self.client,
            &format!(
                "SELECT count(*) FROM agents WHERE (occupied_slots ->> 'cpu')::numeric = {AGENT_CPUS}"
            ),
        )
        .await;
        assert_eq!(full, AGENTS as i64, "every agent takes exactly 20 sessions");
        let sessions_ok = count(
            &self.client,
            "SELECT count(*) FROM sessions s WHERE s.status = 'RUNNING'
                AND s.agent_ids = (SELECT array_agg(k.agent) FROM kernels k WHERE k.session_id = s.id)",
        )
        .await;
        assert_eq!(
            sessions_ok, total,
            "sessions' agent_ids match their kernels"
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// Lines of a manager's output that say nothing about a failure: 26.x agents cap the stream at
/// ~128 entries, so under this load the managers keep finding entries already trimmed away.
const NOISE: &str = "entry was deleted before it could be handled";

/// Prints the managers' output when the test fails.
struct DumpOnFailure(Vec<PathBuf>);

impl Drop for DumpOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for path in &self.0 {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().filter(|l| !l.contains(NOISE)).collect();
                eprintln!(
                    "--- {} (last lines but the trimmed-entry warnings) ---",
                    path.display()
                );
                for line in &lines[lines.len().saturating_sub(120)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

#[tokio::test]
async fn two_managers_with_the_etcd_lock_one_killed_place_every_session_once() {
    let world = World::new().await;
    let (config_a, port_a) = manager_config(&world.env, "a", "etcd", 1);
    let (config_b, port_b) = manager_config(&world.env, "b", "etcd", 1);
    let _dump = DumpOnFailure(vec![
        world.env.path("manager-a.out"),
        world.env.path("manager-b.out"),
    ]);
    let victim = start_manager(&world.env, &config_a, port_a, "a");
    let _survivor = start_manager(&world.env, &config_b, port_b, "b");
    world.wait_for_agents().await;

    world.enqueue_waves(0..WAVES / 2).await;
    world
        .wait_for_running(
            SESSIONS_PER_WAVE as i64,
            Duration::from_secs(120),
            "the first sessions to be RUNNING",
        )
        .await;
    let before = status_counts(&world.client).await;
    for worker in victim.worker_pids() {
        kill9(worker);
    }
    kill9(victim.pid());
    eprintln!("killed manager a with SIGKILL; sessions then: {before}");

    world.enqueue_waves(WAVES / 2..WAVES).await;
    world
        .wait_for_running(
            (SESSIONS_PER_WAVE * WAVES) as i64,
            FINISH_DEADLINE,
            "the surviving manager to finish the backlog",
        )
        .await;
    world.check_outcome().await;
}

#[tokio::test]
async fn one_manager_with_two_workers_and_the_filelock_one_worker_killed_places_every_session_once()
{
    let world = World::new().await;
    let (config, port) = manager_config(&world.env, "solo", "filelock", 2);
    let _dump = DumpOnFailure(vec![world.env.path("manager-solo.out")]);
    let manager = start_manager(&world.env, &config, port, "solo");
    manager.wait_for_output("worker 2 serving", Duration::from_secs(30));
    world.wait_for_agents().await;

    world.enqueue_waves(0..WAVES / 2).await;
    world
        .wait_for_running(
            SESSIONS_PER_WAVE as i64,
            Duration::from_secs(120),
            "the first sessions to be RUNNING",
        )
        .await;
    let before = status_counts(&world.client).await;
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 2, "{}", manager.output());
    kill9(workers[0]);
    eprintln!(
        "killed worker {} with SIGKILL; sessions then: {before}",
        workers[0]
    );

    world.enqueue_waves(WAVES / 2..WAVES).await;
    world
        .wait_for_running(
            (SESSIONS_PER_WAVE * WAVES) as i64,
            FINISH_DEADLINE,
            "the surviving workers to finish the backlog",
        )
        .await;
    world.check_outcome().await;
}

#[tokio::test]
async fn a_scheduler_stopped_then_dead_mid_backlog_loses_no_kernel_event() {
    let world = World::new().await;
    let (config, port) = manager_config(&world.env, "faulty", "filelock", 1);
    let text = std::fs::read_to_string(&config).expect("reading manager.toml");
    std::fs::write(
        &config,
        text.replace("[debug]\nenabled = false", "[debug]\nenabled = true"),
    )
    .expect("writing manager.toml");
    let _dump = DumpOnFailure(vec![world.env.path("manager-faulty.out")]);
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BAI_FAULT_INJECTION", "scheduler")],
        &world.env.path("manager-faulty.out"),
    );
    manager.wait_for_port(port);
    manager.wait_for_output("fault injection armed", Duration::from_secs(30));
    world.wait_for_agents().await;

    world.enqueue_waves(0..WAVES / 2).await;
    world
        .wait_for_running(
            SESSIONS_PER_WAVE as i64,
            Duration::from_secs(120),
            "the first sessions to be RUNNING",
        )
        .await;
    let workers = manager.worker_pids();
    // SAFETY: kill(2) on the worker this test's manager started.
    unsafe { libc::kill(workers[0] as libc::pid_t, libc::SIGUSR1) };
    manager.wait_for_output("scheduler: restarting", Duration::from_secs(30));
    assert!(
        manager
            .output()
            .lines()
            .any(|line| line.contains("scheduler: restarting") && line.contains("restarts=1")),
        "the restart is counted"
    );
    eprintln!(
        "scheduler stopped and restarted; sessions then: {}",
        status_counts(&world.client).await
    );
    world.enqueue_waves(WAVES / 2..WAVES * 3 / 4).await;
    // SAFETY: as above.
    unsafe { libc::kill(workers[0] as libc::pid_t, libc::SIGUSR2) };
    manager.wait_for_output("the scheduler actor died", Duration::from_secs(30));
    eprintln!(
        "scheduler panicked; sessions then: {}",
        status_counts(&world.client).await
    );

    world.enqueue_waves(WAVES * 3 / 4..WAVES).await;
    world
        .wait_for_running(
            (SESSIONS_PER_WAVE * WAVES) as i64,
            FINISH_DEADLINE,
            "the restarted worker to finish the backlog",
        )
        .await;
    assert_ne!(manager.worker_pids(), workers, "the worker was replaced");
    world.check_outcome().await;
}
