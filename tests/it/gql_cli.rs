//! The official client 23.09.10 (from `deploy/peers/client.sh`) against a real
//! `bai-manager start-server`: the list commands that go through GraphQL give the JSON shape of
//! captures/real-cli-commands.log with our data, and the admin commands change what the next
//! list shows. The expected keys below are those of the log.

use std::io::Write;
use std::process::{Command, Stdio};

use bai_testkit::TestEnv;
use serde_json::{Value, json};

use crate::api_client_e2e::client_bin_dir;
use crate::api_support::{ADMIN_AK, ADMIN_SK, MONITOR_AK, MONITOR_SK, USER_AK, USER_SK};
use crate::gql_support::{insert_agent, insert_session};
use crate::manager_process::ManagerProcess;

struct CliWorld {
    env: TestEnv,
    _manager: ManagerProcess,
}

impl CliWorld {
    async fn start(manager_keys: &str) -> CliWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let config = env.manager_toml(manager_keys);
        let mut manager =
            ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
        manager.wait_for_port(env.service_port);
        CliWorld {
            env,
            _manager: manager,
        }
    }

    /// Runs `backend.ai ARGS` with a keypair, answering `y` to confirmations; returns
    /// (exit code, stdout, stderr).
    fn cli_as(&self, access_key: &str, secret_key: &str, args: &[&str]) -> (i32, String, String) {
        let home = self.env.path("client-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new(client_bin_dir().join("backend.ai"))
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
            .env("BACKEND_SECRET_KEY", secret_key)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the backend.ai CLI");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"y\n");
        }
        let output = child
            .wait_with_output()
            .expect("waiting for the backend.ai CLI");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn admin(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_as(ADMIN_AK, ADMIN_SK, args)
    }

    /// `backend.ai --output json ARGS` as the admin, which must succeed.
    fn json(&self, args: &[&str]) -> Value {
        self.json_as(ADMIN_AK, ADMIN_SK, args)
    }

    fn json_as(&self, access_key: &str, secret_key: &str, args: &[&str]) -> Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let (code, stdout, stderr) = self.cli_as(access_key, secret_key, &full);
        assert_eq!(code, 0, "backend.ai {args:?} failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Runs an admin command that must succeed.
    fn ok(&self, args: &[&str]) {
        let (code, stdout, stderr) = self.admin(args);
        assert_eq!(code, 0, "backend.ai {args:?} failed:\n{stdout}\n{stderr}");
    }
}

fn keys(item: &Value) -> Vec<&str> {
    item.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn field_of<'a>(list: &'a Value, key: &str) -> Vec<&'a Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item[key])
        .collect()
}

/// The paginated-list wrapper of the client's JSON output.
fn assert_list(list: &Value, count: usize) {
    assert_eq!(keys(list), ["count", "total_count", "items"], "{list}");
    assert_eq!(list["count"], count, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), count, "{list}");
}

