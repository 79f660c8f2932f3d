//! Virtual folders: the folders a user can reach (owned, shared with them, of their groups)
//! as the original's `query_accessible_vfolders`, the inputs of the host-permission check,
//! and the row changes of create, rename and delete.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};
use crate::enums::{UserRole, VFolderOwnershipType, VFolderPermission, VFolderUsageMode};

/// `vfolders.status` values (23.09's `VFolderOperationStatus`).
pub mod status {
    pub const READY: &str = "ready";
    pub const PERFORMING: &str = "performing";
    pub const CLONING: &str = "cloning";
    pub const DELETING: &str = "deleting";
    pub const MOUNTED: &str = "mounted";

    /// Statuses in which a folder may be read (listed, mounted, downloaded from).
    pub const READABLE: &[&str] = &[READY, PERFORMING, CLONING, DELETING, MOUNTED];
    /// Statuses in which a folder may be changed.
    pub const UPDATABLE: &[&str] = &[READY, MOUNTED];
    /// Statuses in which a folder may be deleted.
    pub const DELETABLE: &[&str] = &[READY];
}

/// A folder as a user reaches it: the row plus how (owner or not, with which permission).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessibleVFolder {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub domain_name: String,
    pub quota_scope_id: Option<String>,
    pub usage_mode: VFolderUsageMode,
    pub max_files: i32,
    pub max_size: Option<i32>,
    pub num_files: i32,
    pub cur_size: i32,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub creator: Option<String>,
    pub unmanaged_path: Option<String>,
    pub ownership_type: VFolderOwnershipType,
    pub user: Option<Uuid>,
    pub group: Option<Uuid>,
    pub cloneable: bool,
    pub status: String,
    /// The permission this user has: the folder's own for owned and group folders (a
    /// per-user grant overrides it for group folders), the grant's for shared folders.
    pub permission: Option<VFolderPermission>,
    /// The original's `is_owner`: owned user folders, and group folders for admins.
    pub is_owner: bool,
    /// The owner's email for user folders.
    pub user_email: Option<String>,
    /// The group's name for group folders.
    pub group_name: Option<String>,
}

/// Which names to match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NameFilter<'a> {
    Any,
    Exact(&'a str),
    /// The names, plus every dot-prefixed folder (which sessions mount automatically).
    OneOfOrDotted(&'a [String]),
}

/// How groups count for the caller: an admin reaches the groups of the domain, a superadmin
/// every group, others the groups they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupScope {
    Domain,
    Member,
    All,
}

impl GroupScope {
    fn as_str(self) -> &'static str {
        match self {
            GroupScope::Domain => "admin",
            GroupScope::Member => "member",
            GroupScope::All => "all",
        }
    }
}

/// The arguments of [`accessible_vfolders`], as `query_accessible_vfolders` takes them.
#[derive(Debug, Clone)]
pub struct AccessQuery<'a> {
    pub user: Uuid,
    pub role: UserRole,
    pub domain_name: &'a str,
    /// The enabled folder types (`volumes/_types`).
    pub allowed_types: &'a [String],
    pub names: NameFilter<'a>,
    /// Admins and superadmins see every user's folders (`allow_privileged_access`).
    pub privileged: bool,
    /// Only this group's folders, plus every user folder (`GET /folders?group_id=`).
    pub group: Option<Uuid>,
    /// Shared folders only with one of these grants.
    pub invited_permissions: Option<&'a [VFolderPermission]>,
    /// Group folders only with one of these permissions (the original applies this to
    /// non-admin keypairs).
    pub group_permissions: Option<&'a [VFolderPermission]>,
}

impl<'a> AccessQuery<'a> {
    pub fn new(
        user: Uuid,
        role: UserRole,
        domain_name: &'a str,
        allowed_types: &'a [String],
    ) -> AccessQuery<'a> {
        AccessQuery {
            user,
            role,
            domain_name,
            allowed_types,
            names: NameFilter::Any,
            privileged: false,
            group: None,
            invited_permissions: None,
            group_permissions: None,
        }
    }
}

