//! The statements of a scheduling pass's writes: the reservation transaction (claim the
//! pending sessions, lock their agents, add the occupied slots, move sessions and kernels to
//! SCHEDULED, or straight to PREPARING when the reserving worker dispatches them) and the status of the sessions that stay PENDING or are cancelled. Every write
//! is a compare-and-set on `status = 'PENDING'`; the callers run them in one transaction, after
//! the fencing check of the scheduling lock.
//!
//! These take a `tokio_postgres::GenericClient` (the scheduler holds a plain client and its
//! transaction), and the contexts of their errors are the scheduler's log wording.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// Of these sessions, the ones still PENDING that no other transaction holds, locked until the
/// transaction ends.
pub async fn claim_pending_sessions(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, QueryError> {
    let rows = client
        .query(
            "SELECT id FROM sessions WHERE id = ANY($1) AND status = 'PENDING'
              ORDER BY id FOR UPDATE SKIP LOCKED",
            &[&ids],
        )
        .await
        .map_err(db_err("claiming pending sessions"))?;
    rows.iter().map(|row| row.read(0)).collect()
}

/// An agent a reservation may place kernels on, locked. The slot columns are the raw JSON
/// (the scheduler reads a bad value as empty).
#[derive(Debug, Clone, PartialEq)]
pub struct LockedAgentRow {
    pub id: String,
    pub available_slots: Option<Value>,
    pub occupied_slots: Option<Value>,
    pub addr: String,
}

/// Of these agents, the ALIVE and schedulable ones, locked in id order (so two schedulers
/// never deadlock on them).
pub async fn lock_schedulable_agents(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<LockedAgentRow>, QueryError> {
    let rows = client
        .query(
            "SELECT id, available_slots, occupied_slots, addr FROM agents
              WHERE id = ANY($1) AND status = 'ALIVE' AND schedulable
              ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await
        .map_err(db_err("locking agents"))?;
    rows.iter()
        .map(|row| {
            Ok(LockedAgentRow {
                id: row.read(0)?,
                available_slots: row.read(1)?,
                occupied_slots: row.read(2)?,
                addr: row.read(3)?,
            })
        })
        .collect()
}

/// Sets each agent's `occupied_slots` (parallel lists).
pub async fn set_occupied_slots(
    client: &impl GenericClient,
    ids: &[String],
    occupied: &[Value],
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents a SET occupied_slots = v.occupied
               FROM unnest($1::varchar[], $2::jsonb[]) AS v(id, occupied) WHERE a.id = v.id",
            &[&ids, &occupied],
        )
        .await
        .map_err(db_err("reserving agent slots"))
}

/// The sessions a reservation moves to SCHEDULED (parallel lists).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduledSessions {
    pub ids: Vec<Uuid>,
    pub scaling_groups: Vec<String>,
    /// The session's agents, comma-separated (stored as `agent_ids`).
    pub agents: Vec<String>,
}

/// The status a reservation gives the sessions and kernels it places: SCHEDULED, or PREPARING
/// when the reserving worker claims them for its own dispatch in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedStatus<'a> {
    /// `SCHEDULED` or `PREPARING` (a value of both `sessionstatus` and `kernelstatus`).
    pub status: &'a str,
    pub status_info: &'a str,
}

impl PlacedStatus<'_> {
    pub const SCHEDULED: PlacedStatus<'static> = PlacedStatus {
        status: "SCHEDULED",
        status_info: "scheduled",
    };
}

/// Moves PENDING sessions to `placed`, adding `history` to their status history; returns how
/// many rows changed.
pub async fn schedule_sessions(
    client: &impl GenericClient,
    sessions: &ScheduledSessions,
    history: &Value,
    placed: PlacedStatus<'_>,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions s SET status = $5::text::sessionstatus, status_info = $6,
                    status_data = '{}'::jsonb,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb,
                    scaling_group_name = v.sgroup,
                    agent_ids = string_to_array(v.agents, ',')
               FROM unnest($1::uuid[], $2::varchar[], $3::text[]) AS v(id, sgroup, agents)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[
                &sessions.ids,
                &sessions.scaling_groups,
                &sessions.agents,
                history,
                &placed.status,
                &placed.status_info,
            ],
        )
        .await
        .map_err(db_err("moving sessions to SCHEDULED"))
}

