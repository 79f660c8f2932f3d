//! manager.toml: finding it, parsing it, validating it, and the environment overrides.

mod host_port;

pub use host_port::HostPort;

use std::path::{Path, PathBuf};

use bai_actors::etcd::EtcdSettings;
use bai_schema::DbSettings;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config from: {}", .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound { tried: Vec<PathBuf> },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole local configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LocalConfig {
    pub etcd: EtcdSection,
    pub db: DbSection,
    #[serde(default)]
    pub manager: ManagerSection,
    /// The file this was read from.
    #[serde(skip)]
    pub source_path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EtcdSection {
    pub namespace: String,
    #[serde(default = "default_etcd_addr")]
    pub addr: HostPort,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

fn default_etcd_addr() -> HostPort {
    HostPort::new("127.0.0.1", 2379)
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DbSection {
    pub addr: HostPort,
    pub name: String,
    pub user: String,
    pub password: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

impl std::fmt::Debug for DbSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSection")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn default_pool_size() -> usize {
    8
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ManagerSection {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "default_service_addr")]
    pub service_addr: HostPort,
    #[serde(default = "default_num_proc")]
    pub num_proc: usize,
    #[serde(default)]
    pub hide_agents: bool,
    #[serde(default = "default_heartbeat_timeout")]
    pub heartbeat_timeout: f64,
    #[serde(default = "default_pid_file")]
    pub pid_file: PathBuf,
    #[serde(default = "default_ipc_base_path")]
    pub ipc_base_path: PathBuf,
    #[serde(default = "default_distributed_lock")]
    pub distributed_lock: String,
}

impl Default for ManagerSection {
    fn default() -> Self {
        ManagerSection {
            id: None,
            service_addr: default_service_addr(),
            num_proc: default_num_proc(),
            hide_agents: false,
            heartbeat_timeout: default_heartbeat_timeout(),
            pid_file: default_pid_file(),
            ipc_base_path: default_ipc_base_path(),
            distributed_lock: default_distributed_lock(),
        }
    }
}

fn default_service_addr() -> HostPort {
    HostPort::new("0.0.0.0", 8080)
}
fn default_num_proc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
fn default_heartbeat_timeout() -> f64 {
    40.0
}
fn default_pid_file() -> PathBuf {
    PathBuf::from("/dev/null")
}
fn default_ipc_base_path() -> PathBuf {
    PathBuf::from("/tmp/backend.ai/ipc")
}
fn default_distributed_lock() -> String {
    "pg_advisory".to_owned()
}

impl LocalConfig {
    /// Finds and loads manager.toml: `explicit` (from `-f`), else `$BACKEND_CONFIG_FILE`, else
    /// the first of `./manager.toml`, `~/.config/backend.ai/manager.toml`,
    /// `/etc/backend.ai/manager.toml`.
    pub fn load(explicit: Option<&Path>) -> Result<LocalConfig, ConfigError> {
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => find_config_file()?,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut config: LocalConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.source_path = path;
        Ok(config)
    }

    /// `[manager] id`, defaulting to `i-<hostname>` as the original.
    pub fn manager_id(&self) -> String {
        self.manager.id.clone().unwrap_or_else(|| {
            let host = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("i-{host}")
        })
    }

    pub fn etcd_settings(&self) -> EtcdSettings {
        EtcdSettings {
            endpoints: vec![self.etcd.addr.to_string()],
            namespace: self.etcd.namespace.clone(),
            user: self.etcd.user.clone(),
            password: self.etcd.password.clone(),
        }
    }

    pub fn db_settings(&self) -> DbSettings {
        DbSettings {
            host: self.db.addr.host.clone(),
            port: self.db.addr.port,
            name: self.db.name.clone(),
            user: self.db.user.clone(),
            password: self.db.password.clone(),
            pool_size: self.db.pool_size,
        }
    }
}

/// The discovery order of `ai.backend.common.config.find_config_file`.
pub fn find_config_file() -> Result<PathBuf, ConfigError> {
    if let Some(path) = std::env::var_os("BACKEND_CONFIG_FILE") {
        return Ok(PathBuf::from(path));
    }
    let mut tried = vec![PathBuf::from("manager.toml")];
    if let Some(home) = std::env::var_os("HOME") {
        tried.push(PathBuf::from(home).join(".config/backend.ai/manager.toml"));
    }
    tried.push(PathBuf::from("/etc/backend.ai/manager.toml"));
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(ConfigError::NotFound { tried })
}
