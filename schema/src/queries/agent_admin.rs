//! Agent settings a superadmin changes through `modify_agent`.

use deadpool_postgres::GenericClient;

use super::{QueryError, db_err};

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
