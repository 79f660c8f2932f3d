//! The reconciler: a periodic pass that compares sessions stuck in a transitional state with
//! what the agents report, and re-drives or fails them, so a lost event or a worker that died
//! mid-dispatch never leaves a session stuck (the original's sessions stay in PREPARING or
//! TERMINATING forever in that case).
//!
//! * SCHEDULED longer than the timeout: dispatched (again).
//! * PREPARING/PULLING longer than the timeout, per session ([`decide_starting`]):
//!   - kernels the agent reports running are marked RUNNING;
//!   - when the agent never got `create_kernels` (the dispatching worker died after the claim:
//!     the kernels are still `prepared`), or the agent knows nothing of the kernels (25.x+
//!     `check_running`/`check_creating` both false), the session goes back to SCHEDULED and is
//!     dispatched again, at most [`MAX_REDISPATCHES`] times;
//!   - while the agent reports the kernels as being created, it is waited for up to
//!     [`CREATING_LIMIT`];
//!   - otherwise (an agent that cannot tell, or is gone) the session is cancelled
//!     (`failed-to-start`) and its slots freed.
//! * TERMINATING longer than [`TERMINATING_PROBE_AFTER`] on a 25.x+ agent that no longer runs
//!   the kernel: TERMINATED with its destroy reason and freed. Its `kernel_terminated` event was
//!   lost: 26.x agents add events with `XADD events MAXLEN ~ 128`, so entries the managers have
//!   not read within ~128 newer ones are trimmed away unread.
//! * TERMINATING longer than the timeout: `destroy_kernel` once more, then TERMINATED and freed.
//! * Kernels on LOST agents get `status_info = 'agent-lost'` so users see why.

use std::collections::BTreeMap;
use std::time::Duration;

use bai_schema::enums::{AgentStatus, KernelStatus};
use bai_schema::queries::scheduler_reconcile::{self as queries, SeenKernels};
use bai_schema::queries::{DecodeError, QueryError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

use super::dispatch::{
    CLAIMED_STATUS_INFO, DispatchDeps, DispatchError, DispatchOutcome, dispatch_session,
    mark_running,
};
use super::events::{announce, end_or_move_kernel, keep_last_stat};
use crate::agent_rpc::{AgentMethod, AgentTarget};
use crate::wire::EventProducer;

/// Re-dispatches of one session the agents never started before the reconciler cancels it: a
/// dispatching worker that died is covered by one, an agent that keeps forgetting is not.
pub const MAX_REDISPATCHES: u32 = 3;
/// How long kernels the agent reports as being created are waited for: the original's
/// `START_SESSION_TIMEOUT_SEC` (30 min, long enough for big image pulls).
pub const CREATING_LIMIT: Duration = Duration::from_secs(1800);
/// How long a TERMINATING kernel waits for its `kernel_terminated` event before the agent is
/// asked whether it still runs the kernel: a real agent destroys a container within seconds.
pub const TERMINATING_PROBE_AFTER: Duration = Duration::from_secs(10);
/// Sessions probed, re-dispatched or cancelled at once: enough to clear the backlog of a dead
/// worker quickly without opening hundreds of agent calls in one burst.
pub const RECONCILE_CONCURRENCY: usize = 32;

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
}

/// A query's failure in the reconciler's words, as before the statements moved to
/// `bai_schema::queries::scheduler_reconcile`: a failed statement names what it was doing.
fn query_err(error: QueryError) -> DispatchError {
    match error {
        QueryError::Db { context, source } => DispatchError::Database { context, source },
        QueryError::Decode { column, source } => {
            DispatchError::Decode(DecodeError { column, source })
        }
        other => DispatchError::Query(other),
    }
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// SCHEDULED sessions dispatched again.
    pub redispatched: usize,
    /// PREPARING sessions the agents never started, put back to SCHEDULED and dispatched.
    pub restarted: usize,
    pub marked_running: usize,
    /// Sessions whose kernels the agents are still creating.
    pub waiting: usize,
    pub failed_to_start: usize,
    pub force_terminated: usize,
    /// TERMINATING kernels the agents no longer run (their `kernel_terminated` was lost).
    pub terminated_unannounced: usize,
    pub marked_agent_lost: u64,
}

/// What to do with a kernel TERMINATING for `age`, given whether its agent still runs it
/// (`None`: the agent cannot be asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminatingAction {
    Wait,
    /// The agent is done with it: TERMINATED, with the reason it was destroyed for.
    Terminated,
    /// `destroy_kernel` once more, then TERMINATED (`hang-timeout`).
    ForceDestroy,
}

