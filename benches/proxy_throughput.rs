//! Bytes per second through one tcpproxy stream: `GET /stream/session/{name}/tcpproxy` on a
//! `bai-manager start-server` with one worker, for a session on a simulated 26.x agent whose
//! kernel's apps are TCP services of this process on loopback:
//! - downstream: app `source` writes 256 KiB chunks as fast as the relay takes them; the client
//!   reads the WebSocket frames and counts their payload;
//! - upstream: the client sends 64 KiB binary frames (masked with the zero key, so no XOR pass);
//!   app `sink` counts what arrives.
//!
//! Each direction runs BENCH_SECONDS (default 10) after a one-second warm-up; the figure is
//! payload bytes per second at the receiving end. The load generator shares the machine with
//! the manager. `cargo bench --bench proxy_throughput` (debug build of the manager unless the
//! bench profile is given, e.g. `cargo bench` builds release).

#[path = "support/app_session.rs"]
mod app_session;
#[allow(dead_code)]
#[path = "support/signed_load.rs"]
mod signed_load;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use signed_load::{knob, raise_admin_rate_limit, start_manager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One write of the source app.
const SOURCE_CHUNK: usize = 256 * 1024;
/// One WebSocket message of the upstream client.
const CLIENT_FRAME: usize = 64 * 1024;
const WARM_UP: Duration = Duration::from_secs(1);

/// An app that writes zeros to every connection until it closes.
async fn source_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the source");
    let port = listener.local_addr().expect("the source's port").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let chunk = vec![0u8; SOURCE_CHUNK];
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    port
}

/// An app that reads every connection to its end, counting the bytes.
async fn sink_app(received: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the sink");
    let port = listener.local_addr().expect("the sink's port").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 256 * 1024];
                while let Ok(read) = socket.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    received.fetch_add(read as u64, Ordering::Relaxed);
                }
            });
        }
    });
    port
}

fn report(direction: &str, bytes: u64, elapsed: Duration) {
    let rate = bytes as f64 / elapsed.as_secs_f64();
    println!(
        "{direction}: {:.1} MiB in {:.1} s = {:.1} MiB/s ({:.3} GB/s)",
        bytes as f64 / 1_048_576.0,
        elapsed.as_secs_f64(),
        rate / 1_048_576.0,
        rate / 1e9,
    );
}

fn main() {
    let seconds = knob("BENCH_SECONDS", 10);
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
        let agent = SimAgent::new("i-bench-proxy", WireFormat::Payload, free_port());
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let _servers = serve_fleet(std::slice::from_ref(&agent), &writer, &ledger);
        let received = Arc::new(AtomicU64::new(0));
        let (source, sink) = (source_app().await, sink_app(Arc::clone(&received)).await);
        let ports = serde_json::json!([
            {"name": "source", "protocol": "tcp", "container_ports": [9000],
             "host_ports": [source]},
            {"name": "sink", "protocol": "tcp", "container_ports": [9001],
             "host_ports": [sink]},
        ]);
        app_session::running_session(&db, &agent, "bench-proxy", ports).await;
        let (_manager, target) = start_manager(&env, 1);
        let duration = Duration::from_secs(seconds);

        // Downstream: app → manager → client.
        let mut tcp =
            app_session::ws_connect(&target, "/stream/session/bench-proxy/tcpproxy?app=source")
                .await;
        let mut payload = Vec::new();
        let warm_until = Instant::now() + WARM_UP;
        while Instant::now() < warm_until {
            app_session::read_frame(&mut tcp, &mut payload)
                .await
                .expect("downstream frames");
        }
        let (started, mut bytes) = (Instant::now(), 0u64);
        while started.elapsed() < duration {
            match app_session::read_frame(&mut tcp, &mut payload).await {
                Some(0x2) => bytes += payload.len() as u64,
                Some(_) => {}
                None => panic!("the stream ended after {bytes} bytes"),
            }
        }
        report("downstream (app -> client)", bytes, started.elapsed());
        drop(tcp);

        // Upstream: client → manager → app.
        let mut tcp =
            app_session::ws_connect(&target, "/stream/session/bench-proxy/tcpproxy?app=sink").await;
        let frame = app_session::binary_frame(&vec![0u8; CLIENT_FRAME]);
        let warm_until = Instant::now() + WARM_UP;
        while Instant::now() < warm_until {
            tcp.write_all(&frame).await.expect("upstream frames");
        }
        let (started, before) = (Instant::now(), received.load(Ordering::Relaxed));
        while started.elapsed() < duration {
            tcp.write_all(&frame).await.expect("upstream frames");
        }
        let elapsed = started.elapsed();
        report(
            "upstream (client -> app)",
            received.load(Ordering::Relaxed) - before,
            elapsed,
        );
    });
}
