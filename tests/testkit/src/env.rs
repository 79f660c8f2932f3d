//! One test's private world: a database, an etcd namespace, a Redis server and a scratch folder,
//! plus a manager.toml pointing at them.

use std::path::PathBuf;

use crate::etcd::EtcdServer;
use crate::ports::free_port;
use crate::postgres::{PgDatabase, PgServer};
use crate::process::scratch_root;
use crate::redis::RedisServer;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub db: PgDatabase,
    pub etcd_endpoint: String,
    pub namespace: String,
    pub redis: RedisServer,
    /// The port `manager_toml` puts in `[manager] service-addr`.
    pub service_port: u16,
}

impl TestEnv {
    /// A world with the schema applied and `config/redis/addr` set in etcd.
    pub async fn new() -> TestEnv {
        let db = PgServer::shared().create_database_with_schema().await;
        TestEnv::with_database(db).await
    }

    /// A world whose database is empty (for schema tests).
    pub async fn without_schema() -> TestEnv {
        let db = PgServer::shared().create_empty_database().await;
        TestEnv::with_database(db).await
    }

    async fn with_database(db: PgDatabase) -> TestEnv {
        let etcd = EtcdServer::shared();
        let redis = RedisServer::start();
        let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let env = TestEnv {
            dir: tempfile::Builder::new()
                .prefix("env-")
                .tempdir_in(scratch_root())
                .expect("creating a test scratch directory"),
            db,
            etcd_endpoint: etcd.endpoint.clone(),
            namespace,
            redis,
            service_port: free_port(),
        };
        env.etcd_put("config/redis/addr", &env.redis.addr()).await;
        env
    }

    /// Loads one fixture file of `configs/fixtures/` (e.g. `example-users.json`) with the
    /// project's loader, hashing passwords at the minimum bcrypt cost to keep tests fast.
    pub async fn load_fixture(&self, name: &str) -> bai_schema::fixture::FixtureReport {
        let mut client = self.db.connect().await;
        let options = bai_schema::fixture::PopulateOptions {
            bcrypt_cost: bai_schema::fixture::MIN_BCRYPT_COST,
            array_table: None,
        };
        let path = configs_file(&format!("fixtures/{name}"));
        bai_schema::fixture::populate_file(&mut client, &path, &options)
            .await
            .unwrap_or_else(|e| panic!("loading fixture {name}: {e}"))
    }

    /// Loads the original's example fixtures in its install order: the `default` domain,
    /// project (group `2de2b969-1d04-48a6-af16-0bc8adb3c831`) and scaling group, the users
    /// (admin@lablup.com / `wJalrXUt`, ...), their keypairs (admin `AKIAIOSFODNN7EXAMPLE` /
    /// `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, user `AKIANABBDUSEREXAMPLE`, ...), the users'
    /// main access keys and the resource presets.
    pub async fn load_example_fixtures(&self) {
        for name in bai_schema::fixture::EXAMPLE_FIXTURE_ORDER {
            self.load_fixture(name).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `manager.toml` for this world, with `extra` TOML appended to `[manager]`, and
    /// returns its path.
    pub fn manager_toml(&self, extra_manager_keys: &str) -> PathBuf {
        let text = format!(
            r#"[etcd]
namespace = "{namespace}"
addr = "{etcd}"
user = ""
password = ""

[db]
type = "postgresql"
addr = {{ host = "{db_host}", port = {db_port} }}
name = "{db_name}"
user = "{db_user}"
password = "unused-trust-auth"

[manager]
num-proc = 1
service-addr = {{ host = "127.0.0.1", port = {service_port} }}
ssl-enabled = false
heartbeat-timeout = 40.0
id = "i-test-{namespace}"
pid-file = "{pid_file}"
ipc-base-path = "{ipc}"
distributed-lock = "filelock"
{extra_manager_keys}

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[debug]
enabled = false
"#,
            namespace = self.namespace,
            etcd = self.etcd_endpoint,
            db_host = self.db.host,
            db_port = self.db.port,
            db_name = self.db.name,
            db_user = self.db.user,
            service_port = self.service_port,
            pid_file = self.path("manager.pid").display(),
            ipc = self.path("ipc").display(),
        );
        let path = self.path("manager.toml");
        std::fs::write(&path, text).expect("writing manager.toml");
        path
    }

    pub async fn etcd_client(&self) -> etcd_client::Client {
        EtcdServer::shared().client().await
    }

    pub fn etcd_key(&self, key: &str) -> String {
        format!("/sorna/{}/{}", self.namespace, key.trim_start_matches('/'))
    }

    pub async fn etcd_put(&self, key: &str, value: &str) {
        self.etcd_client()
            .await
            .put(self.etcd_key(key), value, None)
            .await
            .unwrap_or_else(|e| panic!("etcd put {key}: {e}"));
    }

    pub async fn etcd_get(&self, key: &str) -> Option<String> {
        let response = self
            .etcd_client()
            .await
            .get(self.etcd_key(key), None)
            .await
            .unwrap_or_else(|e| panic!("etcd get {key}: {e}"));
        response
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }
}

/// A file of the project's `configs/` folder, e.g. `fixtures/example-users.json` or
/// `manager/sample.toml` (upstream's example fixtures and sample configs, kept unchanged).
pub fn configs_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(relative)
}
