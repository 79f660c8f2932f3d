//! Starting background tasks and keeping their `bgtask.{task_id}` hash: `started` with zero
//! progress when a task starts, the figures and message on every progress report, the final
//! status and message when it ends, and `alive_at` every [`ALIVE_INTERVAL`] while it runs; each
//! write renews the 24-hour expiry.
//!
//! ```ignore
//! let task_id = tasks.start("rescan", |reporter| async move {
//!     reporter.add_total(2).await;
//!     reporter.advance(1, "Updated a:1").await;
//!     Ok(String::new())
//! }).await?;
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::record::{ALIVE_INTERVAL, ARCHIVE_PERIOD, TaskSnapshot, TaskStatus, tracker_key};

#[derive(Debug, thiserror::Error)]
pub enum BgtaskError {
    #[error("cannot record background task {task_id} in Redis: {source}")]
    Redis {
        task_id: Uuid,
        #[source]
        source: redis::RedisError,
    },
}

/// How a task's job ended: `Ok(message)` is `done`, `Err(message)` is `failed`.
pub type TaskOutcome = Result<String, String>;

/// The tasks of this worker, recorded in Redis db 4 (the stream database, as the original's
/// event producer). Cheap to clone.
#[derive(Clone)]
pub struct BackgroundTasks {
    redis: ConnectionManager,
    log: slog::Logger,
}

/// Seconds since the epoch.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn now() -> String {
    format!("{}", now_seconds())
}

async fn write(
    redis: &ConnectionManager,
    task_id: Uuid,
    fields: &[(&str, String)],
) -> Result<(), BgtaskError> {
    let key = tracker_key(task_id);
    let mut pipe = redis::pipe();
    pipe.hset_multiple(&key, fields)
        .ignore()
        .expire(&key, ARCHIVE_PERIOD.as_secs() as i64)
        .ignore();
    let mut redis = redis.clone();
    pipe.query_async::<()>(&mut redis)
        .await
        .map_err(|source| BgtaskError::Redis { task_id, source })
}

impl BackgroundTasks {
    /// `redis` must be connected to db 4 ([`crate::redis::db::STREAM`]).
    pub fn new(redis: ConnectionManager, log: slog::Logger) -> BackgroundTasks {
        BackgroundTasks { redis, log }
    }

    /// Records a new task and runs `job` on the current actix arbiter; answers its id at once.
    pub async fn start<F, Fut>(&self, name: &str, job: F) -> Result<Uuid, BgtaskError>
    where
        F: FnOnce(ProgressReporter) -> Fut + 'static,
        Fut: Future<Output = TaskOutcome> + 'static,
    {
        let task_id = Uuid::new_v4();
        let started = now();
        write(
            &self.redis,
            task_id,
            &[
                ("status", TaskStatus::Started.as_str().to_owned()),
                ("current", "0".to_owned()),
                ("total", "0".to_owned()),
                ("msg", String::new()),
                ("started_at", started.clone()),
                ("last_update", started),
            ],
        )
        .await?;
        let reporter = ProgressReporter {
            redis: self.redis.clone(),
            task_id,
            figures: Arc::new(Figures::default()),
            log: self.log.clone(),
        };
        let (redis, log, name) = (self.redis.clone(), self.log.clone(), name.to_owned());
        actix::spawn(async move {
            let job = job(reporter);
            let mut job = std::pin::pin!(job);
            let mut alive = tokio::time::interval(ALIVE_INTERVAL);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut job => break outcome,
                    _ = alive.tick() => {
                        if let Err(error) = write(&redis, task_id, &[("alive_at", now())]).await {
                            slog::warn!(log, "cannot renew a background task's alive_at";
                                "error" => %error);
                        }
                    }
                }
            };
            let (status, message) = match outcome {
                Ok(message) => (TaskStatus::Done, message),
                Err(message) => (TaskStatus::Failed, message),
            };
            slog::info!(log, "background task ended"; "task_id" => %task_id,
                "name" => &name, "status" => status.as_str());
            let fields = [
                ("status", status.as_str().to_owned()),
                ("msg", message),
                ("last_update", now()),
            ];
            if let Err(error) = write(&redis, task_id, &fields).await {
                slog::error!(log, "cannot record how a background task ended"; "error" => %error);
            }
        });
        Ok(task_id)
    }

    /// The task's current hash; `None` for an unknown or expired task.
    pub async fn snapshot(&self, task_id: Uuid) -> Result<Option<TaskSnapshot>, BgtaskError> {
        let mut redis = self.redis.clone();
        let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(tracker_key(task_id))
            .query_async(&mut redis)
            .await
            .map_err(|source| BgtaskError::Redis { task_id, source })?;
        Ok(TaskSnapshot::from_fields(&fields))
    }
}

#[derive(Default)]
struct Figures {
    current: AtomicU64,
    total: AtomicU64,
}

/// Reports one task's progress (the original's `ProgressReporter`). Clones share the figures.
#[derive(Clone)]
pub struct ProgressReporter {
    redis: ConnectionManager,
    task_id: Uuid,
    figures: Arc<Figures>,
    log: slog::Logger,
}

impl ProgressReporter {
    pub fn task_id(&self) -> Uuid {
        self.task_id
    }

    /// More work was found: the total grows by `count` (recorded with the next report).
    pub fn add_total(&self, count: u64) {
        self.figures.total.fetch_add(count, Ordering::Relaxed);
    }

    /// `increment` more units are done; records the figures and `message`. A failed write is
    /// logged, not fatal: the job goes on and its end is recorded again.
    pub async fn advance(&self, increment: u64, message: &str) {
        let current = self.figures.current.fetch_add(increment, Ordering::Relaxed) + increment;
        let total = self.figures.total.load(Ordering::Relaxed);
        let fields = [
            ("current", current.to_string()),
            ("total", total.to_string()),
            ("msg", message.to_owned()),
            ("last_update", now()),
        ];
        if let Err(error) = write(&self.redis, self.task_id, &fields).await {
            slog::warn!(self.log, "cannot record background task progress"; "error" => %error);
        }
    }
}
