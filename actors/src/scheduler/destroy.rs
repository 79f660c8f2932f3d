//! Destroying sessions that are past PENDING (`DELETE /session/{name}`, force-kill): kernels go
//! TERMINATING and the agents are asked to destroy them; their slots are freed when
//! `kernel_terminated` arrives, or at once when `forced` (even if the agent does not answer, or
//! is LOST).

use std::time::Duration;

use bai_schema::enums::{AgentStatus, KernelStatus, SessionStatus};
use uuid::Uuid;

use super::cluster_network::{destroy_local_network, local_network_name};
use super::container_log::keep_container_log;
use super::dispatch::{DispatchDeps, DispatchError};
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

pub async fn destroy_session(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    session_id: Uuid,
    forced: bool,
    reason: &str,
) -> Result<DestroyOutcome, SessionControlError> {
    let client = deps.pool.get().await.map_err(internal)?;
    let status: SessionStatus = client
        .query_opt("SELECT status FROM sessions WHERE id = $1", &[&session_id])
        .await
        .map_err(internal)?
        .map(|row| row.get(0))
        .ok_or(SessionControlError::NotFound)?;
    if status == SessionStatus::Pulling && !forced {
        return Err(SessionControlError::Forbidden(
            "Cannot destroy sessions in pulling status".to_owned(),
        ));
    }
    let kernels: Vec<KernelToDestroy> = client
        .query(
            "SELECT k.id, k.status, k.agent, coalesce(k.agent_addr, a.addr), a.version, a.status
               FROM kernels k LEFT JOIN agents a ON a.id = k.agent
              WHERE k.session_id = $1 ORDER BY k.cluster_idx, k.id",
            &[&session_id],
        )
        .await
        .map_err(internal)?
        .iter()
        .map(|row| {
            let agent: Option<String> = row.get(2);
            let addr: Option<String> = row.get(3);
            let version: Option<String> = row.get(4);
            let agent_status: Option<AgentStatus> = row.get(5);
            KernelToDestroy {
                id: row.get(0),
                status: row.get(1),
                target: match (agent, addr) {
                    (Some(id), Some(addr)) => Some(AgentTarget {
                        id,
                        addr,
                        version: version.unwrap_or_default(),
                    }),
                    _ => None,
                },
                agent_alive: agent_status == Some(AgentStatus::Alive),
            }
        })
        .collect();
    let main_last_stat = main_last_stat(&client, session_id).await;
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
            let change = end_or_move_kernel(deps, kernel.id, KernelStatus::Cancelled, reason)
                .await
                .map_err(internal)?;
            announce_opt(producer, change, reason).await;
            continue;
        }
        let change = end_or_move_kernel(deps, kernel.id, KernelStatus::Terminating, reason)
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
        if let Err(error) = keep_container_log(deps, target, kernel.id).await {
            // The session still terminates; only its stored log is missing.
            log_fetch_failures.push(format!("kernel {}: {error}", kernel.id));
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
            let change = end_or_move_kernel(deps, kernel.id, KernelStatus::Terminated, reason)
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

async fn main_last_stat(
    client: &deadpool_postgres::Object,
    session_id: Uuid,
) -> Option<serde_json::Value> {
    client
        .query_opt(
            "SELECT last_stat FROM kernels WHERE session_id = $1 AND cluster_role = 'main' LIMIT 1",
            &[&session_id],
        )
        .await
        .ok()
        .flatten()
        .and_then(|row| row.get::<_, Option<serde_json::Value>>(0))
}

/// Every session that is neither PENDING nor over, for a force-kill of the whole cluster.
pub async fn live_sessions(deps: &DispatchDeps) -> Result<Vec<Uuid>, DispatchError> {
    let client = deps
        .pool
        .get()
        .await
        .map_err(|e| DispatchError::Pool(e.to_string()))?;
    Ok(client
        .query(
            "SELECT id FROM sessions WHERE status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')",
            &[],
        )
        .await
        .map_err(|source| DispatchError::Database {
            context: "listing live sessions",
            source,
        })?
        .iter()
        .map(|row| row.get(0))
        .collect())
}
