//! The scheduler actor: a thin shell that runs passes, dispatches, applies kernel events,
//! enqueues, cancels and destroys sessions and reconciles, each as plain async functions of this
//! module's siblings.
//!
//! A pass is triggered by `session_enqueued`, `session_terminated`, `agent_started`,
//! `do_schedule` and a timer, runs under the cluster-wide scheduling lock (so one worker of the
//! cluster schedules at a time), and triggers arriving during a pass coalesce into one more pass.

use bai_schema::queries::QueryError;
use bai_schema::queries::kernel_agent::alive_agent_of_kernel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bai_schema::SlotUnit;
use chrono::{DateTime, Utc};
use slog::{Logger, debug, info, warn};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::destroy::{destroy_session, live_sessions};
use super::dispatch::{DispatchDeps, dispatch_claimed_sessions};
use super::etcd_state::{
    Cursors, changed_cursors, load_cursors, load_max_container_count, store_cursors,
};
use super::kernel_events::apply_kernel_events;
use super::load::{LoadOptions, SharedAgentCache};
use super::pass::run_pass;
use super::pass_pacing::{PASS_MIN_GAP, delay_before_pass};
use super::reconcile::reconcile;
use super::reserve::Admission;
use crate::agent_rpc::{AgentMethod, AgentTarget};
use crate::etcd::EtcdStore;
use crate::event_bus::{EventBatch, EventInterest, Unhandled};
use crate::lock::{ClusterLocks, Exclusive, LockId};
use crate::scheduler::messages::{
    CancelPendingSession, DestroyOutcome, DestroySession, EnqueueSession, FetchContainerLogs,
    KillAllSessions, QueueError, SessionControlError,
};
use crate::scheduler::queue::{cancel_pending, enqueue_session};
use crate::wire::{Event, EventProducer, SessionEvent, SessionEventKind, Trigger, Value};

/// The scheduling timer of the original (`LOCKID_SCHEDULE_TIMER`, 10 s).
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(10);
/// How often the reconciler looks for stuck sessions.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(15);
/// Dispatches (create_kernels calls) in flight per worker: enough to start many sessions at
/// once without opening thousands of agent connections in one burst.
pub const MAX_CONCURRENT_DISPATCHES: usize = 256;
/// Pending sessions read per pass; a larger backlog is worked through in consecutive passes.
pub const MAX_PENDING_PER_PASS: i64 = 20_000;

/// The events the scheduler subscribes to.
pub fn interest() -> EventInterest {
    EventInterest::names(&[
        "session_enqueued",
        "session_terminated",
        "agent_started",
        "do_schedule",
        "do_prepare",
        "kernel_preparing",
        "kernel_pulling",
        "kernel_creating",
        "kernel_started",
        "kernel_cancelled",
        "kernel_terminating",
        "kernel_terminated",
    ])
}

#[derive(Clone)]
pub struct SchedulerSettings {
    pub resource_priority: Vec<String>,
    pub lock_wait: Duration,
    pub transition_timeout: Duration,
    pub schedule_interval: Duration,
    pub reconcile_interval: Duration,
}

pub struct SchedulerDeps {
    pub dispatch: DispatchDeps,
    /// The lock actor: passes and the reconciler run under its locks.
    pub locks: ClusterLocks,
    pub producer: EventProducer,
    pub etcd: EtcdStore,
    pub settings: SchedulerSettings,
    pub log: Logger,
}

struct Shared {
    deps: SchedulerDeps,
    dispatches: Semaphore,
    /// The agents this worker's passes keep between them.
    agent_cache: SharedAgentCache,
    /// Cancelled when the scheduler is dropped for good (not on a supervised restart): the
    /// dispatches and kernel-event batches still running end with it.
    cancel: CancellationToken,
}

pub struct Scheduler {
    shared: Arc<Shared>,
    pass_running: bool,
    pass_again: bool,
    /// A requested pass waits out [`PASS_MIN_GAP`] after the previous one (a timer is set).
    pass_waiting: bool,
    last_pass_started: Option<Instant>,
    reconciling: bool,
}

