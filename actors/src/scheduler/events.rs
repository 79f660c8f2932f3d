//! Applying the agents' kernel events (`kernel_preparing` … `kernel_terminated`) and announcing
//! the session transitions they cause.

use bai_schema::enums::{KernelStatus, SessionStatus};
use bai_schema::queries::kernel_lifecycle;
use bai_schema::queries::usage::set_last_stat;
use chrono::Utc;
use deadpool_postgres::GenericClient;
use futures::StreamExt;
use uuid::Uuid;

use super::dispatch::{DispatchDeps, DispatchError, query_err};
use super::lifecycle::{
    KernelUpdate, SessionChange, kernel_update_from_creation_info, recalc_agent_occupancy,
    transit_kernel, update_session_status,
};
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;
use crate::wire::{
    Event, EventProducer, KernelEvent, KernelEventKind, SessionEvent, SessionEventKind,
};

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
}

/// A session transition to announce once the transaction that made it has committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub change: SessionChange,
    pub reason: String,
}

/// Whether the event ends the kernel, freeing its agent's slots.
fn frees_slots(kind: KernelEventKind) -> bool {
    matches!(
        kind,
        KernelEventKind::Terminated | KernelEventKind::Cancelled
    )
}

/// Applies one kernel event in its own transaction; idempotent.
pub async fn apply_kernel_event(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    event: &KernelEvent,
) -> Result<(), DispatchError> {
    apply_kernel_event_batch(deps, producer, &[event]).await
}

/// Applies `events` in stream order in one transaction (one commit for the whole batch), then
/// announces the session transitions they caused. Either all are applied or none is.
pub async fn apply_kernel_event_batch(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    events: &[&KernelEvent],
) -> Result<(), DispatchError> {
    let ending: Vec<Uuid> = events
        .iter()
        .filter(|event| event.kind == KernelEventKind::Terminated)
        .map(|event| event.kernel_id)
        .collect();
    let last_stats = last_stats(deps, &ending).await;
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning kernel transitions"))?;
    for (kernel_id, stat) in &last_stats {
        set_last_stat(&tx, *kernel_id, stat)
            .await
            .map_err(DispatchError::Query)?;
    }
    let freeing: Vec<Uuid> = events
        .iter()
        .filter(|event| frees_slots(event.kind))
        .map(|event| event.kernel_id)
        .collect();
    lock_agents_of(&tx, &freeing).await?;
    // Sessions side by side, each session's events in stream order: statements of different
    // sessions are pipelined on the one connection (they touch different rows; the agents are
    // locked already and recomputed below), while a session's kernels are re-derived one
    // event after another, as separate transactions would.
    let per_session = by_session(events);
    let tx_ref = &tx;
    let outcomes: Vec<Result<SessionOutcome, DispatchError>> = futures::stream::iter(per_session)
        .map(|session_events| async move {
            let mut freed = Vec::new();
            let mut announcements = Vec::new();
            for event in session_events {
                announcements.extend(apply_in(tx_ref, event, &mut freed).await?);
            }
            Ok(SessionOutcome {
                announcements,
                freed_agents: freed,
            })
        })
        .buffer_unordered(MAX_SESSIONS_IN_FLIGHT)
        .collect()
        .await;
    let mut freed_agents: Vec<String> = Vec::new();
    let mut announcements = Vec::new();
    for outcome in outcomes {
        let outcome = outcome?;
        announcements.extend(outcome.announcements);
        freed_agents.extend(outcome.freed_agents);
    }
    freed_agents.sort();
    freed_agents.dedup();
    for agent in &freed_agents {
        recalc_agent_occupancy(&tx, agent).await?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing kernel transitions"))?;
    if let Some(producer) = producer {
        for announcement in &announcements {
            announce(producer, &announcement.change, &announcement.reason).await;
        }
    }
    Ok(())
}

/// What applying one session's events of a batch did.
struct SessionOutcome {
    announcements: Vec<Announcement>,
    /// Agents whose kernels stopped occupying them.
    freed_agents: Vec<String>,
}

/// Sessions whose events one batch transaction applies at the same time (pipelined on its
/// connection).
pub const MAX_SESSIONS_IN_FLIGHT: usize = 64;

/// `events` grouped by session, sessions in order of first appearance, each group in the
/// order given.
pub fn by_session<'a>(events: &[&'a KernelEvent]) -> Vec<Vec<&'a KernelEvent>> {
    let mut order: Vec<Uuid> = Vec::new();
    let mut groups: std::collections::HashMap<Uuid, Vec<&'a KernelEvent>> =
        std::collections::HashMap::new();
    for event in events {
        groups
            .entry(event.session_id)
            .or_insert_with(|| {
                order.push(event.session_id);
                Vec::new()
            })
            .push(event);
    }
    order
        .into_iter()
        .filter_map(|session| groups.remove(&session))
        .collect()
}

