//! `/config`: the known resource slots and vfolder types (public), the registered Docker
//! registries, and raw etcd access for superadmins (`POST /config/get|set|delete`).

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::compat::pyrepr::python_str;
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::etcd_failed;
use crate::facade::state::AppState;

/// The most keys one `POST /config/set` may write (the original's limit).
pub const MAX_KEYS_PER_SET: usize = 16;

/// The etcd prefix of the registered registries.
pub const DOCKER_REGISTRY_PREFIX: &str = "config/docker/registry";

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/config/resource-slots", web::get().to(resource_slots));
    cfg.route("/config/vfolder-types", web::get().to(vfolder_types));
    cfg.route(
        "/config/docker-registries",
        web::get().to(docker_registries).wrap(Access::superadmin()),
    );
    cfg.route(
        "/config/get",
        web::post().to(get_config).wrap(Access::superadmin()),
    );
    cfg.route(
        "/config/set",
        web::post().to(set_config).wrap(Access::superadmin()),
    );
    cfg.route(
        "/config/delete",
        web::post().to(delete_config).wrap(Access::superadmin()),
    );
}

/// `GET /config/resource-slots`: `{slot: unit}`.
async fn resource_slots(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let types = state
        .pipeline
        .slot_types
        .current(&state.etcd)
        .await
        .map_err(etcd_failed(&state, "reading the resource slot types"))?;
    let body: Map<String, Value> = types
        .iter()
        .map(|(slot, unit)| (slot.clone(), Value::String(unit.as_str().to_owned())))
        .collect();
    Ok(reply::json(&body))
}

/// `GET /config/vfolder-types`: the keys of etcd `volumes/_types`, `["user"]` when unset.
async fn vfolder_types(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let types = state
        .etcd
        .get_prefix("volumes/_types")
        .await
        .map_err(etcd_failed(&state, "reading the vfolder types"))?;
    let names: Vec<String> = if types.is_empty() {
        vec!["user".to_owned()]
    } else {
        types.keys().cloned().collect()
    };
    Ok(reply::json(&names))
}

/// The registries registered in etcd: name → URL.
pub fn known_registries(tree: &Map<String, Value>) -> Map<String, Value> {
    tree.iter()
        .filter_map(|(name, value)| {
            let url = match value {
                Value::String(url) => url.clone(),
                Value::Object(fields) => fields.get("")?.as_str()?.to_owned(),
                _ => return None,
            };
            Some((name.clone(), Value::String(url)))
        })
        .collect()
}

/// `GET /config/docker-registries`: `{name: url}`. Credentials are not part of it.
async fn docker_registries(
    _caller: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let tree = state
        .etcd
        .get_prefix(DOCKER_REGISTRY_PREFIX)
        .await
        .map_err(etcd_failed(&state, "reading the registries"))?;
    Ok(reply::json(&known_registries(&tree)))
}

/// `POST /config/get {key, prefix}`: a raw etcd value, or the nested object under a prefix.
async fn get_config(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let key = params.string(&["key"])?;
    let prefix = params.to_bool(&["prefix"], false)?;
    slog::info!(state.log, "ETCD.GET_CONFIG";
        "access_key" => &caller.access_key, "key" => &key, "prefix" => prefix);
    let result = if prefix {
        Value::Object(
            state
                .etcd
                .get_prefix(&key)
                .await
                .map_err(etcd_failed(&state, "reading a prefix"))?,
        )
    } else {
        state
            .etcd
            .get(&key)
            .await
            .map_err(etcd_failed(&state, "reading a key"))?
            .map_or(Value::Null, Value::String)
    };
    Ok(reply::json(&json!({ "result": result })))
}

/// Flattens `value` under `key` as `set_config` does: nested keys joined with `/` as given,
/// a `""` key standing for its parent, leaves written as Python's `str()`.
pub fn flatten_for_set(key: &str, value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, String)>) {
        for (name, value) in object {
            let inner = if name.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            match value {
                Value::Object(nested) => walk(&inner, nested, out),
                leaf => out.push((inner, python_str(leaf))),
            }
        }
    }
    let mut out = Vec::new();
    match value {
        Value::Object(object) => walk(key, object, &mut out),
        leaf => out.push((key.to_owned(), python_str(leaf))),
    }
    out
}

/// `POST /config/set {key, value}`: writes a value, or a nested object (at most 16 keys,
/// in one transaction).
async fn set_config(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let key = params.string(&["key"])?;
    let value = params
        .raw(&["value"])
        .map(|(_, value)| value.clone())
        .ok_or_else(|| crate::facade::params::invalid_param("value", "is required"))?;
    // Values may hold secrets (registry passwords): log the key only.
    slog::info!(state.log, "ETCD.SET_CONFIG"; "access_key" => &caller.access_key, "key" => &key);
    let pairs = flatten_for_set(&key, &value);
    if pairs.len() > MAX_KEYS_PER_SET {
        return Err(Problem::invalid_params(
            "Too large update! Split into smaller key-value pair sets.",
        ));
    }
    state
        .etcd
        .put_many(&pairs)
        .await
        .map_err(etcd_failed(&state, "writing keys"))?;
    Ok(reply::json(&json!({"result": "ok"})))
}

/// `POST /config/delete {key, prefix}`.
async fn delete_config(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let key = params.string(&["key"])?;
    let prefix = params.to_bool(&["prefix"], false)?;
    slog::info!(state.log, "ETCD.DELETE_CONFIG";
        "access_key" => &caller.access_key, "key" => &key, "prefix" => prefix);
    if prefix {
        state
            .etcd
            .delete_prefix(&key)
            .await
            .map_err(etcd_failed(&state, "deleting a prefix"))?;
    } else {
        state
            .etcd
            .delete(&key)
            .await
            .map_err(etcd_failed(&state, "deleting a key"))?;
    }
    Ok(reply::json(&json!({"result": "ok"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_come_with_their_url() {
        let tree = json!({
            "cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2", "password": "pw"},
            "127.0.0.1:25000": "http://127.0.0.1:25000",
        });
        let registries = known_registries(tree.as_object().unwrap());
        assert_eq!(
            Value::Object(registries),
            json!({"cr.backend.ai": "https://cr.backend.ai", "127.0.0.1:25000": "http://127.0.0.1:25000"})
        );
    }

    #[test]
    fn nested_values_flatten_with_the_parent_key() {
        let pairs = flatten_for_set(
            "config/docker/registry/r1",
            &json!({"": "http://r1", "type": "docker", "n": {"x": 1, "y": true}}),
        );
        assert_eq!(
            pairs,
            vec![
                (
                    "config/docker/registry/r1".to_owned(),
                    "http://r1".to_owned()
                ),
                (
                    "config/docker/registry/r1/type".to_owned(),
                    "docker".to_owned()
                ),
                ("config/docker/registry/r1/n/x".to_owned(), "1".to_owned()),
                (
                    "config/docker/registry/r1/n/y".to_owned(),
                    "True".to_owned()
                ),
            ]
        );
        assert_eq!(
            flatten_for_set("a/b", &json!(3)),
            vec![("a/b".to_owned(), "3".to_owned())]
        );
    }
}
