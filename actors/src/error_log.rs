//! The error-log collector: stores the agents' `agent_error` reports in `error_logs` (the
//! original's `ErrorMonitor.handle_agent_error`) and, once per cluster every 20 s under the lock
//! `LOCKID_LOG_CLEANUP_TIMER`, deletes logs older than etcd `config/logs/error/retention`
//! (default 90 days; `log_cleanup_task`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bai_schema::queries::error_logs::{NewErrorLog, delete_before, insert_error_log};
use deadpool_postgres::Pool;
use slog::{Logger, info, warn};
use uuid::Uuid;

use crate::etcd::EtcdStore;
use crate::event_bus::{EventBatch, EventInterest, Unhandled};
use crate::idle::config::parse_duration;
use crate::lock::{ClusterLocks, Exclusive, LockId};
use crate::wire::{AgentErrorReport, Event};

/// The collector's name in the supervision registry.
pub const ACTOR_NAME: &str = "error-logs";

/// The original's cleanup timer: every 20 s, first after 17 s.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(20);
pub const CLEANUP_FIRST_DELAY: Duration = Duration::from_secs(17);
/// `config/logs/error/retention` when unset or unreadable.
pub const DEFAULT_RETENTION_SECS: f64 = 90.0 * 86400.0;

pub fn interest() -> EventInterest {
    EventInterest::names(&["agent_error"])
}

/// The row an agent's report becomes: the agent is the source; severities the table cannot
/// hold are stored as `error`.
pub fn agent_error_log(source: &str, report: &AgentErrorReport) -> NewErrorLog {
    let severity = report.severity.to_ascii_lowercase();
    let severity = if ["critical", "error", "warning"].contains(&severity.as_str()) {
        severity
    } else {
        "error".to_owned()
    };
    NewErrorLog {
        severity,
        source: source.to_owned(),
        user: report
            .user
            .as_deref()
            .and_then(|user| Uuid::parse_str(user).ok()),
        message: report.message.clone(),
        context_lang: "python".to_owned(),
        context_env: report.context_env.clone(),
        request_url: None,
        request_status: None,
        traceback: report.traceback.clone(),
    }
}

/// The retention period from its etcd value.
pub fn retention(raw: Option<&str>) -> f64 {
    raw.and_then(parse_duration)
        .unwrap_or(DEFAULT_RETENTION_SECS)
}

pub struct ErrorLogDeps {
    pub pool: Pool,
    pub etcd: EtcdStore,
    pub locks: ClusterLocks,
    pub log: Logger,
}

pub struct ErrorLogCollector {
    deps: Arc<ErrorLogDeps>,
}

impl ErrorLogCollector {
    pub fn new(deps: ErrorLogDeps) -> ErrorLogCollector {
        ErrorLogCollector {
            deps: Arc::new(deps),
        }
    }
}

impl Actor for ErrorLogCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(CLEANUP_FIRST_DELAY, |act, ctx| {
            act.cleanup();
            ctx.run_interval(CLEANUP_INTERVAL, |act, _| act.cleanup());
        });
    }
}

impl Supervised for ErrorLogCollector {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        warn!(self.deps.log, "error-log collector: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(ErrorLogCollector, ACTOR_NAME);

impl ErrorLogCollector {
    fn cleanup(&self) {
        let deps = self.deps.clone();
        actix::spawn(async move {
            let job_deps = deps.clone();
            let outcome = deps
                .locks
                .run_exclusive(
                    LockId::LogCleanupTimer,
                    Some(Duration::ZERO),
                    |fence| async move { delete_expired(&job_deps, &fence).await },
                )
                .await;
            match outcome {
                Ok(Exclusive::Done(Ok(0))) | Ok(Exclusive::Busy) => {}
                Ok(Exclusive::Done(Ok(n))) => {
                    info!(deps.log, "cleaned up old error logs"; "count" => n)
                }
                Ok(Exclusive::Done(Err(error))) => {
                    warn!(deps.log, "cannot clean up error logs"; "error" => %error)
                }
                Ok(Exclusive::Lost) => warn!(deps.log, "the log-cleanup lock was lost mid-run"),
                Err(error) => {
                    warn!(deps.log, "cannot take the log-cleanup lock"; "error" => %error)
                }
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum CleanupError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Fence(#[from] crate::lock::FenceError),
    #[error(transparent)]
    Query(#[from] bai_schema::queries::QueryError),
}

/// Deletes the logs past the retention in one transaction, which the fence refuses if a newer
/// holder of the cleanup lock exists.
async fn delete_expired(
    deps: &ErrorLogDeps,
    fence: &crate::lock::Fence,
) -> Result<u64, CleanupError> {
    let raw = deps
        .etcd
        .get("config/logs/error/retention")
        .await
        .unwrap_or(None);
    let keep = retention(raw.as_deref());
    let boundary =
        chrono::Utc::now() - chrono::Duration::milliseconds((keep * 1000.0).min(1e15) as i64);
    let mut client = deps.pool.get().await?;
    let txn = client.transaction().await?;
    // The fence takes tokio-postgres' own client trait: the transaction inside deadpool's.
    fence.check(&*txn).await?;
    let deleted = delete_before(&txn, boundary).await?;
    txn.commit().await?;
    Ok(deleted)
}

impl Handler<EventBatch> for ErrorLogCollector {
    type Result = ResponseFuture<Result<(), Unhandled>>;

    /// Each report is stored before the batch is acknowledged; one that cannot be stored stays
    /// pending and comes again.
    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        let deps = self.deps.clone();
        Box::pin(async move {
            let mut unhandled = Unhandled::default();
            for received in batch.events {
                let Event::AgentError(report) = &received.event else {
                    continue;
                };
                let log = agent_error_log(&received.source, report);
                let stored = match deps.pool.get().await {
                    Ok(client) => insert_error_log(&client, &log)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(error) = stored {
                    warn!(deps.log, "cannot store an agent's error report";
                        "agent" => &log.source, "error" => error);
                    unhandled.stream_ids.push(received.stream_id);
                }
            }
            if unhandled.stream_ids.is_empty() {
                Ok(())
            } else {
                Err(unhandled)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_agent_report_becomes_a_row_from_that_agent() {
        let user = Uuid::new_v4();
        let report = AgentErrorReport {
            message: "boom".into(),
            traceback: Some("Traceback...".into()),
            user: Some(user.to_string()),
            context_env: json!({"kernel": "k"}),
            severity: "CRITICAL".into(),
        };
        let log = agent_error_log("i-agent", &report);
        assert_eq!(log.source, "i-agent");
        assert_eq!(log.severity, "critical");
        assert_eq!(log.user, Some(user));
        assert_eq!(log.context_lang, "python");
        let odd = AgentErrorReport {
            severity: "info".into(),
            user: Some("not-a-uuid".into()),
            ..report
        };
        let log = agent_error_log("i-agent", &odd);
        assert_eq!(log.severity, "error");
        assert_eq!(log.user, None);
    }

    #[test]
    fn retention_defaults_to_ninety_days() {
        assert_eq!(retention(None), DEFAULT_RETENTION_SECS);
        assert_eq!(retention(Some("soon")), DEFAULT_RETENTION_SECS);
        assert_eq!(retention(Some("1d")), 86400.0);
    }
}
