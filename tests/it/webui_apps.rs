//! The official Web UI 23.09 (`backend.ai-webserver` 23.9.10) runs a session, its apps and a
//! folder upload against a real `bai-manager start-server`, in headless Chromium
//! (`tests/browser/webui_apps.py` drives the browser), with the real agent 26.9.6 (dummy
//! backend), the real storage proxy 23.09.10 and the real app proxy `backend.ai-wsproxy`
//! 24.3.11 (`deploy/peers/wsproxy.sh`) as the resource group's wsproxy:
//!
//! 1. log in through the real form, launch a session from the Sessions page's launcher dialog
//!    (the test image, default resources) and wait until the list shows it RUNNING;
//! 2. the dummy agent reports no service ports, so once the kernel is RUNNING the test writes
//!    its `service_ports` row (as session_streams does) pointing `jupyter` and `ttyd` at HTTP
//!    pages it serves; the browser opens the session's app launcher, starts `jupyter`, then
//!    the terminal button (`ttyd`), and each new tab must show its page, served by the wsproxy
//!    from the kernel's host port (manager `wsproxy-version` → `start-service` → wsproxy
//!    `/v2/conf`, then the browser's `/v2/proxy/{token}/{session}/add` → `/v2/proxy/auth` →
//!    `/setup` → the circuit's port);
//! 3. upload a file into a folder through the Data & Storage page's file browser; the test
//!    finds it through the manager's `/folders/{name}/files` (the official CLI's `vfolder ls`).
//!
//! Two stand-ins for what a real (Docker) agent would report: the image is marked installed on
//! the agent in Redis (the launcher lists installed images only; the dummy agent scans none),
//! and the service ports above. Any API call answering 4xx/5xx, GraphQL error, uncaught page
//! error or "Problem occurred" toast fails the test (the tour's rules); screenshots go to
//! `.state/test-artifacts/webui-apps/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bai_testkit::ports::{free_port, free_port_range};
use bai_testkit::process::ServiceProcess;
use bai_testkit::wait::wait_for;
use bai_testkit::{StorageProxyServer, TestEnv};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::manager_process::ManagerProcess;
use crate::sched_e2e::{DumpOnFailure, IMAGE, add_test_image, client_cli};
use crate::sched_support::{ADMIN_AK, RealAgent, scheduling_world};
use crate::webui_browser::{ADMIN_EMAIL, ADMIN_PASSWORD, peer_pythons, repo_root, start_webserver};

const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const LIMIT: Duration = Duration::from_secs(90);
/// How long the wsproxy may take to import its dependencies and listen.
const WSPROXY_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The proxy ports the wsproxy binds (one per circuit; the Web UI opens two per app).
const WSPROXY_PORTS: u16 = 8;
/// The wsproxy's API secret, also the resource group's `wsproxy_api_token` (the 22.09/23.09
/// manager sends none with `/v2/conf`, and the wsproxy 24.3.11 asks none there).
const WSPROXY_API_SECRET: &str = "the-api-secret-of-the-webui-apps-test-01234567";
/// The folder the Web UI uploads into and the file it uploads.
const FOLDER: &str = "webui-upload";
const UPLOADED: &str = "hello-from-the-web-ui.txt";
/// The session the Web UI launches, and the agent it runs on.
const SESSION: &str = "webui-apps";
const AGENT: &str = "i-webui-apps";

/// The wsproxy's python (installed on first use).
fn wsproxy_python() -> PathBuf {
    let script = repo_root().join("deploy/peers/wsproxy.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("install")
        .status()
        .expect("running deploy/peers/wsproxy.sh");
    assert!(status.success(), "deploy/peers/wsproxy.sh install failed");
    let output = Command::new("bash")
        .arg(&script)
        .arg("python")
        .output()
        .expect("running deploy/peers/wsproxy.sh");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// The wsproxy 24.3.11's configuration: its API on `api_port`, app circuits on
/// `proxy_base..proxy_base + WSPROXY_PORTS`, everything advertised as 127.0.0.1.
fn wsproxy_conf(api_port: u16, proxy_base: u16, dir: &std::path::Path) -> String {
    format!(
        r#"[wsproxy]
ipc_base_path = "{dir}/ipc"
pid_file = "{dir}/wsproxy.pid"
id = "i-webui-apps"
bind_host = "127.0.0.1"
advertised_host = "127.0.0.1"
bind_api_port = {api_port}
bind_proxy_port_range = [{proxy_base}, {proxy_last}]
jwt_encrypt_key = "the-jwt-key-of-the-webui-apps-test-0123456789"
permit_hash_key = "the-permit-key-of-the-webui-apps-test-012345678"
api_secret = "{WSPROXY_API_SECRET}"
aiomonitor_termui_port = {termui}
aiomonitor_webui_port = {webui}

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[debug]
enabled = false
"#,
        dir = dir.display(),
        proxy_last = proxy_base + WSPROXY_PORTS - 1,
        termui = free_port(),
        webui = free_port(),
    )
}

/// Starts the wsproxy; answers it and its API address.
fn start_wsproxy(env: &TestEnv) -> (ServiceProcess, String) {
    let python = wsproxy_python();
    let dir = env.path("wsproxy");
    std::fs::create_dir_all(dir.join("ipc")).expect("creating the wsproxy's folders");
    let api_port = free_port();
    let proxy_base = free_port_range(WSPROXY_PORTS);
    std::fs::write(
        dir.join("wsproxy.toml"),
        wsproxy_conf(api_port, proxy_base, &dir),
    )
    .expect("writing wsproxy.toml");
    let mut command = Command::new(python);
    command
        .args(["-m", "ai.backend.wsproxy.server", "-f", "wsproxy.toml"])
        .current_dir(&dir);
    let mut process = ServiceProcess::spawn(
        "backend.ai-wsproxy",
        command,
        &dir.join("wsproxy.log"),
        libc::SIGTERM,
    );
    process.wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], api_port)),
        WSPROXY_START_TIMEOUT,
    );
    (process, format!("http://127.0.0.1:{api_port}"))
}

