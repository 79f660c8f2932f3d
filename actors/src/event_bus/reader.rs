//! The reading half of the event bus: XAUTOCLAIM what a dead worker (or this one) left pending,
//! XREADGROUP new entries, and hand the raw batches to the handling half through a bounded
//! queue, without waiting for them to be handled.
//!
//! Reading runs ahead of handling because 26.x agents add their events with
//! `XADD events MAXLEN ~ 128`: every entry the group has not read within about 128 newer
//! entries is trimmed away for good. A reader that waited for each batch's handlers (database
//! transactions) lost `kernel_terminated` events under load, and those sessions stayed
//! TERMINATING until the reconciler's timeout. Entries read and not yet handled are already in
//! this consumer's pending list, so the stream's trimming cannot take them any more (a worker
//! that dies with them leaves them for XAUTOCLAIM). The queue holds at most
//! [`MAX_QUEUED_ENTRIES`] entries, however they were batched (under load XREADGROUP returns a
//! few entries at a time, so a bound in batches let a slow handler stop the reader after a
//! few dozen entries), so a handler that falls behind stops the reader instead of filling
//! memory, and other workers read the rest.
//!
//! The reader runs on a thread of its own, with a runtime of its own: a worker's actors share
//! one thread, and a scheduling pass or a large heartbeat flush can keep that thread busy for
//! a few hundred milliseconds, in which 10,000 agents add about a thousand entries. A reader on
//! the actors' thread read none of them meanwhile, and the trimming took all but the last
//! hundred or so. (A handler that stays behind for longer than the queue holds still stops
//! the reader; only a faster handler helps then.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::consumer::{CLAIM_INTERVAL, CLAIM_MIN_IDLE, READ_BATCH, READ_BLOCK, TRIM_INTERVAL};
use super::consumer::{ConsumerSettings, RETRY_DELAY, open_connection, shape_error};
use super::reply::{RawEntry, autoclaim_reply, read_reply};
use crate::wire::entry::{EVENT_STREAM, compare_stream_ids};

/// Held entries older than this get their claim renewed, well before [`CLAIM_MIN_IDLE`] lets
/// another worker take them.
pub const LEASE_RENEW_AFTER: Duration = Duration::from_millis(400);
/// How often the reader looks for held entries to renew (and always right before it claims).
pub const RENEW_INTERVAL: Duration = Duration::from_millis(200);

/// Entries read and waiting to be handled, per worker: a few MiB of buffer, several seconds
/// of a busy cluster's events.
pub const MAX_QUEUED_ENTRIES: usize = 8 * READ_BATCH;

/// One read: its entries, when they were read (their idle time in the pending list starts
/// then; see the handler's lease renewal) and their room in the queue, given back
/// when the batch is dropped.
#[derive(Debug)]
pub struct ReadBatch {
    pub entries: Vec<RawEntry>,
    pub read_at: Instant,
    pub room: Vec<OwnedSemaphorePermit>,
}

impl ReadBatch {
    /// Appends a later batch; the earlier read time stands.
    pub fn absorb(&mut self, later: ReadBatch) {
        self.entries.extend(later.entries);
        self.room.extend(later.room);
    }
}

/// The queue between the reader and the handler, bounded in entries.
pub struct QueueSender {
    pub batches: mpsc::UnboundedSender<ReadBatch>,
    pub room: Arc<Semaphore>,
}

/// A queue of at most [`MAX_QUEUED_ENTRIES`] entries.
pub fn queue() -> (QueueSender, mpsc::UnboundedReceiver<ReadBatch>) {
    let (batches, received) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(MAX_QUEUED_ENTRIES));
    (QueueSender { batches, room }, received)
}

/// Stream ids this worker holds in memory (queued, being handled, or kept for another try),
/// with when each was last claimed (read, claimed or renewed): its own XAUTOCLAIM does not hand
/// them out a second time, and the reader renews their claim before they look idle to anyone.
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

/// The reader's thread, which ends when this is dropped (with the bus's handling half): the
/// reader stops at once, in a read or waiting for room in the queue.
pub struct ReaderThread {
    _stop: oneshot::Sender<()>,
    room: Arc<Semaphore>,
}

impl Drop for ReaderThread {
    fn drop(&mut self) {
        self.room.close();
    }
}

pub(super) struct Reader {
    pub log: slog::Logger,
    pub redis: crate::redis::RedisSettings,
    pub settings: ConsumerSettings,
    pub in_flight: InFlight,
    pub queue: QueueSender,
    pub connection: Option<MultiplexedConnection>,
    pub last_claim: Option<Instant>,
    pub last_renewal: Option<Instant>,
    pub last_trim: Option<Instant>,
    /// The first id of the latest batch: everything before it has been delivered.
    pub trim_candidate: Option<String>,
}

