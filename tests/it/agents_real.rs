//! End to end with the real Backend.AI agent 26.9.6 (dummy backend, installed by
//! `deploy/peers/agent.sh`) against the real `bai-manager start-server`: the agent joins
//! ALIVE with its slots, is LOST once killed, and is revived when it starts again.

use std::time::Duration;

use bai_actors::redis::db;
use bai_testkit::TestEnv;
use redis::AsyncCommands;

use crate::agents_support::*;
use crate::manager_process::{ManagerProcess, children_of};
use crate::sched_support::RealAgent;

/// Short, so the test does not wait 40 s for a loss; the agent heartbeats every 2 s.
const HEARTBEAT_TIMEOUT_SECONDS: f64 = 6.0;
const LIMIT: Duration = Duration::from_secs(120);

/// Prints the manager's output when the test fails, for whoever reads the CI log.
struct DumpOnFailure(std::path::PathBuf);

impl Drop for DumpOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- manager output ---\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

#[tokio::test]
async fn a_real_agent_joins_alive_is_lost_when_killed_and_revived_when_restarted() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "heartbeat-timeout = 40.0",
        &format!("heartbeat-timeout = {HEARTBEAT_TIMEOUT_SECONDS}"),
    );
    std::fs::write(&config, text).unwrap();
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("manager.out"));
    manager.wait_for_port(env.service_port);
    let _dump = DumpOnFailure(env.path("manager.out"));
    // The manager says it is up; the agent waits for that before it starts.
    wait_for("the manager to register in etcd", LIMIT, || async {
        let manager_id = format!("nodes/manager/i-test-{}", env.namespace);
        env.etcd_get(&manager_id)
            .await
            .filter(|value| value == "up")
    })
    .await;

    let agent = RealAgent::start(&env, "i-real-agent", 0, 4).await;
    wait_for("the real agent to appear ALIVE", LIMIT, || async {
        agent_status(&env, "i-real-agent")
            .await
            .filter(|status| status == "ALIVE")
    })
    .await;
    let db = env.db.connect().await;
    let row = db
        .query_one(
            "SELECT available_slots, addr, version, scaling_group FROM agents \
             WHERE id = 'i-real-agent'",
            &[],
        )
        .await
        .unwrap();
    let slots: serde_json::Value = row.get(0);
    assert_eq!(slots["cpu"], "4", "slots {slots}");
    assert_eq!(slots["mem"], "17179869184", "slots {slots}");
    assert_eq!(row.get::<_, String>(1), agent.rpc_addr());
    assert_eq!(row.get::<_, String>(2), "26.9.6");
    assert_eq!(row.get::<_, String>(3), "default");

    // Killed without a goodbye: LOST within the heartbeat timeout (+ the 1 s sweep and the
    // event's trip).
    let rpc_port = agent.rpc_port;
    let mut agent = agent;
    // The agent runs as a supervisor process with a forked worker: kill them all at once.
    let mut doomed = vec![agent.process.pid()];
    let mut index = 0;
    while index < doomed.len() {
        doomed.extend(children_of(doomed[index]));
        index += 1;
    }
    for pid in doomed {
        // SAFETY: kill(2) on processes this test started (the agent and its children).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    agent.process.stop();
    let mut live = env.redis.connection(db::LIVE).await;
    let last_seen: f64 = live.hget("agent.last_seen", "i-real-agent").await.unwrap();
    wait_for("the killed agent to be LOST", LIMIT, || async {
        agent_status(&env, "i-real-agent")
            .await
            .filter(|status| status == "LOST")
    })
    .await;
    let lost_after: f64 = db
        .query_one(
            "SELECT extract(epoch FROM lost_at)::float8 - $1 FROM agents WHERE id = 'i-real-agent'",
            &[&last_seen],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        lost_after <= HEARTBEAT_TIMEOUT_SECONDS + 2.0,
        "LOST {lost_after:.1} s after the last heartbeat"
    );

    // Started again: revived.
    let _agent = RealAgent::start(&env, "i-real-agent", rpc_port, 4).await;
    wait_for("the restarted agent to be revived", LIMIT, || async {
        let row = env
            .db
            .connect()
            .await
            .query_one(
                "SELECT status::text, lost_at IS NULL FROM agents WHERE id = 'i-real-agent'",
                &[],
            )
            .await
            .unwrap();
        (row.get::<_, String>(0) == "ALIVE" && row.get::<_, bool>(1)).then_some(())
    })
    .await;
    // The log line is written after the row, by the logger's own thread.
    manager.wait_for_output("agent revived", LIMIT);
}
