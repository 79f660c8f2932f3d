//! The storage configuration in etcd `volumes/` (the original's `volume_config_iv`): the
//! enabled folder types, the default host, the exposed volume info and the storage proxies.
//! Parsing is pure; a bad proxy entry is reported by name and left out, the rest still works.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// The etcd prefix of the storage configuration.
pub const VOLUMES_PREFIX: &str = "volumes/";

/// A storage proxy's manager-API secret. It never prints: `Debug` and `Display` show a
/// placeholder, so it cannot slip into a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the `X-BackendAI-Storage-Auth-Token` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// One storage proxy: `volumes/proxies/<name>/…`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub name: String,
    /// Returned to clients as the base of upload and download URLs.
    pub client_api: url::Url,
    /// Where the manager calls the proxy.
    pub manager_api: url::Url,
    pub secret: Secret,
    pub ssl_verify: bool,
    pub sftp_scaling_groups: Vec<String>,
}

/// The whole `volumes/` tree, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumesConfig {
    /// Enabled folder ownership types (`user`, `group`): the keys of `volumes/_types`, or
    /// `["user"]` when there are none (the original's default).
    pub vfolder_types: Vec<String>,
    /// `volumes/default_host`, if set.
    pub default_host: Option<String>,
    /// `volumes/exposed_volume_info`: which usage figures `GET /folders/_/hosts` shows.
    pub exposed_volume_info: Vec<String>,
    pub proxies: BTreeMap<String, ProxyConfig>,
}

/// What is wrong with one part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd {key}: {reason}")]
pub struct ConfigProblem {
    /// The etcd key (below the namespace) that holds the bad value.
    pub key: String,
    pub reason: String,
}

impl VolumesConfig {
    /// Whether folders of `ownership_type` (`user` or `group`) may be created and listed.
    pub fn allows_type(&self, ownership_type: &str) -> bool {
        self.vfolder_types.iter().any(|t| t == ownership_type)
    }

    /// Checks the nested `volumes/` tree (as `EtcdStore::get_prefix` returns it). Proxies with
    /// a problem are left out and reported; everything else is kept.
    pub fn parse(tree: &Map<String, Value>) -> (VolumesConfig, Vec<ConfigProblem>) {
        let mut problems = Vec::new();
        let mut vfolder_types: Vec<String> = match tree.get("_types") {
            Some(Value::Object(types)) => types.keys().cloned().collect(),
            Some(Value::String(text)) if text.is_empty() => Vec::new(),
            None => Vec::new(),
            Some(_) => {
                problems.push(problem("volumes/_types", "must hold keys like user, group"));
                Vec::new()
            }
        };
        vfolder_types.retain(|t| {
            let known = t == "user" || t == "group";
            if !known {
                problems.push(problem(
                    &format!("volumes/_types/{t}"),
                    "unknown vfolder type (only user and group exist)",
                ));
            }
            known
        });
        if vfolder_types.is_empty() {
            vfolder_types.push("user".to_owned());
        }
        let default_host = match tree.get("default_host") {
            Some(Value::String(host)) if !host.is_empty() => Some(host.clone()),
            _ => None,
        };
        let exposed_volume_info = match tree.get("exposed_volume_info") {
            Some(Value::String(text)) => string_list(text),
            _ => vec!["percentage".to_owned()],
        };
        let mut proxies = BTreeMap::new();
        if let Some(value) = tree.get("proxies") {
            match value {
                Value::Object(entries) => {
                    for (name, entry) in entries {
                        match parse_proxy(name, entry) {
                            Ok(proxy) => {
                                proxies.insert(name.clone(), proxy);
                            }
                            Err(p) => problems.push(p),
                        }
                    }
                }
                _ => problems.push(problem("volumes/proxies", "must hold one entry per proxy")),
            }
        }
        let config = VolumesConfig {
            vfolder_types,
            default_host,
            exposed_volume_info,
            proxies,
        };
        (config, problems)
    }
}

