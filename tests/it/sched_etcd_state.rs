//! What the scheduler keeps in etcd, through real `bai-manager start-server` processes with
//! simulated agents (heartbeats on the real Redis stream, callosum RPC servers):
//!
//! * the round-robin cursor (23.09's `roundrobin_states`) moves with each placement, and a
//!   manager started after the first one stopped continues from it instead of starting again at
//!   the first agent;
//! * `config/agent/max-container-count` caps the kernels per agent; the sessions beyond the cap
//!   stay PENDING with the original's refusal.

use std::path::PathBuf;
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
    ADMIN_AK, created_twice, enqueue_sessions, over_committed_agents, scheduling_world,
};

/// A deadline for a state to be reached (never a timing assertion).
const DEADLINE: Duration = Duration::from_secs(90);

struct World {
    env: TestEnv,
    client: tokio_postgres::Client,
    ledger: SharedLedger,
    agent_ids: Vec<String>,
    _servers: Vec<tokio::task::JoinHandle<Result<(), bai_agent_sim::SimError>>>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl World {
    /// `agents` simulated agents `i-{prefix}-NNN` with 16 cpus and 32 GiB each.
    async fn new(prefix: &str, agents: usize) -> World {
        let env = TestEnv::new().await;
        let client = scheduling_world(&env).await;
        let fleet: Vec<SimAgent> = (0..agents)
            .map(|n| {
                SimAgent::new(
                    format!("i-{prefix}-{n:03}"),
                    WireFormat::Payload,
                    free_port(),
                )
                .with_slot("cpu", SlotUnit::Count, SlotAmount::from(16))
                .with_slot("mem", SlotUnit::Bytes, SlotAmount::from(32i64 << 30))
            })
            .collect();
        let agent_ids = fleet.iter().map(|agent| agent.id.clone()).collect();
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let servers = serve_fleet_with_delay(&fleet, &writer, &ledger, Duration::ZERO);
        let mut heartbeat_writer = writer.clone();
        let heartbeats = tokio::spawn(async move {
            let _ = run_heartbeats(
                &mut heartbeat_writer,
                &fleet,
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
            agent_ids,
            _servers: servers,
            heartbeats,
        }
    }

    /// Starts manager `name` (its own id, port and pid file) on this world's services.
    fn start_manager(&self, name: &str) -> ManagerProcess {
        let base = self.env.manager_toml("");
        let text = std::fs::read_to_string(&base).expect("reading manager.toml");
        let port = free_port();
        let text = text
            .replace(
                &format!("port = {} }}", self.env.service_port),
                &format!("port = {port} }}"),
            )
            .replace(
                &format!("id = \"i-test-{}\"", self.env.namespace),
                &format!("id = \"i-{name}\""),
            )
            .replace("manager.pid", &format!("manager-{name}.pid"))
            .replace("/ipc\"", &format!("/ipc-{name}\""));
        let path = self.env.path(&format!("manager-{name}.toml"));
        std::fs::write(&path, text).expect("writing manager.toml");
        let mut manager = ManagerProcess::start_server(&path, &[], &self.output(name));
        manager.wait_for_port(port);
        manager
    }

    fn output(&self, name: &str) -> PathBuf {
        self.env.path(&format!("manager-{name}.out"))
    }

    async fn wait_for_agents(&self) {
        let want = self.agent_ids.len() as i64;
        wait_for("every simulated agent to be ALIVE", DEADLINE, || async {
            let alive: i64 = self
                .client
                .query_one("SELECT count(*) FROM agents WHERE status = 'ALIVE'", &[])
                .await
                .expect("counting agents")
                .get(0);
            if alive == want {
                Ok(())
            } else {
                Err(format!("{alive} ALIVE"))
            }
        })
        .await;
    }

    async fn set_scheduler_opts(&self, opts: serde_json::Value) {
        self.client
            .execute(
                "UPDATE scaling_groups SET scheduler_opts = $1 WHERE name = 'default'",
                &[&opts],
            )
            .await
            .expect("setting the resource group's scheduler options");
    }

    /// Enqueues `count` one-cpu sessions and asks for a pass.
    async fn enqueue_and_schedule(&self, count: usize) -> Vec<uuid::Uuid> {
        let ids = enqueue_sessions(&self.client, ADMIN_AK, count, 1, 1).await;
        self.do_schedule().await;
        ids
    }

    async fn do_schedule(&self) {
        producer(&self.env)
            .await
            .produce(&Event::Trigger(Trigger::DoSchedule))
            .await
            .expect("producing do_schedule");
    }

    /// Waits until `sessions` are RUNNING; returns the agent of each, in order.
    async fn agents_of_running(&self, sessions: &[uuid::Uuid]) -> Vec<String> {
        wait_for("the sessions to be RUNNING", DEADLINE, || async {
            let rows = self
                .client
                .query(
                    "SELECT status::text FROM sessions WHERE id = ANY($1) AND status <> 'RUNNING'",
                    &[&sessions],
                )
                .await
                .expect("listing sessions");
            let stuck: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            if stuck.is_empty() {
                Ok(())
            } else {
                Err(format!("not yet RUNNING: {stuck:?}"))
            }
        })
        .await;
        let mut agents = Vec::new();
        for session in sessions {
            let row = self
                .client
                .query_one(
                    "SELECT agent FROM kernels WHERE session_id = $1",
                    &[session],
                )
                .await
                .expect("reading the session's kernel");
            agents.push(row.get(0));
        }
        agents
    }

    /// The cursor of resource group `default` on the agents' architecture, as etcd has it.
    async fn stored_cursor(&self) -> Option<(u64, String)> {
        let architecture: String = self
            .client
            .query_one("SELECT min(architecture) FROM agents", &[])
            .await
            .expect("reading the agents' architecture")
            .get(0);
        let text = self.env.etcd_get("roundrobin_states").await?;
        let value: serde_json::Value =
            serde_json::from_str(&text).expect("roundrobin_states is JSON");
        let state = &value["default"][architecture.as_str()];
        Some((
            state["next_index"].as_u64()?,
            state["schedulable_group_id"].as_str()?.to_owned(),
        ))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// Prints a manager's output when the test fails.
struct DumpOnFailure(Vec<PathBuf>);

impl Drop for DumpOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for path in &self.0 {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("--- {} (last lines) ---", path.display());
                for line in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn stop(mut manager: ManagerProcess) {
    manager.signal(libc::SIGTERM);
    manager.wait_exit(Duration::from_secs(30));
}

#[tokio::test]
async fn the_roundrobin_cursor_lives_in_etcd_and_a_restarted_manager_continues_from_it() {
    let world = World::new("rr", 4).await;
    // 23.09's switch for round robin in a resource group.
    world
        .set_scheduler_opts(serde_json::json!({"roundrobin": true}))
        .await;
    let _dump = DumpOnFailure(vec![world.output("first"), world.output("second")]);
    let first = world.start_manager("first");
    world.wait_for_agents().await;

    let mut expected_members = world.agent_ids.clone();
    expected_members.sort();
    let digest = bai_actors::scheduler::etcd_state::schedulable_group_id(&expected_members);

    let sessions = world.enqueue_and_schedule(2).await;
    let placed = world.agents_of_running(&sessions).await;
    let mut placed_sorted = placed.clone();
    placed_sorted.sort();
    assert_eq!(
        placed_sorted,
        expected_members[..2].to_vec(),
        "round robin starts at the first agents by id"
    );
    assert_eq!(
        world.stored_cursor().await,
        Some((2, digest.clone())),
        "the cursor in etcd points past the two agents used"
    );
    stop(first);

    // A new manager process (another id) reads the cursor from etcd.
    let _second = world.start_manager("second");
    let sessions = world.enqueue_and_schedule(1).await;
    let placed = world.agents_of_running(&sessions).await;
    assert_eq!(
        placed,
        vec![expected_members[2].clone()],
        "the restarted scheduler continues at the third agent instead of the first"
    );
    assert_eq!(world.stored_cursor().await, Some((3, digest)));
    assert!(created_twice(&world.ledger).is_empty());
}

#[tokio::test]
async fn max_container_count_in_etcd_caps_the_kernels_per_agent() {
    const CAP: i64 = 2;
    const AGENTS: usize = 2;
    const SESSIONS: usize = 6;
    let world = World::new("cap", AGENTS).await;
    world
        .env
        .etcd_put("config/agent/max-container-count", &CAP.to_string())
        .await;
    let _dump = DumpOnFailure(vec![world.output("capped")]);
    let _manager = world.start_manager("capped");
    world.wait_for_agents().await;

    let sessions = world.enqueue_and_schedule(SESSIONS).await;
    let capacity = (CAP as usize) * AGENTS;
    wait_for(
        "the agents to be full and the rest refused",
        DEADLINE,
        || async {
            world.do_schedule().await;
            let running: i64 = world
                .client
                .query_one(
                    "SELECT count(*) FROM sessions WHERE id = ANY($1) AND status = 'RUNNING'",
                    &[&sessions],
                )
                .await
                .expect("counting sessions")
                .get(0);
            let refused: i64 = world
                .client
                .query_one(
                    "SELECT count(*) FROM sessions WHERE id = ANY($1) AND status = 'PENDING'
                        AND status_info = 'no-available-instances'",
                    &[&sessions],
                )
                .await
                .expect("counting sessions")
                .get(0);
            if running as usize == capacity && refused as usize == SESSIONS - capacity {
                Ok(())
            } else {
                Err(format!("{running} RUNNING, {refused} refused"))
            }
        },
    )
    .await;

    let per_agent = world
        .client
        .query(
            "SELECT agent, count(*) FROM kernels WHERE session_id = ANY($1) AND agent IS NOT NULL
              GROUP BY agent ORDER BY agent",
            &[&sessions],
        )
        .await
        .expect("counting kernels per agent");
    let counts: Vec<(String, i64)> = per_agent.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts.len(), AGENTS, "{counts:?}");
    assert!(
        counts.iter().all(|(_, n)| *n == CAP),
        "each agent holds exactly the cap: {counts:?}"
    );
    assert_eq!(
        over_committed_agents(&world.client).await,
        Vec::<String>::new()
    );

    let messages = world
        .client
        .query(
            "SELECT coalesce(status_data -> 'scheduler' ->> 'msg', status_data::text)
               FROM sessions WHERE id = ANY($1) AND status = 'PENDING'",
            &[&sessions],
        )
        .await
        .expect("reading the refusals");
    assert_eq!(messages.len(), SESSIONS - capacity);
    for row in &messages {
        assert_eq!(
            row.get::<_, String>(0),
            "No agents found to be available because all agents have reached the hard limit of the number of containers."
        );
    }
}
