//! `[debug] periodic-sync-stats` on the real `bai-manager start-server` with a simulated agent:
//! with the flag on, a RUNNING kernel's `kernels.last_stat` follows its statistics in Redis
//! `stat` after each `do_sync_kernel_stats` the agent sends (23.09 tuple and payload form; ids
//! that are not UUIDs and unknown kernels are skipped, a terminated kernel is left as it was at
//! termination); with the flag off the event changes
//! nothing (shown once the bus has read past it: an `agent_error` sent after it has landed).

use std::time::Duration;

use bai_actors::wire::{AgentErrorReport, Event, Value as Msgpack, WireFormat, msgpack};
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter, run_heartbeats};
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::wait::wait_for as wait_until;
use serde_json::{Value, json};

use crate::api_support::{ADMIN_SK, Signer};
use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image};
use crate::sched_support::{ADMIN_AK, add_sim_agents, scheduling_world, sim_fleet};

/// A deadline for states the manager reaches by itself; never a measurement.
const LIMIT: Duration = Duration::from_secs(60);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct StatWorld {
    env: TestEnv,
    db: tokio_postgres::Client,
    writer: StreamWriter,
    /// Sends the test's own events (23.09 tuples).
    reporter: SimAgent,
    _manager: ManagerProcess,
    _heartbeats: AbortOnDrop,
    _servers: Vec<tokio::task::JoinHandle<Result<(), bai_agent_sim::SimError>>>,
    _dump: DumpOnFailure,
}

impl StatWorld {
    /// One simulated agent and a manager with `[debug] periodic-sync-stats = sync`.
    async fn start(sync: bool) -> StatWorld {
        let env = TestEnv::new().await;
        let db = scheduling_world(&env).await;
        add_test_image(&db).await;
        env.etcd_put("manager/status", "running").await;
        let agents = sim_fleet("i-stat", 1, WireFormat::Args);
        add_sim_agents(&db, &agents).await;
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let servers = serve_fleet(&agents, &writer, &ledger);
        let mut heartbeat_writer = writer.clone();
        let heartbeats = tokio::spawn(async move {
            let _ = run_heartbeats(
                &mut heartbeat_writer,
                &agents,
                Duration::from_secs(3),
                1,
                u64::MAX,
            )
            .await;
        });
        let config = env.manager_toml("");
        // `[debug]` is the file's last section.
        let mut text = std::fs::read_to_string(&config).expect("reading manager.toml");
        text.push_str(&format!("periodic-sync-stats = {sync}\n"));
        std::fs::write(&config, text).expect("writing manager.toml");
        let output = env.path("manager.out");
        let mut manager = ManagerProcess::start_server(&config, &[], &output);
        manager.wait_for_port(env.service_port);
        StatWorld {
            _dump: DumpOnFailure(output, env.path("no-agent-log")),
            env,
            db,
            writer,
            reporter: SimAgent::new("i-stat-reporter", WireFormat::Args, free_port()),
            _manager: manager,
            _heartbeats: AbortOnDrop(heartbeats),
            _servers: servers,
        }
    }

