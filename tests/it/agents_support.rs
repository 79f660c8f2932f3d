//! Shared helpers of the agents tests: a worker's event bus and heartbeat tracker started
//! against a `TestEnv`, a log drain the tests can read, and polling helpers.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::event_bus::{EventBatch, EventBus, EventInterest, Subscription, Unhandled};
use bai_actors::heartbeat::{self, HeartbeatTracker, TrackerDeps, TrackerSettings};
use bai_actors::lock::{ClusterLocks, LockBackendKind, LockService, LockSettings};
use bai_actors::redis::{RedisSettings, db};
use bai_actors::wire::{EventProducer, WireFormat};
use bai_schema::DbSettings;
use bai_testkit::TestEnv;

/// Log lines (message + key=value pairs) kept for assertions, also echoed to stderr.
#[derive(Clone, Default)]
pub struct LogLines(pub Arc<Mutex<Vec<String>>>);

impl LogLines {
    pub fn contains(&self, needles: &[&str]) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|line| needles.iter().all(|needle| line.contains(needle)))
    }
}

struct LineSerializer<'a>(&'a mut String);

impl slog::Serializer for LineSerializer<'_> {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl slog::Drain for LogLines {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let mut line = format!("{} {}", record.level().as_short_str(), record.msg());
        let _ = slog::KV::serialize(&record.kv(), record, &mut LineSerializer(&mut line));
        let _ = slog::KV::serialize(values, record, &mut LineSerializer(&mut line));
        eprintln!("{line}");
        self.0.lock().unwrap().push(line);
        Ok(())
    }
}

pub fn test_log(lines: &LogLines) -> slog::Logger {
    slog::Logger::root(lines.clone(), slog::o!())
}

pub async fn insert_scaling_group(env: &TestEnv, name: &str) {
    env.db
        .connect()
        .await
        .execute(
            "INSERT INTO scaling_groups (name, driver, scheduler) VALUES ($1, 'static', 'fifo') \
             ON CONFLICT DO NOTHING",
            &[&name],
        )
        .await
        .unwrap();
}

pub fn redis_settings(env: &TestEnv) -> RedisSettings {
    RedisSettings::parse(&env.redis.addr(), None).unwrap()
}

pub async fn etcd_store(env: &TestEnv) -> EtcdStore {
    EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap()
}

pub async fn producer(env: &TestEnv) -> EventProducer {
    let stream = redis_settings(env).connect(db::STREAM).await.unwrap();
    EventProducer::new(stream, WireFormat::Args)
}

/// One worker's event handling: an event bus consumer and a heartbeat tracker.
pub struct Worker {
    /// Held so the bus lives as long as the worker.
    _bus: Addr<EventBus>,
    pub tracker: Addr<HeartbeatTracker>,
}

pub async fn start_worker(
    env: &TestEnv,
    log: &slog::Logger,
    name: &str,
    heartbeat_timeout: Duration,
    extra: Vec<Subscription>,
) -> Worker {
    let redis = redis_settings(env);
    let pool = DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 4,
    }
    .connect_pool()
    .await
    .unwrap();
    // The workers of one test share one host's filelocks, like the worker processes of a
    // manager.
    let locks = ClusterLocks::start(LockService::new(
        LockSettings {
            backend: LockBackendKind::FileLock,
            manager_id: "i-agents-test".into(),
            ipc_base_path: env.path("ipc"),
            etcd: None,
            db: None,
            lifetime: bai_actors::lock::defaults::LIFETIME,
            acquire_timeout: bai_actors::lock::defaults::ACQUIRE_TIMEOUT,
        },
        pool.clone(),
    ));
    let deps = TrackerDeps {
        pool,
        locks,
        live: redis.connect(db::LIVE).await.unwrap(),
        images: redis.connect(db::IMAGE).await.unwrap(),
        producer: producer(env).await,
        etcd: etcd_store(env).await,
    };
    let log = log.new(slog::o!("worker" => name.to_owned()));
    let tracker = HeartbeatTracker::new(
        log.clone(),
        deps,
        TrackerSettings {
            heartbeat_timeout,
            sweep_interval: heartbeat::SWEEP_INTERVAL,
            worker: name.to_owned(),
        },
    )
    .start();
    let mut bus = EventBus::new(log, redis, name).with_subscriber(Subscription {
        name: "heartbeat-tracker".into(),
        interest: heartbeat::interest(),
        recipient: tracker.clone().recipient(),
    });
    for subscription in extra {
        bus = bus.with_subscriber(subscription);
    }
    Worker {
        _bus: bus.start(),
        tracker,
    }
}

/// Records the stream ids of every event it is handed.
#[derive(Default)]
pub struct Recorder {
    pub ids: Arc<Mutex<Vec<String>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<EventBatch> for Recorder {
    type Result = Result<(), Unhandled>;

    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        let mut ids = self.ids.lock().unwrap();
        ids.extend(batch.events.into_iter().map(|event| event.stream_id));
        Ok(())
    }
}

pub fn recorder(interest: EventInterest) -> (Subscription, Arc<Mutex<Vec<String>>>) {
    let recorder = Recorder::default();
    let ids = recorder.ids.clone();
    let subscription = Subscription {
        name: "recorder".into(),
        interest,
        recipient: recorder.start().recipient(),
    };
    (subscription, ids)
}

pub use bai_testkit::wait::wait_for;

pub async fn agent_status(env: &TestEnv, agent: &str) -> Option<String> {
    env.db
        .connect()
        .await
        .query_opt("SELECT status::text FROM agents WHERE id = $1", &[&agent])
        .await
        .unwrap()
        .map(|row| row.get(0))
}

/// The parts of the manager group's XPENDING summary: count, first id, last id, consumers.
pub async fn xpending_summary(env: &TestEnv) -> Vec<redis::Value> {
    let mut redis = env.redis.connection(db::STREAM).await;
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg("events")
        .arg("manager")
        .query_async(&mut redis)
        .await
        .unwrap();
    match summary {
        redis::Value::Array(parts) => parts,
        other => panic!("XPENDING answered {other:?}"),
    }
}

/// XPENDING count of the manager group.
pub async fn pending_count(env: &TestEnv) -> i64 {
    match xpending_summary(env).await.first() {
        Some(redis::Value::Int(count)) => *count,
        _ => 0,
    }
}

/// Creates the `manager` group at the stream's start, as a manager that ran before would have.
pub async fn create_group(env: &TestEnv) {
    let mut redis = env.redis.connection(db::STREAM).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("events")
        .arg("manager")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .unwrap();
}
