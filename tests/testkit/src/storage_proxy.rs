//! The real Backend.AI storage proxy 23.09.10 per test: free loopback ports for its manager
//! and client APIs, a `vfs` volume in a scratch folder and a random manager secret.
//!
//! The proxy comes from `deploy/peers/storage-proxy.sh` (a venv under `.state/peers/`); if it is
//! not installed yet, the first start installs it. It reads `config/redis` from the test's etcd
//! namespace (which `TestEnv::new` sets), so start it after the `TestEnv`.
//!
//! ```ignore
//! let env = TestEnv::new().await;
//! let proxy = StorageProxyServer::start(&env);
//! proxy.register(&env, "local").await;      // volumes/... in etcd, default host local:volume1
//! // ... the manager creates folders; they appear under proxy.volume_path() ...
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::env::TestEnv;
use crate::ports::free_port;
use crate::process::{ServiceProcess, scratch_root};

/// The name of the one volume every test proxy serves.
pub const VOLUME_NAME: &str = "volume1";

/// How long the proxy may take to listen. It starts in about a second; a cold first start
/// (bytecode compilation) on a busy two-core machine takes several times that.
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct StorageProxyServer {
    /// The manager-facing API port (`[api.manager] service-addr`).
    pub manager_port: u16,
    /// The client-facing API port (`[api.client] service-addr`), for uploads and downloads.
    pub client_port: u16,
    /// The shared secret the manager sends as `X-BackendAI-Storage-Auth-Token`.
    pub secret: String,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    process: Option<ServiceProcess>,
}

impl StorageProxyServer {
    /// Starts a proxy that uses `env`'s etcd namespace, and waits until its manager API listens.
    pub fn start(env: &TestEnv) -> StorageProxyServer {
        let dir = tempfile::Builder::new()
            .prefix("storage-proxy-")
            .tempdir_in(scratch_root())
            .expect("creating a storage-proxy scratch directory");
        let manager_port = free_port();
        let client_port = free_port();
        let secret = format!("testkit-{}", uuid::Uuid::new_v4().simple());
        let volume_path = dir.path().join("vfroot").join(VOLUME_NAME);
        std::fs::create_dir_all(&volume_path).expect("creating the vfs volume folder");
        std::fs::create_dir_all(dir.path().join("ipc")).expect("creating the ipc folder");
        let config = config_toml(&ConfigValues {
            etcd_endpoint: &env.etcd_endpoint,
            namespace: &env.namespace,
            manager_port,
            client_port,
            secret: &secret,
            dir: dir.path(),
            volume_path: &volume_path,
        });
        let config_path = dir.path().join("storage-proxy.toml");
        std::fs::write(&config_path, config).expect("writing storage-proxy.toml");
        let mut server = StorageProxyServer {
            manager_port,
            client_port,
            secret,
            dir,
            config_path,
            process: None,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let mut command = Command::new(storage_proxy_python());
        command
            .args(["-m", "ai.backend.storage.server", "-f"])
            .arg(&self.config_path)
            .current_dir(self.dir.path());
        let log_path = self.dir.path().join("storage-proxy.log");
        let mut process = ServiceProcess::spawn("storage-proxy", command, &log_path, libc::SIGTERM);
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], self.manager_port)),
            START_TIMEOUT,
        );
        self.process = Some(process);
    }

    /// Stops the proxy (its folders stay on disk); `restart` brings it back on the same ports.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// `http://127.0.0.1:<manager port>`
    pub fn manager_api(&self) -> String {
        format!("http://127.0.0.1:{}", self.manager_port)
    }

    /// `http://127.0.0.1:<client port>`
    pub fn client_api(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The folder that holds the vfs volume `volume1`.
    pub fn volume_path(&self) -> PathBuf {
        self.dir.path().join("vfroot").join(VOLUME_NAME)
    }

    /// Where the vfs backend keeps a folder: `<volume>/<quota scope uuid hex>/<ab>/<cd>/<rest>`
    /// for the vfid `<type>:<quota scope uuid>/<folder hex>`.
    pub fn folder_path(&self, quota_scope_uuid: uuid::Uuid, folder_id: uuid::Uuid) -> PathBuf {
        let hex = folder_id.simple().to_string();
        self.volume_path()
            .join(quota_scope_uuid.simple().to_string())
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(&hex[4..])
    }

    /// The proxy's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("storage-proxy.log")).unwrap_or_default()
    }

    /// The etcd `volumes` tree that makes a manager use this proxy as `proxy_name`, with both
    /// folder types enabled and `proxy_name:volume1` as the default host.
    pub fn volumes_config(&self, proxy_name: &str) -> serde_json::Value {
        serde_json::json!({
            "_types": {"user": "", "group": ""},
            "default_host": format!("{proxy_name}:{VOLUME_NAME}"),
            "exposed_volume_info": "percentage",
            "proxies": {
                proxy_name: {
                    "client_api": self.client_api(),
                    "manager_api": self.manager_api(),
                    "secret": self.secret,
                    "ssl_verify": "false",
                }
            }
        })
    }

    /// Writes [`Self::volumes_config`] into `env`'s etcd namespace under `volumes/`.
    pub async fn register(&self, env: &TestEnv, proxy_name: &str) {
        for (key, value) in flatten("volumes", &self.volumes_config(proxy_name)) {
            env.etcd_put(&key, &value).await;
        }
    }
}