impl Scheduler {
    pub fn new(deps: SchedulerDeps) -> Scheduler {
        Scheduler {
            shared: Arc::new(Shared {
                deps,
                dispatches: Semaphore::new(MAX_CONCURRENT_DISPATCHES),
                agent_cache: SharedAgentCache::default(),
                cancel: CancellationToken::new(),
            }),
            pass_running: false,
            pass_again: false,
            pass_waiting: false,
            last_pass_started: None,
            reconciling: false,
        }
    }

    fn request_pass(&mut self, ctx: &mut Context<Self>) {
        if self.pass_running {
            self.pass_again = true;
            return;
        }
        if self.pass_waiting {
            return;
        }
        let delay = delay_before_pass(self.last_pass_started, Instant::now(), PASS_MIN_GAP);
        if !delay.is_zero() {
            self.pass_waiting = true;
            ctx.run_later(delay, |act, ctx| {
                act.pass_waiting = false;
                act.request_pass(ctx);
            });
            return;
        }
        self.pass_running = true;
        self.last_pass_started = Some(Instant::now());
        let shared = self.shared.clone();
        ctx.spawn(
            async move { locked_pass(shared).await }
                .into_actor(self)
                .map(|_, act, ctx| {
                    act.pass_running = false;
                    if std::mem::take(&mut act.pass_again) {
                        act.request_pass(ctx);
                    }
                }),
        );
    }

    fn request_reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.reconciling {
            return;
        }
        self.reconciling = true;
        let shared = self.shared.clone();
        ctx.spawn(
            async move { locked_reconcile(shared).await }
                .into_actor(self)
                .map(|_, act, _| act.reconciling = false),
        );
    }
}

/// The scheduler's name in the supervision registry.
pub const ACTOR_NAME: &str = "scheduler";

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// Its state is the pass/reconcile flags (reset: a pass in flight was cut with the context)
/// and the shared dependencies (kept); `started` re-arms the timers and runs a pass.
impl Supervised for Scheduler {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.pass_running = false;
        self.pass_again = false;
        self.pass_waiting = false;
        self.reconciling = false;
        let count = crate::supervision::record_restart(ACTOR_NAME);
        warn!(self.shared.deps.log, "scheduler: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(Scheduler, ACTOR_NAME);

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let settings = self.shared.deps.settings.clone();
        ctx.run_interval(settings.schedule_interval, |act, ctx| act.request_pass(ctx));
        ctx.run_interval(settings.reconcile_interval, |act, ctx| {
            act.request_reconcile(ctx)
        });
        self.request_pass(ctx);
    }
}

async fn known_slots(etcd: &EtcdStore) -> std::collections::BTreeMap<String, SlotUnit> {
    let mut slots = bai_schema::slots::intrinsic_slot_types();
    if let Ok(extra) = etcd.get_prefix_flat("config/resource_slots").await {
        for (slot, unit) in extra {
            let slot = slot.trim_start_matches('/').to_owned();
            if let Some(unit) = SlotUnit::parse(&unit) {
                slots.insert(slot, unit);
            }
        }
    }
    slots
}

