//! The parameters of `POST /image/import`, checked as the original's trafaret schema does, plus
//! what it left unchecked: every string that lands in the Dockerfile must stay on its line and
//! inside its quotes, so a request cannot add build steps.

use bai_schema::slots::parse_binary_size;
use serde_json::{Map, Value};

use super::dockerfile::{DockerfileSpec, ServicePort};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;

/// The original's `DEFAULT_IMAGE_ARCH`.
pub const DEFAULT_ARCHITECTURE: &str = "x86_64";
const DEFAULT_SIZE: &str = "64m";
/// Generous bounds on lists nobody needs long.
const MAX_LIST_ITEMS: usize = 64;

/// A checked import request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    pub src: String,
    pub target: String,
    pub architecture: String,
    pub scaling_group: String,
    pub group: String,
    pub runtime_path: String,
    pub dockerfile: DockerfileSpec,
}

/// Text that may sit inside a double-quoted Dockerfile value: no control characters, quotes or
/// backslashes.
fn quotable(key: &str, text: String) -> Result<String, Problem> {
    if text.is_empty() {
        return Err(invalid_param(key, "is empty"));
    }
    if text
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(invalid_param(
            key,
            "contains a control character, a quote or a backslash",
        ));
    }
    Ok(text)
}

/// An image reference or a label word: no whitespace or Dockerfile quoting.
fn word(key: &str, text: String) -> Result<String, Problem> {
    let text = quotable(key, text)?;
    if text.chars().any(char::is_whitespace) {
        return Err(invalid_param(key, "contains whitespace"));
    }
    Ok(text)
}

fn one_of(key: &str, text: String, choices: &[&str]) -> Result<String, Problem> {
    if choices.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(invalid_param(
            key,
            format!("value doesn't match any variant of {}", choices.join(", ")),
        ))
    }
}

fn size(params: &ApiParams, key: &str) -> Result<u64, Problem> {
    let text = match params.raw(&[key]) {
        None | Some((_, Value::Null)) => DEFAULT_SIZE.to_owned(),
        Some((_, Value::String(text))) => text.clone(),
        Some((_, Value::Number(number))) => number.to_string(),
        Some(_) => return Err(invalid_param(key, "value is not a valid binary size")),
    };
    parse_binary_size(&text).map_err(|_| invalid_param(key, "value is not a valid binary size"))
}

fn string_list(params: &ApiParams, key: &str) -> Result<Vec<String>, Problem> {
    let list = params
        .opt_list(&[key])?
        .ok_or_else(|| invalid_param(key, "is required"))?;
    if list.len() > MAX_LIST_ITEMS {
        return Err(invalid_param(
            key,
            format!("has more than {MAX_LIST_ITEMS} items"),
        ));
    }
    list.iter()
        .map(|item| match item {
            Value::String(text) => word(key, text.clone()),
            _ => Err(invalid_param(key, "value is not a string")),
        })
        .collect()
}

/// An absolute path, normalized as `PurePosixPath` prints it; relative paths and `..` are
/// refused, since the importer runs it as the build's interpreter.
fn runtime_path(text: String) -> Result<String, Problem> {
    let key = "runtimePath";
    let text = word(key, text)?;
    if !text.starts_with('/') {
        return Err(invalid_param(key, "is not an absolute path"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid_param(key, "contains \"..\"")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(invalid_param(key, "is not a file path"));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn service_port(item: &Value) -> Result<ServicePort, Problem> {
    let key = "servicePorts";
    let entry = item
        .as_object()
        .ok_or_else(|| invalid_param(key, "value is not a dict"))?;
    let field = |name: &str| -> Result<String, Problem> {
        match entry.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(invalid_param(key, format!("{name}: value is not a string"))),
            None => Err(invalid_param(key, format!("{name}: is required"))),
        }
    };
    let name = field("name")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid_param(
            key,
            "name: only letters, digits, '-', '_' and '.' are allowed",
        ));
    }
    let protocol = one_of(key, field("protocol")?, &["http", "tcp", "pty"])?;
    let ports = match entry.get("ports") {
        Some(Value::Array(ports)) if !ports.is_empty() && ports.len() <= MAX_LIST_ITEMS => ports,
        Some(Value::Array(_)) => {
            return Err(invalid_param(
                key,
                format!("ports: needs 1 to {MAX_LIST_ITEMS} ports"),
            ));
        }
        _ => return Err(invalid_param(key, "ports: value is not a list")),
    };
    let ports = ports
        .iter()
        .map(|port| {
            port.as_u64()
                .filter(|p| (1..=65535).contains(p))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| invalid_param(key, "ports: each port is an integer 1-65535"))
        })
        .collect::<Result<Vec<u16>, Problem>>()?;
    Ok(ServicePort {
        name,
        protocol,
        ports,
    })
}

fn launch_option(options: Option<&Map<String, Value>>, key: &str) -> Result<String, Problem> {
    match options.and_then(|o| o.get(key)) {
        None | Some(Value::Null) => Ok("default".to_owned()),
        Some(Value::String(text)) => word(&format!("launchOptions.{key}"), text.clone()),
        Some(_) => Err(invalid_param(
            &format!("launchOptions.{key}"),
            "value is not a string",
        )),
    }
}

