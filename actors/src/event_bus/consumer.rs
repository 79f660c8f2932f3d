//! The handling half of the event bus: decode what the reader ([`super::reader`]) queued,
//! put each event in the lanes ([`super::lanes`]) of the subscribers that want it, send each
//! subscriber its lane's events, XACK what all of them handled, and offer again what they did
//! not. Every failure is logged and retried; no entry can stop the loop.
//!
//! Subscribers do not wait for one another: the heartbeat tracker keeps up with 10,000 agents'
//! heartbeats while the scheduler applies a slow batch of kernel events. (When every batch
//! waited for its slowest subscriber, the scheduler's transactions set the pace of the whole
//! stream, the reader's queue filled, and the 26.x agents' trimming took the entries it could
//! not read, `kernel_terminated` among them.) An entry is acknowledged only once every
//! subscriber that wanted it has replied without naming it. Entries a subscriber named as
//! unhandled (or whose subscriber stopped mid-batch) are offered to it again after
//! [`RETRY_DELAY`], ahead of newer ones, so one kernel's events stay in order; they are not
//! left to XAUTOCLAIM, because 26.x agents trim the stream and a pending entry can be trimmed
//! before it is claimed. While this worker holds entries, [`super::leases`] renews their claim
//! (XCLAIM JUSTID) so that other workers do not take them over; if it dies, they are idle after
//! [`CLAIM_MIN_IDLE`] and another worker claims them. Held entries keep their room in the
//! reader's queue, so a subscriber that keeps failing stops the reader instead of filling
//! memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::lanes::{LaneBatch, Lanes, Outcome};
use super::leases::InFlight;
use super::reader::ReadBatch;
use super::reply::RawEntry;
use super::{EventBatch, ReceivedEvent, Subscription};
use crate::redis::{RedisSettings, db};
use crate::wire::Event;
use crate::wire::entry::{EVENT_STREAM, decode_entry};
use crate::wire::shared_parts::SharedParts;

/// How long one XREADGROUP waits for new entries. Short enough that pending entries of a dead
/// worker are claimed within about a second on a quiet stream.
pub const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Entries per XREADGROUP: at 10,000 heartbeats/s a batch covers ~50-100 ms of traffic.
pub const READ_BATCH: usize = 1000;
/// How long a batch that is not full waits for later entries before it is handled: the
/// kernel events of sessions started or ended within it are applied in one transaction, and
/// a `kernel_started` event finds the `create_kernels` reply's transaction done instead of
/// racing it for the row. The cost is this much lag on every event of a quiet stream.
pub const GATHER_WINDOW: Duration = Duration::from_millis(20);
/// An entry delivered to a consumer and not acknowledged for this long is taken over
/// (the original's XAUTOCLAIM min-idle-time).
pub const CLAIM_MIN_IDLE: Duration = Duration::from_millis(1000);
/// How often pending entries of other consumers are looked for.
pub const CLAIM_INTERVAL: Duration = Duration::from_millis(1000);
/// How often the stream is trimmed.
pub const TRIM_INTERVAL: Duration = Duration::from_millis(1000);
/// Pause after a Redis error before trying again, so a Redis outage does not spin a core; also
/// the pause before unhandled events are offered again.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Extra time on top of a blocking read before its reply counts as lost.
const RESPONSE_SLACK: Duration = Duration::from_secs(5);

/// Who reads: the consumer group and this worker's consumer name in it.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group: String,
    pub consumer: String,
}

pub(super) type Subscribers = Arc<Mutex<Vec<Subscription>>>;

/// A connection to the stream's database; `block` is the longest blocking command it carries.
pub(super) async fn open_connection(
    redis: &RedisSettings,
    block: Option<Duration>,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let client = redis::Client::open(redis.connection_info(db::STREAM))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(block.unwrap_or_default() + RESPONSE_SLACK));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

