//! The `bgtask.{task_id}` hash of the original (`status`, `current`, `total`, `msg`,
//! `started_at`, `last_update`) and the server-sent events `GET /events/background-task`
//! derives from it: `bgtask_updated` with the progress, then one of `bgtask_done`,
//! `bgtask_failed`, `bgtask_cancelled` and a closing `server_close`. Our own field `alive_at`
//! (seconds since the epoch) is renewed every [`ALIVE_INTERVAL`] while the task runs, so a task
//! whose process died is told apart from a slow one.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

/// How long a task's hash outlives its last change (the original's
/// `MAX_BGTASK_ARCHIVE_PERIOD`).
pub const ARCHIVE_PERIOD: Duration = Duration::from_secs(86_400);

/// How often a running task renews `alive_at`.
pub const ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a `started` task may go without renewing `alive_at` (or, for a hash without it,
/// without progress) before it counts as dead: six missed renewals.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// The Redis key (db 4) of task `task_id`.
pub fn tracker_key(task_id: Uuid) -> String {
    format!("bgtask.{task_id}")
}

/// The `status` field of the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Started,
    Done,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Started => "started",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<TaskStatus> {
        Some(match text {
            "started" => TaskStatus::Started,
            "done" => TaskStatus::Done,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    /// The SSE event name that announces this status (`bgtask_done`, ...).
    pub fn event_name(self) -> &'static str {
        match self {
            TaskStatus::Started => "bgtask_started",
            TaskStatus::Done => "bgtask_done",
            TaskStatus::Failed => "bgtask_failed",
            TaskStatus::Cancelled => "bgtask_cancelled",
        }
    }
}

/// One reading of a task's hash. Progress figures stay text, as the original stores and
/// (for a finished task) sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSnapshot {
    pub status: TaskStatus,
    pub current: String,
    pub total: String,
    pub message: String,
    pub last_update: String,
    /// When the task's process last said it was running (empty in hashes of the original).
    pub alive_at: String,
}

impl TaskSnapshot {
    /// Reads the hash's fields; `None` for an absent (empty) or foreign hash.
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<TaskSnapshot> {
        let status = TaskStatus::parse(fields.get("status")?)?;
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        Some(TaskSnapshot {
            status,
            current: field("current"),
            total: field("total"),
            message: field("msg"),
            last_update: field("last_update"),
            alive_at: field("alive_at"),
        })
    }

    /// Whether a `started` task has stopped reporting: no renewal of `alive_at` (else of
    /// `last_update`) for [`STALE_AFTER`] by `now` (seconds since the epoch). A hash with
    /// neither figure is not judged.
    pub fn is_stale(&self, now: f64) -> bool {
        if self.status != TaskStatus::Started {
            return false;
        }
        let seen = [&self.alive_at, &self.last_update]
            .into_iter()
            .filter_map(|text| text.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite())
            .fold(None, |latest: Option<f64>, seconds| {
                Some(latest.map_or(seconds, |l| l.max(seconds)))
            });
        seen.is_some_and(|seen| now - seen > STALE_AFTER.as_secs_f64())
    }

    /// This task as ended by its process's death, for the stream's final events.
    pub fn as_dead(&self) -> TaskSnapshot {
        TaskSnapshot {
            status: TaskStatus::Failed,
            message: format!(
                "the task stopped reporting for over {} s: the manager process running it is gone",
                STALE_AFTER.as_secs()
            ),
            ..self.clone()
        }
    }

    /// Whether `self` reports progress that `earlier` did not.
    pub fn progressed_since(&self, earlier: Option<&TaskSnapshot>) -> bool {
        earlier.is_none_or(|earlier| {
            earlier.current != self.current
                || earlier.total != self.total
                || earlier.last_update != self.last_update
        })
    }
}

/// A progress figure as JSON: a number where it is one (the original sends the reporter's
/// int or float), else the text.
fn figure(text: &str) -> Value {
    if let Ok(int) = text.parse::<i64>() {
        return json!(int);
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => json!(float),
        _ => json!(text),
    }
}

/// One server-sent event block.
pub fn sse_block(event: &str, data: &str) -> String {
    format!("event: {event}\r\ndata: {data}\r\n\r\n")
}

/// The closing event the original sends after a final one.
pub fn server_close() -> String {
    sse_block("server_close", "{}")
}

/// `bgtask_updated` for a running task's snapshot (the original's live event body).
pub fn updated_event(task_id: Uuid, snapshot: &TaskSnapshot) -> String {
    let body = json!({
        "task_id": task_id.to_string(),
        "message": snapshot.message,
        "current_progress": figure(&snapshot.current),
        "total_progress": figure(&snapshot.total),
    });
    format!("event: bgtask_updated\r\ndata: {body}\r\nretry: 5\r\n\r\n")
}

/// The final event of a task that ended while the stream watched it, then `server_close`.
pub fn final_events_live(task_id: Uuid, snapshot: &TaskSnapshot) -> String {
    let body = json!({"task_id": task_id.to_string(), "message": snapshot.message});
    format!(
        "event: {}\r\ndata: {body}\r\nretry: 5\r\n\r\n{}",
        snapshot.status.event_name(),
        server_close()
    )
}

/// What a stream opened on an already finished task gets: its status with the figures as
/// stored, then `server_close`.
pub fn final_events_archived(task_id: Uuid, snapshot: &TaskSnapshot) -> String {
    let body = json!({
        "task_id": task_id.to_string(),
        "status": snapshot.status.as_str(),
        "current_progress": snapshot.current,
        "total_progress": snapshot.total,
        "message": snapshot.message,
    });
    format!(
        "{}{}",
        sse_block(snapshot.status.event_name(), &body.to_string()),
        server_close()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn snapshot(status: &str, current: &str, total: &str, msg: &str) -> TaskSnapshot {
        TaskSnapshot::from_fields(&fields(&[
            ("status", status),
            ("current", current),
            ("total", total),
            ("msg", msg),
            ("last_update", "1.5"),
        ]))
        .unwrap()
    }

    #[test]
    fn a_started_task_is_dead_after_a_minute_without_a_sign_of_life() {
        let running = TaskSnapshot::from_fields(&fields(&[
            ("status", "started"),
            ("last_update", "1000"),
            ("alive_at", "1100"),
        ]))
        .unwrap();
        assert!(!running.is_stale(1100.0 + 60.0));
        assert!(running.is_stale(1100.0 + 61.0));
        // The original's hashes have no alive_at: their last progress counts.
        let original = snapshot("started", "1", "2", "");
        assert!(original.is_stale(1.5 + 61.0));
        let done = snapshot("done", "2", "2", "");
        assert!(!done.is_stale(1e12));
        let unknown = TaskSnapshot::from_fields(&fields(&[("status", "started")])).unwrap();
        assert!(!unknown.is_stale(1e12));
        let dead = running.as_dead();
        assert_eq!(dead.status, TaskStatus::Failed);
        assert!(dead.message.contains("stopped reporting"));
    }

    #[test]
    fn an_empty_or_foreign_hash_is_no_task() {
        assert_eq!(TaskSnapshot::from_fields(&HashMap::new()), None);
        assert_eq!(
            TaskSnapshot::from_fields(&fields(&[("status", "weird")])),
            None
        );
    }

    #[test]
    fn updates_carry_numeric_progress_and_the_message() {
        let id = Uuid::nil();
        let text = updated_event(id, &snapshot("started", "2", "5", "Updated a/b:1"));
        assert!(text.starts_with("event: bgtask_updated\r\ndata: "));
        let data: Value =
            serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: "))
                .unwrap();
        assert_eq!(
            data,
            json!({"task_id": id.to_string(), "message": "Updated a/b:1",
                   "current_progress": 2, "total_progress": 5})
        );
    }

    #[test]
    fn a_finished_task_reports_its_status_then_closes() {
        let id = Uuid::nil();
        let live = final_events_live(id, &snapshot("failed", "1", "2", "boom"));
        assert!(live.starts_with("event: bgtask_failed\r\n"));
        assert!(live.ends_with("event: server_close\r\ndata: {}\r\n\r\n"));
        let archived = final_events_archived(id, &snapshot("done", "3", "3", ""));
        assert!(archived.contains("\"status\":\"done\""));
        assert!(archived.contains("\"current_progress\":\"3\""));
        assert!(archived.starts_with("event: bgtask_done\r\n"));
    }

    #[test]
    fn progress_is_seen_once_per_change() {
        let first = snapshot("started", "1", "2", "");
        assert!(first.progressed_since(None));
        assert!(!first.progressed_since(Some(&first.clone())));
        let second = snapshot("started", "2", "2", "");
        assert!(second.progressed_since(Some(&first)));
    }
}
