//! Puts events on the shared `events` stream (db 4) in the format the peers read, and
//! publishes broadcast events on `events_all` for 26.x agents.

use redis::aio::ConnectionManager;

use super::entry::{BROADCAST_CHANNEL, EVENT_STREAM, WireFormat, render_broadcast, render_entry};
use super::events::{Event, EventError};

/// The `source` of events the manager produces about itself (`do_schedule`, ...).
pub const MANAGER_SOURCE: &str = "manager";

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot encode event: {0}")]
    Encode(#[from] EventError),
    #[error("cannot add event {name} to the Redis stream {EVENT_STREAM:?}: {source}")]
    Redis {
        name: String,
        #[source]
        source: redis::RedisError,
    },
}

/// A cheap-to-clone handle that writes events. Example:
/// `producer.produce(&Event::Trigger(Trigger::DoSchedule)).await?`.
#[derive(Clone)]
pub struct EventProducer {
    redis: ConnectionManager,
    format: WireFormat,
}

impl EventProducer {
    /// `redis` must be connected to db 4 ([`crate::redis::db::STREAM`]).
    pub fn new(redis: ConnectionManager, format: WireFormat) -> EventProducer {
        EventProducer { redis, format }
    }

    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// Adds `event` with source `manager`; returns its stream id.
    pub async fn produce(&self, event: &Event) -> Result<String, ProduceError> {
        self.produce_as(MANAGER_SOURCE, event).await
    }

    /// Adds `event` on behalf of `source` (the manager produces `agent_started("revived")`
    /// and `agent_terminated("agent-lost")` with the agent's id as source).
    pub async fn produce_as(&self, source: &str, event: &Event) -> Result<String, ProduceError> {
        let fields = render_entry(event, source, self.format)?;
        let mut command = redis::cmd("XADD");
        command.arg(EVENT_STREAM).arg("*");
        for (key, value) in &fields {
            command.arg(*key).arg(value.as_slice());
        }
        let mut redis = self.redis.clone();
        command
            .query_async(&mut redis)
            .await
            .map_err(|source| ProduceError::Redis {
                name: event.name().to_owned(),
                source,
            })
    }

    /// Publishes `event` on `events_all`, where 26.x agents listen for broadcast events.
    pub async fn broadcast(&self, event: &Event) -> Result<(), ProduceError> {
        let message = render_broadcast(event, MANAGER_SOURCE)?;
        let mut redis = self.redis.clone();
        redis::cmd("PUBLISH")
            .arg(BROADCAST_CHANNEL)
            .arg(message)
            .query_async::<i64>(&mut redis)
            .await
            .map(|_| ())
            .map_err(|source| ProduceError::Redis {
                name: event.name().to_owned(),
                source,
            })
    }
}
