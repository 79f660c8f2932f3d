//! The Prometheus text exposition format (version 0.0.4) of this process's figures: one
//! `# HELP`/`# TYPE` pair per family, then its samples, every sample labelled with the worker.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::histogram::HistogramSnapshot;
use super::{METRICS, http};

/// A label value with `\`, `"` and newlines escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus writes it.
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The samples of one histogram with `labels` (already rendered, may be empty).
pub fn histogram_samples(out: &mut String, name: &str, labels: &str, snapshot: &HistogramSnapshot) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, count) in snapshot.bounds.iter().zip(&snapshot.cumulative) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{}\"}} {count}",
            number(*bound)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        snapshot.count
    );
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}",
        number(snapshot.sum_seconds)
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", snapshot.count);
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, worker: &str, value: f64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name}{{{worker}}} {}", number(value));
}

/// Extra figures read at scrape time (the event bus and pool state of the worker).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Request-pool connections: (size, available).
    pub db_pool: (usize, usize),
}

/// Every figure of this process, labelled `worker="{worker}"`.
pub fn render(worker: usize, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let worker = format!("worker=\"{worker}\"");
    let m = &METRICS;

    family(
        &mut out,
        "bai_http_request_duration_seconds",
        "histogram",
        "HTTP requests by route pattern and status, time to the response head.",
    );
    for (pattern, status, snapshot) in http::snapshot() {
        let labels = format!(
            "{worker},route=\"{}\",status=\"{status}\"",
            escape_label(&pattern)
        );
        histogram_samples(
            &mut out,
            "bai_http_request_duration_seconds",
            &labels,
            &snapshot,
        );
    }

    family(
        &mut out,
        "bai_db_pool_wait_seconds",
        "histogram",
        "Time requests waited for a connection of the request pool.",
    );
    histogram_samples(
        &mut out,
        "bai_db_pool_wait_seconds",
        &worker,
        &m.db_pool_wait.snapshot(),
    );
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
    scalar(
        &mut out,
        "bai_db_pool_errors_total",
        "counter",
        "Request-pool checkouts that failed (timeout or error).",
        &worker,
        load(&m.db_pool_errors),
    );
    scalar(
        &mut out,
        "bai_db_pool_size",
        "gauge",
        "Connections of the request pool.",
        &worker,
        gauges.db_pool.0 as f64,
    );
    scalar(
        &mut out,
        "bai_db_pool_available",
        "gauge",
        "Idle connections of the request pool.",
        &worker,
        gauges.db_pool.1 as f64,
    );
    scalar(
        &mut out,
        "bai_redis_errors_total",
        "counter",
        "Redis commands that failed.",
        &worker,
        load(&m.redis_errors),
    );
    scalar(
        &mut out,
        "bai_etcd_errors_total",
        "counter",
        "etcd requests that failed.",
        &worker,
        load(&m.etcd_errors),
    );

    family(
        &mut out,
        "bai_scheduler_pass_duration_seconds",
        "histogram",
        "Scheduling passes run by this worker and their duration.",
    );
    histogram_samples(
        &mut out,
        "bai_scheduler_pass_duration_seconds",
        &worker,
        &m.scheduler_pass.snapshot(),
    );
    scalar(
        &mut out,
        "bai_scheduler_placements_total",
        "counter",
        "Sessions placed on agents by this worker's passes.",
        &worker,
        load(&m.scheduler_placements),
    );
    scalar(
        &mut out,
        "bai_scheduler_pending_sessions",
        "gauge",
        "PENDING sessions seen by this worker's last pass.",
        &worker,
        m.scheduler_pending.load(Ordering::Relaxed) as f64,
    );
    scalar(
        &mut out,
        "bai_agent_heartbeats_total",
        "counter",
        "Agent heartbeats handled by this worker.",
        &worker,
        load(&m.heartbeats),
    );
    scalar(
        &mut out,
        "bai_agents_lost_total",
        "counter",
        "Agents this worker declared lost.",
        &worker,
        load(&m.agents_lost),
    );
    scalar(
        &mut out,
        "bai_agent_rpc_connections",
        "gauge",
        "Agent RPC connections this worker holds open.",
        &worker,
        m.agent_rpc_connections.load(Ordering::Relaxed) as f64,
    );

    family(
        &mut out,
        "bai_event_lag_seconds",
        "histogram",
        "Age of agent events when this worker's event bus handed them to the actors.",
    );
    histogram_samples(
        &mut out,
        "bai_event_lag_seconds",
        &worker,
        &m.event_lag.snapshot(),
    );
    family(
        &mut out,
        "bai_actor_restarts_total",
        "counter",
        "Supervised actors of this worker restarted in place after they stopped.",
    );
    for (actor, restarts) in crate::supervision::restarts() {
        let _ = writeln!(
            out,
            "bai_actor_restarts_total{{{worker},actor=\"{}\"}} {restarts}",
            escape_label(actor)
        );
    }
    family(
        &mut out,
        "bai_actor_mailbox_depth",
        "gauge",
        "Requests sent to a supervised actor of this worker and not yet answered (queued or being handled).",
    );
    for (actor, depth) in crate::supervision::mailbox_depths() {
        let _ = writeln!(
            out,
            "bai_actor_mailbox_depth{{{worker},actor=\"{}\"}} {depth}",
            escape_label(actor)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let mut out = String::new();
        let snapshot = HistogramSnapshot {
            bounds: vec![0.5, 1.0],
            cumulative: vec![1, 2],
            count: 3,
            sum_seconds: 4.25,
        };
        histogram_samples(&mut out, "x", "worker=\"1\"", &snapshot);
        assert_eq!(
            out,
            "x_bucket{worker=\"1\",le=\"0.5\"} 1\nx_bucket{worker=\"1\",le=\"1\"} 2\n\
             x_bucket{worker=\"1\",le=\"+Inf\"} 3\nx_sum{worker=\"1\"} 4.25\nx_count{worker=\"1\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
