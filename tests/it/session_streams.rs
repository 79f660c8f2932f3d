//! The app streams end to end: the official CLI's `backend.ai app <session> <service> --bind`
//! (client 23.09) relays HTTP through the real `bai-manager start-server`'s
//! `/stream/session/{name}/tcpproxy` to a TCP service this test runs, for a session on the real
//! agent 26.9.6 (dummy backend). The dummy agent starts no container and reports no service
//! ports (its `get_public_service_ports` answers `[]`), so the test writes the kernel's
//! `service_ports` row as a real agent's kernel would report it, pointing at its own service;
//! `start_service` still goes to the real agent. A client that stops reading stalls the
//! service's writes at a bounded amount; each open stream is in Redis (db 2, the original's
//! `session.{kernel}.active_app_connections`) while it lasts; destroying the session closes
//! its streams with 1001 (going away).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::wait::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::api_support::Signer;
use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image, client_cli};
use crate::sched_support::{ADMIN_AK, RealAgent, scheduling_world};
use crate::ws_client::{Frame, WsClient};

const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const LIMIT: Duration = Duration::from_secs(90);
const APP_BODY: &str = "hello from the app";
/// What the bulk service tries to push through a stream nobody reads.
const BULK_BYTES: u64 = 256 * 1024 * 1024;
/// The most that may leave the service while the client reads nothing: the kernel-side and
/// client-side socket buffers (a few MiB each on loopback) plus 32 queued 64 KiB messages.
const MAX_IN_FLIGHT: u64 = 48 * 1024 * 1024;
/// How long the bulk service gets to (wrongly) finish; unbounded buffering would take it well
/// under a second on loopback.
const STALL: Duration = Duration::from_secs(5);

/// The official CLI with the example admin's keys against the manager on `port`.
fn cli(port: u16) -> Command {
    let mut command = Command::new(client_cli());
    command
        .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("BACKEND_ENDPOINT_TYPE", "api")
        .env("BACKEND_ACCESS_KEY", ADMIN_AK)
        .env("BACKEND_SECRET_KEY", ADMIN_SK)
        .env("NO_COLOR", "1");
    command
}

async fn cli_output(port: u16, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = cli(port).args(&args).output().expect("running the CLI");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    })
    .await
    .expect("the CLI task")
}

/// A child process killed when the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tiny HTTP service: answers each request (after its header) with [`APP_BODY`] and closes.
async fn app_service() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{APP_BODY}",
                    APP_BODY.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, task)
}

/// A service that writes [`BULK_BYTES`] to each connection, counting what its writes took.
async fn bulk_service() -> (
    u16,
    Arc<AtomicU64>,
    Arc<Notify>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (counter, finished) = (written.clone(), done.clone());
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let chunk = vec![7u8; 64 * 1024];
        while counter.load(Ordering::SeqCst) < BULK_BYTES {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        finished.notify_one();
    });
    (port, written, done, task)
}