pub(super) struct Consumer {
    pub log: slog::Logger,
    pub redis: RedisSettings,
    pub settings: ConsumerSettings,
    pub subscribers: Subscribers,
    pub in_flight: InFlight,
    pub queue: mpsc::UnboundedReceiver<ReadBatch>,
    pub connection: Option<MultiplexedConnection>,
    pub lanes: Lanes,
    /// The held entries' room in the reader's queue, given back as they are acknowledged.
    pub room: Option<OwnedSemaphorePermit>,
    /// The heartbeat parts the events waiting here share, kept from batch to batch.
    pub shared_parts: SharedParts,
}

/// A subscriber's answer to its lane's batch.
type LaneReply = (usize, Vec<u64>, Outcome);

/// Adds what is queued behind `batch`; unless that fills it, waits until it is
/// [`GATHER_WINDOW`] old and adds what was read meanwhile: a quiet stream's entries come one
/// per read, and each would cost its subscribers a transaction of its own (group commit). A
/// handler that fell behind finds its batches full or older than that and does not wait.
async fn gather(queue: &mut mpsc::UnboundedReceiver<ReadBatch>, batch: ReadBatch) -> ReadBatch {
    let batch = coalesce(queue, batch);
    if batch.entries.len() >= READ_BATCH {
        return batch;
    }
    let until = tokio::time::Instant::from_std(batch.read_at) + GATHER_WINDOW;
    tokio::time::sleep_until(until).await;
    coalesce(queue, batch)
}

/// Adds the batches queued behind `batch`, up to [`READ_BATCH`] entries: a handler that
/// fell behind catches up in fewer, larger rounds of subscriber work and XACK.
fn coalesce(queue: &mut mpsc::UnboundedReceiver<ReadBatch>, mut batch: ReadBatch) -> ReadBatch {
    while batch.entries.len() < READ_BATCH {
        match queue.try_recv() {
            Ok(later) => batch.absorb(later),
            Err(_) => break,
        }
    }
    batch
}

