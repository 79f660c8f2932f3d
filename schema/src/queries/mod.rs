//! Typed SQL queries of the client API: keypair credentials, sessions and kernels, presets and
//! scaling groups. Each query takes a `deadpool_postgres::GenericClient` (a pooled connection
//! or a transaction) and uses cached prepared statements, so a hot query costs one round trip.

pub mod agent_admin;
pub mod agent_heartbeat;
pub mod agent_list;
pub mod agent_summary_list;
pub mod container_list;
pub mod domain_admin;
pub mod dotfiles;
pub mod error_logs;
pub mod group;
pub mod group_admin;
pub mod idle;
pub mod image;
pub mod interaction;
pub mod kernel_agent;
pub mod kernel_lifecycle;
pub mod kernel_stats;
pub mod keypair;
pub mod keypair_admin;
pub mod keypair_list;
pub mod listing;
pub mod quota_scope;
pub mod resource;
pub mod resource_policy_admin;
pub mod resource_preset_admin;
pub mod scaling_group;
pub mod scaling_group_admin;
pub mod scheduler_dispatch;
pub mod scheduler_load;
pub mod scheduler_reconcile;
pub mod scheduler_reserve;
pub mod session;
pub mod session_destroy;
pub mod session_enqueue;
pub mod session_list;
pub mod session_template;
pub mod signup;
pub mod usage;
pub mod user_admin;
pub mod user_list;
pub mod user_self;
pub mod vfolder;
pub mod vfolder_list;
pub mod vfolder_permission_list;
pub mod vfolder_sharing;

use crate::slots::{ResourceSlot, SlotError};

/// The statements the query modules assemble at compile time from shared column lists
/// (`concat!`), which a scan of the sources for literal statements does not see: the
/// prepare-every-statement test prepares these too.
pub fn assembled_statements() -> Vec<&'static str> {
    [
        agent_heartbeat::STATEMENTS,
        domain_admin::STATEMENTS,
        group_admin::STATEMENTS,
        keypair_admin::STATEMENTS,
        resource_policy_admin::STATEMENTS,
        scaling_group_admin::STATEMENTS,
        scheduler_load::STATEMENTS,
    ]
    .concat()
}

/// The statements the list modules assemble at run time (a read by id, a page and its count
/// without and with a client's filter and ordering), and samples of the other statements
/// assembled at run time (a batched insert), for the prepare-every-statement test.
pub fn list_statements() -> Result<Vec<String>, crate::minilang::MinilangError> {
    Ok([
        agent_list::statements()?,
        agent_summary_list::statements()?,
        container_list::statements()?,
        keypair_list::statements()?,
        session_list::statements()?,
        user_list::statements()?,
        vfolder_list::statements()?,
        vfolder_permission_list::statements()?,
        agent_heartbeat::statements(),
    ]
    .concat())
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database query failed while {context}: {}", describe(source))]
    Db {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A column could not be read as the type the code expects: the schema drifted from the
    /// code (a renamed column, a changed type, a NULL where none was expected).
    #[error("cannot read column {column} of a row: {source}")]
    Decode {
        column: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{table}.{column} of {key} holds an invalid value: {reason}")]
    BadValue {
        table: &'static str,
        column: &'static str,
        key: String,
        reason: String,
    },
}

/// The server's message when there is one ("db error" alone says nothing).
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl QueryError {
    fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            QueryError::Db { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The constraint a failed statement violated, if the database named one.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            QueryError::Db { source, .. } => source.as_db_error().and_then(|e| e.constraint()),
            _ => None,
        }
    }

    /// A unique constraint or index was violated (e.g. a live session of the same name).
    pub fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    }

    /// A foreign key was violated (e.g. a kernel assigned to an unknown agent).
    pub fn is_foreign_key_violation(&self) -> bool {
        self.sql_state() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    }
}

/// A column that could not be read as the type the code expects: the schema drifted from the
/// code (a renamed column, a changed type, a NULL where none was expected). Modules with their
/// own error enum wrap it (`#[from] DecodeError`); the query modules turn it into
/// [`QueryError::Decode`].
#[derive(Debug, thiserror::Error)]
#[error("cannot read column {column} of a row: {source}")]
pub struct DecodeError {
    pub column: String,
    #[source]
    pub source: tokio_postgres::Error,
}

impl From<DecodeError> for QueryError {
    fn from(error: DecodeError) -> Self {
        QueryError::Decode {
            column: error.column,
            source: error.source,
        }
    }
}

/// Reads a column without panicking: `row.read("name")?` (a [`QueryError`]) or
/// `row.decode("name")?` (a [`DecodeError`], for modules with their own error enum) instead of
/// `row.get("name")`, which panics when the schema drifted from the code. `Row::get` is a
/// disallowed method (`clippy.toml`).
pub trait ReadColumn {
    fn decode<'a, I, T>(&'a self, index: I) -> Result<T, DecodeError>
    where
        I: tokio_postgres::row::RowIndex + std::fmt::Display + Copy,
        T: postgres_types::FromSql<'a>;

    fn read<'a, I, T>(&'a self, index: I) -> Result<T, QueryError>
    where
        I: tokio_postgres::row::RowIndex + std::fmt::Display + Copy,
        T: postgres_types::FromSql<'a>,
    {
        Ok(self.decode(index)?)
    }
}

impl ReadColumn for tokio_postgres::Row {
    fn decode<'a, I, T>(&'a self, index: I) -> Result<T, DecodeError>
    where
        I: tokio_postgres::row::RowIndex + std::fmt::Display + Copy,
        T: postgres_types::FromSql<'a>,
    {
        self.try_get(index).map_err(|source| DecodeError {
            column: index.to_string(),
            source,
        })
    }
}

/// Builds the `map_err` closure that names what was being done.
pub(crate) fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> QueryError {
    move |source| QueryError::Db { context, source }
}

/// Reads a ResourceSlot JSONB column, naming the row on error.
pub(crate) fn slots_column(
    value: &serde_json::Value,
    table: &'static str,
    column: &'static str,
    key: &str,
) -> Result<ResourceSlot, QueryError> {
    ResourceSlot::from_json(value).map_err(|e: SlotError| QueryError::BadValue {
        table,
        column,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}
