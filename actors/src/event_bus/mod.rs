//! The event-bus actor: reads the shared Redis stream `events` (db 4) as one consumer of the
//! group `manager`, so that every event is handled by exactly one worker, and hands the typed
//! events to the actors that subscribed to them.
//!
//! Subscribing, when the worker wires its actors (before the bus starts, so that no event of
//! the first read is missed):
//! ```ignore
//! let bus = EventBus::new(log, redis_settings, consumer_name)
//!     .with_subscriber(Subscription {
//!         name: "scheduler".into(),
//!         interest: EventInterest::names(&["kernel_started", "kernel_terminated", "do_schedule"]),
//!         recipient: scheduler_addr.recipient::<EventBatch>(),
//!     })
//!     .start();
//! ```
//! (or later with the [`Subscribe`] message).
//! The subscriber's `Handler<EventBatch>` gets the matching events of each read, in stream
//! order; the entries are acknowledged only after every subscriber's handler returned, so a
//! worker that dies mid-batch leaves them pending and another worker claims them
//! (XAUTOCLAIM). Handlers should therefore be idempotent. Producing events is separate:
//! [`crate::wire::EventProducer`].

pub mod broadcast;
mod consumer;
pub mod reply;

use std::sync::{Arc, Mutex};

use actix::prelude::*;

pub use broadcast::EventFeed;
pub use consumer::{
    CLAIM_MIN_IDLE, ConsumerSettings, READ_BATCH, READ_BLOCK, RETRY_DELAY, decode_batch,
};

use crate::redis::RedisSettings;
use crate::wire::Event;

/// The consumer group of managers on the `events` stream.
pub const MANAGER_GROUP: &str = "manager";

/// An event as read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub stream_id: String,
    /// The agent id for agent events, `manager` for the manager's own.
    pub source: String,
    pub event: Event,
}

/// The events of one read that a subscriber asked for, in stream order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EventBatch {
    pub events: Vec<ReceivedEvent>,
}

/// Which events a subscriber wants.
#[derive(Debug, Clone)]
pub enum EventInterest {
    All,
    /// Events with one of these wire names (`agent_heartbeat`, `kernel_started`, ...).
    Names(Vec<String>),
}

impl EventInterest {
    pub fn names(names: &[&str]) -> EventInterest {
        EventInterest::Names(names.iter().map(|name| (*name).to_owned()).collect())
    }

    pub fn matches(&self, event: &Event) -> bool {
        match self {
            EventInterest::All => true,
            EventInterest::Names(names) => names.iter().any(|name| name == event.name()),
        }
    }
}

#[derive(Clone)]
pub struct Subscription {
    /// For logs.
    pub name: String,
    pub interest: EventInterest,
    pub recipient: Recipient<EventBatch>,
}

/// Registers a subscriber for the rest of the actor's life.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub name: String,
    pub interest: EventInterest,
    pub recipient: Recipient<EventBatch>,
}

pub struct EventBus {
    log: slog::Logger,
    redis: RedisSettings,
    settings: ConsumerSettings,
    subscribers: Arc<Mutex<Vec<Subscription>>>,
}

impl EventBus {
    /// `consumer` must be unique per worker and stable across its restarts, e.g.
    /// `<manager id>:<worker index>`.
    pub fn new(log: slog::Logger, redis: RedisSettings, consumer: impl Into<String>) -> EventBus {
        EventBus {
            log,
            redis,
            settings: ConsumerSettings {
                group: MANAGER_GROUP.to_owned(),
                consumer: consumer.into(),
            },
            subscribers: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl EventBus {
    /// Adds a subscriber before the bus starts reading.
    pub fn with_subscriber(self, subscription: Subscription) -> EventBus {
        match self.subscribers.lock() {
            Ok(mut list) => list.push(subscription),
            Err(poisoned) => poisoned.into_inner().push(subscription),
        }
        self
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        slog::info!(self.log, "event bus: reading the event stream";
            "group" => &self.settings.group, "consumer" => &self.settings.consumer);
        let reader = consumer::Consumer {
            log: self.log.clone(),
            redis: self.redis.clone(),
            settings: self.settings.clone(),
            subscribers: self.subscribers.clone(),
            connection: None,
            last_claim: None,
            last_trim: None,
            trim_candidate: None,
        };
        ctx.spawn(reader.run().into_actor(self));
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, message: Subscribe, _ctx: &mut Self::Context) {
        slog::debug!(self.log, "event bus: new subscriber"; "subscriber" => &message.name);
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