const VFOLDER_COLUMNS: &str = r#"c.id, c.name, c.host, c.domain_name, c.quota_scope_id, c.usage_mode,
    c.max_files, c.max_size, c.num_files, c.cur_size, c.created_at, c.last_used, c.creator,
    c.unmanaged_path, c.ownership_type, c."user", c."group", c.cloneable, c.status"#;

fn accessible_sql() -> String {
    format!(
        r#"
WITH member_groups AS (
    SELECT id AS group_id FROM groups WHERE $6 = 'admin' AND domain_name = $2
    UNION
    SELECT group_id FROM association_groups_users WHERE $6 <> 'admin' AND user_id = $1
),
candidates AS (
    SELECT * FROM vfolders v
    WHERE ($8 = 0 OR ($8 = 1 AND v.name = $9)
           OR ($8 = 2 AND (v.name = ANY($10) OR v.name LIKE '.%')))
      AND ($11::uuid IS NULL OR v."group" = $11 OR v."user" IS NOT NULL)
)
SELECT {cols}, c.permission AS effective_permission, TRUE AS is_owner,
       u.email AS user_email, NULL::varchar AS group_name, 0 AS part
FROM candidates c JOIN users u ON c."user" = u.uuid
WHERE $3 AND ($5 OR c."user" = $1)
UNION ALL
SELECT {cols}, vp.permission, FALSE, u.email, NULL::varchar, 1
FROM candidates c
JOIN vfolder_permissions vp ON vp.vfolder = c.id
LEFT JOIN users u ON c."user" = u.uuid
WHERE $3 AND vp."user" = $1 AND c.ownership_type = 'user'
  AND ($12::text[] IS NULL OR vp.permission::text = ANY($12))
UNION ALL
SELECT {cols}, COALESCE(ovr.permission, c.permission), $7::boolean, NULL::varchar, g.name, 2
FROM candidates c
JOIN groups g ON c."group" = g.id
LEFT JOIN vfolder_permissions ovr
       ON ovr.vfolder = c.id AND ovr."user" = $1
      AND c."group" IN (SELECT group_id FROM member_groups)
WHERE $4 AND ($6 = 'all' OR c."group" IN (SELECT group_id FROM member_groups))
  AND ($13::text[] IS NULL OR c.permission::text = ANY($13))
ORDER BY part, created_at
"#,
        cols = VFOLDER_COLUMNS
    )
}

fn permission_texts(permissions: Option<&[VFolderPermission]>) -> Option<Vec<String>> {
    permissions.map(|list| list.iter().map(|p| p.as_str().to_owned()).collect())
}

/// The folders `query` reaches: owned ones, shared ones, then group ones, each oldest first.
pub async fn accessible_vfolders(
    client: &impl GenericClient,
    query: &AccessQuery<'_>,
) -> Result<Vec<AccessibleVFolder>, QueryError> {
    let include_user = query.allowed_types.iter().any(|t| t == "user");
    let include_group = query.allowed_types.iter().any(|t| t == "group");
    let is_admin_role = matches!(query.role, UserRole::Admin | UserRole::Superadmin);
    let see_all_user_folders = query.privileged && is_admin_role;
    let group_scope = match query.role {
        UserRole::Admin => GroupScope::Domain,
        UserRole::Superadmin => GroupScope::All,
        _ => GroupScope::Member,
    };
    let (name_mode, name, names): (i32, &str, &[String]) = match query.names {
        NameFilter::Any => (0, "", &[]),
        NameFilter::Exact(name) => (1, name, &[]),
        NameFilter::OneOfOrDotted(names) => (2, "", names),
    };
    let invited = permission_texts(query.invited_permissions);
    let group_perms = permission_texts(query.group_permissions);
    let statement = client
        .prepare_cached(&accessible_sql())
        .await
        .map_err(db_err("preparing the accessible-vfolders query"))?;
    let rows = client
        .query(
            &statement,
            &[
                &query.user,
                &query.domain_name,
                &include_user,
                &include_group,
                &see_all_user_folders,
                &group_scope.as_str(),
                &is_admin_role,
                &name_mode,
                &name,
                &names,
                &query.group,
                &invited,
                &group_perms,
            ],
        )
        .await
        .map_err(db_err("querying accessible vfolders"))?;
    rows.iter().map(accessible_from_row).collect()
}

