//! The read loop of the event bus: XAUTOCLAIM what a dead worker (or this one) left pending,
//! XREADGROUP new entries, decode, hand them to the subscribers, XACK what they all handled, and
//! keep the stream short. Every failure is logged and retried; no entry can stop the loop.
//!
//! An entry is acknowledged only once every subscriber that wanted it has replied to its
//! `EventBatch`. When a subscriber's mailbox is closed or it stopped mid-batch, its entries stay
//! pending and are claimed again after [`CLAIM_MIN_IDLE`] (by this worker once the actor is back,
//! or by another worker if this one exits).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;

use super::reply::{RawEntry, autoclaim_reply, read_reply};
use super::{EventBatch, ReceivedEvent, Subscription};
use crate::redis::{RedisSettings, db};
use crate::wire::entry::{EVENT_STREAM, decode_entry};

/// How long one XREADGROUP waits for new entries. Short enough that pending entries of a dead
/// worker are claimed within about a second on a quiet stream.
pub const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Entries per XREADGROUP: at 10,000 heartbeats/s a batch covers ~50-100 ms of traffic.
pub const READ_BATCH: usize = 1000;
/// An entry delivered to a consumer and not acknowledged for this long is taken over
/// (the original's XAUTOCLAIM min-idle-time).
pub const CLAIM_MIN_IDLE: Duration = Duration::from_millis(1000);
/// How often pending entries of other consumers are looked for.
pub const CLAIM_INTERVAL: Duration = Duration::from_millis(1000);
/// How often the stream is trimmed.
pub const TRIM_INTERVAL: Duration = Duration::from_millis(1000);
/// Pause after a Redis error before trying again, so a Redis outage does not spin a core.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Extra time on top of READ_BLOCK before a blocked read counts as failed.
const RESPONSE_SLACK: Duration = Duration::from_secs(5);

/// Who reads: the consumer group and this worker's consumer name in it.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group: String,
    pub consumer: String,
}

pub(super) type Subscribers = Arc<Mutex<Vec<Subscription>>>;

pub(super) struct Consumer {
    pub log: slog::Logger,
    pub redis: RedisSettings,
    pub settings: ConsumerSettings,
    pub subscribers: Subscribers,
    pub connection: Option<MultiplexedConnection>,
    pub last_claim: Option<Instant>,
    pub last_trim: Option<Instant>,
    /// The first id of the latest batch: everything before it has been delivered.
    pub trim_candidate: Option<String>,
}

impl Consumer {
    async fn connection(&mut self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let client = redis::Client::open(self.redis.connection_info(db::STREAM))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(READ_BLOCK + RESPONSE_SLACK));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    pub async fn run(mut self) {
        loop {
            if let Err(error) = self.step().await {
                crate::metrics::bump(&crate::metrics::METRICS.redis_errors);
                slog::warn!(self.log, "event bus: redis error, retrying";
                    "error" => %error, "consumer" => &self.settings.consumer);
                if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                    self.connection = None;
                }
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }

    async fn step(&mut self) -> Result<(), redis::RedisError> {
        let mut connection = self.connection().await?;
        if self
            .last_claim
            .is_none_or(|at| at.elapsed() >= CLAIM_INTERVAL)
        {
            self.last_claim = Some(Instant::now());
            let claimed = self.claim_pending(&mut connection).await?;
            if !claimed.is_empty() {
                slog::info!(self.log, "event bus: claimed entries left pending by another consumer";
                    "count" => claimed.len(), "consumer" => &self.settings.consumer);
                self.handle(&mut connection, claimed).await?;
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
            Err(error) => return Err(error),
        };
        let entries = read_reply(&reply).map_err(shape_error)?;
        if let Some(first) = entries.first() {
            self.trim_candidate = Some(first.id.clone());
        }
        self.handle(&mut connection, entries).await?;
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
            let (next, entries) = autoclaim_reply(&reply).map_err(shape_error)?;
            claimed.extend(entries);
            if next == "0-0" || next == cursor || claimed.len() >= READ_BATCH * 10 {
                return Ok(claimed);
            }
            cursor = next;
        }
    }

    /// Decodes, dispatches and acknowledges one batch. Malformed entries are logged with
    /// their id and acknowledged with the rest; entries a subscriber did not handle are not
    /// acknowledged, so they are delivered again.
    async fn handle(
        &mut self,
        connection: &mut MultiplexedConnection,
        entries: Vec<RawEntry>,
    ) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = entries.iter().map(|entry| entry.id.clone()).collect();
        // Decoding a batch of a thousand entries takes milliseconds: off the async thread.
        let log = self.log.clone();
        let decoded = tokio::task::spawn_blocking(move || decode_batch(&log, entries))
            .await
            .unwrap_or_default();
        record_event_lag(&decoded);
        let unhandled = dispatch(&self.log, &self.subscribers, decoded).await;
        let ids = acknowledgeable(ids, &unhandled);
        if !unhandled.is_empty() {
            slog::warn!(self.log, "event bus: leaving events pending for redelivery";
                "count" => unhandled.len(), "consumer" => &self.settings.consumer);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("XACK")
            .arg(EVENT_STREAM)
            .arg(&self.settings.group)
            .arg(&ids)
            .query_async(connection)
            .await?;
        Ok(())
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
            Some(pending) if stream_id_less(&pending, &candidate) => pending,
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

fn shape_error(error: super::reply::ReplyShapeError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "unexpected stream reply", error.0))
}

fn stream_id_less(left: &str, right: &str) -> bool {
    let parse = |id: &str| -> (u64, u64) {
        let (millis, sequence) = id.split_once('-').unwrap_or((id, "0"));
        (millis.parse().unwrap_or(0), sequence.parse().unwrap_or(0))
    };
    parse(left) < parse(right)
}

/// Turns raw entries into events, logging (and dropping) the ones that cannot be read.
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

pub fn decode_batch(log: &slog::Logger, entries: Vec<RawEntry>) -> Vec<ReceivedEvent> {
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(fields) = entry.fields else {
            slog::warn!(log, "event bus: entry was deleted before it could be handled";
                "stream_id" => &entry.id);
            continue;
        };
        match decode_entry(&fields) {
            Ok((source, event)) => events.push(ReceivedEvent {
                stream_id: entry.id,
                source,
                event,
            }),
            Err(error) => {
                let name = fields
                    .iter()
                    .find(|(key, _)| key.as_slice() == b"name")
                    .map(|(_, value)| String::from_utf8_lossy(value).chars().take(64).collect())
                    .unwrap_or_else(|| "<none>".to_owned());
                slog::warn!(log, "event bus: dropping a malformed event entry";
                    "stream_id" => &entry.id, "name" => name, "error" => %error);
            }
        }
    }
    events
}

