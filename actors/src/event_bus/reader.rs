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

use std::sync::Arc;
use std::time::Instant;

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::consumer::{CLAIM_INTERVAL, CLAIM_MIN_IDLE, READ_BATCH, READ_BLOCK, TRIM_INTERVAL};
use super::consumer::{ConsumerSettings, RETRY_DELAY, open_connection, shape_error};
use super::leases::{self, InFlight};
use super::reply::{RawEntry, autoclaim_reply, read_reply};
use crate::wire::entry::{EVENT_STREAM, compare_stream_ids};

/// Entries read and waiting to be handled, per worker: a few MiB of buffer, several seconds
/// of a busy cluster's events.
pub const MAX_QUEUED_ENTRIES: usize = 8 * READ_BATCH;

/// One read: its entries, when they were read (their idle time in the pending list starts
/// then; see [`super::leases`]) and their room in the queue, given back
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
        // Ends with this runtime, when the reader returns.
        tokio::spawn(leases::keep_leases(
            self.log.clone(),
            self.redis.clone(),
            self.settings.clone(),
            self.in_flight.clone(),
        ));
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

    /// Queues entries read or claimed at `claimed_at`. They count as held from now on, while
    /// they wait for room too (see [`super::leases`]).
    async fn hand_over(&mut self, entries: Vec<RawEntry>, claimed_at: Instant) -> Result<(), Stop> {
        if entries.is_empty() {
            return Ok(());
        }
        self.in_flight
            .insert_all(entries.iter().map(|entry| entry.id.as_str()), claimed_at);
        // A claim can bring more than the whole queue holds: it takes all the room there is.
        let wanted = entries.len().min(MAX_QUEUED_ENTRIES) as u32;
        let room = Arc::clone(&self.queue.room)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Stop::QueueClosed)?;
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
        if claim_due {
            self.last_claim = Some(Instant::now());
            let claimed_at = Instant::now();
            self.in_flight.claim_started();
            let claimed = match self.claim_pending(&mut connection).await {
                Ok(claimed) => self.in_flight.not_held(claimed),
                Err(error) => {
                    self.in_flight.claim_failed();
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
}
