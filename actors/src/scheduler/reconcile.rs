//! The reconciler: a periodic pass that compares sessions stuck in a transitional state with
//! what the agents report, and re-drives or fails them, so a lost event or a worker that died
//! mid-dispatch never leaves a session stuck (the original's sessions stay in PREPARING or
//! TERMINATING forever in that case).
//!
//! * SCHEDULED longer than the timeout: dispatched (again).
//! * PREPARING/PULLING longer than the timeout: if the agent says the kernel runs (25.x+
//!   `check_running`), it is marked RUNNING; otherwise the session is cancelled
//!   (`failed-to-start`) and its slots freed.
//! * TERMINATING longer than the timeout: `destroy_kernel` once more, then TERMINATED and freed.
//! * Kernels on LOST agents get `status_info = 'agent-lost'` so users see why.

use std::time::Duration;

use bai_schema::enums::{AgentStatus, KernelStatus};
use chrono::Utc;
use uuid::Uuid;

use super::dispatch::{DispatchDeps, DispatchError, dispatch_session, mark_running};
use super::events::{announce, end_or_move_kernel};
use crate::agent_rpc::{AgentMethod, AgentTarget};
use crate::wire::EventProducer;

/// The default of `[manager] session-transition-timeout`.
pub const DEFAULT_TRANSITION_TIMEOUT: Duration = Duration::from_secs(300);

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub redispatched: usize,
    pub marked_running: usize,
    pub failed_to_start: usize,
    pub force_terminated: usize,
    pub marked_agent_lost: u64,
}

struct StuckKernel {
    id: Uuid,
    session_id: Uuid,
    status: KernelStatus,
    target: Option<AgentTarget>,
    alive: bool,
}

pub async fn reconcile(
    deps: &DispatchDeps,
    producer: Option<&EventProducer>,
    timeout: Duration,
) -> Result<ReconcileReport, DispatchError> {
    let mut report = ReconcileReport::default();
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let client = deps
        .pool
        .get()
        .await
        .map_err(|e| DispatchError::Pool(e.to_string()))?;
    report.marked_agent_lost = client
        .execute(
            "UPDATE kernels k SET status_info = 'agent-lost' FROM agents a
              WHERE a.id = k.agent AND a.status = 'LOST'
                AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                AND k.status_info IS DISTINCT FROM 'agent-lost'",
            &[],
        )
        .await
        .map_err(db_err("marking kernels of lost agents"))?;
    client
        .execute(
            "UPDATE sessions s SET status_info = 'agent-lost'
              WHERE s.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                AND s.status_info IS DISTINCT FROM 'agent-lost'
                AND EXISTS (SELECT 1 FROM kernels k WHERE k.session_id = s.id AND k.status_info = 'agent-lost')",
            &[],
        )
        .await
        .map_err(db_err("marking sessions of lost agents"))?;

    let scheduled: Vec<Uuid> = client
        .query(
            "SELECT id FROM sessions WHERE status = 'SCHEDULED'
              AND coalesce((status_history ->> 'SCHEDULED')::timestamptz, created_at) < $1",
            &[&cutoff],
        )
        .await
        .map_err(db_err("finding stuck scheduled sessions"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let stuck: Vec<StuckKernel> = client
        .query(
            "SELECT k.id, k.session_id, k.status, k.agent, coalesce(k.agent_addr, a.addr), a.version, a.status
               FROM kernels k LEFT JOIN agents a ON a.id = k.agent
              WHERE k.status IN ('PREPARING', 'PULLING', 'BUILDING', 'TERMINATING')
                AND coalesce(k.status_changed, k.created_at) < $1",
            &[&cutoff],
        )
        .await
        .map_err(db_err("finding stuck kernels"))?
        .iter()
        .map(|row| {
            let agent: Option<String> = row.get(3);
            let addr: Option<String> = row.get(4);
            let version: Option<String> = row.get(5);
            let status: Option<AgentStatus> = row.get(6);
            StuckKernel {
                id: row.get(0),
                session_id: row.get(1),
                status: row.get(2),
                target: match (agent, addr) {
                    (Some(id), Some(addr)) => Some(AgentTarget {
                        id,
                        addr,
                        version: version.unwrap_or_default(),
                    }),
                    _ => None,
                },
                alive: status == Some(AgentStatus::Alive),
            }
        })
        .collect();
    drop(client);

    for session_id in scheduled {
        dispatch_session(deps, session_id).await?;
        report.redispatched += 1;
    }
    for kernel in stuck {
        let reachable = kernel.target.as_ref().filter(|_| kernel.alive);
        if kernel.status == KernelStatus::Terminating {
            if let Some(target) = reachable {
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
            let change =
                end_or_move_kernel(deps, kernel.id, KernelStatus::Terminated, "hang-timeout")
                    .await?;
            if let (Some(producer), Some(change)) = (producer, change) {
                announce(producer, &change, "hang-timeout").await;
            }
            report.force_terminated += 1;
            continue;
        }
        let running = match reachable {
            Some(target) if AgentMethod::CheckRunning.exposed_by(&target.version) => deps
                .rpc
                .check_running(target, kernel.id)
                .await
                .unwrap_or(false),
            _ => false,
        };
        if running {
            mark_running(deps, kernel.id, &serde_json::Value::Null).await?;
            report.marked_running += 1;
            continue;
        }
        if let Some(target) = reachable {
            let _ = deps
                .rpc
                .destroy_kernel(
                    target,
                    kernel.id,
                    kernel.session_id,
                    "failed-to-start",
                    true,
                )
                .await;
        }
        let change =
            end_or_move_kernel(deps, kernel.id, KernelStatus::Cancelled, "failed-to-start").await?;
        if let (Some(producer), Some(change)) = (producer, change) {
            announce(producer, &change, "failed-to-start").await;
        }
        report.failed_to_start += 1;
    }
    Ok(report)
}
