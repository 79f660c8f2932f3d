//! The 23.09 folder roots the Web UI's Data & Storage page reads: `vfolder_own_list` (the
//! caller's own folders), `vfolder_invited_list` (user folders shared with the caller),
//! `vfolder_project_list` (the folders of the caller's projects), the legacy unpaginated
//! `vfolders`, and the superadmin's `vfolder_permission_list` (every share). Each is always the
//! caller's own view (the original fixes the user to the caller), narrowed by domain as its
//! `scoped_query`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::enums::VFolderPermission;
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::pagination::{LEGACY_LIST_LIMIT, ListSelection, Page};
use super::permissions::{require_superadmin_read, scoped};
use super::sql::{self, Conditions, Listing, SqlParams};
use super::vfolder::{
    FolderQuery, VFOLDER_FROM, VFOLDER_PERMISSION, VirtualFolder, VirtualFolderList,
};
use bai_schema::minilang::{self, FieldKind, FilterField, OrderField};

/// The domain the caller may list folders in (`None`: every domain), as `scoped_query`.
fn folder_domain(request: &GqlRequest, domain_name: Option<String>) -> GqlResult<Option<String>> {
    let requester = &request.requester;
    Ok(scoped(requester, false, requester.user_uuid, domain_name, None)?.domain_name)
}

/// The conditions of one of the caller's folder scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderScope {
    /// Folders the caller owns.
    Own,
    /// User folders others shared with the caller.
    Invited,
    /// Folders of the projects (groups) the caller belongs to.
    Project,
}

impl FolderScope {
    /// The tables and conditions (`$` parameters pushed onto `params`) of this scope for
    /// `user` in `domain`.
    pub fn query(
        self,
        user: Uuid,
        domain: Option<String>,
        filter: Option<String>,
        order: Option<String>,
    ) -> FolderQuery {
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        let from = match self {
            FolderScope::Own => {
                conditions.add(format!("v.\"user\" = {}", params.push(user)));
                if let Some(domain) = domain {
                    conditions.add(format!("u.domain_name = {}", params.push(domain)));
                }
                VFOLDER_FROM.to_owned()
            }
            FolderScope::Invited => {
                conditions.add(format!("p.\"user\" = {}", params.push(user)));
                conditions.add("v.ownership_type = 'user'".to_owned());
                if let Some(domain) = domain {
                    conditions.add(format!("u.domain_name = {}", params.push(domain)));
                }
                format!("{VFOLDER_FROM} JOIN vfolder_permissions p ON p.vfolder = v.id")
            }
            FolderScope::Project => {
                conditions.add(format!(
                    "v.\"group\" IN (SELECT ag.group_id FROM association_groups_users ag \
                     WHERE ag.user_id = {})",
                    params.push(user)
                ));
                if let Some(domain) = domain {
                    conditions.add(format!("g.domain_name = {}", params.push(domain)));
                }
                VFOLDER_FROM.to_owned()
            }
        };
        FolderQuery {
            from,
            conditions,
            params,
            filter,
            order,
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
    fn from_row(row: &Row) -> GqlResult<VirtualFolderPermissionItem> {
        let permission: Option<VFolderPermission> = row.try_get("permission")?;
        Ok(VirtualFolderPermissionItem {
            id: None,
            permission: permission.map(|p| p.as_str().to_owned()),
            vfolder: Some(row.try_get("vfolder")?),
            vfolder_name: Some(row.try_get("vfolder_name")?),
            user: Some(row.try_get("user")?),
            user_email: Some(row.try_get("user_email")?),
        })
    }
}

/// A page of shares.
#[derive(SimpleObject)]
#[graphql(name = "VirtualFolderPermissionList", rename_fields = "snake_case")]
pub struct VirtualFolderPermissionList {
    pub items: Vec<VirtualFolderPermissionItem>,
    pub total_count: i32,
}

const PERMISSION_COLUMNS: &str = "p.permission, p.vfolder, v.name AS vfolder_name, p.\"user\", \
     u.email AS user_email";

const PERMISSION_FROM: &str = "vfolder_permissions p JOIN vfolders v ON v.id = p.vfolder \
     JOIN users u ON u.uuid = p.\"user\"";

/// The original's `VirtualFolderPermission._queryfilter_fieldspec`.
const PERMISSION_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "permission",
        sql: "p.permission",
        kind: FieldKind::Enum(&VFOLDER_PERMISSION),
    },
    FilterField {
        name: "vfolder",
        sql: "p.vfolder",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "vfolder_name",
        sql: "v.name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "user",
        sql: "p.\"user\"",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "user_email",
        sql: "u.email",
        kind: FieldKind::Text,
    },
];

