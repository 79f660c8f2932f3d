//! Container registries as configured in etcd `config/docker/registry/<quoted name>`:
//! `{"": URL, type, project, username, password, ssl-verify}`.

use serde_json::{Map, Value};
use url::Url;

use crate::etcd::{EtcdError, EtcdStore};

/// The etcd prefix under which registries are configured (names are URL-quoted below it).
pub const REGISTRY_CONFIG_PREFIX: &str = "config/docker/registry/";

#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("etcd config/docker/registry/{name}: {message}")]
    Invalid { name: String, message: String },
}

/// How a registry lists its repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryType {
    /// Docker Registry HTTP API v2 (`/v2/_catalog`).
    Docker,
    /// Harbor 1.x (`/api/projects`, `/api/repositories`).
    Harbor,
    /// Harbor 2.x (`/api/v2.0/projects/{project}/repositories`).
    Harbor2,
}

impl RegistryType {
    pub fn parse(text: &str) -> Option<RegistryType> {
        match text {
            "docker" => Some(RegistryType::Docker),
            "harbor" => Some(RegistryType::Harbor),
            "harbor2" => Some(RegistryType::Harbor2),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            RegistryType::Docker => "docker",
            RegistryType::Harbor => "harbor",
            RegistryType::Harbor2 => "harbor2",
        }
    }
}

/// One configured registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The name used in image references and etcd (e.g. `cr.backend.ai`, `127.0.0.1:5000`).
    pub name: String,
    pub url: Url,
    pub registry_type: RegistryType,
    /// The projects (first path component of repositories) to scan; empty means all.
    pub projects: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl_verify: bool,
}

impl std::fmt::Debug for RegistryConfig {
    // The password must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("registry_type", &self.registry_type)
            .field("projects", &self.projects)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ssl_verify", &self.ssl_verify)
            .finish()
    }
}

impl RegistryConfig {
    /// Whether `repository` (`project/name`) belongs to a configured project.
    pub fn includes_repository(&self, repository: &str) -> bool {
        if self.projects.is_empty() {
            return true;
        }
        let project = repository.split('/').next().unwrap_or(repository);
        self.projects.iter().any(|p| p == project)
    }
}

/// Reads every configured registry, sorted by name.
pub async fn load_registries(etcd: &EtcdStore) -> Result<Vec<RegistryConfig>, RegistryConfigError> {
    let tree = etcd.get_prefix(REGISTRY_CONFIG_PREFIX).await?;
    parse_registries(&tree)
}

/// Builds the registries from the nested object `get_prefix` returns (names already unquoted).
/// A registry whose only key is its URL comes as a plain string.
pub fn parse_registries(
    tree: &Map<String, Value>,
) -> Result<Vec<RegistryConfig>, RegistryConfigError> {
    let mut registries = tree
        .iter()
        .map(|(name, value)| parse_registry(name, value))
        .collect::<Result<Vec<_>, _>>()?;
    registries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(registries)
}

fn parse_registry(name: &str, value: &Value) -> Result<RegistryConfig, RegistryConfigError> {
    let invalid = |message: String| RegistryConfigError::Invalid {
        name: name.to_owned(),
        message,
    };
    let empty = Map::new();
    let (url_text, fields) = match value {
        Value::String(url) => (Some(url.as_str()), &empty),
        Value::Object(fields) => (fields.get("").and_then(Value::as_str), fields),
        other => {
            return Err(invalid(format!(
                "expected a URL or a mapping, found {other}"
            )));
        }
    };
    let url_text = url_text
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| invalid("the registry URL (the key itself) is not set".to_owned()))?;
    let url = Url::parse(url_text.trim())
        .map_err(|e| invalid(format!("the URL {url_text:?} is not valid: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the URL {url_text:?} must start with http:// or https://"
        )));
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let type_text = text("type").unwrap_or_else(|| "docker".to_owned());
    let registry_type = RegistryType::parse(type_text.trim()).ok_or_else(|| {
        invalid(format!(
            "type {type_text:?} is not supported (expected docker, harbor or harbor2)"
        ))
    })?;
    let projects = text("project")
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let ssl_verify_text = text("ssl-verify").or_else(|| text("ssl_verify"));
    let ssl_verify = match ssl_verify_text.as_deref() {
        None => true,
        Some(value) => parse_bool(value)
            .ok_or_else(|| invalid(format!("ssl-verify {value:?} is not a boolean")))?,
    };
    Ok(RegistryConfig {
        name: name.to_owned(),
        url,
        registry_type,
        projects,
        username: text("username").filter(|u| !u.is_empty()),
        password: text("password"),
        ssl_verify,
    })
}

/// trafaret's `ToBool` on a string.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" | "none" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn full_and_url_only_registries_parse() {
        let registries = parse_registries(&tree(json!({
            "cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2",
                              "project": "stable, community", "username": "admin",
                              "password": "s3cret", "ssl-verify": "false"},
            "127.0.0.1:5000": "http://127.0.0.1:5000"
        })))
        .unwrap();
        assert_eq!(registries.len(), 2);
        let local = &registries[0];
        assert_eq!(local.name, "127.0.0.1:5000");
        assert_eq!(local.registry_type, RegistryType::Docker);
        assert!(local.projects.is_empty());
        assert!(local.ssl_verify);
        assert!(local.includes_repository("anything/here"));
        let harbor = &registries[1];
        assert_eq!(harbor.registry_type, RegistryType::Harbor2);
        assert_eq!(harbor.projects, vec!["stable", "community"]);
        assert_eq!(harbor.username.as_deref(), Some("admin"));
        assert!(!harbor.ssl_verify);
        assert!(harbor.includes_repository("stable/python"));
        assert!(!harbor.includes_repository("stablex/python"));
        assert!(!format!("{harbor:?}").contains("s3cret"));
    }

    #[test]
    fn bad_entries_name_the_registry_and_the_problem() {
        for (value, needle) in [
            (json!({"type": "docker"}), "URL"),
            (json!({"": "ftp://x"}), "http://"),
            (json!({"": "http://x", "type": "quay"}), "quay"),
            (json!({"": "http://x", "ssl_verify": "maybe"}), "ssl-verify"),
        ] {
            let error = parse_registries(&tree(json!({"reg": value}))).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("registry/reg") && text.contains(needle),
                "{text}"
            );
        }
    }
}
