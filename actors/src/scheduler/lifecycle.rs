//! The session lifecycle after placement: kernel transitions driven by the agents' events (or
//! by RPC replies and the reconciler), the session status derived from its kernels, and the
//! agents' occupied slots recomputed from their kernels whenever a kernel stops occupying them.
//!
//! Every write is a conditional update from the statuses the transition map allows, so the same
//! event handled twice (the bus delivers at least once) changes nothing the second time.

use bai_schema::enums::{KernelStatus, SessionStatus};
use bai_schema::queries::kernel_lifecycle::{self, KernelStatusChange, SessionStatusChange};
use bai_schema::queries::{DecodeError, QueryError};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Query(QueryError),
}

/// A query's failure in the scheduler's words, as before the statements moved to
/// `bai_schema::queries::kernel_lifecycle`: a failed statement names what it was doing.
impl From<QueryError> for LifecycleError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Db { context, source } => LifecycleError::Database { context, source },
            QueryError::Decode { column, source } => {
                LifecycleError::Decode(DecodeError { column, source })
            }
            other => LifecycleError::Query(other),
        }
    }
}

/// Kernel statuses from which `to` may be entered (`KERNEL_STATUS_TRANSITION_MAP`).
pub fn kernel_sources(to: KernelStatus) -> Vec<KernelStatus> {
    use KernelStatus::*;
    let transitional = [
        Preparing, Building, Pulling, Restarting, Resizing, Suspended,
    ];
    KernelStatus::ALL
        .iter()
        .copied()
        .filter(|from| {
            let allowed = match from {
                Pending => !matches!(to, Pending | Terminated),
                Scheduled => !matches!(to, Scheduled | Pending | Terminated),
                s if transitional.contains(s) => {
                    *s != to && !matches!(to, Pending | Scheduled | Terminated)
                }
                Running => matches!(to, Restarting | Resizing | Terminating | Terminated | Error),
                Terminating => matches!(to, Terminated | Error),
                _ => false,
            };
            // Termination is reported by the agent whatever the manager thought the kernel was
            // doing; a kernel that is gone is gone.
            allowed || (to == Terminated && !matches!(from, Terminated | Cancelled))
        })
        .collect()
}

/// `determine_session_status_by_kernels`.
pub fn derive_session_status(kernels: &[KernelStatus]) -> SessionStatus {
    use KernelStatus as K;
    use SessionStatus as S;
    let Some(first) = kernels.first() else {
        return S::Error;
    };
    let as_session = |k: &K| match k {
        K::Pending => S::Pending,
        K::Scheduled => S::Scheduled,
        K::Preparing | K::Building => S::Preparing,
        K::Pulling => S::Pulling,
        K::Running | K::Resizing => S::Running,
        K::Restarting => S::Restarting,
        K::Terminating => S::Terminating,
        K::Terminated => S::Terminated,
        K::Error | K::Suspended => S::Error,
        K::Cancelled => S::Cancelled,
    };
    if kernels.contains(&K::Error) {
        return S::Error;
    }
    if kernels.iter().all(|k| as_session(k) == as_session(first)) {
        return as_session(first);
    }
    // Mixed: resolve towards the earlier stage of the lifecycle.
    let order = [
        S::Pending,
        S::Scheduled,
        S::Pulling,
        S::Preparing,
        S::Restarting,
        S::Running,
        S::Terminating,
        S::Terminated,
        S::Cancelled,
    ];
    let statuses: Vec<S> = kernels.iter().map(as_session).collect();
    let terminating_mix = statuses
        .iter()
        .all(|s| matches!(s, S::Terminating | S::Terminated | S::Cancelled));
    if terminating_mix {
        return if statuses.contains(&S::Terminating) {
            S::Terminating
        } else {
            S::Terminated
        };
    }
    let starting_mix = statuses.iter().all(|s| {
        matches!(
            s,
            S::Scheduled | S::Pulling | S::Preparing | S::Running | S::Restarting
        )
    });
    if starting_mix {
        return order
            .iter()
            .copied()
            .find(|s| statuses.contains(s))
            .unwrap_or(S::Error);
    }
    S::Error
}

/// What a kernel transition did.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTransition {
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    pub agent: Option<String>,
}

/// Moves a kernel to `to` if the transition map allows it from its current status; returns
/// `None` when nothing changed (duplicate or out-of-order event). `extra` sets more columns.
pub async fn transit_kernel<C: GenericClient>(
    client: &C,
    kernel_id: Uuid,
    to: KernelStatus,
    reason: &str,
    now: DateTime<Utc>,
    extra: &KernelUpdate,
) -> Result<Option<KernelTransition>, LifecycleError> {
    let sources = kernel_sources(to);
    let history = json!({ to.as_str(): now.to_rfc3339() });
    let terminal = matches!(to, KernelStatus::Terminated | KernelStatus::Cancelled);
    let change = KernelStatusChange {
        kernel_id,
        to,
        reason,
        now,
        history: &history,
        terminal,
        sources: &sources,
    };
    let done = kernel_lifecycle::transit_kernel(client, &change, extra).await?;
    Ok(done.map(|done| KernelTransition {
        kernel_id,
        session_id: done.session_id,
        agent: done.agent,
    }))
}