/// Applies one kernel event inside `client`'s transaction, whose caller has locked the agents
/// of the kernels it ends and recomputes the occupancy of the agents added to `freed_agents`.
async fn apply_in<C: GenericClient>(
    client: &C,
    event: &KernelEvent,
    freed_agents: &mut Vec<String>,
) -> Result<Option<Announcement>, DispatchError> {
    let target = match event.kind {
        KernelEventKind::Preparing | KernelEventKind::Creating => KernelStatus::Preparing,
        KernelEventKind::Pulling => KernelStatus::Pulling,
        KernelEventKind::Started => {
            start_kernel_in(client, event.kernel_id, &event.creation_info).await?;
            return started_announcement(client, event.session_id).await;
        }
        KernelEventKind::Cancelled => KernelStatus::Cancelled,
        KernelEventKind::Terminating => KernelStatus::Terminating,
        KernelEventKind::Terminated => KernelStatus::Terminated,
    };
    Ok(move_kernel_in(
        client,
        event.kernel_id,
        target,
        &event.reason,
        &KernelUpdate::default(),
        freed_agents,
    )
    .await?
    .map(|change| Announcement {
        change,
        reason: event.reason.clone(),
    }))
}

/// PREPARING/PULLING → RUNNING with the container's facts, and the session re-derived, inside
/// `client`'s transaction (see [`super::dispatch::mark_running`]).
pub(super) async fn start_kernel_in<C: GenericClient>(
    client: &C,
    kernel_id: Uuid,
    creation_info: &serde_json::Value,
) -> Result<(), DispatchError> {
    let update = kernel_update_from_creation_info(creation_info);
    let now = Utc::now();
    if let Some(done) =
        transit_kernel(client, kernel_id, KernelStatus::Running, "", now, &update).await?
    {
        update_session_status(client, done.session_id, "", now).await?;
    }
    Ok(())
}

/// Moves a kernel to `target` and re-derives its session's status inside `client`'s
/// transaction; a kernel that stops occupying its agent adds the agent to `freed_agents`.
async fn move_kernel_in<C: GenericClient>(
    client: &C,
    kernel_id: Uuid,
    target: KernelStatus,
    reason: &str,
    update: &KernelUpdate,
    freed_agents: &mut Vec<String>,
) -> Result<Option<SessionChange>, DispatchError> {
    let now = Utc::now();
    let Some(done) = transit_kernel(client, kernel_id, target, reason, now, update).await? else {
        return Ok(None);
    };
    if matches!(target, KernelStatus::Terminated | KernelStatus::Cancelled)
        && let Some(agent) = done.agent
    {
        freed_agents.push(agent);
    }
    Ok(update_session_status(client, done.session_id, reason, now).await?)
}

/// Locks the agents of `kernel_ids` in id order, the order the reservation locks them in, so
/// that freeing slots and reserving them never wait for each other in a cycle.
async fn lock_agents_of<C: GenericClient>(
    client: &C,
    kernel_ids: &[Uuid],
) -> Result<(), DispatchError> {
    if kernel_ids.is_empty() {
        return Ok(());
    }
    kernel_lifecycle::lock_agents_of_kernels(client, kernel_ids)
        .await
        .map_err(query_err)?;
    Ok(())
}

/// The statistics the agents keep in Redis for `kernel_ids` (the original's
/// `sync_kernel_stats` at termination), to be stored in `kernels.last_stat` before the
/// session's end is announced, so usage reports and the destroy reply have them after the
/// agent drops its key. Best effort: a missing or unreadable statistic, or a Redis failure,
/// leaves `last_stat` as it was.
async fn last_stats(deps: &DispatchDeps, kernel_ids: &[Uuid]) -> Vec<(Uuid, serde_json::Value)> {
    let Some(redis) = &deps.stat_redis else {
        return Vec::new();
    };
    if kernel_ids.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = kernel_ids.iter().map(Uuid::to_string).collect();
    let mut connection = redis.clone();
    let raw: Vec<Option<Vec<u8>>> = match redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut connection)
        .await
    {
        Ok(raw) => raw,
        Err(e) => {
            log::warn!("cannot read the statistics of ending kernels from redis: {e}");
            return Vec::new();
        }
    };
    kernel_ids
        .iter()
        .zip(raw)
        .filter_map(|(id, bytes)| {
            let stat = msgpack::decode(&bytes?).ok()?;
            Some((*id, msgpack_to_json(&stat)))
        })
        .collect()
}

