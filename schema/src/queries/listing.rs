//! Parameterized list queries (the GraphQL resolvers' lists): numbered placeholders with their
//! bound values, `WHERE` conditions joined with `AND`, and a page plus its total count run in
//! one round trip. The per-domain list modules (`session_list`, `agent_list`, ...) compile a
//! client's filter and ordering with `crate::minilang` over their field maps and build a
//! [`Listing`]; this module assembles and runs the statements.
//!
//! Every value that comes from a request is bound as a parameter; only static column
//! expressions of the callers are ever spliced into the SQL text.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{QueryError, ReadColumn, db_err};

/// A page of a list: at most `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBounds {
    pub limit: i64,
    pub offset: i64,
}

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
        self.prefix_refs(self.values.len())
    }

    /// The first `count` values (for a statement that uses only the leading placeholders).
    pub fn prefix_refs(&self, count: usize) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .take(count)
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

/// One list query: the rows of a page and the total count, from the same conditions.
pub struct Listing {
    /// `SELECT <columns> FROM <tables> WHERE <conditions>`, without ordering or limits.
    pub select: String,
    /// `SELECT count(*) FROM <tables> WHERE <conditions>`.
    pub count: String,
    /// The `ORDER BY` terms (without the keywords).
    pub order_by: String,
    pub params: SqlParams,
    /// Whether the statement text comes from a bounded set (no user filter or ordering), so it
    /// may live in the connection's prepared-statement cache. A user's filter gives statement
    /// texts without bound; those are prepared for one use only.
    pub cacheable: bool,
}

impl Listing {
    /// The page statement (`… ORDER BY … LIMIT $n OFFSET $n+1` when `paged`) and the count
    /// statement, as [`Listing::fetch`] sends them. The prepare-every-statement test prepares
    /// these for each list module.
    pub fn statements(&self, paged: bool) -> (String, String) {
        let mut items_sql = format!("{} ORDER BY {}", self.select, self.order_by);
        if paged {
            let limit = self.params.len() + 1;
            let offset = limit + 1;
            items_sql.push_str(&format!(" LIMIT ${limit} OFFSET ${offset}"));
        }
        (items_sql, self.count.clone())
    }

    /// Runs the page and the count in one round trip (pipelined on the connection); each is
    /// skipped when the query did not select it.
    pub async fn fetch<P: Into<PageBounds>>(
        mut self,
        client: &impl GenericClient,
        page: Option<P>,
        want_rows: bool,
        want_count: bool,
    ) -> Result<(Vec<Row>, i64), QueryError> {
        let condition_params = self.params.len();
        let (items_sql, _) = self.statements(page.is_some());
        if let Some(page) = page {
            let page: PageBounds = page.into();
            self.params.push(page.limit);
            self.params.push(page.offset);
        }
        let items_params = self.params.as_refs();
        let count_params = self.params.prefix_refs(condition_params);
        let rows = async {
            if !want_rows {
                return Ok(Vec::new());
            }
            if self.cacheable {
                let statement = client.prepare_cached(&items_sql).await?;
                client.query(&statement, &items_params).await
            } else {
                client.query(items_sql.as_str(), &items_params).await
            }
        };
        let count = async {
            if !want_count {
                return Ok(None);
            }
            let row = if self.cacheable {
                let statement = client.prepare_cached(&self.count).await?;
                client.query_one(&statement, &count_params).await?
            } else {
                client.query_one(self.count.as_str(), &count_params).await?
            };
            Ok(Some(row))
        };
        let (rows, count) = futures::try_join!(rows, count).map_err(db_err("listing rows"))?;
        let count = match count {
            None => 0,
            Some(row) => row.read::<_, i64>(0)?,
        };
        Ok((rows, count))
    }

    /// [`Listing::fetch`], with each row decoded by `decode`.
    pub async fn fetch_as<T, P: Into<PageBounds>>(
        self,
        client: &impl GenericClient,
        page: Option<P>,
        want_rows: bool,
        want_count: bool,
        decode: impl Fn(&Row) -> Result<T, QueryError>,
    ) -> Result<(Vec<T>, i64), QueryError> {
        let (rows, count) = self.fetch(client, page, want_rows, want_count).await?;
        let items = rows.iter().map(decode).collect::<Result<Vec<T>, _>>()?;
        Ok((items, count))
    }
}

/// A condition that `column` (of PostgreSQL enum type `pg_type`) is one of `labels`, bound as
/// one text array and converted once per statement (see `crate::minilang::compile`).
pub fn enum_in(column: &str, pg_type: &str, labels: Vec<String>, params: &mut SqlParams) -> String {
    format!(
        "{column} = ANY(ARRAY(SELECT unnest({}::text[])::{pg_type}))",
        params.push(labels)
    )
}

/// Runs a fixed-shape statement through the connection's prepared-statement cache and decodes
/// every row.
pub async fn query_as<T>(
    client: &impl GenericClient,
    sql: &str,
    params: &SqlParams,
    context: &'static str,
    decode: impl Fn(&Row) -> Result<T, QueryError>,
) -> Result<Vec<T>, QueryError> {
    let statement = client.prepare_cached(sql).await.map_err(db_err(context))?;
    let rows = client
        .query(&statement, &params.as_refs())
        .await
        .map_err(db_err(context))?;
    rows.iter().map(decode).collect()
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
    fn a_page_binds_limit_and_offset_after_the_conditions() {
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("a.x = {}", params.push(1_i32)));
        let listing = Listing {
            select: format!("SELECT a.x FROM a {}", conditions.where_clause()),
            count: format!("SELECT count(*) FROM a {}", conditions.where_clause()),
            order_by: "a.x".to_owned(),
            params,
            cacheable: true,
        };
        assert_eq!(
            listing.statements(true),
            (
                "SELECT a.x FROM a WHERE (a.x = $1) ORDER BY a.x LIMIT $2 OFFSET $3".to_owned(),
                "SELECT count(*) FROM a WHERE (a.x = $1)".to_owned()
            )
        );
        assert_eq!(
            listing.statements(false).0,
            "SELECT a.x FROM a WHERE (a.x = $1) ORDER BY a.x"
        );
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
