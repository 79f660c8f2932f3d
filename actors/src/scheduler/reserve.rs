//! Writes a pass's decisions: the reservation transaction and the status of the sessions that
//! stay PENDING or are cancelled.
//!
//! The reservation re-checks everything that matters in the database, so it stays correct when
//! two schedulers decide at once (the lock only saves wasted work):
//! * the sessions are claimed with `SELECT … FOR UPDATE SKIP LOCKED … WHERE status='PENDING'`,
//!   and PENDING → SCHEDULED is an `UPDATE … WHERE status='PENDING'` (compare-and-set);
//! * the agents are row-locked in id order (no deadlock between schedulers), and each session
//!   is admitted only if every agent it uses still has the free slots (`available - occupied`)
//!   that it needs; a session that no longer fits stays PENDING for the next pass;
//! * the fencing token of the scheduling lock is checked first, so a scheduler that lost its
//!   lock writes nothing.

use std::collections::{BTreeMap, HashSet};

use bai_schema::ResourceSlot;
use bai_schema::queries::scheduler_reserve::{
    self as queries, PlacedStatus, ScheduledKernels, ScheduledSessions,
};
use bai_schema::queries::{DecodeError, QueryError};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::Client;
use uuid::Uuid;

use super::dispatch::CLAIMED_STATUS_INFO;
use super::load::slots_of;
use super::placement::{Decision, KernelAssignment, PassPlan};
use crate::lock::{Fence, FenceError};

/// Sessions per reservation transaction: big enough to amortise a commit, small enough that
/// row locks are held briefly and a failure redoes little.
pub const RESERVATION_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Fenced(#[from] FenceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Query(QueryError),
}

/// A query's failure in the scheduler's words: a failed statement names what it was doing
/// (or the fence, when a newer scheduler holds the lock), as it did before the statements
/// moved to `bai_schema::queries::scheduler_reserve`.
impl From<QueryError> for ReserveError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Db { context, source } => db_err(context)(source),
            QueryError::Decode { column, source } => {
                ReserveError::Decode(DecodeError { column, source })
            }
            other => ReserveError::Query(other),
        }
    }
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ReserveError {
    move |source| {
        if FenceError::is_stale(&source) {
            ReserveError::Database {
                context: "checking the fencing token (a newer scheduler holds the lock)",
                source,
            }
        } else {
            ReserveError::Database { context, source }
        }
    }
}

/// What a reservation makes of the sessions it places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// SCHEDULED, for whichever worker claims them for dispatch.
    Scheduled,
    /// SCHEDULED and at once PREPARING (`status_info = 'prepared'`), claimed in the
    /// reservation's own transaction by the reserving worker, which dispatches them: dispatch
    /// then needs no claim transaction of its own. Should that worker die first, the reconciler
    /// finds the kernels `prepared` (never sent) and dispatches them again.
    ClaimedForDispatch,
}

impl Admission {
    fn placed(self) -> PlacedStatus<'static> {
        match self {
            Admission::Scheduled => PlacedStatus::SCHEDULED,
            Admission::ClaimedForDispatch => PlacedStatus {
                status: "PREPARING",
                status_info: CLAIMED_STATUS_INFO,
            },
        }
    }

    fn history(self, now: DateTime<Utc>) -> serde_json::Value {
        let at = now.to_rfc3339();
        match self {
            Admission::Scheduled => json!({ "SCHEDULED": at }),
            Admission::ClaimedForDispatch => json!({ "SCHEDULED": at, "PREPARING": at }),
        }
    }
}

/// What the reservation achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReservationReport {
    /// Sessions now SCHEDULED (or claimed, see [`Admission`]), with their assignments (for
    /// dispatch).
    pub scheduled: Vec<(Uuid, Vec<KernelAssignment>)>,
    /// Sessions another scheduler took (no longer PENDING or locked).
    pub taken_elsewhere: usize,
    /// Sessions that no longer fit their agents in the database (left PENDING).
    pub no_longer_fit: usize,
    pub transactions: usize,
}

