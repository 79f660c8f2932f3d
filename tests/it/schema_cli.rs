//! `bai-manager schema oneshot|show` against a real PostgreSQL: idempotent creation, the
//! revisions, the database named by an alembic.ini or by manager.toml, and refusals.

use bai_testkit::TestEnv;
use bai_testkit::env::configs_file;

use crate::cli_run::bai_manager;

async fn table_count(env: &TestEnv) -> i64 {
    env.db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The halfstack alembic.ini with its `sqlalchemy.url` pointed at this test's database.
fn alembic_ini_for(env: &TestEnv) -> std::path::PathBuf {
    let halfstack = std::fs::read_to_string(configs_file("manager/halfstack.alembic.ini")).unwrap();
    let url = format!(
        "postgresql+asyncpg://{}:unused@{}:{}/{}",
        env.db.user, env.db.host, env.db.port, env.db.name
    );
    let text = halfstack.replace(
        "postgresql+asyncpg://postgres:develove@localhost:8100/backend",
        &url,
    );
    assert_ne!(text, halfstack);
    let path = env.path("alembic.ini");
    std::fs::write(&path, text).unwrap();
    path
}

/// A manager.toml whose `[db]` names a database that does not exist.
fn manager_toml_with_wrong_db(env: &TestEnv) -> std::path::PathBuf {
    let config = env.manager_toml("");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("name = \"{}\"", env.db.name),
        "name = \"no_such_db\"",
    );
    let path = env.path("wrong-db.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn oneshot_creates_the_schema_once_and_then_changes_nothing() {
    let env = TestEnv::without_schema().await;
    let config = env.manager_toml("");
    let show = bai_manager(&config, env.dir.path(), &["schema", "show"]).assert_ok();
    assert!(
        show.stdout.contains("Current database revision: None"),
        "{}",
        show.stdout
    );
    assert_eq!(table_count(&env).await, 0);

    let first = bai_manager(&config, env.dir.path(), &["schema", "oneshot"]).assert_ok();
    assert!(
        first.stdout.contains("fresh new database"),
        "{}",
        first.stdout
    );
    assert!(table_count(&env).await >= 22);
    let db = env.db.connect().await;
    let extension: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(extension, 1);
    let tables_after_first = table_count(&env).await;

    let second = bai_manager(&config, env.dir.path(), &["schema", "oneshot"]).assert_ok();
    assert!(
        second.stdout.contains("nothing changed"),
        "{}",
        second.stdout
    );
    assert_eq!(table_count(&env).await, tables_after_first);

    let show = bai_manager(&config, env.dir.path(), &["schema", "show"]).assert_ok();
    let head = bai_schema::migrate::version_name(bai_schema::migrate::head_version()).unwrap();
    assert_eq!(
        show.stdout,
        format!(
            "Current database revision: {head}\nThe head revision of available migrations: {head}\n"
        )
    );
}

#[tokio::test]
async fn an_alembic_ini_names_the_database_in_every_spelling() {
    // --alembic-config wins over manager.toml.
    let env = TestEnv::without_schema().await;
    let ini = alembic_ini_for(&env);
    let wrong = manager_toml_with_wrong_db(&env);
    let run = bai_manager(
        &wrong,
        env.dir.path(),
        &[
            "schema",
            "oneshot",
            "--alembic-config",
            ini.to_str().unwrap(),
        ],
    )
    .assert_ok();
    assert!(run.stdout.contains("fresh new database"), "{}", run.stdout);
    assert!(table_count(&env).await >= 22);

    // `schema oneshot -f alembic.ini`, as the original spells it.
    let env = TestEnv::without_schema().await;
    let ini = alembic_ini_for(&env);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .args(["schema", "oneshot", "-f", ini.to_str().unwrap()])
        .current_dir(env.dir.path())
        .env_remove("BACKEND_CONFIG_FILE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(table_count(&env).await >= 22);

    // ./alembic.ini is the original's default, as in the install guide.
    let env = TestEnv::without_schema().await;
    alembic_ini_for(&env);
    let wrong = manager_toml_with_wrong_db(&env);
    bai_manager(&wrong, env.dir.path(), &["schema", "oneshot"]).assert_ok();
    assert!(table_count(&env).await >= 22);
    let show = bai_manager(&wrong, env.dir.path(), &["schema", "show"]).assert_ok();
    assert!(!show.stdout.contains("None"), "{}", show.stdout);
}

#[tokio::test]
async fn unreachable_or_foreign_databases_are_refused_clearly() {
    let env = TestEnv::without_schema().await;
    let wrong = manager_toml_with_wrong_db(&env);
    let run = bai_manager(&wrong, env.dir.path(), &["schema", "oneshot"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no_such_db") && run.stderr.contains("[db] of"),
        "{}",
        run.stderr
    );

    let bad_ini = env.path("bad.ini");
    std::fs::write(&bad_ini, "[alembic]\nscript_location = x\n").unwrap();
    let run = bai_manager(
        &wrong,
        env.dir.path(),
        &[
            "schema",
            "show",
            "--alembic-config",
            bad_ini.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no sqlalchemy.url"), "{}", run.stderr);

    // A database made by the original manager (it has alembic_version) is not touched.
    let db = env.db.connect().await;
    db.batch_execute(
        "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL);
         INSERT INTO alembic_version VALUES ('85615e005fa3');",
    )
    .await
    .unwrap();
    let config = env.manager_toml("");
    let run = bai_manager(&config, env.dir.path(), &["schema", "oneshot"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("original Backend.AI Manager") && run.stderr.contains("85615e005fa3"),
        "{}",
        run.stderr
    );
    assert_eq!(table_count(&env).await, 1);
}
