//! The session and kernel events of the shared stream, for `GET /events/session`. Every worker
//! must see every event (the original subscribes in broadcast mode), so this is not the event
//! bus's consumer group: one plain `XREAD` reader per worker, started by the first subscriber,
//! looks up who each event is about and broadcasts it to the open event streams.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bai_schema::queries::session::{EventSubject, kernel_event_subject, session_event_subject};
use deadpool_postgres::Pool;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::broadcast;

use crate::etcd::EtcdStore;
use crate::redis::{RedisSettings, db};
use crate::wire::{Event, KernelEventKind, SessionEventKind, decode_entry};

/// The stream of Backend.AI events (db 4).
pub const EVENT_STREAM: &str = "events";

/// How long one `XREAD` blocks. A read returns as soon as an entry arrives, so this does not
/// delay events; it is how often an idle reader looks whether anyone still listens, i.e. how
/// long a reader outlives its last subscriber at most.
pub const READ_BLOCK: Duration = Duration::from_secs(5);

/// How much longer than [`READ_BLOCK`] the reader's own connection waits for a reply before it
/// counts as dead. The shared connections time out after half a second, which a blocking read
/// would always hit; this one exists only for the blocking read.
pub const RESPONSE_SLACK: Duration = Duration::from_secs(5);

/// Entries per read.
pub const READ_COUNT: usize = 128;

/// The first pause before reconnecting after a Redis error; it doubles while Redis stays
/// unreachable, up to [`RETRY_DELAY_MAX`], so an outage logs a few lines, not one a second.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The longest pause between reconnect attempts.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(30);

/// The reader's connection name in Redis (`CLIENT LIST` shows `name=bai-manager:event-feed`),
/// so an operator sees which managers follow the stream and that an unused one does not.
pub const READER_CLIENT_NAME: &str = "bai-manager:event-feed";

/// Events kept for a slow event stream before it starts missing some; a client that is that
/// far behind gets the newest ones (the original's queue was unbounded).
pub const SUBSCRIBER_BACKLOG: usize = 1024;

/// One event as `GET /events/session` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEventRecord {
    /// `session_enqueued`, `kernel_started`, ...
    pub name: String,
    pub reason: String,
    pub exit_code: Option<i64>,
    pub subject: EventSubject,
}

/// The events `GET /events/session` forwards, with their reason and exit code, or `None`.
fn forwarded(event: &Event) -> Option<(KindOf, String, Option<i64>)> {
    match event {
        Event::Session(e) => {
            let wanted = matches!(
                e.kind,
                SessionEventKind::Enqueued
                    | SessionEventKind::Scheduled
                    | SessionEventKind::Started
                    | SessionEventKind::Cancelled
                    | SessionEventKind::Terminated
                    | SessionEventKind::Success
                    | SessionEventKind::Failure
            );
            wanted.then(|| (KindOf::Session(e.session_id), e.reason.clone(), e.exit_code))
        }
        Event::Kernel(e) => {
            let wanted = matches!(
                e.kind,
                KernelEventKind::Preparing
                    | KernelEventKind::Pulling
                    | KernelEventKind::Creating
                    | KernelEventKind::Started
                    | KernelEventKind::Cancelled
                    | KernelEventKind::Terminating
                    | KernelEventKind::Terminated
            );
            wanted.then(|| (KindOf::Kernel(e.kernel_id), e.reason.clone(), e.exit_code))
        }
        _ => None,
    }
}

enum KindOf {
    Session(uuid::Uuid),
    Kernel(uuid::Uuid),
}

/// The sender of the running reader; `None` while no reader runs. Subscribing and the reader's
/// decision to stop both happen under this lock, so no subscriber joins a reader that is
/// about to stop.
type ReaderSlot = Arc<Mutex<Option<broadcast::Sender<Arc<SessionEventRecord>>>>>;