/// Reserves the planned placements, batch by batch, each batch in one transaction.
///
/// The batches group placements by agent (by the first agent of each session, plan order kept
/// among a given agent's sessions): a batch then locks and rewrites each of its agents once for
/// all the sessions it takes, instead of the same agent again in many batches (the dispersed
/// selector spreads consecutive sessions over different agents). The plan already fits every
/// agent, so the grouping only decides which sessions wait when another scheduler raced this one.
pub async fn reserve(
    client: &mut Client,
    fence: Option<&Fence>,
    plan: &PassPlan,
    now: DateTime<Utc>,
    admission: Admission,
) -> Result<ReservationReport, ReserveError> {
    let mut placements: Vec<(&Uuid, &String, &Vec<KernelAssignment>)> = plan
        .decisions
        .iter()
        .filter_map(|decision| match decision {
            Decision::Scheduled {
                session_id,
                scaling_group,
                assignments,
                ..
            } => Some((session_id, scaling_group, assignments)),
            _ => None,
        })
        .collect();
    placements.sort_by(|a, b| first_agent(a.2).cmp(first_agent(b.2)));
    let mut report = ReservationReport::default();
    for batch in placements.chunks(RESERVATION_BATCH) {
        reserve_batch(client, fence, batch, now, admission, &mut report).await?;
        report.transactions += 1;
    }
    Ok(report)
}

fn first_agent(assignments: &[KernelAssignment]) -> &str {
    assignments
        .first()
        .map(|assignment| assignment.agent_id.as_str())
        .unwrap_or_default()
}

async fn reserve_batch(
    client: &mut Client,
    fence: Option<&Fence>,
    batch: &[(&Uuid, &String, &Vec<KernelAssignment>)],
    now: DateTime<Utc>,
    admission: Admission,
    report: &mut ReservationReport,
) -> Result<(), ReserveError> {
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a reservation"))?;
    if let Some(fence) = fence {
        fence.check(&tx).await?;
    }
    let session_ids: Vec<Uuid> = batch.iter().map(|(id, _, _)| **id).collect();
    let claimed: HashSet<Uuid> = queries::claim_pending_sessions(&tx, &session_ids)
        .await?
        .into_iter()
        .collect();
    let mut agent_ids: Vec<String> = batch
        .iter()
        .flat_map(|(_, _, assignments)| assignments.iter().map(|a| a.agent_id.clone()))
        .collect();
    agent_ids.sort();
    agent_ids.dedup();
    let mut agents: BTreeMap<String, (ResourceSlot, ResourceSlot, String)> = BTreeMap::new();
    for row in queries::lock_schedulable_agents(&tx, &agent_ids).await? {
        agents.insert(
            row.id,
            (
                slots_of(row.available_slots),
                slots_of(row.occupied_slots),
                row.addr,
            ),
        );
    }

    // Admit sessions in batch order while every agent they use still has room.
    let mut admitted: Vec<(Uuid, &String, &Vec<KernelAssignment>)> = Vec::new();
    for (session_id, scaling_group, assignments) in batch {
        if !claimed.contains(*session_id) {
            report.taken_elsewhere += 1;
            continue;
        }
        let mut needed: BTreeMap<&str, ResourceSlot> = BTreeMap::new();
        for assignment in assignments.iter() {
            let sum = needed.entry(assignment.agent_id.as_str()).or_default();
            *sum = &*sum + &assignment.slots;
        }
        let fits = needed.iter().all(|(agent, slots)| {
            agents
                .get(*agent)
                .is_some_and(|(available, occupied, _)| (occupied + slots).fits_within(available))
        });
        if !fits {
            report.no_longer_fit += 1;
            continue;
        }
        for (agent, slots) in needed {
            if let Some((_, occupied, _)) = agents.get_mut(agent) {
                *occupied = &*occupied + &slots;
            }
        }
        admitted.push((**session_id, scaling_group, assignments));
    }
    if admitted.is_empty() {
        tx.commit()
            .await
            .map_err(db_err("committing an empty reservation"))?;
        return Ok(());
    }

    let used_agents: HashSet<&str> = admitted
        .iter()
        .flat_map(|(_, _, assignments)| assignments.iter().map(|a| a.agent_id.as_str()))
        .collect();
    let (ids, occupied): (Vec<String>, Vec<serde_json::Value>) = agents
        .iter()
        .filter(|(id, _)| used_agents.contains(id.as_str()))
        .map(|(id, (_, occupied, _))| (id.clone(), occupied.to_json()))
        .unzip();
    queries::set_occupied_slots(&tx, &ids, &occupied).await?;

    let history = admission.history(now);
    let mut sessions = ScheduledSessions::default();
    let mut kernels = ScheduledKernels::default();
    for (session_id, scaling_group, assignments) in &admitted {
        let mut agent_list: Vec<String> = assignments.iter().map(|a| a.agent_id.clone()).collect();
        agent_list.dedup();
        sessions.ids.push(*session_id);
        sessions.scaling_groups.push((*scaling_group).clone());
        sessions.agents.push(agent_list.join(","));
        for assignment in assignments.iter() {
            kernels.ids.push(assignment.kernel_id);
            kernels.agents.push(assignment.agent_id.clone());
            kernels.agent_addrs.push(
                agents
                    .get(&assignment.agent_id)
                    .map(|(_, _, addr)| addr.clone())
                    .unwrap_or_default(),
            );
            kernels.slots.push(assignment.slots.to_json());
            kernels.scaling_groups.push((*scaling_group).clone());
        }
    }
    let updated = queries::schedule_sessions(&tx, &sessions, &history, admission.placed()).await?;
    debug_assert_eq!(
        updated as usize,
        sessions.ids.len(),
        "claimed rows are locked by us"
    );
    queries::schedule_kernels(&tx, &kernels, now, &history, admission.placed()).await?;
    tx.commit()
        .await
        .map_err(db_err("committing a reservation"))?;
    for (session_id, _, assignments) in admitted {
        report.scheduled.push((session_id, assignments.clone()));
    }
    Ok(())
}