/// Columns a transition may also set (from `kernel_started.creation_info` or the RPC reply).
pub use bai_schema::queries::kernel_lifecycle::KernelColumns as KernelUpdate;

/// Reads `creation_info` (event, JSON) or a `create_kernels` reply entry (converted to JSON).
pub fn kernel_update_from_creation_info(info: &serde_json::Value) -> KernelUpdate {
    let port = |key: &str| {
        info.get(key)
            .and_then(|v| v.as_i64())
            .and_then(|n| i32::try_from(n).ok())
    };
    KernelUpdate {
        container_id: info
            .get("container_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        kernel_host: info
            .get("kernel_host")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        repl_in_port: port("repl_in_port"),
        repl_out_port: port("repl_out_port"),
        stdin_port: port("stdin_port"),
        stdout_port: port("stdout_port"),
        service_ports: info.get("service_ports").cloned().filter(|v| !v.is_null()),
        attached_devices: info
            .get("attached_devices")
            .cloned()
            .filter(|v| v.is_object()),
        status_data: None,
        container_log: None,
    }
}

/// Recomputes an agent's occupied slots from its kernels that occupy it (all but PENDING,
/// TERMINATED, CANCELLED), with the agent row locked, as `recalc_agent_resource_occupancy`.
pub async fn recalc_agent_occupancy<C: GenericClient>(
    client: &C,
    agent: &str,
) -> Result<(), LifecycleError> {
    Ok(kernel_lifecycle::recalc_agent_occupancy(client, agent).await?)
}

/// What changed for the session after a kernel transition.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionChange {
    pub session_id: Uuid,
    pub creation_id: String,
    pub from: SessionStatus,
    pub to: SessionStatus,
}

/// Re-derives the session's status from its kernels and stores it if it changed.
pub async fn update_session_status<C: GenericClient>(
    client: &C,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionChange>, LifecycleError> {
    let Some(current) = kernel_lifecycle::lock_session(client, session_id).await? else {
        return Ok(None);
    };
    let from = current.status;
    let kernels = kernel_lifecycle::session_kernel_statuses(client, session_id).await?;
    let to = derive_session_status(&kernels);
    if to == from {
        return Ok(None);
    }
    let history = json!({ to.as_str(): now.to_rfc3339() });
    let change = SessionStatusChange {
        session_id,
        to,
        reason,
        history: &history,
        terminal: matches!(to, SessionStatus::Terminated | SessionStatus::Cancelled),
        now,
        recompute_occupying: matches!(to, SessionStatus::Preparing | SessionStatus::Running),
    };
    kernel_lifecycle::set_session_status(client, &change).await?;
    Ok(Some(SessionChange {
        session_id,
        creation_id: current.creation_id,
        from,
        to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use KernelStatus as K;
    use SessionStatus as S;

    #[test]
    fn session_status_follows_its_kernels() {
        assert_eq!(derive_session_status(&[K::Running, K::Running]), S::Running);
        assert_eq!(
            derive_session_status(&[K::Running, K::Preparing]),
            S::Preparing
        );
        assert_eq!(
            derive_session_status(&[K::Terminated, K::Terminating]),
            S::Terminating
        );
        assert_eq!(
            derive_session_status(&[K::Terminated, K::Cancelled]),
            S::Terminated
        );
        assert_eq!(derive_session_status(&[K::Running, K::Error]), S::Error);
        assert_eq!(derive_session_status(&[K::Building]), S::Preparing);
        assert_eq!(
            derive_session_status(&[K::Running, K::Terminated]),
            S::Error
        );
        assert_eq!(derive_session_status(&[]), S::Error);
    }

    #[test]
    fn the_transition_map_matches_the_original() {
        assert!(kernel_sources(K::Running).contains(&K::Preparing));
        assert!(!kernel_sources(K::Running).contains(&K::Terminating));
        assert!(!kernel_sources(K::Preparing).contains(&K::Running));
        assert!(kernel_sources(K::Terminating).contains(&K::Running));
        assert!(!kernel_sources(K::Scheduled).contains(&K::Scheduled));
        // A terminated report wins over whatever the manager thought.
        assert!(kernel_sources(K::Terminated).contains(&K::Preparing));
        assert!(!kernel_sources(K::Terminated).contains(&K::Terminated));
        assert!(!kernel_sources(K::Terminated).contains(&K::Cancelled));
    }
}