impl Drop for StorageProxyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn flatten(prefix: &str, value: &serde_json::Value) -> Vec<(String, String)> {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .flat_map(|(key, child)| flatten(&format!("{prefix}/{key}"), child))
            .collect(),
        serde_json::Value::String(text) => vec![(prefix.to_owned(), text.clone())],
        other => vec![(prefix.to_owned(), other.to_string())],
    }
}

/// The venv's python, installing the proxy first if needed (once per test process).
/// `BAI_STORAGE_PROXY_PYTHON` points at another installation.
pub fn storage_proxy_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Ok(python) = std::env::var("BAI_STORAGE_PROXY_PYTHON") {
                return PathBuf::from(python);
            }
            let script = repo_root().join("deploy/peers/storage-proxy.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg("install")
                .status()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                status.success(),
                "{} install failed ({status}); see its output above",
                script.display()
            );
            let output = Command::new("bash")
                .arg(&script)
                .arg("python")
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(
                output.status.success(),
                "{} python failed",
                script.display()
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct ConfigValues<'a> {
    etcd_endpoint: &'a str,
    namespace: &'a str,
    manager_port: u16,
    client_port: u16,
    secret: &'a str,
    dir: &'a Path,
    volume_path: &'a Path,
}

fn config_toml(values: &ConfigValues<'_>) -> String {
    let (etcd_host, etcd_port) = values
        .etcd_endpoint
        .trim_start_matches("http://")
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("an etcd endpoint host:port, not {}", values.etcd_endpoint));
    format!(
        r#"[etcd]
namespace = "{namespace}"
addr = {{ host = "{etcd_host}", port = {etcd_port} }}
user = ""
password = ""

[storage-proxy]
node-id = "i-testkit-{manager_port}"
num-proc = 1
event-loop = "asyncio"
scandir-limit = 1000
max-upload-size = "1g"
secret = "testkit-jwt-{jwt_secret}"
session-expire = "1d"
use-watcher = false
ipc-base-path = "{ipc}"
pid-file = "{pid_file}"
aiomonitor-termui-port = {termui_port}
aiomonitor-webui-port = {webui_port}

[api.client]
service-addr = {{ host = "127.0.0.1", port = {client_port} }}
ssl-enabled = false

[api.manager]
service-addr = {{ host = "127.0.0.1", port = {manager_port} }}
ssl-enabled = false
secret = "{secret}"

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "simple"

[debug]
enabled = false

[volume.{volume}]
backend = "vfs"
path = "{volume_path}"
"#,
        namespace = values.namespace,
        manager_port = values.manager_port,
        client_port = values.client_port,
        secret = values.secret,
        jwt_secret = uuid::Uuid::new_v4().simple(),
        ipc = values.dir.join("ipc").display(),
        pid_file = values.dir.join("storage-proxy.pid").display(),
        termui_port = free_port(),
        webui_port = free_port(),
        volume = VOLUME_NAME,
        volume_path = values.volume_path.display(),
    )
}
