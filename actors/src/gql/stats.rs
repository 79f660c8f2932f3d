//! Live statistics the agents keep in Redis database 0 (`stat`): one msgpack document per agent
//! id and per kernel id. Read in one `MGET` per list and shown as JSON.

use serde_json::{Map, Number, Value as Json};

use super::context::GqlRequest;
use crate::wire::msgpack::{self, Value};

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

/// The live statistics of `ids` (agent or kernel ids), in the same order; missing or
/// undecodable ones are `None`. Redis trouble reads as no statistics.
pub async fn live_stats(request: &GqlRequest, ids: &[String]) -> Vec<Option<Json>> {
    let none = || vec![None; ids.len()];
    let Some(redis) = &request.redis_stat else {
        return none();
    };
    if ids.is_empty() {
        return Vec::new();
    }
    let mut connection = redis.clone();
    let raw: Vec<Option<Vec<u8>>> = match redis::cmd("MGET")
        .arg(ids)
        .query_async(&mut connection)
        .await
    {
        Ok(raw) => raw,
        Err(_) => return none(),
    };
    raw.into_iter()
        .map(|bytes| {
            bytes
                .and_then(|b| msgpack::decode(&b).ok())
                .map(|value| msgpack_to_json(&value))
        })
        .collect()
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
