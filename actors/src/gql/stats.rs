//! Live statistics the agents keep in Redis database 0 (`stat`): one msgpack document per agent
//! id and per kernel id. Read in one `MGET` per list and shown as JSON.

use serde_json::Value as Json;

use super::context::GqlRequest;
use crate::wire::msgpack;
pub use crate::wire::msgpack_json::msgpack_to_json;

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
