//! The sections `[etcd]`, `[db]`, `[manager]`, `[docker-registry]` and `[debug]`: their keys,
//! the original's defaults (22.09, plus the keys 23.09's sample adds) and validation.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use rand::RngCore as _;

use super::reader::Section;
use super::{ConfigError, HostPort, HttpLimits};

/// `[manager] num-proc` above this is surely a typo (each worker holds `pool-size` database
/// connections and five Redis connections).
pub const MAX_NUM_PROC: i64 = 256;

/// The original's `distributed-lock` choices.
pub const DISTRIBUTED_LOCKS: &[&str] = &["filelock", "pg_advisory", "redlock", "etcd"];

#[derive(Clone)]
pub struct EtcdSection {
    /// Keys live under `/sorna/<namespace>/`.
    pub namespace: String,
    pub addr: HostPort,
    /// Credentials are used only when the user is not empty.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for EtcdSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdSection")
            .field("namespace", &self.namespace)
            .field("addr", &self.addr)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl EtcdSection {
    pub fn read(section: &Section<'_>) -> Result<EtcdSection, ConfigError> {
        Ok(EtcdSection {
            namespace: section.required_string("namespace")?,
            addr: section.host_port("addr", HostPort::new("127.0.0.1", 2379))?,
            user: Some(section.string("user", "")?),
            password: Some(section.string("password", "")?),
        })
    }
}

#[derive(Clone)]
pub struct DbSection {
    /// Always `"postgresql"`.
    pub db_type: String,
    pub addr: HostPort,
    /// The database name: 2 to 64 letters, digits, `_` or `-`.
    pub name: String,
    pub user: String,
    pub password: String,
    /// Connections kept per worker process.
    pub pool_size: usize,
    /// Extra connections allowed under load (-1 = unlimited); with deadpool the pool's size is
    /// fixed, so this is accepted for compatibility only.
    pub max_overflow: i64,
    /// Seconds after which a connection is replaced (-1 = never).
    pub pool_recycle: f64,
    /// Check a connection before handing it out.
    pub pool_pre_ping: bool,
    /// Seconds to wait for a connection (0 = the built-in default).
    pub conn_timeout: f64,
}

impl fmt::Debug for DbSection {
    // The password must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSection")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl DbSection {
    pub fn read(section: &Section<'_>) -> Result<DbSection, ConfigError> {
        let name = section.required_string("name")?;
        let name_ok = (2..=64).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            let raw = toml::Value::String(name.clone());
            return Err(section.invalid(
                "name",
                &raw,
                "must be 2 to 64 letters, digits, '_' or '-'",
            ));
        }
        Ok(DbSection {
            db_type: section.choice("type", "postgresql", &["postgresql"])?,
            addr: section.required_host_port("addr")?,
            name,
            user: section.required_string("user")?,
            password: section.required_string("password")?,
            pool_size: section.int("pool-size", 8, 1..=i64::from(u16::MAX))? as usize,
            max_overflow: section.int("max-overflow", 64, -1..=i64::MAX)?,
            pool_recycle: section.float("pool-recycle", -1.0, -1.0)?,
            pool_pre_ping: section.boolean("pool-pre-ping", false)?,
            conn_timeout: section.float("conn-timeout", 0.0, 0.0)?,
        })
    }
}

/// A user or group given by name or number (`[manager] user` / `group`). Names are looked up
/// when the server drops its privileges, so a config naming an account this host lacks still
/// loads for the other verbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountId {
    Id(u32),
    Name(String),
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountId::Id(id) => write!(f, "{id}"),
            AccountId::Name(name) => f.write_str(name),
        }
    }
}

fn account(section: &Section<'_>, key: &str) -> Result<Option<AccountId>, ConfigError> {
    match section.raw(key) {
        None => Ok(None),
        Some(toml::Value::Integer(id)) => u32::try_from(*id)
            .map(|id| Some(AccountId::Id(id)))
            .map_err(|_| section.invalid(key, &toml::Value::Integer(*id), "is not a valid id")),
        Some(toml::Value::String(name)) if name.trim().is_empty() => Ok(None),
        Some(toml::Value::String(name)) => Ok(Some(match name.trim().parse::<u32>() {
            Ok(id) => AccountId::Id(id),
            Err(_) => AccountId::Name(name.trim().to_owned()),
        })),
        Some(other) => Err(section.invalid(key, other, "must be a name or a numeric id")),
    }
}