/// Stores one kernel's last statistics from Redis (see [`last_stats`]), for a kernel the
/// manager ends itself.
pub(super) async fn keep_last_stat(deps: &DispatchDeps, kernel_id: Uuid) {
    let Some((_, stat)) = last_stats(deps, &[kernel_id]).await.pop() else {
        return;
    };
    let client = match deps.pool.get().await {
        Ok(client) => client,
        Err(e) => {
            log::warn!("cannot store the last statistics of kernel {kernel_id}: {e}");
            return;
        }
    };
    if let Err(e) = set_last_stat(&client, kernel_id, &stat).await {
        log::warn!("cannot store the last statistics of kernel {kernel_id}: {e}");
    }
}

/// Moves a kernel and, when it stops occupying its agent, recomputes the agent's slots, all in
/// one transaction (with the container's log, when given, kept in the same one); then
/// re-derives the session's status.
pub async fn end_or_move_kernel(
    deps: &DispatchDeps,
    kernel_id: Uuid,
    target: KernelStatus,
    reason: &str,
    container_log: Option<&[u8]>,
) -> Result<Option<SessionChange>, DispatchError> {
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a kernel transition"))?;
    if matches!(target, KernelStatus::Terminated | KernelStatus::Cancelled) {
        lock_agents_of(&tx, &[kernel_id]).await?;
    }
    let mut freed_agents = Vec::new();
    let update = KernelUpdate {
        container_log: container_log.map(<[u8]>::to_vec),
        ..KernelUpdate::default()
    };
    let change = move_kernel_in(&tx, kernel_id, target, reason, &update, &mut freed_agents).await?;
    for agent in &freed_agents {
        recalc_agent_occupancy(&tx, agent).await?;
    }
    tx.commit()
        .await
        .map_err(db_err("committing a kernel transition"))?;
    Ok(change)
}

/// The `session_started` announcement when the session is RUNNING (whichever of the RPC reply
/// and the `kernel_started` event moved it there).
async fn started_announcement<C: GenericClient>(
    client: &C,
    session_id: Uuid,
) -> Result<Option<Announcement>, DispatchError> {
    let row = kernel_lifecycle::session_status(client, session_id)
        .await
        .map_err(query_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status = row.status;
    if status != SessionStatus::Running {
        return Ok(None);
    }
    Ok(Some(Announcement {
        change: SessionChange {
            session_id,
            creation_id: row.creation_id,
            from: SessionStatus::Preparing,
            to: status,
        },
        reason: String::new(),
    }))
}

/// Produces the session event of a transition (`session_started`, `session_terminated`, ...).
pub async fn announce(producer: &EventProducer, change: &SessionChange, reason: &str) {
    let kind = match change.to {
        SessionStatus::Running => SessionEventKind::Started,
        SessionStatus::Terminating => SessionEventKind::Terminating,
        SessionStatus::Terminated => SessionEventKind::Terminated,
        SessionStatus::Cancelled => SessionEventKind::Cancelled,
        SessionStatus::Preparing => SessionEventKind::Preparing,
        _ => return,
    };
    let creation_id = matches!(
        kind,
        SessionEventKind::Started | SessionEventKind::Cancelled | SessionEventKind::Preparing
    )
    .then(|| change.creation_id.clone());
    let _ = producer
        .produce(&Event::Session(SessionEvent {
            kind,
            session_id: change.session_id,
            creation_id,
            reason: reason.to_owned(),
            exit_code: None,
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(session: u128, kernel: u128, kind: KernelEventKind) -> KernelEvent {
        KernelEvent {
            kind,
            kernel_id: Uuid::from_u128(kernel),
            session_id: Uuid::from_u128(session),
            reason: String::new(),
            creation_info: serde_json::Value::Null,
            exit_code: None,
        }
    }

    #[test]
    fn a_sessions_events_stay_together_in_order() {
        let events = [
            event(1, 11, KernelEventKind::Started),
            event(2, 21, KernelEventKind::Started),
            event(1, 12, KernelEventKind::Started),
            event(1, 11, KernelEventKind::Terminated),
            event(2, 21, KernelEventKind::Terminated),
        ];
        let refs: Vec<&KernelEvent> = events.iter().collect();
        let groups: Vec<Vec<(u128, KernelEventKind)>> = by_session(&refs)
            .into_iter()
            .map(|group| {
                group
                    .into_iter()
                    .map(|e| (e.kernel_id.as_u128(), e.kind))
                    .collect()
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                vec![
                    (11, KernelEventKind::Started),
                    (12, KernelEventKind::Started),
                    (11, KernelEventKind::Terminated)
                ],
                vec![
                    (21, KernelEventKind::Started),
                    (21, KernelEventKind::Terminated)
                ],
            ]
        );
    }
}
