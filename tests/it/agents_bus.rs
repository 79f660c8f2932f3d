//! The event bus against a real Redis: malformed entries, two workers sharing the stream,
//! entries left pending by a dead worker, entries added while the actors' thread is busy, a slow
//! subscriber beside a fast one; and the session-event feed, which every worker reads
//! in full (no group): each worker's feed sees every event, and a stopped feed restarts, counted,
//! with its open receivers still receiving.

use std::collections::HashSet;
use std::time::Duration;

use bai_actors::event_bus::EventInterest;
use bai_actors::event_bus::session_feed::{self, FeedError, SessionEventFeed, SessionEvents};
use bai_actors::heartbeat::GetTrackerStats;
use bai_actors::redis::db;
use bai_actors::wire::{
    Event, KernelEvent, KernelEventKind, SessionEvent, SessionEventKind, WireFormat,
};
use bai_agent_sim::{SimAgent, StreamWriter, fleet};
use bai_schema::DbSettings;
use bai_testkit::TestEnv;

use uuid::Uuid;

use crate::agents_support::*;
use crate::sched_support::{ADMIN_AK, enqueue_sessions};

const TIMEOUT: Duration = Duration::from_secs(40);
const LIMIT: Duration = Duration::from_secs(60);

#[actix::test]
async fn malformed_entries_are_logged_acknowledged_and_do_not_block_the_ones_behind() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let mut redis = env.redis.connection(db::STREAM).await;
    let huge = vec![0x91u8; 10 * 1024 * 1024];
    let bad_entries: Vec<Vec<(&str, &[u8])>> = vec![
        // garbage bytes
        vec![
            ("name", b"agent_heartbeat"),
            ("source", b"i-bad"),
            ("args", b"\xc1\xff\x00"),
        ],
        // wrong field types: agent_info is a string, a reason is an int
        vec![
            ("name", b"agent_heartbeat"),
            ("source", b"i-bad"),
            ("args", b"\x91\xa3abc"),
        ],
        vec![
            ("name", b"agent_terminated"),
            ("source", b"i-bad"),
            ("payload", b"{\"reason\": 5}"),
        ],
        // missing fields
        vec![("name", b"agent_heartbeat"), ("source", b"i-bad")],
        vec![("source", b"i-bad"), ("args", b"\x90")],
        vec![
            ("name", b"agent_heartbeat"),
            ("source", b"i-bad"),
            ("payload", b"{\"agent_info\": {}}"),
        ],
        // an unknown event name
        vec![
            ("name", b"agent_exploded"),
            ("source", b"i-bad"),
            ("args", b"\x90"),
        ],
        // a 10 MB payload
        vec![
            ("name", b"agent_heartbeat"),
            ("source", b"i-bad"),
            ("args", &huge),
        ],
    ];
    let mut bad_ids = Vec::new();
    for fields in &bad_entries {
        let mut command = redis::cmd("XADD");
        command.arg("events").arg("*");
        for (key, value) in fields {
            command.arg(*key).arg(*value);
        }
        let id: String = command.query_async(&mut redis).await.unwrap();
        bad_ids.push(id);
    }
    let good = SimAgent::new("i-good", WireFormat::Args, 16001);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    writer.send(&good, &good.heartbeat()).await.unwrap();

    let lines = LogLines::default();
    let _worker = start_worker(&env, &test_log(&lines), "w1", TIMEOUT, vec![]).await;
    wait_for(
        "the good heartbeat behind the bad entries",
        LIMIT,
        || async { (agent_status(&env, "i-good").await.as_deref() == Some("ALIVE")).then_some(()) },
    )
    .await;
    assert_eq!(agent_status(&env, "i-bad").await, None);
    wait_for("every entry acknowledged", LIMIT, || async {
        (pending_count(&env).await == 0).then_some(())
    })
    .await;
    for id in &bad_ids {
        assert!(
            lines.contains(&["malformed", &format!("stream_id={id}")]),
            "no log line names the malformed entry {id}"
        );
    }
    assert!(lines.contains(&["unknown event name", "agent_exploded"]));
    assert!(lines.contains(&["more than", "accepted"]));
}

