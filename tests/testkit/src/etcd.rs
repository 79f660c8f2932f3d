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
}

impl EtcdServer {
    pub fn shared() -> &'static EtcdServer {
        static SHARED: OnceLock<EtcdServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            if let Ok(endpoint) = std::env::var("BAI_TEST_ETCD") {
                return EtcdServer {
                    endpoint,
                    _process: None,
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
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new("etcd");
        command
            .arg("--name")
            .arg("testkit")
            .arg("--data-dir")
            .arg(dir.join("data"))
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
            ServiceProcess::spawn("etcd", command, &dir.join("etcd.log"), libc::SIGTERM);
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], client_port)),
            Duration::from_secs(30),
        );
        EtcdServer {
            endpoint: format!("127.0.0.1:{client_port}"),
            _process: Some(process),
        }
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .unwrap_or_else(|e| panic!("connecting to etcd at {}: {e}", self.endpoint))
    }
}
