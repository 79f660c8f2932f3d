//! The reconciler against real PostgreSQL and simulated agents answering RPC: sessions left
//! behind by a worker that died mid-dispatch are dispatched again (each kernel created once),
//! kernels the agent already runs are marked RUNNING, and a session on an agent that cannot
//! tell what became of it is cancelled with its slots freed.

use std::sync::Arc;
use std::time::Duration;

use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
use bai_actors::scheduler::dispatch::{
    DispatchDeps, DispatchOutcome, dispatch_claimed_session, dispatch_claimed_sessions,
};
use bai_actors::scheduler::pass::run_pass;
use bai_actors::scheduler::reconcile::{ReconcileReport, reconcile};
use bai_actors::scheduler::reserve::Admission;
use bai_actors::wire::WireFormat;
use bai_agent_sim::StreamWriter;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_testkit::TestEnv;
use uuid::Uuid;

use crate::sched_support::{
    ADMIN_AK, add_sim_agents, created_twice, db_pool, enqueue_sessions, load_options,
    over_committed_agents, scheduling_world, sim_fleet,
};

/// What a worker killed at different points of a dispatch leaves behind: the claim done and
/// `create_kernels` not sent (`prepared`) or maybe sent (`creating`), an hour ago.
async fn leave_claimed(client: &tokio_postgres::Client, sessions: &[Uuid], kernel_info: &str) {
    client
        .execute(
            "UPDATE sessions SET status = 'PREPARING', status_info = 'prepared' WHERE id = ANY($1)",
            &[&sessions],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE kernels SET status = 'PREPARING', status_info = $2,
                    status_changed = now() - interval '1 hour'
              WHERE session_id = ANY($1)",
            &[&sessions, &kernel_info],
        )
        .await
        .unwrap();
}

async fn statuses(client: &tokio_postgres::Client, sessions: &[Uuid]) -> Vec<(String, String)> {
    client
        .query(
            "SELECT s.status::text, k.status::text FROM sessions s JOIN kernels k ON k.session_id = s.id
              WHERE s.id = ANY($1) ORDER BY s.created_at",
            &[&sessions],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn kernel_ids(client: &tokio_postgres::Client, sessions: &[Uuid]) -> Vec<(String, String)> {
    client
        .query(
            "SELECT id::text, agent FROM kernels WHERE session_id = ANY($1)",
            &[&sessions],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn sessions_left_by_a_dead_dispatcher_are_finished_and_each_kernel_created_once() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let ledger = SharedLedger::default();

    // One 23.09 agent first (no health probes), with one session on it.
    let old = sim_fleet("i-old", 1, WireFormat::Args);
    add_sim_agents(&client, &old).await;
    client
        .execute(
            "UPDATE agents SET available_slots = '{\"cpu\": \"1\", \"mem\": \"8589934592\"}' WHERE id = $1",
            &[&old[0].id],
        )
        .await
        .unwrap();
    let on_old = enqueue_sessions(&client, ADMIN_AK, 1, 1, 1).await;
    let mut writer_db = env.db.connect().await;
    let report = run_pass(&mut writer_db, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), 1);

    let agents = sim_fleet("i-rec", 4, WireFormat::Payload);
    add_sim_agents(&client, &agents).await;
    let mut all = old.clone();
    all.extend(agents.iter().cloned());
    let _servers = serve_fleet(&all, &writer, &ledger);
    let sessions = enqueue_sessions(&client, ADMIN_AK, 16, 1, 1).await;
    let report = run_pass(&mut writer_db, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), 16);

    let never_sent = &sessions[0..4];
    let forgotten = &sessions[4..8];
    let already_running = &sessions[8..12];
    let never_claimed = &sessions[12..16];
    leave_claimed(&client, never_sent, "prepared").await;
    leave_claimed(&client, forgotten, "creating").await;
    leave_claimed(&client, already_running, "creating").await;
    leave_claimed(&client, &on_old, "creating").await;
    client
        .execute(
            "UPDATE sessions SET status_history = status_history
                 || jsonb_build_object('SCHEDULED', (now() - interval '1 hour')::text)
              WHERE id = ANY($1)",
            &[&never_claimed],
        )
        .await
        .unwrap();
    // The agents already run (and created, once) the kernels of `already_running`.
    for (kernel, agent) in kernel_ids(&client, already_running).await {
        let mut ledger = ledger.lock().unwrap();
        *ledger.created.entry(kernel.clone()).or_default() += 1;
        ledger.running.entry(agent).or_default().push(kernel);
    }

    let deps = DispatchDeps {
        pool: db_pool(&env).await,
        rpc: Arc::new(AgentRpc::new(RpcTimeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(5),
            reply: Duration::from_secs(20),
        })),
        etcd: None,
        stat_redis: None,
    };
    let report = reconcile(&deps, None, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            redispatched: 4,
            restarted: 8,
            marked_running: 4,
            waiting: 0,
            failed_to_start: 1,
            force_terminated: 0,
            terminated_unannounced: 0,
            marked_agent_lost: 0,
        }
    );

    for (session, kernel) in statuses(&client, &sessions).await {
        assert_eq!((session.as_str(), kernel.as_str()), ("RUNNING", "RUNNING"));
    }
    assert_eq!(created_twice(&ledger), Vec::new());
    let kernels = kernel_ids(&client, &sessions).await;
    {
        let ledger = ledger.lock().unwrap();
        for (kernel, _) in kernels {
            assert_eq!(
                ledger.created.get(&kernel),
                Some(&1),
                "kernel {kernel} was not created exactly once"
            );
        }
    }
    let redispatches: Vec<serde_json::Value> = client
        .query(
            "SELECT status_data -> 'reconciler' -> 'redispatches' FROM sessions WHERE id = ANY($1)",
            &[&[never_sent, forgotten].concat()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(redispatches, vec![serde_json::json!(1); 8]);

    // The 23.09 agent cannot say what became of its kernel: cancelled, slots freed.
    let row = client
        .query_one(
            "SELECT s.status::text, s.status_info, a.occupied_slots FROM sessions s, agents a
              WHERE s.id = $1 AND a.id = $2",
            &[&on_old[0], &old[0].id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "CANCELLED");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("failed-to-start")
    );
    let occupied: serde_json::Value = row.get(2);
    assert_eq!(occupied, serde_json::json!({}), "{occupied}");
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());

    // Nothing is stuck any more.
    let again = reconcile(&deps, None, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again, ReconcileReport::default());
}

