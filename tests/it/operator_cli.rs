//! `bai-manager dbshell` and `generate-keypair`, run as an operator does.

use std::process::Command;

use bai_testkit::TestEnv;

use crate::cli_run::bai_manager;

#[tokio::test]
async fn dbshell_runs_psql_on_the_configured_database() {
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let config = env.manager_toml("");
    let run = bai_manager(
        &config,
        env.dir.path(),
        &[
            "dbshell",
            "-c",
            "SELECT email FROM users WHERE role = 'superadmin'",
        ],
    )
    .assert_ok();
    assert!(run.stdout.contains("admin@lablup.com"), "{}", run.stdout);
    assert!(run.stdout.contains("(1 row)"), "{}", run.stdout);

    // The original's host mode, and arguments after `--`.
    let run = bai_manager(
        &config,
        env.dir.path(),
        &[
            "dbshell",
            "--psql-container",
            "-",
            "--",
            "-At",
            "-c",
            "SELECT count(*) FROM keypairs",
        ],
    )
    .assert_ok();
    assert_eq!(run.stdout, "5\n");

    let run = bai_manager(&config, env.dir.path(), &["dbshell", "--psql-help"]).assert_ok();
    assert!(run.stdout.contains("psql"), "{}", run.stdout);

    let run = bai_manager(
        &config,
        env.dir.path(),
        &["dbshell", "--psql-container", "half-db-1"],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("does not use Docker"), "{}", run.stderr);
}

#[tokio::test]
async fn generate_keypair_prints_a_keypair_that_loads_into_keypairs() {
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let mut keys = Vec::new();
    for verb in ["generate-keypair", "generate-api-keypair"] {
        // No manager.toml needed.
        let output = Command::new(env!("CARGO_BIN_EXE_bai-manager"))
            .arg(verb)
            .current_dir(env.dir.path())
            .env_remove("BACKEND_CONFIG_FILE")
            .output()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        let access = lines[0]
            .strip_prefix("Access Key: ")
            .and_then(|rest| rest.strip_suffix(" (20 bytes)"))
            .unwrap_or_else(|| panic!("{stdout}"));
        let secret = lines[1]
            .strip_prefix("Secret Key: ")
            .and_then(|rest| rest.strip_suffix(" (40 bytes)"))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(access.starts_with("AKIA") && access.len() == 20, "{access}");
        assert_eq!(secret.len(), 40);
        keys.push((access.to_owned(), secret.to_owned()));
    }
    assert_ne!(keys[0], keys[1]);

    let (access, secret) = &keys[0];
    let fixture = serde_json::json!({"keypairs": [{
        "user_id": "user@lablup.com", "access_key": access, "secret_key": secret,
        "is_active": true, "resource_policy": "default", "rate_limit": 1000,
        "num_queries": 0, "is_admin": false, "user": "dfa9da54-4b28-432f-be29-c0d680c7a412"
    }]});
    let path = env.path("new-keypair.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    let config = env.manager_toml("");
    bai_manager(
        &config,
        env.dir.path(),
        &["fixture", "populate", path.to_str().unwrap()],
    )
    .assert_ok();
    let stored: String = env
        .db
        .connect()
        .await
        .query_one(
            "SELECT secret_key FROM keypairs WHERE access_key = $1",
            &[access],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(&stored, secret);
}
