//! Resource slots: the `{slot name: amount}` maps that agents offer and sessions request.
//!
//! Stored and sent as JSON objects of decimal strings, exactly as Backend.AI writes them:
//! no exponent, trailing zeros removed, `"Infinity"` for an unlimited amount. Comparisons follow
//! the original's semantics: a slot missing on one side counts as zero.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::slot_map::SlotMap;
use crate::slot_name::SlotName;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("slot {slot:?} has an invalid amount {value:?}: {reason}")]
    InvalidAmount {
        slot: String,
        value: String,
        reason: &'static str,
    },
    #[error("invalid size {0:?}: expected a number with an optional k/m/g/t/p/e suffix")]
    InvalidSize(String),
    #[error("resource slots must be a JSON object, got {0}")]
    NotAnObject(String),
}

/// An amount of one slot: a finite decimal or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotAmount {
    Finite(Decimal),
    Infinite,
}

impl SlotAmount {
    pub const ZERO: SlotAmount = SlotAmount::Finite(Decimal::ZERO);

    pub fn is_zero(&self) -> bool {
        matches!(self, SlotAmount::Finite(d) if d.is_zero())
    }

    pub fn is_infinite(&self) -> bool {
        matches!(self, SlotAmount::Infinite)
    }

    pub fn finite(&self) -> Option<Decimal> {
        match self {
            SlotAmount::Finite(d) => Some(*d),
            SlotAmount::Infinite => None,
        }
    }

    /// Parses a stored amount: a decimal string or number, or `Infinity`/`inf`.
    pub fn parse(text: &str) -> Result<SlotAmount, &'static str> {
        let trimmed = text.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "infinity" | "inf" | "+infinity" | "+inf" => return Ok(SlotAmount::Infinite),
            "nan" | "-infinity" | "-inf" => return Err("not a finite or unlimited amount"),
            _ => {}
        }
        Decimal::from_str(trimmed)
            .or_else(|_| Decimal::from_scientific(trimmed))
            .map(SlotAmount::Finite)
            .map_err(|_| "not a decimal number")
    }

    /// Saturating subtraction that never goes below zero for finite values is *not* applied:
    /// callers compare the result with zero to detect shortage.
    pub fn checked_sub(self, other: SlotAmount) -> SlotAmount {
        match (self, other) {
            (SlotAmount::Infinite, _) => SlotAmount::Infinite,
            (SlotAmount::Finite(_), SlotAmount::Infinite) => SlotAmount::Finite(Decimal::MIN),
            (SlotAmount::Finite(a), SlotAmount::Finite(b)) => {
                SlotAmount::Finite(a.checked_sub(b).unwrap_or(Decimal::MIN))
            }
        }
    }
}

impl Default for SlotAmount {
    fn default() -> Self {
        SlotAmount::ZERO
    }
}

impl PartialOrd for SlotAmount {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SlotAmount {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (SlotAmount::Infinite, SlotAmount::Infinite) => Ordering::Equal,
            (SlotAmount::Infinite, _) => Ordering::Greater,
            (_, SlotAmount::Infinite) => Ordering::Less,
            (SlotAmount::Finite(a), SlotAmount::Finite(b)) => a.cmp(b),
        }
    }
}

impl Add for SlotAmount {
    type Output = SlotAmount;
    fn add(self, other: SlotAmount) -> SlotAmount {
        match (self, other) {
            (SlotAmount::Finite(a), SlotAmount::Finite(b)) => a
                .checked_add(b)
                .map_or(SlotAmount::Infinite, SlotAmount::Finite),
            _ => SlotAmount::Infinite,
        }
    }
}

impl Sub for SlotAmount {
    type Output = SlotAmount;
    fn sub(self, other: SlotAmount) -> SlotAmount {
        self.checked_sub(other)
    }
}

impl fmt::Display for SlotAmount {
    /// Backend.AI's `_stringify_number`: no exponent, no trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotAmount::Infinite => f.write_str("Infinity"),
            SlotAmount::Finite(d) => write!(f, "{}", d.normalize()),
        }
    }
}

