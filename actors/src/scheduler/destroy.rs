//! Destroying sessions that are past PENDING (`DELETE /session/{name}`, force-kill): kernels go
//! TERMINATING and the agents are asked to destroy them; their slots are freed when
//! `kernel_terminated` arrives, or at once when `forced` (even if the agent does not answer, or
//! is LOST).

use bai_schema::queries::QueryError;
use bai_schema::queries::session_destroy;
use std::time::Duration;

use bai_schema::enums::{AgentStatus, KernelStatus, SessionStatus};
use uuid::Uuid;

use super::cluster_network::{destroy_local_network, local_network_name};
use super::container_log::fetch_container_log;
use super::dispatch::{DispatchDeps, DispatchError, query_err};
use super::events::{announce, end_or_move_kernel};
use crate::agent_rpc::AgentTarget;
use crate::scheduler::messages::{DestroyOutcome, SessionControlError};
use crate::wire::EventProducer;

/// How long `destroy_kernel` may take before a non-forced destroy reports the agent failed; the
/// dummy agent takes ~0.2 s, a real one seconds (container stop timeout).
pub const DESTROY_TIMEOUT: Duration = Duration::from_secs(30);

struct KernelToDestroy {
    id: Uuid,
    status: KernelStatus,
    target: Option<AgentTarget>,
    agent_alive: bool,
}

fn internal(error: impl std::fmt::Display) -> SessionControlError {
    SessionControlError::AgentFailed(format!("cannot destroy the session: {error}"))
}

/// A failed read in the words it had before it moved to `bai_schema::queries::session_destroy`
/// (the driver's error, or the column that could not be read).
fn query_internal(error: QueryError) -> SessionControlError {
    match error {
        QueryError::Db { source, .. } | QueryError::Decode { source, .. } => internal(source),
        other => internal(other),
    }
}

pub async fn destroy_session(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    session_id: Uuid,
    forced: bool,
    reason: &str,
) -> Result<DestroyOutcome, SessionControlError> {
    let client = deps.pool.get().await.map_err(internal)?;
    // One statement for the session's status, its kernels and the main kernel's last
    // statistics (a session without kernels yields one row of NULL kernel columns).
    let rows = session_destroy::session_with_kernels(&client, session_id)
        .await
        .map_err(query_internal)?;
    let status = rows
        .first()
        .ok_or(SessionControlError::NotFound)?
        .session_status;
    if status == SessionStatus::Pulling && !forced {
        return Err(SessionControlError::Forbidden(
            "Cannot destroy sessions in pulling status".to_owned(),
        ));
    }
    let mut kernels: Vec<KernelToDestroy> = Vec::with_capacity(rows.len());
    let mut main_last_stat = None;
    for row in rows {
        let Some(kernel) = row.kernel else {
            continue;
        };
        if kernel.is_main == Some(true) {
            main_last_stat = kernel.last_stat;
        }
        kernels.push(KernelToDestroy {
            id: kernel.id,
            status: kernel.status,
            target: match (kernel.agent, kernel.agent_addr) {
                (Some(id), Some(addr)) => Some(AgentTarget {
                    id,
                    addr,
                    version: kernel.agent_version.unwrap_or_default(),
                }),
                _ => None,
            },
            agent_alive: kernel.agent_status == Some(AgentStatus::Alive),
        });
    }
    drop(client);

    let mut failures = Vec::new();
    let mut log_fetch_failures: Vec<String> = Vec::new();
    for kernel in &kernels {
        if matches!(
            kernel.status,
            KernelStatus::Terminated | KernelStatus::Cancelled
        ) {
            continue;
        }
        // Kernels that never reached an agent have nothing to destroy there.
        let on_agent = kernel.target.is_some()
            && !matches!(
                kernel.status,
                KernelStatus::Pending | KernelStatus::Scheduled
            );
        if !on_agent {
            let change = end_or_move_kernel(deps, kernel.id, KernelStatus::Cancelled, reason, None)
                .await
                .map_err(internal)?;
            announce_opt(producer, change, reason).await;
            continue;
        }
        // The log is read while the container still runs, and kept by the transaction that
        // moves the kernel to TERMINATING (a kernel already TERMINATING is not moved again,
        // so its log is not read again).
        let container_log = match &kernel.target {
            Some(target) if kernel.agent_alive && kernel.status != KernelStatus::Terminating => {
                match fetch_container_log(deps, target, kernel.id).await {
                    Ok(log) => Some(log),
                    Err(error) => {
                        // The session still terminates; only its stored log is missing.
                        log_fetch_failures.push(format!("kernel {}: {error}", kernel.id));
                        None
                    }
                }
            }
            _ => None,
        };
        let change = end_or_move_kernel(
            deps,
            kernel.id,
            KernelStatus::Terminating,
            reason,
            container_log.as_deref(),
        )
        .await
        .map_err(internal)?;
        announce_opt(producer, change, reason).await;
        let Some(target) = &kernel.target else {
            continue;
        };
        if !kernel.agent_alive {
            if !forced {
                failures.push(format!(
                    "agent {} is not alive (lost); destroy the session with forced=true to free its resources",
                    target.id
                ));
            }
            continue;
        }
        let destroyed = tokio::time::timeout(
            DESTROY_TIMEOUT,
            deps.rpc
                .destroy_kernel(target, kernel.id, session_id, reason, false),
        )
        .await;
        match destroyed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(error.to_string()),
            Err(_) => failures.push(format!(
                "agent {} did not destroy kernel {} within {DESTROY_TIMEOUT:?}",
                target.id, kernel.id
            )),
        }
    }
    // A single-node cluster's local network goes once its kernels are gone (best effort: a
    // leftover bridge network holds no resources the scheduler counts).
    let targets: Vec<&AgentTarget> = kernels
        .iter()
        .filter(|k| k.agent_alive)
        .filter_map(|k| k.target.as_ref())
        .collect();
    if kernels.len() > 1
        && let Some(first) = targets.first()
        && targets.len() == kernels.len()
        && targets.iter().all(|t| t.id == first.id)
        && let Err(error) =
            destroy_local_network(&deps.rpc, first, &local_network_name(session_id)).await
    {
        log::warn!("session {session_id}: cannot remove its cluster network: {error}");
    }
    if !log_fetch_failures.is_empty() {
        // The scheduler's callers log through `log`'s bridge, as gql/image.rs does.
        log::warn!(
            "session {session_id}: container logs not kept: {}",
            log_fetch_failures.join("; ")
        );
    }
    if forced {
        for kernel in &kernels {
            let change =
                end_or_move_kernel(deps, kernel.id, KernelStatus::Terminated, reason, None)
                    .await
                    .map_err(internal)?;
            announce_opt(producer, change, reason).await;
        }
    } else if !failures.is_empty() {
        return Err(SessionControlError::AgentFailed(failures.join("; ")));
    }
    Ok(DestroyOutcome { main_last_stat })
}

async fn announce_opt(
    producer: Option<&EventProducer>,
    change: Option<super::lifecycle::SessionChange>,
    reason: &str,
) {
    if let (Some(producer), Some(change)) = (producer, change) {
        announce(producer, &change, reason).await;
    }
}

/// Every session that is neither PENDING nor over, for a force-kill of the whole cluster.
pub async fn live_sessions(deps: &DispatchDeps) -> Result<Vec<Uuid>, DispatchError> {
    let client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    session_destroy::live_sessions(&**client)
        .await
        .map_err(query_err)
}
