//! The official CLI 23.09.10 (`deploy/peers/client.sh`) against `bai-manager start-server`
//! with the real storage proxy: the vfolder commands of captures/real-cli-commands.log give
//! the same console output, and the folders really appear on and vanish from the volume.

use std::process::Command;

use bai_testkit::{StorageProxyServer, TestEnv};

use crate::api_client_e2e::client_bin_dir;
use crate::api_support::{ADMIN_AK, ADMIN_SK, USER_AK, USER_SK};
use crate::manager_process::ManagerProcess;

const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

struct CliWorld {
    env: TestEnv,
    proxy: StorageProxyServer,
    _manager: ManagerProcess,
}

impl CliWorld {
    async fn start() -> CliWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let proxy = StorageProxyServer::start(&env);
        proxy.register(&env, "local").await;
        let config = env.manager_toml("");
        let mut manager =
            ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
        manager.wait_for_port(env.service_port);
        CliWorld {
            env,
            proxy,
            _manager: manager,
        }
    }

    /// Runs `backend.ai ARGS` with a keypair; returns (exit code, stdout + stderr).
    fn cli_as(&self, access_key: &str, secret_key: &str, args: &[&str]) -> (i32, String) {
        let home = self.env.path("client-home");
        std::fs::create_dir_all(&home).unwrap();
        let output = Command::new(client_bin_dir().join("backend.ai"))
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
            .output()
            .expect("running the backend.ai CLI");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }

    fn cli(&self, args: &[&str]) -> (i32, String) {
        self.cli_as(ADMIN_AK, ADMIN_SK, args)
    }

    async fn folder_id(&self, name: &str) -> Option<uuid::Uuid> {
        self.env
            .db
            .connect()
            .await
            .query_opt("SELECT id FROM vfolders WHERE name = $1", &[&name])
            .await
            .unwrap()
            .map(|row| row.get(0))
    }
}

