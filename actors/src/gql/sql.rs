//! The GraphQL resolvers' side of the database: a pooled connection per request, and the
//! page a resolver asks a listing for. The SQL itself lives in the query modules of
//! `bai_schema::queries` (`session_list`, `agent_list`, ...), which assemble and run the
//! statements (`bai_schema::queries::listing`).

use bai_schema::queries::listing::PageBounds;
use deadpool_postgres::{Object, Pool};

use super::error::GqlError;

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
