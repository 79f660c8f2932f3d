//! Kernel events as the scheduler applies a batch the event bus hands it, against real
//! PostgreSQL: the whole batch in a few transactions (the rows it writes carry at most
//! `BATCH_TRANSACTIONS` transaction ids, a session's all the same one), in stream order, slots
//! freed; and a batch whose transaction fails is
//! applied again one event at a time, so one bad kernel keeps only its own events unapplied.

use std::sync::Arc;
use std::time::Duration;

use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
use bai_actors::scheduler::dispatch::DispatchDeps;
use bai_actors::scheduler::kernel_events::{BATCH_TRANSACTIONS, apply_kernel_events};
use bai_actors::scheduler::pass::run_pass;
use bai_actors::scheduler::reserve::Admission;
use bai_actors::wire::{KernelEvent, KernelEventKind};
use bai_testkit::TestEnv;
use uuid::Uuid;

use crate::sched_support::{
    ADMIN_AK, add_agents, db_pool, enqueue_sessions, load_options, over_committed_agents,
    scheduling_world,
};

async fn deps(env: &TestEnv) -> DispatchDeps {
    DispatchDeps {
        pool: db_pool(env).await,
        rpc: Arc::new(AgentRpc::new(RpcTimeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(5),
            reply: Duration::from_secs(5),
        })),
        etcd: None,
        stat_redis: None,
    }
}

/// `count` sessions placed by a pass and claimed as a dispatcher claims them (PREPARING);
/// returns (session, kernel) pairs in creation order.
async fn preparing_sessions(
    env: &TestEnv,
    client: &tokio_postgres::Client,
    count: usize,
) -> Vec<(Uuid, Uuid)> {
    add_agents(client, "i-batch", 4, 16, 64).await;
    let sessions = enqueue_sessions(client, ADMIN_AK, count, 1, 1).await;
    let mut writer = env.db.connect().await;
    let report = run_pass(&mut writer, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), count);
    client
        .batch_execute(
            "UPDATE sessions SET status = 'PREPARING' WHERE status = 'SCHEDULED';
             UPDATE kernels SET status = 'PREPARING', status_info = 'creating'
              WHERE status = 'SCHEDULED';",
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT k.session_id, k.id FROM kernels k JOIN sessions s ON s.id = k.session_id
              WHERE k.session_id = ANY($1) ORDER BY s.created_at",
            &[&sessions],
        )
        .await
        .unwrap();
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

fn event(kind: KernelEventKind, session: Uuid, kernel: Uuid) -> KernelEvent {
    let creation_info = if kind == KernelEventKind::Started {
        serde_json::json!({"container_id": format!("c-{kernel}"), "kernel_host": "127.0.0.1",
                           "repl_in_port": 2000, "repl_out_port": 2001, "service_ports": []})
    } else {
        serde_json::Value::Null
    };
    KernelEvent {
        kind,
        kernel_id: kernel,
        session_id: session,
        reason: if kind == KernelEventKind::Terminated {
            "user-requested".into()
        } else {
            String::new()
        },
        creation_info,
        exit_code: (kind == KernelEventKind::Terminated).then_some(0),
    }
}

/// Each kernel's pulling → started → terminated, interleaved across kernels as agents send
/// them, with stream ids in stream order.
fn lifecycle_batch(pairs: &[(Uuid, Uuid)]) -> Vec<(String, KernelEvent)> {
    let mut batch = Vec::new();
    for (step, kind) in [
        KernelEventKind::Pulling,
        KernelEventKind::Started,
        KernelEventKind::Terminated,
    ]
    .into_iter()
    .enumerate()
    {
        for (n, (session, kernel)) in pairs.iter().enumerate() {
            batch.push((
                format!("{}-{n}", 1000 + step),
                event(kind, *session, *kernel),
            ));
        }
    }
    batch
}

