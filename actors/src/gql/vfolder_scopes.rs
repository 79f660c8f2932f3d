//! The 23.09 folder roots the Web UI's Data & Storage page reads: `vfolder_own_list` (the
//! caller's own folders), `vfolder_invited_list` (user folders shared with the caller),
//! `vfolder_project_list` (the folders of the caller's projects), the legacy unpaginated
//! `vfolders`, and the superadmin's `vfolder_permission_list` (every share). Each is always the
//! caller's own view (the original fixes the user to the caller), narrowed by domain as its
//! `scoped_query`. The SQL is `bai_schema::queries::{vfolder_list, vfolder_permission_list}`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::queries::vfolder_list::FolderScope;
use bai_schema::queries::vfolder_permission_list::{self, PermissionRow};
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::{GqlError, GqlResult};
use super::pagination::{LEGACY_LIST_LIMIT, ListSelection, Page};
use super::permissions::{require_superadmin_read, scoped};
use super::sql;
use super::vfolder::{VirtualFolder, VirtualFolderList, folder_page};

/// The domain the caller may list folders in (`None`: every domain), as `scoped_query`.
fn folder_domain(request: &GqlRequest, domain_name: Option<String>) -> GqlResult<Option<String>> {
    let requester = &request.requester;
    Ok(scoped(requester, false, requester.user_uuid, domain_name, None)?.domain_name)
}

/// One of the caller's folder scopes, as the 23.09 roots name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeRoot {
    /// Folders the caller owns.
    Own,
    /// User folders others shared with the caller.
    Invited,
    /// Folders of the projects (groups) the caller belongs to.
    Project,
}

impl ScopeRoot {
    fn scope(self, user: Uuid, domain_name: Option<String>) -> FolderScope {
        match self {
            ScopeRoot::Own => FolderScope::Own {
                user,
                domain_name,
                group: None,
            },
            ScopeRoot::Invited => FolderScope::Invited { user, domain_name },
            ScopeRoot::Project => FolderScope::Project { user, domain_name },
        }
    }
}

/// One share of a folder with a user, as the original's `VirtualFolderPermission`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "VirtualFolderPermission", rename_fields = "snake_case")]
pub struct VirtualFolderPermissionItem {
    /// Always null, as the original (its `Item` id is never set).
    pub id: Option<ID>,
    pub permission: Option<String>,
    pub vfolder: Option<Uuid>,
    pub vfolder_name: Option<String>,
    pub user: Option<Uuid>,
    pub user_email: Option<String>,
}

impl VirtualFolderPermissionItem {
    fn from_row(row: PermissionRow) -> VirtualFolderPermissionItem {
        VirtualFolderPermissionItem {
            id: None,
            permission: row.permission.map(|p| p.as_str().to_owned()),
            vfolder: Some(row.vfolder),
            vfolder_name: Some(row.vfolder_name),
            user: Some(row.user),
            user_email: Some(row.user_email),
        }
    }
}

/// A page of shares.
#[derive(SimpleObject)]
#[graphql(name = "VirtualFolderPermissionList", rename_fields = "snake_case")]
pub struct VirtualFolderPermissionList {
    pub items: Vec<VirtualFolderPermissionItem>,
    pub total_count: i32,
}

#[derive(Default)]
pub struct VFolderScopeQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl VFolderScopeQuery {
    /// A page of the caller's own folders.
    #[allow(clippy::too_many_arguments)]
    async fn vfolder_own_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        // Declared by the original but never applied (the scope is always the caller).
        #[graphql(name = "access_key")] _access_key: Option<String>,
    ) -> async_graphql::Result<Option<VirtualFolderList>> {
        scope_page(
            ctx,
            ScopeRoot::Own,
            limit,
            offset,
            filter,
            order,
            domain_name,
        )
        .await
    }

    /// A page of the user folders shared with the caller.
    #[allow(clippy::too_many_arguments)]
    async fn vfolder_invited_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        #[graphql(name = "access_key")] _access_key: Option<String>,
    ) -> async_graphql::Result<Option<VirtualFolderList>> {
        scope_page(
            ctx,
            ScopeRoot::Invited,
            limit,
            offset,
            filter,
            order,
            domain_name,
        )
        .await
    }

    /// A page of the folders of the caller's projects.
    #[allow(clippy::too_many_arguments)]
    async fn vfolder_project_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        #[graphql(name = "access_key")] _access_key: Option<String>,
    ) -> async_graphql::Result<Option<VirtualFolderList>> {
        scope_page(
            ctx,
            ScopeRoot::Project,
            limit,
            offset,
            filter,
            order,
            domain_name,
        )
        .await
    }

    /// The legacy unpaginated list: the caller's own folders (of one group, when given),
    /// newest first, at most `LEGACY_LIST_LIMIT`.
    async fn vfolders(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        #[graphql(name = "access_key")] _access_key: Option<String>,
    ) -> async_graphql::Result<Option<Vec<VirtualFolder>>> {
        let request = GqlRequest::of(ctx)?;
        let domain = folder_domain(request, domain_name)?;
        let scope = FolderScope::Own {
            user: request.requester.user_uuid,
            domain_name: domain,
            group: group_id,
        };
        Ok(Some(legacy_folders(request, &scope).await?))
    }

    /// A page of every share of every folder (superadmins and monitors).
    async fn vfolder_permission_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
    ) -> async_graphql::Result<Option<VirtualFolderPermissionList>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let page = Page::new(limit, offset)?;
        let listing = vfolder_permission_list::permission_page(filter.as_deref(), order.as_deref())
            .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                PermissionRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        Ok(Some(VirtualFolderPermissionList {
            items: rows
                .into_iter()
                .map(VirtualFolderPermissionItem::from_row)
                .collect(),
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

/// One page of one of the caller's folder scopes.
async fn scope_page(
    ctx: &Context<'_>,
    root: ScopeRoot,
    limit: i32,
    offset: i32,
    filter: Option<String>,
    order: Option<String>,
    domain_name: Option<String>,
) -> async_graphql::Result<Option<VirtualFolderList>> {
    let request = GqlRequest::of(ctx)?;
    let page = Page::new(limit, offset)?;
    let domain = folder_domain(request, domain_name)?;
    let scope = root.scope(request.requester.user_uuid, domain);
    Ok(Some(
        folder_page(
            request,
            &scope,
            filter.as_deref(),
            order.as_deref(),
            page,
            ListSelection::of(ctx),
        )
        .await?,
    ))
}

/// The folders of `scope`, newest first, at most `LEGACY_LIST_LIMIT`.
async fn legacy_folders(
    request: &GqlRequest,
    scope: &FolderScope,
) -> GqlResult<Vec<VirtualFolder>> {
    let page = Page {
        limit: LEGACY_LIST_LIMIT,
        offset: 0,
    };
    let all = ListSelection {
        items: true,
        total_count: false,
    };
    Ok(folder_page(request, scope, None, None, page, all)
        .await?
        .items)
}

/// The folders the user `owner` owns, newest first, at most `LEGACY_LIST_LIMIT`
/// (`KeyPair.vfolders`; the caller already sees the keypair).
pub async fn folders_of_user(request: &GqlRequest, owner: Uuid) -> GqlResult<Vec<VirtualFolder>> {
    let scope = FolderScope::Own {
        user: owner,
        domain_name: None,
        group: None,
    };
    legacy_folders(request, &scope).await
}
