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
//! Two halves: the [`reader`] reads ahead, on a thread of its own (so the agents' own trimming
//! of the stream does not take entries before this worker has them), into a queue bounded in
//! entries, and the handler (`consumer`, in the actor's context) puts each event in the lane of
//! every subscriber that wants it (`lanes`). Each subscriber's `Handler<EventBatch>` gets its
//! events in stream order, one batch at a time (a slow subscriber holds back only its own
//! lane), and replies once it has handled them: `Ok(())`, or [`Unhandled`] naming the events it
//! could not handle now (e.g. the database was unreachable). An entry is acknowledged only when
//! every subscriber that wanted it replied without naming it. Everything else is offered again
//! from memory after [`RETRY_DELAY`], ahead of newer entries; if the worker dies holding it,
//! another worker claims it after [`CLAIM_MIN_IDLE`] (XAUTOCLAIM). Handlers must therefore be
//! idempotent. Producing events is separate:
//! [`crate::wire::EventProducer`]. Events every worker must see (the session events of
//! `GET /events/session`) are read apart from the group, by [`session_feed`].

mod consumer;
mod lanes;
pub mod leases;
pub mod reader;
pub mod reply;
pub mod session_feed;

use std::sync::{Arc, Mutex};

use actix::prelude::*;

pub use consumer::{
    CLAIM_MIN_IDLE, ConsumerSettings, READ_BATCH, READ_BLOCK, RETRY_DELAY, decode_batch,
};
pub use reader::MAX_QUEUED_ENTRIES;
pub use session_feed::SessionEventFeed;

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

/// The events of one read that a subscriber asked for, in stream order. The reply says they
/// were handled; the bus acknowledges them only then.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Unhandled>")]
pub struct EventBatch {
    pub events: Vec<ReceivedEvent>,
}

/// The events of a batch a subscriber could not handle now (by stream id): they stay pending
/// and are delivered again.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{} event(s) not handled", stream_ids.len())]
pub struct Unhandled {
    pub stream_ids: Vec<String>,
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

/// The bus's name in the supervision registry.
pub const ACTOR_NAME: &str = "event-bus";

impl Actor for EventBus {
    type Context = Context<Self>;

    /// Starts the reader on its own thread and the handler in the actor's context: both end
    /// with the actor (and start again when the supervisor restarts it).
    fn started(&mut self, ctx: &mut Self::Context) {
        slog::info!(self.log, "event bus: reading the event stream";
            "group" => &self.settings.group, "consumer" => &self.settings.consumer);
        let (queue, queued) = reader::queue();
        let in_flight = leases::InFlight::default();
        let reader = reader::Reader {
            log: self.log.clone(),
            redis: self.redis.clone(),
            settings: self.settings.clone(),
            in_flight: in_flight.clone(),
            queue,
            connection: None,
            last_claim: None,
            last_trim: None,
            trim_candidate: None,
        };
        let handler = consumer::Consumer {
            log: self.log.clone(),
            redis: self.redis.clone(),
            settings: self.settings.clone(),
            subscribers: self.subscribers.clone(),
            in_flight,
            queue: queued,
            connection: None,
            lanes: lanes::Lanes::default(),
            room: None,
            shared_parts: Default::default(),
        };
        let reader_thread = match reader.spawn() {
            Ok(thread) => thread,
            Err(error) => {
                slog::error!(self.log, "event bus: cannot start the reader's thread; retrying";
                    "error" => %error);
                ctx.run_later(consumer::RETRY_DELAY, |_, ctx| ctx.stop());
                return;
            }
        };
        ctx.spawn(
            async move {
                let _reader = reader_thread;
                handler.run().await;
            }
            .into_actor(self)
            // The handler ends only when the reader is gone: start both again.
            .map(|(), bus, ctx| {
                slog::warn!(bus.log, "event bus: the reader stopped");
                ctx.stop();
            }),
        );
    }
}

/// The reader keeps nothing but its connection, so a restart starts it afresh; the
/// subscribers are kept.
impl Supervised for EventBus {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        slog::warn!(self.log, "event bus: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(EventBus, ACTOR_NAME);

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
