//! `bai-manager etcd ...` against a real etcd: the install guide's lines verbatim, the backup and
//! restore round trip, put-json's one transaction, and every kind of bad input.

use bai_testkit::TestEnv;
use bai_testkit::env::configs_file;
use etcd_client::GetOptions;

use crate::cli_run::{CliRun, bai_manager};

fn etcd(env: &TestEnv, args: &[&str]) -> CliRun {
    let config = env.manager_toml("");
    let mut full = vec!["etcd"];
    full.extend_from_slice(args);
    bai_manager(&config, env.dir.path(), &full)
}

/// Every physical key and value of the test's namespace, sorted by key.
async fn namespace_dump(env: &TestEnv) -> Vec<(String, String)> {
    let mut client = env.etcd_client().await;
    let response = client
        .get(
            format!("/sorna/{}/", env.namespace),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let mut pairs: Vec<(String, String)> = response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_owned(),
                kv.value_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn the_install_guides_etcd_lines_work_verbatim() {
    let env = TestEnv::new().await;
    let seed_lines: &[&[&str]] = &[
        &["put", "config/redis/addr", "bai-m1:8110"],
        &["put", "config/redis/password", "develove"],
        &["put", "config/docker/image/auto_pull", "tag"],
        &[
            "put",
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ],
        &[
            "put",
            "config/docker/registry/cr.backend.ai/type",
            "harbor2",
        ],
        &[
            "put",
            "config/docker/registry/cr.backend.ai/project",
            "stable",
        ],
        &["put", "volumes/_types/group", ""],
        &["put", "volumes/_types/user", ""],
        &["put", "volumes/default_host", "bai-m1:local"],
        &[
            "put",
            "volumes/proxies/bai-m1/client_api",
            "http://10.20.30.10:6021",
        ],
        &[
            "put",
            "volumes/proxies/bai-m1/manager_api",
            "http://bai-m1:6022",
        ],
        &[
            "put",
            "volumes/proxies/bai-m1/secret",
            "secure-token-to-authenticate-manager-request",
        ],
        &["put", "volumes/proxies/bai-m1/ssl_verify", "false"],
    ];
    for line in seed_lines {
        etcd(&env, line).assert_ok();
    }
    assert_eq!(
        env.etcd_get("config/docker/registry/cr.backend.ai").await,
        Some("https://cr.backend.ai".to_owned())
    );
    assert_eq!(
        env.etcd_get("volumes/_types/group").await,
        Some(String::new())
    );

    let volumes = etcd(&env, &["get", "--prefix", "volumes"]).assert_ok();
    assert_eq!(
        volumes.stdout,
        r#"{
    "_types": {
        "group": "",
        "user": ""
    },
    "default_host": "bai-m1:local",
    "proxies": {
        "bai-m1": {
            "client_api": "http://10.20.30.10:6021",
            "manager_api": "http://bai-m1:6022",
            "secret": "secure-token-to-authenticate-manager-request",
            "ssl_verify": "false"
        }
    }
}
"#
    );
    let config = etcd(&env, &["get", "--prefix", "config"]).assert_ok();
    assert_eq!(
        config.stdout,
        r#"{
    "docker": {
        "image": {
            "auto_pull": "tag"
        },
        "registry": {
            "cr.backend.ai": {
                "": "https://cr.backend.ai",
                "project": "stable",
                "type": "harbor2"
            }
        }
    },
    "redis": {
        "addr": "bai-m1:8110",
        "password": "develove"
    }
}
"#
    );

    // Plain get prints the raw value; a missing key prints nothing and exits 1.
    let value = etcd(&env, &["get", "volumes/default_host"]).assert_ok();
    assert_eq!(value.stdout, "bai-m1:local\n");
    let missing = etcd(&env, &["get", "volumes/nothing-here"]);
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stdout, "");
    // Every scope name of the original is accepted; an empty subtree prints {}.
    for scope in ["MERGED", "GLOBAL", "SGROUP", "NODE"] {
        let run = etcd(&env, &["get", "--prefix", "nodes/none", "-s", scope]).assert_ok();
        assert_eq!(run.stdout, "{}\n");
    }
}

