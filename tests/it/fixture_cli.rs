//! `bai-manager fixture populate`: the original's example fixtures load unchanged in its install
//! order, a second load is harmless, the 22.09 layout loads too, and a bad file is refused with
//! its table, row and column named and nothing of that table written.

use bai_testkit::TestEnv;
use bai_testkit::env::configs_file;
use serde_json::{Value, json};

use crate::cli_run::bai_manager;

const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

fn example(name: &str) -> String {
    configs_file(&format!("fixtures/{name}"))
        .to_string_lossy()
        .into_owned()
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .get(0)
}

#[tokio::test]
async fn example_fixtures_load_in_install_order_and_a_second_load_changes_nothing() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let files = [
        "example-users.json",
        "example-keypairs.json",
        "example-set-user-main-access-keys.json",
        "example-resource-presets.json",
        "example-session-templates.json",
    ];
    for file in files {
        let run = bai_manager(
            &config,
            env.dir.path(),
            &["fixture", "populate", &example(file)],
        )
        .assert_ok();
        assert!(run.stdout.contains("row(s)"), "{}", run.stdout);
    }
    let db = env.db.connect().await;

    // Users: passwords bcrypt-hashed the way the original's PasswordColumn does.
    let admin = db
        .query_one(
            "SELECT password, role::text, status::text, main_access_key, resource_policy, domain_name
               FROM users WHERE email = 'admin@lablup.com'",
            &[],
        )
        .await
        .unwrap();
    let hash: String = admin.get(0);
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    assert!(bcrypt::verify("wJalrXUt", &hash).unwrap());
    assert_eq!(admin.get::<_, String>(1), "superadmin");
    assert_eq!(admin.get::<_, String>(2), "active");
    assert_eq!(
        admin.get::<_, Option<String>>(3).as_deref(),
        Some("AKIAIOSFODNN7EXAMPLE")
    );
    assert_eq!(admin.get::<_, String>(4), "default");
    assert_eq!(count(&db, "users").await, 5);
    assert_eq!(
        count(&db, "users WHERE main_access_key IS NOT NULL").await,
        5,
        "the __mode: update file sets every user's main access key"
    );
    assert_eq!(count(&db, "association_groups_users").await, 5);

    // Keypairs and their policy, enum by name, vfolder host permissions as JSON.
    let keypair = db
        .query_one(
            "SELECT k.secret_key, k.is_admin, k.rate_limit, k.\"user\"::text,
                    p.default_for_unspecified::text, p.idle_timeout,
                    p.allowed_vfolder_hosts -> 'local:volume1' ->> 0
               FROM keypairs k JOIN keypair_resource_policies p ON p.name = k.resource_policy
              WHERE k.access_key = 'AKIAIOSFODNN7EXAMPLE'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        keypair.get::<_, String>(0),
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    );
    assert!(keypair.get::<_, bool>(1));
    assert_eq!(keypair.get::<_, i32>(2), 30000);
    assert_eq!(keypair.get::<_, String>(3), ADMIN_UUID);
    assert_eq!(keypair.get::<_, String>(4), "UNLIMITED");
    assert_eq!(keypair.get::<_, i64>(5), 3600);
    assert_eq!(keypair.get::<_, String>(6), "create-vfolder");
    assert_eq!(count(&db, "keypairs").await, 5);

    // Domain, project, scaling group (scheduler_opts completed like ScalingGroupOpts).
    let domain = db
        .query_one(
            "SELECT allowed_docker_registries::text[] FROM domains WHERE name = 'default'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        domain.get::<_, Vec<String>>(0),
        ["cr.backend.ai", "index.docker.io"]
    );
    let sgroup = db
        .query_one(
            "SELECT scheduler_opts, driver, scheduler FROM scaling_groups WHERE name = 'default'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        sgroup.get::<_, Value>(0),
        json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 0.0,
               "config": {}, "agent_selection_strategy": "dispersed", "roundrobin": false})
    );
    assert_eq!(count(&db, "sgroups_for_domains").await, 1);

    // Presets: ResourceSlot JSON of decimal strings; byte counts given as strings kept.
    let preset = db
        .query_one(
            "SELECT resource_slots, shared_memory FROM resource_presets WHERE name = 'cuda02-medium'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        preset.get::<_, Value>(0),
        json!({"cpu": "4", "mem": "17179869184", "cuda.device": "2", "cuda.shares": "2.0"})
    );
    assert_eq!(preset.get::<_, Option<i64>>(1), Some(1073741824));
    assert_eq!(count(&db, "resource_presets").await, 6);

    // The 23.09 session templates file is a bare array: it goes to session_templates.
    let template = db
        .query_one(
            "SELECT type::text, template -> 'spec' -> 'kernel' ->> 'architecture'
               FROM session_templates WHERE name = 'python_aarch64'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(template.get::<_, String>(0), "TASK");
    assert_eq!(template.get::<_, String>(1), "aarch64");
    assert_eq!(count(&db, "session_templates").await, 2);

    // Loading everything again changes nothing.
    for file in files {
        let run = bai_manager(
            &config,
            env.dir.path(),
            &["fixture", "populate", &example(file)],
        )
        .assert_ok();
        assert!(
            !run.stdout.contains(": 1 row(s) inserted")
                && !run.stdout.contains("row(s) inserted, 0"),
            "nothing may be inserted again:\n{}",
            run.stdout
        );
    }
    let again: String = db
        .query_one(
            "SELECT password FROM users WHERE email = 'admin@lablup.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, hash, "an existing user keeps its password");
    assert_eq!(count(&db, "users").await, 5);
    assert_eq!(count(&db, "keypairs").await, 5);
    assert_eq!(count(&db, "session_templates").await, 2);
    assert_eq!(count(&db, "association_groups_users").await, 5);
    assert_eq!(count(&db, "sgroups_for_domains").await, 1);
    assert_eq!(count(&db, "resource_presets").await, 6);
}

/// 22.09 ships users, domains and groups inside the keypairs file, without resource policies
/// for users and projects.
fn fixture_in_22_09_layout() -> Value {
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(configs_file(&format!("fixtures/{name}"))).unwrap(),
        )
        .unwrap()
    };
    let mut users = read("example-users.json");
    let keypairs = read("example-keypairs.json");
    let object = users.as_object_mut().unwrap();
    object.shift_remove("user_resource_policies");
    object.shift_remove("project_resource_policies");
    for group in object["groups"].as_array_mut().unwrap() {
        group
            .as_object_mut()
            .unwrap()
            .shift_remove("resource_policy");
    }
    for user in object["users"].as_array_mut().unwrap() {
        let user = user.as_object_mut().unwrap();
        user.shift_remove("resource_policy");
        user.shift_remove("main_access_key");
    }
    for (table, rows) in keypairs.as_object().unwrap() {
        object.insert(table.clone(), rows.clone());
    }
    users
}

