//! The terminal stream end to end: the real `bai-manager start-server`'s
//! `/stream/session/{name}/pty` against a simulated agent whose kernels have a fake terminal
//! (ZeroMQ SUB on the stdin port, PUB on the stdout port, as the kernel runner's
//! `TerminalRunner`; it echoes stdin behind `echo: `). Keystrokes go in and output comes out,
//! `resize` and `ping` reach the kernel as `%resize ROWS COLS` and `%ping` queries, a restart
//! reconnects to the new container's terminal ports (stored from the agent's reply), the open
//! terminal is accounted in Redis, and destroying the session (or stopping the manager) closes
//! it with 1001.

use std::time::Duration;

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{StreamWriter, run_heartbeats};
use bai_testkit::TestEnv;
use bai_testkit::wait::wait_for;
use base64::Engine;

use crate::api_support::Signer;
use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image, client_cli};
use crate::sched_support::{ADMIN_AK, add_sim_agents, scheduling_world, sim_fleet};
use crate::ws_client::{Frame, WsClient};

const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const LIMIT: Duration = Duration::from_secs(90);
/// How long one keystroke may go unanswered before it is typed again: PUB drops what it sends
/// before the kernel's subscription has arrived (ZeroMQ's "slow joiner"), as for the original.
const RETYPE_AFTER: Duration = Duration::from_millis(500);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn cli(port: u16, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(client_cli())
            .args(&args)
            .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("BACKEND_ENDPOINT_TYPE", "api")
            .env("BACKEND_ACCESS_KEY", ADMIN_AK)
            .env("BACKEND_SECRET_KEY", ADMIN_SK)
            .env("NO_COLOR", "1")
            .output()
            .expect("running the official client");
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

fn stdin(chars: &str) -> String {
    serde_json::json!({
        "type": "stdin",
        "chars": base64::engine::general_purpose::STANDARD.encode(chars),
    })
    .to_string()
}

/// The decoded `data` of an `{"type": "out"}` text frame.
fn output_of(frame: &Frame) -> Option<Vec<u8>> {
    let Frame::Text(text) = frame else {
        return None;
    };
    let message: serde_json::Value = serde_json::from_str(text).ok()?;
    if message["type"] != "out" {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(message["data"].as_str()?)
        .ok()
}

/// Types `text` until its echo comes back (typed again while the subscriptions settle).
async fn type_until_echoed(terminal: &mut WsClient, text: &str) {
    let expected = format!("echo: {text}");
    let mut seen = Vec::new();
    for _ in 0..120 {
        terminal.send_text(&stdin(text)).await.unwrap();
        while let Ok(Some(frame)) = tokio::time::timeout(RETYPE_AFTER, terminal.next()).await {
            let Some(data) = output_of(&frame) else {
                panic!("unexpected frame {frame:?}");
            };
            seen.extend_from_slice(&data);
            if String::from_utf8_lossy(&seen).contains(&expected) {
                return;
            }
        }
    }
    panic!(
        "no echo of {text:?} came back; output so far: {:?}",
        String::from_utf8_lossy(&seen)
    );
}

async fn open_streams(
    redis: &mut redis::aio::MultiplexedConnection,
    kernel: uuid::Uuid,
) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(format!("session.{kernel}.active_app_connections"))
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_terminal_relays_keystrokes_and_output_and_closes_with_the_session() {
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;
    let agents: Vec<_> = sim_fleet("i-sim-pty", 1, WireFormat::Payload)
        .into_iter()
        .map(|agent| agent.with_terminals())
        .collect();
    add_sim_agents(&db, &agents).await;
    let writer = StreamWriter::connect(&env.redis.addr())
        .await
        .expect("connecting the simulator to Redis");
    let ledger = SharedLedger::default();
    let _servers = serve_fleet(&agents, &writer, &ledger);
    let mut heartbeat_writer = writer.clone();
    let heartbeat_agents = agents.clone();
    let _heartbeats = AbortOnDrop(tokio::spawn(async move {
        let _ = run_heartbeats(
            &mut heartbeat_writer,
            &heartbeat_agents,
            Duration::from_secs(3),
            1,
            u64::MAX,
        )
        .await;
    }));
    let config = env.manager_toml("");
    let output = env.path("manager.out");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let _dump = DumpOnFailure(output.clone(), env.path("no-agent-log"));
    let port = env.service_port;

    let (ok, out) = cli(
        port,
        &[
            "session", "create", "-t", "pty-e2e", "-r", "cpu=1", "-r", "mem=1g", IMAGE,
        ],
    )
    .await;
    assert!(ok, "session create failed:\n{out}");
    let kernel: uuid::Uuid = db
        .query_one(
            "SELECT k.id FROM kernels k JOIN sessions s ON s.id = k.session_id
              WHERE s.name = 'pty-e2e' AND s.status = 'RUNNING'",
            &[],
        )
        .await
        .expect("the RUNNING session's kernel")
        .get(0);

    let signer = Signer::new(ADMIN_AK, ADMIN_SK);
    let mut terminal = WsClient::connect(port, &signer, "/stream/session/pty-e2e/pty")
        .await
        .expect("opening the terminal");

    // Keystrokes in, output out.
    type_until_echoed(&mut terminal, "ls -al\n").await;

    // Control messages reach the kernel as the kernel runner's commands.
    terminal
        .send_text(r#"{"type":"resize","rows":24,"cols":80}"#)
        .await
        .unwrap();
    terminal.send_text(r#"{"type":"ping"}"#).await.unwrap();
    let kernel_text = kernel.to_string();
    wait_for("%resize and %ping to reach the kernel", LIMIT, || {
        let ledger = ledger.clone();
        let kernel_text = kernel_text.clone();
        async move {
            let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
            let queries = ledger
                .queries
                .get(&kernel_text)
                .cloned()
                .unwrap_or_default();
            if queries.iter().any(|q| q == "%resize 24 80") && queries.iter().any(|q| q == "%ping")
            {
                Ok(())
            } else {
                Err(format!("queries so far: {queries:?}"))
            }
        }
    })
    .await;

    // A restart restarts the kernel and reconnects to its terminal.
    terminal.send_text(r#"{"type":"restart"}"#).await.unwrap();
    wait_for("the kernel to be restarted", LIMIT, || {
        let ledger = ledger.clone();
        let kernel_text = kernel_text.clone();
        async move {
            let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
            match ledger.restarts.get(&kernel_text) {
                Some(1) => Ok(()),
                other => Err(format!("restarts {other:?}")),
            }
        }
    })
    .await;
    // The restarted container's terminal listens on new ports: typing reaches it only because
    // the kernel row now carries what restart_kernel reported.
    type_until_echoed(&mut terminal, "whoami\n").await;
    let container: Option<String> = db
        .query_one("SELECT container_id FROM kernels WHERE id = $1", &[&kernel])
        .await
        .unwrap()
        .get(0);
    assert_eq!(container.as_deref(), Some("restarted-1"));

    // The open terminal is accounted in Redis as the app streams are.
    let redis = redis::Client::open(env.redis.url(2))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    wait_for("the terminal to be in Redis", LIMIT, || {
        let mut redis = redis.clone();
        async move {
            let members = open_streams(&mut redis, kernel).await;
            if members.len() == 1 && members[0].starts_with(&format!("{kernel}:pty:")) {
                Ok(())
            } else {
                Err(format!("members {members:?}"))
            }
        }
    })
    .await;

    // Destroying the session closes the terminal with 1001 (going away).
    let (ok, out) = cli(port, &["session", "destroy", "pty-e2e"]).await;
    assert!(ok, "session destroy failed:\n{out}");
    assert_eq!(terminal.close_code().await, Some(1001));
    wait_for("the terminal to leave Redis", LIMIT, || {
        let mut redis = redis.clone();
        async move {
            match open_streams(&mut redis, kernel).await.len() {
                0 => Ok(()),
                n => Err(format!("{n} streams")),
            }
        }
    })
    .await;

    // Stopping the manager closes an open terminal with 1001 and says why, before the worker
    // drops its connections.
    let (ok, out) = cli(
        port,
        &[
            "session", "create", "-t", "pty-stop", "-r", "cpu=1", "-r", "mem=1g", IMAGE,
        ],
    )
    .await;
    assert!(ok, "session create failed:\n{out}");
    let mut terminal = WsClient::connect(port, &signer, "/stream/session/pty-stop/pty")
        .await
        .expect("opening the second terminal");
    type_until_echoed(&mut terminal, "uptime\n").await;
    manager.signal(libc::SIGTERM);
    assert_eq!(terminal.close_code().await, Some(1001));
    assert_eq!(terminal.close_reason, "the manager is shutting down");
    assert!(manager.wait_exit(LIMIT).success(), "{}", manager.output());
}
