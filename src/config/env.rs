//! The `BACKEND_*` environment overrides, applied to the raw file before validation as the
//! original does, so an overridden value is validated like one written in the file.

use toml::{Table, Value};

use super::reader::EnvOrigins;

/// Environment variable → the key it overrides (22.09 `manager/config.py::load` and
/// `common/logging.py`). `BACKEND_SERVICE_IP`/`BACKEND_SERVICE_PORT` are handled by
/// [`apply_service_addr_overrides`]: the original writes them to a key nobody reads, we make
/// them override `service-addr` as the documentation promises.
pub const OVERRIDES: &[(&str, &[&str])] = &[
    ("BACKEND_NAMESPACE", &["etcd", "namespace"]),
    ("BACKEND_ETCD_ADDR", &["etcd", "addr"]),
    ("BACKEND_ETCD_USER", &["etcd", "user"]),
    ("BACKEND_ETCD_PASSWORD", &["etcd", "password"]),
    ("BACKEND_DB_ADDR", &["db", "addr"]),
    ("BACKEND_DB_NAME", &["db", "name"]),
    ("BACKEND_DB_USER", &["db", "user"]),
    ("BACKEND_DB_PASSWORD", &["db", "password"]),
    ("BACKEND_MANAGER_NPROC", &["manager", "num-proc"]),
    ("BACKEND_SSL_CERT", &["manager", "ssl-cert"]),
    ("BACKEND_SSL_KEY", &["manager", "ssl-privkey"]),
    ("BACKEND_PID_FILE", &["manager", "pid-file"]),
    // Written verbatim although the name says the opposite (legacy, as the original).
    (
        "BACKEND_SKIP_SSLCERT_VALIDATION",
        &["docker-registry", "ssl-verify"],
    ),
    (
        "BACKEND_LOG_FILE_COUNT",
        &["logging", "file", "backup-count"],
    ),
];

/// Applies every override found by `lookup` to `root` and returns where each overridden key's
/// value came from.
pub fn apply_overrides(root: &mut Table, lookup: &dyn Fn(&str) -> Option<String>) -> EnvOrigins {
    let mut origins = EnvOrigins::new();
    for (var, key_path) in OVERRIDES {
        if let Some(value) = lookup(var) {
            set_path(root, key_path, Value::String(value));
            origins.insert(key_path.join("."), (*var).to_owned());
        }
    }
    // The legacy log file variables of `common/logging.py`.
    if let Some(file) = lookup("BACKEND_LOG_FILE").filter(|f| !f.is_empty()) {
        let file = std::path::PathBuf::from(file);
        let parent = file
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".to_owned());
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        set_path(root, &["logging", "file", "path"], Value::String(parent));
        set_path(root, &["logging", "file", "filename"], Value::String(name));
        origins.insert("logging.file.path".into(), "BACKEND_LOG_FILE".into());
        origins.insert("logging.file.filename".into(), "BACKEND_LOG_FILE".into());
    }
    if let Some(size) = lookup("BACKEND_LOG_FILE_SIZE").filter(|s| !s.is_empty()) {
        // In megabytes, as the original.
        set_path(
            root,
            &["logging", "file", "rotation-size"],
            Value::String(format!("{size}M")),
        );
        origins.insert(
            "logging.file.rotation-size".into(),
            "BACKEND_LOG_FILE_SIZE".into(),
        );
    }
    origins
}

/// `BACKEND_SERVICE_IP` / `BACKEND_SERVICE_PORT`, as (variable, value) pairs, if set.
pub struct ServiceAddrOverride {
    pub host: Option<String>,
    pub port: Option<String>,
}

impl ServiceAddrOverride {
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> ServiceAddrOverride {
        ServiceAddrOverride {
            host: lookup("BACKEND_SERVICE_IP").filter(|h| !h.trim().is_empty()),
            port: lookup("BACKEND_SERVICE_PORT").filter(|p| !p.trim().is_empty()),
        }
    }
}

/// Sets `root[path[0]][path[1]]... = value`, creating tables on the way (a non-table in the way
/// is replaced, as the original's `override_key` does).
fn set_path(root: &mut Table, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = root;
    for key in parents {
        let entry = table
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        match entry {
            Value::Table(inner) => table = inner,
            _ => return,
        }
    }
    table.insert((*last).to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_create_missing_sections_and_remember_their_origin() {
        let mut root: Table = toml::from_str("[etcd]\nnamespace = \"local\"\n").unwrap();
        let env = |name: &str| match name {
            "BACKEND_NAMESPACE" => Some("prod".to_owned()),
            "BACKEND_DB_ADDR" => Some("db.example:5433".to_owned()),
            "BACKEND_LOG_FILE" => Some("/var/log/bai/manager.log".to_owned()),
            _ => None,
        };
        let origins = apply_overrides(&mut root, &env);
        assert_eq!(root["etcd"]["namespace"].as_str(), Some("prod"));
        assert_eq!(root["db"]["addr"].as_str(), Some("db.example:5433"));
        assert_eq!(
            root["logging"]["file"]["path"].as_str(),
            Some("/var/log/bai")
        );
        assert_eq!(
            root["logging"]["file"]["filename"].as_str(),
            Some("manager.log")
        );
        assert_eq!(
            origins.get("db.addr").map(String::as_str),
            Some("BACKEND_DB_ADDR")
        );
    }
}
