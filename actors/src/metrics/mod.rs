//! This worker process's operational figures for `GET /metrics` (Prometheus text format):
//! HTTP requests by route pattern and status with their latency, database pool waits, Redis
//! and etcd errors, scheduler passes, heartbeats, lost agents, open agent RPC connections and event lag.
//!
//! Everything is a process-wide atomic ([`METRICS`]) or, for the per-route series, an atomic
//! reached through a per-thread cache (`http`), so recording takes no lock on the request path.
//! Each worker process keeps its own figures; the metrics listener of worker N serves worker
//! N's, labelled `worker="N"` (see the README for the scrape configuration).
//!
//! - `histogram`: a fixed-bucket histogram of atomics;
//! - `http`: the request middleware and the per-route series;
//! - `render`: the text exposition format.

pub mod histogram;
pub mod http;
pub mod render;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use histogram::Histogram;

/// Seconds bounds of the request latency histogram.
pub const REQUEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Seconds bounds of the pool-wait, scheduler-pass and event-lag histograms.
pub const SLOW_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The process-wide figures besides the per-route HTTP series.
pub struct Metrics {
    /// Time spent waiting for a connection of the request pool.
    pub db_pool_wait: Histogram<10>,
    /// Request-pool checkouts that failed (timeout or error).
    pub db_pool_errors: AtomicU64,
    pub redis_errors: AtomicU64,
    pub etcd_errors: AtomicU64,
    /// Scheduling passes and how long each took.
    pub scheduler_pass: Histogram<10>,
    /// Sessions placed on agents by the passes.
    pub scheduler_placements: AtomicU64,
    /// PENDING sessions seen by the last pass.
    pub scheduler_pending: AtomicI64,
    /// Agent heartbeats handled by this worker.
    pub heartbeats: AtomicU64,
    /// Agents this worker declared lost.
    pub agents_lost: AtomicU64,
    /// Agent RPC connections open now (bounded per client by `agent_rpc::MAX_OPEN_CONNECTIONS`).
    pub agent_rpc_connections: AtomicI64,
    /// Age of agent events when this worker's event bus handed them out.
    pub event_lag: Histogram<10>,
}

/// This process's figures.
pub static METRICS: Metrics = Metrics {
    db_pool_wait: Histogram::new(SLOW_BUCKETS),
    db_pool_errors: AtomicU64::new(0),
    redis_errors: AtomicU64::new(0),
    etcd_errors: AtomicU64::new(0),
    scheduler_pass: Histogram::new(SLOW_BUCKETS),
    scheduler_placements: AtomicU64::new(0),
    scheduler_pending: AtomicI64::new(0),
    heartbeats: AtomicU64::new(0),
    agents_lost: AtomicU64::new(0),
    agent_rpc_connections: AtomicI64::new(0),
    event_lag: Histogram::new(SLOW_BUCKETS),
};

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