impl Consumer {
    async fn connection(&mut self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = open_connection(&self.redis, None).await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Takes what the reader queues and hands it to the subscribers until the reader is gone.
    pub async fn run(mut self) {
        let mut replies: FuturesUnordered<LocalBoxFuture<'static, LaneReply>> =
            FuturesUnordered::new();
        loop {
            for batch in self.lanes.ready(Instant::now()) {
                replies.push(Box::pin(send(self.log.clone(), batch)));
            }
            let resume = self.lanes.next_resume().map(tokio::time::Instant::from_std);
            tokio::select! {
                batch = self.queue.recv() => match batch {
                    Some(batch) => {
                        let batch = gather(&mut self.queue, batch).await;
                        self.accept(batch).await;
                    }
                    None => return,
                },
                Some(reply) = replies.next(), if !replies.is_empty() => self.settle(reply).await,
                () = sleep_until(resume), if resume.is_some() => {}
            }
        }
    }

    /// Decodes a batch and puts its events in their subscribers' lanes. Malformed and deleted
    /// entries are logged with their id and acknowledged at once, with the events no
    /// subscriber wants.
    async fn accept(&mut self, batch: ReadBatch) {
        let ReadBatch { entries, room, .. } = batch;
        for permits in room {
            match &mut self.room {
                Some(held) => held.merge(permits),
                None => self.room = Some(permits),
            }
        }
        let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
        // Decoding a batch of a thousand entries takes milliseconds: off the async thread.
        let log = self.log.clone();
        let mut shared_parts = std::mem::take(&mut self.shared_parts);
        let (events, mut done) = match tokio::task::spawn_blocking(move || {
            let decoded = decode_batch(&log, entries, &mut shared_parts);
            (decoded, shared_parts)
        })
        .await
        {
            Ok((decoded, shared_parts)) => {
                self.shared_parts = shared_parts;
                decoded
            }
            Err(error) => {
                // Let go, they stay pending: the next XAUTOCLAIM offers them again.
                slog::error!(self.log, "event bus: decoding a batch failed; its entries will be claimed again";
                        "count" => ids.len(), "error" => %error);
                self.in_flight.remove_all(ids.iter().map(String::as_str));
                return;
            }
        };
        record_event_lag(&events);
        match self.subscribers.lock() {
            Ok(list) => self.lanes.add_subscribers(&list),
            Err(poisoned) => self.lanes.add_subscribers(&poisoned.into_inner()),
        }
        let unwanted = self.lanes.accept(events);
        if !unwanted.is_empty() {
            slog::debug!(self.log, "event bus: events without a subscriber"; "count" => unwanted.len());
        }
        done.extend(unwanted);
        self.acknowledge_handled(done).await;
    }

    async fn settle(&mut self, (lane, sent, outcome): LaneReply) {
        // What was not handled was logged with its subscriber when the answer came.
        let settled = self
            .lanes
            .settle(lane, sent, &outcome, Instant::now(), RETRY_DELAY);
        self.acknowledge_handled(settled.handled).await;
    }

    /// XACKs what was handled and gives its room in the queue back.
    async fn acknowledge_handled(&mut self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        if let Err(error) = self.acknowledge(&ids).await {
            // They stay pending: this worker's next XAUTOCLAIM (or another's) offers them
            // again, and the handlers are idempotent.
            crate::metrics::bump(&crate::metrics::METRICS.redis_errors);
            slog::warn!(self.log, "event bus: cannot acknowledge handled events";
                "count" => ids.len(), "error" => %error);
            self.connection = None;
        }
        self.in_flight.remove_all(ids.iter().map(String::as_str));
        // A claim can bring more entries than it took room for: room is given back only
        // beyond what is still held.
        let held = self.lanes.held();
        if let Some(room) = &mut self.room {
            let excess = room.num_permits().saturating_sub(held);
            if excess > 0 {
                drop(room.split(excess));
            }
        }
    }

    async fn acknowledge(&mut self, ids: &[String]) -> Result<(), redis::RedisError> {
        let mut connection = self.connection().await?;
        let _: i64 = redis::cmd("XACK")
            .arg(EVENT_STREAM)
            .arg(&self.settings.group)
            .arg(ids)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Sends a lane's batch to its subscriber and waits for the answer.
async fn send(log: slog::Logger, batch: LaneBatch) -> LaneReply {
    let LaneBatch {
        lane,
        subscription,
        sent,
        events,
    } = batch;
    let name = subscription.name;
    // Counted in the subscriber's mailbox depth until it answers (`/metrics`).
    let _in_flight = crate::supervision::in_flight(&name);
    let outcome = match subscription.recipient.send(EventBatch { events }).await {
        Ok(Ok(())) => Outcome::Handled,
        Ok(Err(unhandled)) => {
            slog::warn!(log, "event bus: subscriber could not handle some events; they stay pending";
                "subscriber" => &name, "count" => unhandled.stream_ids.len());
            Outcome::NotHandled(unhandled.stream_ids.into_iter().collect())
        }
        Err(error) => {
            slog::error!(log, "event bus: subscriber did not handle its events; they stay pending";
                "subscriber" => &name, "error" => %error);
            Outcome::Lost
        }
    };
    (lane, sent, outcome)
}

pub(super) fn shape_error(error: super::reply::ReplyShapeError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "unexpected stream reply", error.0))
}

/// The milliseconds since the epoch when a stream entry was added (the first part of its id).
pub fn entry_millis(stream_id: &str) -> Option<u64> {
    stream_id.split('-').next()?.parse().ok()
}

/// Records how old each event is now that it is handed out (clock skew between Redis and this
/// host counts in; a negative age counts as zero).
fn record_event_lag(events: &[ReceivedEvent]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    for event in events {
        if let Some(added) = entry_millis(&event.stream_id) {
            let age = std::time::Duration::from_millis(now.saturating_sub(added));
            crate::metrics::METRICS.event_lag.observe(age);
        }
    }
}

/// Turns raw entries into events, logging the ones that cannot be read; returns the events
/// and the stream ids of the entries dropped. Heartbeats share the parts they have in common
/// with the others decoded through `shared` ([`SharedParts`]): they may wait in a lane for a
/// while.
pub fn decode_batch(
    log: &slog::Logger,
    entries: Vec<RawEntry>,
    shared: &mut SharedParts,
) -> (Vec<ReceivedEvent>, Vec<String>) {
    let mut events = Vec::with_capacity(entries.len());
    let mut dropped = Vec::new();
    for entry in entries {
        let Some(fields) = entry.fields else {
            slog::warn!(log, "event bus: entry was deleted before it could be handled";
                "stream_id" => &entry.id);
            dropped.push(entry.id);
            continue;
        };
        match decode_entry(&fields) {
            Ok((source, mut event)) => {
                if let Event::AgentHeartbeat(info) = &mut event
                    && let Some(info) = Arc::get_mut(info)
                {
                    shared.share(info);
                }
                events.push(ReceivedEvent {
                    stream_id: entry.id,
                    source,
                    event,
                })
            }
            Err(error) => {
                let name = fields
                    .iter()
                    .find(|(key, _)| key.as_slice() == b"name")
                    .map(|(_, value)| String::from_utf8_lossy(value).chars().take(64).collect())
                    .unwrap_or_else(|| "<none>".to_owned());
                slog::warn!(log, "event bus: dropping a malformed event entry";
                    "stream_id" => &entry.id, "name" => name, "error" => %error);
                dropped.push(entry.id);
            }
        }
    }
    (events, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_batch(ids: std::ops::Range<usize>, read_at: std::time::Instant) -> ReadBatch {
        ReadBatch {
            entries: ids
                .map(|n| RawEntry {
                    id: format!("{n}-0"),
                    fields: None,
                })
                .collect(),
            read_at,
            room: Vec::new(),
        }
    }

    fn ids(batch: &ReadBatch) -> Vec<&str> {
        batch
            .entries
            .iter()
            .map(|entry| entry.id.as_str())
            .collect()
    }

    /// Sends a batch of entry `id` after `delay`.
    fn read_later(queue: &mpsc::UnboundedSender<ReadBatch>, id: usize, delay: Duration) {
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = queue.send(read_batch(id..id + 1, std::time::Instant::now()));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_batch_waits_for_the_entries_read_within_the_window() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        read_later(&sender, 2, GATHER_WINDOW / 4);
        read_later(&sender, 3, GATHER_WINDOW / 2);
        read_later(&sender, 4, GATHER_WINDOW * 2);
        let batch = gather(&mut queue, read_batch(1..2, std::time::Instant::now())).await;
        assert_eq!(ids(&batch), ["1-0", "2-0", "3-0"]);
        // Entry 4 came after the window: it opens the next batch.
        let next = queue.recv().await.unwrap();
        assert_eq!(ids(&next), ["4-0"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_or_full_batch_is_handled_at_once() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        read_later(&sender, 5000, GATHER_WINDOW / 4);
        let old = std::time::Instant::now() - GATHER_WINDOW;
        let batch = gather(&mut queue, read_batch(1..2, old)).await;
        assert_eq!(ids(&batch), ["1-0"]);
        let full = gather(
            &mut queue,
            read_batch(0..READ_BATCH, std::time::Instant::now()),
        )
        .await;
        assert_eq!(full.entries.len(), READ_BATCH);
        assert_eq!(ids(&queue.recv().await.unwrap()), ["5000-0"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_batch_with_a_full_batch_queued_behind_it_does_not_wait() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        let now = std::time::Instant::now();
        sender.send(read_batch(2..READ_BATCH + 1, now)).unwrap();
        let started = tokio::time::Instant::now();
        let batch = gather(&mut queue, read_batch(1..2, now)).await;
        assert_eq!(batch.entries.len(), READ_BATCH);
        // Paused time moves only while something sleeps.
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[test]
    fn heartbeats_share_the_parts_they_have_in_common_within_and_across_batches() {
        use crate::wire::{AgentImage, AgentInfo, WireFormat, render_entry};
        use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
        let images = (0..20)
            .map(|n| AgentImage {
                canonical: format!("cr.backend.ai/stable/python:3.{n}-ubuntu22.04"),
                digest: format!("sha256:{n:064x}"),
            })
            .collect::<Vec<_>>();
        let info = |addr: &str| AgentInfo {
            ip: "10.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: addr.into(),
            public_key: None,
            public_host: "10.0.0.1".into(),
            available_slots: ResourceSlot::from_pairs([("cpu", SlotAmount::from(16))]).into(),
            slot_types: std::collections::BTreeMap::from([("cpu".to_owned(), SlotUnit::Count)])
                .into(),
            version: "23.09.10".into(),
            compute_plugins: serde_json::json!({"cpu": {"version": "23.09.10"}}).into(),
            images: Some(Arc::new(images.clone())),
            architecture: "x86_64".into(),
            auto_terminate_abusing_kernel: false,
        };
        let sent = [
            info("tcp://10.0.0.1:6001"),
            info("tcp://10.0.0.2:6001"),
            info("tcp://10.0.0.3:6001"),
        ];
        let entries = |range: std::ops::Range<usize>| -> Vec<RawEntry> {
            range
                .map(|n| {
                    let event = Event::AgentHeartbeat(Arc::new(sent[n].clone()));
                    let fields = render_entry(&event, &format!("i-{n}"), WireFormat::Args).unwrap();
                    RawEntry {
                        id: format!("{n}-0"),
                        fields: Some(
                            fields
                                .into_iter()
                                .map(|(key, value)| (key.as_bytes().to_vec(), value))
                                .collect(),
                        ),
                    }
                })
                .collect()
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let mut shared = SharedParts::default();
        let (mut events, dropped) = decode_batch(&log, entries(0..2), &mut shared);
        assert!(dropped.is_empty());
        // A later batch, decoded while the first one's heartbeats still wait.
        let (later, dropped) = decode_batch(&log, entries(2..3), &mut shared);
        assert!(dropped.is_empty());
        events.extend(later);
        let decoded: Vec<&AgentInfo> = events
            .iter()
            .map(|received| match &received.event {
                Event::AgentHeartbeat(info) => &**info,
                other => panic!("not a heartbeat: {other:?}"),
            })
            .collect();
        assert_eq!(decoded, sent.iter().collect::<Vec<_>>());
        for other in &decoded[1..] {
            assert!(Arc::ptr_eq(
                &decoded[0].available_slots,
                &other.available_slots
            ));
            assert!(Arc::ptr_eq(&decoded[0].slot_types, &other.slot_types));
            assert!(Arc::ptr_eq(
                &decoded[0].compute_plugins,
                &other.compute_plugins
            ));
            let (Some(first), Some(this)) = (&decoded[0].images, &other.images) else {
                panic!("23.09 heartbeats carry their images");
            };
            assert!(Arc::ptr_eq(first, this));
        }
    }

    #[test]
    fn malformed_entries_are_dropped_from_the_batch_not_the_good_ones() {
        let good = vec![
            (b"name".to_vec(), b"agent_started".to_vec()),
            (b"source".to_vec(), b"i-a".to_vec()),
            (b"args".to_vec(), b"\x91\xa1x".to_vec()),
        ];
        let entries = vec![
            RawEntry {
                id: "1-0".into(),
                fields: Some(vec![(b"garbage".to_vec(), b"\x00\x01".to_vec())]),
            },
            RawEntry {
                id: "2-0".into(),
                fields: None,
            },
            RawEntry {
                id: "3-0".into(),
                fields: Some(good),
            },
        ];
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let (events, dropped) = decode_batch(&log, entries, &mut SharedParts::default());
        assert_eq!(dropped, ["1-0", "2-0"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].stream_id, "3-0");
        assert_eq!(events[0].source, "i-a");
    }
}