impl From<Decimal> for SlotAmount {
    fn from(d: Decimal) -> Self {
        SlotAmount::Finite(d)
    }
}

impl From<i64> for SlotAmount {
    fn from(n: i64) -> Self {
        SlotAmount::Finite(Decimal::from(n))
    }
}

/// The unit of a slot type, as in etcd `config/resource_slots/<slot>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotUnit {
    Count,
    Bytes,
    Unique,
}

impl SlotUnit {
    pub fn as_str(&self) -> &'static str {
        match self {
            SlotUnit::Count => "count",
            SlotUnit::Bytes => "bytes",
            SlotUnit::Unique => "unique",
        }
    }

    pub fn parse(text: &str) -> Option<SlotUnit> {
        match text {
            "count" => Some(SlotUnit::Count),
            "bytes" => Some(SlotUnit::Bytes),
            "unique" => Some(SlotUnit::Unique),
            _ => None,
        }
    }
}

/// The slots every agent has: `cpu` (count) and `mem` (bytes).
pub fn intrinsic_slot_types() -> BTreeMap<String, SlotUnit> {
    BTreeMap::from([
        ("cpu".to_owned(), SlotUnit::Count),
        ("mem".to_owned(), SlotUnit::Bytes),
    ])
}

/// A map from slot name to amount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSlot(SlotMap);

impl ResourceSlot {
    pub fn new() -> Self {
        ResourceSlot(SlotMap::new())
    }

    pub fn from_pairs<K: Into<SlotName>, V: Into<SlotAmount>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        ResourceSlot(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, slot: &str) -> SlotAmount {
        self.0.get(slot).copied().unwrap_or(SlotAmount::ZERO)
    }

    pub fn contains(&self, slot: &str) -> bool {
        self.0.contains_key(slot)
    }

    pub fn set(&mut self, slot: impl Into<SlotName>, amount: impl Into<SlotAmount>) {
        self.0.insert(slot.into(), amount.into());
    }

    pub fn remove(&mut self, slot: &str) -> Option<SlotAmount> {
        self.0.remove(slot)
    }