#[actix::test]
async fn two_workers_handle_every_heartbeat_exactly_once() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let log = test_log(&lines);
    let interest = EventInterest::names(&["agent_heartbeat"]);
    let (record_a, seen_a) = recorder(interest.clone());
    let (record_b, seen_b) = recorder(interest);
    let worker_a = start_worker(&env, &log, "w-a", TIMEOUT, vec![record_a]).await;
    let worker_b = start_worker(&env, &log, "w-b", TIMEOUT, vec![record_b]).await;

    // 23.09 agents: 26.x ones cap the stream at ~128 entries on every XADD, which would drop
    // some of a 500-entry burst before any manager reads it.
    let agents = fleet("i-pair-", 100, WireFormat::Args, 20000);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.extend(writer.heartbeat_all(&agents).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent: HashSet<String> = sent.into_iter().collect();
    assert_eq!(sent.len(), 500);
    wait_for(
        "both workers together to see every heartbeat",
        LIMIT,
        || async {
            let total = seen_a.lock().unwrap().len() + seen_b.lock().unwrap().len();
            (total >= sent.len()).then_some(())
        },
    )
    .await;
    let a: Vec<String> = seen_a.lock().unwrap().clone();
    let b: Vec<String> = seen_b.lock().unwrap().clone();
    let a_set: HashSet<String> = a.iter().cloned().collect();
    let b_set: HashSet<String> = b.iter().cloned().collect();
    assert_eq!(a.len(), a_set.len(), "worker a saw a heartbeat twice");
    assert_eq!(b.len(), b_set.len(), "worker b saw a heartbeat twice");
    assert!(
        a_set.is_disjoint(&b_set),
        "a heartbeat was handled by both workers"
    );
    let union: HashSet<String> = a_set.union(&b_set).cloned().collect();
    assert_eq!(union, sent);

    // The trackers' lanes run apart from the recorders': they may still be handling theirs.
    let (stats_a, stats_b) = wait_for(
        "both trackers to handle their heartbeats",
        LIMIT,
        || async {
            let stats_a = worker_a.tracker.send(GetTrackerStats).await.unwrap();
            let stats_b = worker_b.tracker.send(GetTrackerStats).await.unwrap();
            let heartbeats = stats_a.heartbeats + stats_b.heartbeats;
            let inserted = stats_a.inserted + stats_b.inserted;
            (heartbeats >= 500 && inserted >= 100).then_some((stats_a, stats_b))
        },
    )
    .await;
    assert_eq!(stats_a.heartbeats + stats_b.heartbeats, 500);
    assert_eq!(stats_a.inserted + stats_b.inserted, 100);
    let rows: i64 = env
        .db
        .connect()
        .await
        .query_one("SELECT count(*) FROM agents WHERE status = 'ALIVE'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 100);
}

#[actix::test]
async fn entries_left_pending_by_a_dead_worker_are_claimed_by_another() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let agents = fleet("i-orphan-", 20, WireFormat::Args, 21000);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    writer.heartbeat_all(&agents).await.unwrap();

    // A worker reads the entries and dies before acknowledging them.
    let mut redis = env.redis.connection(db::STREAM).await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("manager")
        .arg("w-dead")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg("events")
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(pending_count(&env).await, 20);

    let lines = LogLines::default();
    let _survivor = start_worker(&env, &test_log(&lines), "w-alive", TIMEOUT, vec![]).await;
    wait_for("the orphaned heartbeats to be handled", LIMIT, || async {
        let rows: i64 = env
            .db
            .connect()
            .await
            .query_one(
                "SELECT count(*) FROM agents WHERE id LIKE 'i-orphan-%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (rows == 20).then_some(())
    })
    .await;
    wait_for("no entry left pending", LIMIT, || async {
        (pending_count(&env).await == 0).then_some(())
    })
    .await;
    assert!(lines.contains(&["claimed entries left pending", "count=20"]));
}

/// A worker's session-event feed for `env`, supervised as the worker starts it.
async fn session_feed(env: &TestEnv, log: slog::Logger) -> actix::Addr<SessionEventFeed> {
    let pool = DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 2,
    }
    .connect_pool()
    .await
    .unwrap();
    let feed = SessionEventFeed::new(log, redis_settings(env), pool);
    actix::Supervisor::start(move |_| feed)
}