#[derive(Clone)]
pub struct ManagerSection {
    /// The node id; `None` means `i-<hostname>` (see `LocalConfig::manager_id`).
    pub id: Option<String>,
    pub service_addr: HostPort,
    /// Worker processes serving `service-addr` together.
    pub num_proc: usize,
    pub hide_agents: bool,
    /// Seconds without a heartbeat after which an agent is lost.
    pub heartbeat_timeout: f64,
    /// Where the supervisor writes its pid; empty or `/dev/null` means no pid file.
    pub pid_file: PathBuf,
    pub ipc_base_path: PathBuf,
    /// One of [`DISTRIBUTED_LOCKS`].
    pub distributed_lock: String,
    /// `lock-lifetime` (seconds): how long a leased lock (etcd) outlives its last renewal.
    pub lock_lifetime: f64,
    /// `lock-acquire-timeout` (seconds): how long a worker waits for a busy cluster-wide lock.
    pub lock_acquire_timeout: f64,
    /// `session-transition-timeout` (seconds): how long a session may stay SCHEDULED,
    /// PREPARING or TERMINATING before the reconciler re-drives or fails it.
    pub session_transition_timeout: f64,
    /// `idle-check-interval` (seconds): how often the idle checkers run (the original's fixed
    /// 15 s); shorter for tests.
    pub idle_check_interval: f64,
    /// Salt for plugin tokens; random per start when not configured.
    pub secret: String,
    /// Account the workers switch to after binding, when started as root.
    pub user: Option<AccountId>,
    pub group: Option<AccountId>,
    pub ssl_enabled: bool,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_privkey: Option<PathBuf>,
    /// `asyncio` or `uvloop`: accepted for compatibility, meaningless here.
    pub event_loop: String,
    pub allowed_plugins: Option<BTreeSet<String>>,
    pub disabled_plugins: Option<BTreeSet<String>>,
    pub agent_selection_resource_priority: Vec<String>,
    pub importer_image: String,
    pub max_wsmsg_size: u64,
    pub aiomonitor_termui_port: u16,
    pub aiomonitor_webui_port: u16,
    /// The ZeroMQ CURVE keypair for agent RPC (23.09+).
    pub rpc_auth_manager_keypair: PathBuf,
    /// Request head and body timeouts and the connection cap (not in the original).
    pub http_limits: HttpLimits,
    /// `metrics-port` (not in the original): worker N serves `/metrics`, `/health` and
    /// `/ready` on 127.0.0.1, port `metrics-port + N - 1`; 0 (the default) serves none.
    pub metrics_port: u16,
}

impl fmt::Debug for ManagerSection {
    // `secret` must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerSection")
            .field("id", &self.id)
            .field("service_addr", &self.service_addr)
            .field("num_proc", &self.num_proc)
            .field("pid_file", &self.pid_file)
            .field("ssl_enabled", &self.ssl_enabled)
            .field("distributed_lock", &self.distributed_lock)
            .finish_non_exhaustive()
    }
}

impl Default for ManagerSection {
    fn default() -> Self {
        ManagerSection {
            id: None,
            service_addr: HostPort::new("0.0.0.0", 8080),
            num_proc: cpu_count(),
            hide_agents: false,
            heartbeat_timeout: 40.0,
            pid_file: PathBuf::from("/dev/null"),
            ipc_base_path: PathBuf::from("/tmp/backend.ai/ipc"),
            distributed_lock: "pg_advisory".to_owned(),
            lock_lifetime: 30.0,
            lock_acquire_timeout: 30.0,
            session_transition_timeout: DEFAULT_SESSION_TRANSITION_TIMEOUT,
            idle_check_interval: 15.0,
            secret: random_secret(),
            user: None,
            group: None,
            ssl_enabled: false,
            ssl_cert: None,
            ssl_privkey: None,
            event_loop: "asyncio".to_owned(),
            allowed_plugins: None,
            disabled_plugins: None,
            agent_selection_resource_priority: default_resource_priority(),
            importer_image: "lablup/importer:manylinux2010".to_owned(),
            max_wsmsg_size: 16 * 1024 * 1024,
            aiomonitor_termui_port: 48100,
            aiomonitor_webui_port: 49100,
            rpc_auth_manager_keypair: PathBuf::from("fixtures/manager/manager.key_secret"),
            http_limits: HttpLimits::default(),
            metrics_port: 0,
        }
    }
}

/// The default of `session-transition-timeout`: five minutes, far above any normal start
/// (seconds) or stop, yet short enough that a stuck session is noticed while its user waits.
pub const DEFAULT_SESSION_TRANSITION_TIMEOUT: f64 = 300.0;

