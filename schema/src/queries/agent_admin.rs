//! Agent settings a superadmin changes through `modify_agent`.

use deadpool_postgres::GenericClient;

use super::{QueryError, ReadColumn, db_err};

/// Sets whether the scheduler may place new sessions on `agent`; whether the agent exists.
pub async fn set_agent_schedulable(
    client: &impl GenericClient,
    agent: &str,
    schedulable: bool,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE agents SET schedulable = $2 WHERE id = $1",
            &[&agent, &schedulable],
        )
        .await
        .map_err(db_err("changing an agent's schedulable flag"))?;
    Ok(updated > 0)
}

/// Where to reach an agent over RPC: its address and reported version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEndpoint {
    pub addr: String,
    pub version: String,
}

/// The RPC endpoint of `agent`; `None` when there is no such agent.
pub async fn agent_endpoint(
    client: &impl GenericClient,
    agent: &str,
) -> Result<Option<AgentEndpoint>, QueryError> {
    let row = client
        .query_opt("SELECT addr, version FROM agents WHERE id = $1", &[&agent])
        .await
        .map_err(db_err("looking up an agent's address"))?;
    row.map(|row| {
        Ok(AgentEndpoint {
            addr: row.read(0)?,
            version: row.read(1)?,
        })
    })
    .transpose()
}

/// Moves `agent` to `scaling_group`; whether the agent exists.
pub async fn set_agent_scaling_group(
    client: &impl GenericClient,
    agent: &str,
    scaling_group: &str,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE agents SET scaling_group = $2 WHERE id = $1",
            &[&agent, &scaling_group],
        )
        .await
        .map_err(db_err("changing an agent's scaling group"))?;
    Ok(updated > 0)
}

/// Sets `schedulable` on every agent of `agents` (`POST /manager/scheduler/operation`), all
/// or none: when an id names no agent (or repeats), nothing changes. Answers how many rows
/// changed.
pub async fn set_agents_schedulable(
    client: &impl GenericClient,
    agents: &[String],
    schedulable: bool,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents SET schedulable = $2 WHERE id = ANY($1) \
             AND (SELECT count(*) FROM agents WHERE id = ANY($1)) = cardinality($1)",
            &[&agents, &schedulable],
        )
        .await
        .map_err(db_err("changing the agents' schedulable flag"))
}