/// A PENDING session in the database (the example fixtures must be loaded): its id and its
/// main kernel's.
async fn a_session(env: &TestEnv) -> (Uuid, Uuid) {
    let client = env.db.connect().await;
    let session = enqueue_sessions(&client, ADMIN_AK, 1, 1, 1).await[0];
    let kernel: Uuid = client
        .query_one("SELECT id FROM kernels WHERE session_id = $1", &[&session])
        .await
        .unwrap()
        .get(0);
    (session, kernel)
}

fn session_event(kind: SessionEventKind, session_id: Uuid) -> Event {
    Event::Session(SessionEvent {
        kind,
        session_id,
        creation_id: None,
        reason: "test".into(),
        exit_code: None,
    })
}

fn kernel_event(kind: KernelEventKind, session_id: Uuid, kernel_id: Uuid) -> Event {
    Event::Kernel(KernelEvent {
        kind,
        kernel_id,
        session_id,
        reason: "test".into(),
        creation_info: serde_json::Value::Null,
        exit_code: None,
    })
}

/// The next record of `events` (failing after [`LIMIT`]): its name and its session.
async fn next_record(events: &mut SessionEvents) -> (String, Uuid) {
    let record = tokio::time::timeout(LIMIT, events.recv())
        .await
        .expect("no event within the limit")
        .expect("the feed is open and keeps up");
    (record.name.clone(), record.subject.session_id)
}

/// 26.x agents trim the stream to about 128 entries as they add to it, so an entry the group
/// has not read within about 128 newer ones is gone for good. The worker's actors share one
/// thread, and a long scheduling pass keeps it busy; the reader has a thread of its own, so
/// entries added meanwhile are all read in time and handled once the actors' thread is free.
#[actix::test]
async fn entries_added_while_the_actors_thread_is_busy_are_not_lost_to_the_agents_trimming() {
    const ENTRIES: usize = 1000;
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let (recorder, recorded) = recorder(EventInterest::names(&["agent_started"]));
    let lines = LogLines::default();
    let _worker = start_worker(&env, &test_log(&lines), "w1", TIMEOUT, vec![recorder]).await;
    let agent = SimAgent::new("i-busy", WireFormat::Payload, 16001);
    let started = Event::AgentStarted {
        reason: "self-started".into(),
    };
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let first = writer.send(&agent, &started).await.unwrap();
    wait_for("the worker to read", LIMIT, || async {
        recorded.lock().unwrap().contains(&first).then_some(())
    })
    .await;

    // Another thread adds the entries, as agents do, over about a second, while this thread
    // (the actors') is blocked for longer.
    let redis_addr = env.redis.addr();
    let adder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut writer = StreamWriter::connect(&redis_addr).await.unwrap();
            let mut ids = Vec::with_capacity(ENTRIES);
            for n in 0..ENTRIES {
                ids.push(writer.send(&agent, &started).await.unwrap());
                if n % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            ids
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let added = adder.join().unwrap();
    let mut redis = env.redis.connection(db::STREAM).await;
    let length: usize = redis::cmd("XLEN")
        .arg("events")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        length < ENTRIES / 2,
        "the agents' MAXLEN ~ 128 trimmed the stream ({length} entries left)"
    );
    wait_for("every added entry handled", LIMIT, || async {
        let recorded = recorded.lock().unwrap();
        let seen: HashSet<&String> = recorded.iter().collect();
        added.iter().all(|id| seen.contains(id)).then_some(())
    })
    .await;
}

/// Two workers' feeds (no consumer group between them): each delivers every forwarded event,
/// session and kernel ones, with the subject looked up; an event about a session this
/// database does not know is left out.
#[actix::test]
async fn every_worker_s_session_feed_sees_every_event() {
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let (session, kernel) = a_session(&env).await;
    let lines = LogLines::default();
    let feed_a = session_feed(&env, test_log(&lines)).await;
    let feed_b = session_feed(&env, test_log(&lines)).await;
    let mut events_a = session_feed::subscribe(&feed_a).await.unwrap();
    let mut events_b = session_feed::subscribe(&feed_b).await.unwrap();
    // Produced right after the subscriptions were answered: their start is fixed before.
    let producer = producer(&env).await;
    for event in [
        session_event(SessionEventKind::Enqueued, Uuid::new_v4()),
        session_event(SessionEventKind::Enqueued, session),
        kernel_event(KernelEventKind::Pulling, session, kernel),
        // Not forwarded.
        Event::AgentStarted {
            reason: "self-started".into(),
        },
        session_event(SessionEventKind::Scheduled, session),
    ] {
        producer.produce(&event).await.unwrap();
    }
    for events in [&mut events_a, &mut events_b] {
        assert_eq!(
            next_record(events).await,
            ("session_enqueued".to_owned(), session)
        );
        assert_eq!(
            next_record(events).await,
            ("kernel_pulling".to_owned(), session)
        );
        assert_eq!(
            next_record(events).await,
            ("session_scheduled".to_owned(), session)
        );
    }
}