/// [`TERMINATING_PROBE_AFTER`], or half a shorter transition timeout.
pub fn probe_age(timeout: Duration) -> Duration {
    TERMINATING_PROBE_AFTER.min(timeout / 2)
}

pub fn decide_terminating(
    agent_runs_it: Option<bool>,
    age: Duration,
    timeout: Duration,
) -> TerminatingAction {
    if age >= timeout {
        return TerminatingAction::ForceDestroy;
    }
    match agent_runs_it {
        Some(false) if age >= probe_age(timeout) => TerminatingAction::Terminated,
        _ => TerminatingAction::Wait,
    }
}

/// What the agent says about a kernel stuck in PREPARING or PULLING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelReport {
    /// Still `prepared`: `create_kernels` was never sent for it.
    NeverSent,
    Running,
    /// Being created (or registered but not yet running), or possibly still on its way.
    Creating,
    /// The agent knows nothing of it.
    Absent,
    /// The agent cannot be asked (older than 25.x, not ALIVE, or the probe failed).
    Unknown,
}

/// A stuck starting kernel as the reconciler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StartingKernel {
    pub id: Uuid,
    pub report: KernelReport,
    /// Time in its current status.
    pub age: Duration,
}

/// What to do with one session whose kernels are stuck starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingAction {
    /// Every kernel is (now) running: nothing more.
    Nothing,
    Wait,
    /// Back to SCHEDULED and dispatched again.
    Redispatch,
    Cancel,
}

/// The decision for one session: which kernels to mark RUNNING, then what to do with the rest.
/// `whole_session` says the stuck kernels are all the session's kernels (a session that has
/// others, started or not yet stuck, cannot be dispatched again as a whole).
pub fn decide_starting(
    kernels: &[StartingKernel],
    whole_session: bool,
    redispatches: u32,
) -> (Vec<Uuid>, StartingAction) {
    let running: Vec<Uuid> = kernels
        .iter()
        .filter(|k| k.report == KernelReport::Running)
        .map(|k| k.id)
        .collect();
    let rest: Vec<&StartingKernel> = kernels
        .iter()
        .filter(|k| k.report != KernelReport::Running)
        .collect();
    if rest.is_empty() {
        return (running, StartingAction::Nothing);
    }
    let never_started = rest
        .iter()
        .all(|k| matches!(k.report, KernelReport::NeverSent | KernelReport::Absent));
    if never_started && running.is_empty() && whole_session {
        let action = if redispatches < MAX_REDISPATCHES {
            StartingAction::Redispatch
        } else {
            StartingAction::Cancel
        };
        return (running, action);
    }
    let creating = rest.iter().any(|k| k.report == KernelReport::Creating);
    let unknown = rest.iter().any(|k| k.report == KernelReport::Unknown);
    if creating && !unknown && rest.iter().all(|k| k.age < CREATING_LIMIT) {
        return (running, StartingAction::Wait);
    }
    (running, StartingAction::Cancel)
}

struct StuckKernel {
    id: Uuid,
    session_id: Uuid,
    status: KernelStatus,
    status_info: Option<String>,
    changed: Option<DateTime<Utc>>,
    target: Option<AgentTarget>,
    alive: bool,
    /// The session's kernels that are not among the stuck starting ones.
    others_in_session: i64,
    redispatches: u32,
}

impl StuckKernel {
    fn reachable(&self) -> Option<&AgentTarget> {
        self.target.as_ref().filter(|_| self.alive)
    }

    fn age(&self, now: DateTime<Utc>) -> Duration {
        self.changed
            .and_then(|changed| (now - changed).to_std().ok())
            .unwrap_or_default()
    }
}

