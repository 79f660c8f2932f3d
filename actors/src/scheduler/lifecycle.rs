//! The session lifecycle after placement: kernel transitions driven by the agents' events (or
//! by RPC replies and the reconciler), the session status derived from its kernels, and the
//! agents' occupied slots recomputed from their kernels whenever a kernel stops occupying them.
//!
//! Every write is a conditional update from the statuses the transition map allows, so the same
//! event handled twice (the bus delivers at least once) changes nothing the second time.

use bai_schema::enums::{KernelStatus, SessionStatus};
use bai_schema::queries::ReadColumn;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::GenericClient;
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
    Decode(#[from] bai_schema::queries::DecodeError),
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> LifecycleError {
    move |source| LifecycleError::Database { context, source }
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
    let row = client
        .query_opt(
            "UPDATE kernels SET status = $2, status_info = $3, status_changed = $4,
                    status_history = coalesce(status_history, '{}'::jsonb) || $5::jsonb,
                    terminated_at = CASE WHEN $6 THEN $4 ELSE terminated_at END,
                    container_id = coalesce($8, container_id),
                    kernel_host = coalesce($9, kernel_host),
                    repl_in_port = coalesce($10, repl_in_port),
                    repl_out_port = coalesce($11, repl_out_port),
                    stdin_port = coalesce($12, stdin_port),
                    stdout_port = coalesce($13, stdout_port),
                    service_ports = coalesce($14, service_ports),
                    attached_devices = coalesce($15, attached_devices),
                    status_data = coalesce($16, status_data)
              WHERE id = $1 AND status = ANY($7)
              RETURNING session_id, agent",
            &[
                &kernel_id,
                &to,
                &reason,
                &now,
                &history,
                &terminal,
                &sources,
                &extra.container_id,
                &extra.kernel_host,
                &extra.repl_in_port,
                &extra.repl_out_port,
                &extra.stdin_port,
                &extra.stdout_port,
                &extra.service_ports,
                &extra.attached_devices,
                &extra.status_data,
            ],
        )
        .await
        .map_err(db_err("updating a kernel's status"))?;
    row.map(|row| {
        Ok(KernelTransition {
            kernel_id,
            session_id: row.decode(0)?,
            agent: row.decode(1)?,
        })
    })
    .transpose()
}

/// Columns a transition may also set (from `kernel_started.creation_info` or the RPC reply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelUpdate {
    pub container_id: Option<String>,
    pub kernel_host: Option<String>,
    pub repl_in_port: Option<i32>,
    pub repl_out_port: Option<i32>,
    pub stdin_port: Option<i32>,
    pub stdout_port: Option<i32>,
    pub service_ports: Option<serde_json::Value>,
    pub attached_devices: Option<serde_json::Value>,
    pub status_data: Option<serde_json::Value>,
}

impl KernelUpdate {
    /// Reads `creation_info` (event, JSON) or a `create_kernels` reply entry (converted to JSON).
    pub fn from_creation_info(info: &serde_json::Value) -> KernelUpdate {
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
        }
    }
}

/// Recomputes an agent's occupied slots from its kernels that occupy it (all but PENDING,
/// TERMINATED, CANCELLED), with the agent row locked, as `recalc_agent_resource_occupancy`.
pub async fn recalc_agent_occupancy<C: GenericClient>(
    client: &C,
    agent: &str,
) -> Result<(), LifecycleError> {
    client
        .execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", &[&agent])
        .await
        .map_err(db_err("locking an agent"))?;
    client
        .execute(
            "UPDATE agents a SET occupied_slots = coalesce((
                SELECT jsonb_object_agg(t.key, trim_scale(t.total)::text) FROM (
                    SELECT s.key, sum(s.value::numeric) AS total
                      FROM kernels k, jsonb_each_text(k.occupied_slots) s
                     WHERE k.agent = a.id AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                       AND s.value ~ '^-?[0-9.]+$'
                     GROUP BY s.key) t), '{}'::jsonb)
              WHERE a.id = $1",
            &[&agent],
        )
        .await
        .map_err(db_err("recomputing an agent's occupied slots"))?;
    Ok(())
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
    let current = client
        .query_opt(
            "SELECT status, coalesce(creation_id, '') FROM sessions WHERE id = $1 FOR UPDATE",
            &[&session_id],
        )
        .await
        .map_err(db_err("locking a session"))?;
    let Some(current) = current else {
        return Ok(None);
    };
    let from: SessionStatus = current.decode(0)?;
    let creation_id: String = current.decode(1)?;
    let kernels: Vec<KernelStatus> = client
        .query(
            "SELECT status FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session's kernels"))?
        .iter()
        .map(|row| row.decode(0))
        .collect::<Result<_, _>>()?;
    let to = derive_session_status(&kernels);
    if to == from {
        return Ok(None);
    }
    let history = json!({ to.as_str(): now.to_rfc3339() });
    let terminal = matches!(to, SessionStatus::Terminated | SessionStatus::Cancelled);
    let recompute_occupying = matches!(to, SessionStatus::Preparing | SessionStatus::Running);
    client
        .execute(
            "UPDATE sessions s SET status = $2, status_info = $3,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb,
                    terminated_at = CASE WHEN $5 THEN $6 ELSE s.terminated_at END,
                    occupying_slots = CASE WHEN $7 THEN coalesce((
                        SELECT jsonb_object_agg(t.key, trim_scale(t.total)::text) FROM (
                            SELECT e.key, sum(e.value::numeric) AS total
                              FROM kernels k, jsonb_each_text(k.occupied_slots) e
                             WHERE k.session_id = s.id AND e.value ~ '^-?[0-9.]+$'
                             GROUP BY e.key) t), '{}'::jsonb)
                        ELSE s.occupying_slots END
              WHERE s.id = $1",
            &[
                &session_id,
                &to,
                &reason,
                &history,
                &terminal,
                &now,
                &recompute_occupying,
            ],
        )
        .await
        .map_err(db_err("updating a session's status"))?;
    Ok(Some(SessionChange {
        session_id,
        creation_id,
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