#[tokio::test]
async fn list_commands_give_the_captured_json_shapes() {
    let world = CliWorld::start("").await;
    let db = world.env.db.connect().await;
    insert_agent(&db, "i-agent1", "ALIVE", "default").await;
    db.execute(
        "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest, \
             size_bytes, labels, resources) VALUES \
         ('127.0.0.1:25000/testing/python:3.9-ubuntu20.04', 'testing', 'testing/python', \
          '3.9-ubuntu20.04', '127.0.0.1:25000', 'x86_64', \
          'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340', 938, '{}', '{}')",
        &[],
    )
    .await
    .unwrap();
    // RUNNING: the manager's scheduler would cancel a PENDING session it cannot place.
    let (session_id, kernel_id) = insert_session(&db, "sess1", ADMIN_AK, "RUNNING", None).await;

    let images = world.json(&["admin", "image", "list"]);
    assert_list(&images, 1);
    assert_eq!(
        images["items"][0],
        json!({"name": "testing/python", "registry": "127.0.0.1:25000", "architecture": "x86_64",
               "tag": "3.9-ubuntu20.04",
               "digest": "sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340 ",
               "size_bytes": "938B", "aliases": []})
    );

    let agents = world.json(&["admin", "agent", "list"]);
    assert_list(&agents, 1);
    assert_eq!(
        keys(&agents["items"][0]),
        [
            "id",
            "status",
            "architecture",
            "scaling_group",
            "region",
            "first_contact",
            "cpu_cur_pct",
            "mem_cur_bytes",
            "available_slots",
            "occupied_slots"
        ]
    );
    assert_eq!(agents["items"][0]["id"], "i-agent1");
    assert_eq!(
        agents["items"][0]["available_slots"],
        json!({"cpu": "8", "mem": "17179869184"})
    );

    let sessions = world.json(&["session", "list"]);
    assert_list(&sessions, 1);
    assert_eq!(
        sessions["items"][0],
        json!({"name": "sess1", "access_key": ADMIN_AK, "session_id": session_id.to_string(),
               "group_name": "default", "main_kernel_id": kernel_id.to_string(),
               "image": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04", "type": "INTERACTIVE",
               "status": "RUNNING", "status_info": null,
               "status_changed": "2026-11-28T02:15:31.597310+00:00", "result": "UNDEFINED"})
    );
    assert_list(
        &world.json(&["session", "list", "--status", "TERMINATED"]),
        0,
    );

    let info = world.json(&["session", "info", &session_id.to_string()]);
    assert_list(&info, 1);
    let session = &info["items"][0];
    assert_eq!(
        keys(session),
        [
            "name",
            "session_id",
            "main_kernel_id",
            "image",
            "tag",
            "created_at",
            "terminated_at",
            "status",
            "status_info",
            "status_data",
            "occupying_slots",
            "idle_checks",
            "containers",
            "dependencies"
        ]
    );
    assert_eq!(
        session["occupying_slots"],
        json!({"cpu": "1", "mem": "536870912"})
    );
    assert_eq!(
        keys(&session["containers"][0]),
        [
            "kernel_id",
            "cluster_role",
            "cluster_idx",
            "cluster_hostname",
            "session_id",
            "image",
            "registry",
            "status",
            "status_info",
            "status_data",
            "status_changed",
            "agent",
            "container_id",
            "resource_opts",
            "occupied_slots",
            "preopen_ports",
            "live_stat",
            "last_stat"
        ]
    );
    assert_eq!(
        session["containers"][0]["resource_opts"],
        json!({"shmem": 67108864})
    );

    let keypairs = world.json(&["admin", "keypair", "list"]);
    assert_list(&keypairs, 5);
    assert_eq!(
        keys(&keypairs["items"][0]),
        [
            "user_id",
            "projects",
            "full_name",
            "access_key",
            "secret_key",
            "is_active",
            "is_admin",
            "created_at",
            "last_used",
            "resource_policy",
            "rate_limit",
            "concurrency_used"
        ]
    );
    // Only the caller's own secret key is in the list.
    let secrets: Vec<&Value> = field_of(&keypairs, "secret_key")
        .into_iter()
        .filter(|s| !s.is_null())
        .collect();
    assert_eq!(secrets, [&json!(ADMIN_SK)]);

    let users = world.json(&["admin", "user", "list"]);
    assert_list(&users, 5);
    assert_eq!(
        keys(&users["items"][0]),
        [
            "uuid",
            "username",
            "role",
            "email",
            "full_name",
            "need_password_change",
            "status",
            "status_info",
            "created_at",
            "domain_name",
            "groups",
            "allowed_client_ip",
            "sudo_session_enabled",
            "main_access_key"
        ]
    );

    let sgroups = world.json(&["admin", "scaling-group", "list"]);
    assert_list(&sgroups, 1);
    assert_eq!(
        sgroups["items"][0],
        json!({"name": "default", "description": "The default agent scaling group",
               "is_active": true, "is_public": true,
               "created_at": sgroups["items"][0]["created_at"], "driver": "static",
               "scheduler": "fifo", "use_host_network": false, "wsproxy_addr": null,
               "wsproxy_api_token": null})
    );

    let domains = world.json(&["admin", "domain", "list"]);
    assert_eq!(field_of(&domains, "name"), [&json!("default")]);
    let groups = world.json(&["admin", "group", "list"]);
    assert_eq!(field_of(&groups, "name"), [&json!("default")]);
    let policies = world.json(&["admin", "keypair-resource-policy", "list"]);
    assert_eq!(field_of(&policies, "name"), [&json!("default")]);

    // A user lists only its own sessions and may not list users or agents.
    let own = world.json_as(USER_AK, USER_SK, &["session", "list"]);
    assert_list(&own, 0);
    let (code, stdout, stderr) = world.cli_as(
        USER_AK,
        USER_SK,
        &["--output", "json", "admin", "user", "list"],
    );
    assert_ne!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = world.cli_as(USER_AK, USER_SK, &["admin", "agent", "list"]);
    assert_ne!(code, 0, "{stdout}{stderr}");
    // The monitor reads, but does not write.
    assert_list(
        &world.json_as(MONITOR_AK, MONITOR_SK, &["admin", "user", "list"]),
        5,
    );
    let (code, _, _) = world.cli_as(MONITOR_AK, MONITOR_SK, &["admin", "domain", "add", "mine"]);
    assert_ne!(code, 0);
}