async fn session_statuses(client: &tokio_postgres::Client, sessions: &[Uuid]) -> Vec<String> {
    client
        .query(
            "SELECT status::text FROM sessions WHERE id = ANY($1) ORDER BY created_at",
            &[&sessions],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn total_occupied(client: &tokio_postgres::Client) -> Vec<serde_json::Value> {
    client
        .query("SELECT occupied_slots FROM agents ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn a_batch_of_kernel_events_is_applied_in_a_few_transactions() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let pairs = preparing_sessions(&env, &client, 12).await;
    let sessions: Vec<Uuid> = pairs.iter().map(|(session, _)| *session).collect();
    let kernels: Vec<Uuid> = pairs.iter().map(|(_, kernel)| *kernel).collect();
    let before = total_occupied(&client).await;
    assert!(before.iter().any(|slots| slots != &serde_json::json!({})));

    let deps = deps(&env).await;
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let unapplied = apply_kernel_events(&deps, None, &log, lifecycle_batch(&pairs)).await;
    assert_eq!(unapplied, Vec::<String>::new());

    assert_eq!(
        session_statuses(&client, &sessions).await,
        vec!["TERMINATED"; 12]
    );
    // The batch was written by a few transactions, not one per event: each session's rows
    // (its kernel and itself) by one, and the agents by those same few.
    let writers = client
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM (
                SELECT xmin FROM kernels WHERE id = ANY($1)
                UNION ALL SELECT xmin FROM sessions WHERE id = ANY($2)
                UNION ALL SELECT xmin FROM agents
                    WHERE id IN (SELECT agent FROM kernels WHERE id = ANY($1))) t",
            &[&kernels, &sessions],
        )
        .await
        .unwrap();
    let writers: i64 = writers.get(0);
    assert!(
        (1..=BATCH_TRANSACTIONS as i64).contains(&writers),
        "{writers} transactions wrote the batch"
    );
    let split = client
        .query_one(
            "SELECT count(*) FROM sessions s JOIN kernels k ON k.session_id = s.id
              WHERE s.id = ANY($1) AND s.xmin::text <> k.xmin::text",
            &[&sessions],
        )
        .await
        .unwrap();
    assert_eq!(
        split.get::<_, i64>(0),
        0,
        "a session and its kernel written apart"
    );
    // In stream order: each session passed PULLING and RUNNING before it ended, and the
    // kernel kept what `kernel_started` said about its container.
    let rows = client
        .query(
            "SELECT s.status_history ? 'PULLING', s.status_history ? 'RUNNING',
                    s.status_history ? 'TERMINATED', k.container_id, k.repl_in_port
               FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.id = ANY($1)",
            &[&sessions],
        )
        .await
        .unwrap();
    for row in rows {
        assert_eq!(
            (
                row.get::<_, bool>(0),
                row.get::<_, bool>(1),
                row.get::<_, bool>(2)
            ),
            (true, true, true)
        );
        assert!(row.get::<_, Option<String>>(3).unwrap().starts_with("c-"));
        assert_eq!(row.get::<_, Option<i32>>(4), Some(2000));
    }
    for slots in total_occupied(&client).await {
        assert_eq!(slots, serde_json::json!({}), "slots left occupied: {slots}");
    }
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());

    // Delivered again (the bus delivers at least once), the batch changes nothing.
    let unapplied = apply_kernel_events(&deps, None, &log, lifecycle_batch(&pairs)).await;
    assert_eq!(unapplied, Vec::<String>::new());
    assert_eq!(
        session_statuses(&client, &sessions).await,
        vec!["TERMINATED"; 12]
    );
}

#[tokio::test]
async fn a_failing_batch_is_applied_event_by_event_and_only_the_bad_kernel_waits() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let pairs = preparing_sessions(&env, &client, 6).await;
    let sessions: Vec<Uuid> = pairs.iter().map(|(session, _)| *session).collect();
    let (poisoned_session, poisoned_kernel) = pairs[2];
    // The database refuses to let this one kernel run, as it would refuse any bad write.
    client
        .execute(
            &format!(
                "ALTER TABLE kernels ADD CONSTRAINT test_refuses_one_kernel
                   CHECK (id <> '{poisoned_kernel}' OR status <> 'RUNNING')"
            ),
            &[],
        )
        .await
        .unwrap();

    let deps = deps(&env).await;
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let batch = lifecycle_batch(&pairs);
    let mut expected: Vec<String> = batch
        .iter()
        .filter(|(_, event)| {
            event.kernel_id == poisoned_kernel && event.kind != KernelEventKind::Pulling
        })
        .map(|(id, _)| id.clone())
        .collect();
    let mut unapplied = apply_kernel_events(&deps, None, &log, batch).await;
    unapplied.sort();
    expected.sort();
    // Its `kernel_started` failed: that event and the later `kernel_terminated` stay
    // unacknowledged for redelivery; its `kernel_pulling` was applied.
    assert_eq!(unapplied, expected);
    let statuses = session_statuses(&client, &sessions).await;
    for (n, status) in statuses.iter().enumerate() {
        let want = if sessions[n] == poisoned_session {
            "PULLING"
        } else {
            "TERMINATED"
        };
        assert_eq!(status, want, "session {n}");
    }
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());
}
