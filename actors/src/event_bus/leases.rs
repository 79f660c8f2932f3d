//! The leases on what this worker holds: the stream ids it has read or claimed and not yet
//! acknowledged, and the task that keeps renewing their claim so that no other worker's
//! XAUTOCLAIM takes them over while they wait (in the reader's queue, in a subscriber's lane,
//! with a subscriber, or kept for another try).
//!
//! The task has a connection of its own and runs beside the reader on the reader's thread.
//! Renewing between reads was not enough: a blocking XREADGROUP on a quiet stream, or a wait for
//! room in a full queue, can each outlast [`CLAIM_MIN_IDLE`], and the held entries then looked
//! abandoned to every other worker, which took them and handled them a second time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;

use super::consumer::{CLAIM_MIN_IDLE, ConsumerSettings, open_connection};
use super::reply::RawEntry;
use crate::redis::RedisSettings;
use crate::wire::entry::EVENT_STREAM;

/// Held entries older than this get their claim renewed, well before [`CLAIM_MIN_IDLE`] lets
/// another worker take them.
pub const LEASE_RENEW_AFTER: Duration = Duration::from_millis(400);
/// How often held entries are looked at for renewal.
pub const RENEW_INTERVAL: Duration = Duration::from_millis(200);

const _: () = assert!(
    LEASE_RENEW_AFTER.as_millis() + RENEW_INTERVAL.as_millis() < CLAIM_MIN_IDLE.as_millis()
);

/// Stream ids this worker holds in memory (queued, being handled, or kept for another try),
/// with when each was last claimed (read, claimed or renewed): its own XAUTOCLAIM does not hand
/// them out a second time, and [`keep_leases`] renews their claim before they look idle to
/// anyone.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<Held>>);

#[derive(Debug, Default)]
struct Held {
    claimed_at: HashMap<String, Instant>,
    /// While the reader's XAUTOCLAIM is out: the ids let go meanwhile. XAUTOCLAIM returns what
    /// was held when it ran; one acknowledged before the reply is checked would otherwise look
    /// like an entry nobody holds, and be handled again.
    released_during_claim: Option<HashSet<String>>,
}

impl InFlight {
    fn with<R>(&self, f: impl FnOnce(&mut Held) -> R) -> R {
        match self.0.lock() {
            Ok(mut held) => f(&mut held),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn insert_all<'a>(&self, ids: impl IntoIterator<Item = &'a str>, claimed_at: Instant) {
        self.with(|held| {
            held.claimed_at
                .extend(ids.into_iter().map(|id| (id.to_owned(), claimed_at)))
        });
    }

    pub fn remove_all<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.with(|held| {
            for id in ids {
                if let Some((id, _)) = held.claimed_at.remove_entry(id)
                    && let Some(released) = &mut held.released_during_claim
                {
                    released.insert(id);
                }
            }
        });
    }

    /// Called before an XAUTOCLAIM: from now until [`InFlight::not_held`], what is let go
    /// is remembered.
    pub fn claim_started(&self) {
        self.with(|held| held.released_during_claim = Some(HashSet::new()));
    }

    /// Ends a claim that brought nothing back (it failed).
    pub fn claim_failed(&self) {
        self.with(|held| held.released_during_claim = None);
    }

    /// Keeps the entries neither held in memory nor let go since the claim started.
    pub fn not_held(&self, entries: Vec<RawEntry>) -> Vec<RawEntry> {
        self.with(|held| {
            let released = held.released_during_claim.take().unwrap_or_default();
            entries
                .into_iter()
                .filter(|entry| {
                    !held.claimed_at.contains_key(&entry.id) && !released.contains(&entry.id)
                })
                .collect()
        })
    }

    /// The held entries last claimed before `before`, marked as claimed `now`.
    pub fn renew_older_than(&self, before: Instant, now: Instant) -> Vec<String> {
        self.with(|held| {
            held.claimed_at
                .iter_mut()
                .filter(|(_, claimed_at)| **claimed_at < before)
                .map(|(id, claimed_at)| {
                    *claimed_at = now;
                    id.clone()
                })
                .collect()
        })
    }

