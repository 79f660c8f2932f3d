//! Supervision inside a real `bai-manager start-server` worker (issue 18, item 2), with faults
//! injected through the debug hook (`[debug] enabled = true` and `BAI_FAULT_INJECTION=<actor>`:
//! SIGUSR1 stops the actor, SIGUSR2 makes it panic):
//!
//! * a stopped heartbeat tracker is restarted by its supervisor inside the same worker, its
//!   restart is counted, and heartbeats are still ingested;
//! * a panicked heartbeat tracker ends its worker with a failure; the process supervisor starts
//!   a new worker, which ingests heartbeats, including one sent while the old worker was dying;
//! * a stopped storage broker is restarted the same way, counted, and its fresh etcd watch
//!   picks up a change of `volumes/` made after the restart;
//! * a stopped session-event feed is restarted the same way, counted, and an event stream
//!   (`GET /events/session`) opened before the stop keeps delivering events produced after it.

use std::time::{Duration, Instant};

use bai_actors::wire::WireFormat;
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_testkit::TestEnv;

use crate::agents_support::{agent_status, insert_scaling_group, wait_for};
use crate::manager_process::ManagerProcess;

const LIMIT: Duration = Duration::from_secs(60);

fn start_manager(env: &TestEnv, actor: &str) -> ManagerProcess {
    let path = env.manager_toml("");
    let text = std::fs::read_to_string(&path).expect("reading manager.toml");
    let text = text.replace("[debug]\nenabled = false", "[debug]\nenabled = true");
    std::fs::write(&path, text).expect("writing manager.toml");
    let mut manager = ManagerProcess::start_server(
        &path,
        &[("BAI_FAULT_INJECTION", actor)],
        &env.path("manager.out"),
    );
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("fault injection armed", LIMIT);
    manager
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a worker of the manager this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Sends heartbeats of `agent` until its row is ALIVE (polling with a deadline).
async fn heartbeat_until_alive(env: &TestEnv, writer: &mut StreamWriter, agent: &SimAgent) {
    let deadline = Instant::now() + LIMIT;
    loop {
        writer.send(agent, &agent.heartbeat()).await.unwrap();
        if agent_status(env, &agent.id).await.as_deref() == Some("ALIVE") {
            return;
        }
        assert!(Instant::now() < deadline, "{} never became ALIVE", agent.id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix::test]
async fn a_stopped_actor_restarts_inside_its_worker_and_keeps_doing_its_job() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    let manager = start_manager(&env, "heartbeat-tracker");
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 1);
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    heartbeat_until_alive(
        &env,
        &mut writer,
        &SimAgent::new("i-before", WireFormat::Payload, 16001),
    )
    .await;

    signal(workers[0], libc::SIGUSR1);
    manager.wait_for_output("heartbeat tracker: restarting", LIMIT);
    assert!(
        manager
            .output()
            .lines()
            .any(|line| line.contains("heartbeat tracker: restarting")
                && line.contains("restarts=1")),
        "the restart is counted"
    );
    heartbeat_until_alive(
        &env,
        &mut writer,
        &SimAgent::new("i-after", WireFormat::Payload, 16002),
    )
    .await;
    assert_eq!(
        manager.worker_pids(),
        workers,
        "the worker itself kept running"
    );
    assert!(!manager.output().contains("actor died"));
}

#[actix::test]
async fn a_dead_actor_ends_its_worker_and_a_clean_worker_takes_over() {
    let env = TestEnv::new().await;
    insert_scaling_group(&env, "default").await;
    let manager = start_manager(&env, "heartbeat-tracker");
    let workers = manager.worker_pids();
    let mut writer = StreamWriter::connect(&env.redis.addr()).await.unwrap();
    heartbeat_until_alive(
        &env,
        &mut writer,
        &SimAgent::new("i-before", WireFormat::Payload, 16001),
    )
    .await;

    signal(workers[0], libc::SIGUSR2);
    // Sent while the worker notices its dead tracker and drains: nobody acknowledges it there.
    let during = SimAgent::new("i-during", WireFormat::Payload, 16002);
    writer.send(&during, &during.heartbeat()).await.unwrap();
    manager.wait_for_output("the heartbeat-tracker actor died", LIMIT);
    manager.wait_for_output("restarting it in", LIMIT);
    let restarted = wait_for("a new worker", LIMIT, || async {
        let now = manager.worker_pids();
        (now.len() == 1 && now != workers).then_some(now)
    })
    .await;
    assert_ne!(restarted, workers);
    // The heartbeat sent to the dying worker is claimed and handled by the new one.
    wait_for(
        "the heartbeat sent during the restart to be handled",
        LIMIT,
        || async {
            (agent_status(&env, "i-during").await.as_deref() == Some("ALIVE")).then_some(())
        },
    )
    .await;
    heartbeat_until_alive(
        &env,
        &mut writer,
        &SimAgent::new("i-after", WireFormat::Payload, 16003),
    )
    .await;
}

#[actix::test]
async fn a_stopped_storage_broker_restarts_and_watches_etcd_again() {
    let env = TestEnv::new().await;
    let manager = start_manager(&env, "storage-broker");
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 1);

    signal(workers[0], libc::SIGUSR1);
    manager.wait_for_output("storage broker: restarting", LIMIT);
    assert!(
        manager
            .output()
            .lines()
            .any(|line| line.contains("storage broker: restarting") && line.contains("restarts=1")),
        "the restart is counted"
    );
    // The restarted broker's watch sees a change made now (its own re-read on start finds
    // nothing new, so the log line below can only come from the change).
    env.etcd_put("volumes/default_host", "restarted:vol").await;
    manager.wait_for_output("storage proxy configuration changed", LIMIT);
    assert!(
        manager
            .output()
            .lines()
            .any(|line| line.contains("storage proxy configuration changed")
                && line.contains("restarted:vol")),
        "the new default host is read"
    );
    assert_eq!(
        manager.worker_pids(),
        workers,
        "the worker itself kept running"
    );
    assert!(!manager.output().contains("actor died"));
}

