//! `POST /session/_/create-from-template`: a session from a stored session template, as the
//! original's `create_from_template`. The template gives the image, architecture, session
//! type, tag, bootstrap script, startup command, scaling group, mounts, environment,
//! resources and agent list (and its project as the group); the request's own parameters and
//! `config` keys override them; the merged request then goes through `POST /session`'s
//! creation path unchanged.

use actix_web::{HttpResponse, web};
use bai_schema::enums::TemplateType;
use bai_schema::queries::session_template::find_template;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::create;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::Problem;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::session::control::SessionQueue;
use crate::facade::state::AppState;
use crate::storage::StorageBroker;

/// The creation parameters a template gives, before the request's overrides: `domain` and
/// `group` are the template's project when it has one.
pub fn template_params(
    template: &Value,
    domain_name: &str,
    group_name: Option<&str>,
) -> Result<Map<String, Value>, Problem> {
    let bad = |what: &str| Problem::invalid_params(format!("The template has no valid {what}"));
    let spec = template.get("spec").ok_or_else(|| bad("spec"))?;
    let kernel = spec.get("kernel").ok_or_else(|| bad("spec.kernel"))?;
    let image = kernel
        .get("image")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("spec.kernel.image"))?;
    let mut params = Map::new();
    params.insert("image".into(), json!(image));
    if let Some(arch) = kernel.get("architecture").filter(|a| a.is_string()) {
        params.insert("architecture".into(), arch.clone());
    }
    params.insert("domain".into(), json!(domain_name));
    if let Some(group) = group_name {
        params.insert("group".into(), json!(group));
    }
    if let Some(kind @ ("interactive" | "batch")) = spec.get("session_type").and_then(Value::as_str)
    {
        params.insert("type".into(), json!(kind));
    }
    let truthy = |v: &&Value| !v.is_null() && v.as_str() != Some("");
    if let Some(tag) = template.pointer("/metadata/tag").filter(truthy) {
        params.insert("tag".into(), tag.clone());
    }
    if let Some(bootstrap) = kernel.pointer("/run/bootstrap").filter(truthy) {
        params.insert("bootstrap_script".into(), bootstrap.clone());
    }
    if let Some(startup) = kernel.pointer("/run/startup_command").filter(truthy) {
        params.insert("startupCommand".into(), startup.clone());
    }
    let mut config = Map::new();
    if let Some(group) = spec.get("scaling_group").filter(truthy) {
        config.insert("scaling_group".into(), group.clone());
    }
    if let Some(mounts) = spec.get("mounts").and_then(Value::as_object)
        && !mounts.is_empty()
    {
        config.insert("mounts".into(), json!(mounts.keys().collect::<Vec<_>>()));
        let mount_map: Map<String, Value> = mounts
            .iter()
            .filter(|(_, target)| target.as_str().is_some_and(|t| !t.is_empty()))
            .map(|(name, target)| (name.clone(), target.clone()))
            .collect();
        config.insert("mount_map".into(), Value::Object(mount_map));
    }
    if let Some(environ) = kernel.get("environ").filter(|e| e.is_object()) {
        config.insert("environ".into(), environ.clone());
    }
    if let Some(resources) = spec.get("resources").filter(|r| r.is_object()) {
        config.insert("resources".into(), resources.clone());
    }
    if let Some(agents) = spec.get("agent_list") {
        config.insert("agent_list".into(), agents.clone());
    }
    params.insert("config".into(), Value::Object(config));
    Ok(params)
}

/// The template's parameters with the request's on top (`config` merged key by key).
pub fn merge_overrides(
    mut base: Map<String, Value>,
    overrides: &Map<String, Value>,
) -> Map<String, Value> {
    for (key, value) in overrides {
        if matches!(key.as_str(), "template_id" | "templateId") || value.is_null() {
            continue;
        }
        if key == "config"
            && let (Some(Value::Object(config)), Value::Object(extra)) =
                (base.get_mut("config"), value)
        {
            for (k, v) in extra {
                config.insert(k.clone(), v.clone());
            }
            continue;
        }
        base.insert(key.clone(), value.clone());
    }
    base
}

/// `POST /session/_/create-from-template`.
pub async fn create_from_template(
    caller: Authenticated,
    params: ApiParams,
    version: ApiVersion,
    state: web::Data<AppState>,
    storage: Option<web::Data<StorageBroker>>,
    queue: Option<web::Data<SessionQueue>>,
) -> Result<HttpResponse, Problem> {
    let template_id = params
        .opt_string(&["template_id", "templateId"])?
        .ok_or_else(|| Problem::invalid_params("Both image and template_id can't be None!"))?;
    let template_id = Uuid::parse_str(&template_id)
        .map_err(|_| invalid_param("template_id", "value is not a valid UUID"))?;
    let client = db_client(&state).await?;
    let row = find_template(&client, template_id, TemplateType::Task)
        .await
        .map_err(query_failed(&state, "looking up the session template"))?
        .ok_or_else(|| Problem::not_found("task template"))?;
    drop(client);
    let base = template_params(&row.template, &row.domain_name, row.group_name.as_deref())?;
    let merged = merge_overrides(base, params.values());
    create::create(
        caller,
        ApiParams::from_object(merged),
        version,
        state,
        storage,
        queue,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_overrides_the_template_key_by_key() {
        let template = json!({
            "metadata": {"name": "t", "tag": "nightly"},
            "spec": {
                "session_type": "batch", "scaling_group": "default",
                "mounts": {"data": "/home/work/data", "plain": ""},
                "resources": {"cpu": "1"},
                "kernel": {"image": "python:3.9", "environ": {"A": "1"},
                           "run": {"bootstrap": null, "startup_command": "run.sh"}},
            },
        });
        let base = template_params(&template, "default", Some("proj")).unwrap();
        assert_eq!(base["image"], "python:3.9");
        assert_eq!(base["type"], "batch");
        assert_eq!(base["group"], "proj");
        assert_eq!(base["tag"], "nightly");
        assert_eq!(base["startupCommand"], "run.sh");
        assert!(base.get("bootstrap_script").is_none());
        assert_eq!(base["config"]["mounts"], json!(["data", "plain"]));
        assert_eq!(
            base["config"]["mount_map"],
            json!({"data": "/home/work/data"})
        );
        let overrides = json!({"template_id": "x", "name": "mine", "image": null,
                               "config": {"resources": {"cpu": "2"}}});
        let merged = merge_overrides(base, overrides.as_object().unwrap());
        assert_eq!(merged["name"], "mine");
        assert_eq!(merged["image"], "python:3.9");
        assert!(merged.get("template_id").is_none());
        assert_eq!(merged["config"]["resources"], json!({"cpu": "2"}));
        assert_eq!(merged["config"]["environ"], json!({"A": "1"}));
        assert!(template_params(&json!({"spec": {}}), "default", None).is_err());
    }
}
