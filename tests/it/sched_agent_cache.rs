//! The agents a worker keeps between its passes, against real PostgreSQL: whatever changes an
//! agent's row between two passes (this worker's own reservations, another process freeing
//! slots, an operator making it unschedulable, a heartbeat raising its slots) is what the next
//! pass plans with.

use bai_actors::scheduler::load::{LoadOptions, SharedAgentCache};
use bai_actors::scheduler::pass::{PassReport, run_pass};
use bai_actors::scheduler::reserve::Admission;
use bai_testkit::TestEnv;

use crate::sched_support::{
    ADMIN_AK, add_agents, enqueue_sessions, load_options, scheduling_world,
};

fn kept(cache: &SharedAgentCache) -> LoadOptions {
    LoadOptions {
        agent_cache: Some(std::sync::Arc::clone(cache)),
        ..load_options()
    }
}

fn placed_on(report: &PassReport) -> Vec<String> {
    report
        .scheduled
        .iter()
        .flat_map(|(_, kernels)| kernels.iter().map(|k| k.agent_id.clone()))
        .collect()
}

#[tokio::test]
async fn a_kept_agent_is_planned_as_its_row_is_now() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    add_agents(&client, "i-kept", 2, 4, 8).await;
    let cache = SharedAgentCache::default();
    let mut writer = env.db.connect().await;

    // Two sessions fill both agents.
    enqueue_sessions(&client, ADMIN_AK, 2, 4, 1).await;
    let report = run_pass(&mut writer, None, kept(&cache), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), 2);
    assert_eq!(cache.lock().await.len(), 2);

    // The pass's own reservation changed both rows: the next pass sees them full, so it plans
    // nothing (a stale copy would plan the session and the reservation would refuse it).
    enqueue_sessions(&client, ADMIN_AK, 1, 4, 1).await;
    let report = run_pass(&mut writer, None, kept(&cache), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(
        (report.scheduled.len(), report.no_longer_fit),
        (0, 0),
        "{report:?}"
    );

    // Another process frees the first agent: the waiting session goes there.
    client
        .execute(
            "UPDATE agents SET occupied_slots = '{}' WHERE id = 'i-kept-00000'",
            &[],
        )
        .await
        .unwrap();
    let report = run_pass(&mut writer, None, kept(&cache), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(placed_on(&report), ["i-kept-00000"]);

    // Both freed, the first made unschedulable by an operator: the next session goes to the
    // second, and the first is no longer among the agents kept.
    client
        .batch_execute(
            "UPDATE agents SET occupied_slots = '{}';
             UPDATE agents SET schedulable = false WHERE id = 'i-kept-00000';",
        )
        .await
        .unwrap();
    enqueue_sessions(&client, ADMIN_AK, 1, 4, 1).await;
    let report = run_pass(&mut writer, None, kept(&cache), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(placed_on(&report), ["i-kept-00001"]);
    assert_eq!(cache.lock().await.len(), 1);

    // A heartbeat raises the second agent's slots: a session bigger than it was fits.
    client
        .execute(
            "UPDATE agents SET available_slots = '{\"cpu\": \"16\", \"mem\": \"68719476736\"}'
              WHERE id = 'i-kept-00001'",
            &[],
        )
        .await
        .unwrap();
    enqueue_sessions(&client, ADMIN_AK, 1, 8, 1).await;
    let report = run_pass(&mut writer, None, kept(&cache), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(placed_on(&report), ["i-kept-00001"]);
}
