//! The broadcast side of the event bus: every worker reads every new entry of `events`
//! (`XREAD`, from the end of the stream, no group, no acknowledgement), for consumers that
//! must see all events whichever worker handles them, e.g. the `/events/session` SSE stream.
//!
//! ```ignore
//! let feed = EventFeed::new(log, redis_settings).with_subscriber(Subscription {
//!     name: "session-sse".into(),
//!     interest: EventInterest::names(&["session_started", "session_terminated"]),
//!     recipient: sse_hub.recipient(),
//! });
//! let feed = actix::Supervisor::start(move |_| feed);
//! ```
//!
//! Start it under `actix::Supervisor`: a stop restarts it on the same mailbox (its subscribers
//! are kept, `started` spawns a fresh reader, the stopped run's reader is dropped with the
//! context's items) and is counted as a restart of [`FEED_ACTOR_NAME`]. It reads from the end of
//! the stream, so entries added while it was down are not seen (as before: it is a live feed).

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use redis::Value as RedisValue;
use redis::aio::MultiplexedConnection;

use super::consumer::{READ_BATCH, READ_BLOCK, RETRY_DELAY, decode_batch, dispatch};
use super::reply::read_reply;
use super::{Subscribe, Subscription};
use crate::redis::{RedisSettings, db};
use crate::wire::entry::EVENT_STREAM;

/// Extra time on top of READ_BLOCK before a blocked read counts as failed.
const RESPONSE_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

pub struct EventFeed {
    log: slog::Logger,
    redis: RedisSettings,
    subscribers: Arc<Mutex<Vec<Subscription>>>,
}

impl EventFeed {
    pub fn new(log: slog::Logger, redis: RedisSettings) -> EventFeed {
        EventFeed {
            log,
            redis,
            subscribers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn with_subscriber(self, subscription: Subscription) -> EventFeed {
        match self.subscribers.lock() {
            Ok(mut list) => list.push(subscription),
            Err(poisoned) => poisoned.into_inner().push(subscription),
        }
        self
    }
}

async fn connect(redis: &RedisSettings) -> Result<MultiplexedConnection, redis::RedisError> {
    let client = redis::Client::open(redis.connection_info(db::STREAM))?;
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(READ_BLOCK + RESPONSE_SLACK));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The id of the stream's newest entry (`0-0` when there is no stream yet).
async fn stream_end(conn: &mut MultiplexedConnection) -> Result<String, redis::RedisError> {
    let newest: RedisValue = redis::cmd("XREVRANGE")
        .arg(EVENT_STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let entries = read_entries(&newest);
    Ok(entries
        .last()
        .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone()))
}

fn read_entries(value: &RedisValue) -> Vec<super::reply::RawEntry> {
    // XREVRANGE answers a plain entry list; wrap it as one stream of an XREAD reply.
    let wrapped = RedisValue::Array(vec![RedisValue::Array(vec![
        RedisValue::BulkString(EVENT_STREAM.as_bytes().to_vec()),
        value.clone(),
    ])]);
    read_reply(&wrapped).unwrap_or_default()
}

async fn run(log: slog::Logger, redis: RedisSettings, subscribers: Arc<Mutex<Vec<Subscription>>>) {
    // Set on the first connection to the stream's current end; then the last entry seen, so
    // that nothing added between two reads is missed.
    let mut last_id: Option<String> = None;
    let mut connection: Option<MultiplexedConnection> = None;
    loop {
        let step = async {
            let mut conn = match &connection {
                Some(conn) => conn.clone(),
                None => {
                    let conn = connect(&redis).await?;
                    connection = Some(conn.clone());
                    conn
                }
            };
            let from = match &last_id {
                Some(id) => id.clone(),
                None => {
                    let id = stream_end(&mut conn).await?;
                    last_id = Some(id.clone());
                    id
                }
            };
            let reply: RedisValue = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_BATCH)
                .arg("BLOCK")
                .arg(READ_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(EVENT_STREAM)
                .arg(&from)
                .query_async(&mut conn)
                .await?;
            Ok::<RedisValue, redis::RedisError>(reply)
        };
        match step.await {
            Ok(reply) => {
                let entries = match read_reply(&reply) {
                    Ok(entries) => entries,
                    Err(error) => {
                        slog::warn!(log, "event feed: unreadable XREAD reply"; "error" => %error);
                        continue;
                    }
                };
                if let Some(last) = entries.last() {
                    last_id = Some(last.id.clone());
                }
                let log_for_decode = log.clone();
                let decoded =
                    tokio::task::spawn_blocking(move || decode_batch(&log_for_decode, entries))
                        .await
                        .unwrap_or_default();
                dispatch(&log, &subscribers, &decoded).await;
            }
            Err(error) => {
                slog::warn!(log, "event feed: redis error, retrying"; "error" => %error);
                connection = None;
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

impl Actor for EventFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(
            run(
                self.log.clone(),
                self.redis.clone(),
                self.subscribers.clone(),
            )
            .into_actor(self),
        );
    }
}

/// The feed's name in restart counts, the watchdog and fault injection.
pub const FEED_ACTOR_NAME: &str = "event-feed";

impl Supervised for EventFeed {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(FEED_ACTOR_NAME);
        slog::warn!(self.log, "event feed: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(EventFeed, FEED_ACTOR_NAME);

impl Handler<Subscribe> for EventFeed {
    type Result = ();

    fn handle(&mut self, message: Subscribe, _ctx: &mut Self::Context) {
        let subscription = Subscription {
            name: message.name,
            interest: message.interest,
            recipient: message.recipient,
        };
        match self.subscribers.lock() {
            Ok(mut list) => list.push(subscription),
            Err(poisoned) => poisoned.into_inner().push(subscription),
        }
    }
}
