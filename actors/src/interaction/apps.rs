//! The apps a kernel serves (`kernels.service_ports`) and where a proxy stream to one of them
//! connects: the list `GET /stream/session/{name}/apps` answers and the host and port the
//! tcpproxy/httpproxy streams dial, decided without I/O.

use serde_json::{Value as Json, json};

use super::error::InteractionError;

/// The service list as the original's `get_stream_apps`: `name`, `protocol`, `ports` (the
/// container ports) and the optional `url_template`, `allowed_arguments`, `allowed_envs`.
pub fn app_list(service_ports: Option<&Json>) -> Json {
    let Some(Json::Array(ports)) = service_ports else {
        return json!([]);
    };
    let apps = ports
        .iter()
        .filter_map(|port| {
            let mut app = serde_json::Map::new();
            app.insert("name".into(), port.get("name")?.clone());
            app.insert(
                "protocol".into(),
                port.get("protocol").cloned().unwrap_or(Json::Null),
            );
            app.insert(
                "ports".into(),
                port.get("container_ports").cloned().unwrap_or(json!([])),
            );
            for optional in ["url_template", "allowed_arguments", "allowed_envs"] {
                if let Some(value) = port.get(optional) {
                    app.insert(optional.into(), value.clone());
                }
            }
            Some(Json::Object(app))
        })
        .collect();
    Json::Array(apps)
}

/// Where a proxy stream to an app connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDestination {
    pub host: String,
    pub port: u16,
    /// `tcp`, `http` or `preopen` (all relayed as plain TCP, as the original's `TCPProxy`).
    pub protocol: String,
}

/// The kernel's host: `kernels.kernel_host`, or the agent's RPC host when the agent did not
/// report one (the original's `urlparse(agent_addr).hostname`).
pub fn kernel_host(kernel_host: Option<&str>, agent_addr: Option<&str>) -> Option<String> {
    if let Some(host) = kernel_host.filter(|host| !host.is_empty()) {
        return Some(host.to_owned());
    }
    let url = url::Url::parse(agent_addr?).ok()?;
    url.host_str()
        .map(|host| host.trim_matches(['[', ']']).to_owned())
}

/// The destination of `service` (and of its container `port` when given, for apps with
/// several ports), as the original's `stream_proxy` picks it.
pub fn app_destination(
    service_ports: Option<&Json>,
    host: &str,
    service: &str,
    port: Option<u16>,
) -> Result<AppDestination, InteractionError> {
    let not_found = || InteractionError::AppNotFound(service.to_owned());
    let ports = service_ports
        .and_then(Json::as_array)
        .ok_or_else(not_found)?;
    let entry = ports
        .iter()
        .find(|entry| entry.get("name").and_then(Json::as_str) == Some(service))
        .ok_or_else(not_found)?;
    let host_ports = entry.get("host_ports").and_then(Json::as_array);
    let host_port = match (port, host_ports) {
        (Some(wanted), Some(host_ports)) => {
            let container_ports = entry
                .get("container_ports")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let index = container_ports
                .iter()
                .position(|p| p.as_u64() == Some(u64::from(wanted)))
                .ok_or_else(|| {
                    InteractionError::BadParameter(format!(
                        "Service {service} does not open the port number {wanted}."
                    ))
                })?;
            host_ports.get(index).and_then(Json::as_u64)
        }
        (None, Some(host_ports)) => host_ports.first().and_then(Json::as_u64),
        // Kernels of old agents carry one `host_port`.
        (_, None) => entry.get("host_port").and_then(Json::as_u64),
    };
    let port = host_port
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            InteractionError::BadParameter(format!("Service {service} has no host port to reach"))
        })?;
    let protocol = entry
        .get("protocol")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    if !matches!(protocol.as_str(), "tcp" | "http" | "preopen") {
        return Err(InteractionError::BadParameter(format!(
            "Unsupported service protocol: {protocol}"
        )));
    }
    Ok(AppDestination {
        host: host.to_owned(),
        port,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Json {
        json!([
            {"name": "jupyter", "protocol": "http", "container_ports": [8081],
             "host_ports": [30001], "url_template": "http://{host}:{port}/"},
            {"name": "multi", "protocol": "tcp", "container_ports": [2000, 2001],
             "host_ports": [30002, 30003]},
            {"name": "ttyd", "protocol": "pty", "container_ports": [7681], "host_ports": [30004]},
            {"name": "legacy", "protocol": "tcp", "container_ports": [22], "host_port": 30005},
        ])
    }

    #[test]
    fn the_app_list_shows_container_ports_and_the_optional_keys() {
        let list = app_list(Some(&ports()));
        assert_eq!(list[0]["name"], "jupyter");
        assert_eq!(list[0]["ports"], json!([8081]));
        assert_eq!(list[0]["url_template"], "http://{host}:{port}/");
        assert!(list[0].get("host_ports").is_none());
        assert!(list[1].get("url_template").is_none());
        assert_eq!(app_list(None), json!([]));
        assert_eq!(app_list(Some(&Json::Null)), json!([]));
    }

    #[test]
    fn the_destination_is_the_host_port_of_the_service() {
        let ports = ports();
        let jupyter = app_destination(Some(&ports), "10.0.0.2", "jupyter", None).unwrap();
        assert_eq!((jupyter.host.as_str(), jupyter.port), ("10.0.0.2", 30001));
        let second = app_destination(Some(&ports), "h", "multi", Some(2001)).unwrap();
        assert_eq!(second.port, 30003);
        assert!(matches!(
            app_destination(Some(&ports), "h", "multi", Some(9999)),
            Err(InteractionError::BadParameter(_))
        ));
        assert_eq!(
            app_destination(Some(&ports), "h", "legacy", None)
                .unwrap()
                .port,
            30005
        );
        assert!(matches!(
            app_destination(Some(&ports), "h", "nope", None),
            Err(InteractionError::AppNotFound(_))
        ));
        assert!(matches!(
            app_destination(Some(&ports), "h", "ttyd", None),
            Err(InteractionError::BadParameter(_))
        ));
    }

    #[test]
    fn the_kernel_host_falls_back_to_the_agent_host() {
        assert_eq!(
            kernel_host(Some("10.1.1.1"), Some("tcp://10.0.0.1:6001")).as_deref(),
            Some("10.1.1.1")
        );
        assert_eq!(
            kernel_host(None, Some("tcp://10.0.0.1:6001")).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(kernel_host(Some(""), None), None);
    }
}
