//! Validation of session (task) and cluster templates, as the original's `task_template_v1`
//! and `cluster_template_v1` trafaret schemas: required keys, aliases folded into their
//! canonical names, defaults filled in, reserved mount paths refused. Pure functions.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::storage::permissions::{NameError, check_folder_name};

/// What is wrong with a template, naming the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn err(message: impl Into<String>) -> TemplateError {
    TemplateError(message.into())
}

fn object<'a>(value: &'a Value, key: &str) -> Result<&'a Map<String, Value>, TemplateError> {
    value
        .as_object()
        .ok_or_else(|| err(format!("{key}: value is not a dict")))
}

/// The first of `keys` present (an aliased key).
fn aliased<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| map.get(*k))
}

fn required_string(
    map: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<String, TemplateError> {
    match aliased(map, keys) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(format!("{path}: value is not a string"))),
        None => Err(err(format!("{path}: is required"))),
    }
}

fn optional_string(
    map: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<Value, TemplateError> {
    match aliased(map, keys) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) => Ok(json!(s)),
        Some(_) => Err(err(format!("{path}: value is not a string"))),
    }
}

fn string_map(map: &Map<String, Value>, key: &str, path: &str) -> Result<Value, TemplateError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(entries)) => {
            if entries.values().all(Value::is_string) {
                Ok(Value::Object(entries.clone()))
            } else {
                Err(err(format!("{path}: values must be strings")))
            }
        }
        Some(_) => Err(err(format!("{path}: value is not a dict"))),
    }
}

/// `mounts`: folder name → path in the container; reserved names are refused.
fn mounts(map: &Map<String, Value>) -> Result<Value, TemplateError> {
    let Some(value) = map.get("mounts").filter(|v| !v.is_null()) else {
        return Ok(json!({}));
    };
    let entries = object(value, "spec.mounts")?;
    for path in entries.values() {
        let Some(path) = path.as_str() else { continue };
        let path = path.strip_prefix("/home/work/").unwrap_or(path);
        if let Err(NameError::Reserved(_)) = check_folder_name(path) {
            return Err(err(format!(
                "Path {path} is reserved for internal operations."
            )));
        }
    }
    Ok(value.clone())
}

/// The original's `check_task_template`: the normalized template.
pub fn check_task_template(raw: &Value) -> Result<Value, TemplateError> {
    let top = object(raw, "template")?;
    let api_version = required_string(top, &["api_version", "apiVersion"], "api_version")?;
    let kind = required_string(top, &["kind"], "kind")?;
    if kind != "taskTemplate" && kind != "task_template" {
        return Err(err("kind: value doesn't match any variant"));
    }
    let metadata = object(top.get("metadata").unwrap_or(&Value::Null), "metadata")?;
    let name = required_string(metadata, &["name"], "metadata.name")?;
    let tag = optional_string(metadata, &["tag"], "metadata.tag")?;
    let spec = object(top.get("spec").unwrap_or(&Value::Null), "spec")?;
    let session_type = match aliased(spec, &["type", "session_type", "sessionType"]) {
        None | Some(Value::Null) => "interactive".to_owned(),
        Some(Value::String(s)) if matches!(s.to_lowercase().as_str(), "interactive" | "batch") => {
            s.to_lowercase()
        }
        Some(_) => return Err(err("spec.session_type: value is not a valid session type")),
    };
    let kernel = object(spec.get("kernel").unwrap_or(&Value::Null), "spec.kernel")?;
    let image = required_string(kernel, &["image"], "spec.kernel.image")?;
    let architecture = match optional_string(kernel, &["architecture"], "spec.kernel.architecture")?
    {
        Value::Null => json!("x86_64"),
        other => other,
    };
    let run = match kernel.get("run").filter(|v| !v.is_null()) {
        None => Value::Null,
        Some(value) => {
            let run = object(value, "spec.kernel.run")?;
            json!({
                "bootstrap": optional_string(run, &["bootstrap"], "spec.kernel.run.bootstrap")?,
                "startup_command": optional_string(
                    run,
                    &["startup", "startup_command", "startupCommand"],
                    "spec.kernel.run.startup_command",
                )?,
            })
        }
    };
    let git = match kernel.get("git").filter(|v| !v.is_null()) {
        None => Value::Null,
        Some(value) => {
            let git = object(value, "spec.kernel.git")?;
            json!({
                "repository": required_string(git, &["repository"], "spec.kernel.git.repository")?,
                "commit": optional_string(git, &["commit"], "spec.kernel.git.commit")?,
                "branch": optional_string(git, &["branch"], "spec.kernel.git.branch")?,
                "credential": git.get("credential").cloned().unwrap_or(Value::Null),
                "dest_dir": optional_string(
                    git,
                    &["destination_dir", "destinationDir"],
                    "spec.kernel.git.dest_dir",
                )?,
            })
        }
    };
    let agent_list = match aliased(spec, &["agent_list", "agentList"]) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => json!(items),
        Some(_) => return Err(err("spec.agent_list: value is not a list of strings")),
    };
    let resources = match spec.get("resources") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => return Err(err("spec.resources: value is not a dict")),
    };
    Ok(json!({
        "api_version": api_version,
        "kind": kind,
        "metadata": {"name": name, "tag": tag},
        "spec": {
            "session_type": session_type,
            "kernel": {
                "image": image,
                "architecture": architecture,
                "environ": string_map(kernel, "environ", "spec.kernel.environ")?,
                "run": run,
                "git": git,
            },
            "scaling_group": optional_string(spec, &["scaling_group"], "spec.scaling_group")?,
            "mounts": mounts(spec)?,
            "resources": resources,
            "agent_list": agent_list,
        },
    }))
}