/// The ids of a batch that may be acknowledged: all but the unhandled ones.
fn acknowledgeable(ids: Vec<String>, unhandled: &HashSet<String>) -> Vec<String> {
    ids.into_iter()
        .filter(|id| !unhandled.contains(id))
        .collect()
}

/// Hands each subscriber the events it asked for and waits until every subscriber has
/// handled them (its reply arrived), so that acknowledging afterwards means "handled". Returns
/// the stream ids of the events that some subscriber did not take (closed mailbox, or the actor
/// stopped before replying).
pub(super) async fn dispatch(
    log: &slog::Logger,
    subscribers: &Subscribers,
    events: Vec<ReceivedEvent>,
) -> HashSet<String> {
    if events.is_empty() {
        return HashSet::new();
    }
    let targets: Vec<Subscription> = match subscribers.lock() {
        Ok(list) => list.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let sends = targets.iter().filter_map(|subscription| {
        let wanted: Vec<ReceivedEvent> = events
            .iter()
            .filter(|received| subscription.interest.matches(&received.event))
            .cloned()
            .collect();
        (!wanted.is_empty()).then(|| {
            let name = subscription.name.clone();
            let log = log.clone();
            let ids: Vec<String> = wanted.iter().map(|r| r.stream_id.clone()).collect();
            let send = subscription.recipient.send(EventBatch { events: wanted });
            async move {
                match send.await {
                    Ok(Ok(())) => Vec::new(),
                    Ok(Err(unhandled)) => {
                        slog::warn!(log, "event bus: subscriber could not handle some events; they stay pending";
                            "subscriber" => name, "count" => unhandled.stream_ids.len());
                        unhandled.stream_ids
                    }
                    Err(error) => {
                        slog::error!(log, "event bus: subscriber did not handle its events; they stay pending";
                            "subscriber" => name, "error" => %error);
                        ids
                    }
                }
            }
        })
    });
    let unhandled: HashSet<String> = futures::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    let unclaimed = events
        .iter()
        .filter(|received| {
            !targets
                .iter()
                .any(|subscription| subscription.interest.matches(&received.event))
        })
        .count();
    if unclaimed > 0 {
        slog::debug!(log, "event bus: events without a subscriber"; "count" => unclaimed);
    }
    unhandled
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let events = decode_batch(&log, entries);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].stream_id, "3-0");
        assert_eq!(events[0].source, "i-a");
    }

    #[test]
    fn only_handled_entries_are_acknowledged() {
        let ids = vec!["1-0".to_owned(), "2-0".to_owned(), "3-0".to_owned()];
        let unhandled: HashSet<String> = ["2-0".to_owned()].into();
        assert_eq!(acknowledgeable(ids, &unhandled), vec!["1-0", "3-0"]);
    }

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(stream_id_less("9-0", "10-0"));
        assert!(stream_id_less("10-2", "10-10"));
        assert!(!stream_id_less("10-0", "10-0"));
    }
}
