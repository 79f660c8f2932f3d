//! The one reader of the Redis `events` stream for tests: every entry written so far, decoded
//! by the manager's own codec (`wire::decode_entry`), in stream order.

use bai_actors::redis::db;
use bai_actors::wire::{Event, decode_entry};
use bai_testkit::TestEnv;

/// The events on `env`'s stream so far (entries the codec cannot read are left out).
pub async fn recorded_events(env: &TestEnv) -> Vec<Event> {
    let mut redis = env.redis.connection(db::STREAM).await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("events")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .expect("reading the events stream");
    reply
        .ids
        .iter()
        .filter_map(|entry| {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
                .map
                .iter()
                .filter_map(|(key, value)| match value {
                    redis::Value::BulkString(bytes) => {
                        Some((key.as_bytes().to_vec(), bytes.clone()))
                    }
                    _ => None,
                })
                .collect();
            decode_entry(&fields).ok().map(|(_, event)| event)
        })
        .collect()
}
