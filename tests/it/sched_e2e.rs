//! End to end: the official CLI (`backend.ai` 23.09.10) creates a session on the real
//! `bai-manager start-server`, which places it on the real agent 26.9.6 (dummy backend) and
//! starts it there; `session info` shows it on the agent; `session destroy` terminates it and
//! gives the agent's slots back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bai_testkit::TestEnv;
use bai_testkit::wait::wait_for;

use crate::manager_process::ManagerProcess;
use crate::sched_support::{RealAgent, scheduling_world};

const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(crate) const IMAGE: &str = "cr.backend.ai/testing/python:3.9-ubuntu20.04";

pub(crate) fn client_cli() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/peers/client.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("cli")
        .output()
        .expect("running deploy/peers/client.sh");
    assert!(
        output.status.success(),
        "the official client is not installed: run deploy/peers/setup.sh\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Runs `backend.ai ARGS` against the manager; returns (success, stdout + stderr).
pub(crate) fn cli(port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new(client_cli())
        .args(args)
        .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("BACKEND_ENDPOINT_TYPE", "api")
        .env("BACKEND_ACCESS_KEY", crate::sched_support::ADMIN_AK)
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
}

/// `ComputeSession(name).get_info()` of the official SDK (REST `GET /session/{name}`).
fn sdk_session_info(port: u16, name: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/peers/client.sh");
    let python = Command::new("bash")
        .arg(&script)
        .arg("python")
        .output()
        .expect("running deploy/peers/client.sh");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();
    let program = format!(
        "import json\nfrom ai.backend.client.session import Session\n\
         with Session() as s:\n    print(json.dumps(s.ComputeSession({name:?}).get_info()))\n"
    );
    let output = Command::new(python)
        .args(["-c", &program])
        .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("BACKEND_ENDPOINT_TYPE", "api")
        .env("BACKEND_ACCESS_KEY", crate::sched_support::ADMIN_AK)
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
}

pub(crate) struct DumpOnFailure(pub(crate) PathBuf, pub(crate) PathBuf);

impl Drop for DumpOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- manager output ---\n{}\n--- agent log ---\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default(),
                std::fs::read_to_string(&self.1)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// Adds [`IMAGE`] (with the labels a Python kernel image has) and allows its registry.
pub(crate) async fn add_test_image(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
    "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                         size_bytes, labels, resources)
     VALUES ('{IMAGE}', 'testing', 'testing/python', '3.9-ubuntu20.04', 'cr.backend.ai', 'x86_64',
             'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340', 938,
             '{{\"ai.backend.kernelspec\": \"1\", \"ai.backend.features\": \"batch query uid-match user-input\",
               \"ai.backend.runtime-type\": \"python\", \"ai.backend.runtime-path\": \"/usr/bin/python3\",
               \"ai.backend.service-ports\": \"ipython:pty:3000,jupyter:http:8081\"}}',
             '{{\"cpu\": {{\"min\": \"1\"}}, \"mem\": {{\"min\": \"256m\"}}}}');
     UPDATE domains SET allowed_docker_registries = array_append(allowed_docker_registries, 'cr.backend.ai')
      WHERE name = 'default';"
))
.await
.expect("adding the test image");
}

#[tokio::test]
async fn the_official_cli_runs_a_session_on_the_real_agent_and_destroys_it() {
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;

    let config = env.manager_toml("");
    let output = env.path("manager.out");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let agent = RealAgent::start(&env, "i-sched-e2e", 0, 4).await;
    let _dump = DumpOnFailure(output.clone(), env.path("agent-i-sched-e2e/agent.log"));
    wait_for("the agent to be ALIVE", Duration::from_secs(60), || async {
        db.query_opt(
            "SELECT 1 FROM agents WHERE id = 'i-sched-e2e' AND status = 'ALIVE'",
            &[],
        )
        .await
        .unwrap()
        .is_some()
    })
    .await;

    let port = env.service_port;
    let (ok, out) = tokio::task::spawn_blocking(move || {
        cli(
            port,
            &[
                "session", "create", "-t", "e2e-sess", "-r", "cpu=1", "-r", "mem=1g", IMAGE,
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "session create failed:\n{out}");
    let row = db
        .query_one(
            "SELECT s.status::text, s.agent_ids, k.status::text, k.agent, a.occupied_slots
               FROM sessions s JOIN kernels k ON k.session_id = s.id JOIN agents a ON a.id = k.agent
              WHERE s.name = 'e2e-sess'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "RUNNING", "{out}");
    assert_eq!(row.get::<_, Vec<String>>(1), vec![agent.id.clone()]);
    assert_eq!(row.get::<_, String>(2), "RUNNING");
    let occupied: serde_json::Value = row.get(4);
    assert_eq!(occupied["cpu"], "1");
    assert_eq!(occupied["mem"], (1u64 << 30).to_string());

    // The 23.09 CLI wants the session id for `info` (API v5+).
    let session_id: uuid::Uuid = db
        .query_one("SELECT id FROM sessions WHERE name = 'e2e-sess'", &[])
        .await
        .unwrap()
        .get(0);
    let id_text = session_id.to_string();
    let (ok, info) = tokio::task::spawn_blocking(move || cli(port, &["session", "info", &id_text]))
        .await
        .unwrap();
    if info.contains("/admin/gql") && info.contains("Unknown URL path") {
        // The CLI reads session info over GraphQL, which this manager may not serve yet; the
        // SDK's REST `GET /session/{name}` must then show the session running.
        let (ok, rest) = tokio::task::spawn_blocking(move || sdk_session_info(port, "e2e-sess"))
            .await
            .unwrap();
        assert!(ok, "GET /session/e2e-sess through the SDK failed:\n{rest}");
        assert!(rest.contains("\"status\": \"RUNNING\""), "{rest}");
    } else {
        assert!(ok, "session info failed:\n{info}");
        assert!(info.contains("RUNNING"), "{info}");
        assert!(
            info.contains(&agent.id),
            "session info does not show the agent:\n{info}"
        );
    }

    let (ok, out) =
        tokio::task::spawn_blocking(move || cli(port, &["session", "destroy", "e2e-sess"]))
            .await
            .unwrap();
    assert!(ok, "session destroy failed:\n{out}");
    wait_for(
        "the session to be TERMINATED",
        Duration::from_secs(60),
        || async {
            db.query_one(
                "SELECT status::text FROM sessions WHERE name = 'e2e-sess'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
                == "TERMINATED"
        },
    )
    .await;
    let occupied: serde_json::Value = db
        .query_one(
            "SELECT occupied_slots FROM agents WHERE id = 'i-sched-e2e'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let all_zero = occupied
        .as_object()
        .map(|slots| slots.values().all(|v| v == "0"))
        .unwrap_or(true);
    assert!(
        all_zero,
        "the agent's slots were not given back: {occupied}"
    );
    let kernel_status: String = db
        .query_one(
            "SELECT k.status::text FROM kernels k JOIN sessions s ON s.id = k.session_id WHERE s.name = 'e2e-sess'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kernel_status, "TERMINATED");
}
