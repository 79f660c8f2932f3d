//! Typed SQL queries of the client API: keypair credentials, sessions and kernels, presets and
//! scaling groups. Each query takes a `deadpool_postgres::GenericClient` (a pooled connection
//! or a transaction) and uses cached prepared statements, so a hot query costs one round trip.

pub mod keypair;
pub mod resource;
pub mod scaling_group;

use crate::slots::{ResourceSlot, SlotError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database query failed while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{table}.{column} of {key} holds an invalid value: {reason}")]
    BadValue {
        table: &'static str,
        column: &'static str,
        key: String,
        reason: String,
    },
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