    pub fn len(&self) -> usize {
        self.with(|held| held.claimed_at.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Renews the claim of held entries every [`RENEW_INTERVAL`], for as long as the reader runs
/// (it is spawned on the reader's runtime and ends with it). Best effort: when Redis cannot be
/// reached, another worker may take some held entries too, which idempotent handlers allow;
/// this worker's own XAUTOCLAIM leaves what it holds alone anyway.
pub(super) async fn keep_leases(
    log: slog::Logger,
    redis: RedisSettings,
    settings: ConsumerSettings,
    in_flight: InFlight,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut failing = false;
    let mut tick = tokio::time::interval(RENEW_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let Some(before) = now.checked_sub(LEASE_RENEW_AFTER) else {
            continue;
        };
        let ids = in_flight.renew_older_than(before, now);
        if ids.is_empty() {
            continue;
        }
        let renewed = match &mut connection {
            Some(open) => renew(open, &settings, &ids).await,
            None => match open_connection(&redis, None).await {
                Ok(mut open) => {
                    let renewed = renew(&mut open, &settings, &ids).await;
                    connection = Some(open);
                    renewed
                }
                Err(error) => Err(error),
            },
        };
        match renewed {
            Ok(()) => failing = false,
            Err(error) => {
                crate::metrics::bump(&crate::metrics::METRICS.redis_errors);
                // Once per outage: it is tried again five times a second.
                if !failing {
                    slog::warn!(log, "event bus: cannot renew the claim of held entries";
                        "count" => ids.len(), "error" => %error);
                }
                failing = true;
                if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                    connection = None;
                }
            }
        }
    }
}

/// `XCLAIM events <group> <consumer> 0 <ids> JUSTID`: resets the entries' idle time, wherever
/// they wait. (Entries the stream has trimmed meanwhile leave the pending list; this worker
/// already has their contents.)
async fn renew(
    connection: &mut MultiplexedConnection,
    settings: &ConsumerSettings,
    ids: &[String],
) -> Result<(), redis::RedisError> {
    let _: RedisValue = redis::cmd("XCLAIM")
        .arg(EVENT_STREAM)
        .arg(&settings.group)
        .arg(&settings.consumer)
        .arg(0)
        .arg(ids)
        .arg("JUSTID")
        .query_async(connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> RawEntry {
        RawEntry {
            id: id.to_owned(),
            fields: None,
        }
    }

    #[test]
    fn entries_held_in_memory_are_not_handed_out_twice() {
        let held = InFlight::default();
        held.insert_all(["1-0", "2-0"], Instant::now());
        let fresh = held.not_held(vec![entry("1-0"), entry("3-0")]);
        assert_eq!(fresh, vec![entry("3-0")]);
        held.remove_all(["1-0"]);
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn an_entry_let_go_while_a_claim_is_out_is_not_taken_for_an_abandoned_one() {
        let held = InFlight::default();
        held.insert_all(["1-0", "2-0"], Instant::now());
        held.claim_started();
        // Handled and acknowledged after XAUTOCLAIM returned it, before the reply is checked.
        held.remove_all(["1-0"]);
        assert_eq!(
            held.not_held(vec![entry("1-0"), entry("3-0")]),
            vec![entry("3-0")]
        );
        // Outside a claim nothing is remembered.
        held.remove_all(["2-0"]);
        assert_eq!(held.not_held(vec![entry("2-0")]), vec![entry("2-0")]);
        // Nor after a claim that failed.
        held.insert_all(["4-0"], Instant::now());
        held.claim_started();
        held.remove_all(["4-0"]);
        held.claim_failed();
        assert_eq!(held.not_held(vec![entry("4-0")]), vec![entry("4-0")]);
    }

    #[test]
    fn held_entries_are_renewed_once_they_age() {
        let held = InFlight::default();
        let start = Instant::now();
        held.insert_all(["1-0"], start);
        let later = start + std::time::Duration::from_millis(300);
        held.insert_all(["2-0"], later);
        let renewed = held.renew_older_than(later, later + std::time::Duration::from_millis(100));
        assert_eq!(renewed, ["1-0"]);
        assert!(held.renew_older_than(later, later).is_empty());
    }
}
