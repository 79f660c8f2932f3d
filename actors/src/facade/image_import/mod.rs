//! `POST /image/import` as the original's `import_image`: the request becomes a batch session
//! of the configured importer image (`[manager] importer-image`), whose `/root/build-image.sh`
//! builds `TARGET_IMAGE` from `SRC_IMAGE` with the rendered Dockerfile in `BUILD_SCRIPT`. The
//! session goes through `POST /session`'s creation path, with the importer's internal data
//! (the registries' credentials, the Docker socket) that clients cannot ask for themselves.

pub mod dockerfile;
pub mod request;

use base64::Engine;
use serde_json::{Map, Value, json};

use request::ImportRequest;

use crate::compat::token::token_urlsafe;

/// What the importer image runs.
pub const BUILD_COMMAND: &str = "/root/build-image.sh";
/// The import task's resources, as the original's.
const TASK_CPU: &str = "1";
const TASK_MEMORY: &str = "2g";

/// A registry's login from etcd `config/docker/registry/{registry}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `image-import-` and 11 URL-safe characters, as `secrets.token_urlsafe(8)`.
pub fn new_session_name() -> String {
    format!("image-import-{}", token_urlsafe::<8>())
}

/// The creation parameters of the import's batch session.
pub fn session_params(
    request: &ImportRequest,
    session_name: &str,
    importer_image: &str,
    domain_name: &str,
    src_canonical: &str,
    target_canonical: &str,
) -> Map<String, Value> {
    let script = dockerfile::render(&request.dockerfile);
    let build_script = base64::engine::general_purpose::STANDARD.encode(script);
    let params = json!({
        "name": session_name,
        "image": importer_image,
        "architecture": request.architecture,
        "type": "batch",
        "domain": domain_name,
        "group": request.group,
        "startupCommand": BUILD_COMMAND,
        "enqueueOnly": true,
        "reuseIfExists": false,
        "config": {
            "scaling_group": request.scaling_group,
            "resources": {"cpu": TASK_CPU, "mem": TASK_MEMORY},
            "environ": {
                "SRC_IMAGE": src_canonical,
                "TARGET_IMAGE": target_canonical,
                "RUNTIME_PATH": request.runtime_path,
                "BUILD_SCRIPT": build_script,
            },
        },
    });
    match params {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The kernel's internal data: the agent lends the container its Docker socket and the
/// registries' logins, mounts no folders and opens no service ports.
pub fn internal_data(logins: &[(String, RegistryLogin)]) -> Map<String, Value> {
    let credentials: Map<String, Value> = logins
        .iter()
        .map(|(registry, login)| {
            (
                registry.clone(),
                json!({"username": login.username, "password": login.password}),
            )
        })
        .collect();
    let data = json!({
        "domain_socket_proxies": ["/var/run/docker.sock"],
        "docker_credentials": credentials,
        "prevent_vfolder_mounts": true,
        "block_service_ports": true,
    });
    match data {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facade::params::ApiParams;

    #[test]
    fn the_session_carries_the_build_as_the_original() {
        let params = json!({
            "src": "index.docker.io/lablup/python:3.9", "target": "127.0.0.1:5000/x/py:1",
            "brand": "Py", "baseDistro": "ubuntu", "supportedAccelerators": [],
            "runtimeType": "python", "runtimePath": "/usr/bin/python3", "CPUCountEnvs": [],
            "launchOptions": {"scalingGroup": "gpu", "group": "research"},
        });
        let Value::Object(params) = params else {
            unreachable!("an object literal")
        };
        let request = request::parse_import_request(&ApiParams::from_object(params)).unwrap();
        let name = new_session_name();
        assert_eq!(name.len(), "image-import-".len() + 11);
        let session = session_params(
            &request,
            &name,
            "index.docker.io/lablup/importer:manylinux2010",
            "default",
            "index.docker.io/lablup/python:3.9",
            "127.0.0.1:5000/x/py:1",
        );
        assert_eq!(session["type"], "batch");
        assert_eq!(session["group"], "research");
        assert_eq!(session["config"]["scaling_group"], "gpu");
        assert_eq!(session["startupCommand"], BUILD_COMMAND);
        let environ = &session["config"]["environ"];
        assert_eq!(environ["TARGET_IMAGE"], "127.0.0.1:5000/x/py:1");
        let script = base64::engine::general_purpose::STANDARD
            .decode(environ["BUILD_SCRIPT"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(script).unwrap(),
            dockerfile::render(&request.dockerfile)
        );
        let data = internal_data(&[(
            "127.0.0.1:5000".to_owned(),
            RegistryLogin {
                username: Some("u".into()),
                password: None,
            },
        )]);
        assert_eq!(
            data["docker_credentials"]["127.0.0.1:5000"],
            json!({"username": "u", "password": null})
        );
        assert_eq!(data["block_service_ports"], true);
    }
}