fn accessible_from_row(row: &tokio_postgres::Row) -> Result<AccessibleVFolder, QueryError> {
    Ok(AccessibleVFolder {
        id: row.read("id")?,
        name: row.read("name")?,
        host: row.read("host")?,
        domain_name: row.read("domain_name")?,
        quota_scope_id: row.read("quota_scope_id")?,
        usage_mode: row.read("usage_mode")?,
        max_files: row.read("max_files")?,
        max_size: row.read("max_size")?,
        num_files: row.read("num_files")?,
        cur_size: row.read("cur_size")?,
        created_at: row.read("created_at")?,
        last_used: row.read("last_used")?,
        creator: row.read("creator")?,
        unmanaged_path: row.read("unmanaged_path")?,
        ownership_type: row.read("ownership_type")?,
        user: row.read("user")?,
        group: row.read("group")?,
        cloneable: row.read("cloneable")?,
        status: row.read("status")?,
        permission: row.read("effective_permission")?,
        is_owner: row.read("is_owner")?,
        user_email: row.read("user_email")?,
        group_name: row.read("group_name")?,
    })
}

/// How many folders `user` owns (for `max_vfolder_count`).
pub async fn count_owned(client: &impl GenericClient, user: Uuid) -> Result<i64, QueryError> {
    let row = client
        .query_one(
            r#"SELECT count(*) FROM vfolders WHERE "user" = $1"#,
            &[&user],
        )
        .await
        .map_err(db_err("counting a user's vfolders"))?;
    row.read(0)
}

/// Serializes folder creation per owner for the rest of the transaction, so two concurrent
/// creates cannot both pass the count and name checks.
pub async fn lock_owner(client: &impl GenericClient, owner: Uuid) -> Result<(), QueryError> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('vfolder-owner:' || $1::uuid::text, 0))",
            &[&owner],
        )
        .await
        .map_err(db_err("locking a vfolder owner"))?;
    Ok(())
}

/// The `allowed_vfolder_hosts` maps that apply to a request (the original's
/// `get_allowed_vfolder_hosts_by_user` / `_by_group`, without the keypair policy, which the
/// caller already has).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostPermissionSources {
    /// The active domain's map, if the domain is active.
    pub domain: Option<Value>,
    /// The maps of the active groups that apply.
    pub groups: Vec<Value>,
}

/// Which groups' maps apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupSource {
    /// The groups `user` belongs to (only `group` if given).
    MemberOf {
        user: Uuid,
        group: Option<Uuid>,
    },
    /// One group of the domain.
    Group(Uuid),
    /// Every group of the domain (a domain admin listing hosts).
    AllOfDomain,
    None,
}

