//! The session-event feed: the session and kernel events of the shared stream, for
//! `GET /events/session` and the streams that close when their session ends. Every worker must
//! see every event (the original subscribes in broadcast mode), so this is not the event bus's
//! consumer group: one plain `XREAD` reader per worker (no group, no acknowledgement), which
//! looks up who each event is about and broadcasts it to the open streams.
//!
//! One supervised actor per worker owns it:
//! ```ignore
//! let feed = SessionEventFeed::new(log, redis_settings, background_db);
//! let feed = actix::Supervisor::start(move |_| feed);
//! let events = session_feed::subscribe(&feed).await?; // a broadcast::Receiver
//! ```
//! - The reader starts with the first subscriber, from the stream's end as fixed before the
//!   subscription is answered, so nothing produced after a subscription is missed.
//! - It stops (its Redis connection, named [`READER_CLIENT_NAME`], goes away) once no receiver
//!   is left, at most one [`READ_BLOCK`] after the last one is dropped; it is quiet while idle.
//! - A Redis error closes its connection; it reconnects with a back-off ([`retry_delay`]) and
//!   reads on from the last entry it handled, and the open streams wait meanwhile.
//! - A stop (`ctx.stop()`, an injected fault) restarts it on the same mailbox: the broadcast
//!   sender lives in the actor, so open receivers keep receiving, and `started` spawns a fresh
//!   reader that continues after the last entry the stopped one handled. The restart is counted
//!   as [`ACTOR_NAME`]. A panic closes the mailbox and the sender: open streams end, and the
//!   watchdog ends the worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bai_schema::queries::session::{EventSubject, kernel_event_subject, session_event_subject};
use deadpool_postgres::Pool;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{broadcast, oneshot};

use crate::redis::{RedisSettings, db};
use crate::wire::entry::EVENT_STREAM;
use crate::wire::{Event, KernelEventKind, SessionEventKind, decode_entry};

/// The feed's name in restart counts, mailbox depths, the watchdog and fault injection.
pub const ACTOR_NAME: &str = "session-event-feed";

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

/// The receiving end of a subscription.
pub type SessionEvents = broadcast::Receiver<Arc<SessionEventRecord>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedError {
    #[error("cannot start reading the event stream: {0}")]
    Redis(#[source] Arc<redis::RedisError>),
    #[error("the session event feed did not answer: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

impl From<redis::RedisError> for FeedError {
    fn from(error: redis::RedisError) -> FeedError {
        FeedError::Redis(Arc::new(error))
    }
}

/// Asks for a receiver of every forwarded event from now on; answered once the reader's start
/// is fixed (at once when a reader runs).
#[derive(Debug, Message)]
#[rtype(result = "Result<SessionEvents, FeedError>")]
pub struct SubscribeSessionEvents;

/// Subscribes to the feed behind `feed`, counted in its mailbox depth.
pub async fn subscribe(feed: &Addr<SessionEventFeed>) -> Result<SessionEvents, FeedError> {
    crate::supervision::tracked(ACTOR_NAME, feed.send(SubscribeSessionEvents)).await?
}

/// The events `GET /events/session` forwards, with their reason and exit code, or `None`.
fn forwarded(event: &Event) -> Option<(Subject, String, Option<i64>)> {
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
            wanted.then(|| {
                (
                    Subject::Session(e.session_id),
                    e.reason.clone(),
                    e.exit_code,
                )
            })
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
            wanted.then(|| (Subject::Kernel(e.kernel_id), e.reason.clone(), e.exit_code))
        }
        _ => None,
    }
}

/// Whom an event names, before the lookup.
enum Subject {
    Session(uuid::Uuid),
    Kernel(uuid::Uuid),
}

/// Whether the feed reads, and who waits for its start.
enum ReaderState {
    /// No reader (no subscriber since the last one left).
    Idle,
    /// A reader is fixing its start; these subscribers are answered then.
    Starting(Vec<oneshot::Sender<Result<(), FeedError>>>),
    /// A reader runs.
    Reading,
}

/// The per-worker feed actor.
pub struct SessionEventFeed {
    log: slog::Logger,
    redis: RedisSettings,
    /// The pool of the subject lookups (the worker's background pool).
    db: Pool,
    /// Lives as long as the actor, across restarts, so open receivers outlive a reader.
    sender: broadcast::Sender<Arc<SessionEventRecord>>,
    reader: ReaderState,
    /// The last entry the reader handled; a reader spawned after a restart reads on from it.
    position: Arc<Mutex<String>>,
}

