//! The msgpack-packed dotfile lists of keypairs, projects (groups) and domains
//! (`dotfiles bytea` on each table), the keypair's bootstrap script, and the lookups the
//! dotfile routes need to find a project and check membership.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, db_err};

/// Whose dotfiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotfileOwner<'a> {
    Keypair(&'a str),
    Group(Uuid),
    Domain(&'a str),
}

impl DotfileOwner<'_> {
    fn select_sql(self, lock: bool) -> &'static str {
        match (self, lock) {
            (DotfileOwner::Keypair(_), false) => {
                "SELECT dotfiles FROM keypairs WHERE access_key = $1"
            }
            (DotfileOwner::Keypair(_), true) => {
                "SELECT dotfiles FROM keypairs WHERE access_key = $1 FOR UPDATE"
            }
            (DotfileOwner::Group(_), false) => "SELECT dotfiles FROM groups WHERE id = $1",
            (DotfileOwner::Group(_), true) => {
                "SELECT dotfiles FROM groups WHERE id = $1 FOR UPDATE"
            }
            (DotfileOwner::Domain(_), false) => "SELECT dotfiles FROM domains WHERE name = $1",
            (DotfileOwner::Domain(_), true) => {
                "SELECT dotfiles FROM domains WHERE name = $1 FOR UPDATE"
            }
        }
    }

    fn update_sql(self) -> &'static str {
        match self {
            DotfileOwner::Keypair(_) => "UPDATE keypairs SET dotfiles = $2 WHERE access_key = $1",
            DotfileOwner::Group(_) => "UPDATE groups SET dotfiles = $2 WHERE id = $1",
            DotfileOwner::Domain(_) => "UPDATE domains SET dotfiles = $2 WHERE name = $1",
        }
    }
}

/// The packed dotfiles of `owner` (`None` when the owner does not exist; an empty vector for
/// a NULL column). `lock` holds the row for the rest of the transaction.
pub async fn read_dotfiles(
    client: &impl GenericClient,
    owner: DotfileOwner<'_>,
    lock: bool,
) -> Result<Option<Vec<u8>>, QueryError> {
    let sql = owner.select_sql(lock);
    let row = match owner {
        DotfileOwner::Keypair(key) | DotfileOwner::Domain(key) => {
            client.query_opt(sql, &[&key]).await
        }
        DotfileOwner::Group(id) => client.query_opt(sql, &[&id]).await,
    }
    .map_err(db_err("reading dotfiles"))?;
    row.map(|row| {
        row.try_get::<_, Option<Vec<u8>>>(0)
            .map(Option::unwrap_or_default)
    })
    .transpose()
    .map_err(db_err("reading dotfiles"))
}

/// Stores the packed dotfiles of `owner`.
pub async fn write_dotfiles(
    client: &impl GenericClient,
    owner: DotfileOwner<'_>,
    packed: &[u8],
) -> Result<(), QueryError> {
    let sql = owner.update_sql();
    match owner {
        DotfileOwner::Keypair(key) | DotfileOwner::Domain(key) => {
            client.execute(sql, &[&key, &packed]).await
        }
        DotfileOwner::Group(id) => client.execute(sql, &[&id, &packed]).await,
    }
    .map_err(db_err("writing dotfiles"))?;
    Ok(())
}

/// Stores the bootstrap script of `access_key`.
pub async fn write_bootstrap_script(
    client: &impl GenericClient,
    access_key: &str,
    script: &str,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE keypairs SET bootstrap_script = $2 WHERE access_key = $1",
            &[&access_key, &script],
        )
        .await
        .map_err(db_err("writing a bootstrap script"))?;
    Ok(())
}

/// A project found by id (with its domain) or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: Uuid,
    pub domain_name: String,
}

/// The project `id`, or the project named `name` in `domain`.
pub async fn find_project(
    client: &impl GenericClient,
    id: Option<Uuid>,
    name: Option<&str>,
    domain: Option<&str>,
) -> Result<Option<ProjectRef>, QueryError> {
    let row = client
        .query_opt(
            "SELECT id, domain_name FROM groups \
             WHERE ($1::uuid IS NOT NULL AND id = $1) \
                OR ($1::uuid IS NULL AND name = $2 AND domain_name = $3) LIMIT 1",
            &[&id, &name, &domain],
        )
        .await
        .map_err(db_err("looking up a project"))?;
    row.map(|row| {
        Ok(ProjectRef {
            id: row.try_get(0)?,
            domain_name: row.try_get(1)?,
        })
    })
    .transpose()
    .map_err(db_err("reading a project"))
}

/// Whether `user` belongs to project `group`.
pub async fn is_project_member(
    client: &impl GenericClient,
    group: Uuid,
    user: Uuid,
) -> Result<bool, QueryError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM association_groups_users WHERE group_id = $1 AND user_id = $2",
            &[&group, &user],
        )
        .await
        .map_err(db_err("checking a project membership"))?;
    Ok(row.is_some())
}
