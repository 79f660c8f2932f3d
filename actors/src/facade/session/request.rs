//! The parameters of `POST /session` (`create_from_params`), read and checked without I/O:
//! keys and aliases, defaults, the session name pattern, the creation config of the caller's
//! API version, batch-only options, `starts_at`, the callback URL and manual agent lists.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::image_ref::normalize_architecture;
use super::resources::LegacyResources;
use crate::compat::reserved::is_reserved_folder_name;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::{Problem, ProblemKind};
use crate::storage::relative_path::container_path;

/// The schemes a `callback_url` may have: the manager POSTs session events there, and any
/// other scheme (`file://`, `gopher://`, …) would make it read or reach what it must not.
pub const CALLBACK_URL_SCHEMES: [&str; 2] = ["http", "https"];

/// `SessionTypes` of 22.09.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    Interactive,
    Batch,
}

impl SessionType {
    pub fn parse(text: &str) -> Option<SessionType> {
        match text.to_ascii_lowercase().as_str() {
            "interactive" => Some(SessionType::Interactive),
            "batch" => Some(SessionType::Batch),
            _ => None,
        }
    }

    /// The enum value (`interactive`), used in scaling-group options.
    pub fn value(self) -> &'static str {
        match self {
            SessionType::Interactive => "interactive",
            SessionType::Batch => "batch",
        }
    }

    /// The member name stored in `sessions.session_type`.
    pub fn stored_name(self) -> &'static str {
        match self {
            SessionType::Interactive => "INTERACTIVE",
            SessionType::Batch => "BATCH",
        }
    }
}

/// The creation config (`config`), as v5 and later clients send it.
#[derive(Debug, Clone, Default)]
pub struct CreationConfig {
    pub mounts: Vec<String>,
    pub mount_map: Map<String, Value>,
    pub environ: Map<String, Value>,
    pub scaling_group: Option<String>,
    pub resources: Option<Map<String, Value>>,
    pub resource_opts: Map<String, Value>,
    pub preopen_ports: Vec<i32>,
    pub agent_list: Option<Vec<String>>,
    pub legacy: LegacyResources,
}

/// A checked `POST /session` request.
#[derive(Debug, Clone)]
pub struct CreationRequest {
    pub session_name: String,
    pub image: String,
    pub architecture: String,
    pub session_type: SessionType,
    pub group: String,
    pub domain: String,
    pub cluster_size: i32,
    /// `single-node` or `multi-node`.
    pub cluster_mode: String,
    pub config: CreationConfig,
    pub tag: Option<String>,
    pub enqueue_only: bool,
    pub max_wait_seconds: i64,
    pub starts_at: Option<DateTime<Utc>>,
    pub reuse: bool,
    pub startup_command: Option<String>,
    pub bootstrap_script: Option<String>,
    /// Session ids or names.
    pub dependencies: Vec<String>,
    pub callback_url: Option<String>,
    pub owner_access_key: Option<String>,
}

