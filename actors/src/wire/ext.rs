//! The meaning of Backend.AI's msgpack ext types: building and reading UUIDs (ext 1),
//! datetimes (ext 2, temporenc), and the pickled Python values (ext 3 Decimal, ext 6 Enum);
//! plus the bridge between msgpack values and JSON for payloads the manager only passes on.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::msgpack::{Value, ext_code};
use super::{pickle, temporenc};

/// The Python module and class of the slot-type enum in heartbeats.
pub const SLOT_TYPES_MODULE: &str = "ai.backend.common.types";
pub const SLOT_TYPES_CLASS: &str = "SlotTypes";

impl Value {
    /// A UUID as Backend.AI msgpack packs `uuid.UUID` (ext 1, 16 raw bytes).
    pub fn uuid(id: Uuid) -> Value {
        Value::Ext(ext_code::UUID, id.as_bytes().to_vec())
    }

    /// A UUID from ext 1 or from its string form (events carry `str(uuid)`).
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Value::Ext(ext_code::UUID, bytes) => Uuid::from_slice(bytes).ok(),
            Value::Str(text) => Uuid::parse_str(text).ok(),
            _ => None,
        }
    }

    /// A datetime as ext 2 (temporenc DTSZ, microseconds, UTC).
    pub fn datetime(at: &DateTime<Utc>) -> Value {
        Value::Ext(ext_code::DATETIME, temporenc::encode(at))
    }

    pub fn as_datetime(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Ext(ext_code::DATETIME, bytes) => temporenc::decode(bytes).ok(),
            _ => None,
        }
    }

    /// A Python enum member (ext 6) of `module.class` with value `value`, e.g.
    /// `Value::python_enum("ai.backend.common.types", "SlotTypes", "count")`.
    pub fn python_enum(module: &str, class: &str, value: &str) -> Value {
        Value::Ext(
            ext_code::ENUM,
            pickle::single_str_call(module, class, value),
        )
    }

    /// A `decimal.Decimal` (ext 3) written from its decimal text.
    pub fn python_decimal(text: &str) -> Value {
        Value::Ext(
            ext_code::DECIMAL,
            pickle::single_str_call("decimal", "Decimal", text),
        )
    }

    /// The value of a pickled str-valued enum member (ext 6), with its class name.
    pub fn as_python_enum(&self) -> Option<(String, String)> {
        let Value::Ext(ext_code::ENUM, bytes) = self else {
            return None;
        };
        let pickled = pickle::read(bytes).ok()?;
        let (_, class, value) = pickled.as_single_str_call()?;
        Some((class.to_owned(), value.to_owned()))
    }

    /// Text however a Python peer sent it: a str, a str-enum (ext 6, `strict_types` packs
    /// `KernelLifecycleEventReason.USER_REQUESTED` that way) or a Decimal (ext 3).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(text) => Some(text.clone()),
            Value::Ext(ext_code::ENUM, _) => self.as_python_enum().map(|(_, value)| value),
            Value::Ext(ext_code::DECIMAL, bytes) => {
                let pickled = pickle::read(bytes).ok()?;
                let (_, _, text) = pickled.as_single_str_call()?;
                Some(text.to_owned())
            }
            _ => None,
        }
    }

    /// A JSON rendering for payloads the manager stores or forwards (creation_info,
    /// context_env): UUIDs and datetimes become strings, pickled enums and decimals their
    /// value, bytes a UTF-8 string if they are one (else hex), other ext types `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match self {
            Value::Nil => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Int(number) => Json::from(*number),
            Value::UInt(number) => Json::from(*number),
            Value::F32(number) => {
                serde_json::Number::from_f64(f64::from(*number)).map_or(Json::Null, Json::Number)
            }
            Value::F64(number) => {
                serde_json::Number::from_f64(*number).map_or(Json::Null, Json::Number)
            }
            Value::Str(text) => Json::String(text.clone()),
            Value::Bin(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Json::String(text.to_owned()),
                Err(_) => Json::String(hex::encode(bytes)),
            },
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(pairs) => Json::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (json_key(key), value.to_json()))
                    .collect(),
            ),
            Value::Ext(ext_code::UUID, _) => self
                .as_uuid()
                .map_or(Json::Null, |id| Json::String(id.to_string())),
            Value::Ext(ext_code::DATETIME, _) => self
                .as_datetime()
                .map_or(Json::Null, |at| Json::String(at.to_rfc3339())),
            Value::Ext(..) => self.as_text().map_or(Json::Null, Json::String),
        }
    }

    /// The msgpack form of a JSON value (for sending JSON-shaped data in 23.09 events).
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as Json;
        match json {
            Json::Null => Value::Nil,
            Json::Bool(flag) => Value::Bool(*flag),
            Json::Number(number) => {
                if let Some(int) = number.as_i64() {
                    Value::Int(int)
                } else if let Some(uint) = number.as_u64() {
                    Value::UInt(uint)
                } else {
                    Value::F64(number.as_f64().unwrap_or(0.0))
                }
            }
            Json::String(text) => Value::Str(text.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            Json::Object(object) => Value::Map(
                object
                    .iter()
                    .map(|(key, value)| (Value::Str(key.clone()), Value::from_json(value)))
                    .collect(),
            ),
        }
    }
}

fn json_key(key: &Value) -> String {
    match key.to_json() {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::msgpack::{decode, encode};

    #[test]
    fn uuids_travel_as_ext_1_and_as_strings() {
        let id = Uuid::new_v4();
        let packed = encode(&Value::uuid(id));
        assert_eq!(packed[..2], [0xd8, 0x01]);
        assert_eq!(decode(&packed).unwrap().as_uuid(), Some(id));
        assert_eq!(Value::str(id.to_string()).as_uuid(), Some(id));
        assert_eq!(Value::str("not-a-uuid").as_uuid(), None);
        assert_eq!(Value::Ext(1, vec![1, 2]).as_uuid(), None);
    }

    #[test]
    fn enums_and_decimals_read_as_text() {
        let slot_type = Value::python_enum(SLOT_TYPES_MODULE, SLOT_TYPES_CLASS, "bytes");
        assert_eq!(
            slot_type.as_python_enum(),
            Some(("SlotTypes".to_owned(), "bytes".to_owned()))
        );
        assert_eq!(slot_type.as_text().as_deref(), Some("bytes"));
        assert_eq!(
            Value::python_decimal("0.5").as_text().as_deref(),
            Some("0.5")
        );
        assert_eq!(Value::Ext(6, b"garbage".to_vec()).as_text(), None);
    }

    #[test]
    fn json_bridge_keeps_the_shape() {
        let json = serde_json::json!({"a": [1, -2, 1.5, null, true], "b": {"c": "d"}});
        assert_eq!(Value::from_json(&json).to_json(), json);
        let id = Uuid::new_v4();
        let map = Value::Map(vec![(Value::uuid(id), Value::Bin(b"x".to_vec()))]);
        assert_eq!(map.to_json(), serde_json::json!({ id.to_string(): "x" }));
    }
}
