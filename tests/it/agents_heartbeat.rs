//! The heartbeat tracker against real PostgreSQL, Redis and etcd, fed by simulated agents of
//! both generations.

use std::time::Duration;

use bai_actors::heartbeat::GetTrackerStats;
use bai_actors::redis::db;
use bai_actors::wire::{AgentImage, Event, WireFormat};
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_schema::{SlotAmount, SlotUnit};
use bai_testkit::TestEnv;
use redis::AsyncCommands;

use crate::agents_support::*;

const LIMIT: Duration = Duration::from_secs(60);

async fn row_xmin(env: &TestEnv, agent: &str) -> String {
    env.db
        .connect()
        .await
        .query_one("SELECT xmin::text FROM agents WHERE id = $1", &[&agent])
        .await
        .unwrap()
        .get(0)
}

#[actix::test]
async fn a_new_agent_is_inserted_alive_and_unchanged_heartbeats_write_nothing() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let worker = start_worker(
        &env,
        &test_log(&lines),
        "w1",
        Duration::from_secs(40),
        vec![],
    )
    .await;
    let old = SimAgent::new("i-old", WireFormat::Args, 16001)
        .with_slot(
            "cuda.shares",
            SlotUnit::Count,
            SlotAmount::parse("2.5").unwrap(),
        )
        .with_images(vec![AgentImage {
            canonical: "cr.backend.ai/stable/python:3.9-ubuntu20.04".into(),
            digest: "sha256:0123".into(),
        }]);
    let new = SimAgent::new("i-new", WireFormat::Payload, 16002);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    writer
        .heartbeat_all(&[old.clone(), new.clone()])
        .await
        .unwrap();

    for agent in ["i-old", "i-new"] {
        wait_for("the agents to be inserted", LIMIT, || async {
            agent_status(&env, agent)
                .await
                .filter(|status| status == "ALIVE")
        })
        .await;
    }
    let db = env.db.connect().await;
    let row = db
        .query_one(
            "SELECT addr, region, scaling_group, available_slots, occupied_slots, version, \
             architecture, compute_plugins, first_contact IS NOT NULL, lost_at IS NULL \
             FROM agents WHERE id = 'i-old'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "tcp://127.0.0.1:16001");
    assert_eq!(row.get::<_, String>(1), "local");
    assert_eq!(row.get::<_, String>(2), "default");
    assert_eq!(
        row.get::<_, serde_json::Value>(3),
        serde_json::json!({"cpu": "4", "mem": "8589934592", "cuda.shares": "2.5"})
    );
    assert_eq!(row.get::<_, serde_json::Value>(4), serde_json::json!({}));
    assert_eq!(row.get::<_, String>(5), "23.09.10");
    assert_eq!(row.get::<_, String>(6), "x86_64");
    assert_eq!(
        row.get::<_, serde_json::Value>(7)["cpu"]["version"],
        "23.09.10"
    );
    assert!(row.get::<_, bool>(8) && row.get::<_, bool>(9));
    let new_slots: serde_json::Value = db
        .query_one("SELECT available_slots FROM agents WHERE id = 'i-new'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        new_slots,
        serde_json::json!({"cpu": "4", "mem": "8589934592"})
    );

    let mut live = env.redis.connection(db::LIVE).await;
    let seen: Option<f64> = live.hget("agent.last_seen", "i-old").await.unwrap();
    assert!(seen.is_some_and(|seen| seen > 1.7e9));
    let mut images = env.redis.connection(db::IMAGE).await;
    let holders: Vec<String> = images
        .smembers("cr.backend.ai/stable/python:3.9-ubuntu20.04")
        .await
        .unwrap();
    assert_eq!(holders, vec!["i-old".to_owned()]);
    assert_eq!(
        env.etcd_get("config/resource_slots/cuda.shares")
            .await
            .as_deref(),
        Some("count")
    );

    // Unchanged heartbeats: last_seen moves, the rows are not rewritten.
    let xmin_old = row_xmin(&env, "i-old").await;
    let xmin_new = row_xmin(&env, "i-new").await;
    for _ in 0..5 {
        writer
            .heartbeat_all(&[old.clone(), new.clone()])
            .await
            .unwrap();
    }
    wait_for("the unchanged heartbeats to be handled", LIMIT, || async {
        let stats = worker.tracker.send(GetTrackerStats).await.unwrap();
        (stats.heartbeats == 12).then_some(())
    })
    .await;
    let later: Option<f64> = live.hget("agent.last_seen", "i-old").await.unwrap();
    assert!(later >= seen);
    assert_eq!(row_xmin(&env, "i-old").await, xmin_old);
    assert_eq!(row_xmin(&env, "i-new").await, xmin_new);
    let stats = worker.tracker.send(GetTrackerStats).await.unwrap();
    assert_eq!((stats.inserted, stats.updated, stats.errors), (2, 0, 0));

    // A changed heartbeat updates the row.
    let mut moved = new.clone();
    moved.info.addr = "tcp://127.0.0.1:16999".into();
    writer.send(&moved, &moved.heartbeat()).await.unwrap();
    wait_for("the changed address to be stored", LIMIT, || async {
        let addr: String = env
            .db
            .connect()
            .await
            .query_one("SELECT addr FROM agents WHERE id = 'i-new'", &[])
            .await
            .unwrap()
            .get(0);
        (addr == "tcp://127.0.0.1:16999").then_some(())
    })
    .await;
    assert!(lines.contains(&["agent changed", "agent=i-new", "columns=addr"]));
}