#[tokio::test]
async fn a_kernel_the_agent_is_still_creating_is_waited_for_and_not_sent_twice() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let ledger = SharedLedger::default();
    let agents = sim_fleet("i-wait", 1, WireFormat::Payload);
    add_sim_agents(&client, &agents).await;
    let _servers = serve_fleet(&agents, &writer, &ledger);
    let sessions = enqueue_sessions(&client, ADMIN_AK, 2, 1, 1).await;
    let mut writer_db = env.db.connect().await;
    run_pass(&mut writer_db, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    leave_claimed(&client, &sessions, "creating").await;
    // Sent moments ago as far as the RPC reply timeout goes: the agent not knowing it yet
    // means it may be on its way.
    client
        .execute(
            "UPDATE kernels SET status_changed = now() - interval '2 minutes' WHERE session_id = ANY($1)",
            &[&sessions],
        )
        .await
        .unwrap();
    let deps = DispatchDeps {
        pool: db_pool(&env).await,
        rpc: Arc::new(AgentRpc::new(RpcTimeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(5),
            reply: Duration::from_secs(600),
        })),
        etcd: None,
        stat_redis: None,
    };
    let report = reconcile(&deps, None, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.waiting, 2, "{report:?}");
    assert_eq!(report.restarted, 0, "{report:?}");
    for (session, kernel) in statuses(&client, &sessions).await {
        assert_eq!(
            (session.as_str(), kernel.as_str()),
            ("PREPARING", "PREPARING")
        );
    }
    assert!(ledger.lock().unwrap().created.is_empty());
}

