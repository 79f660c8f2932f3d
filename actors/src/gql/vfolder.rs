//! `VirtualFolder`: the `vfolder_list` query (what `backend.ai vfolder list` asks for), with
//! the original's scope rules (users see their own folders, domain admins their domain's
//! user folders, superadmins everything), filters, orderings and newest-first default.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::enums::{VFolderOwnershipType, VFolderPermission, VFolderUsageMode};
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::scalars::{BigInt, GqlDateTime};
use super::sql::{self, Conditions, Listing, SqlParams};
use bai_schema::minilang::{self, EnumSpec, FieldKind, FilterField, OrderField};

pub static VFOLDER_USAGE_MODE: EnumSpec = EnumSpec {
    pg_type: "vfolderusagemode",
    labels: &["general", "model", "data"],
    names: &["GENERAL", "MODEL", "DATA"],
    accept_lowercase: false,
};

pub static VFOLDER_PERMISSION: EnumSpec = EnumSpec {
    pg_type: "vfolderpermission",
    labels: &["ro", "rw", "wd"],
    names: &["READ_ONLY", "READ_WRITE", "RW_DELETE"],
    accept_lowercase: false,
};

pub static VFOLDER_OWNERSHIP_TYPE: EnumSpec = EnumSpec {
    pg_type: "vfolderownershiptype",
    labels: &["user", "group"],
    names: &["USER", "GROUP"],
    accept_lowercase: false,
};

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

pub const VFOLDER_COLUMNS: &str = "v.id, v.host, v.quota_scope_id, v.name, v.\"user\", \
     u.email AS user_email, v.\"group\", g.name AS group_name, v.creator, v.unmanaged_path, \
     v.usage_mode, v.permission, v.ownership_type, v.max_files, v.max_size, v.created_at, \
     v.last_used, v.cur_size, v.cloneable, v.status";

pub const VFOLDER_FROM: &str = "vfolders v LEFT JOIN users u ON v.\"user\" = u.uuid \
     LEFT JOIN groups g ON v.\"group\" = g.id";

/// Newest first, as the original; the id keeps pages stable among equal times.
const DEFAULT_VFOLDER_ORDER: &str = "v.created_at DESC, v.id";

impl VirtualFolder {
    fn from_row(row: &Row) -> GqlResult<VirtualFolder> {
        let id: Uuid = row.try_get("id")?;
        let usage_mode: VFolderUsageMode = row.try_get("usage_mode")?;
        let permission: Option<VFolderPermission> = row.try_get("permission")?;
        let ownership_type: VFolderOwnershipType = row.try_get("ownership_type")?;
        Ok(VirtualFolder {
            id: Some(ID(id.to_string())),
            host: Some(row.try_get("host")?),
            quota_scope_id: row.try_get("quota_scope_id")?,
            name: Some(row.try_get("name")?),
            user: row.try_get("user")?,
            user_email: row.try_get("user_email")?,
            group: row.try_get("group")?,
            group_name: row.try_get("group_name")?,
            creator: row.try_get("creator")?,
            unmanaged_path: row.try_get("unmanaged_path")?,
            usage_mode: Some(usage_mode.as_str().to_owned()),
            permission: permission.map(|p| p.as_str().to_owned()),
            ownership_type: Some(ownership_type.as_str().to_owned()),
            max_files: Some(row.try_get("max_files")?),
            max_size: row
                .try_get::<_, Option<i32>>("max_size")?
                .map(|v| BigInt(i64::from(v))),
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            last_used: row
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>("last_used")?
                .map(GqlDateTime),
            num_files: Some(0),
            cur_size: Some(BigInt(i64::from(row.try_get::<_, i32>("cur_size")?))),
            cloneable: Some(row.try_get("cloneable")?),
            status: Some(row.try_get("status")?),
        })
    }
}

/// The original's `VirtualFolder._queryfilter_fieldspec`.
pub const VFOLDER_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "id",
        sql: "v.id",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "host",
        sql: "v.host",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "quota_scope_id",
        sql: "v.quota_scope_id",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "name",
        sql: "v.name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "group",
        sql: "v.\"group\"",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "group_name",
        sql: "g.name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "user",
        sql: "v.\"user\"",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "user_email",
        sql: "u.email",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "creator",
        sql: "v.creator",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "unmanaged_path",
        sql: "v.unmanaged_path",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "usage_mode",
        sql: "v.usage_mode",
        kind: FieldKind::Enum(&VFOLDER_USAGE_MODE),
    },
    FilterField {
        name: "permission",
        sql: "v.permission",
        kind: FieldKind::Enum(&VFOLDER_PERMISSION),
    },
    FilterField {
        name: "ownership_type",
        sql: "v.ownership_type",
        kind: FieldKind::Enum(&VFOLDER_OWNERSHIP_TYPE),
    },
    FilterField {
        name: "max_files",
        sql: "v.max_files",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "max_size",
        sql: "v.max_size",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "created_at",
        sql: "v.created_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "last_used",
        sql: "v.last_used",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "cloneable",
        sql: "v.cloneable",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "status",
        sql: "v.status",
        kind: FieldKind::Text,
    },
];

