//! A private etcd server shared by the tests of one process; each test uses its own namespace.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{ServiceProcess, on_long_lived_thread, scratch_root};

pub struct EtcdServer {
    pub endpoint: String,
    _process: Option<ServiceProcess>,
    /// How to start a server this process started again (same ports, same data).
    launch: Option<Launch>,
}

struct Launch {
    dir: std::path::PathBuf,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    pub fn shared() -> &'static EtcdServer {
        static SHARED: OnceLock<EtcdServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            if let Ok(endpoint) = std::env::var("BAI_TEST_ETCD") {
                return EtcdServer {
                    endpoint,
                    _process: None,
                    launch: None,
                };
            }
            on_long_lived_thread(EtcdServer::start)
        })
    }

    /// Starts a single-node etcd in a scratch directory.
    pub fn start() -> EtcdServer {
        let dir = scratch_root().join(format!("etcd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the etcd scratch directory");
        let client_port = free_port();
        let peer_port = free_port();
        let launch = Launch {
            dir,
            client_port,
            peer_port,
        };
        let process = launch.run();
        EtcdServer {
            endpoint: format!("127.0.0.1:{client_port}"),
            _process: Some(process),
            launch: Some(launch),
        }
    }

    /// Stops a server this process started.
    pub fn stop(&mut self) {
        if let Some(process) = self._process.as_mut() {
            process.stop();
        }
    }

    /// Starts a server this process started again, with its data, on the same ports, and waits
    /// until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let Some(launch) = self.launch.as_ref() else {
            panic!("only an etcd server this test started can be restarted");
        };
        self._process = Some(launch.run());
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .unwrap_or_else(|e| panic!("connecting to etcd at {}: {e}", self.endpoint))
    }
}

impl Launch {
    /// Runs etcd and waits until its client port listens.
    fn run(&self) -> ServiceProcess {
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .arg("--name")
            .arg("testkit")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("testkit={peer_url}"))
            .arg("--unsafe-no-fsync");
        let mut process =
            ServiceProcess::spawn("etcd", command, &self.dir.join("etcd.log"), libc::SIGTERM);
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], self.client_port)),
            Duration::from_secs(30),
        );
        process
    }
}