/// Why the reader stopped.
enum Stop {
    /// The handling half is gone (the actor stopped).
    QueueClosed,
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for Stop {
    fn from(error: redis::RedisError) -> Stop {
        Stop::Redis(error)
    }
}

impl Reader {
    async fn connection(&mut self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = open_connection(&self.redis, Some(READ_BLOCK)).await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Starts reading on a thread of its own (see the module's note).
    pub fn spawn(self) -> std::io::Result<ReaderThread> {
        let (stop_sender, stop) = oneshot::channel();
        let room = Arc::clone(&self.queue.room);
        std::thread::Builder::new()
            .name("event-reader".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(self.run(stop)),
                    // Dropping the reader closes the queue: the handling half ends and the bus
                    // restarts.
                    Err(error) => slog::error!(self.log,
                        "event bus: cannot start the reader's runtime"; "error" => %error),
                }
            })?;
        Ok(ReaderThread {
            _stop: stop_sender,
            room,
        })
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let step = tokio::select! {
                _ = &mut stop => return,
                step = self.step() => step,
            };
            match step {
                Ok(()) => {}
                Err(Stop::QueueClosed) => return,
                Err(Stop::Redis(error)) => {
                    crate::metrics::bump(&crate::metrics::METRICS.redis_errors);
                    slog::warn!(self.log, "event bus: redis error while reading, retrying";
                        "error" => %error, "consumer" => &self.settings.consumer);
                    if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                        self.connection = None;
                    }
                    tokio::select! {
                        _ = &mut stop => return,
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        }
    }

    /// Queues entries read or claimed at `claimed_at`.
    async fn hand_over(&mut self, entries: Vec<RawEntry>, claimed_at: Instant) -> Result<(), Stop> {
        if entries.is_empty() {
            return Ok(());
        }
        // A claim can bring more than the whole queue holds: it takes all the room there is.
        let wanted = entries.len().min(MAX_QUEUED_ENTRIES) as u32;
        let room = Arc::clone(&self.queue.room)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Stop::QueueClosed)?;
        self.in_flight
            .insert_all(entries.iter().map(|entry| entry.id.as_str()), claimed_at);
        let batch = ReadBatch {
            entries,
            read_at: Instant::now(),
            room: vec![room],
        };
        self.queue
            .batches
            .send(batch)
            .map_err(|_| Stop::QueueClosed)
    }

