//! Faults against the real `bai-manager start-server` process (issue 13, items 10 and the fault
//! test), with signed HTTP requests as a client sends them:
//!
//! * 30 concurrent creates that wait for their start, on a manager with a small pool, do not
//!   starve the scheduler: every one of them is started by it while they wait;
//! * under a bounded signed load of acknowledged writes (keypairs created through GraphQL) and
//!   reads, Redis, PostgreSQL and etcd are restarted in turn: service resumes after each, and
//!   every acknowledged write is in the database afterwards. The time from each restart to the
//!   first successful write is printed (a figure, not an assertion).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet_with_delay};
use bai_agent_sim::{SimAgent, StreamWriter, run_heartbeats};
use bai_schema::{SlotAmount, SlotUnit};
use bai_testkit::TestEnv;
use bai_testkit::etcd::EtcdServer;
use bai_testkit::ports::free_port;
use bai_testkit::postgres::PgServer;
use bai_testkit::redis::RedisServer;
use serde_json::{Value, json};

use crate::api_session::{create_body, insert_test_image};
use crate::api_support::{ADMIN_AK, ADMIN_SK, ApiWorld, Signer, USER_AK, USER_SK};
use crate::manager_process::ManagerProcess;
use bai_testkit::wait::wait_for;

/// Connections per pool of the manager under test: small, so that requests holding
/// connections while they wait would starve the scheduler within a few requests.
const SMALL_POOL: usize = 4;

/// A signed request to a manager listening on `port`; the status and the JSON body (`Null`
/// when there is none), or the transport error as text.
async fn signed(
    client: &reqwest::Client,
    port: u16,
    signer: &Signer,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let content_type = if body.is_some() {
        "application/json"
    } else {
        "text/plain"
    };
    let mut request = client.request(method.clone(), format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in signer.headers(method.as_str(), path, content_type, chrono::Utc::now()) {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, body))
}

/// A client whose every request is bounded, so a stuck manager fails the test instead of
/// hanging it.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("an HTTP client")
}

/// Writes the manager.toml of `env` with `[db] pool-size` and starts the manager on it.
fn start_manager(env: &TestEnv, pool_size: usize, name: &str) -> ManagerProcess {
    let path = env.manager_toml("");
    let text = std::fs::read_to_string(&path).expect("reading manager.toml");
    let text = text.replace(
        "password = \"unused-trust-auth\"",
        &format!("password = \"unused-trust-auth\"\npool-size = {pool_size}"),
    );
    std::fs::write(&path, text).expect("writing manager.toml");
    let mut manager =
        ManagerProcess::start_server(&path, &[], &env.path(&format!("manager-{name}.out")));
    manager.wait_for_port(env.service_port);
    manager
}

/// Prints the manager's output when the test fails.
struct DumpOnFailure<'a>(&'a ManagerProcess);

impl Drop for DumpOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let output = self.0.output();
            let lines: Vec<&str> = output.lines().collect();
            eprintln!("--- manager output (last 150 lines) ---");
            for line in &lines[lines.len().saturating_sub(150)..] {
                eprintln!("{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_creates_waiting_for_their_start_do_not_starve_the_scheduler() {
    const AGENTS: usize = 4;
    const CPUS_PER_AGENT: i64 = 8;
    const CREATES: usize = 30;
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    world
        .db()
        .await
        .batch_execute(
            "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,
                max_concurrent_sessions, max_containers_per_session)
             VALUES ('hostile-unlimited', 'UNLIMITED', '{}', 0, 8);
             UPDATE keypairs SET resource_policy = 'hostile-unlimited';",
        )
        .await
        .expect("an unlimited policy");
    let env = &world.env;
    let agents: Vec<SimAgent> = (0..AGENTS)
        .map(|n| {
            SimAgent::new(format!("i-starve-{n}"), WireFormat::Payload, free_port())
                .with_slot("cpu", SlotUnit::Count, SlotAmount::from(CPUS_PER_AGENT))
                .with_slot("mem", SlotUnit::Bytes, SlotAmount::from(32_i64 << 30))
        })
        .collect();
    let writer = StreamWriter::connect(&env.redis.addr())
        .await
        .expect("connecting the simulator to Redis");
    let ledger = SharedLedger::default();
    let servers = serve_fleet_with_delay(&agents, &writer, &ledger, Duration::from_millis(200));
    let mut heartbeat_writer = writer.clone();
    let heartbeat_agents = agents.clone();
    let heartbeats = tokio::spawn(async move {
        let _ = run_heartbeats(
            &mut heartbeat_writer,
            &heartbeat_agents,
            Duration::from_secs(3),
            1,
            u64::MAX,
        )
        .await;
    });

    let manager = start_manager(env, SMALL_POOL, "starve");
    let _dump = DumpOnFailure(&manager);
    let db = world.db().await;
    wait_for(
        "the simulated agents to be ALIVE",
        Duration::from_secs(60),
        || async {
            let alive: i64 = db
                .query_one("SELECT count(*) FROM agents WHERE status = 'ALIVE'", &[])
                .await
                .unwrap()
                .get(0);
            if alive == AGENTS as i64 {
                Ok(())
            } else {
                Err(format!("{alive} ALIVE"))
            }
        },
    )
    .await;

    let client = http_client();
    let user = Signer::new(USER_AK, USER_SK);
    let replies = futures::future::join_all((0..CREATES).map(|n| {
        let mut body = create_body(&format!("wait-{n:02}"));
        body["enqueueOnly"] = json!(false);
        body["maxWaitSeconds"] = json!(120);
        let client = &client;
        let user = &user;
        async move {
            signed(
                client,
                env.service_port,
                user,
                reqwest::Method::POST,
                "/session",
                Some(&body),
            )
            .await
        }
    }))
    .await;
    for reply in &replies {
        let (status, body) = reply.as_ref().expect("every create is answered");
        assert_eq!(*status, 201, "{body}");
        assert_eq!(
            body["status"], "RUNNING",
            "started while {CREATES} creates waited: {body}"
        );
    }
    let running: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE status = 'RUNNING'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, CREATES as i64);
    heartbeats.abort();
    for server in servers {
        server.abort();
    }
}