/// An HTTP service answering every request with a small HTML page saying `body`.
async fn page_service(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a service port");
    let port = listener.local_addr().expect("the service's port").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let page = format!("<!doctype html><title>{body}</title><p id=\"app\">{body}</p>");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    port
}

/// The official CLI with the example admin's keys against the manager of `env`.
async fn cli(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(client_cli())
        .env(
            "BACKEND_ENDPOINT",
            format!("http://127.0.0.1:{}", env.service_port),
        )
        .env("BACKEND_ENDPOINT_TYPE", "api")
        .env("BACKEND_ACCESS_KEY", ADMIN_AK)
        .env("BACKEND_SECRET_KEY", ADMIN_SK)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .await
        .expect("running the CLI");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Starts the real agent (dummy backend) and waits until the manager has it ALIVE.
///
/// The dummy agent forgets a kernel at the first tick of its 60-second kernel-registry sweep
/// after the kernel started (its `enumerate_containers` lists no container), after which
/// `start_service` fails with `KeyError`. The agent is therefore started only once the browser
/// is logged in, right before the session is launched, so that the kernel is created early in
/// the sweep's first period and the apps are opened within it.
async fn start_agent(env: &TestEnv, db: &tokio_postgres::Client) -> RealAgent {
    let agent = RealAgent::start(env, AGENT, 0, 4).await;
    wait_for("the agent to be ALIVE", LIMIT, || async {
        db.query_opt(
            "SELECT 1 FROM agents WHERE id = $1 AND status = 'ALIVE'",
            &[&AGENT],
        )
        .await
        .expect("reading the agent")
        .map(|_| ())
        .ok_or_else(|| "not ALIVE".to_owned())
    })
    .await;
    agent
}

/// Once the session [`SESSION`]'s kernel is RUNNING, writes its `service_ports` as a real
/// agent's kernel would report them (`(name, container port, host port)`, all HTTP); the dummy
/// agent reports none.
async fn write_service_ports(db: tokio_postgres::Client, apps: [(&'static str, u16, u16); 2]) {
    let ports: Vec<Value> = apps
        .iter()
        .map(|(name, container, host)| {
            serde_json::json!({"name": name, "protocol": "http", "container_ports": [container],
                               "host_ports": [host], "is_inference": false})
        })
        .collect();
    let ports = Value::Array(ports);
    wait_for("the session's kernel to be RUNNING", LIMIT, || async {
        let updated = db
            .execute(
                "UPDATE kernels SET service_ports = $2
                  WHERE status = 'RUNNING'
                    AND session_id = (SELECT id FROM sessions WHERE name = $1)",
                &[&SESSION, &ports],
            )
            .await
            .expect("writing the kernel's service ports");
        match updated {
            1 => Ok(()),
            _ => Err("no RUNNING kernel yet".to_owned()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_launches_a_session_opens_its_apps_and_uploads_a_file() {
    let (webserver_python, driver_python) = peer_pythons();
    let env = TestEnv::new().await;
    let db = scheduling_world(&env).await;
    add_test_image(&db).await;
    // The scheduling world's unlimited policy, with the example policy's folder rights.
    db.batch_execute(
        "UPDATE keypair_resource_policies
            SET (allowed_vfolder_hosts, max_vfolder_count) =
                (SELECT allowed_vfolder_hosts, max_vfolder_count
                   FROM keypair_resource_policies WHERE name = 'default')
          WHERE name = 'sched-test'",
    )
    .await
    .expect("allowing folders on local:volume1");
    let storage = StorageProxyServer::start(&env);
    storage.register(&env, "local").await;
    let (wsproxy, wsproxy_addr) = start_wsproxy(&env);
    db.execute(
        "UPDATE scaling_groups SET wsproxy_addr = $1, wsproxy_api_token = $2
          WHERE name = 'default'",
        &[&wsproxy_addr, &WSPROXY_API_SECRET],
    )
    .await
    .expect("pointing the resource group at the wsproxy");

    let config = env.manager_toml("");
    let output = env.path("manager-output.log");
    let mut manager = ManagerProcess::start_server(&config, &[], &output);
    manager.wait_for_port(env.service_port);
    let _dump = DumpOnFailure(output.clone(), env.path("agent-i-webui-apps/agent.log"));
    // The dummy agent scans no images; a real agent's heartbeat would list the image as
    // installed (Redis db 3), and the launcher offers installed images only.
    let mut images = redis::Client::open(env.redis.url(3))
        .expect("the image database's url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the image database");
    let _: i64 = redis::cmd("SADD")
        .arg(IMAGE)
        .arg(AGENT)
        .query_async(&mut images)
        .await
        .expect("marking the image installed on the agent");
    let (ok, out) = cli(&env, &["vfolder", "create", FOLDER, "local:volume1"]).await;
    assert!(ok, "creating the upload folder failed:\n{out}");

    let (webserver, web_port) = start_webserver(&env, &webserver_python);
    let jupyter_port = page_service("jupyter through the wsproxy").await;
    let ttyd_port = page_service("ttyd through the wsproxy").await;
    let upload = env.path(UPLOADED);
    std::fs::write(&upload, "uploaded by the Web UI\n").expect("writing the file to upload");

    let shots = repo_root().join(".state/test-artifacts/webui-apps");
    let mut script = tokio::process::Command::new(&driver_python)
        .arg(repo_root().join("tests/browser/webui_apps.py"))
        .args(["--url", &format!("http://127.0.0.1:{web_port}")])
        .args(["--user", ADMIN_EMAIL, "--password", ADMIN_PASSWORD])
        .args(["--image", IMAGE, "--folder", FOLDER, "--session", SESSION])
        .arg("--upload")
        .arg(&upload)
        .arg("--shots")
        .arg(&shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running the browser script");
    let mut to_script = script.stdin.take().expect("the script's stdin");
    let mut from_script =
        BufReader::new(script.stdout.take().expect("the script's stdout")).lines();
    let mut report = None;
    let mut agent = None;
    let mut ports_writer = None;
    // The script prints one JSON object a line: `{"event": "logged-in"}` once logged in (it
    // then waits for a line on stdin), and its report last.
    while let Some(line) = from_script
        .next_line()
        .await
        .expect("reading the script's output")
    {
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the script printed {line:?}: {e}"));
        if message["event"] == "logged-in" {
            agent = Some(start_agent(&env, &db).await);
            ports_writer = Some(tokio::spawn(write_service_ports(
                env.db.connect().await,
                [("jupyter", 8081, jupyter_port), ("ttyd", 7681, ttyd_port)],
            )));
            to_script
                .write_all(b"go\n")
                .await
                .expect("telling the script");
            to_script.flush().await.expect("telling the script");
        } else {
            report = Some(message);
        }
    }
    let finished = script
        .wait_with_output()
        .await
        .expect("waiting for the script");
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(
        finished.status.success(),
        "the browser script did not run: {stderr}\nweb server log:\n{}\nwsproxy log:\n{}",
        webserver.log(),
        wsproxy.log()
    );
    let report = report.unwrap_or_else(|| panic!("the script printed no report: {stderr}"));
    assert!(agent.is_some(), "the script never logged in: {report}");
    if let Some(writer) = ports_writer {
        writer.abort();
    }
    let failures: Vec<String> = report["failures"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| format!("[{}] {}: {}", f["step"], f["kind"], f["detail"]))
        .collect();
    assert!(
        failures.is_empty(),
        "the Web UI met {} failure(s) (screenshots in {}):\n{}\nwsproxy log:\n{}",
        failures.len(),
        shots.display(),
        failures.join("\n"),
        wsproxy.log()
    );
    assert_eq!(report["logged_in_as"], ADMIN_EMAIL, "{report}");
    assert_eq!(
        report["apps"]["jupyter"], "jupyter through the wsproxy",
        "{report}"
    );
    assert_eq!(
        report["apps"]["ttyd"], "ttyd through the wsproxy",
        "{report}"
    );
    assert_eq!(report["uploaded"], UPLOADED, "{report}");

    let (ok, listing) = cli(&env, &["vfolder", "ls", FOLDER]).await;
    assert!(ok, "listing the folder failed:\n{listing}");
    assert!(
        listing.contains(UPLOADED),
        "the uploaded file is not in the folder:\n{listing}"
    );
}
