//! Running the GraphQL resolvers' SQL: a pooled connection per request and statements through
//! its prepared-statement cache. The statement assembly (placeholders, conditions, a listing's
//! page and count) lives in `bai_schema::queries::listing`, re-exported here; the resolvers
//! hand it the column expressions their filter and ordering map to.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;

use super::error::GqlError;

pub use bai_schema::queries::listing::{Conditions, Listing, PageBounds, Param, SqlParams};

impl From<super::pagination::Page> for PageBounds {
    fn from(page: super::pagination::Page) -> PageBounds {
        PageBounds {
            limit: page.limit,
            offset: page.offset,
        }
    }
}

/// A pooled connection for one GraphQL request.
pub async fn connection(pool: &Pool) -> Result<Object, GqlError> {
    pool.get()
        .await
        .map_err(|e| GqlError::Database(format!("no database connection: {e}")))
}

/// Runs a query through the connection's prepared-statement cache.
pub async fn query(client: &Object, sql: &str, params: &SqlParams) -> Result<Vec<Row>, GqlError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, &params.as_refs()).await?)
}

/// Runs a query that returns at most one row.
pub async fn query_opt(
    client: &Object,
    sql: &str,
    params: &SqlParams,
) -> Result<Option<Row>, GqlError> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&statement, &params.as_refs()).await?)
}

/// Runs a statement that returns at most one row, keeping the database error as it is (for
/// mutations, which report it in their `msg`).
pub async fn query_opt_raw(
    client: &Object,
    sql: &str,
    params: &SqlParams,
) -> Result<Option<Row>, tokio_postgres::Error> {
    client.query_opt(sql, &params.as_refs()).await
}

/// Runs a `SELECT count(*)` and returns the count.
pub async fn count(client: &Object, sql: &str, params: &SqlParams) -> Result<i64, GqlError> {
    let statement = client.prepare_cached(sql).await?;
    let row = client.query_one(&statement, &params.as_refs()).await?;
    Ok(row.try_get::<_, i64>(0)?)
}