fn default_resource_priority() -> Vec<String> {
    ["cuda", "rocm", "tpu", "cpu", "mem"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// 16 random bytes, URL-safe base64 (Python's `secrets.token_urlsafe(16)`).
fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ManagerSection {
    /// Reads `[manager]`; `warnings` gets what is accepted but doubtful.
    pub fn read(
        section: &Section<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<ManagerSection, ConfigError> {
        let defaults = ManagerSection::default();
        let cores = cpu_count();
        // The original allows 1..=cores; its sample says 4 and 0 means "all cores". We take
        // 0 as all cores and accept more workers than cores with a warning, so the sample
        // loads on small machines.
        let num_proc = match section.int("num-proc", cores as i64, 0..=MAX_NUM_PROC)? {
            0 => cores,
            n => n as usize,
        };
        if num_proc > cores {
            warnings.push(format!(
                "manager.num-proc = {num_proc} is more than the {cores} CPU cores of this machine"
            ));
        }
        let id = section.optional_string("id")?.filter(|id| !id.is_empty());
        let ssl_enabled = section.boolean("ssl-enabled", false)?;
        let ssl_cert = existing_file(section, "ssl-cert")?;
        let ssl_privkey = existing_file(section, "ssl-privkey")?;
        if ssl_enabled {
            for (key, value) in [("ssl-cert", &ssl_cert), ("ssl-privkey", &ssl_privkey)] {
                if value.is_none() {
                    return Err(section.missing(key, "is required when ssl-enabled = true"));
                }
            }
        }
        let pid_file = section.path("pid-file", "/dev/null")?;
        let aiomonitor_termui_port = match section.raw("aiomonitor-termui-port") {
            Some(_) => section.int("aiomonitor-termui-port", 48100, 1..=65535)?,
            None => section.int("aiomonitor-port", 48100, 1..=65535)?,
        } as u16;
        let _ = section.raw("aiomonitor-port");
        Ok(ManagerSection {
            id,
            service_addr: section.host_port("service-addr", defaults.service_addr)?,
            num_proc,
            hide_agents: section.boolean("hide-agents", false)?,
            metrics_port: section.int("metrics-port", 0, 0..=65535)? as u16,
            heartbeat_timeout: section.float("heartbeat-timeout", 40.0, 1.0)?,
            pid_file,
            ipc_base_path: section.path("ipc-base-path", "/tmp/backend.ai/ipc")?,
            distributed_lock: section.choice(
                "distributed-lock",
                "pg_advisory",
                DISTRIBUTED_LOCKS,
            )?,
            lock_lifetime: section.float("lock-lifetime", 30.0, 1.0)?,
            lock_acquire_timeout: section.float("lock-acquire-timeout", 30.0, 0.0)?,
            session_transition_timeout: section.float(
                "session-transition-timeout",
                DEFAULT_SESSION_TRANSITION_TIMEOUT,
                1.0,
            )?,
            idle_check_interval: section.float("idle-check-interval", 15.0, 0.5)?,
            secret: section
                .optional_string("secret")?
                .unwrap_or(defaults.secret),
            user: account(section, "user")?,
            group: account(section, "group")?,
            ssl_enabled,
            ssl_cert,
            ssl_privkey,
            event_loop: section.choice("event-loop", "asyncio", &["asyncio", "uvloop"])?,
            allowed_plugins: section
                .optional_string_list("allowed-plugins")?
                .map(|v| v.into_iter().collect()),
            disabled_plugins: section
                .optional_string_list("disabled-plugins")?
                .map(|v| v.into_iter().collect()),
            agent_selection_resource_priority: section.string_list(
                "agent-selection-resource-priority",
                &["cuda", "rocm", "tpu", "cpu", "mem"],
            )?,
            importer_image: section.string("importer-image", &defaults.importer_image)?,
            max_wsmsg_size: section.int("max-wsmsg-size", 16 * 1024 * 1024, 1..=i64::MAX)? as u64,
            aiomonitor_termui_port,
            aiomonitor_webui_port: section.int("aiomonitor-webui-port", 49100, 1..=65535)? as u16,
            rpc_auth_manager_keypair: section.path(
                "rpc-auth-manager-keypair",
                "fixtures/manager/manager.key_secret",
            )?,
            http_limits: HttpLimits::read(section)?,
        })
    }

    /// Whether a pid file is to be written at all.
    pub fn writes_pid_file(&self) -> bool {
        !self.pid_file.as_os_str().is_empty() && self.pid_file != std::path::Path::new("/dev/null")
    }
}

/// A path that must name an existing file when given (the original's `Path(type="file")`).
fn existing_file(section: &Section<'_>, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = section.optional_path(key)? else {
        return Ok(None);
    };
    if path.is_file() {
        Ok(Some(path))
    } else {
        let raw = toml::Value::String(path.display().to_string());
        Err(section.invalid(key, &raw, "is not an existing file"))
    }
}

#[derive(Debug, Clone)]
pub struct DockerRegistrySection {
    /// Deprecated since 20.09 (registries are configured in etcd).
    pub ssl_verify: bool,
}

impl DockerRegistrySection {
    pub fn read(section: &Section<'_>) -> Result<DockerRegistrySection, ConfigError> {
        Ok(DockerRegistrySection {
            ssl_verify: section.boolean("ssl-verify", true)?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct DebugSection {
    /// Include internal error details in API errors; set by `--debug`.
    pub enabled: bool,
    pub asyncio: bool,
    pub enhanced_aiomonitor_task_info: bool,
    /// Log every event received from the agents.
    pub log_events: bool,
    /// Log every scheduler tick.
    pub log_scheduler_ticks: bool,
    /// Copy container statistics from Redis into `kernels.last_stat` periodically.
    pub periodic_sync_stats: bool,
}

impl DebugSection {
    pub fn read(section: &Section<'_>) -> Result<DebugSection, ConfigError> {
        Ok(DebugSection {
            enabled: section.boolean("enabled", false)?,
            asyncio: section.boolean("asyncio", false)?,
            enhanced_aiomonitor_task_info: section
                .boolean("enhanced-aiomonitor-task-info", false)?,
            log_events: section.boolean("log-events", false)?,
            log_scheduler_ticks: section.boolean("log-scheduler-ticks", false)?,
            periodic_sync_stats: section.boolean("periodic-sync-stats", false)?,
        })
    }
}
