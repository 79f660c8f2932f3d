//! A private Docker Distribution registry (Debian's `docker-registry`) per test.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{ServiceProcess, scratch_root};

pub struct RegistryServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _process: ServiceProcess,
}

/// Extra `auth:` configuration for the registry.
pub enum RegistryAuth {
    None,
    /// An htpasswd file (bcrypt) with one user.
    Htpasswd {
        user: String,
        password: String,
    },
    /// Docker token auth: clients get bearer tokens from a token server's `realm`; tokens are
    /// JWTs from `issuer` for `service`, signed by the key of the certificate `root_cert_pem`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_pem: std::path::PathBuf,
    },
}

impl RegistryServer {
    pub fn start() -> RegistryServer {
        RegistryServer::start_with(RegistryAuth::None)
    }

    pub fn start_with(auth: RegistryAuth) -> RegistryServer {
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir_in(scratch_root())
            .expect("creating a registry scratch directory");
        let port = free_port();
        let debug_port = free_port();
        let auth_block = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Htpasswd { user, password } => {
                let hash = bcrypt_hash(password);
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).expect("writing htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: testkit\n    path: {}\n",
                    path.display()
                )
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                root_cert_pem,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                root_cert_pem.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n{auth_block}http:\n  addr: 127.0.0.1:{port}\n  debug:\n    addr: 127.0.0.1:{debug_port}\n",
            root = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("writing registry.yml");
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config_path);
        let mut process = ServiceProcess::spawn(
            "docker-registry",
            command,
            &dir.path().join("registry.log"),
            libc::SIGTERM,
        );
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(15),
        );
        RegistryServer {
            port,
            dir,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry's process id (a test pauses it with SIGSTOP to hold a rescan mid-way).
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// The registry name Backend.AI uses for it in etcd and image refs.
    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn bcrypt_hash(password: &str) -> String {
    let output = Command::new("htpasswd")
        .args(["-nbB", "x", password])
        .output()
        .expect("running htpasswd (apache2-utils) to hash a registry password");
    let line = String::from_utf8_lossy(&output.stdout);
    line.trim().trim_start_matches("x:").to_owned()
}
