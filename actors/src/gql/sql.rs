//! Building parameterized SQL for the GraphQL resolvers: numbered placeholders with their bound
//! values, `WHERE` conditions joined with `AND`, and running a statement through the prepared
//! statement cache of the pooled connection.
//!
//! Every value that comes from a request is bound as a parameter; only static column
//! expressions from this module's callers are ever spliced into the SQL text.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::error::GqlError;

/// One bound value.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// The values bound to `$1..$n` of one statement.
#[derive(Default)]
pub struct SqlParams {
    values: Vec<Param>,
}

impl SqlParams {
    pub fn new() -> SqlParams {
        SqlParams::default()
    }

    /// Binds `value` and returns its placeholder (`$n`).
    pub fn push<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values in the form `tokio_postgres` takes them.
    pub fn as_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `WHERE` conditions, joined with `AND`.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    terms: Vec<String>,
}

impl Conditions {
    pub fn new() -> Conditions {
        Conditions::default()
    }

    pub fn add(&mut self, term: impl Into<String>) {
        self.terms.push(term.into());
    }

    /// `WHERE a AND b`, or an empty string when there is no condition.
    pub fn where_clause(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(
                "WHERE {}",
                self.terms
                    .iter()
                    .map(|t| format!("({t})"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut params = SqlParams::new();
        assert_eq!(params.push("a".to_owned()), "$1");
        assert_eq!(params.push(2_i64), "$2");
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn conditions_join_with_and() {
        let mut conditions = Conditions::new();
        assert_eq!(conditions.where_clause(), "");
        conditions.add("a = $1");
        conditions.add("b OR c");
        assert_eq!(conditions.where_clause(), "WHERE (a = $1) AND (b OR c)");
    }
}
