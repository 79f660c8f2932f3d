//! The `agent_info` of an `agent_heartbeat`, read from either generation of agent: 23.09
//! (msgpack map, slot types as pickled enums, zlib-compressed image list) and 26.x (JSON with
//! `available_resource_slots` and `slot_key_and_units`); and written back in either, for the
//! agent simulator.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
use serde_json::json;

use super::ext::{SLOT_TYPES_CLASS, SLOT_TYPES_MODULE};
use super::msgpack::{self, Value};

/// The largest decompressed image list accepted from one heartbeat (a zlib bomb guard); a
/// real list of a thousand images is about 150 KiB.
pub const MAX_IMAGE_LIST_BYTES: u64 = 16 * 1024 * 1024;

/// What an agent tells about itself in every heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInfo {
    pub ip: String,
    pub region: String,
    pub scaling_group: String,
    /// Where the manager connects for RPC, `tcp://host:port`.
    pub addr: String,
    /// The agent's Z85 CURVE public key; `None` means RPC without encryption.
    pub public_key: Option<String>,
    pub public_host: String,
    /// Shared (`Arc`) with the other heartbeats of a batch that report the same, like
    /// `slot_types` and `compute_plugins`: see [`super::shared_parts`].
    pub available_slots: Arc<ResourceSlot>,
    pub slot_types: Arc<BTreeMap<String, SlotUnit>>,
    pub version: String,
    /// `{plugin key: {"version": ..., ...}}`, stored as-is in `agents.compute_plugins`.
    pub compute_plugins: Arc<serde_json::Value>,
    /// The images the agent holds; `None` when the agent does not report them in heartbeats
    /// (26.x agents). Shared like the slots: 23.09 agents send the whole list in every
    /// heartbeat, and the agents of a cluster mostly hold the same images.
    pub images: Option<Arc<Vec<AgentImage>>>,
    pub architecture: String,
    pub auto_terminate_abusing_kernel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentImage {
    /// The image reference as the agent names it (`registry/project/name:tag`).
    pub canonical: String,
    pub digest: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgentInfoError {
    #[error("agent_info is a {0}, not a map")]
    NotAMap(&'static str),
    #[error("agent_info has no {0:?}")]
    Missing(&'static str),
    #[error("agent_info field {field:?} has the wrong type: {detail}")]
    WrongType { field: &'static str, detail: String },
    #[error("agent_info slot {slot:?}: {detail}")]
    BadSlot { slot: String, detail: String },
    #[error("agent_info images: {0}")]
    BadImages(String),
}

fn wrong(field: &'static str, detail: impl Into<String>) -> AgentInfoError {
    AgentInfoError::WrongType {
        field,
        detail: detail.into(),
    }
}

fn slot_error(slot: &str, detail: impl Into<String>) -> AgentInfoError {
    AgentInfoError::BadSlot {
        slot: slot.to_owned(),
        detail: detail.into(),
    }
}

fn parse_amount(slot: &str, text: &str) -> Result<SlotAmount, AgentInfoError> {
    SlotAmount::parse(text).map_err(|reason| slot_error(slot, format!("{text:?}: {reason}")))
}

fn parse_unit(slot: &str, text: &str) -> Result<SlotUnit, AgentInfoError> {
    SlotUnit::parse(text).ok_or_else(|| slot_error(slot, format!("unknown slot type {text:?}")))
}

impl AgentInfo {
    /// Reads the 23.09 msgpack map.
    pub fn from_msgpack(info: &Value) -> Result<AgentInfo, AgentInfoError> {
        if info.as_map().is_none() {
            return Err(AgentInfoError::NotAMap(info.kind()));
        }
        let text = |field: &'static str| -> Result<Option<String>, AgentInfoError> {
            match info.get(field) {
                None | Some(Value::Nil) => Ok(None),
                Some(Value::Str(text)) => Ok(Some(text.clone())),
                Some(Value::Bin(bytes)) => String::from_utf8(bytes.clone())
                    .map(Some)
                    .map_err(|_| wrong(field, "bytes that are not UTF-8")),
                Some(other) => Err(wrong(field, format!("a {}", other.kind()))),
            }
        };
        let addr = text("addr")?.ok_or(AgentInfoError::Missing("addr"))?;
        let raw_slots = info
            .get("resource_slots")
            .ok_or(AgentInfoError::Missing("resource_slots"))?;
        let slot_pairs = raw_slots
            .as_map()
            .ok_or_else(|| wrong("resource_slots", format!("a {}", raw_slots.kind())))?;
        let mut available_slots = ResourceSlot::new();
        let mut slot_types = BTreeMap::new();
        for (raw_name, raw_entry) in slot_pairs {
            let slot = raw_name
                .as_str()
                .ok_or_else(|| wrong("resource_slots", "a slot name that is not a str"))?;
            let [raw_type, raw_amount] = raw_entry.as_array().unwrap_or(&[]) else {
                return Err(slot_error(slot, "expected [slot type, amount]"));
            };
            let unit_text = raw_type
                .as_text()
                .ok_or_else(|| slot_error(slot, format!("slot type is a {}", raw_type.kind())))?;
            slot_types.insert(slot.to_owned(), parse_unit(slot, &unit_text)?);
            let amount_text = match raw_amount {
                Value::Int(number) => number.to_string(),
                other => other
                    .as_text()
                    .ok_or_else(|| slot_error(slot, format!("amount is a {}", other.kind())))?,
            };
            available_slots.set(slot, parse_amount(slot, &amount_text)?);
        }
        let compute_plugins = match info.get("compute_plugins") {
            None | Some(Value::Nil) => json!({}),
            Some(value @ Value::Map(_)) => value.to_json(),
            Some(other) => return Err(wrong("compute_plugins", format!("a {}", other.kind()))),
        };
        let auto_terminate_abusing_kernel = match info.get("auto_terminate_abusing_kernel") {
            None | Some(Value::Nil) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(wrong(
                    "auto_terminate_abusing_kernel",
                    format!("a {}", other.kind()),
                ));
            }
        };
        let ip = text("ip")?.unwrap_or_default();
        Ok(AgentInfo {
            public_host: text("public_host")?.unwrap_or_else(|| ip.clone()),
            ip,
            region: text("region")?.unwrap_or_default(),
            scaling_group: text("scaling_group")?.unwrap_or_else(|| "default".to_owned()),
            addr,
            public_key: text("public_key")?,
            available_slots: Arc::new(available_slots),
            slot_types: Arc::new(slot_types),
            version: text("version")?.unwrap_or_default(),
            compute_plugins: Arc::new(compute_plugins),
            images: Some(Arc::new(read_images(info)?)),
            architecture: text("architecture")?.unwrap_or_else(|| "x86_64".to_owned()),
            auto_terminate_abusing_kernel,
        })
    }

    /// Reads the 26.x JSON object.
    pub fn from_json(info: &serde_json::Value) -> Result<AgentInfo, AgentInfoError> {
        use serde_json::Value as Json;
        let object = info
            .as_object()
            .ok_or(AgentInfoError::NotAMap("JSON non-object"))?;
        let text = |field: &'static str| -> Result<Option<String>, AgentInfoError> {
            match object.get(field) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(wrong(field, format!("JSON {other}"))),
            }
        };
        let addr = text("addr")?.ok_or(AgentInfoError::Missing("addr"))?;
        let mut slot_types = BTreeMap::new();
        match object.get("slot_key_and_units") {
            None | Some(Json::Null) => {}
            Some(Json::Object(units)) => {
                for (slot, unit) in units {
                    let unit = unit
                        .as_str()
                        .ok_or_else(|| slot_error(slot, format!("slot type {unit}")))?;
                    slot_types.insert(slot.clone(), parse_unit(slot, unit)?);
                }
            }
            Some(_) => return Err(wrong("slot_key_and_units", "not an object")),
        }
        let entries = object
            .get("available_resource_slots")
            .ok_or(AgentInfoError::Missing("available_resource_slots"))?
            .as_array()
            .ok_or_else(|| wrong("available_resource_slots", "not an array"))?;
        let mut available_slots = ResourceSlot::new();
        for entry in entries {
            let slot = entry
                .get("resource_type")
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    wrong("available_resource_slots", "an entry without resource_type")
                })?;
            let amount_text = match entry.get("quantity") {
                Some(Json::String(text)) => text.clone(),
                Some(Json::Number(number)) => number.to_string(),
                _ => return Err(slot_error(slot, "quantity is not a decimal string")),
            };
            available_slots.set(slot, parse_amount(slot, &amount_text)?);
        }
        let compute_plugins = match object.get("compute_plugins") {
            None | Some(Json::Null) => json!({}),
            Some(value @ Json::Object(_)) => value.clone(),
            Some(_) => return Err(wrong("compute_plugins", "not an object")),
        };
        let auto_terminate_abusing_kernel = match object.get("auto_terminate_abusing_kernel") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(flag)) => *flag,
            Some(_) => return Err(wrong("auto_terminate_abusing_kernel", "not a boolean")),
        };
        let ip = text("ip")?.unwrap_or_default();
        Ok(AgentInfo {
            public_host: text("public_host")?.unwrap_or_else(|| ip.clone()),
            ip,
            region: text("region")?.unwrap_or_default(),
            scaling_group: text("scaling_group")?.unwrap_or_else(|| "default".to_owned()),
            addr,
            public_key: text("public_key")?,
            available_slots: Arc::new(available_slots),
            slot_types: Arc::new(slot_types),
            version: text("version")?.unwrap_or_default(),
            compute_plugins: Arc::new(compute_plugins),
            images: None,
            architecture: text("architecture")?.unwrap_or_else(|| "x86_64".to_owned()),
            auto_terminate_abusing_kernel,
        })
    }

    /// The 23.09 msgpack map, in the agent's key order.
    pub fn to_msgpack(&self) -> Value {
        let slots = self
            .available_slots
            .iter()
            .map(|(slot, amount)| {
                let unit = self
                    .slot_types
                    .get(slot)
                    .copied()
                    .unwrap_or(SlotUnit::Count);
                (
                    Value::str(slot),
                    Value::Array(vec![
                        Value::python_enum(SLOT_TYPES_MODULE, SLOT_TYPES_CLASS, unit.as_str()),
                        Value::str(amount.to_string()),
                    ]),
                )
            })
            .collect();
        let images: Vec<Value> = self
            .images
            .iter()
            .flat_map(|images| images.iter())
            .map(|image| {
                Value::Array(vec![
                    Value::str(image.canonical.as_str()),
                    Value::str(image.digest.as_str()),
                ])
            })
            .collect();
        let compressed = zlib_compress(&msgpack::encode(&Value::Array(images)));
        Value::map_of([
            ("ip", Value::str(self.ip.as_str())),
            ("region", Value::str(self.region.as_str())),
            ("scaling_group", Value::str(self.scaling_group.as_str())),
            ("addr", Value::str(self.addr.as_str())),
            ("public_key", Value::from(self.public_key.clone())),
            ("public_host", Value::str(self.public_host.as_str())),
            ("resource_slots", Value::Map(slots)),
            ("version", Value::str(self.version.as_str())),
            ("compute_plugins", Value::from_json(&self.compute_plugins)),
            ("images", Value::Bin(compressed)),
            (
                "images.opts",
                Value::map_of([("compression", Value::str("zlib"))]),
            ),
            ("architecture", Value::str(self.architecture.as_str())),
            (
                "auto_terminate_abusing_kernel",
                Value::Bool(self.auto_terminate_abusing_kernel),
            ),
        ])
    }

    /// The 26.x JSON object, in the agent's key order.
    pub fn to_json(&self) -> serde_json::Value {
        let slots: Vec<serde_json::Value> = self
            .available_slots
            .iter()
            .map(|(slot, amount)| json!({"resource_type": slot, "quantity": amount.to_string()}))
            .collect();
        let units: serde_json::Map<String, serde_json::Value> = self
            .available_slots
            .keys()
            .map(|slot| {
                let unit = self
                    .slot_types
                    .get(slot)
                    .copied()
                    .unwrap_or(SlotUnit::Count);
                (slot.to_owned(), json!(unit.as_str()))
            })
            .collect();
        json!({
            "ip": self.ip,
            "region": self.region,
            "scaling_group": self.scaling_group,
            "addr": self.addr,
            "public_key": self.public_key,
            "public_host": self.public_host,
            "available_resource_slots": slots,
            "slot_key_and_units": units,
            "version": self.version,
            "compute_plugins": *self.compute_plugins,
            "architecture": self.architecture,
            "auto_terminate_abusing_kernel": self.auto_terminate_abusing_kernel,
        })
    }
}

