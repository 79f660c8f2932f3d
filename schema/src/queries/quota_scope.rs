//! Who a quota scope belongs to: the domain of its user or project, for the access check of the
//! 23.09 `quota_scope` GraphQL field and its mutations.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, db_err};

/// The domain of user `user`, or `None` when there is no such user.
pub async fn user_domain(
    client: &impl GenericClient,
    user: Uuid,
) -> Result<Option<String>, QueryError> {
    let row = client
        .query_opt("SELECT domain_name FROM users WHERE uuid = $1", &[&user])
        .await
        .map_err(db_err("looking up the domain of a user"))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(db_err("reading the domain of a user"))
}

/// The domain of project `project`, or `None` when there is no such project.
pub async fn project_domain(
    client: &impl GenericClient,
    project: Uuid,
) -> Result<Option<String>, QueryError> {
    let row = client
        .query_opt("SELECT domain_name FROM groups WHERE id = $1", &[&project])
        .await
        .map_err(db_err("looking up the domain of a project"))?;
    row.map(|row| row.try_get(0))
        .transpose()
        .map_err(db_err("reading the domain of a project"))
}
