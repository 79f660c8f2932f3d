//! The statistics syncer (`[debug] periodic-sync-stats`): on each `do_sync_kernel_stats` an
//! agent sends after collecting statistics, copies those kernels' statistics from Redis db
//! `stat` (key = kernel id, msgpack) into `kernels.last_stat`, as the original's
//! `registry.sync_kernel_stats`. Started only when the flag is on.
//!
//! Bounded: the ids of one batch of events are deduplicated and handled in chunks of
//! [`MAX_IDS_PER_STATEMENT`], each one Redis `MGET` and one `UPDATE`. Ids that are not UUIDs are
//! skipped with a warning; kernels that are not live (see
//! `bai_schema::queries::kernel_stats::LIVE_KERNEL_STATUSES`) are not touched; a kernel without
//! statistics in Redis (or with unreadable ones) keeps its `last_stat`. Best effort: a Redis or
//! database failure is logged and the events acknowledged, since the agent sends the next one
//! after its next collection.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::prelude::*;
use bai_schema::queries::kernel_stats::set_live_last_stats;
use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;
use serde_json::Value as Json;
use slog::{Logger, debug, warn};
use uuid::Uuid;

use crate::event_bus::{EventBatch, EventInterest, ReceivedEvent, Unhandled};
use crate::wire::Event;
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;

/// The syncer's name in the supervision registry.
pub const ACTOR_NAME: &str = "stat-sync";

/// At most this many kernels per Redis `MGET` and per `UPDATE`.
pub const MAX_IDS_PER_STATEMENT: usize = 500;

pub fn interest() -> EventInterest {
    EventInterest::names(&["do_sync_kernel_stats"])
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("reading the statistics from redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Query(#[from] bai_schema::queries::QueryError),
}

/// The kernel ids a batch asks for: the UUIDs, deduplicated and sorted, and the ids that are not
/// UUIDs (to be warned about).
pub fn requested_kernels(events: &[ReceivedEvent]) -> (Vec<Uuid>, Vec<String>) {
    let mut ids = BTreeSet::new();
    let mut invalid = Vec::new();
    for received in events {
        let Event::DoSyncKernelStats { kernel_ids } = &received.event else {
            continue;
        };
        for raw in kernel_ids {
            match Uuid::parse_str(raw) {
                Ok(id) => {
                    ids.insert(id);
                }
                Err(_) => invalid.push(raw.clone()),
            }
        }
    }
    (ids.into_iter().collect(), invalid)
}

/// Pairs each kernel with its decoded statistics; kernels without a value in Redis, or whose
/// value is not msgpack, are left out.
pub fn decoded_stats(ids: &[Uuid], raws: Vec<Option<Vec<u8>>>) -> (Vec<Uuid>, Vec<Json>) {
    let mut found_ids = Vec::new();
    let mut stats = Vec::new();
    for (id, raw) in ids.iter().zip(raws) {
        let Some(value) = raw.and_then(|bytes| msgpack::decode(&bytes).ok()) else {
            continue;
        };
        found_ids.push(*id);
        stats.push(msgpack_to_json(&value));
    }
    (found_ids, stats)
}

pub struct StatSyncDeps {
    pub pool: Pool,
    /// Redis database `stat`.
    pub stat: ConnectionManager,
    pub log: Logger,
}

pub struct StatSyncer {
    deps: Arc<StatSyncDeps>,
}

impl StatSyncer {
    pub fn new(deps: StatSyncDeps) -> StatSyncer {
        StatSyncer {
            deps: Arc::new(deps),
        }
    }
}

impl Actor for StatSyncer {
    type Context = Context<Self>;
}

impl Supervised for StatSyncer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        warn!(self.deps.log, "statistics syncer: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(StatSyncer, ACTOR_NAME);

/// Copies the statistics of `ids` (at most [`MAX_IDS_PER_STATEMENT`] at a time); returns how
/// many kernels were updated.
pub async fn sync_kernel_stats(deps: &StatSyncDeps, ids: &[Uuid]) -> Result<u64, SyncError> {
    let mut updated = 0;
    for chunk in ids.chunks(MAX_IDS_PER_STATEMENT) {
        let keys: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
        let mut redis = deps.stat.clone();
        let raws: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut redis)
            .await?;
        let (found, stats) = decoded_stats(chunk, raws);
        if found.is_empty() {
            continue;
        }
        let client = deps.pool.get().await?;
        updated += set_live_last_stats(&client, &found, &stats).await?;
    }
    Ok(updated)
}

impl Handler<EventBatch> for StatSyncer {
    type Result = ResponseFuture<Result<(), Unhandled>>;

    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move {
            let (ids, invalid) = requested_kernels(&batch.events);
            if !invalid.is_empty() {
                warn!(deps.log, "do_sync_kernel_stats: skipping ids that are not UUIDs";
                    "count" => invalid.len(), "first" => invalid.first().map(|id| format!("{id:.64}")));
            }
            match sync_kernel_stats(&deps, &ids).await {
                Ok(updated) => {
                    debug!(deps.log, "synced kernel statistics";
                        "requested" => ids.len(), "updated" => updated)
                }
                Err(error) => {
                    warn!(deps.log, "cannot sync kernel statistics"; "error" => %error)
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::wire::Value;

    use super::*;

    fn received(kernel_ids: &[&str]) -> ReceivedEvent {
        ReceivedEvent {
            stream_id: "1-0".into(),
            source: "i-agent".into(),
            event: Event::DoSyncKernelStats {
                kernel_ids: kernel_ids.iter().map(|id| (*id).to_owned()).collect(),
            },
        }
    }

    #[test]
    fn a_batch_asks_for_each_uuid_once_and_names_the_others() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let other = ReceivedEvent {
            event: Event::AgentStarted { reason: "x".into() },
            ..received(&[])
        };
        let (ids, invalid) = requested_kernels(&[
            received(&[&a.to_string(), "kernel-1"]),
            other,
            received(&[&b.to_string(), &a.to_string().to_uppercase(), ""]),
        ]);
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(ids, expected);
        assert_eq!(invalid, vec!["kernel-1".to_owned(), String::new()]);
    }

    #[test]
    fn missing_and_unreadable_statistics_are_left_out() {
        let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        let stat = Value::map_of([("cpu_util", Value::map_of([("pct", Value::str("5.0"))]))]);
        let (found, stats) = decoded_stats(
            &ids,
            vec![Some(msgpack::encode(&stat)), None, Some(vec![0xc1])],
        );
        assert_eq!(found, vec![ids[0]]);
        assert_eq!(stats, vec![serde_json::json!({"cpu_util": {"pct": "5.0"}})]);
    }
}