/// The session name pattern `^(?=.{4,64}$)\w[\w.-]*\w$` (ASCII).
pub fn is_valid_session_name(name: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = name.as_bytes();
    (4..=64).contains(&bytes.len())
        && bytes.first().is_some_and(word)
        && bytes.last().is_some_and(word)
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

fn string_map(
    value: Option<&Map<String, Value>>,
    key: &str,
) -> Result<Map<String, Value>, Problem> {
    let Some(map) = value else {
        return Ok(Map::new());
    };
    if let Some((inner, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(invalid_param(
            key,
            format!("value of {inner:?} is not a string"),
        ));
    }
    Ok(map.clone())
}

fn string_list(value: Option<&Vec<Value>>, key: &str) -> Result<Vec<String>, Problem> {
    value
        .map(|list| {
            list.iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid_param(key, "value is not a list of strings"))
                })
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
}

/// Reads `config` for the caller's API version (`creation_config_v5` for v6, v4 for v5 with
/// `clusterSize` inside, older ones with the legacy `instance*` fields).
pub fn parse_creation_config(
    config: &Map<String, Value>,
    version: ApiVersion,
) -> Result<(CreationConfig, Option<i64>), Problem> {
    let params = ApiParams::from_object(config.clone());
    let preopen_ports = params
        .opt_list(&["preopen_ports", "preopenPorts"])?
        .map(|ports| {
            ports
                .iter()
                .map(|port| {
                    port.as_i64()
                        .filter(|p| (1024..=65535).contains(p))
                        .map(|p| p as i32)
                        .ok_or_else(|| {
                            invalid_param("preopen_ports", "ports must be integers in 1024-65535")
                        })
                })
                .collect::<Result<Vec<i32>, Problem>>()
        })
        .transpose()?
        .unwrap_or_default();
    let agent_list = if version.major >= 6 {
        params
            .opt_list(&["agent_list", "agentList"])?
            .map(|list| string_list(Some(list), "agent_list"))
            .transpose()?
    } else {
        None
    };
    let cluster_size = if version.major == 5 {
        params
            .raw(&["cluster_size", "clusterSize"])
            .and_then(|(_, v)| v.as_i64())
    } else {
        None
    };
    let legacy = LegacyResources {
        instance_cores: params.raw(&["instanceCores"]).map(|(_, v)| v.clone()),
        instance_memory: params.raw(&["instanceMemory"]).map(|(_, v)| v.clone()),
        instance_gpus: params.raw(&["instanceGPUs"]).map(|(_, v)| v.clone()),
        instance_tpus: params.raw(&["instanceTPUs"]).map(|(_, v)| v.clone()),
    };
    let config = CreationConfig {
        mounts: string_list(params.opt_list(&["mounts"])?, "mounts")?,
        mount_map: string_map(params.opt_object(&["mount_map", "mountMap"])?, "mount_map")?,
        environ: string_map(params.opt_object(&["environ"])?, "environ")?,
        scaling_group: params.opt_string(&["scaling_group", "scalingGroup"])?,
        resources: params.opt_object(&["resources"])?.cloned(),
        resource_opts: params
            .opt_object(&["resource_opts", "resourceOpts"])?
            .cloned()
            .unwrap_or_default(),
        preopen_ports,
        agent_list,
        legacy,
    };
    Ok((config, cluster_size))
}

/// A relative time such as `1h`, `30m`, `1d12h` or `90s`.
pub fn parse_relative_time(text: &str) -> Option<TimeDelta> {
    let mut total = TimeDelta::zero();
    let mut number = String::new();
    let mut seen_unit = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let seconds = match c {
            'w' => value * 604_800.0,
            'd' => value * 86_400.0,
            'h' => value * 3600.0,
            'm' => value * 60.0,
            's' => value,
            _ => return None,
        };
        total += TimeDelta::milliseconds((seconds * 1000.0) as i64);
        seen_unit = true;
    }
    if !number.is_empty() {
        let seconds: f64 = number.parse().ok()?;
        total += TimeDelta::milliseconds((seconds * 1000.0) as i64);
        seen_unit = true;
    }
    seen_unit.then_some(total)
}

