//! Finishing deletions a crash interrupted. A delete marks its row `deleting`, has the proxy
//! delete the folder, then removes the row; a worker that dies in between leaves a row that
//! can neither be used nor deleted again. This sweep re-drives such rows: the proxy's delete
//! is idempotent (a folder already gone counts as deleted), so running it twice, or in two
//! workers at once, is harmless.

use std::time::Duration;

use bai_schema::queries::QueryError;
use bai_schema::queries::vfolder::{delete_vfolder_row, stale_deletions};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use super::broker::StorageBroker;
use super::ids::VFolderId;

/// How often a worker looks for interrupted deletions. They are rare (a crash mid-request),
/// so a minute costs nothing and unblocks the folder soon after.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a row must have been `deleting` before the sweep takes it over: far longer than
/// any live delete request (whose proxy call times out after `client::REQUEST_TIMEOUT`).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Why a sweep could not run at all (a folder that cannot be finished only counts as failed).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the staleness limit is out of range: {0}")]
    StaleAfter(#[from] chrono::OutOfRangeError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    pub finished: usize,
    pub failed: usize,
}

/// Finishes every deletion stuck for longer than `stale_after`.
pub async fn sweep_interrupted_deletions(
    db: &Pool,
    broker: &StorageBroker,
    stale_after: Duration,
    log: &slog::Logger,
) -> Result<SweepOutcome, SweepError> {
    let client = db.get().await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(stale_after)?;
    let rows = stale_deletions(&client, cutoff).await?;
    let view = broker.current();
    let mut outcome = SweepOutcome::default();
    for (id, host, quota_scope_id) in rows {
        let vfid = match VFolderId::from_row(quota_scope_id.as_deref(), id) {
            Ok(vfid) => vfid,
            Err(e) => {
                slog::error!(log, "a vfolder stuck in deleting has a bad quota scope"; "id" => %id, "error" => %e);
                outcome.failed += 1;
                continue;
            }
        };
        let on_proxy = if host.is_empty() {
            Ok(())
        } else {
            match view.resolve(&host) {
                Ok((proxy, volume)) => proxy.delete_folder(&volume, &vfid).await.map(drop),
                Err(e) => Err(e),
            }
        };
        match on_proxy {
            Ok(()) => match delete_vfolder_row(&client, id).await {
                Ok(_) => {
                    slog::info!(log, "finished an interrupted vfolder deletion"; "vfid" => %vfid, "host" => &host);
                    outcome.finished += 1;
                }
                Err(e) => {
                    slog::warn!(log, "cannot remove the row of a deleted vfolder"; "vfid" => %vfid, "error" => %e);
                    outcome.failed += 1;
                }
            },
            Err(e) => {
                slog::warn!(log, "cannot finish an interrupted vfolder deletion yet"; "vfid" => %vfid, "error" => %e);
                outcome.failed += 1;
            }
        }
    }
    Ok(outcome)
}

/// Sweeps every [`SWEEP_INTERVAL`] on the current actix arbiter until `stopping` is cancelled
/// (the worker cancels it when it starts to stop). A sweep under way when that happens is
/// dropped where it stands: each step is idempotent, so the next worker's sweep redoes it.
pub fn spawn_sweeper(
    db: Pool,
    broker: StorageBroker,
    stopping: CancellationToken,
    log: slog::Logger,
) -> tokio::task::JoinHandle<()> {
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopping.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let swept = tokio::select! {
                biased;
                () = stopping.cancelled() => break,
                swept = sweep_interrupted_deletions(&db, &broker, STALE_AFTER, &log) => swept,
            };
            match swept {
                Ok(outcome) if outcome == SweepOutcome::default() => {}
                Ok(outcome) => slog::info!(log, "interrupted vfolder deletions swept";
                    "finished" => outcome.finished, "failed" => outcome.failed),
                Err(e) => {
                    slog::warn!(log, "cannot sweep interrupted vfolder deletions"; "error" => %e)
                }
            }
        }
        slog::debug!(log, "the vfolder deletion sweeper stopped");
    })
}
