//! The official CLI 23.09.10 against `bai-manager start-server` with the real storage proxy:
//! `vfolder invite`, `vfolder invitations` (answered on stdin as a user would), `vfolder leave`
//! and the `dotfile` commands.

use std::io::Write;
use std::process::{Command, Stdio};

use bai_testkit::{StorageProxyServer, TestEnv};

use crate::api_client_e2e::client_bin_dir;
use crate::api_support::{USER_AK, USER_SK, USER2_AK, USER2_SK};
use crate::manager_process::ManagerProcess;

struct CliWorld {
    env: TestEnv,
    _proxy: StorageProxyServer,
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
            _proxy: proxy,
            _manager: manager,
        }
    }

    /// Runs `backend.ai ARGS` as a keypair with `stdin`; returns (exit code, stdout + stderr).
    fn cli(&self, keys: (&str, &str), args: &[&str], stdin: &str) -> (i32, String) {
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
            .env("BACKEND_ACCESS_KEY", keys.0)
            .env("BACKEND_SECRET_KEY", keys.1)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the backend.ai CLI");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().expect("waiting for the CLI");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }
}

const USER: (&str, &str) = (USER_AK, USER_SK);
const USER2: (&str, &str) = (USER2_AK, USER2_SK);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_cli_invites_accepts_leaves_and_keeps_dotfiles() {
    let world = CliWorld::start().await;

    let (code, out) = world.cli(
        USER,
        &["vfolder", "create", "shared-data", "local:volume1"],
        "",
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = world.cli(USER2, &["vfolder", "invitations"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No invitations."), "{out}");

    let (code, out) = world.cli(
        USER,
        &[
            "vfolder",
            "invite",
            "shared-data",
            "user2@lablup.com",
            "-p",
            "ro",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Invitation sent to:"), "{out}");
    assert!(out.contains("\t- user2@lablup.com"), "{out}");

    let (code, out) = world.cli(USER2, &["vfolder", "invitations"], "1\na\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[1] user@lablup.com, "), "{out}");
    assert!(out.contains(", read-only"), "{out}");
    assert!(
        out.contains("You can now access vfolder shared-data"),
        "{out}"
    );

    let (code, out) = world.cli(USER2, &["vfolder", "info", "shared-data"], "");
    assert_eq!(code, 0, "{out}");
    let (code, out) = world.cli(USER2, &["vfolder", "leave", "shared-data"], "");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Left the shared virtual folder \"shared-data\"."),
        "{out}"
    );
    let (code, _) = world.cli(USER2, &["vfolder", "info", "shared-data"], "");
    assert_ne!(code, 0, "user2 no longer reaches the folder");

    let (code, out) = world.cli(
        USER,
        &["dotfile", "create", ".vimrc", "--perm", "644"],
        "set nu\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Dotfile .vimrc created and ready"), "{out}");
    let (code, out) = world.cli(USER, &["dotfile", "get", ".vimrc"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("set nu"), "{out}");
    let (code, out) = world.cli(USER, &["dotfile", "list"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(".vimrc") && out.contains("644"), "{out}");
    let (code, out) = world.cli(USER, &["dotfile", "delete", ".vimrc", "-f"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Dotfile .vimrc deleted"), "{out}");
    let (code, out) = world.cli(USER, &["dotfile", "get", ".vimrc"], "");
    assert_ne!(code, 0, "{out}");
}
