//! manager.toml: finding it, parsing it, validating it, and the environment overrides.
//!
//! The file is parsed to a TOML table, the `BACKEND_*` overrides are written into that table
//! (as the original does, so they are validated like file values), and each section is then
//! read key by key with the original's defaults and checks. Keys nobody reads are reported as
//! warnings, not errors, so newer or older files keep loading.

mod env;
mod host_port;
pub mod http_limits;
mod logging_section;
mod reader;
mod sections;

pub use host_port::HostPort;
pub use http_limits::HttpLimits;
pub use logging_section::{
    ConsoleLogSection, FileLogSection, LogDriver, LogFormat, LoggingSection,
};
pub use sections::{
    AccountId, DISTRIBUTED_LOCKS, DbSection, DebugSection, DockerRegistrySection, EtcdSection,
    MAX_NUM_PROC, ManagerSection, cpu_count,
};

use std::path::{Path, PathBuf};

use bai_actors::etcd::EtcdSettings;
use bai_schema::DbSettings;

use crate::logging::LogLevel;
use reader::Section;

/// The sections this implementation reads; any other top-level key is reported as unknown.
const KNOWN_SECTIONS: &[&str] = &[
    "etcd",
    "db",
    "manager",
    "docker-registry",
    "logging",
    "debug",
];

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
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration in {path}: {key} = {value} {problem}")]
    Invalid {
        path: PathBuf,
        /// The dotted key, e.g. `manager.num-proc`.
        key: String,
        /// The value as written (or `(missing)`), with the variable it came from if any.
        value: String,
        problem: String,
    },
}

impl ConfigError {
    /// Every configuration problem is an invalid argument for the CLI (exit code 4).
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID_ARGUMENT
    }
}

/// The whole local configuration.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub etcd: EtcdSection,
    pub db: DbSection,
    pub manager: ManagerSection,
    pub docker_registry: DockerRegistrySection,
    pub logging: LoggingSection,
    pub debug: DebugSection,
    /// The file this was read from.
    pub source_path: PathBuf,
    /// Things accepted but worth telling the operator (unknown keys, doubtful values); logged
    /// once logging is set up.
    pub warnings: Vec<String>,
}

impl LocalConfig {
    /// Finds and loads manager.toml: `explicit` (from `-f`), else `$BACKEND_CONFIG_FILE`, else
    /// the first of `./manager.toml`, `~/.config/backend.ai/manager.toml`,
    /// `/etc/backend.ai/manager.toml`. The `BACKEND_*` variables of the process apply.
    pub fn load(explicit: Option<&Path>) -> Result<LocalConfig, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let path = match explicit {
            Some(path) => path.to_owned(),
            None => find_config_file_with(&lookup)?,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        LocalConfig::parse(&path, &text, &lookup)
    }

    /// Validates the text of a manager.toml read from `path`, with environment variables looked
    /// up through `lookup`.
    pub fn parse(
        path: &Path,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LocalConfig, ConfigError> {
        let mut root: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: describe_syntax_error(text, &e),
        })?;
        let origins = env::apply_overrides(&mut root, lookup);
        let mut warnings = Vec::new();
        let unread = std::cell::RefCell::new(Vec::new());
        let section = |name: &str| Section::of(path, &root, name, &origins, &unread);

        let etcd = EtcdSection::read(&section("etcd")?)?;
        let db = DbSection::read(&section("db")?)?;
        let mut manager = ManagerSection::read(&section("manager")?, &mut warnings)?;
        apply_service_addr_overrides(path, &mut manager, lookup)?;
        let docker_registry = DockerRegistrySection::read(&section("docker-registry")?)?;
        let logging = LoggingSection::read(&section("logging")?)?;
        let debug = DebugSection::read(&section("debug")?)?;

        let mut unread = unread.take();
        unread.extend(
            root.keys()
                .filter(|k| !KNOWN_SECTIONS.contains(&k.as_str()))
                .cloned(),
        );
        warnings.extend(
            unread
                .into_iter()
                .map(|key| format!("unknown key {key} in {} is ignored", path.display())),
        );
        Ok(LocalConfig {
            etcd,
            db,
            manager,
            docker_registry,
            logging,
            debug,
            source_path: path.to_owned(),
            warnings,
        })
    }

    /// What `--debug` does in the original: debug mode on, and DEBUG for the global level and
    /// for the `ai.backend` (our crates) and `aiohttp` (the HTTP server) namespaces.
    pub fn apply_debug_flag(&mut self) {
        self.debug.enabled = true;
        self.logging.level = LogLevel::Debug;
        self.logging
            .pkg_ns
            .insert("ai.backend".to_owned(), LogLevel::Debug);
        self.logging
            .pkg_ns
            .insert("aiohttp".to_owned(), LogLevel::Debug);
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

/// A TOML error on one line: where it is, the line as written, and what is wrong.
fn describe_syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(offset) = error.span().map(|span| span.start.min(text.len())) else {
        return message.to_owned();
    };
    let before = &text[..offset];
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    format!("line {line_number}, column {column} ({line}): {message}")
}

/// `BACKEND_SERVICE_IP` and `BACKEND_SERVICE_PORT` replace the host and port of
/// `service-addr` (the original writes them to an unused key, so they never worked there).
fn apply_service_addr_overrides(
    path: &Path,
    manager: &mut ManagerSection,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let overrides = env::ServiceAddrOverride::from_env(lookup);
    if let Some(host) = overrides.host {
        manager.service_addr.host = host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
    }
    if let Some(port) = overrides.port {
        let bad = || ConfigError::Invalid {
            path: path.to_owned(),
            key: "manager.service-addr".to_owned(),
            value: format!("{port:?} (from $BACKEND_SERVICE_PORT)"),
            problem: "is not a port number (1-65535)".to_owned(),
        };
        let number: u16 = port.trim().parse().map_err(|_| bad())?;
        if number == 0 {
            return Err(bad());
        }
        manager.service_addr.port = number;
    }
    Ok(())
}

/// The discovery order of `ai.backend.common.config.find_config_file`, with this process's
/// environment.
pub fn find_config_file() -> Result<PathBuf, ConfigError> {
    find_config_file_with(&|name: &str| std::env::var(name).ok())
}

/// The discovery order, with the environment looked up through `lookup`.
pub fn find_config_file_with(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = lookup("BACKEND_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let mut tried = vec![PathBuf::from("manager.toml")];
    if let Some(home) = lookup("HOME").filter(|h| !h.is_empty()) {
        tried.push(PathBuf::from(home).join(".config/backend.ai/manager.toml"));
    }
    tried.push(PathBuf::from("/etc/backend.ai/manager.toml"));
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(ConfigError::NotFound { tried })
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