    /// The slots in name order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &SlotAmount)> {
        self.0.iter()
    }

    /// The slot names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.keys()
    }

    /// The amount of `slot` when present (unlike [`ResourceSlot::get`], no zero for absent).
    pub fn amount(&self, slot: &str) -> Option<SlotAmount> {
        self.0.get(slot).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every amount is zero (or there are none).
    pub fn is_all_zero(&self) -> bool {
        self.0.values().all(SlotAmount::is_zero)
    }

    /// `self <= other` in Backend.AI's sense: no slot of `self` exceeds the same slot of `other`,
    /// a missing slot counting as zero on either side.
    pub fn fits_within(&self, other: &ResourceSlot) -> bool {
        self.0
            .iter()
            .all(|(slot, amount)| *amount <= other.get(slot))
    }

    /// The slots of `self` that exceed `other`, for error messages.
    pub fn exceeding(&self, other: &ResourceSlot) -> Vec<String> {
        self.0
            .iter()
            .filter(|(slot, amount)| **amount > other.get(slot))
            .map(|(slot, _)| slot.to_owned())
            .collect()
    }

    /// Keeps only the slots named in `known`, and adds the missing ones as zero.
    pub fn normalized_to<'a>(&self, known: impl IntoIterator<Item = &'a String>) -> ResourceSlot {
        ResourceSlot(
            known
                .into_iter()
                .map(|slot| (slot.as_str(), self.get(slot)))
                .collect(),
        )
    }

    /// `ResourceSlot.from_policy`: explicit values are kept; other known slots become zero when
    /// the policy is LIMITED and unlimited when it is UNLIMITED.
    pub fn from_policy<'a>(
        explicit: &ResourceSlot,
        unspecified_is_unlimited: bool,
        known: impl IntoIterator<Item = &'a String>,
    ) -> ResourceSlot {
        let fill = if unspecified_is_unlimited {
            SlotAmount::Infinite
        } else {
            SlotAmount::ZERO
        };
        let mut result = explicit.clone();
        for slot in known {
            result.0.get_or_insert(slot, fill);
        }
        result
    }

    /// Parses the JSON stored in a ResourceSlot column or sent by a client.
    pub fn from_json(value: &serde_json::Value) -> Result<ResourceSlot, SlotError> {
        let object = match value {
            serde_json::Value::Object(object) => object,
            serde_json::Value::Null => return Ok(ResourceSlot::new()),
            other => return Err(SlotError::NotAnObject(type_name(other).to_owned())),
        };
        let mut slots = SlotMap::new();
        for (slot, raw) in object {
            let text = match raw {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(SlotError::InvalidAmount {
                        slot: slot.clone(),
                        value: other.to_string(),
                        reason: "expected a string or a number",
                    });
                }
            };
            let amount = SlotAmount::parse(&text).or_else(|reason| {
                // Legacy rows may hold user-input sizes such as "4g".
                parse_binary_size(&text)
                    .map(|bytes| SlotAmount::Finite(Decimal::from(bytes)))
                    .map_err(|_| SlotError::InvalidAmount {
                        slot: slot.clone(),
                        value: text.clone(),
                        reason,
                    })
            })?;
            slots.insert(slot.clone(), amount);
        }
        Ok(ResourceSlot(slots))
    }

    /// Parses a client's resource request (`{"cpu": "2", "mem": "4g", "cuda.shares": 0.5}`):
    /// byte-unit slots accept size suffixes.
    pub fn from_user_input(
        value: &serde_json::Value,
        slot_types: &BTreeMap<String, SlotUnit>,
    ) -> Result<ResourceSlot, SlotError> {
        let object = match value {
            serde_json::Value::Object(object) => object,
            serde_json::Value::Null => return Ok(ResourceSlot::new()),
            other => return Err(SlotError::NotAnObject(type_name(other).to_owned())),
        };
        let mut slots = SlotMap::new();
        for (slot, raw) in object {
            let text = match raw {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.trim().to_owned(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(SlotError::InvalidAmount {
                        slot: slot.clone(),
                        value: other.to_string(),
                        reason: "expected a string or a number",
                    });
                }
            };
            let is_bytes = slot_types.get(slot) == Some(&SlotUnit::Bytes) || slot.contains("mem");
            let amount = if is_bytes {
                parse_binary_size(&text)
                    .map(|bytes| SlotAmount::Finite(Decimal::from(bytes)))
                    .map_err(|_| SlotError::InvalidAmount {
                        slot: slot.clone(),
                        value: text.clone(),
                        reason: "expected a byte size such as 4294967296, \"4g\" or \"512m\"",
                    })?
            } else {
                SlotAmount::parse(&text).map_err(|reason| SlotError::InvalidAmount {
                    slot: slot.clone(),
                    value: text.clone(),
                    reason,
                })?
            };
            if amount < SlotAmount::ZERO {
                return Err(SlotError::InvalidAmount {
                    slot: slot.clone(),
                    value: text,
                    reason: "must not be negative",
                });
            }
            slots.insert(slot.clone(), amount);
        }
        Ok(ResourceSlot(slots))
    }

    /// The JSON object of decimal strings that Backend.AI stores.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(slot, amount)| {
                    (
                        slot.to_owned(),
                        serde_json::Value::String(amount.to_string()),
                    )
                })
                .collect(),
        )
    }
}

fn type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Add<&ResourceSlot> for &ResourceSlot {
    type Output = ResourceSlot;
    fn add(self, other: &ResourceSlot) -> ResourceSlot {
        let mut result = self.clone();
        for (slot, amount) in other.0.iter() {
            let entry = result.0.get_or_insert(slot, SlotAmount::ZERO);
            *entry = *entry + *amount;
        }
        result
    }
}