#[actix::test]
async fn a_heartbeat_naming_an_unknown_scaling_group_is_logged_and_ignored() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let _worker = start_worker(
        &env,
        &test_log(&lines),
        "w1",
        Duration::from_secs(40),
        vec![],
    )
    .await;
    let stray = SimAgent::new("i-stray", WireFormat::Args, 16001).with_scaling_group("nowhere");
    let fine = SimAgent::new("i-fine", WireFormat::Args, 16002);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    writer.send(&stray, &stray.heartbeat()).await.unwrap();
    writer.send(&fine, &fine.heartbeat()).await.unwrap();
    wait_for("the next agent to be inserted", LIMIT, || async {
        agent_status(&env, "i-fine").await
    })
    .await;
    assert_eq!(agent_status(&env, "i-stray").await, None);
    assert!(lines.contains(&[
        "scaling group does not exist",
        "agent=i-stray",
        "scaling_group=nowhere"
    ]));
}

async fn stream_has(env: &TestEnv, name: &str, source: &str, reason_hex_or_json: &str) -> bool {
    let mut redis = env.redis.connection(db::STREAM).await;
    let entries: redis::streams::StreamRangeReply = redis.xrange_all("events").await.unwrap();
    entries.ids.iter().any(|entry| {
        let text = |key: &str| match entry.map.get(key) {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => String::new(),
        };
        text("name") == name
            && text("source") == source
            && text("args").contains(reason_hex_or_json)
    })
}

#[actix::test]
async fn a_silent_agent_is_lost_after_the_timeout_and_revived_by_its_next_heartbeat() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let timeout = Duration::from_secs(2);
    let _worker = start_worker(&env, &test_log(&lines), "w1", timeout, vec![]).await;
    let agent = SimAgent::new("i-flaky", WireFormat::Payload, 16001);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let sent_id = writer.send(&agent, &agent.heartbeat()).await.unwrap();
    let sent_ms: i64 = sent_id.split('-').next().unwrap().parse().unwrap();

    wait_for("the agent to be lost", LIMIT, || async {
        agent_status(&env, "i-flaky").await.filter(|s| s == "LOST")
    })
    .await;
    let db = env.db.connect().await;
    let lost_after_ms: f64 = db
        .query_one(
            "SELECT extract(epoch FROM lost_at) * 1000 - $1::float8 FROM agents \
             WHERE id = 'i-flaky' AND status_changed = lost_at",
            &[&(sent_ms as f64)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        lost_after_ms <= (timeout.as_millis() + 2000) as f64,
        "lost {lost_after_ms} ms after its last heartbeat"
    );
    assert!(stream_has(&env, "agent_terminated", "i-flaky", "agent-lost").await);
    let mut live = env.redis.connection(db::LIVE).await;
    let seen: Option<f64> = live.hget("agent.last_seen", "i-flaky").await.unwrap();
    assert_eq!(seen, None);

    writer.send(&agent, &agent.heartbeat()).await.unwrap();
    wait_for("the agent to be revived", LIMIT, || async {
        agent_status(&env, "i-flaky").await.filter(|s| s == "ALIVE")
    })
    .await;
    let lost_at_cleared: bool = db
        .query_one(
            "SELECT lost_at IS NULL FROM agents WHERE id = 'i-flaky'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(lost_at_cleared);
    assert!(stream_has(&env, "agent_started", "i-flaky", "revived").await);
}

#[actix::test]
async fn agent_terminated_events_mark_agents_terminated_or_restarting() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let _worker = start_worker(
        &env,
        &test_log(&lines),
        "w1",
        Duration::from_secs(40),
        vec![],
    )
    .await;
    let leaving = SimAgent::new("i-leaving", WireFormat::Args, 16001);
    let restarting = SimAgent::new("i-restarting", WireFormat::Payload, 16002);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    writer
        .heartbeat_all(&[leaving.clone(), restarting.clone()])
        .await
        .unwrap();
    for agent in ["i-leaving", "i-restarting"] {
        wait_for("the agents to join", LIMIT, || async {
            agent_status(&env, agent).await
        })
        .await;
    }
    let shutdown = Event::AgentTerminated {
        reason: "shutdown".into(),
    };
    let restart = Event::AgentTerminated {
        reason: "agent-restart".into(),
    };
    writer.send(&leaving, &shutdown).await.unwrap();
    writer.send(&restarting, &restart).await.unwrap();
    wait_for("the shutdown to be recorded", LIMIT, || async {
        agent_status(&env, "i-leaving")
            .await
            .filter(|s| s == "TERMINATED")
    })
    .await;
    wait_for("the restart to be recorded", LIMIT, || async {
        agent_status(&env, "i-restarting")
            .await
            .filter(|s| s == "RESTARTING")
    })
    .await;
    let started = Event::AgentStarted {
        reason: "self-started".into(),
    };
    writer.send(&restarting, &started).await.unwrap();
    wait_for("the restarted agent to be alive", LIMIT, || async {
        agent_status(&env, "i-restarting")
            .await
            .filter(|s| s == "ALIVE")
    })
    .await;
}