/// The feed under `actix::Supervisor`: stopped, it comes back on the same mailbox (the restart
/// is counted), a receiver opened before the stop keeps receiving, including an event produced
/// while the feed restarted (the fresh reader reads on after the last entry handled), and new
/// subscribers join.
#[actix::test]
async fn a_stopped_session_feed_restarts_and_its_open_receivers_keep_receiving() {
    use bai_actors::supervision::{InjectFault, restarts_of};

    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let (session, _) = a_session(&env).await;
    let lines = LogLines::default();
    let feed = session_feed(&env, test_log(&lines)).await;
    let mut before_stop = session_feed::subscribe(&feed).await.unwrap();
    let producer = producer(&env).await;
    producer
        .produce(&session_event(SessionEventKind::Enqueued, session))
        .await
        .unwrap();
    assert_eq!(
        next_record(&mut before_stop).await,
        ("session_enqueued".to_owned(), session)
    );

    let restarts = restarts_of(session_feed::ACTOR_NAME);
    feed.send(InjectFault::Stop).await.unwrap();
    producer
        .produce(&session_event(SessionEventKind::Scheduled, session))
        .await
        .unwrap();
    assert_eq!(
        next_record(&mut before_stop).await,
        ("session_scheduled".to_owned(), session)
    );
    assert_eq!(restarts_of(session_feed::ACTOR_NAME), restarts + 1);
    assert!(lines.contains(&["session event feed: restarting", "restarts=1"]));
    assert!(lines.contains(&["a fresh reader continues for the open streams"]));

    let mut after_restart = session_feed::subscribe(&feed).await.unwrap();
    producer
        .produce(&session_event(SessionEventKind::Started, session))
        .await
        .unwrap();
    for events in [&mut before_stop, &mut after_restart] {
        assert_eq!(
            next_record(events).await,
            ("session_started".to_owned(), session)
        );
    }
    assert!(feed.connected());
}

/// Redis goes away under a reading feed and under a new subscription: the subscription fails
/// naming Redis (the next one, once Redis is back, starts a reader), and the receiver opened
/// before the outage keeps receiving after it (its reader backs off, reconnects and reads on).
#[actix::test]
async fn the_session_feed_outlives_a_redis_outage() {
    let mut env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let (session, _) = a_session(&env).await;
    let lines = LogLines::default();
    let reading = session_feed(&env, test_log(&lines)).await;
    let idle = session_feed(&env, test_log(&lines)).await;
    let mut open = session_feed::subscribe(&reading).await.unwrap();

    env.redis.stop();
    let error = session_feed::subscribe(&idle)
        .await
        .expect_err("no reader starts without Redis");
    assert!(matches!(error, FeedError::Redis(_)), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("cannot start reading the event stream: "),
        "{error}"
    );
    wait_for("the reader to notice that Redis is gone", LIMIT, || async {
        lines
            .contains(&["session event feed: Redis failed; reconnecting"])
            .then_some(())
    })
    .await;
    env.redis.restart();

    let producer = producer(&env).await;
    producer
        .produce(&session_event(SessionEventKind::Enqueued, session))
        .await
        .unwrap();
    assert_eq!(
        next_record(&mut open).await,
        ("session_enqueued".to_owned(), session)
    );
    assert!(lines.contains(&["session event feed: reconnected to Redis"]));
    let mut after = session_feed::subscribe(&idle).await.unwrap();
    producer
        .produce(&session_event(SessionEventKind::Scheduled, session))
        .await
        .unwrap();
    for events in [&mut open, &mut after] {
        assert_eq!(
            next_record(events).await,
            ("session_scheduled".to_owned(), session)
        );
    }
}

