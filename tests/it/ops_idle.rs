//! Idle checks on the real `bai-manager start-server` with a simulated agent, the checks every
//! second (`[manager] idle-check-interval = 1.0`) and short windows in etcd `config/idle/*`:
//! an untouched session ends with `idle-timeout` while one that keeps executing code lives on,
//! a session past its policy's `max_session_lifetime` ends with `idle-session-lifetime`, low
//! utilization (statistics written to Redis as the agent writes them) ends a session with
//! `idle-utilization` while high utilization keeps one, and `GET /session/{id}` shows the
//! checkers' remaining times.

use std::time::Duration;

use bai_actors::wire::{Value as Msgpack, WireFormat, msgpack};
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{StreamWriter, run_heartbeats};
use bai_testkit::TestEnv;
use bai_testkit::wait::wait_for as wait_until;
use serde_json::{Value, json};

use crate::api_support::{ADMIN_SK, Signer};
use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image};
use crate::sched_support::{ADMIN_AK, add_sim_agents, scheduling_world, sim_fleet};

/// A deadline for states the manager reaches by itself (far above the windows used here).
const LIMIT: Duration = Duration::from_secs(60);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct IdleWorld {
    env: TestEnv,
    db: tokio_postgres::Client,
    http: reqwest::Client,
    admin: Signer,
    _manager: ManagerProcess,
    _heartbeats: AbortOnDrop,
    _servers: Vec<tokio::task::JoinHandle<Result<(), bai_agent_sim::SimError>>>,
    _dump: DumpOnFailure,
}

impl IdleWorld {
    /// A simulated agent, the checkers of `idle_config` (etcd keys under `config/idle/`), and
    /// a manager that checks every second.
    async fn start(idle_config: &[(&str, &str)]) -> IdleWorld {
        let env = TestEnv::new().await;
        let db = scheduling_world(&env).await;
        add_test_image(&db).await;
        env.etcd_put("manager/status", "running").await;
        for (key, value) in idle_config {
            env.etcd_put(&format!("config/idle/{key}"), value).await;
        }
        let agents = sim_fleet("i-idle", 1, WireFormat::Payload);
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
        let config = env.manager_toml("idle-check-interval = 1.0");
        let output = env.path("manager.out");
        let mut manager = ManagerProcess::start_server(&config, &[], &output);
        manager.wait_for_port(env.service_port);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(LIMIT)
            .build()
            .unwrap();
        IdleWorld {
            _dump: DumpOnFailure(output, env.path("no-agent-log")),
            env,
            db,
            http,
            admin: Signer::new(ADMIN_AK, ADMIN_SK),
            _manager: manager,
            _heartbeats: AbortOnDrop(heartbeats),
            _servers: servers,
        }
    }

    async fn signed(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let content_type = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.env.service_port);
        let mut request = self.http.request(method.clone(), url);
        for (name, value) in self.admin.headers(
            method.as_str(),
            path_and_query,
            content_type,
            chrono::Utc::now(),
        ) {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let reply = request.send().await.expect("a reply from the manager");
        let status = reply.status().as_u16();
        let text = reply.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a session through `POST /session` and waits for it to run; returns its id.
    async fn running_session(&self, name: &str) -> uuid::Uuid {
        let body = json!({
            "name": name, "image": IMAGE, "type": "interactive", "group": "default",
            "domain": "default", "clusterSize": 1, "clusterMode": "single-node",
            "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": false,
            "config": {"resources": {"cpu": "1", "mem": "512m"}},
        });
        let (status, reply) = self
            .signed(reqwest::Method::POST, "/session", Some(&body))
            .await;
        assert!(status < 300, "creating {name}: {status} {reply}");
        let id: uuid::Uuid = reply["sessionId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no session id in {reply}"));
        wait_until(&format!("{name} to run"), LIMIT, || async {
            match self.status(id).await.0.as_str() {
                "RUNNING" => Ok(()),
                other => Err(other.to_owned()),
            }
        })
        .await;
        id
    }

    /// The session's status and status_info.
    async fn status(&self, id: uuid::Uuid) -> (String, String) {
        let row = self
            .db
            .query_one(
                "SELECT status::text, coalesce(status_info, '') FROM sessions WHERE id = $1",
                &[&id],
            )
            .await
            .expect("reading a session");
        (row.get(0), row.get(1))
    }

    async fn wait_terminated(&self, id: uuid::Uuid, what: &str) -> String {
        wait_until(what, LIMIT, || async {
            let (status, status_info) = self.status(id).await;
            if status == "TERMINATED" {
                Ok(())
            } else {
                Err(format!("{status} {status_info}"))
            }
        })
        .await;
        self.status(id).await.1
    }

    async fn idle_checks(&self, id: uuid::Uuid) -> Value {
        let (status, reply) = self
            .signed(reqwest::Method::GET, &format!("/session/{id}"), None)
            .await;
        assert_eq!(status, 200, "{reply}");
        reply["idleChecks"].clone()
    }

    async fn set_policy(&self, assignments: &str) {
        self.db
            .batch_execute(&format!(
                "UPDATE keypair_resource_policies SET {assignments} WHERE name = 'sched-test'"
            ))
            .await
            .expect("changing the keypair policy");
    }