/// The original's `VirtualFolder._queryorder_colmap`.
pub const VFOLDER_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "id",
        sql: "v.id",
    },
    OrderField {
        name: "host",
        sql: "v.host",
    },
    OrderField {
        name: "quota_scope_id",
        sql: "v.quota_scope_id",
    },
    OrderField {
        name: "name",
        sql: "v.name",
    },
    OrderField {
        name: "group",
        sql: "v.\"group\"",
    },
    OrderField {
        name: "group_name",
        sql: "g.name",
    },
    OrderField {
        name: "user",
        sql: "v.\"user\"",
    },
    OrderField {
        name: "user_email",
        sql: "u.email",
    },
    OrderField {
        name: "creator",
        sql: "v.creator",
    },
    OrderField {
        name: "usage_mode",
        sql: "v.usage_mode",
    },
    OrderField {
        name: "permission",
        sql: "v.permission",
    },
    OrderField {
        name: "ownership_type",
        sql: "v.ownership_type",
    },
    OrderField {
        name: "max_files",
        sql: "v.max_files",
    },
    OrderField {
        name: "max_size",
        sql: "v.max_size",
    },
    OrderField {
        name: "created_at",
        sql: "v.created_at",
    },
    OrderField {
        name: "last_used",
        sql: "v.last_used",
    },
    OrderField {
        name: "cloneable",
        sql: "v.cloneable",
    },
    OrderField {
        name: "status",
        sql: "v.status",
    },
    OrderField {
        name: "cur_size",
        sql: "v.cur_size",
    },
];

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
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        if let Some(domain) = scope.domain_name {
            conditions.add(format!("u.domain_name = {}", params.push(domain)));
        }
        if let Some(group) = group_id {
            conditions.add(format!("v.\"group\" = {}", params.push(group)));
        }
        if let Some(user) = scope.owner {
            conditions.add(format!("v.\"user\" = {}", params.push(user)));
        }
        let folders = FolderQuery {
            from: VFOLDER_FROM.to_owned(),
            conditions,
            params,
            filter,
            order,
        };
        Ok(Some(
            folders.page(request, page, ListSelection::of(ctx)).await?,
        ))
    }
}

/// One scope of folders (the tables, the scope's conditions and parameters) with the caller's
/// filter and order, as every folder list root reads it.
pub struct FolderQuery {
    /// The tables, `VFOLDER_FROM` optionally joined with more.
    pub from: String,
    pub conditions: Conditions,
    pub params: SqlParams,
    pub filter: Option<String>,
    pub order: Option<String>,
}

impl FolderQuery {
    /// The folders in one page with their total (each read only when `selection` asks for
    /// it), newest first unless ordered otherwise.
    pub async fn page(
        mut self,
        request: &GqlRequest,
        page: Page,
        selection: ListSelection,
    ) -> GqlResult<VirtualFolderList> {
        if let Some(condition) = minilang::filter_sql(
            self.filter.as_deref(),
            VFOLDER_FILTER_FIELDS,
            &mut self.params,
        )? {
            self.conditions.add(condition);
        }
        let order_by = match minilang::order_sql(self.order.as_deref(), VFOLDER_ORDER_FIELDS)? {
            Some(order) => format!("{order}, v.id"),
            None => DEFAULT_VFOLDER_ORDER.to_owned(),
        };
        let where_clause = self.conditions.where_clause();
        let from = &self.from;
        let listing = Listing {
            select: format!("SELECT {VFOLDER_COLUMNS} FROM {from} {where_clause}"),
            count: format!("SELECT count(*) FROM {from} {where_clause}"),
            order_by,
            cacheable: self.filter.is_none() && self.order.is_none(),
            params: self.params,
        };
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let items = rows
            .iter()
            .map(VirtualFolder::from_row)
            .collect::<GqlResult<Vec<_>>>()?;
        Ok(VirtualFolderList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }
}
