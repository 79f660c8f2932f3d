//! The idle checkers' settings from etcd `config/idle/*`, with the original's keys, defaults
//! and value forms (`config/idle/enabled = "network_timeout,utilization"`,
//! `config/idle/checkers/<name>/...`; durations such as `"10m"`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `session_lifetime` always runs; the others when `config/idle/enabled` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckerKind {
    SessionLifetime,
    NetworkTimeout,
    Utilization,
}

impl CheckerKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckerKind::SessionLifetime => "session_lifetime",
            CheckerKind::NetworkTimeout => "network_timeout",
            CheckerKind::Utilization => "utilization",
        }
    }

    /// How the report's `remaining` is meant (`RemainingTimeType`).
    pub fn remaining_time_type(self) -> &'static str {
        match self {
            CheckerKind::Utilization => "grace_period",
            _ => "expire_after",
        }
    }

    /// The `KernelLifecycleEventReason` a session ended by this checker gets.
    pub fn terminate_reason(self) -> &'static str {
        match self {
            CheckerKind::SessionLifetime => "idle-session-lifetime",
            CheckerKind::NetworkTimeout => "idle-timeout",
            CheckerKind::Utilization => "idle-utilization",
        }
    }

    fn by_name(name: &str) -> Option<CheckerKind> {
        match name {
            "network_timeout" => Some(CheckerKind::NetworkTimeout),
            "utilization" => Some(CheckerKind::Utilization),
            _ => None,
        }
    }
}

/// `thresholds-check-operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdOperator {
    /// Idle only when every resource is under its threshold (the default).
    And,
    /// Idle when any resource is under its threshold.
    Or,
}

impl ThresholdOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdOperator::And => "and",
            ThresholdOperator::Or => "or",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UtilizationConfig {
    pub time_window: f64,
    pub initial_grace_period: f64,
    pub operator: ThresholdOperator,
    /// `resource-thresholds/<resource>/average` in percent, by resource (`cpu_util`, `mem`,
    /// `cuda_util`, `cuda_mem`); `None` for a resource that is not judged.
    pub thresholds: BTreeMap<String, Option<f64>>,
}

/// Everything the checkers read from etcd.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleConfig {
    /// In the order they run: `session_lifetime` first, then `config/idle/enabled`'s.
    pub checkers: Vec<CheckerKind>,
    /// `checkers/network_timeout/threshold` (seconds, default 10 minutes): the timeout for
    /// keypairs whose policy leaves `idle_timeout` undefined (negative).
    pub network_timeout: f64,
    pub utilization: UtilizationConfig,
    /// `checkers/user_grace_period/user_initial_grace_period`: no session of a user younger
    /// than this is counted idle.
    pub user_initial_grace_period: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdleConfigError {
    #[error("config/idle/{key} = {value:?} is not a duration (e.g. 30s, 10m, 1h, 2d)")]
    BadDuration { key: String, value: String },
    #[error("config/idle/{key} = {value:?} is not a number")]
    BadNumber { key: String, value: String },
    #[error("config/idle/{key} = {value:?} is not \"and\" or \"or\"")]
    BadOperator { key: String, value: String },
}

/// The resources each slot kind lets the utilization checker judge.
pub const SLOT_RESOURCES: &[(&str, &[&str])] = &[
    ("cpu", &["cpu_util"]),
    ("mem", &["mem"]),
    ("cuda", &["cuda_util", "cuda_mem"]),
];

const THRESHOLD_RESOURCES: &[&str] = &["cpu_util", "mem", "cuda_util", "cuda_mem"];

/// A duration as the original's `TimeDuration` reads it: a bare number is seconds; otherwise
/// a number with one of `s m h d w` or `mo yr`.
pub fn parse_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds).filter(|s| s.is_finite());
    }
    let (number, factor) = if let Some(n) = text.strip_suffix("yr") {
        (n, 365.0 * 86400.0)
    } else if let Some(n) = text.strip_suffix("mo") {
        (n, 30.0 * 86400.0)
    } else {
        let unit = text.chars().last()?;
        let factor = match unit {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            'w' => 7.0 * 86400.0,
            _ => return None,
        };
        (&text[..text.len() - 1], factor)
    };
    let value: f64 = number.trim().parse().ok()?;
    Some(value * factor).filter(|s| s.is_finite())
}

fn text_at<'a>(tree: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut node = tree;
    for key in parents {
        node = node.get(*key)?.as_object()?;
    }
    node.get(*last)?.as_str()
}

fn duration_at(
    tree: &Map<String, Value>,
    path: &[&str],
    default: f64,
) -> Result<f64, IdleConfigError> {
    match text_at(tree, path) {
        None => Ok(default),
        Some(value) => parse_duration(value).ok_or_else(|| IdleConfigError::BadDuration {
            key: path.join("/"),
            value: value.to_owned(),
        }),
    }
}

