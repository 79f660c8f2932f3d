//! Groups (projects) as the client API looks them up: membership, the names of a domain's
//! active groups, and a group's id by name.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// Whether `user` belongs to the group `group_id`.
pub async fn is_group_member(
    client: &impl GenericClient,
    group_id: Uuid,
    user: Uuid,
) -> Result<bool, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT 1 FROM association_groups_users WHERE group_id = $1 AND user_id = $2",
        )
        .await
        .map_err(db_err("preparing the group membership check"))?;
    Ok(client
        .query_opt(&statement, &[&group_id, &user])
        .await
        .map_err(db_err("checking the group membership"))?
        .is_some())
}

/// The names of the active groups of `domain` (if the domain is active), sorted.
pub async fn active_group_names(
    client: &impl GenericClient,
    domain: &str,
) -> Result<Vec<String>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT g.name FROM groups g JOIN domains d ON g.domain_name = d.name
             WHERE d.name = $1 AND d.is_active AND g.is_active ORDER BY g.name",
        )
        .await
        .map_err(db_err("preparing the domain's group list"))?;
    client
        .query(&statement, &[&domain])
        .await
        .map_err(db_err("listing the domain's groups"))?
        .iter()
        .map(|row| row.read(0))
        .collect()
}

/// The id of a group named `name`, preferring one of `preferred_domain`.
pub async fn find_group_id_by_name(
    client: &impl GenericClient,
    name: &str,
    preferred_domain: &str,
) -> Result<Option<Uuid>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT id FROM groups WHERE name = $1 ORDER BY (domain_name = $2) DESC LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the group lookup"))?;
    client
        .query_opt(&statement, &[&name, &preferred_domain])
        .await
        .map_err(db_err("looking up the group"))?
        .map(|row| row.read(0))
        .transpose()
}