/// A subscriber that stops on its first batch without replying (as an actor that fails
/// mid-batch), and handles the batches after its supervisor restarted it.
struct StopsOnce {
    batches: usize,
    handled: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl actix::Actor for StopsOnce {
    type Context = actix::Context<Self>;
}

impl actix::Supervised for StopsOnce {}

impl actix::Handler<bai_actors::event_bus::EventBatch> for StopsOnce {
    type Result = actix::ResponseActFuture<Self, Result<(), bai_actors::event_bus::Unhandled>>;

    fn handle(
        &mut self,
        batch: bai_actors::event_bus::EventBatch,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        use actix::{ActorContext, WrapFuture};
        self.batches += 1;
        if self.batches == 1 {
            // Stopping drops the reply in flight: the bus sees the batch unhandled.
            ctx.stop();
            return Box::pin(std::future::pending().into_actor(self));
        }
        let ids = batch.events.into_iter().map(|event| event.stream_id);
        self.handled.lock().unwrap().extend(ids);
        Box::pin(actix::fut::ready(Ok(())))
    }
}

#[actix::test]
async fn events_a_subscriber_did_not_handle_stay_pending_and_come_again_once_it_is_back() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let flaky = actix::Supervisor::start({
        let handled = handled.clone();
        move |_| StopsOnce {
            batches: 0,
            handled,
        }
    });
    let subscription = bai_actors::event_bus::Subscription {
        name: "stops-once".into(),
        interest: EventInterest::names(&["agent_started"]),
        recipient: flaky.recipient(),
    };
    let _worker = start_worker(&env, &test_log(&lines), "w1", TIMEOUT, vec![subscription]).await;

    let agent = SimAgent::new("i-flaky", WireFormat::Payload, 16001);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let started = bai_actors::wire::Event::AgentStarted {
        reason: "self-started".into(),
    };
    let id = writer.send(&agent, &started).await.unwrap();
    wait_for(
        "the restarted subscriber to get the event again",
        LIMIT,
        || async { handled.lock().unwrap().contains(&id).then_some(()) },
    )
    .await;
    assert!(lines.contains(&["did not handle its events", "stops-once"]));
    wait_for("the event to be acknowledged", LIMIT, || async {
        (pending_count(&env).await == 0).then_some(())
    })
    .await;
    // Handled once after the restart, not again.
    assert_eq!(*handled.lock().unwrap(), vec![id]);
}

/// A subscriber that holds its first batch until the test opens the gate, and records the
/// stream ids of every batch it handles.
struct HeldAtTheGate {
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
    handled: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl actix::Actor for HeldAtTheGate {
    type Context = actix::Context<Self>;
}

impl actix::Handler<bai_actors::event_bus::EventBatch> for HeldAtTheGate {
    type Result = actix::ResponseFuture<Result<(), bai_actors::event_bus::Unhandled>>;

    fn handle(
        &mut self,
        batch: bai_actors::event_bus::EventBatch,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        let gate = self.gate.take();
        let handled = self.handled.clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            let ids = batch.events.into_iter().map(|event| event.stream_id);
            handled.lock().unwrap().extend(ids);
            Ok(())
        })
    }
}

#[actix::test]
async fn a_slow_subscriber_holds_back_only_its_own_events_and_gets_them_in_order() {
    const ENTRIES: usize = 200;
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let (gate, held) = tokio::sync::oneshot::channel();
    let slow_handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow = HeldAtTheGate {
        gate: Some(held),
        handled: slow_handled.clone(),
    };
    let interest = EventInterest::names(&["agent_started"]);
    let slow = bai_actors::event_bus::Subscription {
        name: "slow".into(),
        interest: interest.clone(),
        recipient: actix::Actor::start(slow).recipient(),
    };
    let (recorder, recorded) = recorder(interest);
    let lines = LogLines::default();
    let _worker = start_worker(&env, &test_log(&lines), "w1", TIMEOUT, vec![slow, recorder]).await;

    let agent = SimAgent::new("i-slow", WireFormat::Payload, 16001);
    let started = Event::AgentStarted {
        reason: "self-started".into(),
    };
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let mut added = Vec::with_capacity(ENTRIES);
    for _ in 0..ENTRIES {
        added.push(writer.send(&agent, &started).await.unwrap());
    }
    wait_for(
        "the other subscriber to handle every entry while the slow one holds its first batch",
        LIMIT,
        || async { (*recorded.lock().unwrap() == added).then_some(()) },
    )
    .await;
    assert!(slow_handled.lock().unwrap().is_empty());
    assert!(
        pending_count(&env).await > 0,
        "entries the slow subscriber has not handled stay unacknowledged"
    );

    open_gate_and_expect_each_entry_once(gate, &slow_handled, &added, &env).await;
}

