//! Reading and writing the idle checkers' Redis state: the activity mark (`last_access`) the
//! session calls and the lifecycle events refresh, and the `idleChecks` report that
//! `GET /session/{id}` and GraphQL `idle_checks` show.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::config::{CheckerKind, IdleConfig};
use super::keys;
use crate::etcd::EtcdStore;
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;

/// Marks the session active now (`_update_timeout`): its network timeout counts from here.
pub async fn touch(live: &ConnectionManager, session_id: Uuid) -> redis::RedisResult<()> {
    let mut live = live.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut live).await?;
    let now = secs as f64 + micros as f64 / 1e6;
    live.set_ex::<_, _, ()>(
        keys::last_access(session_id),
        format!("{now:.6}"),
        keys::MIN_ACTIVITY_TTL_SECS,
    )
    .await
}

/// The checkers that run, as the checker host would list them: `session_lifetime` alone when
/// the configuration cannot be read.
pub async fn enabled_checkers(etcd: &EtcdStore) -> Vec<CheckerKind> {
    match etcd.get_prefix("config/idle").await {
        Ok(tree) => IdleConfig::from_tree(&tree)
            .map(|c| c.checkers)
            .unwrap_or_else(|_| vec![CheckerKind::SessionLifetime]),
        Err(_) => vec![CheckerKind::SessionLifetime],
    }
}

fn decoded(raw: Option<Vec<u8>>) -> Value {
    raw.and_then(|bytes| msgpack::decode(&bytes).ok())
        .map(|value| msgpack_to_json(&value))
        .unwrap_or(Value::Null)
}

/// `get_idle_check_report`: per checker, the remaining seconds last reported (`null` before
/// the first check), how to read them, and the utilization averages.
pub async fn idle_check_report(
    live: Option<&ConnectionManager>,
    checkers: &[CheckerKind],
    session_id: Uuid,
) -> Value {
    let mut report = Map::new();
    for checker in checkers {
        let (remaining, extra) = match live {
            Some(live) => {
                let mut live = live.clone();
                let remaining: Option<Vec<u8>> = live
                    .get(keys::report(session_id, *checker))
                    .await
                    .unwrap_or(None);
                let extra = if *checker == CheckerKind::Utilization {
                    let raw: Option<Vec<u8>> = live
                        .get(keys::utilization_extra(session_id))
                        .await
                        .unwrap_or(None);
                    decoded(raw)
                } else {
                    Value::Null
                };
                (decoded(remaining), extra)
            }
            None => (Value::Null, Value::Null),
        };
        report.insert(
            checker.name().to_owned(),
            json!({
                "remaining": remaining,
                "remaining_time_type": checker.remaining_time_type(),
                "extra": extra,
            }),
        );
    }
    Value::Object(report)
}
