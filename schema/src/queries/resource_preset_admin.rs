//! Resource presets as the admin API (GraphQL `resource_preset(s)` and their mutations) reads
//! and writes them: the slots as stored (JSON), create, modify and delete. The client API's
//! view (slots parsed) is `resource::list_presets`.

use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::{QueryError, ReadColumn, db_err};

/// One resource preset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetRow {
    pub name: String,
    pub resource_slots: Value,
    pub shared_memory: Option<i64>,
}

impl PresetRow {
    fn from_row(row: &Row) -> Result<PresetRow, QueryError> {
        Ok(PresetRow {
            name: row.read("name")?,
            resource_slots: row.read("resource_slots")?,
            shared_memory: row.read("shared_memory")?,
        })
    }
}

/// The preset named `name` (every preset when `None`), by name.
pub async fn list_presets(
    client: &impl GenericClient,
    name: Option<&str>,
) -> Result<Vec<PresetRow>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT name, resource_slots, shared_memory FROM resource_presets \
             WHERE ($1::text IS NULL OR name = $1::text) ORDER BY name",
        )
        .await
        .map_err(db_err("preparing the resource preset list"))?;
    client
        .query(&statement, &[&name])
        .await
        .map_err(db_err("listing resource presets"))?
        .iter()
        .map(PresetRow::from_row)
        .collect()
}

/// Inserts a preset and returns it.
pub async fn insert_preset(
    client: &impl GenericClient,
    preset: &PresetRow,
) -> Result<Option<PresetRow>, QueryError> {
    client
        .query_opt(
            "INSERT INTO resource_presets (name, resource_slots, shared_memory) \
             VALUES ($1, $2, $3) RETURNING name, resource_slots, shared_memory",
            &[&preset.name, &preset.resource_slots, &preset.shared_memory],
        )
        .await
        .map_err(db_err("creating a resource preset"))?
        .as_ref()
        .map(PresetRow::from_row)
        .transpose()
}

/// The changes of `modify_resource_preset`: a `None` field keeps its value;
/// `shared_memory: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresetChanges {
    pub resource_slots: Option<Value>,
    pub shared_memory: Option<Option<i64>>,
}

/// Applies `changes` to the preset `name`; whether it exists (no change at all succeeds when
/// it does).
pub async fn update_preset(
    client: &impl GenericClient,
    name: &str,
    changes: &PresetChanges,
) -> Result<bool, QueryError> {
    let sets_shared_memory = changes.shared_memory.is_some();
    let shared_memory = changes.shared_memory.flatten();
    let updated = client
        .execute(
            "UPDATE resource_presets SET \
                 resource_slots = coalesce($2::jsonb, resource_slots), \
                 shared_memory = CASE WHEN $3::bool THEN $4::int8 ELSE shared_memory END \
             WHERE name = $1",
            &[
                &name,
                &changes.resource_slots,
                &sets_shared_memory,
                &shared_memory,
            ],
        )
        .await
        .map_err(db_err("modifying a resource preset"))?;
    Ok(updated > 0)
}

/// Deletes the preset `name`; whether it existed.
pub async fn delete_preset(client: &impl GenericClient, name: &str) -> Result<bool, QueryError> {
    let deleted = client
        .execute("DELETE FROM resource_presets WHERE name = $1", &[&name])
        .await
        .map_err(db_err("deleting a resource preset"))?;
    Ok(deleted > 0)
}