async fn open_streams(redis: &mut redis::aio::MultiplexedConnection, kernel: uuid::Uuid) -> i64 {
    redis::cmd("ZCARD")
        .arg(format!("session.{kernel}.active_app_connections"))
        .query_async(redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn backend_ai_app_relays_http_to_the_kernel_service_and_the_stream_ends_with_the_session() {
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;
    let config = env.manager_toml("");
    let output = env.path("manager.out");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let _agent = RealAgent::start(&env, "i-streams", 0, 4).await;
    let _dump = DumpOnFailure(output.clone(), env.path("agent-i-streams/agent.log"));
    wait_for("the agent to be ALIVE", LIMIT, || async {
        db.query_opt(
            "SELECT 1 FROM agents WHERE id = 'i-streams' AND status = 'ALIVE'",
            &[],
        )
        .await
        .unwrap()
        .map(|_| ())
        .ok_or_else(|| "not ALIVE".to_owned())
    })
    .await;
    let port = env.service_port;
    let (ok, out) = cli_output(
        port,
        &[
            "run", "--name", "apps-e2e", "-r", "cpu=1", "-r", "mem=1g", "-c", "print(1)", IMAGE,
        ],
    )
    .await;
    assert!(ok, "backend.ai run failed:\n{out}");
    let row = db
        .query_one(
            "SELECT k.id, k.kernel_host FROM kernels k JOIN sessions s ON s.id = k.session_id
              WHERE s.name = 'apps-e2e' AND s.status = 'RUNNING'",
            &[],
        )
        .await
        .expect("the RUNNING session's kernel");
    let kernel: uuid::Uuid = row.get(0);
    let kernel_host: Option<String> = row.get(1);
    assert_eq!(
        kernel_host.as_deref(),
        Some("127.0.0.1"),
        "the agent's bind host"
    );
    let (service_port, _service) = app_service().await;
    let (bulk_port, bulk_written, bulk_done, _bulk) = bulk_service().await;
    let ports = serde_json::json!([
        {"name": "web", "protocol": "http", "container_ports": [8080],
         "host_ports": [service_port], "is_inference": false},
        {"name": "bulk", "protocol": "tcp", "container_ports": [9000],
         "host_ports": [bulk_port], "is_inference": false},
    ]);
    db.execute(
        "UPDATE kernels SET service_ports = $2 WHERE id = $1",
        &[&kernel, &ports],
    )
    .await
    .unwrap();

    let local = free_port();
    let bind = format!("127.0.0.1:{local}");
    let child = cli(port)
        .args(["app", "apps-e2e", "web", "--bind", &bind])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting backend.ai app");
    let _app = KillOnDrop(child);
    wait_for("the CLI's local proxy to listen", LIMIT, || async {
        TcpStream::connect(("127.0.0.1", local))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;

    // A whole HTTP exchange through CLI → manager → service.
    let mut client = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with(APP_BODY), "{reply}");

    // A client that stops reading: the service's writes stall at a bounded amount (socket
    // buffers plus the WebSocket's 32-message channel), nothing piles up in the manager, and
    // every byte written still arrives once the client reads again.
    let signer = Signer::new(ADMIN_AK, ADMIN_SK);
    let mut slow = WsClient::connect(port, &signer, "/stream/session/apps-e2e/tcpproxy?app=bulk")
        .await
        .expect("opening the bulk stream");
    let written = bulk_written.clone();
    wait_for("the bulk service to start writing", LIMIT, || {
        let written = written.clone();
        async move {
            match written.load(Ordering::SeqCst) {
                0 => Err("nothing written yet".to_owned()),
                _ => Ok(()),
            }
        }
    })
    .await;
    let finished = tokio::time::timeout(STALL, bulk_done.notified()).await;
    assert!(
        finished.is_err(),
        "the service wrote all {BULK_BYTES} bytes to a client that reads nothing"
    );
    let stalled_at = bulk_written.load(Ordering::SeqCst);
    assert!(
        stalled_at < MAX_IN_FLIGHT,
        "{stalled_at} bytes went out to a client that reads nothing"
    );
    let mut received = 0u64;
    while received < stalled_at {
        match slow.next().await {
            Some(Frame::Binary(bytes)) => received += bytes.len() as u64,
            Some(Frame::Ping(_)) => {}
            other => panic!("after {received} bytes: {other:?}"),
        }
    }

    // An open stream is accounted in Redis.
    let redis = redis::Client::open(env.redis.url(2))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    drop(slow);
    let mut held = WsClient::connect(port, &signer, "/stream/session/apps-e2e/tcpproxy?app=web")
        .await
        .expect("opening a stream");
    wait_for("the open streams to be in Redis", LIMIT, || {
        let mut redis = redis.clone();
        async move {
            match open_streams(&mut redis, kernel).await {
                1 => Ok(()),
                n => Err(format!("{n} streams")),
            }
        }
    })
    .await;

    // Destroying the session closes its streams with 1001 (going away).
    let (ok, out) = cli_output(port, &["session", "destroy", "apps-e2e"]).await;
    assert!(ok, "session destroy failed:\n{out}");
    assert_eq!(held.close_code().await, Some(1001));
    wait_for("the streams to leave Redis", LIMIT, || {
        let mut redis = redis.clone();
        async move {
            match open_streams(&mut redis, kernel).await {
                0 => Ok(()),
                n => Err(format!("{n} streams")),
            }
        }
    })
    .await;
}