impl SessionEventFeed {
    pub fn new(log: slog::Logger, redis: RedisSettings, db: Pool) -> SessionEventFeed {
        SessionEventFeed {
            log,
            redis,
            db,
            sender: broadcast::channel(SUBSCRIBER_BACKLOG).0,
            reader: ReaderState::Idle,
            position: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Opens the reader's connection and fixes its start at the stream's current end, then
    /// spawns the reader and answers the waiting subscribers.
    fn start_reader(&mut self, ctx: &mut Context<Self>) {
        let settings = self.redis.clone();
        let fix_start = async move {
            let mut connection = open(&settings).await?;
            let start = last_entry_id(&mut connection).await?;
            Ok::<_, FeedError>((connection, start))
        };
        ctx.spawn(fix_start.into_actor(self).map(|fixed, feed, ctx| {
            let waiters = match std::mem::replace(&mut feed.reader, ReaderState::Idle) {
                ReaderState::Starting(waiters) => waiters,
                other => {
                    feed.reader = other;
                    Vec::new()
                }
            };
            let answer = match fixed {
                Ok((connection, start)) => {
                    feed.spawn_reader(ctx, Some(connection), start);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            for waiter in waiters {
                // A subscriber that gave up waiting is no error.
                let _ = waiter.send(answer.clone());
            }
        }));
    }

    /// Spawns the reader in the actor's context (it ends with the context: a restart drops it).
    fn spawn_reader(
        &mut self,
        ctx: &mut Context<Self>,
        connection: Option<MultiplexedConnection>,
        from: String,
    ) {
        *lock(&self.position) = from.clone();
        self.reader = ReaderState::Reading;
        let reader = Reader {
            settings: self.redis.clone(),
            db: self.db.clone(),
            log: self.log.clone(),
            sender: self.sender.clone(),
            position: Arc::clone(&self.position),
        };
        // The reader ends only when no receiver is left, checked in the same poll as this map,
        // so no subscriber joins a reader that is about to stop.
        ctx.spawn(
            reader
                .run(connection, from)
                .into_actor(self)
                .map(|(), feed, _ctx| feed.reader = ReaderState::Idle),
        );
    }
}

fn lock(position: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    match position.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Actor for SessionEventFeed {
    type Context = Context<Self>;

    /// Nothing on a first start (the first subscriber starts the reader); after a restart, a
    /// fresh reader for the receivers still open, or a fresh start for the ones still waiting.
    fn started(&mut self, ctx: &mut Self::Context) {
        match &self.reader {
            ReaderState::Idle => {}
            ReaderState::Starting(_) => self.start_reader(ctx),
            ReaderState::Reading if self.sender.receiver_count() == 0 => {
                self.reader = ReaderState::Idle;
            }
            ReaderState::Reading => {
                let from = lock(&self.position).clone();
                slog::info!(self.log, "session event feed: a fresh reader continues for the open streams";
                    "after" => &from, "streams" => self.sender.receiver_count());
                self.spawn_reader(ctx, None, from);
            }
        }
    }
}

/// The stopped run's reader is dropped with the context; the sender, the waiting subscribers
/// and the position are kept for `started`.
impl Supervised for SessionEventFeed {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        slog::warn!(self.log, "session event feed: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(SessionEventFeed, ACTOR_NAME);

impl Handler<SubscribeSessionEvents> for SessionEventFeed {
    type Result = ResponseFuture<Result<SessionEvents, FeedError>>;

    fn handle(&mut self, _: SubscribeSessionEvents, ctx: &mut Self::Context) -> Self::Result {
        // Counted from now on, so a reader being started does not stop for want of receivers.
        let receiver = self.sender.subscribe();
        let (started, start) = oneshot::channel();
        match &mut self.reader {
            ReaderState::Reading => return Box::pin(std::future::ready(Ok(receiver))),
            ReaderState::Starting(waiters) => waiters.push(started),
            ReaderState::Idle => {
                self.reader = ReaderState::Starting(vec![started]);
                self.start_reader(ctx);
            }
        }
        Box::pin(async move {
            match start.await {
                Ok(Ok(())) => Ok(receiver),
                Ok(Err(error)) => Err(error),
                // The actor died before the start was fixed.
                Err(_) => Err(FeedError::Mailbox(actix::MailboxError::Closed)),
            }
        })
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

/// The id of the stream's newest entry (`0-0` when there is no stream yet).
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
pub fn retry_delay(failures: u32) -> Duration {
    RETRY_DELAY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_DELAY_MAX)
}

/// The blocking `XREAD` loop of one reader.
struct Reader {
    settings: RedisSettings,
    db: Pool,
    log: slog::Logger,
    sender: broadcast::Sender<Arc<SessionEventRecord>>,
    position: Arc<Mutex<String>>,
}

impl Reader {
    /// Reads after `last_id` until no receiver is left; `connection` is opened when `None`.
    async fn run(self, connection: Option<MultiplexedConnection>, mut last_id: String) {
        slog::info!(self.log, "session event feed: reading the event stream for event subscribers";
            "from" => &last_id);
        let mut connection = connection;
        let mut failures: u32 = 0;
        loop {
            if self.sender.receiver_count() == 0 {
                slog::info!(
                    self.log,
                    "session event feed: no subscriber left; the reader stops"
                );
                return;
            }
            let reply = match connection.as_mut() {
                Some(conn) => self.read(conn, &last_id).await,
                None => match open(&self.settings).await {
                    Ok(fresh) => {
                        if failures > 0 {
                            slog::info!(self.log, "session event feed: reconnected to Redis";
                                "after_failures" => failures);
                        }
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
                    slog::warn!(self.log, "session event feed: Redis failed; reconnecting";
                        "error" => %error, "retry_in" => ?delay, "failures_in_a_row" => failures);
                    connection = None;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            for key in reply.keys {
                for entry in key.ids {
                    self.forward(&entry).await;
                    last_id = entry.id;
                    lock(&self.position).clone_from(&last_id);
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

    /// Broadcasts the entry if it is a forwarded event about a known session.
    async fn forward(&self, entry: &redis::streams::StreamId) {
        if self.sender.receiver_count() == 0 {
            return;
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
            return;
        };
        if let Some(record) = self.describe(&event).await {
            // No receiver left is not an error: nobody listens right now.
            let _ = self.sender.send(Arc::new(record));
        }
    }

    async fn describe(&self, event: &Event) -> Option<SessionEventRecord> {
        let (subject, reason, exit_code) = forwarded(event)?;
        let client = match self.db.get().await {
            Ok(client) => client,
            Err(error) => {
                slog::warn!(self.log, "session event feed: no database connection to look up an event's session";
                    "event" => event.name(), "error" => %error);
                return None;
            }
        };
        let subject = match subject {
            Subject::Session(id) => session_event_subject(&client, id).await,
            Subject::Kernel(id) => kernel_event_subject(&client, id).await,
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
                slog::warn!(self.log, "session event feed: cannot look up an event's session";
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