/// Records why sessions stay PENDING (`status_info`, `status_data.scheduler`) and cancels the
/// ones the plan cancels, in one transaction; returns how many transactions it wrote (0 or 1).
pub async fn record_outcomes(
    client: &mut Client,
    fence: Option<&Fence>,
    plan: &PassPlan,
    now: DateTime<Utc>,
) -> Result<usize, ReserveError> {
    let mut pending_ids = Vec::new();
    let mut pending_infos = Vec::new();
    let mut pending_data = Vec::new();
    let mut cancel_ids = Vec::new();
    let mut cancel_infos = Vec::new();
    let last_try = now.to_rfc3339();
    for decision in &plan.decisions {
        match decision {
            Decision::Scheduled { .. } => {}
            Decision::PredicatesFailed {
                session_id,
                outcome,
                cancel,
            } => {
                if *cancel {
                    cancel_ids.push(*session_id);
                    cancel_infos.push("predicate-checks-failed".to_owned());
                } else {
                    pending_ids.push(*session_id);
                    pending_infos.push("predicate-checks-failed".to_owned());
                    pending_data.push(json!({
                        "last_try": last_try,
                        "msg": outcome.failed.iter().map(|f| f.msg.as_str()).collect::<Vec<_>>().join("\n"),
                        "failed_predicates": outcome.failed,
                        "passed_predicates": outcome.passed.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                    }));
                }
            }
            Decision::NoAvailableInstances {
                session_id,
                msg,
                passed_predicates,
            } => {
                pending_ids.push(*session_id);
                pending_infos.push("no-available-instances".to_owned());
                pending_data.push(json!({
                    "last_try": last_try,
                    "msg": msg,
                    "failed_predicates": [],
                    "passed_predicates": passed_predicates.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                }));
            }
            Decision::PendingTimeout { session_id } => {
                cancel_ids.push(*session_id);
                cancel_infos.push("pending-timeout".to_owned());
            }
        }
    }
    if pending_ids.is_empty() && cancel_ids.is_empty() {
        return Ok(0);
    }
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a status update"))?;
    if let Some(fence) = fence {
        fence.check(&tx).await?;
    }
    if !pending_ids.is_empty() {
        queries::record_waiting_sessions(&tx, &pending_ids, &pending_infos, &pending_data).await?;
        queries::record_waiting_kernels(&tx, &pending_ids, &pending_infos).await?;
    }
    if !cancel_ids.is_empty() {
        let history = json!({ "CANCELLED": last_try });
        queries::cancel_pending_sessions(&tx, &cancel_ids, &cancel_infos, now, &history).await?;
        queries::cancel_pending_kernels(&tx, &cancel_ids, &cancel_infos, now, &history).await?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing status updates"))?;
    Ok(1)
}
