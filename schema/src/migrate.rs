//! Applies the numbered SQL migrations in `schema/migrations/` and reports the revision.
//!
//! Each migration runs in its own transaction together with the row that records it, so a
//! failed migration leaves the database at the previous revision. A session-level advisory lock
//! serialises concurrent runs (two operators, or two test processes, running `schema oneshot`).

use tokio_postgres::Client;

use crate::queries::ReadColumn;

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Add new files here with the next number; never edit an applied one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_lock_fences",
        sql: include_str!("../migrations/0002_lock_fences.sql"),
    },
    Migration {
        version: 3,
        name: "0003_scheduling",
        sql: include_str!("../migrations/0003_scheduling.sql"),
    },
    Migration {
        version: 4,
        name: "0004_error_logs",
        sql: include_str!("../migrations/0004_error_logs.sql"),
    },
];

/// The advisory lock key that serialises migration runs ("baischem" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6261_6973_6368_656d;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "the database is at revision {found}, newer than this bai-manager knows ({head}); upgrade bai-manager"
    )]
    TooNew { found: i32, head: i32 },
    #[error(transparent)]
    Decode(#[from] crate::queries::DecodeError),
}

fn db_err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let context = context.into();
    move |source| MigrateError::Database { context, source }
}

/// What `apply_all` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub previous: Option<i32>,
    pub applied: Vec<&'static str>,
    pub head: i32,
}

/// The newest migration this binary carries.
pub fn head_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The name of a migration version, e.g. `0001_initial`.
pub fn version_name(version: i32) -> Option<&'static str> {
    MIGRATIONS
        .iter()
        .find(|m| m.version == version)
        .map(|m| m.name)
}

const CREATE_HISTORY: &str = "CREATE TABLE IF NOT EXISTS bai_schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

/// The current revision, or `None` on a database that bai-manager never migrated.
pub async fn current_version(client: &Client) -> Result<Option<i32>, MigrateError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('public.bai_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_err("checking for the migration history table"))?
        .decode(0)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM bai_schema_migrations", &[])
        .await
        .map_err(db_err("reading the migration history"))?;
    Ok(row.decode::<_, Option<i32>>(0)?)
}

/// Applies every pending migration. Running it again on an up-to-date database changes nothing.
pub async fn apply_all(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(db_err("taking the migration lock"))?;
    let result = apply_all_locked(client).await;
    // The lock is session-scoped; release it even when a migration failed.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(db_err("releasing the migration lock"));
    let report = result?;
    unlock?;
    Ok(report)
}

async fn apply_all_locked(client: &mut Client) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(CREATE_HISTORY)
        .await
        .map_err(db_err("creating the migration history table"))?;
    let previous = current_version(client).await?;
    let head = head_version();
    if let Some(found) = previous
        && found > head
    {
        return Err(MigrateError::TooNew { found, head });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| previous.is_none_or(|p| m.version > p))
    {
        let tx = client
            .transaction()
            .await
            .map_err(db_err("starting a migration transaction"))?;
        tx.batch_execute(migration.sql)
            .await
            .map_err(db_err(format!("applying migration {}", migration.name)))?;
        tx.execute(
            "INSERT INTO bai_schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(db_err(format!("recording migration {}", migration.name)))?;
        tx.commit()
            .await
            .map_err(db_err(format!("committing migration {}", migration.name)))?;
        applied.push(migration.name);
    }
    Ok(MigrationReport {
        previous,
        applied,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{}", migration.name);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version)),
                "{} must start with its zero-padded number",
                migration.name
            );
        }
        assert_eq!(head_version(), MIGRATIONS.len() as i32);
    }
}