#[tokio::test]
async fn admin_commands_change_the_next_list() {
    let world = CliWorld::start("").await;

    // Users.
    world.ok(&[
        "admin",
        "user",
        "add",
        "default",
        "lisa@example.com",
        "+ld5tUhe",
        "-u",
        "smithlisa",
        "-n",
        "Elizabeth Conley",
    ]);
    let users = world.json(&[
        "admin",
        "user",
        "list",
        "--filter",
        "email == \"lisa@example.com\"",
    ]);
    assert_list(&users, 1);
    assert_eq!(users["items"][0]["username"], "smithlisa");
    assert_eq!(users["items"][0]["role"], "user");
    world.ok(&[
        "admin",
        "user",
        "update",
        "lisa@example.com",
        "--full-name",
        "Ms. Shannon Matthews",
        "--role",
        "admin",
        "--status",
        "inactive",
    ]);
    let users = world.json(&[
        "admin",
        "user",
        "list",
        "--filter",
        "email == \"lisa@example.com\"",
    ]);
    assert_eq!(users["items"][0]["full_name"], "Ms. Shannon Matthews");
    assert_eq!(users["items"][0]["role"], "admin");
    assert_eq!(users["items"][0]["status"], "inactive");

    // Keypairs.
    let (code, stdout, stderr) = world.admin(&[
        "admin",
        "keypair",
        "add",
        "lisa@example.com",
        "default",
        "-r",
        "25000",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let keypairs = world.json(&["admin", "keypair", "list", "--user-id", "lisa@example.com"]);
    assert_list(&keypairs, 2);
    assert!(field_of(&keypairs, "rate_limit").contains(&&json!(25000)));
    let new_key = keypairs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["rate_limit"] == 25000)
        .unwrap()["access_key"]
        .as_str()
        .unwrap()
        .to_owned();
    world.ok(&[
        "admin",
        "keypair",
        "update",
        &new_key,
        "--rate-limit",
        "100",
    ]);
    world.ok(&["admin", "keypair", "deactivate", &new_key]);
    let keypair = world.json(&[
        "admin",
        "keypair",
        "list",
        "--filter",
        &format!("access_key == \"{new_key}\""),
    ]);
    assert_eq!(keypair["items"][0]["rate_limit"], 100);
    assert_eq!(keypair["items"][0]["is_active"], false);
    world.ok(&["admin", "keypair", "delete", &new_key]);
    assert_list(
        &world.json(&["admin", "keypair", "list", "--user-id", "lisa@example.com"]),
        1,
    );

    world.ok(&["admin", "user", "delete", "lisa@example.com"]);
    let users = world.json(&[
        "admin",
        "user",
        "list",
        "--filter",
        "email == \"lisa@example.com\"",
    ]);
    assert_eq!(users["items"][0]["status"], "deleted");
    world.ok(&["admin", "user", "purge", "lisa@example.com"]);
    assert_list(
        &world.json(&[
            "admin",
            "user",
            "list",
            "--filter",
            "email == \"lisa@example.com\"",
        ]),
        0,
    );

    // Keypair resource policies.
    world.ok(&[
        "admin",
        "keypair-resource-policy",
        "add",
        "brother",
        "--max-concurrent-sessions",
        "20",
        "--idle-timeout",
        "1200",
    ]);
    let policies = world.json(&["admin", "keypair-resource-policy", "list"]);
    let brother = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "brother")
        .unwrap()
        .clone();
    assert_eq!(brother["max_concurrent_sessions"], 20);
    world.ok(&[
        "admin",
        "keypair-resource-policy",
        "update",
        "brother",
        "--max-concurrent-sessions",
        "30",
    ]);
    let policies = world.json(&["admin", "keypair-resource-policy", "list"]);
    let brother = policies["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "brother")
        .unwrap()
        .clone();
    assert_eq!(brother["max_concurrent_sessions"], 30);
    world.ok(&["admin", "keypair-resource-policy", "delete", "brother"]);
    assert_eq!(
        field_of(
            &world.json(&["admin", "keypair-resource-policy", "list"]),
            "name"
        ),
        [&json!("default")]
    );

    // Scaling groups.
    world.ok(&[
        "admin",
        "scaling-group",
        "add",
        "gpu",
        "--description",
        "GPUs",
    ]);
    world.ok(&[
        "admin",
        "scaling-group",
        "update",
        "gpu",
        "--description",
        "Test scaling group updated",
        "--scheduler",
        "lifo",
    ]);
    let sgroups = world.json(&["admin", "scaling-group", "list"]);
    let gpu = sgroups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "gpu")
        .unwrap()
        .clone();
    assert_eq!(gpu["description"], "Test scaling group updated");
    assert_eq!(gpu["scheduler"], "lifo");
    // (The client's console output of these two crashes on a result without an item; its JSON
    // output does not.)
    let associated = world.json(&[
        "admin",
        "scaling-group",
        "associate-scaling-group",
        "gpu",
        "default",
    ]);
    assert_eq!(associated["ok"], true, "{associated}");
    let db = world.env.db.connect().await;
    let count = |db: tokio_postgres::Client| async move {
        db.query_one(
            "SELECT count(*) FROM sgroups_for_domains WHERE scaling_group = 'gpu'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert_eq!(count(world.env.db.connect().await).await, 1);
    let dissociated = world.json(&[
        "admin",
        "scaling-group",
        "dissociate-scaling-group",
        "gpu",
        "default",
    ]);
    assert_eq!(dissociated["ok"], true, "{dissociated}");
    assert_eq!(count(db).await, 0);
    world.ok(&["admin", "scaling-group", "delete", "gpu"]);
    assert_eq!(
        field_of(&world.json(&["admin", "scaling-group", "list"]), "name"),
        [&json!("default")]
    );

    // Domains.
    world.ok(&["admin", "domain", "add", "lab", "-d", "Lab"]);
    world.ok(&[
        "admin",
        "domain",
        "update",
        "lab",
        "--new-name",
        "lab2",
        "--description",
        "Lab 2",
    ]);
    let domains = world.json(&["admin", "domain", "list"]);
    let lab = domains["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "lab2")
        .unwrap()
        .clone();
    assert_eq!(lab["description"], "Lab 2");
    world.ok(&["admin", "domain", "delete", "lab2"]);
    let domains = world.json(&["admin", "domain", "list"]);
    let lab = domains["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "lab2")
        .unwrap()
        .clone();
    assert_eq!(lab["is_active"], false);
    world.ok(&["admin", "domain", "purge", "lab2"]);
    assert_eq!(
        field_of(&world.json(&["admin", "domain", "list"]), "name"),
        [&json!("default")]
    );

    // A mutation that fails says why and exits non-zero.
    let (code, stdout, stderr) = world.admin(&["admin", "domain", "purge", "test123"]);
    assert_ne!(code, 0);
    assert!(
        format!("{stdout}{stderr}").contains("no matching purgedomain"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn hide_agents_hides_agent_ids_from_the_monitor_cli() {
    let world = CliWorld::start("hide-agents = true").await;
    let db = world.env.db.connect().await;
    insert_agent(&db, "i-agent1", "ALIVE", "default").await;
    let agents = world.json(&["admin", "agent", "list"]);
    assert_eq!(agents["items"][0]["id"], "i-agent1");
    let agents = world.json_as(MONITOR_AK, MONITOR_SK, &["admin", "agent", "list"]);
    assert_eq!(agents["items"][0]["id"], json!(null));
    assert_eq!(agents["items"][0]["scaling_group"], "default");
}