/// The per-worker feed; cheap to share.
#[derive(Default)]
pub struct EventFeed {
    slot: ReaderSlot,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot find Redis: {0}")]
    Settings(#[from] crate::redis::RedisError),
    #[error("cannot read the event stream: {0}")]
    Redis(#[from] redis::RedisError),
}

fn lock(
    slot: &ReaderSlot,
) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<SessionEventRecord>>>> {
    match slot.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl EventFeed {
    /// A receiver of every forwarded event from now on; starts the reader when none runs.
    pub async fn subscribe(
        &self,
        etcd: &EtcdStore,
        db: &Pool,
        log: &slog::Logger,
    ) -> Result<broadcast::Receiver<Arc<SessionEventRecord>>, FeedError> {
        if let Some(sender) = lock(&self.slot).as_ref() {
            return Ok(sender.subscribe());
        }
        let settings = RedisSettings::from_etcd(etcd).await?;
        let mut connection = open(&settings).await?;
        // Read from the current end of the stream, fixed now, so nothing produced after this
        // subscription is missed even though the reader starts a moment later.
        let start = last_entry_id(&mut connection).await?;
        let mut guard = lock(&self.slot);
        if let Some(sender) = guard.as_ref() {
            // Another subscriber started a reader meanwhile; ours is not needed.
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(SUBSCRIBER_BACKLOG);
        *guard = Some(sender.clone());
        drop(guard);
        let reader = Reader {
            settings,
            db: db.clone(),
            log: log.clone(),
            slot: ReaderGuard {
                slot: Arc::clone(&self.slot),
                sender: sender.clone(),
            },
            sender,
        };
        actix_web::rt::spawn(reader.run(connection, start));
        Ok(receiver)
    }

    /// Whether a reader follows the stream now (for `/metrics`-like introspection and tests).
    pub fn is_reading(&self) -> bool {
        lock(&self.slot).is_some()
    }
}

/// Empties the slot when its reader ends, however it ends (even by a panic), so the next
/// subscriber starts a fresh reader and open streams see the end of theirs.
struct ReaderGuard {
    slot: ReaderSlot,
    sender: broadcast::Sender<Arc<SessionEventRecord>>,
}

impl ReaderGuard {
    /// Empties the slot if nobody listens any more; `true` when the reader should stop.
    fn release_if_unused(&self) -> bool {
        let mut guard = lock(&self.slot);
        if self.sender.receiver_count() > 0 {
            return false;
        }
        if guard.as_ref().is_some_and(|s| s.same_channel(&self.sender)) {
            *guard = None;
        }
        true
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut guard = lock(&self.slot);
        if guard.as_ref().is_some_and(|s| s.same_channel(&self.sender)) {
            *guard = None;
        }
    }
}

/// The reader's own connection: its reply timeout covers a whole blocking read, and it carries
/// [`READER_CLIENT_NAME`].
async fn open(settings: &RedisSettings) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(crate::redis::CONNECT_TIMEOUT))
        .set_response_timeout(Some(READ_BLOCK + RESPONSE_SLACK));
    let mut connection = redis::Client::open(settings.connection_info(db::STREAM))?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(READER_CLIENT_NAME)
        .exec_async(&mut connection)
        .await?;
    Ok(connection)
}

async fn last_entry_id(
    connection: &mut MultiplexedConnection,
) -> Result<String, redis::RedisError> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(EVENT_STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    Ok(reply
        .ids
        .first()
        .map(|entry| entry.id.clone())
        .unwrap_or_else(|| "0-0".to_owned()))
}

/// The pause before reconnect attempt `failures` (1-based) in a row.
fn retry_delay(failures: u32) -> Duration {
    RETRY_DELAY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_DELAY_MAX)
}

struct Reader {
    settings: RedisSettings,
    db: Pool,
    log: slog::Logger,
    slot: ReaderGuard,
    sender: broadcast::Sender<Arc<SessionEventRecord>>,
}

impl Reader {
    async fn run(self, connection: MultiplexedConnection, mut last_id: String) {
        slog::info!(self.log, "event feed: reading the event stream for event subscribers";
            "from" => &last_id);
        let mut connection = Some(connection);
        let mut failures: u32 = 0;
        loop {
            if self.slot.release_if_unused() {
                slog::info!(self.log, "event feed: no subscriber left; the reader stops");
                return;
            }
            let reply = match connection.as_mut() {
                Some(conn) => self.read(conn, &last_id).await,
                None => match open(&self.settings).await {
                    Ok(fresh) => {
                        slog::info!(self.log, "event feed: reconnected to Redis"; "after_failures" => failures);
                        failures = 0;
                        connection = Some(fresh);
                        continue;
                    }
                    Err(error) => Err(error),
                },
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(failures);
                    slog::warn!(self.log, "event feed: Redis failed; reconnecting";
                        "error" => %error, "retry_in" => ?delay, "failures_in_a_row" => failures);
                    connection = None;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            for key in reply.keys {
                for entry in key.ids {
                    last_id = entry.id.clone();
                    if self.sender.receiver_count() == 0 {
                        continue;
                    }
                    let fields: Vec<(Vec<u8>, Vec<u8>)> = entry
                        .map
                        .iter()
                        .filter_map(|(k, v)| {
                            redis::from_redis_value_ref::<Vec<u8>>(v)
                                .ok()
                                .map(|v| (k.as_bytes().to_vec(), v))
                        })
                        .collect();
                    let Ok((_, event)) = decode_entry(&fields) else {
                        continue;
                    };
                    if let Some(record) = self.describe(&event).await {
                        // No receiver left is not an error: nobody listens right now.
                        let _ = self.sender.send(Arc::new(record));
                    }
                }
            }
        }
    }

    /// One blocking read of the entries after `last_id` (none when [`READ_BLOCK`] passes).
    async fn read(
        &self,
        connection: &mut MultiplexedConnection,
        last_id: &str,
    ) -> Result<StreamReadReply, redis::RedisError> {
        // A read that times out answers nil.
        let options = StreamReadOptions::default()
            .block(READ_BLOCK.as_millis() as usize)
            .count(READ_COUNT);
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg(&options)
            .arg("STREAMS")
            .arg(EVENT_STREAM)
            .arg(last_id)
            .query_async(connection)
            .await?;
        Ok(reply.unwrap_or_default())
    }

    async fn describe(&self, event: &Event) -> Option<SessionEventRecord> {
        let (kind, reason, exit_code) = forwarded(event)?;
        let client = self.db.get().await.ok()?;
        let subject = match kind {
            KindOf::Session(id) => session_event_subject(&client, id).await,
            KindOf::Kernel(id) => kernel_event_subject(&client, id).await,
        };
        match subject {
            Ok(Some(subject)) => Some(SessionEventRecord {
                name: event.name().to_owned(),
                reason,
                exit_code,
                subject,
            }),
            Ok(None) => None,
            Err(error) => {
                slog::warn!(self.log, "event feed: cannot look up an event's session";
                    "event" => event.name(), "error" => %error);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_up_to_the_cap() {
        assert_eq!(retry_delay(1), RETRY_DELAY);
        assert_eq!(retry_delay(2), RETRY_DELAY * 2);
        assert_eq!(retry_delay(5), RETRY_DELAY * 16);
        assert_eq!(retry_delay(6), RETRY_DELAY_MAX);
        assert_eq!(retry_delay(u32::MAX), RETRY_DELAY_MAX);
    }
}
