//! A private Redis server per test (Backend.AI uses fixed database numbers, so tests cannot share).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{ServiceProcess, scratch_root};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    process: ServiceProcess,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with_password(None)
    }

    pub fn start_with_password(password: Option<&str>) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redis-")
            .tempdir_in(scratch_root())
            .expect("creating a Redis scratch directory");
        let port = free_port();
        let password = password.map(str::to_owned);
        let process = launch(port, dir.path(), password.as_deref());
        RedisServer {
            port,
            password,
            process,
            dir,
        }
    }

    /// Starts the server again on the same port after [`RedisServer::stop`] (empty: it keeps
    /// no data on disk), and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.process.stop();
        self.process = launch(self.port, self.dir.path(), self.password.as_deref());
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// A connection for a test's own reads and writes. Its replies may take up to 10 s: the
    /// client's default (half a second) failed tests on a loaded machine while a worker under
    /// test renewed thousands of claims.
    pub async fn connection(&self, db: u8) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(10)));
        redis::Client::open(self.url(db))
            .expect("a valid redis url")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url(db)))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Runs `redis-server` on `port` in `dir` and waits until it listens.
fn launch(port: u16, dir: &std::path::Path, password: Option<&str>) -> ServiceProcess {
    let mut command = Command::new("redis-server");
    command.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    command.arg("--dir").arg(dir);
    if let Some(password) = password {
        command.args(["--requirepass", password]);
    }
    let mut process = ServiceProcess::spawn(
        "redis-server",
        command,
        &dir.join("redis.log"),
        libc::SIGTERM,
    );
    process.wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(10),
    );
    process
}