/// Reads and checks the whole request.
pub fn parse_creation_request(
    params: &ApiParams,
    version: ApiVersion,
    default_architecture: &str,
    now: DateTime<Utc>,
) -> Result<CreationRequest, Problem> {
    let session_name = params.string(&["name", "clientSessionToken"])?;
    if !is_valid_session_name(&session_name) {
        return Err(invalid_param(
            "name",
            "does not match pattern ^(?=.{4,64}$)\\w[\\w.-]*\\w$",
        ));
    }
    if session_name == "from-template" {
        return Err(Problem::invalid_params(format!(
            "Requested session ID {session_name} is reserved word"
        )));
    }
    let image = params.string(&["image", "lang"])?;
    let architecture = normalize_architecture(
        &params
            .opt_string(&["arch", "architecture"])?
            .unwrap_or_else(|| default_architecture.to_owned()),
    );
    let session_type_text = params
        .opt_string(&["type", "sessionType"])?
        .unwrap_or_else(|| "interactive".to_owned());
    let session_type = SessionType::parse(&session_type_text).ok_or_else(|| {
        invalid_param(
            "type",
            format!("{session_type_text:?} is not interactive or batch"),
        )
    })?;
    let group = params
        .opt_string(&["group", "groupName", "group_name"])?
        .unwrap_or_else(|| "default".to_owned());
    let domain = params
        .opt_string(&["domain", "domainName", "domain_name"])?
        .unwrap_or_else(|| "default".to_owned());
    let mut cluster_size = params.to_int(&["cluster_size", "clusterSize"], 1, 1)?;
    let cluster_mode = params
        .opt_string(&["cluster_mode", "clusterMode"])?
        .unwrap_or_else(|| "single-node".to_owned());
    if cluster_mode != "single-node" && cluster_mode != "multi-node" {
        return Err(invalid_param(
            "cluster_mode",
            "value is not single-node or multi-node",
        ));
    }
    let raw_config = params.opt_object(&["config"])?.cloned().unwrap_or_default();
    let (config, config_cluster_size) = parse_creation_config(&raw_config, version)?;
    if let Some(size) = config_cluster_size.filter(|size| *size >= 1) {
        cluster_size = size;
    }
    let starts_at_text = params.opt_string(&["starts_at", "startsAt"])?;
    let startup_command = params.opt_string(&["startupCommand"])?;
    if session_type == SessionType::Batch && startup_command.as_deref().is_none_or(str::is_empty) {
        return Err(Problem::invalid_params(
            "Batch sessions must have a non-empty startup command.",
        ));
    }
    if session_type != SessionType::Batch && starts_at_text.is_some() {
        return Err(Problem::invalid_params(
            "Parameter starts_at should be used only for batch sessions",
        ));
    }
    let starts_at = starts_at_text
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&Utc))
                .ok()
                .or_else(|| parse_relative_time(&text).map(|delta| now + delta))
                .ok_or_else(|| invalid_param("starts_at", "not an ISO 8601 time or a duration"))
        })
        .transpose()?;
    let dependencies = match params.opt_list(&["dependencies"])? {
        None => Vec::new(),
        Some(list) => string_list(Some(list), "dependencies")?,
    };
    let callback_url = params.opt_string(&["callback_url", "callbackUrl", "callbackURL"])?;
    if let Some(url) = &callback_url {
        check_callback_url(url)?;
    }
    let request = CreationRequest {
        session_name,
        image,
        architecture,
        session_type,
        group,
        domain,
        cluster_size: i32::try_from(cluster_size)
            .map_err(|_| invalid_param("cluster_size", "value is too large"))?,
        cluster_mode,
        config,
        tag: params.opt_string(&["tag"])?,
        enqueue_only: params.to_bool(&["enqueueOnly"], false)?,
        max_wait_seconds: params.to_int(&["maxWaitSeconds"], 0, 0)?,
        starts_at,
        reuse: params.to_bool(&["reuseIfExists"], true)?,
        startup_command,
        bootstrap_script: params.opt_string(&["bootstrap_script", "bootstrapScript"])?,
        dependencies,
        callback_url,
        owner_access_key: params.opt_string(&["owner_access_key"])?,
    };
    check_mount_map(&request.config.mount_map)?;
    Ok(request)
}

