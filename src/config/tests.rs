//! Loading real manager.toml files (the install guide's example, upstream's sample and
//! halfstack files) and every kind of bad file, without touching the process environment.

use std::path::{Path, PathBuf};

use super::*;
use crate::logging::LogLevel;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<LocalConfig, ConfigError> {
    LocalConfig::parse(Path::new("/etc/bai/manager.toml"), text, &no_env)
}

fn parse_with_env(text: &str, vars: &[(&str, &str)]) -> Result<LocalConfig, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    LocalConfig::parse(Path::new("/etc/bai/manager.toml"), text, &lookup)
}

const MINIMAL: &str = r#"
[etcd]
namespace = "local"

[db]
addr = "127.0.0.1:5432"
name = "backend"
user = "postgres"
password = "develove"
"#;

fn invalid_parts(error: ConfigError) -> (String, String, String) {
    match error {
        ConfigError::Invalid {
            key,
            value,
            problem,
            ..
        } => (key, value, problem),
        other => panic!("expected an invalid-value error, got {other}"),
    }
}

#[test]
fn the_install_guide_example_loads_unchanged() {
    let path = repo_file("tests/data/seed-manager.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = LocalConfig::parse(&path, &text, &no_env).unwrap();
    assert_eq!(config.etcd.namespace, "local");
    assert_eq!(config.etcd.addr, HostPort::new("bai-m1", 8120));
    assert_eq!(config.db.addr, HostPort::new("bai-m1", 8100));
    assert_eq!(config.db.password, "develove");
    assert_eq!(config.manager.num_proc, 2);
    assert_eq!(config.manager.service_addr, HostPort::new("0.0.0.0", 8081));
    assert!(config.manager.hide_agents);
    assert_eq!(config.manager.distributed_lock, "filelock");
    assert_eq!(
        config.manager.pid_file,
        PathBuf::from("/home/bai/manager/manager.pid")
    );
    assert!(!config.docker_registry.ssl_verify);
    assert_eq!(
        config.logging.drivers,
        vec![LogDriver::Console, LogDriver::File]
    );
    assert_eq!(config.logging.pkg_ns.get("aiopg"), Some(&LogLevel::Warning));
    let file = config.logging.file.as_ref().unwrap();
    assert_eq!(file.backup_count, 10);
    assert_eq!(file.rotation_size, 10 * 1024 * 1024);
    assert_eq!(file.file_path(), PathBuf::from("./logs/manager.log"));
    assert!(config.debug.enhanced_aiomonitor_task_info);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_upstream_sample_loads_with_every_key_known() {
    let path = repo_file("configs/manager/sample.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = LocalConfig::parse(&path, &text, &no_env).unwrap();
    assert_eq!(config.etcd.user.as_deref(), Some("manager"));
    assert_eq!(config.db.addr, HostPort::new("localhost", 5432));
    assert_eq!(config.db.pool_size, 8);
    assert_eq!(config.manager.num_proc, 4);
    assert_eq!(config.manager.secret, "XXXXXXXXXXXXXX");
    assert_eq!(config.manager.user, Some(AccountId::Name("nobody".into())));
    assert_eq!(config.manager.service_addr, HostPort::new("0.0.0.0", 8080));
    assert_eq!(config.manager.heartbeat_timeout, 40.0);
    assert_eq!(config.manager.distributed_lock, "pg_advisory");
    assert_eq!(
        config.manager.agent_selection_resource_priority,
        ["cuda", "rocm", "tpu", "cpu", "mem"]
    );
    assert_eq!(
        config.manager.disabled_plugins.as_ref().map(|s| s.len()),
        Some(0)
    );
    assert_eq!(config.logging.file.as_ref().unwrap().backup_count, 5);
    assert_eq!(
        config.logging.pkg_ns.get("sqlalchemy"),
        Some(&LogLevel::Warning)
    );
    // The only warning allowed is about num-proc exceeding the cores of a small machine.
    assert!(
        config
            .warnings
            .iter()
            .all(|w| w.contains("num-proc") && w.contains("CPU cores")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn the_upstream_halfstack_file_loads() {
    let path = repo_file("configs/manager/halfstack.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = LocalConfig::parse(&path, &text, &no_env).unwrap();
    assert_eq!(config.etcd.addr, HostPort::new("127.0.0.1", 8120));
    assert_eq!(config.db.pool_recycle, 50.0);
    assert_eq!(config.manager.pid_file, PathBuf::from("./manager.pid"));
    assert!(config.manager.writes_pid_file());
}

#[test]
fn defaults_are_the_originals() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.etcd.addr, HostPort::new("127.0.0.1", 2379));
    assert_eq!(config.etcd.user.as_deref(), Some(""));
    assert_eq!(config.db.pool_size, 8);
    assert_eq!(config.db.max_overflow, 64);
    assert_eq!(config.manager.service_addr, HostPort::new("0.0.0.0", 8080));
    assert_eq!(config.manager.num_proc, cpu_count());
    assert_eq!(config.manager.heartbeat_timeout, 40.0);
    assert_eq!(config.manager.pid_file, PathBuf::from("/dev/null"));
    assert!(!config.manager.writes_pid_file());
    assert_eq!(config.manager.distributed_lock, "pg_advisory");
    assert_eq!(config.manager.secret.len(), 22, "token_urlsafe(16)");
    assert_eq!(config.manager.aiomonitor_termui_port, 48100);
    assert!(config.docker_registry.ssl_verify);
    assert_eq!(config.logging.level, LogLevel::Info);
    assert_eq!(config.logging.drivers, vec![LogDriver::Console]);
    assert_eq!(config.logging.pkg_ns.get(""), Some(&LogLevel::Warning));
    assert_eq!(config.logging.console.format, LogFormat::Verbose);
    assert!(!config.debug.enabled);
    assert!(config.manager_id().starts_with("i-"));
}

#[test]
fn host_port_takes_all_three_forms() {
    for form in [
        r#""db.example:5433""#,
        r#"["db.example", 5433]"#,
        r#"{ host = "db.example", port = 5433 }"#,
    ] {
        let text = MINIMAL.replace(r#""127.0.0.1:5432""#, form);
        let config = parse(&text).unwrap();
        assert_eq!(config.db.addr, HostPort::new("db.example", 5433), "{form}");
    }
    let text = MINIMAL.replace(r#""127.0.0.1:5432""#, r#""[::1]:5433""#);
    assert_eq!(parse(&text).unwrap().db.addr, HostPort::new("::1", 5433));
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let error = parse("[etcd\nnamespace = 1").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Syntax { .. }));
    assert!(message.contains("/etc/bai/manager.toml"), "{message}");
    assert!(message.contains("line 1"), "{message}");
    assert_eq!(error.exit_code(), crate::exit::INVALID_ARGUMENT);
}

#[test]
fn a_wrong_type_names_key_and_value() {
    let text = format!("{MINIMAL}\n[manager]\nnum-proc = \"many\"\n");
    let (key, value, problem) = invalid_parts(parse(&text).unwrap_err());
    assert_eq!(key, "manager.num-proc");
    assert_eq!(value, "\"many\"");
    assert!(problem.contains("integer"), "{problem}");

    let text = format!("{MINIMAL}\n[manager]\nhide-agents = [1]\n");
    let (key, _, problem) = invalid_parts(parse(&text).unwrap_err());
    assert_eq!(key, "manager.hide-agents");
    assert!(problem.contains("true or false"), "{problem}");

    let text = format!("db = 3\n{}", MINIMAL.replace("[db]", "[db-old]"));
    let error = parse(&text).unwrap_err();
    assert!(error.to_string().contains("db = 3"), "{error}");
}

#[test]
fn a_port_out_of_range_is_refused() {
    for form in [
        r#""127.0.0.1:70000""#,
        r#"["127.0.0.1", 0]"#,
        r#"{ host = "127.0.0.1", port = 65536 }"#,
    ] {
        let text = MINIMAL.replace(r#""127.0.0.1:5432""#, form);
        let error = parse(&text).unwrap_err();
        let message = error.to_string();
        let (key, _, problem) = invalid_parts(error);
        assert_eq!(key, "db.addr");
        assert!(problem.contains("out of range"), "{message}");
    }
}

#[test]
fn an_unknown_or_unsupported_log_driver_is_refused() {
    let text = format!("{MINIMAL}\n[logging]\ndrivers = [\"console\", \"syslog\"]\n");
    let (key, value, problem) = invalid_parts(parse(&text).unwrap_err());
    assert_eq!(key, "logging.drivers");
    assert_eq!(value, "[\"console\", \"syslog\"]");
    assert!(
        problem.contains("\"syslog\" is not a log driver"),
        "{problem}"
    );

    for driver in ["logstash", "graylog"] {
        let text = format!("{MINIMAL}\n[logging]\ndrivers = [\"{driver}\"]\n");
        let (_, _, problem) = invalid_parts(parse(&text).unwrap_err());
        assert!(problem.contains("not supported"), "{problem}");
    }
}

#[test]
fn missing_required_keys_and_bad_values_are_named() {
    let text = MINIMAL.replace("name = \"backend\"\n", "");
    let (key, value, _) = invalid_parts(parse(&text).unwrap_err());
    assert_eq!((key.as_str(), value.as_str()), ("db.name", "(missing)"));

    let text = MINIMAL.replace("\"backend\"", "\"back end!\"");
    assert_eq!(invalid_parts(parse(&text).unwrap_err()).0, "db.name");

    let text = MINIMAL.replace("[db]", "[db]\ntype = \"mysql\"");
    let (key, _, problem) = invalid_parts(parse(&text).unwrap_err());
    assert_eq!(key, "db.type");
    assert!(problem.contains("postgresql"));

    let text = format!("{MINIMAL}\n[manager]\ndistributed-lock = \"zookeeper\"\n");
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "manager.distributed-lock"
    );

    let text = format!("{MINIMAL}\n[manager]\nheartbeat-timeout = 0.5\n");
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "manager.heartbeat-timeout"
    );

    let text = format!("{MINIMAL}\n[manager]\nssl-enabled = true\n");
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "manager.ssl-cert"
    );

    let text = format!("{MINIMAL}\n[manager]\nssl-cert = \"/nonexistent/cert.pem\"\n");
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "manager.ssl-cert"
    );

    let text = format!("{MINIMAL}\n[logging]\nlevel = \"LOUD\"\n");
    assert_eq!(invalid_parts(parse(&text).unwrap_err()).0, "logging.level");

    let text = format!("{MINIMAL}\n[logging]\ndrivers = [\"file\"]\n");
    assert_eq!(invalid_parts(parse(&text).unwrap_err()).0, "logging.file");

    let text = format!(
        "{MINIMAL}\n[logging.file]\npath = \"/tmp\"\nfilename = \"m.log\"\nbackup-count = 0\n"
    );
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "logging.file.backup-count"
    );

    let text = format!(
        "{MINIMAL}\n[logging.file]\npath = \"/tmp\"\nfilename = \"m.log\"\nrotation-size = \"big\"\n"
    );
    assert_eq!(
        invalid_parts(parse(&text).unwrap_err()).0,
        "logging.file.rotation-size"
    );
}

#[test]
fn unknown_keys_are_accepted_with_a_warning() {
    let text = format!(
        "{MINIMAL}\n[manager]\nfuture-knob = 3\n\n[pyroscope]\nenabled = true\n[logging.console]\nsparkles = true\n"
    );
    let config = parse(&text).unwrap();
    let warnings = config.warnings.join("\n");
    assert!(warnings.contains("manager.future-knob"), "{warnings}");
    assert!(warnings.contains("pyroscope"), "{warnings}");
    assert!(warnings.contains("logging.console.sparkles"), "{warnings}");
}

#[test]
fn environment_overrides_apply_before_validation() {
    let config = parse_with_env(
        MINIMAL,
        &[
            ("BACKEND_NAMESPACE", "prod"),
            ("BACKEND_ETCD_ADDR", "etcd.example:2389"),
            ("BACKEND_ETCD_USER", "mgr"),
            ("BACKEND_ETCD_PASSWORD", "etcd-secret"),
            ("BACKEND_DB_ADDR", "db.example:6432"),
            ("BACKEND_DB_NAME", "bai"),
            ("BACKEND_DB_USER", "bai"),
            ("BACKEND_DB_PASSWORD", "db-secret"),
            ("BACKEND_MANAGER_NPROC", "1"),
            ("BACKEND_PID_FILE", "/run/bai/manager.pid"),
            ("BACKEND_SERVICE_IP", "127.0.0.1"),
            ("BACKEND_SERVICE_PORT", "18081"),
            ("BACKEND_SKIP_SSLCERT_VALIDATION", "false"),
        ],
    )
    .unwrap();
    assert_eq!(config.etcd.namespace, "prod");
    assert_eq!(config.etcd.addr, HostPort::new("etcd.example", 2389));
    assert_eq!(config.etcd.user.as_deref(), Some("mgr"));
    assert_eq!(config.etcd.password.as_deref(), Some("etcd-secret"));
    assert_eq!(config.db.addr, HostPort::new("db.example", 6432));
    assert_eq!(
        (config.db.name.as_str(), config.db.user.as_str()),
        ("bai", "bai")
    );
    assert_eq!(config.db.password, "db-secret");
    assert_eq!(config.manager.num_proc, 1);
    assert_eq!(
        config.manager.pid_file,
        PathBuf::from("/run/bai/manager.pid")
    );
    assert_eq!(
        config.manager.service_addr,
        HostPort::new("127.0.0.1", 18081)
    );
    assert!(!config.docker_registry.ssl_verify);
}

#[test]
fn a_bad_environment_value_names_its_variable() {
    let error = parse_with_env(MINIMAL, &[("BACKEND_MANAGER_NPROC", "lots")]).unwrap_err();
    let (key, value, _) = invalid_parts(error);
    assert_eq!(key, "manager.num-proc");
    assert_eq!(value, "\"lots\" (from $BACKEND_MANAGER_NPROC)");

    let error = parse_with_env(MINIMAL, &[("BACKEND_SERVICE_PORT", "99999")]).unwrap_err();
    let (key, value, _) = invalid_parts(error);
    assert_eq!(key, "manager.service-addr");
    assert!(value.contains("BACKEND_SERVICE_PORT"), "{value}");
}

#[test]
fn debug_flag_raises_levels_as_the_original() {
    let mut config = parse(MINIMAL).unwrap();
    config.apply_debug_flag();
    assert!(config.debug.enabled);
    assert_eq!(config.logging.level, LogLevel::Debug);
    assert_eq!(
        config.logging.pkg_ns.get("ai.backend"),
        Some(&LogLevel::Debug)
    );
    assert_eq!(config.logging.pkg_ns.get("aiohttp"), Some(&LogLevel::Debug));
    assert_eq!(config.logging.pkg_ns.get(""), Some(&LogLevel::Warning));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let text = MINIMAL.replace("develove", "db-pass-123");
    let text = text.replace(
        "namespace = \"local\"",
        "namespace = \"local\"\npassword = \"etcd-pass-456\"",
    );
    let text = format!("{text}\n[manager]\nsecret = \"salt-789\"\n");
    let shown = format!("{:?}", parse(&text).unwrap());
    for secret in ["db-pass-123", "etcd-pass-456", "salt-789"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

#[test]
fn search_order_prefers_backend_config_file() {
    let lookup = |name: &str| match name {
        "BACKEND_CONFIG_FILE" => Some("/srv/bai/manager.toml".to_owned()),
        _ => None,
    };
    assert_eq!(
        find_config_file_with(&lookup).unwrap(),
        PathBuf::from("/srv/bai/manager.toml")
    );
    let home = tempfile::tempdir().unwrap();
    let lookup = |name: &str| match name {
        "HOME" => Some(home.path().display().to_string()),
        _ => None,
    };
    match find_config_file_with(&lookup) {
        Err(ConfigError::NotFound { tried }) => {
            assert_eq!(tried[0], PathBuf::from("manager.toml"));
            assert_eq!(
                tried[1],
                home.path().join(".config/backend.ai/manager.toml")
            );
            assert_eq!(tried[2], PathBuf::from("/etc/backend.ai/manager.toml"));
        }
        // This machine may have an /etc/backend.ai/manager.toml or a ./manager.toml.
        Ok(found) => assert!(found.is_file()),
        Err(other) => panic!("{other}"),
    }
    let user_file = home.path().join(".config/backend.ai/manager.toml");
    std::fs::create_dir_all(user_file.parent().unwrap()).unwrap();
    std::fs::write(&user_file, MINIMAL).unwrap();
    if !Path::new("manager.toml").exists() {
        assert_eq!(find_config_file_with(&lookup).unwrap(), user_file);
    }
}

#[test]
fn the_session_transition_timeout_is_a_manager_key() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.manager.session_transition_timeout, 300.0);
    let text = format!("{MINIMAL}\n[manager]\nsession-transition-timeout = 12.5\n");
    let config = parse(&text).unwrap();
    assert_eq!(config.manager.session_transition_timeout, 12.5);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let text = format!("{MINIMAL}\n[manager]\nsession-transition-timeout = 0\n");
    let error = parse(&text).unwrap_err().to_string();
    assert!(error.contains("session-transition-timeout"), "{error}");
}