/// The original's `check_cluster_template`: the normalized template.
pub fn check_cluster_template(raw: &Value) -> Result<Value, TemplateError> {
    let top = object(raw, "template")?;
    let api_version = required_string(top, &["api_version", "apiVersion"], "api_version")?;
    let kind = required_string(top, &["kind"], "kind")?;
    if kind != "clusterTemplate" && kind != "cluster_template" {
        return Err(err("kind: value doesn't match any variant"));
    }
    let mode = required_string(top, &["mode"], "mode")?;
    if mode != "single-node" && mode != "multi-node" {
        return Err(err("mode: value doesn't match any variant"));
    }
    let metadata = object(top.get("metadata").unwrap_or(&Value::Null), "metadata")?;
    let name = required_string(metadata, &["name"], "metadata.name")?;
    let spec = object(top.get("spec").unwrap_or(&Value::Null), "spec")?;
    let nodes = spec
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| err("spec.nodes: is required and must be a list"))?;
    let mut checked_nodes = Vec::new();
    for node in nodes {
        let node = object(node, "spec.nodes[]")?;
        let role = required_string(node, &["role"], "spec.nodes[].role")?;
        let template = required_string(
            node,
            &["session_template", "sessionTemplate"],
            "spec.nodes[].session_template",
        )?;
        let template = Uuid::parse_str(&template)
            .map_err(|_| err("spec.nodes[].session_template: value is not a valid UUID"))?;
        let replicas = match node.get("replicas") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_i64()
                .ok_or_else(|| err("spec.nodes[].replicas: value is not an integer"))?,
        };
        checked_nodes.push(json!({
            "role": role, "session_template": template.to_string(), "replicas": replicas,
        }));
    }
    Ok(json!({
        "api_version": api_version,
        "kind": kind,
        "mode": mode,
        "metadata": {"name": name},
        "spec": {
            "environ": string_map(spec, "environ", "spec.environ")?,
            "mounts": mounts(spec)?,
            "nodes": checked_nodes,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_templates_are_normalized_with_the_originals_defaults() {
        let raw = json!({
            "apiVersion": "v1", "kind": "taskTemplate",
            "metadata": {"name": "py"},
            "spec": {"kernel": {"image": "python:3.9", "run": {"startupCommand": "ls"}},
                     "mounts": {"data": "/home/work/data"}},
        });
        let checked = check_task_template(&raw).unwrap();
        assert_eq!(checked["api_version"], "v1");
        assert_eq!(checked["spec"]["session_type"], "interactive");
        assert_eq!(checked["spec"]["kernel"]["architecture"], "x86_64");
        assert_eq!(checked["spec"]["kernel"]["run"]["startup_command"], "ls");
        assert_eq!(checked["spec"]["kernel"]["environ"], json!({}));
        let mut bad = raw.clone();
        bad["spec"]["mounts"] = json!({"x": "/home/work/.ssh"});
        assert!(
            check_task_template(&bad)
                .unwrap_err()
                .0
                .contains("reserved")
        );
        let mut no_image = raw.clone();
        no_image["spec"]["kernel"] = json!({});
        assert_eq!(
            check_task_template(&no_image).unwrap_err().0,
            "spec.kernel.image: is required"
        );
        assert!(check_task_template(&json!({"kind": "x"})).is_err());
    }

    #[test]
    fn cluster_templates_need_nodes_with_template_ids() {
        let id = Uuid::new_v4().to_string();
        let raw = json!({
            "api_version": "v1", "kind": "clusterTemplate", "mode": "multi-node",
            "metadata": {"name": "c"},
            "spec": {"nodes": [{"role": "main", "sessionTemplate": id}]},
        });
        let checked = check_cluster_template(&raw).unwrap();
        assert_eq!(checked["spec"]["nodes"][0]["replicas"], 1);
        assert_eq!(checked["spec"]["nodes"][0]["session_template"], id);
        let mut bad = raw.clone();
        bad["spec"]["nodes"][0]["sessionTemplate"] = json!("nope");
        assert!(check_cluster_template(&bad).is_err());
    }
}
