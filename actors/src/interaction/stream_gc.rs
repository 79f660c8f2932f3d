//! Stale-entry collection of the app-stream accounting, as the original's
//! `stream_conn_tracker_gc`: every [`GC_INTERVAL`], for each kernel with streams open in this
//! worker, the members of `session.{kernel}.active_app_connections` whose last traffic is older
//! than etcd `config/idle/app-streaming-packet-timeout` (default `5m`) are dropped, measured
//! against the Redis server's clock. An idle stream therefore stops keeping its session alive
//! for the idle checker, and entries left by a manager that died with streams open go away once
//! any worker serves a stream of that kernel.
//!
//! [`OpenStreams`] is the worker's multiset of kernels with open streams (the original's
//! `active_session_ids`); a stream holds an [`OpenStream`] guard while it lasts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::app_connections::tracker_key;
use crate::etcd::EtcdStore;
use crate::idle::config::parse_duration;

/// How often the collection runs (the original's 10 s).
pub const GC_INTERVAL: Duration = Duration::from_secs(10);
/// The etcd key of the packet timeout.
pub const PACKET_TIMEOUT_KEY: &str = "config/idle/app-streaming-packet-timeout";
/// The original's default timeout, `5m`.
pub const DEFAULT_PACKET_TIMEOUT_SECS: f64 = 300.0;

#[derive(Debug, thiserror::Error)]
pub enum StreamGcError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Drops the members scored before `now - timeout` (Redis time), in one script per kernel;
/// returns how many went.
const COLLECT_SCRIPT: &str = "local now = redis.call('TIME')
now = now[1] + (now[2] / (10^6))
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))";

/// The packet timeout in seconds from etcd's text: the original's `TimeDuration` reading, the
/// default when absent or unreadable.
pub fn packet_timeout(text: Option<&str>) -> f64 {
    text.and_then(parse_duration)
        .filter(|seconds| *seconds >= 0.0)
        .unwrap_or(DEFAULT_PACKET_TIMEOUT_SECS)
}

/// Reads the packet timeout from etcd (the default when etcd cannot be read).
pub async fn read_packet_timeout(etcd: &EtcdStore) -> f64 {
    let text = etcd.get(PACKET_TIMEOUT_KEY).await.ok().flatten();
    packet_timeout(text.as_deref())
}

/// Drops the stale streams of `kernels`; returns how many were dropped per kernel (only
/// kernels that lost some).
pub async fn collect_stale(
    redis: &mut ConnectionManager,
    kernels: &[Uuid],
    timeout_secs: f64,
) -> Result<Vec<(Uuid, i64)>, StreamGcError> {
    let mut removed = Vec::new();
    for kernel in kernels {
        let count: i64 = redis::Script::new(COLLECT_SCRIPT)
            .key(tracker_key(*kernel))
            .arg(timeout_secs)
            .invoke_async(redis)
            .await?;
        if count > 0 {
            removed.push((*kernel, count));
        }
    }
    Ok(removed)
}

/// The kernels with streams open in this worker, and whether the collector runs.
#[derive(Default)]
pub struct OpenStreams {
    kernels: Arc<Mutex<HashMap<Uuid, usize>>>,
    collector_started: AtomicBool,
}

/// One open stream of a kernel; dropping it forgets the stream.
pub struct OpenStream {
    kernels: Arc<Mutex<HashMap<Uuid, usize>>>,
    kernel: Uuid,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut kernels = lock(&self.kernels);
        if let Some(count) = kernels.get_mut(&self.kernel) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                kernels.remove(&self.kernel);
            }
        }
    }
}

fn lock(kernels: &Mutex<HashMap<Uuid, usize>>) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
    kernels
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OpenStreams {
    /// Counts a stream of `kernel` until the guard is dropped.
    pub fn open(&self, kernel: Uuid) -> OpenStream {
        *lock(&self.kernels).entry(kernel).or_default() += 1;
        OpenStream {
            kernels: self.kernels.clone(),
            kernel,
        }
    }

    /// The kernels with at least one open stream.
    pub fn kernels(&self) -> Vec<Uuid> {
        lock(&self.kernels).keys().copied().collect()
    }

    /// Starts the worker's collector on the current runtime, once (the first stream starts
    /// it; it runs for the worker's life).
    pub fn ensure_collector(
        self: &Arc<Self>,
        redis: ConnectionManager,
        etcd: EtcdStore,
        log: slog::Logger,
    ) {
        if self.collector_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let streams = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut redis = redis;
            let mut ticker = tokio::time::interval(GC_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(streams) = streams.upgrade() else {
                    return;
                };
                let kernels = streams.kernels();
                drop(streams);
                if kernels.is_empty() {
                    continue;
                }
                let timeout = read_packet_timeout(&etcd).await;
                match collect_stale(&mut redis, &kernels, timeout).await {
                    Ok(removed) => {
                        for (kernel, count) in removed {
                            slog::debug!(log, "dropped stale app streams";
                                "kernel" => %kernel, "removed" => count);
                        }
                    }
                    Err(error) => {
                        slog::warn!(log, "cannot collect stale app streams"; "error" => %error);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_read_as_the_original_reads_it() {
        assert_eq!(packet_timeout(None), 300.0);
        assert_eq!(packet_timeout(Some("2m")), 120.0);
        assert_eq!(packet_timeout(Some("45")), 45.0);
        assert_eq!(packet_timeout(Some("soon")), 300.0);
    }

    #[test]
    fn streams_are_counted_per_kernel() {
        let streams = OpenStreams::default();
        let kernel = Uuid::from_u128(1);
        let first = streams.open(kernel);
        let second = streams.open(kernel);
        assert_eq!(streams.kernels(), vec![kernel]);
        drop(first);
        assert_eq!(streams.kernels(), vec![kernel]);
        drop(second);
        assert!(streams.kernels().is_empty());
    }
}
