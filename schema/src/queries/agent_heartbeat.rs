//! The `agents` rows as the heartbeat tracker reads and writes them: the state it caches per
//! agent, the locked read a heartbeat decides on, the insert / revive / update a heartbeat
//! writes, the status changes of the agent lifecycle events, and the batched first-contact
//! insert.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{QueryError, ReadColumn, db_err};
use crate::enums::AgentStatus;

/// What the tracker keeps of an agent's row. `available_slots` is the raw JSON: the tracker
/// parses it and names the agent when it is invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStateRow {
    pub id: String,
    pub status: AgentStatus,
    pub scaling_group: String,
    pub available_slots: Value,
    pub addr: String,
    pub public_host: Option<String>,
    pub public_key: Option<String>,
    pub version: String,
    pub compute_plugins: Value,
    pub architecture: String,
    pub auto_terminate_abusing_kernel: bool,
}

impl AgentStateRow {
    fn from_row(row: &Row) -> Result<AgentStateRow, QueryError> {
        Ok(AgentStateRow {
            id: row.read("id")?,
            status: row.read("status")?,
            scaling_group: row.read("scaling_group")?,
            available_slots: row.read("available_slots")?,
            addr: row.read("addr")?,
            public_host: row.read("public_host")?,
            public_key: row.read("public_key")?,
            version: row.read("version")?,
            compute_plugins: row.read("compute_plugins")?,
            architecture: row.read("architecture")?,
            auto_terminate_abusing_kernel: row.read("auto_terminate_abusing_kernel")?,
        })
    }
}

/// What a heartbeat reports of an agent, as the writes store it.
#[derive(Debug, Clone, Copy)]
pub struct AgentReport<'a> {
    pub region: &'a str,
    pub scaling_group: &'a str,
    /// The available slots as JSON (`ResourceSlot::to_json`).
    pub available_slots: &'a Value,
    pub addr: &'a str,
    pub public_host: &'a str,
    pub public_key: Option<&'a str>,
    pub version: &'a str,
    pub architecture: &'a str,
    pub compute_plugins: &'a Value,
    pub auto_terminate_abusing_kernel: bool,
}

/// The columns `AgentStateRow::from_row` reads (a macro, so that the statements stay
/// `&'static str` constants the prepare test reads through `STATEMENTS`).
macro_rules! state_select {
    () => {
        "SELECT id, status, scaling_group, available_slots, addr, public_host, public_key, \
         version, compute_plugins, architecture, auto_terminate_abusing_kernel FROM agents"
    };
}

/// The columns of a first-contact insert, in the order of its values.
macro_rules! insert_columns {
    () => {
        "INSERT INTO agents (id, status, status_changed, region, scaling_group, schedulable, \
         available_slots, occupied_slots, addr, public_host, public_key, first_contact, \
         lost_at, version, architecture, compute_plugins, auto_terminate_abusing_kernel) "
    };
}

/// The statements assembled from the macros above (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[ALL_SQL, SOME_SQL, LOCK_SQL, INSERT_SQL];

const ALL_SQL: &str = state_select!();
const SOME_SQL: &str = concat!(state_select!(), " WHERE id = ANY($1)");
const LOCK_SQL: &str = concat!(state_select!(), " WHERE id = $1 FOR UPDATE");
const INSERT_SQL: &str = concat!(
    insert_columns!(),
    "VALUES ($1, 'ALIVE', now(), $2, $3, true, $4, '{}', $5, $6, $7, now(), NULL, \
     $8, $9, $10, $11)"
);

/// Every agent's row.
pub async fn all_agents(client: &impl GenericClient) -> Result<Vec<AgentStateRow>, QueryError> {
    let rows = client
        .query(ALL_SQL, &[])
        .await
        .map_err(db_err("reading every agent's state"))?;
    rows.iter().map(AgentStateRow::from_row).collect()
}