#[tokio::test]
async fn backup_delete_and_restore_give_back_the_same_keys_and_values() {
    let env = TestEnv::new().await;
    etcd(
        &env,
        &[
            "put-json",
            "config",
            configs_file("manager/sample.etcd.config.json")
                .to_str()
                .unwrap(),
        ],
    )
    .assert_ok();
    etcd(
        &env,
        &[
            "put-json",
            "volumes",
            configs_file("manager/sample.etcd.volumes.json")
                .to_str()
                .unwrap(),
        ],
    )
    .assert_ok();
    // Quoted key segments (a registry named host:port), a value that is also a parent, and
    // non-ASCII text.
    let registry = env.path("registry.json");
    std::fs::write(
        &registry,
        r#"{"127.0.0.1:5000": {"": "http://127.0.0.1:5000", "type": "docker", "project": "a/b,c"},
            "레지스트리": {"": "https://예.kr"}}"#,
    )
    .unwrap();
    etcd(
        &env,
        &[
            "put-json",
            "config/docker/registry",
            registry.to_str().unwrap(),
        ],
    )
    .assert_ok();
    etcd(&env, &["put", "manager/status", "running"]).assert_ok();
    let before = namespace_dump(&env).await;
    assert!(
        before.iter().any(
            |(k, v)| k.ends_with("/config/docker/registry/127.0.0.1%3A5000")
                && v == "http://127.0.0.1:5000"
        ),
        "{before:#?}"
    );
    assert!(
        before
            .iter()
            .any(|(k, v)| k.ends_with("/config/network/overlay/mtu") && v == "1500"),
        "numbers are written as Python's str() does: {before:#?}"
    );

    // The guide's commands, with the shell redirection done here.
    let backup = etcd(&env, &["get", "--prefix", ""]).assert_ok();
    let backup_path = env.path("etcd-config-backup.json");
    std::fs::write(&backup_path, &backup.stdout).unwrap();
    assert!(
        backup.stdout.contains("\"127.0.0.1:5000\": {\n")
            && backup.stdout.contains("\"\": \"http://127.0.0.1:5000\"")
            && backup.stdout.contains("\\ub808"),
        "{}",
        backup.stdout
    );
    etcd(&env, &["delete", "--prefix", ""]).assert_ok();
    assert_eq!(namespace_dump(&env).await, Vec::new());
    assert_eq!(
        etcd(&env, &["get", "--prefix", ""]).assert_ok().stdout,
        "{}\n"
    );
    etcd(&env, &["put-json", "", backup_path.to_str().unwrap()]).assert_ok();
    assert_eq!(namespace_dump(&env).await, before);
}