async fn locked_pass(shared: Arc<Shared>) {
    let deps = &shared.deps;
    let guard = match deps
        .locks
        .acquire(LockId::Schedule, Some(deps.settings.lock_wait))
        .await
    {
        Ok(Some(guard)) => guard,
        Ok(None) => {
            debug!(
                deps.log,
                "another worker holds the scheduling lock; skipping this pass"
            );
            return;
        }
        Err(error) => {
            warn!(deps.log, "cannot take the scheduling lock"; "error" => %error);
            return;
        }
    };
    let known = known_slots(&deps.etcd).await;
    let max_container_count = load_max_container_count(&deps.etcd)
        .await
        .unwrap_or_else(|error| {
            warn!(deps.log, "cannot read config/agent/max-container-count; no cap this pass"; "error" => %error);
            None
        });
    // Read once per lock hold: while the lock is held only this loop moves the cursors.
    let mut cursors = load_cursors(&deps.etcd).await.unwrap_or_else(|error| {
        warn!(deps.log, "cannot read the round-robin cursors; starting from the first agents"; "error" => %error);
        Cursors::new()
    });
    let mut scheduled: Vec<Uuid> = Vec::new();
    loop {
        let mut client = match deps.dispatch.pool.get().await {
            Ok(client) => client,
            Err(error) => {
                warn!(deps.log, "no database connection for a scheduling pass"; "error" => %error);
                break;
            }
        };
        let now = chrono::Utc::now();
        let options = LoadOptions {
            now,
            known_slots: known.clone(),
            resource_priority: deps.settings.resource_priority.clone(),
            max_container_count,
            roundrobin: cursors.clone(),
            max_pending: MAX_PENDING_PER_PASS,
            agent_cache: Some(Arc::clone(&shared.agent_cache)),
        };
        let pass_started = std::time::Instant::now();
        let pass = tokio::select! {
            report = run_pass(&mut client, Some(guard.fence()), options, Admission::ClaimedForDispatch) => report,
            () = guard.lost() => {
                warn!(deps.log, "lost the scheduling lock during a pass; stopping it");
                return;
            }
        };
        let report = match pass {
            Ok(report) => {
                let metrics = &crate::metrics::METRICS;
                metrics.scheduler_pass.observe(pass_started.elapsed());
                metrics.scheduler_placements.fetch_add(
                    report.scheduled.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                metrics
                    .scheduler_pending
                    .store(report.pending as i64, std::sync::atomic::Ordering::Relaxed);
                report
            }
            Err(error) => {
                warn!(deps.log, "scheduling pass failed"; "error" => %error);
                break;
            }
        };
        info!(deps.log, "scheduling pass";
            "pending" => report.pending, "agents" => report.agents,
            "scheduled" => report.scheduled.len(), "taken_elsewhere" => report.taken_elsewhere,
            "no_longer_fit" => report.no_longer_fit, "transactions" => report.transactions,
            "load_ms" => report.load_time.as_millis() as u64,
            "plan_ms" => report.plan_time.as_millis() as u64,
            "write_ms" => report.write_time.as_millis() as u64);
        let moved = changed_cursors(&cursors, &report.plan.roundrobin_next);
        if let Err(error) = store_cursors(&deps.etcd, &moved, &report.plan.roundrobin_members).await
        {
            warn!(deps.log, "cannot store the round-robin cursors"; "error" => %error);
        }
        cursors.extend(moved);
        let more = report.pending as i64 >= MAX_PENDING_PER_PASS && !report.scheduled.is_empty();
        let placed: Vec<Uuid> = report.scheduled.iter().map(|(id, _)| *id).collect();
        start_dispatches(&shared, &placed, now);
        scheduled.extend(placed);
        if !more {
            break;
        }
    }
    guard.release().await;
    for session_id in scheduled {
        let _ = deps
            .producer
            .produce(&Event::Session(SessionEvent {
                kind: SessionEventKind::Scheduled,
                session_id,
                creation_id: None,
                reason: "scheduled".into(),
                exit_code: None,
            }))
            .await;
    }
}

/// Starts the dispatch of one pass's sessions beside the pass, [`DISPATCH_CHUNK`] sessions per
/// task; at most [`MAX_CONCURRENT_DISPATCHES`] sessions are dispatched at once, and all end
/// when the scheduler is dropped (a cut dispatch leaves the session to the reconciler, as a
/// crash would).
fn start_dispatches(shared: &Arc<Shared>, session_ids: &[Uuid], claimed_at: DateTime<Utc>) {
    for chunk in session_ids.chunks(DISPATCH_CHUNK) {
        let shared = shared.clone();
        let chunk = chunk.to_vec();
        actix::spawn(async move {
            let cancel = shared.cancel.clone();
            tokio::select! {
                () = dispatch_chunk(&shared, &chunk, claimed_at) => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// Sessions of a pass dispatched together: their kernels are marked as sent in one statement
/// (one commit instead of one per session) and their launches read in another.
pub const DISPATCH_CHUNK: usize = 64;
// A chunk takes a permit per session, all at once.
const _: () = assert!(DISPATCH_CHUNK <= MAX_CONCURRENT_DISPATCHES);

async fn dispatch_chunk(shared: &Shared, session_ids: &[Uuid], claimed_at: DateTime<Utc>) {
    let permits = session_ids.len().min(DISPATCH_CHUNK) as u32;
    let Ok(_permits) = shared.dispatches.acquire_many(permits).await else {
        return;
    };
    let log = &shared.deps.log;
    match dispatch_claimed_sessions(&shared.deps.dispatch, session_ids, claimed_at).await {
        Ok(outcomes) => {
            for (session_id, outcome) in outcomes {
                match outcome {
                    Ok(outcome) => {
                        debug!(log, "dispatched"; "session" => %session_id, "outcome" => ?outcome)
                    }
                    Err(error) => {
                        warn!(log, "dispatch failed; the reconciler will retry";
                            "session" => %session_id, "error" => %error)
                    }
                }
            }
        }
        Err(error) => {
            warn!(log, "dispatch failed; the reconciler will retry";
                "sessions" => session_ids.len(), "error" => %error)
        }
    }
}

/// The reconciler under its lock. Its writes are compare-and-sets on what it read, so they are
/// safe beside a stale holder without the fencing token; a lost lock cuts the run short.
async fn locked_reconcile(shared: Arc<Shared>) {
    let deps = &shared.deps;
    let run = deps
        .locks
        .run_exclusive(LockId::Reconcile, Some(Duration::ZERO), |_fence| {
            reconcile(
                &deps.dispatch,
                Some(&deps.producer),
                deps.settings.transition_timeout,
            )
        })
        .await;
    match run {
        Ok(Exclusive::Done(Ok(report))) if report.terminated_unannounced > 0 => {
            // Operators should see that agents' events are being trimmed away unread.
            warn!(deps.log, "reconciled stuck sessions; kernel_terminated events were lost";
                "lost_terminations" => report.terminated_unannounced, "report" => ?report)
        }
        Ok(Exclusive::Done(Ok(report))) if report != Default::default() => {
            info!(deps.log, "reconciled stuck sessions"; "report" => ?report)
        }
        Ok(Exclusive::Done(Ok(_)) | Exclusive::Busy) => {}
        Ok(Exclusive::Done(Err(error))) => {
            warn!(deps.log, "reconciliation failed"; "error" => %error)
        }
        Ok(Exclusive::Lost) => warn!(deps.log, "lost the reconciler lock; stopped the run"),
        Err(error) => debug!(deps.log, "cannot take the reconciler lock"; "error" => %error),
    }
}

impl Handler<EventBatch> for Scheduler {
    type Result = ResponseFuture<Result<(), Unhandled>>;

    /// Triggers a pass or the reconciler, and applies the kernel events before replying, so
    /// the bus acknowledges only applied events; those that failed stay pending for redelivery.
    /// The application runs beside the actor (not in its context), so a restart of the actor
    /// does not cut it short.
    fn handle(&mut self, batch: EventBatch, ctx: &mut Self::Context) -> Self::Result {
        let mut schedule = false;
        let mut kernel_events = Vec::new();
        for received in batch.events {
            match received.event {
                Event::Session(SessionEvent {
                    kind: SessionEventKind::Enqueued | SessionEventKind::Terminated,
                    ..
                })
                | Event::AgentStarted { .. }
                | Event::Trigger(Trigger::DoSchedule) => schedule = true,
                Event::Trigger(Trigger::DoPrepare) => self.request_reconcile(ctx),
                Event::Kernel(event) => kernel_events.push((received.stream_id, event)),
                _ => {}
            }
        }
        if schedule {
            self.request_pass(ctx);
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            if kernel_events.is_empty() {
                return Ok(());
            }
            let deps = &shared.deps;
            let ids: Vec<String> = kernel_events.iter().map(|(id, _)| id.clone()).collect();
            let unhandled = tokio::select! {
                unhandled = apply_kernel_events(
                    &deps.dispatch, Some(&deps.producer), &deps.log, kernel_events) => unhandled,
                // The scheduler is going away: the batch is delivered again (applying an event
                // twice is harmless).
                () = shared.cancel.cancelled() => ids,
            };
            if unhandled.is_empty() {
                Ok(())
            } else {
                Err(Unhandled {
                    stream_ids: unhandled,
                })
            }
        })
    }
}

impl Handler<EnqueueSession> for Scheduler {
    type Result =
        ResponseFuture<Result<bai_schema::queries::session_enqueue::Enqueued, QueueError>>;

    fn handle(&mut self, message: EnqueueSession, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(
            async move { enqueue_session(&shared.deps.producer, &shared.deps.log, message).await },
        )
    }
}

impl Handler<CancelPendingSession> for Scheduler {
    type Result = ResponseFuture<Result<bool, QueueError>>;

    fn handle(&mut self, message: CancelPendingSession, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(
            async move { cancel_pending(&shared.deps.producer, &shared.deps.log, message).await },
        )
    }
}

impl Handler<DestroySession> for Scheduler {
    type Result = ResponseFuture<Result<DestroyOutcome, SessionControlError>>;

    fn handle(&mut self, message: DestroySession, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            destroy_session(
                &shared.deps.dispatch,
                Some(&shared.deps.producer),
                message.session_id,
                message.forced,
                &message.reason,
            )
            .await
        })
    }
}

impl Handler<KillAllSessions> for Scheduler {
    type Result = ResponseFuture<Result<(), SessionControlError>>;

    fn handle(&mut self, _message: KillAllSessions, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            let sessions = live_sessions(&shared.deps.dispatch)
                .await
                .map_err(|e| SessionControlError::AgentFailed(e.to_string()))?;
            for session_id in sessions {
                destroy_session(
                    &shared.deps.dispatch,
                    Some(&shared.deps.producer),
                    session_id,
                    true,
                    "force-terminated",
                )
                .await?;
            }
            Ok(())
        })
    }
}

impl Handler<FetchContainerLogs> for Scheduler {
    type Result = ResponseFuture<Result<String, SessionControlError>>;

    fn handle(&mut self, message: FetchContainerLogs, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            let failed = |e: String| SessionControlError::AgentFailed(e);
            let client = shared
                .deps
                .dispatch
                .pool
                .get()
                .await
                .map_err(|e| failed(e.to_string()))?;
            // The driver's error as before the read moved to `bai_schema::queries`.
            let row = alive_agent_of_kernel(&**client, message.kernel_id, message.session_id)
                .await
                .map_err(|e| match e {
                    QueryError::Db { source, .. } => failed(source.to_string()),
                    other => failed(other.to_string()),
                })?
                .ok_or(SessionControlError::NotFound)?;
            let target = AgentTarget {
                id: row.agent,
                addr: row.addr,
                version: row.version,
            };
            let reply = shared
                .deps
                .dispatch
                .rpc
                .call(
                    &target,
                    AgentMethod::GetLogs,
                    vec![Value::str(message.kernel_id.to_string())],
                    vec![("agent_id".into(), Value::str(target.id.clone()))],
                    None,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok(match reply.get("logs").and_then(Value::as_str) {
                Some(logs) => logs.to_owned(),
                None => reply.as_str().unwrap_or_default().to_owned(),
            })
        })
    }
}
