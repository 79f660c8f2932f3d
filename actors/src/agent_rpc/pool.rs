//! The bound on the agent connections one client keeps open: which idle ones to close, decided
//! from each connection's last use and calls in flight alone (no I/O here).
//!
//! An idle connection costs a worker about 7 KiB (measured by `benches/agent_rpc_idle.rs`: the
//! socket's buffers, its reader task and the `zeromq` peer's writer task and queues), and glibc
//! keeps the peak, so a worker that once called thousands of agents would stay that large. The
//! original manager opens a connection per call; keeping the recently used ones saves the
//! connect and PING/PONG handshake (1–2 ms) on the agents the scheduler and users are working
//! with, while the bound keeps the rest closed.

use std::time::{Duration, Instant};

/// Open connections per client (one client per worker). Twice the scheduler's
/// `MAX_CONCURRENT_DISPATCHES` (256 `create_kernels` calls at once), so that a full dispatch
/// burst still leaves room for the reconciler's probes and users' calls on running sessions
/// without waiting; about 3.5 MiB of a worker at the measured 7 KiB per connection.
pub const MAX_OPEN_CONNECTIONS: usize = 512;

/// An agent not called for this long has its connection closed. Longer than the scheduler's
/// and the reconciler's intervals (10 s and 15 s), so an agent they are working with keeps its
/// connection from one pass to the next; a later call reconnects in a millisecond or two.
pub const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(60);

/// The bounds a client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// At most this many connections open at once (at least 1).
    pub max_open: usize,
    /// An idle connection unused for this long is closed.
    pub idle_after: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_open: MAX_OPEN_CONNECTIONS,
            idle_after: IDLE_CLOSE_AFTER,
        }
    }
}

/// How one open connection is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Calls on it that have not returned yet (including the one connecting it).
    pub in_flight: usize,
    /// When it was opened or its last call returned.
    pub last_used: Instant,
}

/// What to do before opening `opening` more connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosePlan<K> {
    /// The connections to close, least recently used first.
    pub close: Vec<K>,
    /// Whether `opening` more then fit under the bound; if not, every open connection has
    /// calls in flight and the caller must wait for one to return.
    pub room: bool,
}

/// Which connections to close so that `opening` more fit under `limits.max_open`: every idle
/// one unused for `limits.idle_after` or longer, then the least recently used idle ones until
/// there is room. A connection with calls in flight is never chosen. `opening` is 0 for a sweep
/// of idle connections, 1 before opening a connection to a new agent.
pub fn plan_closing<K>(
    open: impl IntoIterator<Item = (K, Usage)>,
    opening: usize,
    limits: PoolLimits,
    now: Instant,
) -> ClosePlan<K> {
    let max_open = limits.max_open.max(1);
    let mut total = 0;
    let mut idle: Vec<(K, Instant)> = Vec::new();
    for (key, usage) in open {
        total += 1;
        if usage.in_flight == 0 {
            idle.push((key, usage.last_used));
        }
    }
    // Stable, so equally old connections close in the order given.
    idle.sort_by_key(|(_, last_used)| *last_used);
    let mut close = Vec::new();
    for (key, last_used) in idle {
        let expired = now.saturating_duration_since(last_used) >= limits.idle_after;
        let over = total - close.len() + opening > max_open;
        if !(expired || over) {
            break;
        }
        close.push(key);
    }
    ClosePlan {
        room: total - close.len() + opening <= max_open,
        close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_open: usize, idle_secs: u64) -> PoolLimits {
        PoolLimits {
            max_open,
            idle_after: Duration::from_secs(idle_secs),
        }
    }

    /// Connections named by letter, `(in_flight, seconds since last use)` each, at `now`.
    fn open(now: Instant, spec: &[(&'static str, usize, u64)]) -> Vec<(&'static str, Usage)> {
        spec.iter()
            .map(|&(key, in_flight, ago)| {
                (
                    key,
                    Usage {
                        in_flight,
                        last_used: now - Duration::from_secs(ago),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn under_the_bound_nothing_recent_closes() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("a", 0, 5), ("b", 1, 50)]),
            1,
            limits(3, 60),
            now,
        );
        assert_eq!(
            plan,
            ClosePlan {
                close: vec![],
                room: true
            }
        );
    }

    #[test]
    fn at_the_bound_the_least_recently_used_idle_one_closes() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("a", 0, 5), ("b", 0, 20), ("c", 0, 10)]),
            1,
            limits(3, 60),
            now,
        );
        assert_eq!(plan.close, vec!["b"]);
        assert!(plan.room);
    }

    #[test]
    fn busy_connections_are_never_closed_however_old() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("old-busy", 2, 900), ("a", 0, 5), ("b", 1, 30)]),
            1,
            limits(3, 60),
            now,
        );
        assert_eq!(plan.close, vec!["a"]);
        assert!(plan.room);
    }

    #[test]
    fn when_every_connection_is_busy_there_is_no_room() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("a", 1, 5), ("b", 3, 500)]),
            1,
            limits(2, 60),
            now,
        );
        assert_eq!(
            plan,
            ClosePlan {
                close: vec![],
                room: false
            }
        );
    }

    #[test]
    fn a_sweep_closes_every_expired_idle_one_and_only_those() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(
                now,
                &[
                    ("fresh", 0, 59),
                    ("expired", 0, 60),
                    ("busy", 1, 300),
                    ("older", 0, 120),
                ],
            ),
            0,
            limits(10, 60),
            now,
        );
        assert_eq!(plan.close, vec!["older", "expired"]);
        assert!(plan.room);
    }

    #[test]
    fn expired_ones_close_even_when_the_bound_alone_would_close_fewer() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("a", 0, 70), ("b", 0, 80), ("c", 0, 1)]),
            1,
            limits(3, 60),
            now,
        );
        assert_eq!(plan.close, vec!["b", "a"]);
    }

    #[test]
    fn over_the_bound_already_closes_down_to_it() {
        // A smaller bound than the connections open (never in the client, but the decision
        // stays sound): idle ones close until the new one fits.
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(
            open(now, &[("a", 0, 1), ("b", 0, 2), ("c", 0, 3), ("d", 1, 4)]),
            1,
            limits(2, 60),
            now,
        );
        assert_eq!(plan.close, vec!["c", "b", "a"]);
        assert!(plan.room);
    }

    #[test]
    fn a_bound_of_zero_is_taken_as_one() {
        let now = Instant::now() + Duration::from_secs(1000);
        let plan = plan_closing(open(now, &[("a", 0, 1)]), 1, limits(0, 60), now);
        assert_eq!(plan.close, vec!["a"]);
        assert!(plan.room);
        let empty: Vec<(&str, Usage)> = Vec::new();
        assert!(plan_closing(empty, 1, limits(0, 60), now).room);
    }

    #[test]
    fn no_connections_no_plan() {
        let now = Instant::now();
        let empty: Vec<(&str, Usage)> = Vec::new();
        assert_eq!(
            plan_closing(empty, 0, PoolLimits::default(), now),
            ClosePlan {
                close: vec![],
                room: true
            }
        );
    }
}