    async fn step(&mut self) -> Result<(), Stop> {
        let mut connection = self.connection().await?;
        let claim_due = self
            .last_claim
            .is_none_or(|at| at.elapsed() >= CLAIM_INTERVAL);
        // Renewing right before the claim keeps the claim off what this worker holds: an
        // entry it holds and has not renewed is younger than the claim's idle time.
        if claim_due
            || self
                .last_renewal
                .is_none_or(|at| at.elapsed() >= RENEW_INTERVAL)
        {
            self.last_renewal = Some(Instant::now());
            if let Err(error) = self.renew_claims(&mut connection).await {
                // Best effort: another worker may take some of them too, which idempotent
                // handlers allow; this worker's own claim leaves what it holds alone anyway.
                slog::debug!(self.log, "event bus: cannot renew the claim of held entries";
                    "error" => %error);
            }
        }
        if claim_due {
            self.last_claim = Some(Instant::now());
            let claimed_at = Instant::now();
            self.in_flight.claim_started();
            let claimed = match self.claim_pending(&mut connection).await {
                Ok(claimed) => self.in_flight.not_held(claimed),
                Err(error) => {
                    // Ends the claim's window all the same.
                    self.in_flight.not_held(Vec::new());
                    return Err(error.into());
                }
            };
            if !claimed.is_empty() {
                slog::info!(self.log, "event bus: claimed entries left pending";
                    "count" => claimed.len(), "consumer" => &self.settings.consumer);
                self.hand_over(claimed, claimed_at).await?;
            }
        }
        let reply: RedisValue = match redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.settings.group)
            .arg(&self.settings.consumer)
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(EVENT_STREAM)
            .arg(">")
            .query_async(&mut connection)
            .await
        {
            Ok(reply) => reply,
            Err(error) if error.code() == Some("NOGROUP") => {
                self.create_group(&mut connection).await?;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        let read_at = Instant::now();
        let entries = read_reply(reply).map_err(shape_error)?;
        if let Some(first) = entries.first() {
            self.trim_candidate = Some(first.id.clone());
        }
        self.hand_over(entries, read_at).await?;
        if self
            .last_trim
            .is_none_or(|at| at.elapsed() >= TRIM_INTERVAL)
        {
            self.last_trim = Some(Instant::now());
            self.trim(&mut connection).await?;
        }
        Ok(())
    }

    /// Resets the idle time of the entries held for longer than [`LEASE_RENEW_AFTER`]
    /// (`XCLAIM ... 0 <ids> JUSTID`), wherever they wait (in the queue, in a subscriber's lane,
    /// with a subscriber, or kept for another try), so that no XAUTOCLAIM, this worker's or
    /// another's, takes them while this worker has them in hand. It runs on the reader's
    /// thread, which a busy actors' thread cannot hold up. (Entries the stream has trimmed
    /// meanwhile leave the pending list; this worker already has their contents.)
    async fn renew_claims(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), redis::RedisError> {
        let now = Instant::now();
        let Some(before) = now.checked_sub(LEASE_RENEW_AFTER) else {
            return Ok(());
        };
        let ids = self.in_flight.renew_older_than(before, now);
        if ids.is_empty() {
            return Ok(());
        }
        let _: RedisValue = redis::cmd("XCLAIM")
            .arg(EVENT_STREAM)
            .arg(&self.settings.group)
            .arg(&self.settings.consumer)
            .arg(0)
            .arg(&ids)
            .arg("JUSTID")
            .query_async(connection)
            .await?;
        Ok(())
    }

    /// `XGROUP CREATE events <group> $ MKSTREAM`, as the original: a new group starts at the
    /// stream's end.
    async fn create_group(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), redis::RedisError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(EVENT_STREAM)
            .arg(&self.settings.group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(connection)
            .await;
        match created {
            Ok(()) => {
                slog::info!(self.log, "event bus: created the consumer group";
                    "group" => &self.settings.group, "stream" => EVENT_STREAM);
                Ok(())
            }
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn claim_pending(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<Vec<RawEntry>, redis::RedisError> {
        let mut cursor = "0-0".to_owned();
        let mut claimed = Vec::new();
        loop {
            let reply: RedisValue = match redis::cmd("XAUTOCLAIM")
                .arg(EVENT_STREAM)
                .arg(&self.settings.group)
                .arg(&self.settings.consumer)
                .arg(CLAIM_MIN_IDLE.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(READ_BATCH)
                .query_async(connection)
                .await
            {
                Ok(reply) => reply,
                Err(error) if error.code() == Some("NOGROUP") => {
                    self.create_group(connection).await?;
                    return Ok(claimed);
                }
                Err(error) => return Err(error),
            };
            let (next, entries) = autoclaim_reply(reply).map_err(shape_error)?;
            claimed.extend(entries);
            if next == "0-0" || next == cursor || claimed.len() >= READ_BATCH * 10 {
                return Ok(claimed);
            }
            cursor = next;
        }
    }

    /// Trims entries every consumer of the group has been handed and none holds pending.
    /// The original trims to `MAXLEN ~ 128` after every read, which drops unread entries
    /// as soon as a worker lags by more than 128 entries; trimming by what was delivered keeps
    /// the stream as short without losing any.
    async fn trim(
        &mut self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), redis::RedisError> {
        let Some(candidate) = self.trim_candidate.take() else {
            return Ok(());
        };
        let summary: RedisValue = redis::cmd("XPENDING")
            .arg(EVENT_STREAM)
            .arg(&self.settings.group)
            .query_async(connection)
            .await?;
        let oldest_pending = match &summary {
            RedisValue::Array(parts) => match parts.get(1) {
                Some(RedisValue::BulkString(id)) => String::from_utf8(id.clone()).ok(),
                _ => None,
            },
            _ => None,
        };
        let min_id = match oldest_pending {
            Some(pending) if compare_stream_ids(&pending, &candidate).is_lt() => pending,
            _ => candidate,
        };
        let _: i64 = redis::cmd("XTRIM")
            .arg(EVENT_STREAM)
            .arg("MINID")
            .arg("~")
            .arg(&min_id)
            .query_async(connection)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(compare_stream_ids("9-0", "10-0").is_lt());
        assert!(compare_stream_ids("10-2", "10-10").is_lt());
        assert!(!compare_stream_ids("10-0", "10-0").is_lt());
    }

    #[test]
    fn entries_held_in_memory_are_not_handed_out_twice() {
        let held = InFlight::default();
        held.insert_all(["1-0", "2-0"], Instant::now());
        let entry = |id: &str| RawEntry {
            id: id.to_owned(),
            fields: None,
        };
        let fresh = held.not_held(vec![entry("1-0"), entry("3-0")]);
        assert_eq!(fresh, vec![entry("3-0")]);
        held.remove_all(["1-0"]);
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn an_entry_let_go_while_a_claim_is_out_is_not_taken_for_an_abandoned_one() {
        let held = InFlight::default();
        let entry = |id: &str| RawEntry {
            id: id.to_owned(),
            fields: None,
        };
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