/// The rows of these agents (those that have one).
pub async fn some_agents(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<AgentStateRow>, QueryError> {
    let rows = client
        .query(SOME_SQL, &[&ids])
        .await
        .map_err(db_err("reading some agents' state"))?;
    rows.iter().map(AgentStateRow::from_row).collect()
}

/// The agent's row, locked `FOR UPDATE` until the transaction ends (`None`: no row yet).
pub async fn lock_agent(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<AgentStateRow>, QueryError> {
    let row = client
        .query_opt(LOCK_SQL, &[&id])
        .await
        .map_err(db_err("locking an agent's row"))?;
    row.as_ref().map(AgentStateRow::from_row).transpose()
}

/// The parameters $2..$11 of the insert and the revive, in their order.
fn report_params<'a>(report: &'a AgentReport<'a>) -> [&'a (dyn ToSql + Sync); 10] {
    [
        &report.region,
        &report.scaling_group,
        report.available_slots,
        &report.addr,
        &report.public_host,
        &report.public_key,
        &report.version,
        &report.architecture,
        report.compute_plugins,
        &report.auto_terminate_abusing_kernel,
    ]
}

/// Inserts a first-contact agent as ALIVE. An unknown scaling group fails with a foreign key
/// violation ([`QueryError::is_foreign_key_violation`]).
pub async fn insert_agent(
    client: &impl GenericClient,
    id: &str,
    report: &AgentReport<'_>,
) -> Result<u64, QueryError> {
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(report_params(report));
    client
        .execute(INSERT_SQL, &params)
        .await
        .map_err(db_err("inserting an agent"))
}

/// Makes a LOST, TERMINATED (or otherwise ended) agent ALIVE again with every reported field
/// refreshed and `lost_at` cleared.
pub async fn revive_agent(
    client: &impl GenericClient,
    id: &str,
    report: &AgentReport<'_>,
) -> Result<u64, QueryError> {
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(report_params(report));
    client
        .execute(
            "UPDATE agents SET status = 'ALIVE', status_changed = now(), lost_at = NULL, \
             region = $2, scaling_group = $3, available_slots = $4, addr = $5, \
             public_host = $6, public_key = $7, version = $8, architecture = $9, \
             compute_plugins = $10, auto_terminate_abusing_kernel = $11 WHERE id = $1",
            &params,
        )
        .await
        .map_err(db_err("reviving an agent"))
}

/// Refreshes an ALIVE agent's reported fields (the region and status stay).
pub async fn update_agent(
    client: &impl GenericClient,
    id: &str,
    report: &AgentReport<'_>,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents SET scaling_group = $2, available_slots = $3, addr = $4, \
             public_host = $5, public_key = $6, version = $7, architecture = $8, \
             compute_plugins = $9, auto_terminate_abusing_kernel = $10 WHERE id = $1",
            &[
                &id,
                &report.scaling_group,
                report.available_slots,
                &report.addr,
                &report.public_host,
                &report.public_key,
                &report.version,
                &report.architecture,
                report.compute_plugins,
                &report.auto_terminate_abusing_kernel,
            ],
        )
        .await
        .map_err(db_err("updating an agent"))
}

/// Marks an agent RESTARTING unless it is already; returns how many rows changed.
pub async fn mark_restarting(client: &impl GenericClient, id: &str) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents SET status = 'RESTARTING', status_changed = now() \
             WHERE id = $1 AND status <> 'RESTARTING'",
            &[&id],
        )
        .await
        .map_err(db_err("marking an agent restarting"))
}

/// Marks an agent `status` (LOST or TERMINATED) with `lost_at` now, unless it is LOST or
/// TERMINATED already; returns how many rows changed.
pub async fn mark_ended(
    client: &impl GenericClient,
    id: &str,
    status: AgentStatus,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents SET status = $2, status_changed = now(), lost_at = now() \
             WHERE id = $1 AND status NOT IN ('LOST', 'TERMINATED')",
            &[&id, &status],
        )
        .await
        .map_err(db_err("marking an agent lost or terminated"))
}

/// Makes a RESTARTING agent ALIVE; returns how many rows changed.
pub async fn mark_started(client: &impl GenericClient, id: &str) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE agents SET status = 'ALIVE', status_changed = now() \
             WHERE id = $1 AND status = 'RESTARTING'",
            &[&id],
        )
        .await
        .map_err(db_err("marking an agent started"))
}

/// Of these scaling group names, the ones that exist.
pub async fn existing_scaling_groups(
    client: &impl GenericClient,
    names: &[String],
) -> Result<Vec<String>, QueryError> {
    let rows = client
        .query(
            "SELECT name FROM scaling_groups WHERE name = ANY($1)",
            &[&names],
        )
        .await
        .map_err(db_err("reading which scaling groups exist"))?;
    rows.iter().map(|row| row.read(0)).collect()
}

/// Values per row of the batched first-contact insert.
const INSERT_PARAMS: usize = 11;

/// The batched first-contact insert of `rows` agents (one values tuple per agent; an id
/// another worker inserted meanwhile is skipped and not returned).
pub fn insert_agents_statement(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|index| {
            let p = |n: usize| format!("${}", index * INSERT_PARAMS + n);
            format!(
                "({}, 'ALIVE', now(), {}, {}, true, {}, '{{}}', {}, {}, {}, now(), NULL, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(10),
                p(11)
            )
        })
        .collect();
    format!(
        concat!(
            insert_columns!(),
            "VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
        values.join(", ")
    )
}

/// Inserts first-contact agents as ALIVE in one statement; returns the ids inserted. Keep
/// `agents` short enough for PostgreSQL's 65,535 parameters (11 per agent).
pub async fn insert_agents(
    client: &impl GenericClient,
    agents: &[(&str, AgentReport<'_>)],
) -> Result<Vec<String>, QueryError> {
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(agents.len() * INSERT_PARAMS);
    for (id, report) in agents {
        params.push(id);
        params.extend(report_params(report));
    }
    let rows = client
        .query(&insert_agents_statement(agents.len()), &params)
        .await
        .map_err(db_err("inserting first-contact agents"))?;
    rows.iter().map(|row| row.read(0)).collect()
}

/// Samples of the statements assembled at run time (for the prepare-every-statement test).
pub fn statements() -> Vec<String> {
    vec![insert_agents_statement(1), insert_agents_statement(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batched_insert_numbers_its_parameters_per_row() {
        let sql = insert_agents_statement(2);
        assert!(sql.contains("($1, 'ALIVE', now(), $2, $3, true, $4, '{}', $5,"));
        assert!(sql.contains("($12, 'ALIVE', now(), $13, $14, true, $15, '{}', $16,"));
        assert!(sql.ends_with("$22) ON CONFLICT (id) DO NOTHING RETURNING id"));
    }
}