/// Lets a `HeldAtTheGate` subscriber go, then checks that it handles every added entry once,
/// in stream order, and that all of them end up acknowledged.
async fn open_gate_and_expect_each_entry_once(
    gate: tokio::sync::oneshot::Sender<()>,
    handled: &std::sync::Mutex<Vec<String>>,
    added: &[String],
    env: &TestEnv,
) {
    gate.send(()).unwrap();
    wait_for("the held subscriber to catch up", LIMIT, || async {
        (handled.lock().unwrap().len() >= added.len()).then_some(())
    })
    .await;
    assert_eq!(
        *handled.lock().unwrap(),
        added,
        "every entry once, in stream order"
    );
    wait_for("every entry acknowledged", LIMIT, || async {
        (pending_count(env).await == 0).then_some(())
    })
    .await;
}

/// XPENDING's per-consumer counts of the manager group.
async fn pending_by_consumer(env: &TestEnv) -> std::collections::HashMap<String, i64> {
    let mut counts = std::collections::HashMap::new();
    if let Some(redis::Value::Array(consumers)) = xpending_summary(env).await.get(3) {
        for consumer in consumers {
            if let redis::Value::Array(pair) = consumer
                && let [
                    redis::Value::BulkString(name),
                    redis::Value::BulkString(count),
                ] = pair.as_slice()
            {
                let name = String::from_utf8_lossy(name).into_owned();
                let count = String::from_utf8_lossy(count).parse().unwrap();
                counts.insert(name, count);
            }
        }
    }
    counts
}

#[actix::test]
async fn a_worker_whose_queue_is_full_keeps_its_entries_from_other_workers() {
    use bai_actors::event_bus::MAX_QUEUED_ENTRIES;
    // A full queue, and one read batch more waiting for room in it.
    let entries = MAX_QUEUED_ENTRIES + 500;
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    create_group(&env).await;
    let lines = LogLines::default();
    let log = test_log(&lines);
    let interest = EventInterest::names(&["agent_started"]);
    let (gate, held) = tokio::sync::oneshot::channel();
    let slow_handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow = bai_actors::event_bus::Subscription {
        name: "slow".into(),
        interest: interest.clone(),
        recipient: actix::Actor::start(HeldAtTheGate {
            gate: Some(held),
            handled: slow_handled.clone(),
        })
        .recipient(),
    };
    let _busy = start_worker(&env, &log, "w-busy", TIMEOUT, vec![slow]).await;

    // 23.09 agents, which do not trim the stream.
    let agent = SimAgent::new("i-busy", WireFormat::Args, 16001);
    let started = Event::AgentStarted {
        reason: "self-started".into(),
    };
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    let mut added = Vec::with_capacity(entries);
    while added.len() < entries {
        let burst = (entries - added.len()).min(500);
        let events = std::iter::repeat_with(|| (&agent, started.clone())).take(burst);
        added.extend(writer.send_many(events).await.unwrap());
    }
    wait_for("the busy worker to read every entry", LIMIT, || async {
        let pending = pending_by_consumer(&env).await;
        (pending.get("w-busy").copied() == Some(entries as i64)).then_some(())
    })
    .await;

    // Well past the claim's idle time, with another worker claiming every second meanwhile.
    let (recorder, taken_over) = recorder(interest);
    let _other = start_worker(&env, &log, "w-other", TIMEOUT, vec![recorder]).await;
    tokio::time::sleep(bai_actors::event_bus::CLAIM_MIN_IDLE * 4).await;
    assert!(
        taken_over.lock().unwrap().is_empty(),
        "another worker took over entries the busy worker holds"
    );
    assert_eq!(
        pending_by_consumer(&env).await.get("w-busy").copied(),
        Some(entries as i64)
    );

    open_gate_and_expect_each_entry_once(gate, &slow_handled, &added, &env).await;
    assert!(taken_over.lock().unwrap().is_empty());
}
