//! End to end with the official CLI (`backend.ai` 23.09.10) and the real `bai-manager
//! start-server`: `backend.ai run` in query and batch mode, `session upload`, `session logs`
//! (also after the session terminated), `session rename` and an interrupt on the real agent
//! 26.9.6 (dummy backend). The dummy agent does not run code: its `execute` answers
//! `{"status": "not-implemented"}` whatever the fake-code-runner setting, so the run ends
//! after one round without output there. The output of query and batch runs, `session ls`,
//! `session download` and `session restart` are checked on the simulated agent, because the
//! dummy agent answers those with empty data (`list_files` gives `files: ""`, `download_file`
//! no tar archive) or fails them (`restart_kernel` unpickles an empty stored config).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{StreamWriter, run_heartbeats};
use bai_testkit::TestEnv;
use bai_testkit::wait::wait_for;

use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image};
use crate::sched_support::{ADMIN_AK, RealAgent, add_sim_agents, scheduling_world, sim_fleet};

const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const LIMIT: Duration = Duration::from_secs(90);

/// `backend.ai ARGS` run in `cwd`, off the async runtime.
async fn cli_in(port: u16, cwd: &Path, args: &[&str]) -> (bool, String) {
    let cwd = cwd.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(crate::sched_e2e::client_cli())
            .args(&args)
            .current_dir(&cwd)
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

/// Runs a method of the official SDK's `ComputeSession(name)` (e.g. `interrupt()`).
async fn sdk_call(port: u16, session: &str, call: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/peers/client.sh");
    let program = format!(
        "from ai.backend.client.session import Session\n\
         with Session() as s:\n    print(s.ComputeSession({session:?}).{call})\n"
    );
    tokio::task::spawn_blocking(move || {
        let python = Command::new("bash")
            .arg(&script)
            .arg("python")
            .output()
            .expect("running deploy/peers/client.sh");
        let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();
        let output = Command::new(python)
            .args(["-c", &program])
            .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("BACKEND_ENDPOINT_TYPE", "api")
            .env("BACKEND_ACCESS_KEY", ADMIN_AK)
            .env("BACKEND_SECRET_KEY", ADMIN_SK)
            .output()
            .expect("running the official SDK");
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
    .expect("the SDK task")
}

/// Received callback bodies, shared with the receiver task.
type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A plain HTTP receiver of session callbacks: records each POST body, answers 200.
async fn callback_receiver() -> (u16, Received, AbortOnDrop) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let sink = received.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head_end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            if name.eq_ignore_ascii_case("content-length") {
                                value.trim().parse().ok()
                            } else {
                                None
                            }
                        })
                        .unwrap_or(0);
                    if buffer.len() < head_end + 4 + length {
                        continue;
                    }
                    let body = &buffer[head_end + 4..head_end + 4 + length];
                    if let Ok(json) = serde_json::from_slice(body) {
                        sink.lock().unwrap_or_else(|p| p.into_inner()).push(json);
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (port, received, AbortOnDrop(task))
}

/// Stops a background task when the test ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session_row(db: &tokio_postgres::Client, name: &str) -> Option<(uuid::Uuid, String)> {
    db.query_opt(
        "SELECT id, status::text FROM sessions WHERE name = $1 ORDER BY created_at DESC LIMIT 1",
        &[&name],
    )
    .await
    .expect("reading a session")
    .map(|row| (row.get(0), row.get(1)))
}

