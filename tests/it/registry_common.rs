//! Shared set-up of the registry-sync tests: etcd registry entries, running the CLI, reading
//! the `images` rows back.

use std::process::Output;

use bai_actors::etcd::keys::quote;
use bai_testkit::TestEnv;
use serde_json::Value;

/// Writes `config/docker/registry/<quoted name>` and its fields.
pub async fn configure_registry(env: &TestEnv, name: &str, url: &str, fields: &[(&str, &str)]) {
    let key = format!("config/docker/registry/{}", quote(name));
    env.etcd_put(&key, url).await;
    for (field, value) in fields {
        env.etcd_put(&format!("{key}/{field}"), value).await;
    }
}

/// Runs `bai-manager -f <manager.toml> <args>`.
pub fn bai_manager(env: &TestEnv, args: &[&str]) -> Output {
    let config = env.path("manager.toml");
    if !config.exists() {
        env.manager_toml("");
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .arg("-f")
        .arg(&config)
        .args(args)
        .output()
        .expect("running bai-manager")
}

/// The output of a command that must succeed, as text.
pub fn success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// stdout and stderr of a command that must fail with exit code 1.
pub fn failure(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "expected exit 1:\n{text}");
    text
}

/// One `images` row as a user would inspect it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub registry: String,
    pub project: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: String,
    pub config_digest: String,
    pub size_bytes: i64,
    pub image_type: String,
    pub accelerators: Option<String>,
    pub labels: Value,
    pub resources: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn image_rows(env: &TestEnv) -> Vec<ImageRow> {
    let db = env.db.connect().await;
    db.query(
        "SELECT id, name, registry, project, image, tag, architecture, rtrim(config_digest), \
                size_bytes, type::text, accelerators, labels, resources, created_at \
         FROM images ORDER BY name, architecture",
        &[],
    )
    .await
    .expect("reading images")
    .iter()
    .map(|row| ImageRow {
        id: row.get(0),
        name: row.get(1),
        registry: row.get(2),
        project: row.get(3),
        image: row.get(4),
        tag: row.get(5),
        architecture: row.get(6),
        config_digest: row.get(7),
        size_bytes: row.get(8),
        image_type: row.get(9),
        accelerators: row.get(10),
        labels: row.get(11),
        resources: row.get(12),
        created_at: row.get(13),
    })
    .collect()
}

/// The row of `name` and `architecture`, which must exist.
pub fn row<'a>(rows: &'a [ImageRow], name: &str, architecture: &str) -> &'a ImageRow {
    rows.iter()
        .find(|r| r.name == name && r.architecture == architecture)
        .unwrap_or_else(|| panic!("no image row {name} ({architecture}) in {rows:#?}"))
}
