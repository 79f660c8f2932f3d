//! Backend.AI image labels (`ai.backend.*`): validation as `validate_image_labels` does it,
//! and what the catalogue derives from them (accelerators, resource minimums). Pure functions.

use std::collections::BTreeMap;

use bai_schema::images::SlotRange;

pub const KERNELSPEC: &str = "ai.backend.kernelspec";
pub const ROLE: &str = "ai.backend.role";
pub const ACCELERATORS: &str = "ai.backend.accelerators";
pub const SERVICE_PORTS: &str = "ai.backend.service-ports";
pub const ENDPOINT_PORTS: &str = "ai.backend.endpoint-ports";
pub const MODEL_PATH: &str = "ai.backend.model-path";
pub const MODEL_FORMAT: &str = "ai.backend.model-format";
pub const RESOURCE_MIN_PREFIX: &str = "ai.backend.resource.min.";

/// The kernelspec versions this manager understands (`MIN_KERNELSPEC`..=`MAX_KERNELSPEC`).
pub const SUPPORTED_KERNELSPECS: std::ops::RangeInclusive<i64> = 1..=1;

/// Resource minimums of an image that declares none (`INTRINSIC_SLOTS_MIN`): one core, 1 GiB.
pub const DEFAULT_MIN_CPU: &str = "1";
pub const DEFAULT_MIN_MEM: &str = "1073741824";

/// Container ports the kernel runner uses itself.
const RESERVED_PORTS: &[u16] = &[2000, 2001, 2002, 2003, 2200, 7681];

/// Why an image's labels are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelError(pub String);

/// What the catalogue stores besides the raw labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    /// `ai.backend.accelerators` for Backend.AI images; `*` for images without a kernelspec.
    pub accelerators: Option<String>,
    pub resources: BTreeMap<String, SlotRange>,
}

/// Validates the labels and derives the catalogue fields.
pub fn image_metadata(labels: &BTreeMap<String, String>) -> Result<ImageMetadata, LabelError> {
    validate_labels(labels)?;
    let accelerators = if labels.contains_key(KERNELSPEC) {
        labels.get(ACCELERATORS).filter(|a| !a.is_empty()).cloned()
    } else {
        // Images without Backend.AI labels may run with any accelerator.
        Some("*".to_owned())
    };
    let mut resources = BTreeMap::new();
    resources.insert("cpu".to_owned(), slot_min(DEFAULT_MIN_CPU));
    resources.insert("mem".to_owned(), slot_min(DEFAULT_MIN_MEM));
    for (key, value) in labels {
        if let Some(slot) = key.strip_prefix(RESOURCE_MIN_PREFIX) {
            resources.insert(slot.to_owned(), slot_min(value));
        }
    }
    Ok(ImageMetadata {
        accelerators,
        resources,
    })
}

fn slot_min(min: &str) -> SlotRange {
    SlotRange {
        min: min.to_owned(),
        max: None,
    }
}