impl Sub<&ResourceSlot> for &ResourceSlot {
    type Output = ResourceSlot;
    fn sub(self, other: &ResourceSlot) -> ResourceSlot {
        let mut result = self.clone();
        for (slot, amount) in other.0.iter() {
            let entry = result.0.get_or_insert(slot, SlotAmount::ZERO);
            *entry = *entry - *amount;
        }
        result
    }
}

impl FromIterator<(String, SlotAmount)> for ResourceSlot {
    fn from_iter<I: IntoIterator<Item = (String, SlotAmount)>>(iter: I) -> Self {
        ResourceSlot(iter.into_iter().collect())
    }
}

impl Serialize for ResourceSlot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (slot, amount) in self.0.iter() {
            map.serialize_entry(slot, &amount.to_string())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ResourceSlot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SlotVisitor;
        impl<'de> Visitor<'de> for SlotVisitor {
            type Value = ResourceSlot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping slot names to decimal strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, value)) = access.next_entry::<String, serde_json::Value>()? {
                    object.insert(key, value);
                }
                ResourceSlot::from_json(&serde_json::Value::Object(object))
                    .map_err(de::Error::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ResourceSlot::new())
            }
        }
        deserializer.deserialize_any(SlotVisitor)
    }
}

/// Parses a binary size as Backend.AI's `BinarySize.from_str`: `"4g"`, `"512m"`, `"1.5k"`,
/// `"10M"`, `"4GiB"`, or plain bytes. Suffixes are powers of 1024 and case-insensitive.
pub fn parse_binary_size(text: &str) -> Result<u64, SlotError> {
    let invalid = || SlotError::InvalidSize(text.to_owned());
    let trimmed = text.trim();
    let lowered = trimmed.to_ascii_lowercase();
    let without_unit = lowered
        .strip_suffix("ib")
        .or_else(|| lowered.strip_suffix('b'))
        .unwrap_or(&lowered);
    let (number, multiplier) = match without_unit.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let power = match c {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                'p' => 5,
                'e' => 6,
                _ => return Err(invalid()),
            };
            (&without_unit[..without_unit.len() - 1], 1024u64.pow(power))
        }
        _ => (without_unit, 1),
    };
    let number = Decimal::from_str(number.trim()).map_err(|_| invalid())?;
    if number.is_sign_negative() {
        return Err(invalid());
    }
    let bytes = number
        .checked_mul(Decimal::from(multiplier))
        .ok_or_else(invalid)?
        .trunc();
    u64::try_from(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn dec(s: &str) -> SlotAmount {
        SlotAmount::parse(s).unwrap()
    }

    #[test]
    fn amounts_are_written_without_exponent_or_trailing_zeros() {
        assert_eq!(dec("2.000").to_string(), "2");
        assert_eq!(dec("0.50").to_string(), "0.5");
        assert_eq!(dec("1e3").to_string(), "1000");
        assert_eq!(dec("34359738368").to_string(), "34359738368");
        assert_eq!(SlotAmount::Infinite.to_string(), "Infinity");
    }

    #[test]
    fn json_round_trip_keeps_backend_ai_encoding() {
        let stored =
            json!({"cpu": "8", "mem": "34359738368", "cuda.device": "1", "cuda.shares": "0.5"});
        let slots = ResourceSlot::from_json(&stored).unwrap();
        assert_eq!(slots.to_json(), stored);
        let unlimited = json!({"cpu": "Infinity"});
        assert_eq!(
            ResourceSlot::from_json(&unlimited).unwrap().to_json(),
            unlimited
        );
    }

    #[test]
    fn json_rejects_garbage_with_the_slot_name() {
        let err = ResourceSlot::from_json(&json!({"cpu": "two"})).unwrap_err();
        assert!(err.to_string().contains("\"cpu\""), "{err}");
        assert!(ResourceSlot::from_json(&json!([1])).is_err());
    }

    #[test]
    fn comparison_treats_missing_slots_as_zero() {
        let request = ResourceSlot::from_json(&json!({"cpu": "2", "mem": "1024"})).unwrap();
        let free = ResourceSlot::from_json(&json!({"cpu": "4", "mem": "2048", "cuda.device": "1"}))
            .unwrap();
        assert!(request.fits_within(&free));
        let gpu_request = ResourceSlot::from_json(&json!({"cuda.device": "2"})).unwrap();
        assert!(!gpu_request.fits_within(&free));
        assert_eq!(gpu_request.exceeding(&free), vec!["cuda.device".to_owned()]);
        let zero_gpu = ResourceSlot::from_json(&json!({"tpu.device": "0"})).unwrap();
        assert!(zero_gpu.fits_within(&free));
    }

    #[test]
    fn arithmetic_syncs_keys() {
        let a = ResourceSlot::from_json(&json!({"cpu": "1"})).unwrap();
        let b = ResourceSlot::from_json(&json!({"mem": "10"})).unwrap();
        assert_eq!((&a + &b).to_json(), json!({"cpu": "1", "mem": "10"}));
        assert_eq!((&a - &b).to_json(), json!({"cpu": "1", "mem": "-10"}));
    }

    #[test]
    fn policy_fills_unspecified_slots() {
        let known = ["cpu".to_owned(), "mem".to_owned(), "cuda.device".to_owned()];
        let explicit = ResourceSlot::from_json(&json!({"cpu": "4"})).unwrap();
        let unlimited = ResourceSlot::from_policy(&explicit, true, &known);
        assert_eq!(unlimited.get("mem"), SlotAmount::Infinite);
        assert_eq!(unlimited.get("cpu"), dec("4"));
        let limited = ResourceSlot::from_policy(&explicit, false, &known);
        assert_eq!(limited.get("cuda.device"), SlotAmount::ZERO);
    }

    #[test]
    fn user_input_accepts_sizes_for_memory() {
        let types = intrinsic_slot_types();
        let slots = ResourceSlot::from_user_input(
            &json!({"cpu": 2, "mem": "4g", "cuda.shares": "0.5"}),
            &types,
        )
        .unwrap();
        assert_eq!(
            slots.to_json(),
            json!({"cpu": "2", "cuda.shares": "0.5", "mem": "4294967296"})
        );
        assert!(ResourceSlot::from_user_input(&json!({"cpu": "-1"}), &types).is_err());
        assert!(ResourceSlot::from_user_input(&json!({"mem": "lots"}), &types).is_err());
    }

    #[test]
    fn binary_sizes() {
        assert_eq!(parse_binary_size("256m").unwrap(), 256 * 1024 * 1024);
        assert_eq!(parse_binary_size("10M").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_binary_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_binary_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_binary_size("1073741824").unwrap(), 1 << 30);
        assert!(parse_binary_size("12x").is_err());
        assert!(parse_binary_size("-1").is_err());
        assert!(parse_binary_size("").is_err());
    }

    proptest! {
        #[test]
        fn adding_then_subtracting_gives_back_the_original(
            a in 0i64..1_000_000_000, b in 0i64..1_000_000_000, scale in 0u32..4,
        ) {
            let x = ResourceSlot::from_pairs([("cpu", Decimal::new(a, scale))]);
            let y = ResourceSlot::from_pairs([("cpu", Decimal::new(b, scale))]);
            let back = &(&x + &y) - &y;
            prop_assert_eq!(back.get("cpu"), x.get("cpu"));
            prop_assert!(x.fits_within(&(&x + &y)));
        }

        #[test]
        fn json_encoding_round_trips(a in 0i64..i64::MAX, scale in 0u32..10) {
            let x = ResourceSlot::from_pairs([("mem", Decimal::new(a, scale))]);
            let back = ResourceSlot::from_json(&x.to_json()).unwrap();
            prop_assert_eq!(back, x);
        }
    }
}