    /// Writes the kernel's live statistics into Redis `stat` as the agent does (msgpack of
    /// metric → {current, capacity, pct}, numbers as strings).
    async fn write_stats(&self, session_id: uuid::Uuid, cpu_pct: &str) {
        let kernel_id: uuid::Uuid = self
            .db
            .query_one(
                "SELECT id FROM kernels WHERE session_id = $1",
                &[&session_id],
            )
            .await
            .unwrap()
            .get(0);
        let metric = |current: &str, pct: &str| {
            Msgpack::map_of([
                ("current", Msgpack::str(current)),
                ("capacity", Msgpack::str("0")),
                ("pct", Msgpack::str(pct)),
                ("unit_hint", Msgpack::str("percent")),
            ])
        };
        let stat = Msgpack::map_of([
            ("cpu_util", metric("0", cpu_pct)),
            ("mem", metric("100000000", "10.0")),
        ]);
        let mut redis = self.env.redis.connection(0).await;
        redis::cmd("SET")
            .arg(kernel_id.to_string())
            .arg(msgpack::encode(&stat))
            .query_async::<()>(&mut redis)
            .await
            .expect("writing the kernel's statistics");
    }
}

#[tokio::test]
async fn network_timeout_ends_an_untouched_session_and_spares_a_busy_one() {
    let world = IdleWorld::start(&[
        ("enabled", "network_timeout"),
        ("checkers/network_timeout/threshold", "10m"),
    ])
    .await;
    let idle = world.running_session("idle-net").await;
    let busy = world.running_session("busy-net").await;
    // The policy's idle_timeout (seconds) overrides the checker's threshold.
    world.set_policy("idle_timeout = 4").await;

    // Keep `busy-net` busy with code runs until `idle-net` is gone.
    let mut runs = 0;
    let info = loop {
        let body = json!({"mode": "query", "code": "print(1)", "runId": format!("run{runs}")});
        let (status, reply) = world
            .signed(reqwest::Method::POST, "/session/busy-net", Some(&body))
            .await;
        assert_eq!(status, 200, "{reply}");
        runs += 1;
        let (status, info) = world.status(idle).await;
        if status == "TERMINATED" {
            break info;
        }
        assert!(runs < 120, "idle-net was never ended: {status} {info}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(info, "idle-timeout");
    // The same check pass looked at `busy-net`, touched less than a timeout ago.
    assert_eq!(world.status(busy).await.0, "RUNNING");
    let checks = world.idle_checks(busy).await;
    let remaining = checks["network_timeout"]["remaining"]
        .as_f64()
        .unwrap_or_else(|| panic!("no network_timeout remaining time in {checks}"));
    assert!(remaining > 0.0 && remaining <= 4.0, "{checks}");
    assert_eq!(
        checks["network_timeout"]["remaining_time_type"],
        "expire_after"
    );
    assert_eq!(checks["session_lifetime"]["remaining"], Value::Null);

    // Left alone, it ends too.
    let info = world
        .wait_terminated(busy, "busy-net to time out once left alone")
        .await;
    assert_eq!(info, "idle-timeout");
}

#[tokio::test]
async fn a_session_ends_at_its_max_session_lifetime() {
    let world = IdleWorld::start(&[]).await;
    let id = world.running_session("short-lived").await;
    world.set_policy("max_session_lifetime = 3600").await;
    wait_until("a session_lifetime report", LIMIT, || async {
        let checks = world.idle_checks(id).await;
        match checks["session_lifetime"]["remaining"].as_f64() {
            Some(left) if left > 3000.0 && left <= 3600.0 => Ok(()),
            _ => Err(checks.to_string()),
        }
    })
    .await;
    let checks = world.idle_checks(id).await;
    assert_eq!(
        checks
            .as_object()
            .map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["session_lifetime".to_owned()]),
        "only session_lifetime runs when config/idle/enabled is unset"
    );
    world.set_policy("max_session_lifetime = 2").await;
    let info = world
        .wait_terminated(id, "the session to reach its lifetime")
        .await;
    assert_eq!(info, "idle-session-lifetime");
}

#[tokio::test]
async fn low_utilization_ends_a_session_and_high_utilization_keeps_one() {
    let world = IdleWorld::start(&[
        ("enabled", "utilization"),
        ("checkers/utilization/time-window", "3s"),
        ("checkers/utilization/initial-grace-period", "0s"),
        ("checkers/utilization/thresholds-check-operator", "and"),
        (
            "checkers/utilization/resource-thresholds/cpu_util/average",
            "50",
        ),
    ])
    .await;
    // An undefined policy timeout lets the checker's time-window apply.
    world.set_policy("idle_timeout = -1").await;
    let low = world.running_session("low-util").await;
    let high = world.running_session("high-util").await;
    world.write_stats(low, "5.0").await;
    world.write_stats(high, "90.0").await;
    let info = world
        .wait_terminated(low, "the under-used session to end")
        .await;
    assert_eq!(info, "idle-utilization");
    // The same pass judged `high-util` over a full window and kept it.
    assert_eq!(world.status(high).await.0, "RUNNING");
    let checks = world.idle_checks(high).await;
    let utilization = &checks["utilization"];
    assert_eq!(utilization["remaining_time_type"], "grace_period");
    assert_eq!(utilization["extra"]["thresholds_check_operator"], "and");
    assert_eq!(
        utilization["extra"]["resources"]["cpu_util"],
        json!([90.0, 50.0]),
        "{checks}"
    );
}