/// `validate_image_labels`: kernelspec in range, a known role, well-formed service ports, and
/// for INFERENCE images the endpoint ports, model path and model format.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    if let Some(kernelspec) = labels.get(KERNELSPEC) {
        let value: i64 = kernelspec
            .trim()
            .parse()
            .map_err(|_| LabelError(format!("{KERNELSPEC} {kernelspec:?} is not an integer")))?;
        if !SUPPORTED_KERNELSPECS.contains(&value) {
            return Err(LabelError(format!(
                "{KERNELSPEC} {value} is not supported (supported: {}..{})",
                SUPPORTED_KERNELSPECS.start(),
                SUPPORTED_KERNELSPECS.end()
            )));
        }
    }
    let role = labels.get(ROLE).map(String::as_str).unwrap_or("COMPUTE");
    if !matches!(role, "COMPUTE" | "INFERENCE" | "SYSTEM") {
        return Err(LabelError(format!(
            "{ROLE} {role:?} is not one of COMPUTE, INFERENCE, SYSTEM"
        )));
    }
    let service_ports = parse_service_ports(labels.get(SERVICE_PORTS).map_or("", String::as_str))?;
    if role == "INFERENCE" {
        let endpoint_ports = string_list(labels.get(ENDPOINT_PORTS).map_or("", String::as_str));
        if endpoint_ports.is_empty() {
            return Err(LabelError(format!(
                "{ENDPOINT_PORTS} is required for INFERENCE images"
            )));
        }
        for required in [MODEL_PATH, MODEL_FORMAT] {
            if !labels.contains_key(required) {
                return Err(LabelError(format!(
                    "{required} is required for INFERENCE images"
                )));
            }
        }
        for name in endpoint_ports {
            match service_ports.iter().find(|p| p.name == name) {
                None => {
                    return Err(LabelError(format!(
                        "{ENDPOINT_PORTS} contains an undefined service port: {name}"
                    )));
                }
                Some(port) if port.protocol != "preopen" => {
                    return Err(LabelError(format!(
                        "the endpoint-port {name} must be a preopen service-port"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// `tx.StringList()`: comma-separated, trimmed, blanks dropped.
fn string_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One declared service port (`name:protocol:port` or `name:protocol:[p1,p2]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: String,
    pub container_ports: Vec<u16>,
}

/// `parse_service_ports` on the comma-split label: entries that do not look like a service
/// port are ignored (as the original does with a list), `pty` entries are skipped, other
/// protocols than tcp/http/preopen and bad port numbers are errors.
pub fn parse_service_ports(label: &str) -> Result<Vec<ServicePort>, LabelError> {
    let mut ports = Vec::new();
    let mut used: Vec<u16> = Vec::new();
    for piece in string_list(label) {
        let Some((name, protocol, port_text)) = split_service_port(piece) else {
            continue;
        };
        if protocol == "pty" {
            continue;
        }
        if !matches!(protocol, "tcp" | "http" | "preopen") {
            return Err(LabelError(format!(
                "unsupported service port protocol: {protocol}"
            )));
        }
        let mut container_ports = Vec::new();
        for text in port_text.trim_matches(|c| c == '[' || c == ']').split(',') {
            let port: u32 = text
                .parse()
                .map_err(|_| LabelError(format!("invalid service port number {text:?}")))?;
            if port <= 1024 {
                return Err(LabelError(format!(
                    "the service port number {port} must be larger than 1024 to run without the root privilege"
                )));
            }
            if port >= 65535 {
                return Err(LabelError(format!(
                    "the service port number {port} must be smaller than 65535"
                )));
            }
            let port = port as u16;
            if RESERVED_PORTS.contains(&port) {
                return Err(LabelError(
                    "the service ports 2000 to 2003, 2200 and 7681 are reserved for internal use"
                        .to_owned(),
                ));
            }
            if used.contains(&port) {
                return Err(LabelError(format!(
                    "the port {port} is already used by another service port"
                )));
            }
            used.push(port);
            container_ports.push(port);
        }
        ports.push(ServicePort {
            name: name.to_owned(),
            protocol: protocol.to_owned(),
            container_ports,
        });
    }
    Ok(ports)
}

/// `^(?P<name>[\w-]+):(?P<proto>\w+):(?P<ports>\[\d+(?:,\d+)*\]|\d+)`
fn split_service_port(piece: &str) -> Option<(&str, &str, &str)> {
    let mut parts = piece.splitn(3, ':');
    let name = parts.next()?;
    let protocol = parts.next()?;
    let ports = parts.next()?;
    let word = |s: &str, extra: char| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == extra)
    };
    let bracketed = ports.starts_with('[') && ports.ends_with(']') && ports.len() > 2;
    let inner = if bracketed {
        &ports[1..ports.len() - 1]
    } else {
        ports
    };
    let numbers_ok = inner
        .split(',')
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let ports_ok = numbers_ok && (bracketed || !inner.contains(','));
    (word(name, '-') && word(protocol, '_') && ports_ok).then_some((name, protocol, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn backend_ai_labels_give_accelerators_and_resources() {
        let meta = image_metadata(&labels(&[
            (KERNELSPEC, "1"),
            ("ai.backend.features", "batch query uid-match user-input"),
            ("ai.backend.resource.min.cpu", "2"),
            ("ai.backend.resource.min.mem", "256m"),
            ("ai.backend.resource.min.cuda.device", "1"),
            (SERVICE_PORTS, "ipython:pty:3000,jupyter:http:8081"),
            (ACCELERATORS, "cuda"),
        ]))
        .unwrap();
        assert_eq!(meta.accelerators.as_deref(), Some("cuda"));
        assert_eq!(meta.resources["cpu"], slot_min("2"));
        assert_eq!(meta.resources["mem"], slot_min("256m"));
        assert_eq!(meta.resources["cuda.device"], slot_min("1"));
    }

    #[test]
    fn vanilla_images_take_defaults_and_any_accelerator() {
        let meta = image_metadata(&BTreeMap::new()).unwrap();
        assert_eq!(meta.accelerators.as_deref(), Some("*"));
        assert_eq!(meta.resources["cpu"], slot_min(DEFAULT_MIN_CPU));
        assert_eq!(meta.resources["mem"], slot_min(DEFAULT_MIN_MEM));
        let meta = image_metadata(&labels(&[(KERNELSPEC, "1")])).unwrap();
        assert_eq!(meta.accelerators, None);
    }

    #[test]
    fn invalid_labels_are_explained() {
        for (pairs, needle) in [
            (vec![(KERNELSPEC, "two")], "not an integer"),
            (vec![(KERNELSPEC, "2")], "not supported"),
            (vec![(ROLE, "BATCH")], "BATCH"),
            (vec![(SERVICE_PORTS, "web:udp:8080")], "protocol: udp"),
            (vec![(SERVICE_PORTS, "web:http:80")], "larger than 1024"),
            (vec![(SERVICE_PORTS, "web:http:2000")], "reserved"),
            (
                vec![(SERVICE_PORTS, "a:http:8080,b:tcp:8080")],
                "already used",
            ),
            (vec![(ROLE, "INFERENCE")], ENDPOINT_PORTS),
            (
                vec![
                    (ROLE, "INFERENCE"),
                    (ENDPOINT_PORTS, "web"),
                    (MODEL_PATH, "/models"),
                    (MODEL_FORMAT, "onnx"),
                    (SERVICE_PORTS, "web:http:8080"),
                ],
                "preopen",
            ),
        ] {
            let error = validate_labels(&labels(&pairs)).unwrap_err();
            assert!(error.0.contains(needle), "{pairs:?}: {error}");
        }
    }

    #[test]
    fn inference_images_with_a_preopen_endpoint_pass() {
        let ok = labels(&[
            (ROLE, "INFERENCE"),
            (ENDPOINT_PORTS, "web"),
            (MODEL_PATH, "/models"),
            (MODEL_FORMAT, "onnx"),
            (SERVICE_PORTS, "web:preopen:8080"),
        ]);
        assert_eq!(validate_labels(&ok), Ok(()));
    }

    #[test]
    fn service_ports_parse_like_the_original() {
        let ports =
            parse_service_ports("ipython:pty:3000, jupyter:http:8081,vscode:http:[8180]").unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].name, "jupyter");
        assert_eq!(ports[1].container_ports, vec![8180]);
        // Garbage entries are ignored, as the original does with the split list.
        assert_eq!(parse_service_ports("nonsense").unwrap(), vec![]);
    }
}
