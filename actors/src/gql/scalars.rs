//! The original's custom GraphQL scalars: `JSONString` (JSON carried as a string), `DateTime`
//! (ISO 8601 text) and `BigInt` (integers beyond 32 bits).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, Utc};

use crate::compat::pyjson;
use bai_schema::minilang::compile::parse_datetime;

/// graphene's `JSONString`: a JSON document serialized to a string with Python's `json.dumps`.
/// As input, a string holding JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonString(pub serde_json::Value);

#[Scalar(name = "JSONString")]
impl ScalarType for JsonString {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => serde_json::from_str(&text)
                .map(JsonString)
                .map_err(|e| InputValueError::custom(format!("not a JSON document: {e}"))),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(pyjson::dumps(&self.0))
    }
}

impl From<serde_json::Value> for JsonString {
    fn from(value: serde_json::Value) -> JsonString {
        JsonString(value)
    }
}

/// graphene's `DateTime`: `datetime.isoformat()` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GqlDateTime(pub DateTime<Utc>);

#[Scalar(name = "DateTime")]
impl ScalarType for GqlDateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => parse_datetime(text).map(GqlDateTime).ok_or_else(|| {
                InputValueError::custom(format!("{text:?} is not an ISO 8601 date/time"))
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(pyjson::isoformat(&self.0))
    }
}

impl From<DateTime<Utc>> for GqlDateTime {
    fn from(at: DateTime<Utc>) -> GqlDateTime {
        GqlDateTime(at)
    }
}

/// The largest integer a JavaScript client reads exactly (2^53 - 1); the original refuses
/// anything larger.
const SAFE_MAX_INT: i64 = 9_007_199_254_740_991;

/// The original's `BigInt`: an integer that goes out as a JSON integer within 32 bits and as
/// a float beyond (Python's `float(int(n))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigInt(pub i64);

#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        let number = match &value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.abs() <= SAFE_MAX_INT => Ok(BigInt(n)),
            Some(_) => Err(InputValueError::custom("integer out of the safe range")),
            None => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        if i32::try_from(self.0).is_ok() {
            Value::Number(self.0.into())
        } else {
            serde_json::Number::from_f64(self.0 as f64)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_round_trips_through_python_form() {
        let value = JsonString(serde_json::json!({"cpu": "1"}));
        assert_eq!(value.to_value(), Value::String(r#"{"cpu": "1"}"#.into()));
        let parsed = JsonString::parse(Value::String(r#"{"a": [1]}"#.into())).unwrap();
        assert_eq!(parsed.0, serde_json::json!({"a": [1]}));
        assert!(JsonString::parse(Value::String("{".into())).is_err());
    }

    #[test]
    fn bigint_goes_float_beyond_32_bits() {
        assert_eq!(
            serde_json::to_string(&BigInt(938).to_value()).unwrap(),
            "938"
        );
        assert_eq!(
            serde_json::to_string(&BigInt(15_000_000_000).to_value()).unwrap(),
            "15000000000.0"
        );
    }
}
