//! Copying the agents' live container statistics into `kernels.last_stat` for a batch of
//! kernels at once (the original's `registry.sync_kernel_stats`, run on `do_sync_kernel_stats`
//! when `[debug] periodic-sync-stats` is on).

use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, db_err};

/// Kernel statuses whose container exists, so its statistics are live: only these are touched.
pub const LIVE_KERNEL_STATUSES: &[&str] = &[
    "RUNNING",
    "RESTARTING",
    "RESIZING",
    "SUSPENDED",
    "TERMINATING",
];

/// Sets `last_stat` of each listed kernel that is live, in one statement; returns how many
/// rows changed. `ids` and `stats` are parallel (the callers bound their length).
pub async fn set_live_last_stats(
    client: &impl GenericClient,
    ids: &[Uuid],
    stats: &[Value],
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels SET last_stat = t.stat
             FROM unnest($1::uuid[], $2::jsonb[]) AS t(id, stat)
             WHERE kernels.id = t.id AND kernels.status::text = ANY($3::text[])",
            &[&ids, &stats, &LIVE_KERNEL_STATUSES],
        )
        .await
        .map_err(db_err("storing the kernels' live statistics"))
}