/// Reads `response`, an open `GET /events/session`, until an event named `name` arrives
/// (failing after [`LIMIT`]); returns its `data:` line.
async fn next_sse_event(response: &mut reqwest::Response, seen: &mut String, name: &str) -> String {
    let marker = format!("event: {name}\r\ndata: ");
    loop {
        if let Some(at) = seen.find(&marker) {
            let rest = &seen[at + marker.len()..];
            if let Some(end) = rest.find("\r\n") {
                let data = rest[..end].to_owned();
                seen.drain(..at + marker.len() + end);
                return data;
            }
        }
        let chunk = tokio::time::timeout(LIMIT, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event within the limit; got {seen:?}"))
            .expect("reading the event stream")
            .expect("the event stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[actix::test]
async fn a_stopped_session_event_feed_restarts_and_an_open_event_stream_keeps_delivering() {
    use bai_actors::wire::{Event, EventProducer, SessionEvent, SessionEventKind};

    use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer};
    use crate::sched_support::enqueue_sessions;

    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    env.etcd_put("manager/status", "running").await;
    let session = enqueue_sessions(&env.db.connect().await, ADMIN_AK, 1, 1, 1).await[0];
    let manager = start_manager(&env, "session-event-feed");
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 1);

    let path = "/events/session";
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}{path}", env.service_port));
    let signer = Signer::new(ADMIN_AK, ADMIN_SK);
    for (name, value) in signer.headers("GET", path, "text/plain", chrono::Utc::now()) {
        request = request.header(name, value);
    }
    let mut stream = request.send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    let redis = bai_actors::redis::RedisSettings::parse(&env.redis.addr(), None)
        .unwrap()
        .connect(bai_actors::redis::db::STREAM)
        .await
        .unwrap();
    let producer = EventProducer::new(redis, WireFormat::Args);
    let event = |kind| {
        Event::Session(SessionEvent {
            kind,
            session_id: session,
            creation_id: None,
            reason: "test".into(),
            exit_code: None,
        })
    };
    producer
        .produce(&event(SessionEventKind::Enqueued))
        .await
        .unwrap();
    let data = next_sse_event(&mut stream, &mut seen, "session_enqueued").await;
    assert!(data.contains(&session.to_string()), "{data}");

    signal(workers[0], libc::SIGUSR1);
    manager.wait_for_output("session event feed: restarting", LIMIT);
    assert!(
        manager
            .output()
            .lines()
            .any(|line| line.contains("session event feed: restarting")
                && line.contains("restarts=1")),
        "the restart is counted"
    );
    producer
        .produce(&event(SessionEventKind::Scheduled))
        .await
        .unwrap();
    let data = next_sse_event(&mut stream, &mut seen, "session_scheduled").await;
    assert!(data.contains(&session.to_string()), "{data}");
    assert_eq!(
        manager.worker_pids(),
        workers,
        "the worker itself kept running"
    );
    assert!(!manager.output().contains("actor died"));
}