/// A `callback_url` must be an absolute http(s) URL with a host.
fn check_callback_url(text: &str) -> Result<(), Problem> {
    let url =
        url::Url::parse(text).map_err(|_| invalid_param("callback_url", "value is not a URL"))?;
    if !CALLBACK_URL_SCHEMES.contains(&url.scheme()) {
        return Err(invalid_param(
            "callback_url",
            format!(
                "the scheme {:?} is not allowed; use http or https",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid_param("callback_url", "the URL has no host"));
    }
    Ok(())
}

/// The alias folders of `mount_map`: unique, not empty, not reserved, not an existing name,
/// and no `..` in a target or a source (`/home/work/../../root` would mount over `/root`).
fn check_mount_map(mount_map: &Map<String, Value>) -> Result<(), Problem> {
    for (source, target) in mount_map {
        if source.split('/').any(|component| component == "..") {
            return Err(invalid_param(
                "mount_map",
                format!("the source {source:?} has a '..' component"),
            ));
        }
        if let Some(target) = target.as_str() {
            container_path(target).map_err(|error| {
                invalid_param(
                    "mount_map",
                    format!("the target of {source:?} is refused: {error}"),
                )
            })?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for alias in mount_map.values().filter_map(Value::as_str) {
        if !seen.insert(alias) {
            return Err(Problem::invalid_params(
                "Duplicate alias folder name exists.",
            ));
        }
        let name = alias.strip_prefix("/home/work/").unwrap_or(alias);
        if name.is_empty() {
            return Err(Problem::invalid_params("Alias name cannot be empty."));
        }
        if is_reserved_folder_name(name) {
            return Err(Problem::invalid_params(format!(
                "{name} is reserved for internal path."
            )));
        }
        if mount_map.contains_key(alias) {
            return Err(Problem::invalid_params(format!(
                "Alias name cannot be set to an existing folder name: {alias}"
            )));
        }
    }
    Ok(())
}

/// The checks on `agent_list`: superadmins only, one agent, or one per container in
/// multi-node mode.
pub fn check_agent_list(
    request: &CreationRequest,
    caller_is_superadmin: bool,
) -> Result<(), Problem> {
    let Some(agents) = &request.config.agent_list else {
        return Ok(());
    };
    if !caller_is_superadmin {
        return Err(Problem::new(ProblemKind::InsufficientPrivilege)
            .with_msg("You are not allowed to manually assign agents for your session."));
    }
    if agents.is_empty() {
        return Ok(());
    }
    if request.cluster_mode == "multi-node" {
        if agents.len() != request.cluster_size as usize {
            return Err(Problem::invalid_params(
                "For multi-node cluster sessions, the number of manually assigned agents must be same to the clsuter size. Note that you may specify duplicate agents in the list.",
            ));
        }
    } else if agents.len() != 1 {
        return Err(Problem::invalid_params(
            "For non-cluster sessions and single-node cluster sessions, you may specify only one manually assigned agent.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V6: ApiVersion = ApiVersion {
        major: 6,
        revision: "20220615",
    };

    /// The body the official client sent in captures/real-manager.http #38.
    fn capture_body() -> Value {
        json!({
            "tag": null, "name": "sess1",
            "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "512m"},
                       "resource_opts": {}, "scalingGroup": null, "mount_map": {}, "preopen_ports": null},
            "dependencies": [], "callback_url": null, "architecture": "x86_64", "clusterSize": 1,
            "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null,
            "owner_access_key": null, "domain": "default", "group": "default", "type": "interactive",
            "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": null,
            "image": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"
        })
    }

    fn parse(body: Value) -> Result<CreationRequest, Problem> {
        let params = ApiParams::from_object(body.as_object().unwrap().clone());
        parse_creation_request(&params, V6, "x86_64", Utc::now())
    }

    #[test]
    fn the_clients_request_parses() {
        let request = parse(capture_body()).unwrap();
        assert_eq!(request.session_name, "sess1");
        assert_eq!(
            request.image,
            "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"
        );
        assert_eq!(request.session_type, SessionType::Interactive);
        assert_eq!(
            (request.group.as_str(), request.domain.as_str()),
            ("default", "default")
        );
        assert_eq!(request.cluster_size, 1);
        assert!(request.enqueue_only && request.reuse);
        assert_eq!(
            Value::Object(request.config.resources.unwrap()),
            json!({"cpu": "1", "mem": "512m"})
        );
        assert!(request.config.scaling_group.is_none());
    }

    #[test]
    fn names_follow_the_pattern() {
        for good in ["sess1", "a_b.c-d", "abcd", &"x".repeat(64)] {
            assert!(is_valid_session_name(good), "{good}");
        }
        for bad in ["abc", "-abc", "abc-", "ab cd", "séss", &"x".repeat(65)] {
            assert!(!is_valid_session_name(bad), "{bad}");
        }
        let mut body = capture_body();
        body["name"] = json!("s1");
        let problem = parse(body).unwrap_err();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(problem.body()["msg"], "Input validation error");
        assert!(problem.body()["data"]["name"].is_string());
    }

    #[test]
    fn batch_options_are_checked() {
        let mut body = capture_body();
        body["type"] = json!("batch");
        assert_eq!(
            parse(body.clone()).unwrap_err().body()["msg"],
            "Batch sessions must have a non-empty startup command."
        );
        body["startupCommand"] = json!("python run.py");
        body["starts_at"] = json!("1h30m");
        let request = parse(body).unwrap();
        let delay = request.starts_at.unwrap() - Utc::now();
        assert!(delay > TimeDelta::minutes(89) && delay <= TimeDelta::minutes(90));
        let mut body = capture_body();
        body["starts_at"] = json!("1h");
        assert_eq!(
            parse(body).unwrap_err().body()["msg"],
            "Parameter starts_at should be used only for batch sessions"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let mut body = capture_body();
        body["config"]["preopen_ports"] = json!([80]);
        assert!(parse(body).unwrap_err().body()["data"]["preopen_ports"].is_string());
        let mut body = capture_body();
        body["maxWaitSeconds"] = json!(-1);
        assert!(parse(body).unwrap_err().body()["data"]["maxWaitSeconds"].is_string());
        let mut body = capture_body();
        body["callback_url"] = json!("not a url");
        assert!(parse(body).unwrap_err().body()["data"]["callback_url"].is_string());
        for refused in ["file:///etc/passwd", "gopher://x/", "http:/", "ftp://h/x"] {
            let mut body = capture_body();
            body["callback_url"] = json!(refused);
            assert!(
                parse(body).unwrap_err().body()["data"]["callback_url"].is_string(),
                "{refused}"
            );
        }
        for allowed in ["http://hooks.example/x", "https://10.0.0.1:8443/cb?a=1"] {
            let mut body = capture_body();
            body["callback_url"] = json!(allowed);
            assert!(parse(body).is_ok(), "{allowed}");
        }
        for escaping in [
            json!({"data": "/home/work/../../root"}),
            json!({"data": "../x"}),
            json!({"data/../..": "x"}),
        ] {
            let mut body = capture_body();
            body["config"]["mount_map"] = escaping.clone();
            assert!(
                parse(body).unwrap_err().body()["data"]["mount_map"].is_string(),
                "{escaping}"
            );
        }
        let mut body = capture_body();
        body["config"]["mount_map"] = json!({"data1": "work", "data2": "work"});
        assert_eq!(
            parse(body).unwrap_err().body()["msg"],
            "Duplicate alias folder name exists."
        );
    }

    #[test]
    fn only_superadmins_assign_agents() {
        let mut body = capture_body();
        body["config"]["agent_list"] = json!(["i-agent1"]);
        let request = parse(body).unwrap();
        assert_eq!(
            check_agent_list(&request, false).unwrap_err().status_code(),
            403
        );
        assert!(check_agent_list(&request, true).is_ok());
        assert_eq!(parse_relative_time("2d"), Some(TimeDelta::days(2)));
        assert_eq!(parse_relative_time("later"), None);
    }
}
