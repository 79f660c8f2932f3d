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
//! `/metrics` endpoint exports them as `actor restarts{actor=...}`.

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
}
