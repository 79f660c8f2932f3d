//! What every vfolder route checks before it acts: the storage configuration, the host
//! permissions merged from the domain, the groups and the keypair resource policy, the
//! folder the caller names (with the permission the route needs) and the folder's status.

use std::sync::Arc;

use actix_web::{HttpRequest, web};
use bai_schema::enums::VFolderPermission;
use bai_schema::queries::vfolder::{
    AccessQuery, AccessibleVFolder, GroupSource, NameFilter, accessible_vfolders, count_owned,
    host_permission_sources,
};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use crate::facade::auth::AuthContext;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::state::AppState;
use crate::storage::permissions::{HostPermission, HostPermissionMap, denial_message};
use crate::storage::{ProxySet, StorageBroker, VFolderId};

/// The current storage configuration, or 500 when the worker runs without a broker.
pub fn storage_view(request: &HttpRequest) -> Result<Arc<ProxySet>, Problem> {
    request
        .app_data::<web::Data<StorageBroker>>()
        .map(|broker| broker.current())
        .ok_or_else(|| {
            Problem::new(ProblemKind::ServerMisconfigured)
                .with_msg("the storage broker is not running in this worker")
        })
}

pub use super::query_failed as db_failed;

/// Which group maps join the user part of the merge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserGroups {
    /// Every group the user belongs to.
    All,
    /// Only this group, if the user belongs to it.
    Only(Uuid),
}

/// The original's `get_allowed_vfolder_hosts_by_user`: domain ∪ the user's groups ∪ policy.
pub async fn hosts_by_user(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    groups: UserGroups,
) -> Result<HostPermissionMap, Problem> {
    let group = match groups {
        UserGroups::All => None,
        UserGroups::Only(group) => Some(group),
    };
    let sources = host_permission_sources(
        client,
        caller.domain_name(),
        GroupSource::MemberOf {
            user: caller.user_uuid(),
            group,
        },
    )
    .await
    .map_err(db_failed(state, "reading allowed vfolder hosts"))?;
    merge(caller, sources.domain, sources.groups)
}

/// The original's `get_allowed_vfolder_hosts_by_group`: domain ∪ the group (or, for a
/// domain admin without a group, every group of the domain) ∪ policy.
pub async fn hosts_by_group(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    group: Option<Uuid>,
    domain_admin: bool,
) -> Result<HostPermissionMap, Problem> {
    let source = match (group, domain_admin) {
        (Some(group), _) => GroupSource::Group(group),
        (None, true) => GroupSource::AllOfDomain,
        (None, false) => GroupSource::None,
    };
    let sources = host_permission_sources(client, caller.domain_name(), source)
        .await
        .map_err(db_failed(state, "reading allowed vfolder hosts"))?;
    merge(caller, sources.domain, sources.groups)
}

fn merge(
    caller: &AuthContext,
    domain: Option<Value>,
    groups: Vec<Value>,
) -> Result<HostPermissionMap, Problem> {
    let misconfigured = |e: crate::storage::permissions::HostMapError| {
        Problem::new(ProblemKind::ServerMisconfigured).with_msg(e.to_string())
    };
    let mut map = HostPermissionMap::default();
    if let Some(domain) = domain {
        map.merge_json(&domain, &format!("domain {}", caller.domain_name()))
            .map_err(misconfigured)?;
    }
    for group in groups {
        map.merge_json(&group, "a group of the user")
            .map_err(misconfigured)?;
    }
    map.merge_json(
        &caller.resource_policy.allowed_vfolder_hosts,
        &format!("keypair resource policy {}", caller.resource_policy.name),
    )
    .map_err(misconfigured)?;
    Ok(map)
}

/// The original's `filter_host_allowed_permission`: the user part when user folders are
/// enabled, plus the group part when group folders are enabled and a group is given.
pub async fn allowed_hosts(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    view: &ProxySet,
    group: Option<Uuid>,
) -> Result<HostPermissionMap, Problem> {
    let mut map = HostPermissionMap::default();
    if view.config.allows_type("user") {
        map = hosts_by_user(client, state, caller, UserGroups::All).await?;
    }
    if view.config.allows_type("group")
        && let Some(group) = group
    {
        let by_group = hosts_by_group(client, state, caller, Some(group), false).await?;
        map.union_with(&by_group);
    }
    Ok(map)
}