#[tokio::test]
async fn put_json_is_one_transaction_even_beyond_etcds_operation_limit() {
    let env = TestEnv::new().await;
    // 1000 keys: more than etcd's 128 operations per transaction, still all or nothing.
    let mut tree = serde_json::Map::new();
    for i in 0..1000 {
        tree.insert(format!("k{i:04}"), serde_json::Value::from(i));
    }
    let big = env.path("big.json");
    std::fs::write(&big, serde_json::Value::Object(tree).to_string()).unwrap();
    etcd(&env, &["put-json", "bulk", big.to_str().unwrap()]).assert_ok();
    let dump = namespace_dump(&env).await;
    assert_eq!(
        dump.iter().filter(|(k, _)| k.contains("/bulk/")).count(),
        1000
    );
    assert_eq!(env.etcd_get("bulk/k0999").await, Some("999".to_owned()));

    // Beyond what one transaction can hold: refused, nothing written.
    let mut huge = serde_json::Map::new();
    for i in 0..5000 {
        huge.insert(format!("h{i}"), serde_json::Value::from("x"));
    }
    let huge_path = env.path("huge.json");
    std::fs::write(&huge_path, serde_json::Value::Object(huge).to_string()).unwrap();
    let run = etcd(&env, &["put-json", "huge", huge_path.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("5000 operations do not fit in one etcd transaction")
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(env.etcd_get("huge/h0").await, None);
}

#[tokio::test]
async fn bad_input_gets_one_clear_error_and_writes_nothing() {
    let env = TestEnv::new().await;
    let before = namespace_dump(&env).await;

    let run = etcd(&env, &["put-json", "config", "/nonexistent/file.json"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("cannot read /nonexistent/file.json"),
        "{}",
        run.stderr
    );

    let broken = env.path("broken.json");
    std::fs::write(&broken, "{\"redis\": {\"addr\": ").unwrap();
    let run = etcd(&env, &["put-json", "config", broken.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("broken.json is not valid JSON"),
        "{}",
        run.stderr
    );

    let list = env.path("list.json");
    std::fs::write(&list, "[\"a\"]").unwrap();
    let run = etcd(&env, &["put-json", "config", list.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("not an array"), "{}", run.stderr);

    let run = etcd(&env, &["get", "x", "-s", "global"]);
    assert_eq!(run.code, 2, "clap refuses a scope that is not a name");
    assert_eq!(namespace_dump(&env).await, before);

    // Unreachable etcd: a port nothing listens on.
    let port = bai_testkit::ports::free_port();
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&env.etcd_endpoint, &format!("127.0.0.1:{port}"));
    let unreachable = env.path("unreachable.toml");
    std::fs::write(&unreachable, text).unwrap();
    let run = bai_manager(
        &unreachable,
        env.dir.path(),
        &["etcd", "put", "config/redis/addr", "x:1"],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("cannot connect to etcd") && run.stderr.contains(&port.to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one error line: {}",
        run.stderr
    );
}

#[tokio::test]
async fn delete_move_quote_and_sftp_verbs() {
    let env = TestEnv::new().await;
    let tree = env.path("tree.json");
    std::fs::write(
        &tree,
        r#"{"a": {"": "top", "x": "1", "y": {"z": "2"}}, "ab": "sibling"}"#,
    )
    .unwrap();
    etcd(&env, &["put-json", "t", tree.to_str().unwrap()]).assert_ok();

    etcd(&env, &["move-subtree", "t/a", "moved/a"]).assert_ok();
    assert_eq!(env.etcd_get("moved/a").await, Some("top".to_owned()));
    assert_eq!(env.etcd_get("moved/a/y/z").await, Some("2".to_owned()));
    assert_eq!(env.etcd_get("t/a/x").await, None);
    assert_eq!(
        env.etcd_get("t/ab").await,
        None,
        "plain string prefix, as the original"
    );
    assert_eq!(env.etcd_get("moved/a/b").await, Some("sibling".to_owned()));
    let run = etcd(&env, &["move-subtree", "moved", "moved/inner"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("inside the source"), "{}", run.stderr);
    assert_eq!(env.etcd_get("moved/a").await, Some("top".to_owned()));
    let run = etcd(&env, &["move-subtree", "nothing", "elsewhere"]);
    assert_ne!(run.code, 0);

    etcd(&env, &["delete", "moved/a/x"]).assert_ok();
    assert_eq!(env.etcd_get("moved/a/x").await, None);
    assert_eq!(env.etcd_get("moved/a").await, Some("top".to_owned()));
    etcd(&env, &["delete", "--prefix", "moved"]).assert_ok();
    assert_eq!(env.etcd_get("moved/a").await, None);

    let quoted = etcd(&env, &["quote", "127.0.0.1:5000/a b"]).assert_ok();
    assert_eq!(quoted.stdout, "127.0.0.1%3A5000%2Fa%20b\n");
    let unquoted = etcd(&env, &["unquote", "127.0.0.1%3A5000%2Fa%20b"]).assert_ok();
    assert_eq!(unquoted.stdout, "127.0.0.1:5000/a b\n");

    let run = etcd(&env, &["set-storage-sftp-scaling-group", "bai-m1", "a, b"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("\"bai-m1\" does not exist"),
        "{}",
        run.stderr
    );
    etcd(&env, &["put", "volumes/proxies/bai-m1/secret", "s"]).assert_ok();
    etcd(
        &env,
        &["set-storage-sftp-scaling-group", "bai-m1", " default , gpu"],
    )
    .assert_ok();
    assert_eq!(
        env.etcd_get("volumes/proxies/bai-m1/sftp_scaling_groups")
            .await,
        Some("default,gpu".to_owned())
    );
    etcd(&env, &["remove-storage-sftp-scaling-group", "bai-m1"]).assert_ok();
    assert_eq!(
        env.etcd_get("volumes/proxies/bai-m1/sftp_scaling_groups")
            .await,
        None
    );
    assert_eq!(
        env.etcd_get("volumes/proxies/bai-m1/secret").await,
        Some("s".to_owned())
    );
}

#[tokio::test]
async fn deprecated_etcd_image_verbs_warn_and_run_the_image_verbs() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let pairs: &[(&[&str], &[&str])] = &[
        (&["etcd", "list-images"], &["image", "list"]),
        (
            &["etcd", "dealias", "no-such-alias"],
            &["image", "dealias", "no-such-alias"],
        ),
        (
            &["etcd", "inspect-image", "no/such:image", "x86_64"],
            &["image", "inspect", "no/such:image", "x86_64"],
        ),
    ];
    for (old_args, new_args) in pairs {
        let new = bai_manager(&config, env.dir.path(), new_args);
        let old = bai_manager(&config, env.dir.path(), old_args);
        assert_eq!(old.code, new.code, "{old_args:?}: {}", old.stderr);
        assert_eq!(old.stdout, new.stdout, "{old_args:?}");
        assert!(
            old.stderr.contains(&format!(
                "etcd {} command is deprecated, use image {} instead",
                old_args[1], new_args[1]
            )),
            "{}",
            old.stderr
        );
    }
}
