//! The official client 23.09.10 (CLI and SDK, from `deploy/peers/client.sh`) against a real
//! `bai-manager start-server`: the commands of captures/real-cli-commands.log whose REST calls
//! this manager serves, with the same console output.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use bai_testkit::TestEnv;
use serde_json::Value;

use crate::api_session::{IMAGE, REGISTRY};
use crate::api_support::*;
use crate::manager_process::ManagerProcess;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The client's venv, installed on first use (once per test process).
pub(crate) fn client_bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = repo_root().join("deploy/peers/client.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("install")
            .status()
            .expect("running deploy/peers/client.sh");
        assert!(status.success(), "deploy/peers/client.sh install failed");
        let output = Command::new("bash")
            .arg(&script)
            .arg("cli")
            .output()
            .expect("running deploy/peers/client.sh cli");
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
            .parent()
            .expect("the CLI lives in the venv's bin folder")
            .to_owned()
    })
    .clone()
}

/// A running bai-manager with the example fixtures and the test image, and the client's
/// environment pointing at it.
struct ClientWorld {
    env: TestEnv,
    manager: ManagerProcess,
}

impl ClientWorld {
    async fn start() -> ClientWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let db = env.db.connect().await;
        db.execute(
            "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                                 size_bytes, labels, resources)
             VALUES ($1, 'testing', 'testing/python', '3.9-ubuntu20.04', $2, 'x86_64',
                     'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340',
                     938, '{}', '{\"cpu\": {\"min\": \"1\"}, \"mem\": {\"min\": \"256m\"}}')",
            &[&IMAGE, &REGISTRY],
        )
        .await
        .unwrap();
        let config = env.manager_toml("");
        let mut manager =
            ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
        manager.wait_for_port(env.service_port);
        ClientWorld { env, manager }
    }

    async fn allow_registry(&self) {
        self.env
            .db
            .connect()
            .await
            .execute(
                "UPDATE domains SET allowed_docker_registries =
                     array_append(allowed_docker_registries, $1) WHERE name = 'default'",
                &[&REGISTRY],
            )
            .await
            .unwrap();
    }

    fn command(&self, program: &str, access_key: &str, secret_key: &str) -> Command {
        let mut command = Command::new(client_bin_dir().join(program));
        let home = self.env.path("client-home");
        std::fs::create_dir_all(&home).unwrap();
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env(
                "BACKEND_ENDPOINT",
                format!("http://127.0.0.1:{}", self.env.service_port),
            )
            .env("BACKEND_ENDPOINT_TYPE", "api")
            .env("BACKEND_ACCESS_KEY", access_key)
            .env("BACKEND_SECRET_KEY", secret_key);
        command
    }

    /// Runs `backend.ai ARGS` as the admin; returns (exit code, stdout + stderr).
    fn cli(&self, args: &[&str]) -> (i32, String) {
        self.cli_as(ADMIN_AK, ADMIN_SK, args)
    }

    /// Runs `backend.ai ARGS` with another keypair.
    fn cli_as(&self, access_key: &str, secret_key: &str, args: &[&str]) -> (i32, String) {
        let output = self
            .command("backend.ai", access_key, secret_key)
            .args(args)
            .output()
            .expect("running the backend.ai CLI");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }

    /// Runs a Python snippet with the client SDK as `access_key`; returns its stdout as JSON.
    fn sdk(&self, access_key: &str, secret_key: &str, code: &str) -> Value {
        let output = self
            .command("python", access_key, secret_key)
            .arg("-c")
            .arg(code)
            .output()
            .expect("running the client SDK");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the SDK script failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

fn assert_contains(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(text.contains(line), "{line:?} is not in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_creates_and_destroys_sessions_as_against_the_original() {
    let world = ClientWorld::start().await;

    // As in real-cli-commands.log, before the registry is allowed for the domain:
    let create = [
        "session",
        "create",
        "--name",
        "sess1",
        "--enqueue-only",
        "-r",
        "cpu=1",
        "-r",
        "mem=512m",
        IMAGE,
    ];
    let (code, out) = world.cli(&create);
    assert_eq!(code, 1, "{out}");
    assert_contains(
        &out,
        &[
            "✘ BackendAPIError: 404 Not Found",
            "No such environment image.",
            "➜ Message: unknown alias or disallowed registry",
        ],
    );
    for args in [
        &["session", "destroy", "sess1"][..],
        &["session", "destroy", "--forced", "sess1"][..],
    ] {
        let (code, out) = world.cli(args);
        assert_eq!(code, 1, "{out}");
        assert_contains(
            &out,
            &[
                "Terminating the session(s)...",
                "✘ BackendAPIError: 404 Not Found",
                "No such session.",
                "➜ Message: Session (id=sess1) does not exist.",
            ],
        );
    }

    world.allow_registry().await;
    let (code, out) = world.cli(&create);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("∙ Session ID ") && out.contains(" is enqueued for scheduling."),
        "{out}"
    );
    let session_id = out
        .split("Session ID ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a session id in the output")
        .to_owned();
    assert_eq!(session_id.len(), 36, "{out}");

    // The SDK's REST view of it (ComputeSession.get_info → GET /session/sess1).
    let info = world.sdk(
        ADMIN_AK,
        ADMIN_SK,
        "import json\nfrom ai.backend.client.session import Session\n\
         with Session() as s:\n    print(json.dumps(s.ComputeSession('sess1').get_info()))",
    );
    assert_eq!(info["status"], "PENDING");
    assert_eq!(info["image"], IMAGE);
    assert_eq!(info["userId"], "f38dea23-50fa-42a0-b5ae-338f5f4693f4");

    let (code, out) = world.cli(&["session", "destroy", "sess1"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["Terminating the session(s)...", "✓ Done."]);
    let status: String = world
        .env
        .db
        .connect()
        .await
        .query_one(
            "SELECT status::text FROM sessions WHERE id::text = $1",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "CANCELLED");

    // A forced destroy of a PENDING session cancels it as well.
    let (code, out) = world.cli(&create);
    assert_eq!(code, 0, "{out}");
    let (code, out) = world.cli(&["session", "destroy", "--forced", "sess1"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["✓ Done."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_roles_and_config_through_the_official_sdk_and_cli() {
    let world = ClientWorld::start().await;

    let presets = world.sdk(
        USER_AK,
        USER_SK,
        "import json\nfrom ai.backend.client.session import Session\n\
         with Session() as s:\n    print(json.dumps(s.Resource.list()))",
    );
    assert_eq!(presets["presets"].as_array().unwrap().len(), 6);
    assert_eq!(
        presets["presets"][0],
        serde_json::json!({"name": "cpu01-small", "shared_memory": null,
                           "resource_slots": {"cpu": "1", "mem": "1073741824"}})
    );

    let check = world.sdk(
        USER_AK,
        USER_SK,
        "import json\nfrom ai.backend.client.session import Session\n\
         with Session() as s:\n    print(json.dumps(s.Resource.check_presets()))",
    );
    assert_eq!(
        check["keypair_limits"],
        serde_json::json!({"cpu": "Infinity", "mem": "Infinity"})
    );
    assert_eq!(
        check["scaling_groups"]["default"]["remaining"],
        serde_json::json!({"cpu": "0", "mem": "0"})
    );
    assert_eq!(check["presets"].as_array().unwrap().len(), 6);

    let (code, out) = world.cli(&["admin", "resource", "query-slots"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["cpu", "count", "mem", "bytes"]);
    let (code, out) = world.cli(&["admin", "resource", "vfolder-types"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["user"]);

    // `vfolder list-hosts` asks for /folders/_/hosts: with no storage proxy configured in
    // etcd there is no usable host (the storage tests cover configured proxies).
    let (code, out) = world.cli(&["vfolder", "list-hosts"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["Default vfolder host: None", "Usable hosts: "]);
    assert!(!out.contains("Traceback"), "{out}");

    // Nothing the manager printed carries a secret key.
    let log = world.manager.output();
    for secret in ALL_SECRETS {
        assert!(!log.contains(secret), "the manager logged a secret key");
    }
}