pub async fn reconcile(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    timeout: Duration,
) -> Result<ReconcileReport, DispatchError> {
    let mut report = ReconcileReport::default();
    let now = Utc::now();
    let cutoff = now - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let probe_cutoff =
        now - chrono::Duration::from_std(probe_age(timeout)).unwrap_or(chrono::Duration::MAX);
    let client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    report.marked_agent_lost = queries::mark_kernels_of_lost_agents(&client)
        .await
        .map_err(query_err)?;
    queries::mark_sessions_of_lost_agents(&client)
        .await
        .map_err(query_err)?;

    let scheduled: Vec<Uuid> = queries::stuck_scheduled_sessions(&client, cutoff)
        .await
        .map_err(query_err)?;
    let stuck: Vec<StuckKernel> = queries::stuck_kernels(&client, cutoff, probe_cutoff)
        .await
        .map_err(query_err)?
        .into_iter()
        .map(|row| StuckKernel {
            id: row.id,
            session_id: row.session_id,
            status: row.status,
            status_info: row.status_info,
            changed: row.changed,
            target: match (row.agent, row.agent_addr) {
                (Some(id), Some(addr)) => Some(AgentTarget {
                    id,
                    addr,
                    version: row.agent_version.unwrap_or_default(),
                }),
                _ => None,
            },
            alive: row.agent_status == Some(AgentStatus::Alive),
            others_in_session: row.others_in_session,
            redispatches: row.redispatches.max(0) as u32,
        })
        .collect();
    drop(client);

    let redispatched: Vec<Result<DispatchOutcome, DispatchError>> =
        futures::stream::iter(scheduled)
            .map(|session_id| dispatch_session(deps, session_id))
            .buffer_unordered(RECONCILE_CONCURRENCY)
            .collect()
            .await;
    for outcome in redispatched {
        outcome?;
        report.redispatched += 1;
    }

    let (terminating, starting): (Vec<StuckKernel>, Vec<StuckKernel>) = stuck
        .into_iter()
        .partition(|k| k.status == KernelStatus::Terminating);
    let ended: Vec<Result<TerminatingAction, DispatchError>> = futures::stream::iter(terminating)
        .map(|kernel| reconcile_terminating(deps, producer, kernel, now, timeout))
        .buffer_unordered(RECONCILE_CONCURRENCY)
        .collect()
        .await;
    for outcome in ended {
        match outcome? {
            TerminatingAction::Wait => {}
            TerminatingAction::Terminated => report.terminated_unannounced += 1,
            TerminatingAction::ForceDestroy => report.force_terminated += 1,
        }
    }

    let mut sessions: BTreeMap<Uuid, Vec<StuckKernel>> = BTreeMap::new();
    for kernel in starting {
        sessions.entry(kernel.session_id).or_default().push(kernel);
    }
    let outcomes: Vec<Result<(usize, StartingAction), DispatchError>> =
        futures::stream::iter(sessions)
            .map(|(session_id, kernels)| reconcile_starting(deps, producer, session_id, kernels))
            .buffer_unordered(RECONCILE_CONCURRENCY)
            .collect()
            .await;
    for outcome in outcomes {
        let (marked_running, action) = outcome?;
        report.marked_running += marked_running;
        match action {
            StartingAction::Nothing => {}
            StartingAction::Wait => report.waiting += 1,
            StartingAction::Redispatch => report.restarted += 1,
            StartingAction::Cancel => report.failed_to_start += 1,
        }
    }
    Ok(report)
}

