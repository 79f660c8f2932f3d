//! `bai-manager start-server` as an operator runs it: a supervisor and its workers against real
//! PostgreSQL, etcd and Redis.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::wait::wait_for;

use crate::manager_process::ManagerProcess;

/// Generous bound for a stop: the manager promises 5 s; the test only fails on a hang.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn url(env: &TestEnv) -> String {
    format!("http://127.0.0.1:{}/", env.service_port)
}

/// A client that opens a new connection for every request (so SO_REUSEPORT spreads them).
fn one_shot_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Rewrites a key of the manager.toml `TestEnv` wrote (its keys are fixed; these tests need
/// other values).
fn edit_toml(path: &PathBuf, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[tokio::test]
async fn start_server_serves_get_root_registers_and_stops_cleanly() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);

    let response = reqwest::get(url(&env)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("server").unwrap().to_str().unwrap(),
        "BackendAI"
    );
    let response_version_header = response
        .headers()
        .get("x-bai-manager-version")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "version": "v6.20220615",
            "manager": "22.09.23",
            "bai-manager": env!("CARGO_PKG_VERSION"),
        })
    );
    assert_eq!(
        response_version_header,
        env!("CARGO_PKG_VERSION"),
        "bai-manager's own version travels in X-BAI-Manager-Version"
    );

    let pid_file = env.path("manager.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        manager.pid().to_string()
    );
    let node_key = format!("nodes/manager/i-test-{}", env.namespace);
    assert_eq!(env.etcd_get(&node_key).await.as_deref(), Some("up"));
    assert_eq!(
        env.etcd_get("manager/status").await.as_deref(),
        Some("running")
    );

    manager.signal(libc::SIGTERM);
    let status = manager.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", manager.output());
    assert!(!pid_file.exists(), "the pid file is left behind");
    assert_eq!(env.etcd_get(&node_key).await, None);
    // A status set by the operator is kept.
    assert_eq!(
        env.etcd_get("manager/status").await.as_deref(),
        Some("running")
    );
    assert!(
        TcpStream::connect(("127.0.0.1", env.service_port)).is_err(),
        "still listening after exit"
    );
}

#[tokio::test]
async fn a_frozen_manager_status_is_left_alone() {
    let env = TestEnv::new().await;
    env.etcd_put("manager/status", "frozen").await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);
    assert_eq!(
        env.etcd_get("manager/status").await.as_deref(),
        Some("frozen")
    );
}

#[tokio::test]
async fn two_workers_share_the_port_and_both_serve() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    // The worker's pid is in the verbose console format; --debug turns the access log on.
    edit_toml(&config, "format = \"simple\"", "format = \"verbose\"");
    let mut command = crate::manager_process::command(&config, &["--debug", "start-server"]);
    command.env("BACKEND_MANAGER_NPROC", "2");
    let mut manager = ManagerProcess::spawn(command, &env.path("out.log"));
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("worker 2 serving", Duration::from_secs(30));
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 2, "{}", manager.output());

    let client = one_shot_client();
    for _ in 0..40 {
        let response = client.get(url(&env)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let served_by: std::collections::BTreeSet<u32> = manager
        .output()
        .lines()
        .filter(|line| line.contains("actix_web::middleware::logger") && line.contains("GET / "))
        .filter_map(|line| {
            let start = line.find('[')? + 1;
            let end = start + line[start..].find(']')?;
            line[start..end].parse().ok()
        })
        .collect();
    assert_eq!(
        served_by,
        workers.iter().copied().collect(),
        "40 connections were not served by both workers:\n{}",
        manager.output()
    );
}

#[tokio::test]
async fn sigterm_closes_idle_keep_alive_connections_and_exits_zero() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);

    // A client that keeps its connection open must not hold the stop up for the 30 s
    // keep-alive time.
    let mut connection = TcpStream::connect(("127.0.0.1", env.service_port)).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    connection
        .write_all(b"GET / HTTP/1.1\r\nHost: manager\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 1024];
    let n = connection.read(&mut reply).unwrap();
    assert!(String::from_utf8_lossy(&reply[..n]).starts_with("HTTP/1.1 200"));

    manager.signal(libc::SIGTERM);
    let status = manager.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", manager.output());
    // The server closed the idle connection.
    assert_eq!(connection.read(&mut reply).unwrap_or(0), 0);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let env = TestEnv::new().await;
    // The test-only hold route (`src/server/hold_route.rs`): it creates `marker` when its
    // handler runs, then reads the body to its end.
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[debug]\nenabled = false", "[debug]\nenabled = true"),
    )
    .unwrap();
    let marker = env.path("hold-entered");
    let marker_text = marker.to_string_lossy().into_owned();
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BAI_TEST_HOLD_MARKER", marker_text.as_str())],
        &env.path("out.log"),
    );
    manager.wait_for_port(env.service_port);

    // A request whose body is still being uploaded when the stop begins: its handler is
    // running, waiting for the rest of the body.
    let body = [b'x'; 64];
    let head = format!(
        "POST /_debug/hold HTTP/1.1\r\nHost: manager\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut connection = TcpStream::connect(("127.0.0.1", env.service_port)).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    connection.write_all(head.as_bytes()).unwrap();
    connection.write_all(&body[..20]).unwrap();
    // The request is in flight once the worker runs its handler (a request that has not
    // reached the worker yet is not).
    wait_for(
        "the hold route's handler to run",
        Duration::from_secs(30),
        || async { marker.exists() },
    )
    .await;

    manager.signal(libc::SIGTERM);
    manager.wait_for_output("finishing in-flight requests", Duration::from_secs(10));
    connection.write_all(&body[20..]).unwrap();
    let mut reply = String::new();
    connection.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{reply}\n{}",
        manager.output()
    );
    assert!(reply.ends_with("\r\n\r\n64"), "{reply}");

    let status = manager.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", manager.output());
    assert!(
        TcpStream::connect(("127.0.0.1", env.service_port)).is_err(),
        "still accepting after the stop"
    );
}