/// A 26.x agent's `kernel_terminated` can be trimmed from the stream before any manager reads
/// it. The reconciler asks the agent, well before the transition timeout: a kernel it no
/// longer runs is TERMINATED with the reason it was destroyed for and its slots are freed; one
/// it still runs is left to its event.
#[tokio::test]
async fn a_terminating_kernel_whose_end_event_was_lost_ends_once_the_agent_no_longer_runs_it() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let ledger = SharedLedger::default();
    let agents = sim_fleet("i-lost-end", 1, WireFormat::Payload);
    add_sim_agents(&client, &agents).await;
    let _servers = serve_fleet(&agents, &writer, &ledger);
    let sessions = enqueue_sessions(&client, ADMIN_AK, 2, 1, 1).await;
    let mut writer_db = env.db.connect().await;
    run_pass(&mut writer_db, None, load_options(), Admission::Scheduled)
        .await
        .unwrap();
    let gone = sessions[0];
    let still_running: String = client
        .query_one(
            "SELECT id::text FROM kernels WHERE session_id = $1",
            &[&sessions[1]],
        )
        .await
        .unwrap()
        .get(0);
    ledger
        .lock()
        .unwrap()
        .running
        .entry(agents[0].id.clone())
        .or_default()
        .push(still_running.clone());
    // Both destroyed by their users 20 s ago; neither `kernel_terminated` arrived.
    client
        .batch_execute(&format!(
            "UPDATE sessions SET status = 'TERMINATING', status_info = 'user-requested'
              WHERE id IN ('{}', '{}');
             UPDATE kernels SET status = 'TERMINATING', status_info = 'user-requested',
                    status_changed = now() - interval '20 seconds'
              WHERE session_id IN ('{}', '{}');",
            sessions[0], sessions[1], sessions[0], sessions[1]
        ))
        .await
        .unwrap();
    let deps = DispatchDeps {
        pool: db_pool(&env).await,
        rpc: Arc::new(AgentRpc::new(RpcTimeouts::default())),
        etcd: None,
        stat_redis: None,
    };
    let report = reconcile(&deps, None, Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(report.terminated_unannounced, 1, "{report:?}");
    assert_eq!(report.force_terminated, 0, "{report:?}");
    let ended: (String, String, Option<String>) = client
        .query_one(
            "SELECT s.status::text, k.status::text, k.status_info FROM sessions s
               JOIN kernels k ON k.session_id = s.id WHERE s.id = $1",
            &[&gone],
        )
        .await
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .unwrap();
    assert_eq!(
        ended,
        (
            "TERMINATED".to_owned(),
            "TERMINATED".to_owned(),
            Some("user-requested".to_owned())
        )
    );
    assert_eq!(
        statuses(&client, &sessions[1..]).await,
        vec![("TERMINATING".to_owned(), "TERMINATING".to_owned())]
    );
    // Only the kernel still running holds its slot.
    let occupied: String = client
        .query_one(
            "SELECT occupied_slots ->> 'cpu' FROM agents WHERE id = $1",
            &[&agents[0].id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(occupied.parse::<f64>().unwrap(), 1.0);
}

/// The scheduler's own pass claims what it places (PREPARING, kernels `prepared`, in the
/// reservation's transaction) and dispatches it without a claim transaction: each kernel is
/// created once, a second dispatch of the same claim does nothing, and a claim whose
/// dispatcher died is dispatched again by the reconciler.
#[tokio::test]
async fn a_claiming_pass_leaves_its_sessions_prepared_for_its_own_dispatch() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    let writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let ledger = SharedLedger::default();
    let agents = sim_fleet("i-claim", 2, WireFormat::Payload);
    add_sim_agents(&client, &agents).await;
    let _servers = serve_fleet(&agents, &writer, &ledger);
    let sessions = enqueue_sessions(&client, ADMIN_AK, 4, 1, 1).await;
    let mut writer_db = env.db.connect().await;
    let options = load_options();
    let claimed_at = options.now;
    let report = run_pass(&mut writer_db, None, options, Admission::ClaimedForDispatch)
        .await
        .unwrap();
    assert_eq!(report.scheduled.len(), 4);
    let rows = client
        .query(
            "SELECT s.status::text, s.status_info, k.status::text, k.status_info,
                    s.status_history ? 'SCHEDULED', s.status_history ? 'PREPARING',
                    k.status_changed = $2
               FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.id = ANY($1)",
            &[&sessions, &claimed_at],
        )
        .await
        .unwrap();
    for row in &rows {
        let seen: (String, String, String, String, bool, bool, bool) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        );
        assert_eq!(
            seen,
            (
                "PREPARING".into(),
                "prepared".into(),
                "PREPARING".into(),
                "prepared".into(),
                true,
                true,
                true
            )
        );
    }
    let deps = DispatchDeps {
        pool: db_pool(&env).await,
        rpc: Arc::new(AgentRpc::new(RpcTimeouts::default())),
        etcd: None,
        stat_redis: None,
    };
    let dead_dispatcher = sessions[3];
    let first = dispatch_claimed_session(&deps, sessions[0], claimed_at)
        .await
        .unwrap();
    assert_eq!(first, DispatchOutcome::Started);
    // A pass's sessions go together: the one dispatched already is left alone.
    let together = dispatch_claimed_sessions(&deps, &sessions[..3], claimed_at)
        .await
        .unwrap();
    let together: Vec<(Uuid, DispatchOutcome)> = together
        .into_iter()
        .map(|(session, outcome)| (session, outcome.unwrap()))
        .collect();
    assert_eq!(
        together,
        vec![
            (sessions[0], DispatchOutcome::NotOurs),
            (sessions[1], DispatchOutcome::Started),
            (sessions[2], DispatchOutcome::Started),
        ]
    );
    for session in &sessions[..3] {
        let again = dispatch_claimed_session(&deps, *session, claimed_at)
            .await
            .unwrap();
        assert_eq!(again, DispatchOutcome::NotOurs);
    }
    // The dispatcher of the last one died before sending: an hour later the reconciler finds it.
    leave_claimed(&client, &[dead_dispatcher], "prepared").await;
    let report = reconcile(&deps, None, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.restarted, 1, "{report:?}");
    for (session, kernel) in statuses(&client, &sessions).await {
        assert_eq!((session.as_str(), kernel.as_str()), ("RUNNING", "RUNNING"));
    }
    assert_eq!(ledger.lock().unwrap().created.len(), 4);
    assert!(created_twice(&ledger).is_empty());
    assert!(over_committed_agents(&client).await.is_empty());
}