impl IdleConfig {
    /// From the nested tree under `config/idle` (as `EtcdStore::get_prefix` builds it).
    pub fn from_tree(tree: &Map<String, Value>) -> Result<IdleConfig, IdleConfigError> {
        let mut checkers = vec![CheckerKind::SessionLifetime];
        if let Some(enabled) = tree.get("enabled").and_then(Value::as_str) {
            for name in enabled.split(',') {
                if let Some(kind) = CheckerKind::by_name(name.trim())
                    && !checkers.contains(&kind)
                {
                    checkers.push(kind);
                }
            }
        }
        let network_timeout =
            duration_at(tree, &["checkers", "network_timeout", "threshold"], 600.0)?;
        let user_initial_grace_period = match text_at(
            tree,
            &["checkers", "user_grace_period", "user_initial_grace_period"],
        ) {
            None => None,
            Some(_) => Some(duration_at(
                tree,
                &["checkers", "user_grace_period", "user_initial_grace_period"],
                0.0,
            )?),
        };
        let util = ["checkers", "utilization"];
        let time_window = duration_at(tree, &[util[0], util[1], "time-window"], 600.0)?;
        let initial_grace_period =
            duration_at(tree, &[util[0], util[1], "initial-grace-period"], 300.0)?;
        let operator = match text_at(tree, &[util[0], util[1], "thresholds-check-operator"]) {
            None | Some("and") => ThresholdOperator::And,
            Some("or") => ThresholdOperator::Or,
            Some(other) => {
                return Err(IdleConfigError::BadOperator {
                    key: "checkers/utilization/thresholds-check-operator".into(),
                    value: other.to_owned(),
                });
            }
        };
        let configured = tree
            .get("checkers")
            .and_then(|c| c.get("utilization"))
            .and_then(|u| u.get("resource-thresholds"))
            .and_then(Value::as_object);
        let mut thresholds = BTreeMap::new();
        for resource in THRESHOLD_RESOURCES {
            let average =
                match configured
                    .and_then(|c| c.get(*resource))
                    .and_then(|r| r.get("average"))
                    .and_then(Value::as_str)
                {
                    None => None,
                    Some(text) => Some(text.trim().parse::<f64>().map_err(|_| {
                        IdleConfigError::BadNumber {
                            key: format!(
                                "checkers/utilization/resource-thresholds/{resource}/average"
                            ),
                            value: text.to_owned(),
                        }
                    })?),
                };
            thresholds.insert((*resource).to_owned(), average);
        }
        Ok(IdleConfig {
            checkers,
            network_timeout,
            utilization: UtilizationConfig {
                time_window,
                initial_grace_period,
                operator,
                thresholds,
            },
            user_initial_grace_period,
        })
    }

    pub fn is_enabled(&self, kind: CheckerKind) -> bool {
        self.checkers.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tree(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn durations_read_as_the_original_reads_them() {
        assert_eq!(parse_duration("10m"), Some(600.0));
        assert_eq!(parse_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_duration("30"), Some(30.0));
        assert_eq!(parse_duration("2d"), Some(172_800.0));
        assert_eq!(parse_duration("1w"), Some(604_800.0));
        assert_eq!(parse_duration("2s"), Some(2.0));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn an_empty_tree_enables_only_the_session_lifetime_with_the_defaults() {
        let config = IdleConfig::from_tree(&Map::new()).unwrap();
        assert_eq!(config.checkers, vec![CheckerKind::SessionLifetime]);
        assert_eq!(config.network_timeout, 600.0);
        assert_eq!(config.utilization.time_window, 600.0);
        assert_eq!(config.utilization.initial_grace_period, 300.0);
        assert_eq!(config.utilization.operator, ThresholdOperator::And);
        assert!(config.utilization.thresholds.values().all(Option::is_none));
        assert_eq!(config.user_initial_grace_period, None);
    }

    #[test]
    fn enabled_checkers_and_their_settings_come_from_the_tree() {
        let config = IdleConfig::from_tree(&tree(json!({
            "enabled": "network_timeout, utilization,unknown",
            "checkers": {
                "network_timeout": {"threshold": "2s"},
                "utilization": {
                    "time-window": "4s", "initial-grace-period": "0s",
                    "thresholds-check-operator": "or",
                    "resource-thresholds": {"cpu_util": {"average": "30"}, "mem": {"average": "10.5"}}
                },
                "user_grace_period": {"user_initial_grace_period": "1m"}
            }
        })))
        .unwrap();
        assert_eq!(
            config.checkers,
            vec![
                CheckerKind::SessionLifetime,
                CheckerKind::NetworkTimeout,
                CheckerKind::Utilization
            ]
        );
        assert_eq!(config.network_timeout, 2.0);
        assert_eq!(config.utilization.time_window, 4.0);
        assert_eq!(config.utilization.initial_grace_period, 0.0);
        assert_eq!(config.utilization.operator, ThresholdOperator::Or);
        assert_eq!(config.utilization.thresholds["cpu_util"], Some(30.0));
        assert_eq!(config.utilization.thresholds["mem"], Some(10.5));
        assert_eq!(config.utilization.thresholds["cuda_util"], None);
        assert_eq!(config.user_initial_grace_period, Some(60.0));
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = IdleConfig::from_tree(&tree(json!({
            "checkers": {"network_timeout": {"threshold": "soon"}}
        })))
        .unwrap_err();
        assert!(error.to_string().contains("network_timeout/threshold"));
        let error = IdleConfig::from_tree(&tree(json!({
            "checkers": {"utilization": {"thresholds-check-operator": "xor"}}
        })))
        .unwrap_err();
        assert!(matches!(error, IdleConfigError::BadOperator { .. }));
    }
}
