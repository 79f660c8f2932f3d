//! manager.toml as the binary reads it: where it is found, what a bad file does (exit code 4
//! and one message naming the file, the key and the value), environment overrides taking
//! effect, and the install guide's example serving requests.

use std::path::Path;
use std::time::Duration;

use bai_testkit::TestEnv;

use crate::manager_process::{ManagerProcess, run_to_end};

/// A manager.toml whose only fault is `num-proc = "<marker>"`, so the error says which file
/// was read.
fn marked_config(marker: &str) -> String {
    format!(
        "[etcd]\nnamespace = \"local\"\n\n[db]\naddr = \"127.0.0.1:1\"\nname = \"backend\"\nuser = \"u\"\npassword = \"p\"\n\n[manager]\nnum-proc = \"{marker}\"\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_config_file_is_searched_as_the_original_does() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path().join("work");
    let home = root.path().join("home");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let home_env = ("HOME", home.to_str().unwrap());
    let user_file = home.join(".config/backend.ai/manager.toml");
    let system_file = Path::new("/etc/backend.ai/manager.toml");

    // Nothing to find: the error lists every place tried.
    if !system_file.exists() {
        let (code, output) = run_to_end(&["start-server"], &cwd, &[home_env]);
        assert_eq!(code, Some(4), "{output}");
        assert!(
            output.contains(&format!(
                "could not read config from: manager.toml, {}, /etc/backend.ai/manager.toml",
                user_file.display()
            )),
            "{output}"
        );
    }

    write(&user_file, &marked_config("from-home"));
    let (code, output) = run_to_end(&["start-server"], &cwd, &[home_env]);
    assert_eq!(code, Some(4), "{output}");
    assert!(output.contains("\"from-home\""), "{output}");
    assert!(
        output.contains(&user_file.display().to_string()),
        "{output}"
    );

    write(&cwd.join("manager.toml"), &marked_config("from-cwd"));
    let (code, output) = run_to_end(&["start-server"], &cwd, &[home_env]);
    assert_eq!(code, Some(4), "{output}");
    assert!(output.contains("\"from-cwd\""), "{output}");

    let env_file = root.path().join("elsewhere.toml");
    write(&env_file, &marked_config("from-variable"));
    let env_file_env = ("BACKEND_CONFIG_FILE", env_file.to_str().unwrap());
    let (_, output) = run_to_end(&["start-server"], &cwd, &[home_env, env_file_env]);
    assert!(output.contains("\"from-variable\""), "{output}");

    let flag_file = root.path().join("flag.toml");
    write(&flag_file, &marked_config("from-flag"));
    let (_, output) = run_to_end(
        &["-f", flag_file.to_str().unwrap(), "start-server"],
        &cwd,
        &[home_env, env_file_env],
    );
    assert!(output.contains("\"from-flag\""), "{output}");
}

#[test]
fn every_kind_of_bad_file_exits_4_naming_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let good = marked_config("1").replace("num-proc = \"1\"", "num-proc = 1");
    let cases = [
        (
            "syntax",
            good.replace("[manager]", "[manager"),
            vec!["is not valid TOML: line 10, column 9 ([manager)"],
        ),
        (
            "type",
            good.replace("num-proc = 1", "num-proc = \"two\""),
            vec!["manager.num-proc = \"two\"", "must be an integer"],
        ),
        (
            "port",
            good.replace("127.0.0.1:1\"", "127.0.0.1:65536\""),
            vec!["db.addr = \"127.0.0.1:65536\"", "out of range"],
        ),
        (
            "driver",
            format!("{good}\n[logging]\ndrivers = [\"console\", \"syslog\"]\n"),
            vec![
                "logging.drivers = [\"console\", \"syslog\"]",
                "\"syslog\" is not a log driver",
            ],
        ),
        (
            "unsupported-driver",
            format!("{good}\n[logging]\ndrivers = [\"logstash\"]\n"),
            vec!["logging.drivers", "logstash driver is not supported"],
        ),
        (
            "missing",
            good.replace("name = \"backend\"\n", ""),
            vec!["db.name = (missing)"],
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(format!("{name}.toml"));
        write(&path, &text);
        let (code, output) = run_to_end(
            &["-f", path.to_str().unwrap(), "start-server"],
            dir.path(),
            &[],
        );
        assert_eq!(code, Some(4), "{name}: {output}");
        assert!(
            output.contains(&path.display().to_string()),
            "{name}: {output}"
        );
        for part in expected {
            assert!(output.contains(part), "{name}: {part:?} not in {output}");
        }
        assert_eq!(
            output.trim().lines().count(),
            1,
            "{name}: one message: {output}"
        );
    }
    // An unreadable path is an invalid argument too.
    let (code, output) = run_to_end(
        &["-f", "/nonexistent/manager.toml", "start-server"],
        dir.path(),
        &[],
    );
    assert_eq!(code, Some(4), "{output}");
    assert!(
        output.contains("cannot read /nonexistent/manager.toml"),
        "{output}"
    );
}

#[tokio::test]
async fn backend_service_port_really_moves_the_service() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let port = bai_testkit::ports::free_port();
    let mut manager = ManagerProcess::start_server(
        &config,
        &[("BACKEND_SERVICE_PORT", &port.to_string())],
        &env.path("out.log"),
    );
    manager.wait_for_port(port);
    let response = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", env.service_port)).is_err(),
        "the file's port is still used"
    );
}

#[tokio::test]
async fn the_install_guide_example_serves_with_its_hosts_on_loopback() {
    let env = TestEnv::new().await;
    let seed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed-manager.toml"),
    )
    .unwrap();
    let config = env.path("manager.toml");
    std::fs::write(&config, seed.replace("\"bai-m1\"", "\"127.0.0.1\"")).unwrap();
    // Everything that differs in this test world comes from the documented variables.
    let db_addr = format!("{}:{}", env.db.host, env.db.port);
    let port = env.service_port.to_string();
    let pid_file = env.path("manager.pid");
    let envs = [
        ("BACKEND_NAMESPACE", env.namespace.as_str()),
        ("BACKEND_ETCD_ADDR", env.etcd_endpoint.as_str()),
        ("BACKEND_DB_ADDR", db_addr.as_str()),
        ("BACKEND_DB_NAME", env.db.name.as_str()),
        ("BACKEND_DB_USER", env.db.user.as_str()),
        ("BACKEND_SERVICE_IP", "127.0.0.1"),
        ("BACKEND_SERVICE_PORT", port.as_str()),
        ("BACKEND_PID_FILE", pid_file.to_str().unwrap()),
    ];
    let mut command = crate::manager_process::command(&config, &["start-server"]);
    command.envs(envs).current_dir(env.dir.path());
    let mut manager = ManagerProcess::spawn(command, &env.path("out.log"));
    manager.wait_for_port(env.service_port);
    manager.wait_for_output("worker 2 serving", Duration::from_secs(30));

    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["version"], "v6.20220615");
    assert!(pid_file.exists());
    // The example's file driver writes ./logs/manager.log, relative to the working folder.
    let log = std::fs::read_to_string(env.path("logs/manager.log")).unwrap();
    assert!(log.contains("serving on http://127.0.0.1:"), "{log}");

    manager.signal(libc::SIGTERM);
    assert_eq!(manager.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(!pid_file.exists());
}