/// Asks the agent whether it still runs one TERMINATING kernel (when it can tell), decides and
/// acts.
async fn reconcile_terminating(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    kernel: StuckKernel,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Result<TerminatingAction, DispatchError> {
    let age = kernel.age(now);
    let agent_runs_it = match kernel.reachable() {
        Some(target) if age < timeout && AgentMethod::CheckRunning.exposed_by(&target.version) => {
            deps.rpc.check_running(target, kernel.id).await.ok()
        }
        _ => None,
    };
    let action = decide_terminating(agent_runs_it, age, timeout);
    let reason = match action {
        TerminatingAction::Wait => return Ok(action),
        TerminatingAction::Terminated => kernel
            .status_info
            .clone()
            .unwrap_or_else(|| "user-requested".to_owned()),
        TerminatingAction::ForceDestroy => {
            if let Some(target) = kernel.reachable() {
                let _ = tokio::time::timeout(
                    super::destroy::DESTROY_TIMEOUT,
                    deps.rpc.destroy_kernel(
                        target,
                        kernel.id,
                        kernel.session_id,
                        "hang-timeout",
                        true,
                    ),
                )
                .await;
            }
            "hang-timeout".to_owned()
        }
    };
    if action == TerminatingAction::Terminated {
        keep_last_stat(deps, kernel.id).await;
    }
    let change =
        end_or_move_kernel(deps, kernel.id, KernelStatus::Terminated, &reason, None).await?;
    if let (Some(producer), Some(change)) = (producer, change) {
        announce(producer, &change, &reason).await;
    }
    Ok(action)
}

/// Asks the agent about one stuck starting kernel. A kernel sent less than one RPC reply
/// timeout ago that the agent does not know yet may still be on its way: it counts as being
/// created, so it is never sent twice.
async fn probe(deps: &DispatchDeps, kernel: &StuckKernel, now: DateTime<Utc>) -> KernelReport {
    if kernel.status_info.as_deref() == Some(CLAIMED_STATUS_INFO) {
        return KernelReport::NeverSent;
    }
    let Some(target) = kernel.reachable() else {
        return KernelReport::Unknown;
    };
    if !AgentMethod::CheckRunning.exposed_by(&target.version)
        || !AgentMethod::CheckCreating.exposed_by(&target.version)
    {
        return KernelReport::Unknown;
    }
    match deps.rpc.check_running(target, kernel.id).await {
        Ok(true) => return KernelReport::Running,
        Ok(false) => {}
        Err(_) => return KernelReport::Unknown,
    }
    match deps.rpc.check_creating(target, kernel.id).await {
        Ok(true) => KernelReport::Creating,
        Ok(false) if kernel.age(now) < deps.rpc.timeouts().reply => KernelReport::Creating,
        Ok(false) => KernelReport::Absent,
        Err(_) => KernelReport::Unknown,
    }
}

/// Probes, decides and acts for one session; returns the kernels marked running and the action.
async fn reconcile_starting(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    session_id: Uuid,
    kernels: Vec<StuckKernel>,
) -> Result<(usize, StartingAction), DispatchError> {
    let now = Utc::now();
    let mut seen = Vec::with_capacity(kernels.len());
    for kernel in &kernels {
        seen.push(StartingKernel {
            id: kernel.id,
            report: probe(deps, kernel, now).await,
            age: kernel.age(now),
        });
    }
    let whole_session = kernels.iter().all(|k| k.others_in_session == 0);
    let redispatches = kernels.first().map(|k| k.redispatches).unwrap_or(0);
    let (running, action) = decide_starting(&seen, whole_session, redispatches);
    for kernel_id in &running {
        mark_running(deps, *kernel_id, &serde_json::Value::Null).await?;
    }
    match action {
        StartingAction::Nothing | StartingAction::Wait => {}
        StartingAction::Redispatch => {
            if back_to_scheduled(deps, session_id, &kernels, redispatches).await? {
                dispatch_session(deps, session_id).await?;
            } else {
                // Something moved the session meanwhile (an event, the dispatcher): the next
                // reconciliation looks again.
                return Ok((running.len(), StartingAction::Nothing));
            }
        }
        StartingAction::Cancel => {
            for kernel in kernels.iter().filter(|k| !running.contains(&k.id)) {
                if let Some(target) = kernel.reachable() {
                    let _ = deps
                        .rpc
                        .destroy_kernel(target, kernel.id, session_id, "failed-to-start", true)
                        .await;
                }
                let change = end_or_move_kernel(
                    deps,
                    kernel.id,
                    KernelStatus::Cancelled,
                    "failed-to-start",
                    None,
                )
                .await?;
                if let (Some(producer), Some(change)) = (producer, change) {
                    announce(producer, &change, "failed-to-start").await;
                }
            }
        }
    }
    Ok((running.len(), action))
}

/// PREPARING/PULLING → SCHEDULED for a session none of whose kernels an agent has, as a
/// compare-and-set on what the reconciler saw (status, `status_info`, `status_changed` of every
/// kernel), so a dispatcher that marks them sent, or an event that moves them, wins; the slots
/// stay reserved. Returns whether the session went back.
async fn back_to_scheduled(
    deps: &DispatchDeps,
    session_id: Uuid,
    kernels: &[StuckKernel],
    redispatches: u32,
) -> Result<bool, DispatchError> {
    let now = Utc::now();
    let history = json!({ "SCHEDULED": now.to_rfc3339() });
    let seen = SeenKernels {
        ids: kernels.iter().map(|k| k.id).collect(),
        statuses: kernels.iter().map(|k| k.status).collect(),
        status_infos: kernels.iter().map(|k| k.status_info.clone()).collect(),
        changed: kernels.iter().map(|k| k.changed).collect(),
    };
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a re-dispatch"))?;
    let moved = queries::kernels_back_to_scheduled(&tx, &seen, now, &history)
        .await
        .map_err(query_err)?;
    if moved as usize != kernels.len() {
        tx.rollback()
            .await
            .map_err(db_err("abandoning a re-dispatch"))?;
        return Ok(false);
    }
    let count = json!({ "redispatches": redispatches + 1 });
    let session = queries::session_back_to_scheduled(&tx, session_id, &history, &count)
        .await
        .map_err(query_err)?;
    if session == 0 {
        tx.rollback()
            .await
            .map_err(db_err("abandoning a re-dispatch"))?;
        return Ok(false);
    }
    tx.commit()
        .await
        .map_err(db_err("committing a re-dispatch"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use KernelReport as R;

    fn kernel(report: KernelReport, age_secs: u64) -> StartingKernel {
        StartingKernel {
            id: Uuid::new_v4(),
            report,
            age: Duration::from_secs(age_secs),
        }
    }

    #[test]
    fn a_terminating_kernel_the_agent_no_longer_runs_ends_after_the_probe_age() {
        let timeout = Duration::from_secs(300);
        let probe = TERMINATING_PROBE_AFTER;
        let early = probe - Duration::from_secs(1);
        assert_eq!(
            decide_terminating(Some(false), early, timeout),
            TerminatingAction::Wait
        );
        assert_eq!(
            decide_terminating(Some(false), probe, timeout),
            TerminatingAction::Terminated
        );
        assert_eq!(
            decide_terminating(Some(true), probe, timeout),
            TerminatingAction::Wait
        );
        assert_eq!(
            decide_terminating(None, probe, timeout),
            TerminatingAction::Wait
        );
    }

    #[test]
    fn a_terminating_kernel_past_the_timeout_is_destroyed_again_whatever_the_agent_says() {
        let timeout = Duration::from_secs(300);
        for runs in [Some(true), Some(false), None] {
            assert_eq!(
                decide_terminating(runs, timeout, timeout),
                TerminatingAction::ForceDestroy
            );
        }
    }

    #[test]
    fn a_short_timeout_shortens_the_probe_age_too() {
        let timeout = Duration::from_secs(4);
        assert_eq!(
            decide_terminating(Some(false), Duration::from_secs(1), timeout),
            TerminatingAction::Wait
        );
        assert_eq!(
            decide_terminating(Some(false), Duration::from_secs(2), timeout),
            TerminatingAction::Terminated
        );
    }

    #[test]
    fn a_session_never_sent_is_dispatched_again() {
        let kernels = [kernel(R::NeverSent, 400), kernel(R::NeverSent, 400)];
        assert_eq!(
            decide_starting(&kernels, true, 0),
            (vec![], StartingAction::Redispatch)
        );
    }

    #[test]
    fn a_session_the_agent_forgot_is_dispatched_again_a_few_times_then_cancelled() {
        let kernels = [kernel(R::Absent, 400)];
        assert_eq!(
            decide_starting(&kernels, true, MAX_REDISPATCHES - 1).1,
            StartingAction::Redispatch
        );
        assert_eq!(
            decide_starting(&kernels, true, MAX_REDISPATCHES).1,
            StartingAction::Cancel
        );
    }

    #[test]
    fn part_of_a_session_is_never_dispatched_again() {
        let kernels = [kernel(R::Absent, 400)];
        assert_eq!(
            decide_starting(&kernels, false, 0).1,
            StartingAction::Cancel
        );
        let mixed = [kernel(R::Running, 400), kernel(R::Absent, 400)];
        let (running, action) = decide_starting(&mixed, true, 0);
        assert_eq!(running, vec![mixed[0].id]);
        assert_eq!(action, StartingAction::Cancel);
    }

    #[test]
    fn running_kernels_are_marked_and_creating_ones_waited_for() {
        let kernels = [kernel(R::Running, 400), kernel(R::Running, 400)];
        let (running, action) = decide_starting(&kernels, true, 0);
        assert_eq!(running.len(), 2);
        assert_eq!(action, StartingAction::Nothing);
        let kernels = [kernel(R::Creating, 400), kernel(R::NeverSent, 400)];
        assert_eq!(decide_starting(&kernels, true, 0).1, StartingAction::Wait);
        let late = [kernel(R::Creating, CREATING_LIMIT.as_secs() + 1)];
        assert_eq!(decide_starting(&late, true, 0).1, StartingAction::Cancel);
    }

    #[test]
    fn an_agent_that_cannot_tell_gets_the_session_cancelled() {
        let kernels = [kernel(R::Unknown, 400)];
        assert_eq!(decide_starting(&kernels, true, 0).1, StartingAction::Cancel);
        let kernels = [kernel(R::Unknown, 400), kernel(R::Creating, 400)];
        assert_eq!(decide_starting(&kernels, true, 0).1, StartingAction::Cancel);
    }
}