/// The original's `VirtualFolderPermission._queryorder_colmap`.
const PERMISSION_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "permission",
        sql: "p.permission",
    },
    OrderField {
        name: "vfolder",
        sql: "p.vfolder",
    },
    OrderField {
        name: "vfolder_name",
        sql: "v.name",
    },
    OrderField {
        name: "user",
        sql: "p.\"user\"",
    },
    OrderField {
        name: "user_email",
        sql: "u.email",
    },
];

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
            FolderScope::Own,
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
            FolderScope::Invited,
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
            FolderScope::Project,
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
        let mut folders = FolderScope::Own.query(request.requester.user_uuid, domain, None, None);
        if let Some(group) = group_id {
            let group = folders.params.push(group);
            folders.conditions.add(format!("v.\"group\" = {group}"));
        }
        let page = Page {
            limit: LEGACY_LIST_LIMIT,
            offset: 0,
        };
        let all = ListSelection {
            items: true,
            total_count: false,
        };
        Ok(Some(folders.page(request, page, all).await?.items))
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
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        if let Some(condition) =
            minilang::filter_sql(filter.as_deref(), PERMISSION_FILTER_FIELDS, &mut params)?
        {
            conditions.add(condition);
        }
        let order_by = match minilang::order_sql(order.as_deref(), PERMISSION_ORDER_FIELDS)? {
            Some(order) => format!("{order}, p.id"),
            None => "v.created_at DESC, p.id".to_owned(),
        };
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {PERMISSION_COLUMNS} FROM {PERMISSION_FROM} {where_clause}"),
            count: format!("SELECT count(*) FROM {PERMISSION_FROM} {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let items = rows
            .iter()
            .map(VirtualFolderPermissionItem::from_row)
            .collect::<GqlResult<Vec<_>>>()?;
        Ok(Some(VirtualFolderPermissionList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

/// One page of one of the caller's folder scopes.
async fn scope_page(
    ctx: &Context<'_>,
    scope: FolderScope,
    limit: i32,
    offset: i32,
    filter: Option<String>,
    order: Option<String>,
    domain_name: Option<String>,
) -> async_graphql::Result<Option<VirtualFolderList>> {
    let request = GqlRequest::of(ctx)?;
    let page = Page::new(limit, offset)?;
    let domain = folder_domain(request, domain_name)?;
    let folders = scope.query(request.requester.user_uuid, domain, filter, order);
    Ok(Some(
        folders.page(request, page, ListSelection::of(ctx)).await?,
    ))
}

/// The folders the user `owner` owns, newest first, at most `LEGACY_LIST_LIMIT`
/// (`KeyPair.vfolders`; the caller already sees the keypair).
pub async fn folders_of_user(request: &GqlRequest, owner: Uuid) -> GqlResult<Vec<VirtualFolder>> {
    let page = Page {
        limit: LEGACY_LIST_LIMIT,
        offset: 0,
    };
    let all = ListSelection {
        items: true,
        total_count: false,
    };
    Ok(FolderScope::Own
        .query(owner, None, None, None)
        .page(request, page, all)
        .await?
        .items)
}
