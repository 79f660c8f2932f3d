//! Image manifests and config blobs of the Registry HTTP API v2: Docker schema 2 manifests
//! and manifest lists, OCI manifests and indexes. Pure parsing, no I/O.

use std::collections::BTreeMap;

use bai_schema::image_ref::{DEFAULT_ARCHITECTURE, normalize_architecture};
use serde::Deserialize;
use serde_json::Value;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` of a manifest request by tag: every kind we read, lists first, so that a
/// registry hands out the list of a multi-architecture tag rather than one of its members.
pub const ACCEPT_ANY_MANIFEST: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";

/// The `Accept` of a request for a member of a list (always a single-image manifest).
pub const ACCEPT_IMAGE_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";

/// The OCI annotation buildx puts on attestation entries of an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the manifest has an unexpected shape ({media_type}): {message}")]
    BadShape { media_type: String, message: String },
    #[error("schema 1 manifests are not supported (push the image again with a current tool)")]
    SchemaV1,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("the config blob is not valid JSON: {0}")]
    ConfigNotJson(#[source] serde_json::Error),
    #[error("the config blob's labels are not a mapping of strings: {0}")]
    BadLabels(String),
}

/// A single-image manifest: the config blob to read and the size to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    pub config_digest: String,
    /// `config.size` plus every layer's size, as the original records it.
    pub size_bytes: i64,
}

/// One member of a manifest list or OCI index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub digest: String,
    /// Backend.AI's architecture name (`amd64` → `x86_64`).
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

/// A parsed manifest response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    /// Members with a real platform; attestations and `unknown` platforms are left out.
    List(Vec<ListEntry>),
}

#[derive(Deserialize)]
struct RawDescriptor {
    digest: String,
    #[serde(default)]
    size: i64,
}

#[derive(Deserialize)]
struct RawImageManifest {
    config: RawDescriptor,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
struct RawPlatform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct RawListEntry {
    digest: String,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawList {
    manifests: Vec<RawListEntry>,
}

/// The media type without parameters (`; charset=utf-8`).
pub fn bare_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parses a manifest. The kind comes from the response `Content-Type`; when a registry sends a
/// generic one, from the body's `mediaType`, and failing that from its shape.
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<Manifest, ManifestError> {
    let json: Value = serde_json::from_slice(body).map_err(ManifestError::NotJson)?;
    let declared = content_type.map(bare_media_type).unwrap_or("");
    let media_type = match declared {
        DOCKER_MANIFEST
        | DOCKER_MANIFEST_LIST
        | OCI_MANIFEST
        | OCI_INDEX
        | DOCKER_MANIFEST_V1
        | DOCKER_MANIFEST_V1_SIGNED => declared.to_owned(),
        _ => media_type_from_body(&json).unwrap_or_else(|| declared.to_owned()),
    };
    let bad_shape = |e: serde_json::Error| ManifestError::BadShape {
        media_type: media_type.clone(),
        message: e.to_string(),
    };
    match media_type.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let raw: RawImageManifest = serde_json::from_value(json).map_err(bad_shape)?;
            let layers: i64 = raw.layers.iter().map(|l| l.size).sum();
            Ok(Manifest::Image(ImageManifest {
                config_digest: raw.config.digest,
                size_bytes: layers + raw.config.size,
            }))
        }
        DOCKER_MANIFEST_LIST | OCI_INDEX => {
            let raw: RawList = serde_json::from_value(json).map_err(bad_shape)?;
            Ok(Manifest::List(
                raw.manifests.into_iter().filter_map(list_entry).collect(),
            ))
        }
        DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED => Err(ManifestError::SchemaV1),
        other => Err(ManifestError::UnsupportedMediaType(other.to_owned())),
    }
}

fn media_type_from_body(json: &Value) -> Option<String> {
    if let Some(declared) = json.get("mediaType").and_then(Value::as_str) {
        return Some(declared.to_owned());
    }
    if json.get("schemaVersion").and_then(Value::as_i64) == Some(1) {
        return Some(DOCKER_MANIFEST_V1.to_owned());
    }
    if json.get("manifests").is_some() {
        Some(OCI_INDEX.to_owned())
    } else if json.get("config").is_some() {
        Some(OCI_MANIFEST.to_owned())
    } else {
        None
    }
}

/// A list member to scan, or `None` for attestations and entries without a real platform.
fn list_entry(raw: RawListEntry) -> Option<ListEntry> {
    let is_attestation = raw
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REFERENCE_TYPE_ANNOTATION));
    let platform = raw.platform?;
    if is_attestation || platform.architecture == "unknown" || platform.os == "unknown" {
        return None;
    }
    Some(ListEntry {
        digest: raw.digest,
        architecture: normalize_architecture(&platform.architecture),
        os: platform.os,
        variant: platform.variant,
    })
}

/// What the scan needs from a config blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Backend.AI's name for the blob's `architecture` (default `x86_64`).
    pub architecture: String,
    pub labels: BTreeMap<String, String>,
}

/// Reads `architecture` and the labels: `config.Labels`, or `container_config.Labels` when
/// the former is empty (images committed by old Docker versions).
pub fn parse_config_blob(body: &[u8]) -> Result<ImageConfig, ManifestError> {
    let json: Value = serde_json::from_slice(body).map_err(ManifestError::ConfigNotJson)?;
    let labels_of = |section: &str| -> Result<BTreeMap<String, String>, ManifestError> {
        match json.get(section).and_then(|s| s.get("Labels")) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(ManifestError::BadLabels(format!(
                        "{section}.Labels[{k:?}] is {other}"
                    ))),
                })
                .collect(),
            Some(other) => Err(ManifestError::BadLabels(format!(
                "{section}.Labels is {other}"
            ))),
        }
    };
    let mut labels = labels_of("config")?;
    if labels.is_empty() {
        labels = labels_of("container_config")?;
    }
    let architecture = json
        .get("architecture")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(normalize_architecture)
        .unwrap_or_else(|| DEFAULT_ARCHITECTURE.to_owned());
    Ok(ImageConfig {
        architecture,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn docker_and_oci_manifests_sum_config_and_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","size":100,"digest":"{D1}"}},"layers":[{{"size":10,"digest":"{D2}"}},{{"size":5,"digest":"{D2}"}}]}}"#
        );
        let expected = Manifest::Image(ImageManifest {
            config_digest: D1.to_owned(),
            size_bytes: 115,
        });
        assert_eq!(
            parse_manifest(Some(DOCKER_MANIFEST), body.as_bytes()).unwrap(),
            expected.clone()
        );
        // A generic content type falls back to the body's mediaType.
        assert_eq!(
            parse_manifest(Some("application/json"), body.as_bytes()).unwrap(),
            expected.clone()
        );
        // OCI manifests may omit mediaType; the shape decides.
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"size":100,"digest":"{D1}"}},"layers":[{{"size":15,"digest":"{D2}"}}]}}"#
        );
        assert_eq!(
            parse_manifest(Some(OCI_MANIFEST), oci.as_bytes()).unwrap(),
            expected.clone()
        );
        assert_eq!(parse_manifest(None, oci.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn lists_keep_real_platforms_and_normalize_architectures() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
                {{"digest":"{D1}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
                {{"digest":"{D2}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}},
                  "annotations":{{"org.opencontainers.image.ref.name":"x"}}}},
                {{"digest":"{D2}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}},
                  "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
                {{"digest":"{D2}","size":1}}
            ]}}"#
        );
        let Ok(Manifest::List(entries)) = parse_manifest(Some(OCI_INDEX), body.as_bytes()) else {
            panic!("expected a list");
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].architecture, "x86_64");
        assert_eq!(entries[1].architecture, "aarch64");
        assert_eq!(entries[1].variant.as_deref(), Some("v8"));
    }

    #[test]
    fn broken_manifests_say_what_is_wrong() {
        assert!(matches!(
            parse_manifest(Some(DOCKER_MANIFEST), b"{nope"),
            Err(ManifestError::NotJson(_))
        ));
        assert!(matches!(
            parse_manifest(Some(DOCKER_MANIFEST), br#"{"layers":[]}"#),
            Err(ManifestError::BadShape { .. })
        ));
        assert!(matches!(
            parse_manifest(Some(DOCKER_MANIFEST_V1_SIGNED), br#"{"schemaVersion":1}"#),
            Err(ManifestError::SchemaV1)
        ));
        assert!(matches!(
            parse_manifest(Some("text/html"), br#"{"x":1}"#),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn config_labels_prefer_config_over_container_config() {
        let blob = br#"{"architecture":"arm64","config":{"Labels":{"ai.backend.kernelspec":"1"}},
                        "container_config":{"Labels":{"old":"x"}}}"#;
        let config = parse_config_blob(blob).unwrap();
        assert_eq!(config.architecture, "aarch64");
        assert_eq!(config.labels.len(), 1);
        assert_eq!(config.labels["ai.backend.kernelspec"], "1");

        let blob = br#"{"config":{"Labels":null},"container_config":{"Labels":{"old":"x"}}}"#;
        let config = parse_config_blob(blob).unwrap();
        assert_eq!(config.architecture, "x86_64");
        assert_eq!(config.labels["old"], "x");

        assert!(matches!(
            parse_config_blob(b"not json"),
            Err(ManifestError::ConfigNotJson(_))
        ));
        assert!(matches!(
            parse_config_blob(br#"{"config":{"Labels":{"a":1}}}"#),
            Err(ManifestError::BadLabels(_))
        ));
    }
}