/// `ensure_host_permission_allowed`: 400 "`<perm>` Not allowed in vfolder host(`<host>`)".
/// The checks a new folder of the caller passes (create and clone), inside the creating
/// transaction after the owner is locked, so concurrent creates cannot both pass them: the
/// keypair policy's `max_vfolder_count` for a user-owned folder, and no folder of that name
/// already reachable by the caller.
pub async fn ensure_new_folder_allowed(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    view: &ProxySet,
    name: &str,
    user_owned: bool,
) -> Result<(), Problem> {
    let max_count = caller.resource_policy.max_vfolder_count;
    if max_count > 0 && user_owned {
        let owned = count_owned(client, caller.user_uuid())
            .await
            .map_err(db_failed(state, "counting the user's folders"))?;
        if owned >= i64::from(max_count) {
            return Err(Problem::invalid_params("You cannot create more vfolders."));
        }
    }
    let same_name = accessible_vfolders(
        client,
        &AccessQuery {
            names: NameFilter::Exact(name),
            ..AccessQuery::new(
                caller.user_uuid(),
                caller.role(),
                caller.domain_name(),
                &view.config.vfolder_types,
            )
        },
    )
    .await
    .map_err(db_failed(state, "checking the folder name"))?;
    if !same_name.is_empty() {
        return Err(Problem::new(ProblemKind::VFolderAlreadyExists)
            .with_data(Value::String(name.to_owned())));
    }
    Ok(())
}

pub async fn ensure_host_permission(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    view: &ProxySet,
    host: &str,
    group: Option<Uuid>,
    permission: HostPermission,
) -> Result<(), Problem> {
    let map = allowed_hosts(client, state, caller, view, group).await?;
    if map.allows(host, permission) {
        Ok(())
    } else {
        Err(Problem::invalid_params(denial_message(permission, host)))
    }
}

/// The permission a route needs on the folder (`vfolder_permission_required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Read,
    ReadWrite,
    /// `OWNER_PERM` (= `wd`).
    Owner,
}

impl Needs {
    fn grants(self) -> &'static [VFolderPermission] {
        use VFolderPermission::*;
        match self {
            Needs::Read => &[ReadOnly, ReadWrite, RwDelete],
            Needs::ReadWrite => &[ReadWrite, RwDelete],
            Needs::Owner => &[RwDelete],
        }
    }
}

/// 404 "No such virtual folder." with the name as `data`.
pub fn folder_not_found(name: &str) -> Problem {
    Problem::not_found("virtual folder").with_data(Value::String(name.to_owned()))
}

/// The folder `name` as the caller reaches it with `needs`, in one of `statuses`.
pub async fn folder_for(
    client: &impl GenericClient,
    state: &AppState,
    caller: &AuthContext,
    view: &ProxySet,
    name: &str,
    needs: Needs,
    statuses: &[&str],
) -> Result<AccessibleVFolder, Problem> {
    let grants = needs.grants();
    let query = AccessQuery {
        names: NameFilter::Exact(name),
        invited_permissions: Some(grants),
        // The original lets admin keypairs use group folders whatever their permission.
        group_permissions: (!caller.is_admin).then_some(grants),
        ..AccessQuery::new(
            caller.user_uuid(),
            caller.role(),
            caller.domain_name(),
            &view.config.vfolder_types,
        )
    };
    let entries = accessible_vfolders(client, &query)
        .await
        .map_err(db_failed(state, "looking up a vfolder"))?;
    let Some(first) = entries.first() else {
        return Err(folder_not_found(name));
    };
    check_status(&entries, statuses)?;
    Ok(first.clone())
}

/// `ensure_vfolder_status`: every matching folder must be in one of `statuses`.
pub fn check_status(entries: &[AccessibleVFolder], statuses: &[&str]) -> Result<(), Problem> {
    if entries
        .iter()
        .all(|entry| statuses.contains(&entry.status.as_str()))
    {
        Ok(())
    } else {
        Err(Problem::new(ProblemKind::VFolderFilterStatusFailed))
    }
}

/// The storage-side id of a folder row.
pub fn vfid(folder: &AccessibleVFolder) -> Result<VFolderId, Problem> {
    VFolderId::from_row(folder.quota_scope_id.as_deref(), folder.id)
        .map_err(|e| Problem::internal(format!("vfolder {} has a bad quota scope: {e}", folder.id)))
}
