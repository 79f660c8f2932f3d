//! The agent to call about one kernel of a session (e.g. for its container's log): the
//! kernel's agent, its address (the kernel's, else the agent's) and version, when that agent
//! is ALIVE.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// An ALIVE agent running a kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelAgentRow {
    pub agent: String,
    /// The kernel's agent address, else its agent's.
    pub addr: String,
    pub version: String,
}

/// The ALIVE agent of kernel `kernel_id` of session `session_id`; `None` when there is no
/// such kernel or its agent is not ALIVE.
pub async fn alive_agent_of_kernel(
    client: &impl GenericClient,
    kernel_id: Uuid,
    session_id: Uuid,
) -> Result<Option<KernelAgentRow>, QueryError> {
    let row = client
        .query_opt(
            "SELECT k.agent, coalesce(k.agent_addr, a.addr), a.version FROM kernels k
                       JOIN agents a ON a.id = k.agent AND a.status = 'ALIVE'
                      WHERE k.id = $1 AND k.session_id = $2",
            &[&kernel_id, &session_id],
        )
        .await
        .map_err(db_err("finding a kernel's agent"))?;
    row.map(|row| {
        Ok(KernelAgentRow {
            agent: row.read(0)?,
            addr: row.read(1)?,
            version: row.read(2)?,
        })
    })
    .transpose()
}
