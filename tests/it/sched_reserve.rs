//! The reservation against real PostgreSQL: a pass places pending sessions and records the
//! reasons of the rest; two schedulers racing without any lock never place a session twice and
//! never over-commit an agent (the database re-checks).

use std::collections::HashSet;

use bai_actors::scheduler::pass::run_pass;
use bai_actors::scheduler::reserve::Admission;
use bai_testkit::TestEnv;

use crate::sched_support::{
    ADMIN_AK, USER_AK, add_agents, enqueue_sessions, load_options, over_committed_agents,
    scheduling_world,
};

#[tokio::test]
async fn a_pass_schedules_what_fits_and_explains_the_rest() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    add_agents(&client, "i-r", 2, 4, 8).await;
    let sessions = enqueue_sessions(&client, ADMIN_AK, 10, 1, 1).await;
    let mut writer = env.db.connect().await;
    let report = run_pass(&mut writer, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), 8);

    let rows = client
        .query(
            "SELECT id, status::text, status_info, agent_ids, status_data, status_history ? 'SCHEDULED'
               FROM sessions WHERE id = ANY($1) ORDER BY created_at",
            &[&sessions],
        )
        .await
        .unwrap();
    for row in &rows[..8] {
        assert_eq!(row.get::<_, String>(1), "SCHEDULED");
        assert_eq!(
            row.get::<_, Option<String>>(2).as_deref(),
            Some("scheduled")
        );
        assert_eq!(
            row.get::<_, Option<Vec<String>>>(3).map(|a| a.len()),
            Some(1)
        );
        assert!(row.get::<_, bool>(5));
    }
    for row in &rows[8..] {
        assert_eq!(row.get::<_, String>(1), "PENDING");
        assert_eq!(
            row.get::<_, Option<String>>(2).as_deref(),
            Some("no-available-instances")
        );
        let data: serde_json::Value = row.get(4);
        assert_eq!(data["scheduler"]["retries"], 1);
        assert!(
            data["scheduler"]["msg"]
                .as_str()
                .unwrap()
                .starts_with("Could not find a contiguous resource region"),
            "{data}"
        );
    }
    let occupied: Vec<(String, serde_json::Value)> = client
        .query("SELECT id, occupied_slots FROM agents ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (_, slots) in &occupied {
        assert_eq!(slots["cpu"], "4");
        assert_eq!(slots["mem"], (4u64 << 30).to_string());
    }
    let kernels_on_agents: i64 = client
        .query_one(
            "SELECT count(*) FROM kernels WHERE status = 'SCHEDULED' AND agent IS NOT NULL AND agent_addr LIKE 'tcp://%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kernels_on_agents, 8);
}

#[tokio::test]
async fn two_schedulers_racing_without_a_lock_place_each_session_once_and_never_overcommit() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    add_agents(&client, "i-race", 40, 4, 16).await;
    let mut sessions = enqueue_sessions(&client, ADMIN_AK, 150, 1, 1).await;
    sessions.extend(enqueue_sessions(&client, USER_AK, 150, 1, 2).await);

    let mut first = env.db.connect().await;
    let mut second = env.db.connect().await;
    let mut placed = HashSet::new();
    for _round in 0..4 {
        let (a, b) = tokio::join!(
            run_pass(&mut first, None, load_options(), Admission::Scheduled),
            run_pass(&mut second, None, load_options(), Admission::Scheduled)
        );
        for report in [a.unwrap(), b.unwrap()] {
            for (session, _) in report.scheduled {
                assert!(placed.insert(session), "session {session} placed twice");
            }
        }
    }
    // 40 agents × 4 cpus: exactly 160 one-cpu sessions fit.
    assert_eq!(placed.len(), 160);
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());
    let consistent: i64 = client
        .query_one(
            "SELECT count(*) FROM agents a
              WHERE (a.occupied_slots ->> 'cpu')::numeric = (
                    SELECT coalesce(sum((k.occupied_slots ->> 'cpu')::numeric), 0) FROM kernels k
                     WHERE k.agent = a.id AND k.status = 'SCHEDULED')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        consistent, 40,
        "agents' occupied slots equal the sum of their kernels"
    );
    let scheduled: i64 = client
        .query_one(
            "SELECT count(*) FROM sessions WHERE status = 'SCHEDULED'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(scheduled, 160);
}
