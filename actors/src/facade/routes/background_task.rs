//! `GET /events/background-task?task_id=…`: the progress of a background task (an image
//! rescan) as server-sent events, as the original's `push_bgtask_events`: `bgtask_updated`
//! while it runs, then `bgtask_done`/`bgtask_failed`/`bgtask_cancelled` and `server_close`; a
//! task that already ended gets its final status at once.
//!
//! The task may run in any worker (or on another manager host), so the stream follows the
//! task's Redis hash `bgtask.{task_id}` rather than an in-process queue: it reads the hash
//! every [`POLL_INTERVAL`] and sends what changed. A task whose process died (no sign of life
//! for a minute, see `TaskSnapshot::is_stale`) ends its stream with `bgtask_failed`; a worker
//! that stops ends its streams at once.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use futures::stream;
use uuid::Uuid;

use crate::bgtask::record::{final_events_archived, final_events_live, updated_event};
use crate::bgtask::tracker::now_seconds;
use crate::bgtask::{BackgroundTasks, TaskSnapshot, TaskStatus};
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::routes::events::PING_INTERVAL;
use crate::facade::state::AppState;

/// How often a stream looks at its task's hash.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Consecutive failed reads of the hash after which a stream ends (Redis is gone).
const MAX_READ_FAILURES: u32 = 25;

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/events/background-task",
        web::get()
            .to(background_task_events)
            .wrap(Access::user().read_allowed()),
    );
}

struct Follow {
    tasks: BackgroundTasks,
    task_id: Uuid,
    last: Option<TaskSnapshot>,
    since_ping: Duration,
    failures: u32,
    finished: bool,
    stopping: tokio_util::sync::CancellationToken,
    log: slog::Logger,
}

/// The next chunk of the stream, or `None` when it is over.
async fn next_chunk(mut follow: Follow) -> Option<(Result<Bytes, actix_web::Error>, Follow)> {
    if follow.finished {
        return None;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            // The worker is stopping: end the stream now rather than at the drain timeout.
            () = follow.stopping.cancelled() => return None,
        }
        follow.since_ping += POLL_INTERVAL;
        let chunk = match follow.tasks.snapshot(follow.task_id).await {
            Ok(Some(snapshot)) if snapshot.status != TaskStatus::Started => {
                follow.finished = true;
                let mut text = String::new();
                if snapshot.progressed_since(follow.last.as_ref()) {
                    text.push_str(&updated_event(follow.task_id, &snapshot));
                }
                text.push_str(&final_events_live(follow.task_id, &snapshot));
                Some(text)
            }
            Ok(Some(snapshot)) if snapshot.is_stale(now_seconds()) => {
                follow.finished = true;
                slog::warn!(follow.log, "a background task stopped reporting; ending its stream";
                    "task_id" => %follow.task_id);
                Some(final_events_live(follow.task_id, &snapshot.as_dead()))
            }
            Ok(Some(snapshot)) => {
                follow.failures = 0;
                let text = snapshot
                    .progressed_since(follow.last.as_ref())
                    .then(|| updated_event(follow.task_id, &snapshot));
                follow.last = Some(snapshot);
                text
            }
            // Expired under the stream: nothing more will come.
            Ok(None) => return None,
            Err(error) => {
                follow.failures += 1;
                if follow.failures >= MAX_READ_FAILURES {
                    slog::warn!(follow.log, "ending a background-task stream"; "error" => %error);
                    return None;
                }
                None
            }
        };
        let chunk = match chunk {
            Some(text) => text,
            None if follow.since_ping >= PING_INTERVAL => ": ping\r\n\r\n".to_owned(),
            None => continue,
        };
        follow.since_ping = Duration::ZERO;
        return Some((Ok(Bytes::from(chunk)), follow));
    }
}

/// `GET /events/background-task`.
async fn background_task_events(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let text = params.string(&["task_id", "taskId"])?;
    let task_id =
        Uuid::parse_str(&text).map_err(|_| invalid_param("task_id", "value is not a UUID"))?;
    slog::info!(state.log, "PUSH_BACKGROUND_TASK_EVENTS";
        "access_key" => &caller.access_key, "task_id" => %task_id);
    let tasks = BackgroundTasks::new(state.redis.stream.clone(), state.log.clone());
    let snapshot = tasks
        .snapshot(task_id)
        .await
        .map_err(|error| {
            slog::error!(state.log, "cannot read a background task"; "error" => %error);
            Problem::internal("cannot read the background task's progress")
        })?
        .ok_or_else(|| Problem::not_found("background task"))?;
    let response = |body| {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .streaming(body)
    };
    if snapshot.status != TaskStatus::Started {
        let text = final_events_archived(task_id, &snapshot);
        return Ok(response(Box::pin(stream::once(async move {
            Ok::<Bytes, actix_web::Error>(Bytes::from(text))
        }))
            as futures::stream::BoxStream<'static, _>));
    }
    let follow = Follow {
        tasks,
        task_id,
        last: None,
        since_ping: Duration::ZERO,
        failures: 0,
        finished: false,
        stopping: state.pipeline.stopping.clone(),
        log: state.log.clone(),
    };
    Ok(response(Box::pin(stream::unfold(follow, next_chunk))))
}