/// What the load saw: acknowledged keypairs, and per request (when it ended, whether it was a
/// write, whether it succeeded, its status or error).
#[derive(Default)]
struct LoadRecord {
    acknowledged: Vec<String>,
    requests: Vec<(Instant, bool, bool, String)>,
}

/// One load client until `stop`: a keypair created through GraphQL, then a read of the caller's
/// role, again and again.
async fn load_client(
    port: u16,
    record: Arc<Mutex<LoadRecord>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let mutation = json!({
        "query": "mutation($user: String!, $props: KeyPairInput!) {
            create_keypair(user_id: $user, props: $props) { ok msg keypair { access_key } } }",
        "variables": {"user": "user@lablup.com",
                      "props": {"resource_policy": "default", "rate_limit": 30000}},
    });
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let written = signed(
            &client,
            port,
            &admin,
            reqwest::Method::POST,
            "/admin/gql",
            Some(&mutation),
        )
        .await;
        let access_key = match &written {
            Ok((200, body)) if body["data"]["create_keypair"]["ok"] == json!(true) => body["data"]
                ["create_keypair"]["keypair"]["access_key"]
                .as_str()
                .map(str::to_owned),
            _ => None,
        };
        let outcome = match &written {
            Ok((status, body)) => format!("{status} {}", body["type"].as_str().unwrap_or_default()),
            Err(error) => format!("error: {error}"),
        };
        {
            let mut record = record.lock().unwrap();
            if let Some(access_key) = &access_key {
                record.acknowledged.push(access_key.clone());
            }
            record
                .requests
                .push((Instant::now(), true, access_key.is_some(), outcome));
        }
        let read = signed(
            &client,
            port,
            &admin,
            reqwest::Method::GET,
            "/auth/role",
            None,
        )
        .await;
        let ok = matches!(read, Ok((200, _)));
        let outcome = match &read {
            Ok((status, body)) => format!("{status} {}", body["type"].as_str().unwrap_or_default()),
            Err(error) => format!("error: {error}"),
        };
        record
            .lock()
            .unwrap()
            .requests
            .push((Instant::now(), false, ok, outcome));
        if access_key.is_none() || !ok {
            // A failing manager is not hammered in a tight loop.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How long each service stays down: longer than the manager's 2 s cache of the etcd
/// `manager/status`, so the load meets every outage, and short enough to keep the test quick.
const OUTAGE: Duration = Duration::from_secs(3);

/// The services of the fault test, private to it so they can be stopped and started.
enum Service {
    Redis,
    Postgres,
    Etcd,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_redis_postgres_and_etcd_under_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 4;
    let mut postgres = tokio::task::block_in_place(PgServer::start_durable);
    let mut etcd = tokio::task::block_in_place(EtcdServer::start);
    let db = postgres.create_empty_database().await;
    {
        let mut client = db.connect().await;
        bai_schema::migrate::apply_all(&mut client)
            .await
            .expect("migrating the private database");
    }
    let mut env = TestEnv {
        dir: tempfile::Builder::new()
            .prefix("env-faults-")
            .tempdir_in(bai_testkit::process::scratch_root())
            .expect("a scratch directory"),
        db,
        etcd_endpoint: etcd.endpoint.clone(),
        namespace: format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        redis: tokio::task::block_in_place(RedisServer::start),
        service_port: free_port(),
    };
    env.load_example_fixtures().await;
    {
        let mut etcd_client = etcd.client().await;
        for (key, value) in [
            ("config/redis/addr", env.redis.addr()),
            ("manager/status", "running".to_owned()),
        ] {
            etcd_client
                .put(env.etcd_key(key), value, None)
                .await
                .expect("etcd put");
        }
    }
    let manager = start_manager(&env, 8, "faults");
    let _dump = DumpOnFailure(&manager);

    let record = Arc::new(Mutex::new(LoadRecord::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(load_client(env.service_port, record.clone(), stop.clone())))
        .collect();
    let successes_since = |since: Instant, write: bool| {
        record
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(at, is_write, ok, _)| *at > since && *is_write == write && *ok)
            .count()
    };
    let requests_since = |since: Instant| {
        record
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(at, _, _, _)| *at > since)
            .count()
    };
    let started = Instant::now();
    wait_for("the load to run", Duration::from_secs(60), || async {
        match successes_since(started, true) {
            n if n >= CLIENTS * 3 => Ok(()),
            n => Err(format!("{n} acknowledged writes")),
        }
    })
    .await;

    let mut figures = BTreeMap::new();
    for (name, service) in [
        ("redis", Service::Redis),
        ("postgresql", Service::Postgres),
        ("etcd", Service::Etcd),
    ] {
        let stopped = Instant::now();
        tokio::task::block_in_place(|| match service {
            Service::Redis => env.redis.stop(),
            Service::Postgres => postgres.stop(),
            Service::Etcd => etcd.stop(),
        });
        // The load meets the outage for OUTAGE, and at least a few of its requests do.
        wait_for(
            &format!("the load to meet the {name} outage"),
            Duration::from_secs(60),
            || async {
                match requests_since(stopped) {
                    n if n >= 10 && stopped.elapsed() >= OUTAGE => Ok(()),
                    n => Err(format!("{n} requests during the outage")),
                }
            },
        )
        .await;
        tokio::task::block_in_place(|| match service {
            Service::Redis => env.redis.restart(),
            Service::Postgres => postgres.restart(),
            Service::Etcd => etcd.restart(),
        });
        let back = Instant::now();
        wait_for(
            &format!("writes and reads to succeed after the {name} restart"),
            Duration::from_secs(90),
            || async {
                if successes_since(back, true) > 0 && successes_since(back, false) > 0 {
                    Ok::<(), String>(())
                } else {
                    Err("no successful write and read yet".into())
                }
            },
        )
        .await;
        let (recovery, outage_outcomes) = {
            let record = record.lock().unwrap();
            let first_write = record
                .requests
                .iter()
                .filter(|(at, is_write, ok, _)| *at > back && *is_write && *ok)
                .map(|(at, _, _, _)| *at)
                .min()
                .expect("a successful write after the restart");
            let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
            for (_, _, ok, outcome) in record
                .requests
                .iter()
                .filter(|(at, _, _, _)| *at > stopped && *at <= first_write)
            {
                if !ok {
                    *outcomes.entry(outcome.clone()).or_default() += 1;
                }
            }
            (first_write - back, outcomes)
        };
        eprintln!(
            "fault test: {name} down for {:.1} s; first acknowledged write {:.2} s after it was back; failures meanwhile: {outage_outcomes:?}",
            (back - stopped).as_secs_f64(),
            recovery.as_secs_f64()
        );
        figures.insert(name, recovery);
    }

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.expect("a load client");
    }
    let acknowledged = record.lock().unwrap().acknowledged.clone();
    let db = env.db.connect().await;
    let stored: Vec<String> = db
        .query(
            "SELECT access_key FROM keypairs WHERE access_key = ANY($1)",
            &[&acknowledged],
        )
        .await
        .expect("reading the keypairs back")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|ak| !stored.contains(ak))
        .collect();
    eprintln!(
        "fault test: {} acknowledged writes, {} requests in all; recovery {figures:?}",
        acknowledged.len(),
        record.lock().unwrap().requests.len()
    );
    assert!(acknowledged.len() >= CLIENTS * 3);
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}