#[tokio::test]
async fn the_22_09_keypairs_file_with_users_inside_loads() {
    let env = TestEnv::new().await;
    let config = env.manager_toml("");
    let path = env.path("keypairs.json");
    std::fs::write(&path, fixture_in_22_09_layout().to_string()).unwrap();
    bai_manager(
        &config,
        env.dir.path(),
        &["fixture", "populate", path.to_str().unwrap()],
    )
    .assert_ok();
    let db = env.db.connect().await;
    let row = db
        .query_one(
            "SELECT u.resource_policy, g.resource_policy, k.access_key
               FROM users u
               JOIN association_groups_users a ON a.user_id = u.uuid
               JOIN groups g ON g.id = a.group_id
               JOIN keypairs k ON k.\"user\" = u.uuid
              WHERE u.email = 'user@lablup.com'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "default");
    assert_eq!(row.get::<_, String>(1), "default");
    assert_eq!(row.get::<_, String>(2), "AKIANABBDUSEREXAMPLE");
}

#[tokio::test]
async fn the_seeds_vfolder_host_update_runs_in_psql_and_reads_back() {
    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    // The seed's statement, verbatim, through the real psql client.
    let vfolder_host_val = r#"{"bai-m1:local": ["create-vfolder", "modify-vfolder", "delete-vfolder", "mount-in-session", "upload-file", "download-file", "invite-others", "set-user-specific-permission"]}"#;
    let statement = format!(
        "UPDATE domains SET allowed_vfolder_hosts = '{vfolder_host_val}' WHERE name = 'default';"
    );
    let output = std::process::Command::new("psql")
        .args([
            "-h",
            &env.db.host,
            "-p",
            &env.db.port.to_string(),
            "-U",
            &env.db.user,
            "-d",
            &env.db.name,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &statement,
        ])
        .output()
        .expect("running psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "UPDATE 1");
    let db = env.db.connect().await;
    let stored: Value = db
        .query_one(
            "SELECT allowed_vfolder_hosts FROM domains WHERE name = 'default'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        serde_json::from_str::<Value>(vfolder_host_val).unwrap()
    );
}

/// Writes `content` as a fixture file, loads it, and returns (exit code, stderr).
async fn load_bad(env: &TestEnv, name: &str, content: &str) -> (i32, String) {
    let config = env.manager_toml("");
    let path = env.path(name);
    std::fs::write(&path, content).unwrap();
    let run = bai_manager(
        &config,
        env.dir.path(),
        &["fixture", "populate", path.to_str().unwrap()],
    );
    (run.code, run.stderr)
}

#[tokio::test]
async fn bad_fixture_files_are_refused_with_their_place_named_and_nothing_written() {
    let env = TestEnv::new().await;
    let db = env.db.connect().await;

    let (code, stderr) = load_bad(&env, "broken.json", "{\"domains\": [").await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("broken.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );

    let config = env.manager_toml("");
    let absent = env.path("absent.json");
    let run = bai_manager(
        &config,
        env.dir.path(),
        &["fixture", "populate", absent.to_str().unwrap()],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("absent.json") && run.stderr.contains("cannot read"),
        "{}",
        run.stderr
    );

    // Unknown table after a good one: the whole file is checked before anything is written.
    let (code, stderr) = load_bad(
        &env,
        "unknown-table.json",
        r#"{"domains": [{"name": "d1"}], "domainz": [{"name": "x"}]}"#,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("unknown-table.json")
            && stderr.contains("table \"domainz\"")
            && stderr.contains("unknown table"),
        "{stderr}"
    );
    assert_eq!(count(&db, "domains").await, 0);

    let (code, stderr) = load_bad(
        &env,
        "unknown-column.json",
        r#"{"domains": [{"name": "d1"}, {"name": "d2", "colour": "red"}]}"#,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("table \"domains\", row index 1, column \"colour\"")
            && stderr.contains("unknown column"),
        "{stderr}"
    );
    assert_eq!(count(&db, "domains").await, 0);

    let (code, stderr) = load_bad(
        &env,
        "wrong-type.json",
        r#"{"domains": [{"name": "d1", "is_active": "yes"}]}"#,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("row index 0, column \"is_active\"")
            && stderr.contains("expected a boolean"),
        "{stderr}"
    );
    let (code, stderr) = load_bad(
        &env,
        "wrong-enum.json",
        r#"{"keypair_resource_policies": [{"name": "p", "default_for_unspecified": "unlimited",
            "total_resource_slots": {}, "max_concurrent_sessions": 1, "max_containers_per_session": 1,
            "max_vfolder_count": 1, "max_vfolder_size": 0, "idle_timeout": 0}]}"#,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("column \"default_for_unspecified\"") && stderr.contains("UNLIMITED"),
        "{stderr}"
    );
    assert_eq!(count(&db, "domains").await, 0);
    assert_eq!(count(&db, "keypair_resource_policies").await, 0);

    // A reference to a missing row: the earlier table is committed, this one not at all.
    let (code, stderr) = load_bad(
        &env,
        "missing-reference.json",
        r#"{"domains": [{"name": "d1"}],
            "groups": [{"name": "g1", "domain_name": "d1"}, {"name": "g2", "domain_name": "nowhere"}]}"#,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("table \"groups\", row index 1, column \"domain_name\"")
            && stderr.contains("nothing of this table was written")
            && stderr.contains("committed before it")
            && stderr.contains("domains"),
        "{stderr}"
    );
    assert_eq!(count(&db, "domains").await, 1);
    assert_eq!(
        count(&db, "groups").await,
        0,
        "g1 must not be written either"
    );
}