#[tokio::test]
async fn backend_ai_run_files_logs_rename_and_interrupt_work_on_the_real_agent() {
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;
    let config = env.manager_toml("");
    let output = env.path("manager.out");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let _agent = RealAgent::start(&env, "i-interactive", 0, 4).await;
    let _dump = DumpOnFailure(output.clone(), env.path("agent-i-interactive/agent.log"));
    wait_for("the agent to be ALIVE", LIMIT, || async {
        db.query_opt(
            "SELECT 1 FROM agents WHERE id = 'i-interactive' AND status = 'ALIVE'",
            &[],
        )
        .await
        .unwrap()
        .map(|_| ())
        .ok_or_else(|| "not ALIVE".to_owned())
    })
    .await;
    let port = env.service_port;
    let work = env.path("client-work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("main.py"), "print('hello from batch')\n").unwrap();
    std::fs::write(work.join("data.txt"), "some data\n").unwrap();

    // Query mode: the session is created, the code runs over the execute stream.
    let (ok, out) = cli_in(
        port,
        &work,
        &[
            "run", "--name", "run-e2e", "-r", "cpu=1", "-r", "mem=1g", "-c", "print(1)", IMAGE,
        ],
    )
    .await;
    assert!(ok, "backend.ai run (query) failed:\n{out}");
    assert!(out.contains("Session run-e2e is ready"), "{out}");
    let (session_id, status) = session_row(&db, "run-e2e")
        .await
        .expect("the run's session");
    assert_eq!(status, "RUNNING", "{out}");
    let queries: i64 = db
        .query_one(
            "SELECT num_queries FROM kernels WHERE session_id = $1 AND cluster_role = 'main'",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(queries >= 1, "the execute was not counted: {queries}");

    // Batch mode on the same session: the file is uploaded, then built and run.
    let (ok, out) = cli_in(
        port,
        &work,
        &[
            "run",
            "--name",
            "run-e2e",
            "--exec",
            "python main.py",
            "-r",
            "cpu=1",
            "-r",
            "mem=1g",
            IMAGE,
            "main.py",
        ],
    )
    .await;
    assert!(ok, "backend.ai run (batch) failed:\n{out}");
    assert!(out.contains("Reusing session run-e2e"), "{out}");
    assert!(out.contains("Uploading done"), "{out}");
    let queries_after_batch: i64 = db
        .query_one(
            "SELECT num_queries FROM kernels WHERE session_id = $1 AND cluster_role = 'main'",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        queries_after_batch > queries,
        "the batch run did not reach the session: {queries} -> {queries_after_batch}"
    );

    let (ok, out) = cli_in(port, &work, &["session", "upload", "run-e2e", "data.txt"]).await;
    assert!(ok, "session upload failed:\n{out}");

    // The dummy agent's container log.
    let (ok, out) = cli_in(port, &work, &["session", "logs", "run-e2e"]).await;
    assert!(ok, "session logs failed:\n{out}");
    assert!(out.contains("my logs"), "{out}");

    let (ok, out) = sdk_call(port, "run-e2e", "interrupt()").await;
    assert!(ok, "interrupt failed:\n{out}");

    let (ok, out) = cli_in(
        port,
        &work,
        &["session", "rename", "run-e2e", "run-e2e-renamed"],
    )
    .await;
    assert!(ok, "session rename failed:\n{out}");
    assert_eq!(
        session_row(&db, "run-e2e-renamed").await.map(|r| r.0),
        Some(session_id)
    );
    let kernel_names: Vec<String> = db
        .query(
            "SELECT session_name FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kernel_names, vec!["run-e2e-renamed".to_owned()]);

    // After the session ends, its log is still there (kept from the agent at destroy).
    let (ok, out) = cli_in(port, &work, &["session", "destroy", "run-e2e-renamed"]).await;
    assert!(ok, "session destroy failed:\n{out}");
    wait_for("the session to be TERMINATED", LIMIT, || async {
        match session_row(&db, "run-e2e-renamed").await {
            Some((_, status)) if status == "TERMINATED" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let id_text = session_id.to_string();
    let (ok, out) = cli_in(port, &work, &["session", "logs", &id_text]).await;
    assert!(ok, "session logs of a terminated session failed:\n{out}");
    assert!(out.contains("my logs"), "{out}");
}

#[tokio::test]
async fn session_ls_download_restart_and_interrupt_work_on_a_simulated_agent() {
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;
    let agents = sim_fleet("i-sim-interactive", 1, WireFormat::Payload);
    add_sim_agents(&db, &agents).await;
    let writer = StreamWriter::connect(&env.redis.addr())
        .await
        .expect("connecting the simulator to Redis");
    let ledger = SharedLedger::default();
    let _servers = serve_fleet(&agents, &writer, &ledger);
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
    let _stop_heartbeats = AbortOnDrop(heartbeats);
    let config = env.manager_toml("");
    let output = env.path("manager.out");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let _dump = DumpOnFailure(output.clone(), env.path("no-agent-log"));
    let port = env.service_port;
    let work = env.path("client-work");
    std::fs::create_dir_all(work.join("out")).unwrap();
    std::fs::write(work.join("hello.txt"), "hello, kernel\n").unwrap();

    let (ok, out) = cli_in(
        port,
        &work,
        &[
            "session", "create", "-t", "sim-e2e", "-r", "cpu=1", "-r", "mem=1g", IMAGE,
        ],
    )
    .await;
    assert!(ok, "session create failed:\n{out}");
    let (session_id, status) = session_row(&db, "sim-e2e").await.expect("the session");
    assert_eq!(status, "RUNNING", "{out}");
    let kernel_id: uuid::Uuid = db
        .query_one(
            "SELECT id FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);

    // The simulated kernel echoes query code to stdout.
    let (ok, out) = cli_in(
        port,
        &work,
        &["run", "--name", "sim-e2e", "-c", "print(42)", IMAGE],
    )
    .await;
    assert!(ok, "backend.ai run failed:\n{out}");
    assert!(
        out.contains("print(42)"),
        "the kernel's stdout is missing:\n{out}"
    );

    let (ok, out) = cli_in(port, &work, &["session", "upload", "sim-e2e", "hello.txt"]).await;
    assert!(ok, "session upload failed:\n{out}");
    let (ok, out) = cli_in(port, &work, &["session", "ls", "sim-e2e"]).await;
    assert!(ok, "session ls failed:\n{out}");
    assert!(out.contains("hello.txt"), "{out}");
    let (ok, out) = cli_in(
        port,
        &work,
        &[
            "session",
            "download",
            "sim-e2e",
            "hello.txt",
            "--dest",
            "out",
        ],
    )
    .await;
    assert!(ok, "session download failed:\n{out}");
    assert_eq!(
        std::fs::read_to_string(work.join("out/hello.txt")).unwrap_or_default(),
        "hello, kernel\n"
    );

    let (ok, out) = cli_in(port, &work, &["session", "restart", "sim-e2e"]).await;
    assert!(ok, "session restart failed:\n{out}");
    let (ok, out) = sdk_call(port, "sim-e2e", "interrupt()").await;
    assert!(ok, "interrupt failed:\n{out}");
    {
        let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
        let kernel = kernel_id.to_string();
        assert_eq!(ledger.restarts.get(&kernel), Some(&1), "restarts");
        assert_eq!(ledger.interrupts.get(&kernel), Some(&1), "interrupts");
    }
    let (ok, out) = cli_in(port, &work, &["session", "logs", "sim-e2e"]).await;
    assert!(ok, "session logs failed:\n{out}");
    assert!(
        out.contains(&format!("simulated log of kernel {kernel_id}")),
        "{out}"
    );

    // A two-container single-node cluster with a callback URL: the agent makes the cluster's
    // local network first, the receiver hears the lifecycle, and the network goes at the end.
    let (hook_port, received, _receiver) = callback_receiver().await;
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let (ok, out) = cli_in(
        port,
        &work,
        &[
            "session",
            "create",
            "-t",
            "sim-cluster",
            "--cluster-size",
            "2",
            "-r",
            "cpu=1",
            "-r",
            "mem=1g",
            "--callback-url",
            &hook,
            IMAGE,
        ],
    )
    .await;
    assert!(ok, "session create (cluster) failed:\n{out}");
    let (cluster_id, status) = session_row(&db, "sim-cluster").await.expect("the cluster");
    assert_eq!(status, "RUNNING", "{out}");
    let calls = |method: &str| {
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .get(method)
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(calls("create_local_network"), 1);
    let (ok, out) = cli_in(port, &work, &["session", "destroy", "sim-cluster"]).await;
    assert!(ok, "session destroy (cluster) failed:\n{out}");
    assert_eq!(calls("destroy_local_network"), 1);
    // Every lifecycle event the scheduler announces (no separate `preparing` for a session whose
    // kernels start in one dispatch).
    let expected = ["enqueued", "scheduled", "started", "terminated"];
    wait_for("the callbacks of the cluster session", LIMIT, || async {
        let events: Vec<String> = received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|body| body["session_id"] == cluster_id.to_string())
            .filter_map(|body| body["event"].as_str().map(str::to_owned))
            .collect();
        if expected.iter().all(|e| events.iter().any(|seen| seen == e)) {
            Ok(())
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await;
    let first = received.lock().unwrap_or_else(|p| p.into_inner())[0].clone();
    assert_eq!(first["type"], "session_lifecycle", "{first}");
}
