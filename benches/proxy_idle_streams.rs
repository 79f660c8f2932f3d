//! Many idle app streams on one worker: BENCH_STREAMS (default 5,000) concurrent
//! `GET /stream/session/{name}/tcpproxy?app=idle` WebSockets on a `bai-manager start-server`
//! with one worker, each relayed to its own connection to an app of this process that accepts
//! and never writes. Reports the time to open them (BENCH_PARALLEL upgrades at a time, default
//! 64), the manager's RSS before and with all streams open, and, after BENCH_HOLD_SECONDS
//! (default 40, longer than the keep-alive time) of silence, how many are still open (on both
//! ends) and the RSS then. BENCH_CLIENT_PING=1 makes each client send one ping after the
//! upgrade. The manager's log tail is printed at the end. `cargo bench --bench
//! proxy_idle_streams` (`--profile dev` for a debug build).
//!
//! Descriptors: the manager holds two per stream and this process two (client and app side),
//! so 5,000 streams need a `nofile` limit above 10,000 for each.

#[allow(dead_code)]
#[path = "support/app_session.rs"]
mod app_session;
#[path = "support/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "support/signed_load.rs"]
mod signed_load;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter, run_heartbeats};
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use proc_stats::{children_of, rss_mib};
use signed_load::{knob, raise_admin_rate_limit, start_manager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections the idle app holds now.
async fn idle_app(open: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the app");
    let port = listener.local_addr().expect("the app's port").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let open = Arc::clone(&open);
            tokio::spawn(async move {
                open.fetch_add(1, Ordering::SeqCst);
                let mut byte = [0u8; 1];
                let _ = socket.read(&mut byte).await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    port
}

/// What became of a client's stream: `None` while open, else the close code (0: no close
/// frame, the connection just ended).
async fn close_code(tcp: &mut TcpStream) -> Option<u16> {
    let mut payload = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(2),
            app_session::read_frame(tcp, &mut payload),
        )
        .await
        {
            Err(_) => return None,
            Ok(None) => return Some(0),
            Ok(Some(0x8)) => {
                return Some(
                    payload
                        .get(..2)
                        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
                );
            }
            Ok(Some(_)) => {}
        }
    }
}

fn main() {
    let streams = knob("BENCH_STREAMS", 5000) as usize;
    let parallel = knob("BENCH_PARALLEL", 64) as usize;
    let hold = Duration::from_secs(knob("BENCH_HOLD_SECONDS", 40));
    let client_ping = knob("BENCH_CLIENT_PING", 0) == 1;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let db = env.db.connect().await;
        raise_admin_rate_limit(&db).await;
        let agent = SimAgent::new("i-bench-idle", WireFormat::Payload, free_port());
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let _servers = serve_fleet(std::slice::from_ref(&agent), &writer, &ledger);
        // Heartbeats, or the manager would find the agent lost and end its session.
        let mut heartbeat_writer = writer.clone();
        let heartbeat_agent = agent.clone();
        let heartbeats = tokio::spawn(async move {
            let _ = run_heartbeats(
                &mut heartbeat_writer,
                std::slice::from_ref(&heartbeat_agent),
                Duration::from_secs(3),
                1,
                u64::MAX,
            )
            .await;
        });
        let app_open = Arc::new(AtomicU64::new(0));
        let port = idle_app(Arc::clone(&app_open)).await;
        let ports = serde_json::json!([
            {"name": "idle", "protocol": "tcp", "container_ports": [9000], "host_ports": [port]},
        ]);
        app_session::running_session(&db, &agent, "bench-idle", ports).await;
        let (manager, target) = start_manager(&env, 1);
        let supervisor = manager.pid();
        let workers = children_of(supervisor);
        let pid = match workers.as_slice() {
            [worker] => *worker,
            _ => panic!("expected one worker process under {supervisor}, found {workers:?}"),
        };
        // A first stream warms the pools and the worker's caches up.
        drop(app_session::ws_connect(&target, "/stream/session/bench-idle/tcpproxy?app=idle").await);
        let before = rss_mib(pid);
        println!(
            "manager worker pid {pid}: RSS {before:.1} MiB before the streams (supervisor {:.1} MiB)",
            rss_mib(supervisor)
        );

        let target = Arc::new(target);
        let started = Instant::now();
        let mut clients = Vec::with_capacity(streams);
        let mut batch = tokio::task::JoinSet::new();
        while clients.len() < streams {
            while batch.len() < parallel && clients.len() + batch.len() < streams {
                let target = Arc::clone(&target);
                batch.spawn(async move {
                    let mut tcp = app_session::ws_connect(
                        &target,
                        "/stream/session/bench-idle/tcpproxy?app=idle",
                    )
                    .await;
                    if client_ping {
                        // One masked ping with an empty payload.
                        tcp.write_all(&[0x89, 0x80, 0, 0, 0, 0])
                            .await
                            .expect("sending a ping");
                    }
                    tcp
                });
            }
            if let Some(joined) = batch.join_next().await {
                clients.push(joined.expect("an upgrade task"));
            }
        }
        let opened = started.elapsed();
        // Every relay has dialled the app once all app connections are counted.
        let settle = Instant::now();
        while (app_open.load(Ordering::SeqCst) as usize) < streams
            && settle.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let with_streams = rss_mib(pid);
        println!(
            "{streams} streams open in {:.1} s ({:.0}/s); app connections {}; RSS {with_streams:.1} MiB \
             ({:+.1} MiB, {:.1} KiB per stream)",
            opened.as_secs_f64(),
            streams as f64 / opened.as_secs_f64(),
            app_open.load(Ordering::SeqCst),
            with_streams - before,
            (with_streams - before) * 1024.0 / streams as f64,
        );

        tokio::time::sleep(hold).await;
        let mut codes = std::collections::BTreeMap::<Option<u16>, usize>::new();
        for client in &mut clients {
            *codes.entry(close_code(client).await).or_default() += 1;
        }
        println!(
            "after {} s idle: client ends by close code (None: open) {codes:?}, {} app \
             connections, RSS {:.1} MiB",
            hold.as_secs(),
            app_open.load(Ordering::SeqCst),
            rss_mib(pid),
        );
        heartbeats.abort();
        let log = std::fs::read_to_string(env.path("manager.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        println!("manager log ({} lines), last lines:", lines.len());
        for line in &lines[lines.len().saturating_sub(8)..] {
            println!("  {line}");
        }
    });
}