fn assert_contains(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(text.contains(line), "{line:?} is not in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_manages_folders_as_against_the_original() {
    let world = CliWorld::start().await;

    let (code, out) = world.cli(&["vfolder", "list-hosts"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(
        &out,
        &[
            "Default vfolder host: local:volume1",
            "Usable hosts: local:volume1",
        ],
    );

    let (code, out) = world.cli(&["vfolder", "create", "myvf1", "local:volume1"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["Virtual folder \"myvf1\" is created."]);
    let id = world.folder_id("myvf1").await.expect("a row for myvf1");
    let admin: uuid::Uuid = ADMIN_UUID.parse().unwrap();
    let dir = world.proxy.folder_path(admin, id);
    assert!(dir.is_dir(), "{} is not on the volume", dir.display());

    // `vfolder list` goes through GraphQL `vfolder_list` (real-manager.http #74).
    let (code, out) = world.cli(&["--output", "json", "vfolder", "list"]);
    assert_eq!(code, 0, "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        (listed["count"].clone(), listed["total_count"].clone()),
        (1.into(), 1.into())
    );
    let item = &listed["items"][0];
    assert_eq!(item["host"], "local:volume1");
    assert_eq!(item["name"], "myvf1");
    assert_eq!(item["creator"], "admin@lablup.com");
    assert_eq!(item["group_id"], serde_json::Value::Null);
    assert_eq!(item["permission"], "rw");
    assert_eq!(item["ownership_type"], "user");
    assert_eq!(item["status"], "ready");
    let created = item["created_at"].as_str().unwrap();
    assert!(
        created.contains('T') && created.ends_with("+00:00"),
        "{created}"
    );

    // The volumes through GraphQL `storage_volume_list` / `storage_volume` (#151, #154).
    let (code, out) = world.cli(&["--output", "json", "admin", "storage", "list"]);
    assert_eq!(code, 0, "{out}");
    let volumes: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(volumes["total_count"], 1);
    assert_eq!(volumes["items"][0]["id"], "local:volume1");
    assert_eq!(volumes["items"][0]["backend"], "vfs");
    let (code, out) = world.cli(&[
        "--output",
        "json",
        "admin",
        "storage",
        "info",
        "local:volume1",
    ]);
    assert_eq!(code, 0, "{out}");
    let info: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let volume = &info["items"][0];
    assert_eq!(volume["id"], "local:volume1");
    assert_eq!(volume["fsprefix"], ".");
    assert_eq!(volume["hardware_metadata"]["status"], "healthy");
    assert_eq!(volume["performance_metric"], serde_json::json!({}));

    let (code, out) = world.cli(&["vfolder", "info", "myvf1"]);
    assert_eq!(code, 0, "{out}");
    let expected = format!(
        "Virtual folder \"myvf1\" (ID: {})\n- Owner: True\n- Permission: rw\n- Status: ready\n\
         - Number of files: 0\n- Ownership Type: user\n- Permission: rw\n- Usage Mode: general\n\
         - Group ID: None\n- User ID: {ADMIN_UUID}\n- Clone Allowed: False\n",
        id.simple()
    );
    assert_eq!(out, expected);

    let (code, out) = world.cli(&["vfolder", "mkdir", "myvf1", "sub"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["✓ Done."]);
    assert!(dir.join("sub").is_dir());

    let (code, out) = world.cli(&["vfolder", "ls", "myvf1"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(
        &out,
        &[
            "Retrieving list of files in \".\"",
            "✓ Retrieved.",
            "file name",
            "size",
            "modified",
            "mode",
        ],
    );
    let row = out
        .lines()
        .find(|line| line.starts_with("sub "))
        .unwrap_or_else(|| panic!("no row for sub in:\n{out}"));
    assert!(row.contains("4096") && row.ends_with("drwxr-xr-x"), "{row}");

    let (code, out) = world.cli(&["vfolder", "rename", "myvf1", "myvf2"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["✓ Renamed."]);
    assert_eq!(world.folder_id("myvf2").await, Some(id));
    assert!(dir.is_dir(), "renaming keeps the same directory");

    let (code, out) = world.cli(&["vfolder", "delete", "myvf2"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["✓ Deleted."]);
    assert!(!dir.exists(), "{} is still on the volume", dir.display());
    assert_eq!(world.folder_id("myvf2").await, None);

    // The original's errors, as the CLI prints them.
    let (code, out) = world.cli(&["vfolder", "delete", "myvf2"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(
        &out,
        &[
            "✘ BackendAPIError: 404 Not Found",
            "No such virtual folder.",
        ],
    );
    let (code, _) = world.cli(&["vfolder", "create", "twice", "local:volume1"]);
    assert_eq!(code, 0);
    let (code, out) = world.cli(&["vfolder", "create", "twice", "local:volume1"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(
        &out,
        &[
            "✘ BackendAPIError: 400 Bad Request",
            "The virtual folder already exists with the same name.",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_and_a_stopped_proxy_are_clear_and_change_nothing() {
    let mut world = CliWorld::start().await;

    // A host the user's merged permissions do not include.
    let (code, out) = world.cli_as(
        USER_AK,
        USER_SK,
        &["vfolder", "create", "x", "local:volume9"],
    );
    assert_eq!(code, 1, "{out}");
    assert_contains(
        &out,
        &[
            "✘ BackendAPIError: 400 Bad Request",
            "`create-vfolder` Not allowed in vfolder host(`local:volume9`)",
        ],
    );
    // A group folder by a plain user.
    let (code, out) = world.cli_as(
        USER_AK,
        USER_SK,
        &[
            "vfolder",
            "create",
            "-g",
            "default",
            "teamvf",
            "local:volume1",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_contains(&out, &["✘ BackendAPIError: 403 Forbidden"]);
    // Someone else's folder is invisible.
    let (code, _) = world.cli(&["vfolder", "create", "mine", "local:volume1"]);
    assert_eq!(code, 0);
    let (code, out) = world.cli_as(USER_AK, USER_SK, &["vfolder", "delete", "mine"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(&out, &["404 Not Found"]);
    let id = world.folder_id("mine").await.expect("mine survives");
    let dir = world.proxy.folder_path(ADMIN_UUID.parse().unwrap(), id);
    assert!(dir.is_dir());

    // GraphQL scopes: a user lists only their own folders; volumes are for superadmins.
    let (code, out) = world.cli_as(USER_AK, USER_SK, &["--output", "json", "vfolder", "list"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(&out, &["\"total_count\": 0"]);
    let (code, out) = world.cli_as(USER_AK, USER_SK, &["admin", "storage", "list"]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("local:volume1"), "{out}");

    // The proxy stops mid-way.
    world.proxy.stop();
    let (code, out) = world.cli(&["vfolder", "create", "lost", "local:volume1"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(
        &out,
        &[
            "✘ BackendAPIError: 503 Service Unavailable",
            "storage proxy local is unreachable",
        ],
    );
    assert!(!out.contains("Traceback"), "{out}");
    assert_eq!(world.folder_id("lost").await, None);
    let (code, out) = world.cli(&["vfolder", "delete", "mine"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(&out, &["503 Service Unavailable"]);
    assert_eq!(world.folder_id("mine").await, Some(id));
    assert!(dir.is_dir());
    let (code, out) = world.cli(&["vfolder", "list-hosts"]);
    assert_eq!(code, 1, "{out}");
    assert_contains(&out, &["503 Service Unavailable", "storage proxy local"]);

    // Back up: everything works again, consistently.
    world.proxy.restart();
    let (code, out) = world.cli(&["vfolder", "delete", "mine"]);
    assert_eq!(code, 0, "{out}");
    assert!(!dir.exists());
    assert_eq!(world.folder_id("mine").await, None);
    let log = std::fs::read_to_string(world.env.path("manager-output.log")).unwrap();
    assert!(
        log.contains("VFOLDER.DELETE"),
        "the manager logged nothing:\n{log}"
    );
    assert!(
        !log.contains(&world.proxy.secret),
        "the proxy secret is in the manager's log"
    );
}
