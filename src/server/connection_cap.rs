//! The per-worker cap on open client connections, and the WARN line that says when a worker
//! reaches it. actix-server enforces the cap (it stops accepting until a connection closes;
//! new clients wait in the listen backlog) but says nothing; this module counts the open
//! connections through `HttpServer::on_connect` (a guard in each connection's extensions,
//! dropped when the connection ends) and logs, at most once per [`CAP_WARN_INTERVAL`], how
//! often the cap was hit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Extensions;

/// The least time between two "connection cap reached" lines of one worker: often enough to
/// see that a flood goes on, rarely enough that the flood cannot flood the log too.
pub const CAP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// File descriptors a worker keeps for itself beyond client connections: its database pool,
/// Redis and etcd connections, storage-proxy and agent sockets, log pipes, with room to spare.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 256;

/// The cap a worker can honour: the configured one, or less when the process's file limit
/// (`RLIMIT_NOFILE`, soft) minus [`RESERVED_FILE_DESCRIPTORS`] is lower, since accepting past
/// that limit fails for everyone (and actix logs it as an error on every attempt).
pub fn effective_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return configured;
    };
    let room = limit.saturating_sub(RESERVED_FILE_DESCRIPTORS).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The soft `RLIMIT_NOFILE` of this process; `None` when unlimited or unknown.
pub fn file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// What one worker knows about its connections.
pub struct ConnectionCap {
    cap: usize,
    open: AtomicUsize,
    warnings: Mutex<WarnState>,
    log: slog::Logger,
}

#[derive(Debug, Default)]
struct WarnState {
    last_warned: Option<Instant>,
    /// Times the cap was reached since the last line.
    unreported: u64,
}

impl WarnState {
    /// Records one time the cap was reached; `Some(times)` when a line is due now (`times`
    /// counts this one and those not yet reported).
    fn reached(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        self.unreported += 1;
        let due = self
            .last_warned
            .is_none_or(|last| now.duration_since(last) >= interval);
        if !due {
            return None;
        }
        self.last_warned = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

/// Lives in a connection's extensions; its drop closes the count.
struct OpenConnection(Arc<ConnectionCap>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionCap {
    pub fn new(cap: usize, log: slog::Logger) -> Arc<ConnectionCap> {
        Arc::new(ConnectionCap {
            cap,
            open: AtomicUsize::new(0),
            warnings: Mutex::new(WarnState::default()),
            log,
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// For `HttpServer::on_connect`: counts the new connection until it closes, and warns
    /// when it is the one that reaches the cap.
    pub fn on_connect(self: &Arc<Self>, extensions: &mut Extensions) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        extensions.insert(OpenConnection(Arc::clone(self)));
        if open < self.cap {
            return;
        }
        let due = match self.warnings.lock() {
            Ok(mut state) => state.reached(Instant::now(), CAP_WARN_INTERVAL),
            Err(_) => None,
        };
        if let Some(times) = due {
            slog::warn!(self.log,
                "connection cap reached: this worker has {open} open client connections and \
                 accepts no more until some close (new clients wait in the listen backlog); \
                 raise [manager] max-connections-per-worker if this is legitimate load";
                "cap" => self.cap, "times_reached" => times);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_is_rate_limited_and_counts_what_it_skipped() {
        let mut state = WarnState::default();
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        assert_eq!(state.reached(start, interval), Some(1));
        assert_eq!(
            state.reached(start + Duration::from_secs(1), interval),
            None
        );
        assert_eq!(
            state.reached(start + Duration::from_secs(5), interval),
            None
        );
        assert_eq!(
            state.reached(start + Duration::from_secs(10), interval),
            Some(3)
        );
    }

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        assert_eq!(effective_cap(10_000, None), 10_000);
        assert_eq!(effective_cap(10_000, Some(1024)), 768);
        assert_eq!(effective_cap(100, Some(1024)), 100);
        assert_eq!(effective_cap(10_000, Some(100)), 1);
        assert_eq!(effective_cap(10_000, Some(5_242_880)), 10_000);
    }

    #[test]
    fn connections_are_counted_until_they_close() {
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let cap = ConnectionCap::new(2, log);
        let mut first = Extensions::new();
        let mut second = Extensions::new();
        cap.on_connect(&mut first);
        cap.on_connect(&mut second);
        assert_eq!(cap.open.load(Ordering::Relaxed), 2);
        assert!(cap.warnings.lock().unwrap().last_warned.is_some());
        drop(first);
        assert_eq!(cap.open.load(Ordering::Relaxed), 1);
    }
}