pub async fn host_permission_sources(
    client: &impl GenericClient,
    domain_name: &str,
    groups: GroupSource,
) -> Result<HostPermissionSources, QueryError> {
    let domain = client
        .query_opt(
            "SELECT allowed_vfolder_hosts FROM domains WHERE name = $1 AND is_active",
            &[&domain_name],
        )
        .await
        .map_err(db_err("reading the domain's allowed vfolder hosts"))?
        .map(|row| row.read::<_, Value>(0))
        .transpose()?;
    let rows = match groups {
        GroupSource::MemberOf { user, group } => client
            .query(
                r#"SELECT g.allowed_vfolder_hosts FROM groups g
                   JOIN association_groups_users a ON a.group_id = g.id
                   WHERE a.user_id = $1 AND g.domain_name = $2 AND g.is_active
                     AND ($3::uuid IS NULL OR g.id = $3)"#,
                &[&user, &domain_name, &group],
            )
            .await
            .map_err(db_err("reading the user's groups' allowed vfolder hosts"))?,
        GroupSource::Group(group) => client
            .query(
                "SELECT allowed_vfolder_hosts FROM groups WHERE domain_name = $1 AND id = $2 AND is_active",
                &[&domain_name, &group],
            )
            .await
            .map_err(db_err("reading the group's allowed vfolder hosts"))?,
        GroupSource::AllOfDomain => client
            .query(
                "SELECT allowed_vfolder_hosts FROM groups WHERE domain_name = $1 AND is_active",
                &[&domain_name],
            )
            .await
            .map_err(db_err("reading the domain groups' allowed vfolder hosts"))?,
        GroupSource::None => Vec::new(),
    };
    Ok(HostPermissionSources {
        domain,
        groups: rows
            .iter()
            .map(|row| row.read::<_, Value>(0))
            .collect::<Result<_, _>>()?,
    })
}

/// A group of a domain, by id or name, with its project policy's `max_vfolder_size`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub id: Uuid,
    pub name: String,
    pub max_vfolder_size: i64,
}

pub async fn find_group(
    client: &impl GenericClient,
    domain_name: &str,
    id: Option<Uuid>,
    name: Option<&str>,
) -> Result<Option<GroupInfo>, QueryError> {
    let row = client
        .query_opt(
            r#"SELECT g.id, g.name, COALESCE(p.max_vfolder_size, -1)
               FROM groups g LEFT JOIN project_resource_policies p ON g.resource_policy = p.name
               WHERE g.domain_name = $1 AND (g.id = $2 OR g.name = $3)
               ORDER BY (g.id = $2) DESC NULLS LAST LIMIT 1"#,
            &[&domain_name, &id, &name],
        )
        .await
        .map_err(db_err("looking up a group"))?;
    row.map(|row| {
        Ok(GroupInfo {
            id: row.read(0)?,
            name: row.read(1)?,
            max_vfolder_size: row.read(2)?,
        })
    })
    .transpose()
}

/// The user resource policy's `max_vfolder_size` of `user` (-1 when unlimited or unknown).
pub async fn user_max_vfolder_size(
    client: &impl GenericClient,
    user: Uuid,
) -> Result<i64, QueryError> {
    let row = client
        .query_opt(
            r#"SELECT COALESCE(p.max_vfolder_size, -1) FROM users u
               LEFT JOIN user_resource_policies p ON u.resource_policy = p.name
               WHERE u.uuid = $1"#,
            &[&user],
        )
        .await
        .map_err(db_err("reading a user's resource policy"))?;
    Ok(row.map(|row| row.read(0)).transpose()?.unwrap_or(-1))
}

/// A user by email: what "on behalf of" needs.
#[derive(Debug, Clone, PartialEq)]
pub struct UserScope {
    pub uuid: Uuid,
    pub role: UserRole,
    pub domain_name: Option<String>,
}

pub async fn find_user_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<UserScope>, QueryError> {
    let row = client
        .query_opt(
            "SELECT uuid, role, domain_name FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .map_err(db_err("looking up a user by email"))?;
    row.map(|row| {
        Ok(UserScope {
            uuid: row.read(0)?,
            role: row.read(1)?,
            domain_name: row.read(2)?,
        })
    })
    .transpose()
}

/// The values of a new folder row.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVFolder {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub domain_name: String,
    pub quota_scope_id: String,
    pub usage_mode: VFolderUsageMode,
    pub permission: VFolderPermission,
    /// MiB, or `None` for no limit.
    pub max_size: Option<i32>,
    pub creator: String,
    pub ownership_type: VFolderOwnershipType,
    pub user: Option<Uuid>,
    pub group: Option<Uuid>,
    pub cloneable: bool,
}

