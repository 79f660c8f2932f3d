//! Supervision inside a worker: a restart count per actor, the watchdog that notices an actor
//! that is gone for good, and the fault-injection message the worker's debug hook sends.
//!
//! Two ways an actor can end, two answers:
//! - it **stops** (`ctx.stop()`, e.g. after an error it cannot get past): the actors that can
//!   rebuild their state from their settings are started with `actix::Supervisor`, which calls
//!   [`actix::Supervised::restarting`] and starts them again on the same mailbox, so no queued
//!   message and no address held by a handler is lost. Each such restart is counted here.
//! - it **dies** (a panic drops its context and closes its mailbox): nothing inside the process
//!   can bring that mailbox back, so the [`watchdog::Watchdog`] sees it and the worker exits
//!   with a failure; the process supervisor starts a clean one, which claims the events the old
//!   one left unacknowledged.
//!
//! The counts are process-wide (one worker process, one registry), read with [`restarts`]; the
//! `/metrics` endpoint exports them as `bai_actor_restarts_total{actor=...}`.
//!
//! Mailbox depth: the senders of the scheduler, heartbeat tracker, registry sync, storage
//! broker, lock actor, session-event feed and the other event-bus subscribers wrap each
//! request in [`in_flight`] (a guard held from the send until the reply arrives or the request
//! is dropped), so
//! [`mailbox_depths`] counts the requests sent to an actor and not yet answered: queued in its
//! mailbox or being handled. `/metrics` exports them as `bai_actor_mailbox_depth{actor=...}`.
//! A `do_send` (no reply) and the actors' own timers are not counted.

pub mod fault;
pub mod watchdog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub use fault::InjectFault;
pub use watchdog::Watchdog;

/// One actor's counters.
#[derive(Debug, Default)]
struct ActorCounters {
    restarts: AtomicU64,
    in_flight: AtomicU64,
}

/// Every registered actor's counters, by name.
type Registry = Mutex<Vec<(&'static str, Arc<ActorCounters>)>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn counters(actor: &'static str) -> Arc<ActorCounters> {
    let mut list = match registry().lock() {
        Ok(list) => list,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((_, counters)) = list.iter().find(|(name, _)| *name == actor) {
        return counters.clone();
    }
    let counters = Arc::new(ActorCounters::default());
    list.push((actor, counters.clone()));
    counters
}

/// Makes `actor` show up in [`restarts`] with 0 before its first restart.
pub fn register(actor: &'static str) {
    counters(actor);
}

/// Counts one restart of `actor`; called from its `Supervised::restarting`. Returns the count.
pub fn record_restart(actor: &'static str) -> u64 {
    counters(actor).restarts.fetch_add(1, Ordering::Relaxed) + 1
}

/// How often each registered actor of this process was restarted, by actor name.
pub fn restarts() -> Vec<(&'static str, u64)> {
    let list = match registry().lock() {
        Ok(list) => list,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut counts: Vec<(&'static str, u64)> = list
        .iter()
        .map(|(name, counters)| (*name, counters.restarts.load(Ordering::Relaxed)))
        .collect();
    counts.sort_unstable();
    counts
}

/// A request to one actor, counted in its mailbox depth until dropped.
#[must_use = "the request counts only while the guard lives"]
pub struct InFlight(Option<Arc<ActorCounters>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(counters) = self.0.take() {
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Counts one request to `actor` until the returned guard is dropped (hold it across the
/// `send(..).await`). An actor name never registered is not counted (nothing to export).
pub fn in_flight(actor: &str) -> InFlight {
    let list = match registry().lock() {
        Ok(list) => list,
        Err(poisoned) => poisoned.into_inner(),
    };
    let counters = list
        .iter()
        .find(|(name, _)| *name == actor)
        .map(|(_, counters)| counters.clone());
    drop(list);
    if let Some(counters) = &counters {
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    InFlight(counters)
}

/// Sends through `send` (e.g. `addr.send(message)`) with the request counted for `actor`.
pub async fn tracked<F: std::future::Future>(actor: &str, send: F) -> F::Output {
    let _guard = in_flight(actor);
    send.await
}

/// The requests sent to each registered actor and not yet answered, by actor name.
pub fn mailbox_depths() -> Vec<(&'static str, u64)> {
    let list = match registry().lock() {
        Ok(list) => list,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut depths: Vec<(&'static str, u64)> = list
        .iter()
        .map(|(name, counters)| (*name, counters.in_flight.load(Ordering::Relaxed)))
        .collect();
    depths.sort_unstable();
    depths
}

/// The mailbox depth of one actor (0 if it never registered).
pub fn mailbox_depth_of(actor: &str) -> u64 {
    mailbox_depths()
        .into_iter()
        .find(|(name, _)| *name == actor)
        .map_or(0, |(_, depth)| depth)
}

/// The restart count of one actor (0 if it never registered).
pub fn restarts_of(actor: &str) -> u64 {
    restarts()
        .into_iter()
        .find(|(name, _)| *name == actor)
        .map_or(0, |(_, count)| count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_counted_per_actor_and_listed_by_name() {
        register("test-zulu");
        assert_eq!(restarts_of("test-zulu"), 0);
        assert_eq!(record_restart("test-alpha"), 1);
        assert_eq!(record_restart("test-alpha"), 2);
        let counts = restarts();
        let alpha = counts.iter().position(|(n, _)| *n == "test-alpha").unwrap();
        let zulu = counts.iter().position(|(n, _)| *n == "test-zulu").unwrap();
        assert!(alpha < zulu);
        assert_eq!(counts[alpha].1, 2);
        assert_eq!(restarts_of("never-registered"), 0);
    }

    #[test]
    fn a_request_counts_in_the_mailbox_depth_until_its_guard_is_dropped() {
        register("test-depth");
        assert_eq!(mailbox_depth_of("test-depth"), 0);
        let first = in_flight("test-depth");
        let second = in_flight("test-depth");
        assert_eq!(mailbox_depth_of("test-depth"), 2);
        drop(first);
        assert_eq!(mailbox_depth_of("test-depth"), 1);
        drop(second);
        assert_eq!(mailbox_depth_of("test-depth"), 0);
        // Unregistered names are not counted and do not appear.
        let _ignored = in_flight("test-depth-never-registered");
        assert!(
            mailbox_depths()
                .iter()
                .all(|(n, _)| *n != "test-depth-never-registered")
        );
    }

    #[actix::test]
    async fn a_tracked_send_counts_while_the_actor_has_not_answered() {
        use actix::prelude::*;

        struct Gate(Option<tokio::sync::oneshot::Receiver<()>>);
        impl Actor for Gate {
            type Context = Context<Self>;
        }
        #[derive(Message)]
        #[rtype(result = "()")]
        struct Wait;
        impl Handler<Wait> for Gate {
            type Result = ResponseFuture<()>;
            fn handle(&mut self, _: Wait, _: &mut Context<Self>) -> Self::Result {
                let open = self.0.take();
                Box::pin(async move {
                    if let Some(open) = open {
                        let _ = open.await;
                    }
                })
            }
        }

        register("test-gate");
        let (release, open) = tokio::sync::oneshot::channel();
        let gate = Gate(Some(open)).start();
        let request = tokio::spawn(tracked("test-gate", gate.send(Wait)));
        // The request is counted before its reply (nothing answers until `release`).
        while mailbox_depth_of("test-gate") == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(mailbox_depth_of("test-gate"), 1);
        release.send(()).unwrap();
        request.await.unwrap().unwrap();
        assert_eq!(mailbox_depth_of("test-gate"), 0);
    }
}