fn problem(key: &str, reason: &str) -> ConfigProblem {
    ConfigProblem {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

fn string_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// trafaret's `tx.Slug`: letters, digits, `-` and `_`, starting with a letter or digit.
fn is_slug(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphanumeric())
        && chars.all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

fn parse_proxy(name: &str, entry: &Value) -> Result<ProxyConfig, ConfigProblem> {
    let base = format!("volumes/proxies/{name}");
    if !is_slug(name) {
        return Err(problem(
            &base,
            "a proxy name may hold only letters, digits, - and _",
        ));
    }
    let Value::Object(fields) = entry else {
        return Err(problem(
            &base,
            "must hold client_api, manager_api and secret",
        ));
    };
    let text = |field: &str| -> Result<&str, ConfigProblem> {
        match fields.get(field) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.as_str()),
            _ => Err(problem(&format!("{base}/{field}"), "is required")),
        }
    };
    let url_field = |field: &str| -> Result<url::Url, ConfigProblem> {
        let raw = text(field)?;
        let parsed = url::Url::parse(raw)
            .map_err(|e| problem(&format!("{base}/{field}"), &format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(problem(
                &format!("{base}/{field}"),
                "must be an http:// or https:// URL",
            ));
        }
        Ok(parsed)
    };
    let client_api = url_field("client_api")?;
    let manager_api = url_field("manager_api")?;
    let secret = Secret::new(text("secret")?);
    let ssl_verify = match fields.get("ssl_verify") {
        None | Some(Value::Null) => true,
        Some(Value::String(value)) => parse_bool(value).ok_or_else(|| {
            problem(
                &format!("{base}/ssl_verify"),
                "must be true or false (or yes/no, 1/0)",
            )
        })?,
        Some(Value::Bool(value)) => *value,
        Some(_) => {
            return Err(problem(
                &format!("{base}/ssl_verify"),
                "must be true or false",
            ));
        }
    };
    let sftp_scaling_groups = match fields.get("sftp_scaling_groups") {
        Some(Value::String(text)) => string_list(text),
        _ => Vec::new(),
    };
    Ok(ProxyConfig {
        name: name.to_owned(),
        client_api,
        manager_api,
        secret,
        ssl_verify,
        sftp_scaling_groups,
    })
}

/// trafaret's `ToBool` spellings.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::keys::unflatten;

    fn tree(pairs: &[(&str, &str)]) -> Map<String, Value> {
        unflatten(VOLUMES_PREFIX, pairs.iter().copied())
    }

    #[test]
    fn the_peers_config_parses() {
        // What setup-peers.sh puts with `etcd put-json volumes etcd.volumes.json`.
        let (config, problems) = VolumesConfig::parse(&tree(&[
            ("volumes/_types/group", ""),
            ("volumes/_types/user", ""),
            ("volumes/default_host", "local:volume1"),
            ("volumes/exposed_volume_info", "percentage"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:26021"),
            (
                "volumes/proxies/local/manager_api",
                "http://127.0.0.1:26022",
            ),
            ("volumes/proxies/local/secret", "s3cr3t"),
            ("volumes/proxies/local/ssl_verify", "false"),
        ]));
        assert_eq!(problems, vec![]);
        assert_eq!(config.vfolder_types, vec!["group", "user"]);
        assert!(config.allows_type("group"));
        assert_eq!(config.default_host.as_deref(), Some("local:volume1"));
        assert_eq!(config.exposed_volume_info, vec!["percentage"]);
        let local = &config.proxies["local"];
        assert_eq!(local.manager_api.as_str(), "http://127.0.0.1:26022/");
        assert_eq!(local.secret.expose(), "s3cr3t");
        assert!(!local.ssl_verify);
        assert_eq!(local.sftp_scaling_groups, Vec::<String>::new());
    }

    #[test]
    fn defaults_apply_when_keys_are_missing() {
        let (config, problems) = VolumesConfig::parse(&Map::new());
        assert_eq!(problems, vec![]);
        assert_eq!(config.vfolder_types, vec!["user"]);
        assert_eq!(config.default_host, None);
        assert_eq!(config.exposed_volume_info, vec!["percentage"]);
        assert!(config.proxies.is_empty());
    }

    #[test]
    fn a_bad_proxy_is_named_and_left_out_and_the_others_stay() {
        let (config, problems) = VolumesConfig::parse(&tree(&[
            ("volumes/proxies/good/client_api", "http://127.0.0.1:1"),
            ("volumes/proxies/good/manager_api", "http://127.0.0.1:2"),
            ("volumes/proxies/good/secret", "x"),
            ("volumes/proxies/good/sftp_scaling_groups", "sg1, sg2"),
            ("volumes/proxies/nosecret/client_api", "http://127.0.0.1:1"),
            ("volumes/proxies/nosecret/manager_api", "http://127.0.0.1:2"),
            ("volumes/proxies/badurl/client_api", "127.0.0.1:1"),
            ("volumes/proxies/badurl/manager_api", "http://127.0.0.1:2"),
            ("volumes/proxies/badurl/secret", "x"),
            ("volumes/proxies/badbool/client_api", "http://127.0.0.1:1"),
            ("volumes/proxies/badbool/manager_api", "http://127.0.0.1:2"),
            ("volumes/proxies/badbool/secret", "x"),
            ("volumes/proxies/badbool/ssl_verify", "maybe"),
        ]));
        assert_eq!(config.proxies.keys().collect::<Vec<_>>(), vec!["good"]);
        assert!(config.proxies["good"].ssl_verify);
        assert_eq!(
            config.proxies["good"].sftp_scaling_groups,
            vec!["sg1", "sg2"]
        );
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "volumes/proxies/badbool/ssl_verify",
                "volumes/proxies/badurl/client_api",
                "volumes/proxies/nosecret/secret",
            ]
        );
        // The problems never carry the secret values.
        assert!(problems.iter().all(|p| !p.to_string().contains("\"x\"")));
    }

    #[test]
    fn unknown_folder_types_are_reported() {
        let (config, problems) = VolumesConfig::parse(&tree(&[("volumes/_types/team", "")]));
        assert_eq!(config.vfolder_types, vec!["user"]);
        assert_eq!(problems[0].key, "volumes/_types/team");
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("manager-storage-shared-secret");
        assert_eq!(format!("{secret}"), "<hidden>");
        assert!(!format!("{secret:?}").contains("shared"));
        let (config, _) = VolumesConfig::parse(&tree(&[
            ("volumes/proxies/p/client_api", "http://127.0.0.1:1"),
            ("volumes/proxies/p/manager_api", "http://127.0.0.1:2"),
            ("volumes/proxies/p/secret", "manager-storage-shared-secret"),
        ]));
        assert!(!format!("{config:?}").contains("shared"));
    }
}