/// Checks `params` as the original's `import_image` schema.
pub fn parse_import_request(params: &ApiParams) -> Result<ImportRequest, Problem> {
    let src = word("src", params.string(&["src"])?)?;
    let target = word("target", params.string(&["target"])?)?;
    let architecture = word(
        "architecture",
        params
            .opt_string(&["architecture"])?
            .unwrap_or_else(|| DEFAULT_ARCHITECTURE.to_owned()),
    )?;
    let options = params.opt_object(&["launchOptions"])?;
    let brand = quotable("brand", params.string(&["brand"])?)?;
    let base_distro = one_of(
        "baseDistro",
        params.string(&["baseDistro"])?,
        &["ubuntu", "centos"],
    )?;
    let min_cpu = params.to_int(&["minCPU"], 1, 1)?;
    let accelerators = string_list(params, "supportedAccelerators")?;
    one_of("runtimeType", params.string(&["runtimeType"])?, &["python"])?;
    let runtime_path = runtime_path(params.string(&["runtimePath"])?)?;
    // Required as in the original, which then renders its fixed list.
    string_list(params, "CPUCountEnvs")?;
    let service_ports = match params.opt_list(&["servicePorts"])? {
        None => Vec::new(),
        Some(list) if list.len() > MAX_LIST_ITEMS => {
            return Err(invalid_param(
                "servicePorts",
                format!("has more than {MAX_LIST_ITEMS} items"),
            ));
        }
        Some(list) => list.iter().map(service_port).collect::<Result<_, _>>()?,
    };
    Ok(ImportRequest {
        dockerfile: DockerfileSpec {
            src: src.clone(),
            brand,
            base_distro,
            min_cpu,
            min_memory_bytes: size(params, "minMemory")?,
            preferred_shmem_bytes: size(params, "preferredSharedMemory")?,
            accelerators,
            runtime_path: runtime_path.clone(),
            service_ports,
        },
        src,
        target,
        architecture,
        scaling_group: launch_option(options, "scalingGroup")?,
        group: launch_option(options, "group")?,
        runtime_path,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(value: Value) -> ApiParams {
        match value {
            Value::Object(map) => ApiParams::from_object(map),
            _ => unreachable!("the tests pass objects"),
        }
    }

    fn valid() -> Value {
        json!({
            "src": "index.docker.io/lablup/tensorflow:2.0-source",
            "target": "127.0.0.1:5000/lablup/tensorflow:2.0",
            "brand": "TensorFlow 2.0",
            "baseDistro": "ubuntu",
            "supportedAccelerators": ["cuda"],
            "runtimeType": "python",
            "runtimePath": "/usr//local/bin/./python",
            "CPUCountEnvs": ["NPROC"],
            "servicePorts": [{"name": "jupyter", "protocol": "http", "ports": [8080]}],
            "launchOptions": {"group": "research"},
        })
    }

    #[test]
    fn a_valid_request_gets_the_originals_defaults() {
        let request = parse_import_request(&params(valid())).unwrap();
        assert_eq!(request.architecture, "x86_64");
        assert_eq!(request.scaling_group, "default");
        assert_eq!(request.group, "research");
        assert_eq!(request.runtime_path, "/usr/local/bin/python");
        assert_eq!(request.dockerfile.min_cpu, 1);
        assert_eq!(request.dockerfile.min_memory_bytes, 64 << 20);
        assert_eq!(request.dockerfile.preferred_shmem_bytes, 64 << 20);
        assert_eq!(request.dockerfile.service_ports[0].ports, vec![8080]);
    }

    /// The problem's data names the parameter that failed.
    fn failing_key(mut change: impl FnMut(&mut Map<String, Value>)) -> String {
        let mut value = valid();
        if let Value::Object(map) = &mut value {
            change(map);
        }
        let problem = parse_import_request(&params(value)).unwrap_err();
        let body = problem.body();
        let data = body["data"].as_object().cloned().unwrap_or_default();
        data.keys().next().cloned().unwrap_or_default()
    }

    #[test]
    fn bad_input_names_the_parameter() {
        assert_eq!(failing_key(|m| drop(m.remove("brand"))), "brand");
        assert_eq!(
            failing_key(|m| drop(m.insert("brand".into(), json!("x\"\nRUN evil")))),
            "brand"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("src".into(), json!("a b")))),
            "src"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("baseDistro".into(), json!("arch")))),
            "baseDistro"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("runtimePath".into(), json!("python")))),
            "runtimePath"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("runtimePath".into(), json!("/usr/../bin/python")))),
            "runtimePath"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("minMemory".into(), json!("lots")))),
            "minMemory"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("minCPU".into(), json!(0)))),
            "minCPU"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert(
                "servicePorts".into(),
                json!([{"name": "a:b", "protocol": "http", "ports": [1]}])
            ))),
            "servicePorts"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert(
                "servicePorts".into(),
                json!([{"name": "a", "protocol": "http", "ports": [70000]}])
            ))),
            "servicePorts"
        );
        assert_eq!(
            failing_key(|m| drop(m.insert("launchOptions".into(), json!({"group": 3})))),
            "launchOptions.group"
        );
    }
}
