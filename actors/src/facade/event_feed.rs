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

/// How long one `XREAD` blocks (the original's 10 s), so a dead connection is noticed.
pub const READ_BLOCK: Duration = Duration::from_secs(10);

/// Entries per read.
pub const READ_COUNT: usize = 128;

/// Pause before reconnecting after a Redis error.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

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

/// The per-worker feed; cheap to share.
#[derive(Default)]
pub struct EventFeed {
    sender: Mutex<Option<broadcast::Sender<Arc<SessionEventRecord>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot find Redis: {0}")]
    Settings(#[from] crate::redis::RedisError),
    #[error("cannot read the event stream: {0}")]
    Redis(#[from] redis::RedisError),
}

impl EventFeed {
    /// A receiver of every forwarded event from now on; starts the reader on first use.
    pub async fn subscribe(
        &self,
        etcd: &EtcdStore,
        db: &Pool,
        log: &slog::Logger,
    ) -> Result<broadcast::Receiver<Arc<SessionEventRecord>>, FeedError> {
        if let Some(sender) = self.sender.lock().ok().and_then(|guard| guard.clone())
            && !sender.is_closed_for_reader()
        {
            return Ok(sender.subscribe());
        }
        let settings = RedisSettings::from_etcd(etcd).await?;
        let mut connection = open(&settings).await?;
        // Read from the current end of the stream, fixed now, so nothing produced after this
        // subscription is missed even though the reader starts a moment later.
        let start = last_entry_id(&mut connection).await?;
        let mut guard = match self.sender.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(sender) = guard.as_ref().filter(|s| !s.is_closed_for_reader()) {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(SUBSCRIBER_BACKLOG);
        *guard = Some(sender.clone());
        drop(guard);
        let reader = Reader {
            settings,
            db: db.clone(),
            log: log.clone(),
            sender,
        };
        actix_web::rt::spawn(reader.run(connection, start));
        Ok(receiver)
    }
}

/// Whether the reader behind a sender is gone (it stops only when it cannot continue).
trait ClosedForReader {
    fn is_closed_for_reader(&self) -> bool;
}

impl ClosedForReader for broadcast::Sender<Arc<SessionEventRecord>> {
    fn is_closed_for_reader(&self) -> bool {
        // The reader holds one sender clone besides ours while it runs.
        self.strong_count() < 2
    }
}

async fn open(settings: &RedisSettings) -> Result<MultiplexedConnection, redis::RedisError> {
    redis::Client::open(settings.connection_info(db::STREAM))?
        .get_multiplexed_async_connection()
        .await
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

struct Reader {
    settings: RedisSettings,
    db: Pool,
    log: slog::Logger,
    sender: broadcast::Sender<Arc<SessionEventRecord>>,
}

impl Reader {
    async fn run(self, mut connection: MultiplexedConnection, mut last_id: String) {
        slog::info!(self.log, "event feed: reading the event stream for event subscribers";
            "from" => &last_id);
        loop {
            let options = StreamReadOptions::default()
                .block(READ_BLOCK.as_millis() as usize)
                .count(READ_COUNT);
            let reply: Result<StreamReadReply, _> = redis::cmd("XREAD")
                .arg(&options)
                .arg("STREAMS")
                .arg(EVENT_STREAM)
                .arg(&last_id)
                .query_async(&mut connection)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => {
                    slog::warn!(self.log, "event feed: read failed; reconnecting"; "error" => %error);
                    tokio::time::sleep(RETRY_DELAY).await;
                    match open(&self.settings).await {
                        Ok(fresh) => connection = fresh,
                        Err(error) => {
                            slog::warn!(self.log, "event feed: cannot reconnect"; "error" => %error)
                        }
                    }
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
