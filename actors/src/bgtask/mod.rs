//! Background tasks as the original's `common/bgtask.py`: a long job (an image rescan) runs
//! after the reply that names it, and its progress lives in the Redis hash `bgtask.{task_id}`
//! (db 4, kept 24 hours) that `GET /events/background-task` turns into server-sent events.
//!
//! - `record`: the hash's fields, its parsing and the SSE events it yields (pure);
//! - `tracker`: starting a task, reporting its progress, recording how it ended.

pub mod record;
pub mod tracker;

pub use record::{TaskSnapshot, TaskStatus, tracker_key};
pub use tracker::{BackgroundTasks, BgtaskError, ProgressReporter, TaskOutcome};
