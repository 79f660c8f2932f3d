//! The reads of destroying sessions past PENDING: one statement for a session's status, its
//! kernels with their agents and the main kernel's last statistics, and the live sessions a
//! force-kill of the whole cluster destroys. The status changes themselves are the kernel
//! lifecycle's (`kernel_lifecycle`).

use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};
use crate::enums::{AgentStatus, KernelStatus, SessionStatus};

/// One row of [`session_with_kernels`]: the session's status and one of its kernels (`None`
/// for the single row of a session without kernels).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionKernelRow {
    pub session_status: SessionStatus,
    pub kernel: Option<KernelToDestroyRow>,
}

/// A kernel of a session to destroy, with its agent (when it has a row).
#[derive(Debug, Clone, PartialEq)]
pub struct KernelToDestroyRow {
    pub id: Uuid,
    pub status: KernelStatus,
    pub agent: Option<String>,
    /// The kernel's agent address, else its agent's.
    pub agent_addr: Option<String>,
    pub agent_version: Option<String>,
    pub agent_status: Option<AgentStatus>,
    /// Whether this is the session's main kernel (`None` without a cluster role).
    pub is_main: Option<bool>,
    pub last_stat: Option<Value>,
}

/// A session's status with its kernels by cluster index and id, in one statement; empty when
/// there is no such session. The session's status is read before its kernels' columns.
pub async fn session_with_kernels(
    client: &impl deadpool_postgres::GenericClient,
    session_id: Uuid,
) -> Result<Vec<SessionKernelRow>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT s.status, k.id, k.status, k.agent, coalesce(k.agent_addr, a.addr), a.version,
                    a.status, k.cluster_role = 'main', k.last_stat
               FROM sessions s
               LEFT JOIN kernels k ON k.session_id = s.id
               LEFT JOIN agents a ON a.id = k.agent
              WHERE s.id = $1 ORDER BY k.cluster_idx, k.id",
        )
        .await
        .map_err(db_err("preparing the destroy query"))?;
    let rows = client
        .query(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session to destroy"))?;
    rows.iter()
        .map(|row| {
            let session_status = row.read(0)?;
            let kernel = match row.read::<_, Option<Uuid>>(1)? {
                None => None,
                Some(id) => Some(KernelToDestroyRow {
                    id,
                    agent: row.read(3)?,
                    agent_addr: row.read(4)?,
                    agent_version: row.read(5)?,
                    agent_status: row.read(6)?,
                    is_main: row.read(7)?,
                    last_stat: row.read(8)?,
                    status: row.read(2)?,
                }),
            };
            Ok(SessionKernelRow {
                session_status,
                kernel,
            })
        })
        .collect()
}

/// Every session that is neither PENDING nor over.
pub async fn live_sessions(client: &impl GenericClient) -> Result<Vec<Uuid>, QueryError> {
    client
        .query(
            "SELECT id FROM sessions WHERE status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')",
            &[],
        )
        .await
        .map_err(db_err("listing live sessions"))?
        .iter()
        .map(|row| row.read(0))
        .collect()
}