#[tokio::test]
async fn without_the_debug_config_the_hold_route_does_not_exist() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let marker = env.path("hold-entered");
    let marker_text = marker.to_string_lossy().into_owned();
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BAI_TEST_HOLD_MARKER", marker_text.as_str())],
        &env.path("out.log"),
    );
    manager.wait_for_port(env.service_port);
    let reply = one_shot_client()
        .post(format!("{}_debug/hold", url(&env)))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_ne!(reply.status(), 200);
    assert!(!marker.exists());
    manager.signal(libc::SIGTERM);
    manager.wait_exit(EXIT_TIMEOUT);
}

#[tokio::test]
async fn sigint_stops_like_sigterm() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);
    manager.signal(libc::SIGINT);
    let status = manager.wait_exit(EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", manager.output());
    assert!(!env.path("manager.pid").exists());
}

#[tokio::test]
async fn a_killed_worker_is_replaced_and_the_port_keeps_serving() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BACKEND_MANAGER_NPROC", "2")],
        &env.path("out.log"),
    );
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("worker 2 serving", Duration::from_secs(30));
    let before = manager.worker_pids();
    assert_eq!(before.len(), 2);

    let victim = before[0];
    // SAFETY: kill(2) on a worker process of our own child.
    unsafe {
        libc::kill(victim as libc::pid_t, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = manager.worker_pids();
        if now.len() == 2 && !now.contains(&victim) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the killed worker was not replaced:\n{}",
            manager.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after.contains(&before[1]), "the healthy worker was touched");
    manager.wait_for_output("was killed by signal 9; restarting", Duration::from_secs(5));
    let replacement = after.iter().find(|pid| !before.contains(pid)).unwrap();
    manager.wait_for_output(
        &format!("started pid={replacement}"),
        Duration::from_secs(5),
    );
    let client = one_shot_client();
    for _ in 0..20 {
        assert_eq!(client.get(url(&env)).send().await.unwrap().status(), 200);
    }
}

/// A self-signed certificate for `localhost`, made with the openssl command line.
fn self_signed_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            // An end-entity certificate (openssl makes a CA by default, which TLS clients
            // refuse to accept as a server certificate).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running openssl (deploy/stack.sh install installs it)");
    assert!(status.success());
    (cert, key)
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let env = TestEnv::new().await;
    let (cert, key) = self_signed_certificate(env.dir.path());
    let config = env.manager_toml("");
    edit_toml(
        &config,
        "ssl-enabled = false",
        &format!(
            "ssl-enabled = true\nssl-cert = \"{}\"\nssl-privkey = \"{}\"",
            cert.display(),
            key.display()
        ),
    );
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);

    let certificate = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], env.service_port)),
        )
        .build()
        .unwrap();
    let response = client
        .get(format!("https://localhost:{}/", env.service_port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["server"], "BackendAI");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["version"], "v6.20220615");
    // Plain HTTP on the TLS port gets no API answer.
    assert!(reqwest::get(url(&env)).await.is_err());
}

