//! Applying the agents' kernel events (`kernel_preparing` … `kernel_terminated`) and announcing
//! the session transitions they cause.

use bai_schema::enums::{KernelStatus, SessionStatus};
use bai_schema::queries::ReadColumn;
use bai_schema::queries::usage::set_last_stat;
use chrono::Utc;
use uuid::Uuid;

use super::dispatch::{DispatchDeps, DispatchError, mark_running};
use super::lifecycle::{
    KernelUpdate, SessionChange, recalc_agent_occupancy, transit_kernel, update_session_status,
};
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;
use crate::wire::{
    Event, EventProducer, KernelEvent, KernelEventKind, SessionEvent, SessionEventKind,
};

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
}

/// Applies one kernel event; idempotent.
pub async fn apply_kernel_event(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    event: &KernelEvent,
) -> Result<(), DispatchError> {
    let target = match event.kind {
        KernelEventKind::Preparing | KernelEventKind::Creating => KernelStatus::Preparing,
        KernelEventKind::Pulling => KernelStatus::Pulling,
        KernelEventKind::Started => {
            mark_running(deps, event.kernel_id, &event.creation_info).await?;
            return announce_current(deps, producer, event.session_id).await;
        }
        KernelEventKind::Cancelled => KernelStatus::Cancelled,
        KernelEventKind::Terminating => KernelStatus::Terminating,
        KernelEventKind::Terminated => {
            keep_last_stat(deps, event.kernel_id).await;
            KernelStatus::Terminated
        }
    };
    let change = end_or_move_kernel(deps, event.kernel_id, target, &event.reason).await?;
    if let (Some(change), Some(producer)) = (change, producer) {
        announce(producer, &change, &event.reason).await;
    }
    Ok(())
}

/// Copies the kernel's statistics from Redis to `kernels.last_stat` (the original's
/// `sync_kernel_stats` at termination), before the session's end is announced, so usage
/// reports and the destroy reply have them after the agent drops its key. Best effort: a
/// missing statistic or a Redis failure leaves `last_stat` as it was.
pub(super) async fn keep_last_stat(deps: &DispatchDeps, kernel_id: Uuid) {
    let Some(redis) = &deps.stat_redis else {
        return;
    };
    let mut connection = redis.clone();
    let raw: Option<Vec<u8>> = match redis::cmd("GET")
        .arg(kernel_id.to_string())
        .query_async(&mut connection)
        .await
    {
        Ok(raw) => raw,
        Err(e) => {
            log::warn!("cannot read the statistics of kernel {kernel_id} from redis: {e}");
            return;
        }
    };
    let Some(stat) = raw
        .and_then(|bytes| msgpack::decode(&bytes).ok())
        .map(|value| msgpack_to_json(&value))
    else {
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
/// one transaction; then re-derives the session's status.
pub async fn end_or_move_kernel(
    deps: &DispatchDeps,
    kernel_id: Uuid,
    target: KernelStatus,
    reason: &str,
) -> Result<Option<SessionChange>, DispatchError> {
    let now = Utc::now();
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a kernel transition"))?;
    let frees_slots = matches!(target, KernelStatus::Terminated | KernelStatus::Cancelled);
    if frees_slots {
        // Lock the agent before the kernel, in the order the reservation uses.
        let agent: Option<Option<String>> = tx
            .query_opt("SELECT agent FROM kernels WHERE id = $1", &[&kernel_id])
            .await
            .map_err(db_err("reading a kernel's agent"))?
            .map(|row| row.decode(0))
            .transpose()?;
        if let Some(Some(agent)) = &agent {
            tx.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", &[agent])
                .await
                .map_err(db_err("locking an agent"))?;
        }
    }
    let Some(done) = transit_kernel(
        &*tx,
        kernel_id,
        target,
        reason,
        now,
        &KernelUpdate::default(),
    )
    .await?
    else {
        return Ok(None);
    };
    if frees_slots && let Some(agent) = &done.agent {
        recalc_agent_occupancy(&*tx, agent).await?;
    }
    let change = update_session_status(&*tx, done.session_id, reason, now).await?;
    tx.commit()
        .await
        .map_err(db_err("committing a kernel transition"))?;
    Ok(change)
}

async fn announce_current(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    session_id: Uuid,
) -> Result<(), DispatchError> {
    let Some(producer) = producer else {
        return Ok(());
    };
    let client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let row = client
        .query_opt(
            "SELECT status, coalesce(creation_id, '') FROM sessions WHERE id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session"))?;
    if let Some(row) = row {
        let status: SessionStatus = row.decode(0)?;
        if status == SessionStatus::Running {
            let change = SessionChange {
                session_id,
                creation_id: row.decode(1)?,
                from: SessionStatus::Preparing,
                to: status,
            };
            announce(producer, &change, "").await;
        }
    }
    Ok(())
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
