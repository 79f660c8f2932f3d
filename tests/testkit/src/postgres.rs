//! A private PostgreSQL server, and fresh databases with bai-manager's schema for each test.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::ports::free_port;
use crate::process::{ServiceProcess, on_long_lived_thread, postgres_user, scratch_root};

/// Where Debian keeps the server binaries (they are not on PATH).
pub fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BAI_PG_BIN") {
        return PathBuf::from(dir);
    }
    for version in ["17", "16", "15", "14", "13"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if dir.join("postgres").exists() {
            return dir;
        }
    }
    PathBuf::from("/usr/lib/postgresql/15/bin")
}

/// A running server (or one given by `BAI_TEST_PG_URL`).
pub struct PgServer {
    pub host: String,
    pub port: u16,
    pub user: String,
    _process: Option<ServiceProcess>,
    /// The scratch folder (with `data/`) of a server this process started.
    dir: Option<PathBuf>,
    /// Whether a commit is acknowledged only once its WAL is written (see
    /// [`PgServer::start_durable`]).
    durable: bool,
}

impl PgServer {
    /// The server shared by every test of this process.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            if let Ok(url) = std::env::var("BAI_TEST_PG_URL") {
                return PgServer::from_url(&url);
            }
            on_long_lived_thread(PgServer::start)
        })
    }

    fn from_url(url: &str) -> PgServer {
        // postgres://user@host:port
        let rest = url
            .trim_start_matches("postgres://")
            .trim_start_matches("postgresql://");
        let (user, hostport) = rest.split_once('@').unwrap_or(("postgres", rest));
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        PgServer {
            host: host.to_owned(),
            port: port.parse().expect("BAI_TEST_PG_URL has a bad port"),
            user: user.to_owned(),
            _process: None,
            dir: None,
            durable: false,
        }
    }

    /// initdb into a scratch directory and start `postgres` on a free loopback port, tuned for
    /// speed: a commit is acknowledged before its WAL is written, so a crash (`stop`) may lose
    /// the last few.
    pub fn start() -> PgServer {
        PgServer::start_with(false)
    }

    /// Like [`PgServer::start`], but every acknowledged commit survives a crash of the server
    /// (`synchronous_commit` stays on; `fsync` stays off, as only the server, never the host,
    /// is made to fail in tests). For fault tests that count acknowledged writes.
    pub fn start_durable() -> PgServer {
        PgServer::start_with(true)
    }

    fn start_with(durable: bool) -> PgServer {
        let bin = postgres_bin_dir();
        let dir = scratch_root().join(format!("pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL scratch directory");
        let data = dir.join("data");
        let pg_user = postgres_user();
        if let Some((uid, gid)) = pg_user {
            nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))
                .expect("handing the PostgreSQL directory to the postgres user");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        if let Some((uid, gid)) = pg_user {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb
            .output()
            .expect("running initdb (is postgresql installed?)");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let process = launch(&dir, port, durable);
        PgServer {
            host: "127.0.0.1".to_owned(),
            port,
            user: "postgres".to_owned(),
            _process: Some(process),
            dir: Some(dir),
            durable,
        }
    }

    /// Stops a server this process started (an immediate shutdown, as a crash would).
    pub fn stop(&mut self) {
        if let Some(process) = self._process.as_mut() {
            process.stop();
        }
    }

    /// Starts a server this process started again, on the same port with the same data, and
    /// waits until it accepts sessions.
    pub fn restart(&mut self) {
        let Some(dir) = self.dir.clone() else {
            panic!("only a PostgreSQL server this test started can be restarted");
        };
        self.stop();
        self._process = Some(launch(&dir, self.port, self.durable));
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, database
        )
    }

    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        // PostgreSQL accepts TCP connections before it accepts sessions ("the database system
        // is starting up", SQLSTATE 57P03); a test that races the first start-up waits for it.
        let mut attempts_left = 100;
        let (client, connection) = loop {
            match tokio_postgres::connect(&self.url(database), NoTls).await {
                Ok(pair) => break pair,
                Err(e)
                    if attempts_left > 0
                        && e.code()
                            == Some(&tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW) =>
                {
                    attempts_left -= 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("connecting to {}: {e:?}", self.url(database)),
            }
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Creates an empty database with a unique name.
    pub async fn create_empty_database(&self) -> PgDatabase {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        PgDatabase {
            server_url: self.url(""),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            name,
        }
    }

    /// Creates a database that already has bai-manager's schema, copied from a template that
    /// is migrated once per process.
    pub async fn create_database_with_schema(&self) -> PgDatabase {
        let template = self.schema_template().await;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap_or_else(|e| panic!("creating database {name} from {template}: {e}"));
        PgDatabase {
            server_url: self.url(""),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            name,
        }
    }

    async fn schema_template(&self) -> String {
        static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        TEMPLATE
            .get_or_init(|| async {
                // Unique per process: another test process may be building its own template.
                let name = format!("tpl_{}", uuid::Uuid::new_v4().simple());
                let admin = self.connect("postgres").await;
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("creating template database {name}: {e}"));
                let mut client = self.connect(&name).await;
                bai_schema::migrate::apply_all(&mut client)
                    .await
                    .unwrap_or_else(|e| panic!("migrating the template database: {e}"));
                drop(client);
                // A template must have no other connections when it is copied.
                tokio::time::sleep(Duration::from_millis(50)).await;
                name
            })
            .await
            .clone()
    }
}

/// One test's database.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    server_url: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub name: String,
}

impl PgDatabase {
    pub fn url(&self) -> String {
        format!("{}{}", self.server_url, self.name)
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

/// Runs `postgres` on the cluster in `dir/data` on `port` and waits until it accepts sessions.
/// Set (to anything) in the environment of a program whose servers should preload
/// `pg_stat_statements`, with planning times: benchmarks that profile PostgreSQL's time.
pub const PG_STAT_STATEMENTS_ENV: &str = "BAI_TEST_PG_STAT_STATEMENTS";

fn launch(dir: &Path, port: u16, durable: bool) -> ServiceProcess {
    let bin = postgres_bin_dir();
    let data = dir.join("data");
    let pg_user = postgres_user();
    let mut server = Command::new(bin.join("postgres"));
    server.arg("-D").arg(&data).args([
        "-c",
        "listen_addresses=127.0.0.1",
        "-p",
        &port.to_string(),
        "-c",
        "fsync=off",
        "-c",
        if durable {
            "synchronous_commit=on"
        } else {
            "synchronous_commit=off"
        },
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=400",
        "-c",
        "shared_buffers=128MB",
    ]);
    if std::env::var_os(PG_STAT_STATEMENTS_ENV).is_some() {
        server.args([
            "-c",
            "shared_preload_libraries=pg_stat_statements",
            "-c",
            "pg_stat_statements.track=all",
            "-c",
            "pg_stat_statements.track_planning=on",
        ]);
    }
    server.arg("-k").arg(dir);
    if let Some((uid, gid)) = pg_user {
        server.uid(uid).gid(gid);
    }
    let log = dir.join("postgres.log");
    if let Some((uid, gid)) = pg_user {
        let _ = std::fs::File::create(&log);
        let _ = nix::unistd::chown(&log, Some(uid.into()), Some(gid.into()));
    }
    let mut process = ServiceProcess::spawn("postgres", server, &log, libc::SIGQUIT);
    process.wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(30),
    );
    // PostgreSQL listens before it accepts sessions ("the database system is starting up").
    let ready_deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .is_ok_and(|status| status.success())
    {
        assert!(
            std::time::Instant::now() < ready_deadline,
            "PostgreSQL on port {port} did not become ready:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    process
}
