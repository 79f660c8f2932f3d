//! msgpack values as JSON, for statistics the agents keep in Redis (`stat`) and show or store
//! as JSON (`live_stat`, `kernels.last_stat`).

use serde_json::{Map, Number, Value as Json};

use super::msgpack::Value;

/// msgpack as JSON: maps with non-string keys get their keys' text, binary becomes a string
/// when it is UTF-8 (else null), extension values become null.
pub fn msgpack_to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::UInt(u) => Json::Number((*u).into()),
        Value::F32(f) => Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Bin(bytes) => {
            std::str::from_utf8(bytes).map_or(Json::Null, |s| Json::String(s.to_owned()))
        }
        Value::Array(items) => Json::Array(items.iter().map(msgpack_to_json).collect()),
        Value::Map(pairs) => {
            let mut object = Map::new();
            for (key, item) in pairs {
                let key = match key {
                    Value::Str(s) => s.clone(),
                    other => match msgpack_to_json(other) {
                        Json::String(s) => s,
                        json => json.to_string(),
                    },
                };
                object.insert(key, msgpack_to_json(item));
            }
            Json::Object(object)
        }
        Value::Ext(..) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_maps_become_json_objects() {
        let value = Value::map_of([
            (
                "node",
                Value::map_of([("cpu_util", Value::map_of([("pct", Value::str("12.5"))]))]),
            ),
            ("n", Value::Int(3)),
        ]);
        assert_eq!(
            msgpack_to_json(&value),
            serde_json::json!({"node": {"cpu_util": {"pct": "12.5"}}, "n": 3})
        );
    }
}