#[tokio::test]
async fn an_unreachable_service_fails_the_start_naming_it() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let dead = free_port();
    let dead_addr = format!("127.0.0.1:{dead}");
    let cases = [
        ("etcd", "BACKEND_ETCD_ADDR", format!("etcd at {dead_addr}")),
        (
            "postgres",
            "BACKEND_DB_ADDR",
            format!("PostgreSQL at {dead_addr}"),
        ),
    ];
    for (name, variable, expected) in cases {
        let mut manager = ManagerProcess::start_server(
            &config,
            &[(variable, dead_addr.as_str())],
            &env.path(&format!("{name}.log")),
        );
        let status = manager.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(1), "{name}: {}", manager.output());
        assert!(
            manager.output().contains(&expected),
            "{name}: expected {expected:?} in:\n{}",
            manager.output()
        );
        assert!(!env.path("manager.pid").exists());
    }

    // Redis is found through etcd.
    env.etcd_put("config/redis/addr", &format!("127.0.0.1:{dead}"))
        .await;
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("redis.log"));
    let status = manager.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", manager.output());
    assert!(
        manager
            .output()
            .contains(&format!("Redis at 127.0.0.1:{dead}")),
        "{}",
        manager.output()
    );
}

#[tokio::test]
async fn a_port_in_use_fails_the_start_naming_the_address() {
    let env = TestEnv::new().await;
    let taken = std::net::TcpListener::bind(("127.0.0.1", env.service_port)).unwrap();
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    let status = manager.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", manager.output());
    assert!(
        manager
            .output()
            .contains(&format!("cannot listen on 127.0.0.1:{}", env.service_port)),
        "{}",
        manager.output()
    );
    drop(taken);
}

#[tokio::test]
async fn workers_run_as_the_configured_user_when_started_as_root() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let env = TestEnv::new().await;
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let config = env.manager_toml(&format!(
        "user = \"nobody\"\ngroup = {}",
        nobody.gid.as_raw()
    ));
    let mut manager = ManagerProcess::start_server(&config, &[], &env.path("out.log"));
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("serving on", Duration::from_secs(30));
    let worker = manager.worker_pids()[0];
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    let nobody_uid = nobody.uid.as_raw().to_string();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|id| id == nobody_uid),
        "{uid_line}"
    );
    assert!(
        gid_line
            .split_whitespace()
            .skip(1)
            .all(|id| id == nobody.gid.as_raw().to_string()),
        "{gid_line}"
    );
    // The supervisor keeps root (it removes the pid file and deregisters at the end).
    let supervisor = std::fs::read_to_string(format!("/proc/{}/status", manager.pid())).unwrap();
    let supervisor_uid = supervisor.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(supervisor_uid.split_whitespace().nth(1), Some("0"));
    assert_eq!(
        reqwest::get(url(&env)).await.unwrap().status(),
        200,
        "{}",
        manager.output()
    );
    // Switching accounts clears the kernel's parent-death signal; the worker sets it again.
    manager.signal(libc::SIGKILL);
    manager.wait_exit(EXIT_TIMEOUT);
    wait_until_gone(worker);
}

/// Waits until process `pid` has exited (panics after a generous bound).
fn wait_until_gone(pid: u32) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    {
        assert!(
            Instant::now() < deadline,
            "worker {pid} outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn workers_stop_when_the_supervisor_is_killed() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BACKEND_MANAGER_NPROC", "2")],
        &env.path("out.log"),
    );
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("worker 2 serving", Duration::from_secs(30));
    let workers = manager.worker_pids();
    assert_eq!(workers.len(), 2);
    manager.signal(libc::SIGKILL);
    manager.wait_exit(EXIT_TIMEOUT);
    for worker in workers {
        wait_until_gone(worker);
    }
}