/// The kernels a reservation moves to SCHEDULED (parallel lists).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduledKernels {
    pub ids: Vec<Uuid>,
    pub agents: Vec<String>,
    pub agent_addrs: Vec<String>,
    /// The occupied slots as JSON (`ResourceSlot::to_json`).
    pub slots: Vec<Value>,
    pub scaling_groups: Vec<String>,
}

/// Moves PENDING kernels to `placed` on their agents at `now`, adding `history` to their
/// status history; returns how many rows changed.
pub async fn schedule_kernels(
    client: &impl GenericClient,
    kernels: &ScheduledKernels,
    now: DateTime<Utc>,
    history: &Value,
    placed: PlacedStatus<'_>,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels k SET status = $8::text::kernelstatus, status_info = $9,
                    status_changed = $6, status_data = '{}'::jsonb,
                    status_history = coalesce(k.status_history, '{}'::jsonb) || $7::jsonb,
                    agent = v.agent, agent_addr = v.addr, occupied_slots = v.slots,
                    scaling_group = v.sgroup
               FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::jsonb[], $5::varchar[])
                    AS v(id, agent, addr, slots, sgroup)
              WHERE k.id = v.id AND k.status = 'PENDING'",
            &[
                &kernels.ids,
                &kernels.agents,
                &kernels.agent_addrs,
                &kernels.slots,
                &kernels.scaling_groups,
                &now,
                history,
                &placed.status,
                &placed.status_info,
            ],
        )
        .await
        .map_err(db_err("moving kernels to SCHEDULED"))
}

/// Records why PENDING sessions wait: `status_info`, and `status_data.scheduler` = `data` plus
/// the retry count incremented (parallel lists); returns how many rows changed.
pub async fn record_waiting_sessions(
    client: &impl GenericClient,
    ids: &[Uuid],
    infos: &[String],
    data: &[Value],
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions s SET status_info = v.info,
                    status_data = jsonb_build_object('scheduler', v.data || jsonb_build_object('retries',
                        coalesce((s.status_data -> 'scheduler' ->> 'retries')::int, 0) + 1))
               FROM unnest($1::uuid[], $2::text[], $3::jsonb[]) AS v(id, info, data)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[&ids, &infos, &data],
        )
        .await
        .map_err(db_err("recording why sessions wait"))
}

/// Sets `status_info` of the PENDING kernels of these sessions (parallel lists).
pub async fn record_waiting_kernels(
    client: &impl GenericClient,
    session_ids: &[Uuid],
    infos: &[String],
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels k SET status_info = v.info
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE k.session_id = v.id AND k.status = 'PENDING'",
            &[&session_ids, &infos],
        )
        .await
        .map_err(db_err("recording why kernels wait"))
}

/// Cancels PENDING sessions at `now` with their `status_info` (parallel lists), adding
/// `history` to their status history.
pub async fn cancel_pending_sessions(
    client: &impl GenericClient,
    ids: &[Uuid],
    infos: &[String],
    now: DateTime<Utc>,
    history: &Value,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions s SET status = 'CANCELLED', status_info = v.info,
                    terminated_at = $3,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE s.id = v.id AND s.status = 'PENDING'",
            &[&ids, &infos, &now, history],
        )
        .await
        .map_err(db_err("cancelling sessions"))
}

/// Cancels the PENDING kernels of these sessions at `now` (parallel lists), adding `history`
/// to their status history.
pub async fn cancel_pending_kernels(
    client: &impl GenericClient,
    session_ids: &[Uuid],
    infos: &[String],
    now: DateTime<Utc>,
    history: &Value,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels k SET status = 'CANCELLED', status_info = v.info,
                    status_changed = $3, terminated_at = $3,
                    status_history = coalesce(k.status_history, '{}'::jsonb) || $4::jsonb
               FROM unnest($1::uuid[], $2::text[]) AS v(id, info)
              WHERE k.session_id = v.id AND k.status = 'PENDING'",
            &[&session_ids, &infos, &now, history],
        )
        .await
        .map_err(db_err("cancelling kernels"))
}
