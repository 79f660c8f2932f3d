//! The official Web UI 23.09 (inside PyPI `backend.ai-webserver` 23.9.10, from
//! `deploy/peers/webserver.sh`) against a real `bai-manager start-server`, in headless Chromium:
//! log in through the real form, open every menu page and tab, and fail on any API call that
//! answers 4xx/5xx, any GraphQL error, any uncaught page error and any "Problem occurred" toast
//! (`tests/browser/webui_tour.py` drives the browser). Screenshots of failing pages are kept in
//! `.state/test-artifacts/webui/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::process::ServiceProcess;
use serde_json::Value;

use crate::manager_process::ManagerProcess;

/// How long the web server may take to import its dependencies and listen.
pub(crate) const WEBSERVER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The example superadmin of the fixtures (`configs/fixtures/example-users.json`).
pub(crate) const ADMIN_EMAIL: &str = "admin@lablup.com";
pub(crate) const ADMIN_PASSWORD: &str = "wJalrXUt";

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(web server python, driver python)`, installed on first use (once per test process).
pub(crate) fn peer_pythons() -> (PathBuf, PathBuf) {
    static PYTHONS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PYTHONS
        .get_or_init(|| {
            let script = repo_root().join("deploy/peers/webserver.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg("install")
                .status()
                .expect("running deploy/peers/webserver.sh");
            assert!(status.success(), "deploy/peers/webserver.sh install failed");
            let print = |what: &str| {
                let output = Command::new("bash")
                    .arg(&script)
                    .arg(what)
                    .output()
                    .expect("running deploy/peers/webserver.sh");
                PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
            };
            (print("python"), print("driver"))
        })
        .clone()
}

/// The web server's configuration: the Web UI in `webui` mode, agents shown (so the Agent
/// Summary page is part of the tour), its login sessions in the test's Redis.
pub(crate) fn webserver_conf(port: u16, manager_port: u16, redis_addr: &str, dir: &Path) -> String {
    format!(
        r#"[service]
ip = "127.0.0.1"
port = {port}
wsproxy.url = ""
mode = "webui"
hide_agents = false
enable_container_commit = true

[resources]

[environments]

[plugin]

[ui]
brand = "Backend.AI"

[api]
domain = "default"
endpoint = "http://127.0.0.1:{manager_port}"
text = "bai-manager"
ssl_verify = false

[session]
redis.addr = "{redis_addr}"
redis.db = 5
max_age = 3600

[webserver]
event-loop = "asyncio"
ipc-base-path = "{ipc}"
pid-file = "{pid}"

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[logging.pkg-ns]
"" = "WARNING"
"aiohttp" = "INFO"
"ai.backend" = "INFO"

[debug]
enabled = false
"#,
        ipc = dir.join("webserver-ipc").display(),
        pid = dir.join("webserver.pid").display(),
    )
}

/// Starts the web server of `env` in front of its manager (on `env.service_port`); answers it
/// and its port once it listens.
pub(crate) fn start_webserver(env: &TestEnv, webserver_python: &Path) -> (ServiceProcess, u16) {
    let web_port = free_port();
    let conf_path = env.path("webserver.conf");
    std::fs::create_dir_all(env.path("webserver-ipc")).expect("creating the ipc folder");
    std::fs::write(
        &conf_path,
        webserver_conf(
            web_port,
            env.service_port,
            &env.redis.addr(),
            env.dir.path(),
        ),
    )
    .expect("writing webserver.conf");
    let mut command = Command::new(webserver_python);
    command
        .args(["-m", "ai.backend.web.server", "-f"])
        .arg(&conf_path)
        .current_dir(env.dir.path());
    let mut webserver = ServiceProcess::spawn(
        "backend.ai-webserver",
        command,
        &env.path("webserver.log"),
        libc::SIGTERM,
    );
    webserver.wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], web_port)),
        WEBSERVER_START_TIMEOUT,
    );

    (webserver, web_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_opens_every_page_without_a_failed_call() {
    let (webserver_python, driver_python) = peer_pythons();
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
    manager.wait_for_port(env.service_port);

    let (webserver, web_port) = start_webserver(&env, &webserver_python);

    let shots = repo_root().join(".state/test-artifacts/webui");
    let output = Command::new(&driver_python)
        .arg(repo_root().join("tests/browser/webui_tour.py"))
        .args(["--url", &format!("http://127.0.0.1:{web_port}")])
        .args(["--user", ADMIN_EMAIL, "--password", ADMIN_PASSWORD])
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("running the browser tour");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser tour did not run: {stderr}\nweb server log:\n{}",
        webserver.log()
    );
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the tour printed no report ({e}): {stderr}"));

    assert_eq!(report["logged_in_as"], ADMIN_EMAIL, "{report}");
    let version = report["manager_version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("22.09."),
        "the UI must see a 22.09 manager to turn its features on, saw {version:?}"
    );
    let visited = report["visited"].as_array().cloned().unwrap_or_default();
    assert_eq!(visited.len(), 12, "every menu page is opened: {report}");
    let failures: Vec<String> = report["failures"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| format!("[{}] {}: {}", f["page"], f["kind"], f["detail"]))
        .collect();
    assert!(
        failures.is_empty(),
        "the Web UI met {} failure(s) (screenshots in {}):\n{}",
        failures.len(),
        shots.display(),
        failures.join("\n")
    );
}