    /// A request signed by the superadmin; the status and the JSON body.
    async fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(LIMIT)
            .build()
            .unwrap();
        let content_type = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let admin = Signer::new(ADMIN_AK, ADMIN_SK);
        let url = format!("http://127.0.0.1:{}{path}", self.env.service_port);
        let mut request = http.request(method.clone(), url);
        for (header, value) in
            admin.headers(method.as_str(), path, content_type, chrono::Utc::now())
        {
            request = request.header(header, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let reply = request.send().await.expect("a reply from the manager");
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn wait_session(&self, session: uuid::Uuid, wanted: &str) {
        wait_until(&format!("session {session} {wanted}"), LIMIT, || async {
            let row = self
                .db
                .query_one(
                    "SELECT status::text FROM sessions WHERE id = $1",
                    &[&session],
                )
                .await
                .expect("reading a session");
            let status: String = row.get(0);
            if status == wanted {
                Ok(())
            } else {
                Err(status)
            }
        })
        .await;
    }

    /// Creates a session through `POST /session`, waits for it to run; returns its kernel id.
    async fn running_kernel(&self, name: &str) -> uuid::Uuid {
        let body = json!({
            "name": name, "image": IMAGE, "type": "interactive", "group": "default",
            "domain": "default", "clusterSize": 1, "clusterMode": "single-node",
            "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": false,
            "config": {"resources": {"cpu": "1", "mem": "512m"}},
        });
        let (status, reply) = self
            .signed(reqwest::Method::POST, "/session", Some(body))
            .await;
        assert!(status < 300, "creating {name}: {status} {reply}");
        let session: uuid::Uuid = reply["sessionId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no session id in {reply}"));
        self.wait_session(session, "RUNNING").await;
        self.db
            .query_one("SELECT id FROM kernels WHERE session_id = $1", &[&session])
            .await
            .expect("reading the kernel")
            .get(0)
    }

    /// Writes a kernel's live statistics into Redis `stat` as the agent does.
    async fn write_stats(&self, kernel_id: &str, cpu_pct: &str) {
        let stat = Msgpack::map_of([(
            "cpu_util",
            Msgpack::map_of([
                ("current", Msgpack::str("0")),
                ("capacity", Msgpack::str("0")),
                ("pct", Msgpack::str(cpu_pct)),
                ("unit_hint", Msgpack::str("percent")),
            ]),
        )]);
        let mut redis = self.env.redis.connection(0).await;
        redis::cmd("SET")
            .arg(kernel_id)
            .arg(msgpack::encode(&stat))
            .query_async::<()>(&mut redis)
            .await
            .expect("writing the kernel's statistics");
    }

    async fn last_stat(&self, kernel_id: uuid::Uuid) -> Option<Value> {
        self.db
            .query_one("SELECT last_stat FROM kernels WHERE id = $1", &[&kernel_id])
            .await
            .expect("reading last_stat")
            .get(0)
    }

    async fn send(&self, agent: &SimAgent, event: &Event) {
        self.writer
            .clone()
            .send(agent, event)
            .await
            .expect("sending an event");
    }

    /// Sends `do_sync_kernel_stats` for `kernel_ids` until the kernel's `last_stat` shows
    /// `cpu_pct`.
    async fn sync_until(
        &self,
        agent: &SimAgent,
        kernel: uuid::Uuid,
        kernel_ids: &[String],
        cpu_pct: &str,
    ) {
        let event = Event::DoSyncKernelStats {
            kernel_ids: kernel_ids.to_vec(),
        };
        wait_until(&format!("last_stat at {cpu_pct}%"), LIMIT, || async {
            let stat = self.last_stat(kernel).await;
            if stat.as_ref().map(|s| &s["cpu_util"]["pct"]) == Some(&json!(cpu_pct)) {
                return Ok(());
            }
            self.send(agent, &event).await;
            Err(format!("{stat:?}"))
        })
        .await;
    }
}

#[tokio::test]
async fn with_the_flag_last_stat_follows_the_agents_statistics() {
    let world = StatWorld::start(true).await;
    let kernel = world.running_kernel("stat-on").await;
    assert_eq!(world.last_stat(kernel).await, None);
    let ghost = uuid::Uuid::new_v4().to_string();
    world.write_stats(&ghost, "1.0").await;
    world.write_stats(&kernel.to_string(), "12.5").await;
    let ids = vec!["not-a-kernel".to_owned(), ghost, kernel.to_string()];
    // The 23.09 tuple `([kernel_id, ...],)`.
    let reporter = SimAgent::new("i-stat-reporter", WireFormat::Args, free_port());
    world.sync_until(&reporter, kernel, &ids, "12.5").await;
    let stat = world.last_stat(kernel).await.expect("last_stat");
    assert_eq!(stat["cpu_util"]["unit_hint"], "percent", "{stat}");

    // A second session ends; its kernel keeps the statistics it had at termination.
    let ended = world.running_kernel("stat-ended").await;
    world.write_stats(&ended.to_string(), "33.0").await;
    let (status, reply) = world
        .signed(reqwest::Method::DELETE, "/session/stat-ended", None)
        .await;
    assert_eq!(status, 200, "{reply}");
    let ended_session: uuid::Uuid = world
        .db
        .query_one("SELECT session_id FROM kernels WHERE id = $1", &[&ended])
        .await
        .unwrap()
        .get(0);
    world.wait_session(ended_session, "TERMINATED").await;
    let kept = world.last_stat(ended).await;

    // The statistics change; the next event (here in the payload form) carries them over for
    // the running kernel and, in the same statement, leaves the terminated one alone.
    world.write_stats(&kernel.to_string(), "80.0").await;
    world.write_stats(&ended.to_string(), "99.0").await;
    let payload_agent = SimAgent::new("i-stat-payload", WireFormat::Payload, free_port());
    world
        .sync_until(
            &payload_agent,
            kernel,
            &[ended.to_string(), kernel.to_string()],
            "80.0",
        )
        .await;
    assert_eq!(world.last_stat(ended).await, kept);
}

#[tokio::test]
async fn without_the_flag_do_sync_kernel_stats_changes_nothing() {
    let world = StatWorld::start(false).await;
    let kernel = world.running_kernel("stat-off").await;
    world.write_stats(&kernel.to_string(), "12.5").await;
    let sync = Event::DoSyncKernelStats {
        kernel_ids: vec![kernel.to_string()],
    };
    let marker = Event::AgentError(AgentErrorReport {
        message: "stat-sync marker".into(),
        traceback: None,
        user: None,
        context_env: json!({}),
        severity: "error".into(),
    });
    // The bus reads the stream in order: once the error report sent after the sync event has
    // been stored, the sync event has been read (and, without a subscriber, dropped).
    wait_until("the marker error log", LIMIT, || async {
        let stored: i64 = world
            .db
            .query_one(
                "SELECT count(*) FROM error_logs WHERE message = 'stat-sync marker'",
                &[],
            )
            .await
            .expect("counting error logs")
            .get(0);
        if stored > 0 {
            return Ok(());
        }
        world.send(&world.reporter, &sync).await;
        world.send(&world.reporter, &marker).await;
        Err("not yet".to_owned())
    })
    .await;
    assert_eq!(world.last_stat(kernel).await, None);
}
