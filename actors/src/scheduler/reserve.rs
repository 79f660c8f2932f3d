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

use bai_schema::queries::ReadColumn;
use std::collections::{BTreeMap, HashSet};

use bai_schema::ResourceSlot;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::Client;
use uuid::Uuid;

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
    Decode(#[from] bai_schema::queries::DecodeError),
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

/// What the reservation achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReservationReport {
    /// Sessions now SCHEDULED, with their assignments (for dispatch).
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
        reserve_batch(client, fence, batch, now, &mut report).await?;
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
    let claimed: HashSet<Uuid> = tx
        .query(
            "SELECT id FROM sessions WHERE id = ANY($1) AND status = 'PENDING'
              ORDER BY id FOR UPDATE SKIP LOCKED",
            &[&session_ids],
        )
        .await
        .map_err(db_err("claiming pending sessions"))?
        .iter()
        .map(|row| row.decode(0))
        .collect::<Result<_, _>>()?;
    let mut agent_ids: Vec<String> = batch
        .iter()
        .flat_map(|(_, _, assignments)| assignments.iter().map(|a| a.agent_id.clone()))
        .collect();
    agent_ids.sort();
    agent_ids.dedup();
    let mut agents: BTreeMap<String, (ResourceSlot, ResourceSlot, String)> = BTreeMap::new();
    for row in tx
        .query(
            "SELECT id, available_slots, occupied_slots, addr FROM agents
              WHERE id = ANY($1) AND status = 'ALIVE' AND schedulable
              ORDER BY id FOR UPDATE",
            &[&agent_ids],
        )
        .await
        .map_err(db_err("locking agents"))?
    {
        agents.insert(
            row.decode(0)?,
            (
                slots_of(row.decode(1)?),
                slots_of(row.decode(2)?),
                row.decode(3)?,
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
    tx.execute(
        "UPDATE agents a SET occupied_slots = v.occupied
           FROM unnest($1::varchar[], $2::jsonb[]) AS v(id, occupied) WHERE a.id = v.id",
        &[&ids, &occupied],
    )
    .await
    .map_err(db_err("reserving agent slots"))?;

    let history = json!({ "SCHEDULED": now.to_rfc3339() });
    let mut s_ids = Vec::new();
    let mut s_groups = Vec::new();
    let mut s_agents = Vec::new();
    let mut k_ids = Vec::new();
    let mut k_agents = Vec::new();
    let mut k_addrs = Vec::new();
    let mut k_slots = Vec::new();
    let mut k_groups = Vec::new();
    for (session_id, scaling_group, assignments) in &admitted {
        let mut agent_list: Vec<String> = assignments.iter().map(|a| a.agent_id.clone()).collect();
        agent_list.dedup();
        s_ids.push(*session_id);
        s_groups.push((*scaling_group).clone());
        s_agents.push(agent_list.join(","));
        for assignment in assignments.iter() {
            k_ids.push(assignment.kernel_id);
            k_agents.push(assignment.agent_id.clone());
            k_addrs.push(
                agents
                    .get(&assignment.agent_id)
                    .map(|(_, _, addr)| addr.clone())
                    .unwrap_or_default(),
            );
            k_slots.push(assignment.slots.to_json());
            k_groups.push((*scaling_group).clone());
        }
    }
    let updated = tx
        .execute(
            "UPDATE sessions s SET status = 'SCHEDULED', status_info = 'scheduled',
                    status_data = '{}'::jsonb,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb,
                    scaling_group_name = v.sgroup,
                    agent_ids = string_to_array(v.agents, ',')
               FROM unnest($1::uuid[], $2::varchar[], $3::text[]) AS v(id, sgroup, agents)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[&s_ids, &s_groups, &s_agents, &history],
        )
        .await
        .map_err(db_err("moving sessions to SCHEDULED"))?;
    debug_assert_eq!(
        updated as usize,
        s_ids.len(),
        "claimed rows are locked by us"
    );
    tx.execute(
        "UPDATE kernels k SET status = 'SCHEDULED', status_info = 'scheduled',
                status_changed = $6, status_data = '{}'::jsonb,
                status_history = coalesce(k.status_history, '{}'::jsonb) || $7::jsonb,
                agent = v.agent, agent_addr = v.addr, occupied_slots = v.slots,
                scaling_group = v.sgroup
           FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::jsonb[], $5::varchar[])
                AS v(id, agent, addr, slots, sgroup)
          WHERE k.id = v.id AND k.status = 'PENDING'",
        &[
            &k_ids, &k_agents, &k_addrs, &k_slots, &k_groups, &now, &history,
        ],
    )
    .await
    .map_err(db_err("moving kernels to SCHEDULED"))?;
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
        tx.execute(
            "UPDATE sessions s SET status_info = v.info,
                    status_data = jsonb_build_object('scheduler', v.data || jsonb_build_object('retries',
                        coalesce((s.status_data -> 'scheduler' ->> 'retries')::int, 0) + 1))
               FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS v(id, info, data)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[&pending_ids, &pending_infos, &pending_data],
        )
        .await
        .map_err(db_err("recording why sessions wait"))?;
        tx.execute(
            "UPDATE kernels k SET status_info = v.info
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE k.session_id = v.id AND k.status = 'PENDING'",
            &[&pending_ids, &pending_infos],
        )
        .await
        .map_err(db_err("recording why kernels wait"))?;
    }
    if !cancel_ids.is_empty() {
        let history = json!({ "CANCELLED": last_try });
        tx.execute(
            "UPDATE sessions s SET status = 'CANCELLED', status_info = v.info,
                    terminated_at = $3,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[&cancel_ids, &cancel_infos, &now, &history],
        )
        .await
        .map_err(db_err("cancelling sessions"))?;
        tx.execute(
            "UPDATE kernels k SET status = 'CANCELLED', status_info = v.info,
                    status_changed = $3, terminated_at = $3,
                    status_history = coalesce(k.status_history, '{}'::jsonb) || $4::jsonb
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE k.session_id = v.id AND k.status = 'PENDING'",
            &[&cancel_ids, &cancel_infos, &now, &history],
        )
        .await
        .map_err(db_err("cancelling kernels"))?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing status updates"))?;
    Ok(1)
}
