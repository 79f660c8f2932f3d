//! `VirtualFolder`: the `vfolder_list` query (what `backend.ai vfolder list` asks for), with
//! the original's scope rules (users see their own folders, domain admins their domain's
//! user folders, superadmins everything), filters, orderings and newest-first default; the SQL
//! is `bai_schema::queries::vfolder_list`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::queries::vfolder_list::{self, FolderScope, VFolderRow};
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::scalars::{BigInt, GqlDateTime};
use super::sql;

/// A folder as the original's GraphQL `VirtualFolder` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "VirtualFolder", rename_fields = "snake_case")]
pub struct VirtualFolder {
    pub id: Option<ID>,
    pub host: Option<String>,
    pub quota_scope_id: Option<String>,
    pub name: Option<String>,
    /// The owning user (null for group folders).
    pub user: Option<Uuid>,
    pub user_email: Option<String>,
    /// The owning group (null for user folders).
    pub group: Option<Uuid>,
    pub group_name: Option<String>,
    /// The email of whoever created it (always set).
    pub creator: Option<String>,
    pub unmanaged_path: Option<String>,
    pub usage_mode: Option<String>,
    pub permission: Option<String>,
    pub ownership_type: Option<String>,
    pub max_files: Option<i32>,
    /// MiB.
    pub max_size: Option<BigInt>,
    pub created_at: Option<GqlDateTime>,
    pub last_used: Option<GqlDateTime>,
    /// Always 0, as the original (it does not measure on the fly).
    pub num_files: Option<i32>,
    pub cur_size: Option<BigInt>,
    pub cloneable: Option<bool>,
    pub status: Option<String>,
}

impl VirtualFolder {
    fn from_row(row: VFolderRow) -> VirtualFolder {
        VirtualFolder {
            id: Some(ID(row.id.to_string())),
            host: Some(row.host),
            quota_scope_id: row.quota_scope_id,
            name: Some(row.name),
            user: row.user,
            user_email: row.user_email,
            group: row.group,
            group_name: row.group_name,
            creator: row.creator,
            unmanaged_path: row.unmanaged_path,
            usage_mode: Some(row.usage_mode.as_str().to_owned()),
            permission: row.permission.map(|p| p.as_str().to_owned()),
            ownership_type: Some(row.ownership_type.as_str().to_owned()),
            max_files: Some(row.max_files),
            max_size: row.max_size.map(|v| BigInt(i64::from(v))),
            created_at: Some(GqlDateTime(row.created_at)),
            last_used: row.last_used.map(GqlDateTime),
            num_files: Some(0),
            cur_size: Some(BigInt(i64::from(row.cur_size))),
            cloneable: Some(row.cloneable),
            status: Some(row.status),
        }
    }
}

/// A page of folders.
#[derive(SimpleObject)]
#[graphql(name = "VirtualFolderList", rename_fields = "snake_case")]
pub struct VirtualFolderList {
    pub items: Vec<VirtualFolder>,
    pub total_count: i32,
}

#[derive(Default)]
pub struct VFolderQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl VFolderQuery {
    /// A page of folders: users their own, domain admins their domain's user folders,
    /// superadmins all (narrowed by `domain_name` and `group_id`).
    #[allow(clippy::too_many_arguments)]
    async fn vfolder_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        // Declared by the original but never applied (its scope key is the user id).
        #[graphql(name = "access_key")] _access_key: Option<String>,
    ) -> async_graphql::Result<Option<VirtualFolderList>> {
        let request = GqlRequest::of(ctx)?;
        let page = Page::new(limit, offset)?;
        let requester = &request.requester;
        let scope = scoped(requester, false, requester.user_uuid, domain_name, None)?;
        let scope = FolderScope::Listed {
            domain_name: scope.domain_name,
            group: group_id,
            owner: scope.owner,
        };
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
}

/// The folders of `scope` in one page with their total (each read only when `selection` asks
/// for it), newest first unless ordered otherwise: what every folder list root answers.
pub async fn folder_page(
    request: &GqlRequest,
    scope: &FolderScope,
    filter: Option<&str>,
    order: Option<&str>,
    page: Page,
    selection: ListSelection,
) -> GqlResult<VirtualFolderList> {
    let listing = vfolder_list::folder_page(scope, filter, order)?;
    let client = sql::connection(&request.db).await?;
    let (rows, total) = listing
        .fetch_as(
            &client,
            Some(page),
            selection.items,
            selection.total_count,
            VFolderRow::decode,
        )
        .await?;
    Ok(VirtualFolderList {
        items: rows.into_iter().map(VirtualFolder::from_row).collect(),
        total_count: i32::try_from(total).unwrap_or(i32::MAX),
    })
}