fn zlib_compress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// `images` is `msgpack([[repo_tag, digest], ...])`, zlib-compressed when
/// `images.opts.compression == "zlib"`.
fn read_images(info: &Value) -> Result<Vec<AgentImage>, AgentInfoError> {
    let raw = match info.get("images") {
        None | Some(Value::Nil) => return Ok(Vec::new()),
        Some(Value::Bin(bytes)) => bytes,
        Some(other) => return Err(wrong("images", format!("a {}", other.kind()))),
    };
    let compression = info
        .get("images.opts")
        .and_then(|opts| opts.get("compression"))
        .and_then(Value::as_str);
    let packed = match compression {
        Some("zlib") => {
            let mut decompressed = Vec::new();
            flate2::read::ZlibDecoder::new(raw.as_slice())
                .take(MAX_IMAGE_LIST_BYTES + 1)
                .read_to_end(&mut decompressed)
                .map_err(|error| AgentInfoError::BadImages(format!("zlib: {error}")))?;
            if decompressed.len() as u64 > MAX_IMAGE_LIST_BYTES {
                return Err(AgentInfoError::BadImages(format!(
                    "decompressed list exceeds {MAX_IMAGE_LIST_BYTES} bytes"
                )));
            }
            decompressed
        }
        None => raw.clone(),
        Some(other) => {
            return Err(AgentInfoError::BadImages(format!(
                "unknown compression {other:?}"
            )));
        }
    };
    let list =
        msgpack::decode(&packed).map_err(|error| AgentInfoError::BadImages(error.to_string()))?;
    let items = list
        .as_array()
        .ok_or_else(|| AgentInfoError::BadImages(format!("a {}, not a list", list.kind())))?;
    let mut images = Vec::with_capacity(items.len());
    for item in items {
        // An entry the manager cannot read is skipped, as the original skips unparsable refs.
        if let Some([canonical, digest]) = item.as_array().map(|pair| pair.to_vec()).as_deref()
            && let (Some(canonical), Some(digest)) = (canonical.as_text(), digest.as_text())
            && !canonical.is_empty()
        {
            images.push(AgentImage { canonical, digest });
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentInfo {
        AgentInfo {
            ip: "127.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: "tcp://127.0.0.1:16001".into(),
            public_key: None,
            public_host: "127.0.0.1".into(),
            available_slots: Arc::new(ResourceSlot::from_pairs([
                ("cpu", SlotAmount::parse("9").unwrap()),
                ("mem", SlotAmount::parse("48926258176").unwrap()),
                ("cuda.shares", SlotAmount::parse("0.5").unwrap()),
            ])),
            slot_types: Arc::new(BTreeMap::from([
                ("cpu".to_owned(), SlotUnit::Count),
                ("mem".to_owned(), SlotUnit::Bytes),
                ("cuda.shares".to_owned(), SlotUnit::Count),
            ])),
            version: "23.09.10".into(),
            compute_plugins: Arc::new(json!({"cpu": {"version": "23.09.10"}})),
            images: Some(Arc::new(vec![AgentImage {
                canonical: "cr.backend.ai/stable/python:3.9-ubuntu20.04".into(),
                digest: "sha256:abcd".into(),
            }])),
            architecture: "x86_64".into(),
            auto_terminate_abusing_kernel: false,
        }
    }

    #[test]
    fn both_encodings_round_trip() {
        let info = sample();
        let packed = msgpack::encode(&info.to_msgpack());
        assert_eq!(
            AgentInfo::from_msgpack(&msgpack::decode(&packed).unwrap()).unwrap(),
            info
        );
        let from_json = AgentInfo::from_json(&info.to_json()).unwrap();
        assert_eq!(
            from_json,
            AgentInfo {
                images: None,
                ..info
            }
        );
    }

    #[test]
    fn wrong_fields_are_named() {
        let mut map = sample().to_msgpack();
        if let Value::Map(pairs) = &mut map {
            pairs.retain(|(key, _)| key.as_str() != Some("addr"));
        }
        assert_eq!(
            AgentInfo::from_msgpack(&map),
            Err(AgentInfoError::Missing("addr"))
        );
        let bad_slot = Value::map_of([
            ("addr", Value::str("tcp://x:1")),
            (
                "resource_slots",
                Value::map_of([(
                    "cpu",
                    Value::Array(vec![Value::str("count"), Value::str("lots")]),
                )]),
            ),
        ]);
        assert!(matches!(
            AgentInfo::from_msgpack(&bad_slot),
            Err(AgentInfoError::BadSlot { slot, .. }) if slot == "cpu"
        ));
        assert!(matches!(
            AgentInfo::from_json(&json!({"addr": 5})),
            Err(AgentInfoError::WrongType { field: "addr", .. })
        ));
        assert_eq!(
            AgentInfo::from_msgpack(&Value::Int(1)),
            Err(AgentInfoError::NotAMap("int"))
        );
    }

    #[test]
    fn a_zlib_bomb_is_refused() {
        let huge = vec![0x90u8; (MAX_IMAGE_LIST_BYTES + 10) as usize];
        let mut map = sample().to_msgpack();
        if let Value::Map(pairs) = &mut map {
            for (key, value) in pairs.iter_mut() {
                if key.as_str() == Some("images") {
                    *value = Value::Bin(zlib_compress(&huge));
                }
            }
        }
        assert!(matches!(
            AgentInfo::from_msgpack(&map),
            Err(AgentInfoError::BadImages(_))
        ));
    }
}
