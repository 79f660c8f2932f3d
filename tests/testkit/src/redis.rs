//! A private Redis server per test (Backend.AI uses fixed database numbers, so tests cannot share).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{ServiceProcess, scratch_root};

pub struct RedisServer {
    pub port: u16,
    process: ServiceProcess,
    _dir: tempfile::TempDir,
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
        command.arg("--dir").arg(dir.path());
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let mut process = ServiceProcess::spawn(
            "redis-server",
            command,
            &dir.path().join("redis.log"),
            libc::SIGTERM,
        );
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        );
        RedisServer {
            port,
            process,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    pub async fn connection(&self, db: u8) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url(db))
            .expect("a valid redis url")
            .get_multiplexed_async_connection()
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