/// Inserts a folder (status `ready`) and returns its creation time.
pub async fn insert_vfolder(
    client: &impl GenericClient,
    folder: &NewVFolder,
) -> Result<DateTime<Utc>, QueryError> {
    let row = client
        .query_one(
            r#"INSERT INTO vfolders (id, name, host, domain_name, quota_scope_id, usage_mode,
                   permission, last_used, max_size, creator, ownership_type, "user", "group",
                   unmanaged_path, cloneable, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11, $12, '', $13, 'ready')
               RETURNING created_at"#,
            &[
                &folder.id,
                &folder.name,
                &folder.host,
                &folder.domain_name,
                &folder.quota_scope_id,
                &folder.usage_mode,
                &folder.permission,
                &folder.max_size,
                &folder.creator,
                &folder.ownership_type,
                &folder.user,
                &folder.group,
                &folder.cloneable,
            ],
        )
        .await
        .map_err(db_err("inserting a vfolder"))?;
    row.read(0)
}

pub async fn rename_vfolder(
    client: &impl GenericClient,
    id: Uuid,
    new_name: &str,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE vfolders SET name = $2 WHERE id = $1",
            &[&id, &new_name],
        )
        .await
        .map_err(db_err("renaming a vfolder"))
}

/// Moves a folder from one of `from` statuses to `to` (a compare-and-set); returns whether it
/// moved. `status_changed` and `status_history` record the change.
pub async fn change_status(
    client: &impl GenericClient,
    id: Uuid,
    from: &[&str],
    to: &str,
) -> Result<bool, QueryError> {
    let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
    let changed = client
        .execute(
            r#"UPDATE vfolders
               SET status = $3::text, status_changed = now(),
                   status_history = COALESCE(status_history, '{}'::jsonb)
                                    || jsonb_build_object($3::text, now()::text)
               WHERE id = $1 AND status = ANY($2)"#,
            &[&id, &from, &to],
        )
        .await
        .map_err(db_err("changing a vfolder's status"))?;
    Ok(changed == 1)
}

pub async fn delete_vfolder_row(client: &impl GenericClient, id: Uuid) -> Result<u64, QueryError> {
    client
        .execute("DELETE FROM vfolders WHERE id = $1", &[&id])
        .await
        .map_err(db_err("deleting a vfolder row"))
}

/// Folders stuck in `deleting` since before `older_than` (a delete interrupted by a crash).
pub async fn stale_deletions(
    client: &impl GenericClient,
    older_than: DateTime<Utc>,
) -> Result<Vec<(Uuid, String, Option<String>)>, QueryError> {
    let rows = client
        .query(
            r#"SELECT id, host, quota_scope_id FROM vfolders
               WHERE status = 'deleting' AND COALESCE(status_changed, created_at) < $1"#,
            &[&older_than],
        )
        .await
        .map_err(db_err("finding interrupted vfolder deletions"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?, row.read(2)?)))
        .collect()
}

/// What deleting a folder by id needs to know first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPlacement {
    pub host: String,
    pub quota_scope_id: Option<String>,
    pub status: String,
}

/// The host, quota scope and status of the folder `id`, if it exists.
pub async fn folder_placement(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<FolderPlacement>, QueryError> {
    let statement = client
        .prepare_cached("SELECT host, quota_scope_id, status FROM vfolders WHERE id = $1")
        .await
        .map_err(db_err("preparing the folder lookup"))?;
    client
        .query_opt(&statement, &[&id])
        .await
        .map_err(db_err("looking up the folder"))?
        .map(|row| {
            Ok(FolderPlacement {
                host: row.read(0)?,
                quota_scope_id: row.read(1)?,
                status: row.read(2)?,
            })
        })
        .transpose()
}

/// Sets a folder's size limit (MiB).
pub async fn set_max_size(
    client: &impl GenericClient,
    id: Uuid,
    max_size_mib: i32,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE vfolders SET max_size = $2 WHERE id = $1",
            &[&id, &max_size_mib],
        )
        .await
        .map_err(db_err("setting a folder's size limit"))
}
