//! The folders of the GraphQL `VirtualFolder` lists (`vfolder_list`, the 23.09 scope roots
//! `vfolder_own_list`/`vfolder_invited_list`/`vfolder_project_list`, the legacy `vfolders` and
//! `KeyPair.vfolders`): the scope of each, the original's `filter`/`order` names
//! (`VirtualFolder._queryfilter_fieldspec` and `_queryorder_colmap`) and the newest-first default.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::listing::{Conditions, Listing, SqlParams};
use super::{QueryError, ReadColumn};
use crate::enums::{VFolderOwnershipType, VFolderPermission, VFolderUsageMode};
use crate::minilang::enums::{VFOLDER_OWNERSHIP_TYPE, VFOLDER_PERMISSION, VFOLDER_USAGE_MODE};
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`VFolderRow::decode`] reads, over [`VFOLDER_FROM`].
const VFOLDER_COLUMNS: &str = "v.id, v.host, v.quota_scope_id, v.name, v.\"user\", \
     u.email AS user_email, v.\"group\", g.name AS group_name, v.creator, v.unmanaged_path, \
     v.usage_mode, v.permission, v.ownership_type, v.max_files, v.max_size, v.created_at, \
     v.last_used, v.cur_size, v.cloneable, v.status";

const VFOLDER_FROM: &str = "vfolders v LEFT JOIN users u ON v.\"user\" = u.uuid \
     LEFT JOIN groups g ON v.\"group\" = g.id";

/// Newest first, as the original; the id keeps pages stable among equal times.
const DEFAULT_VFOLDER_ORDER: &str = "v.created_at DESC, v.id";

/// One folder row.
#[derive(Debug, Clone)]
pub struct VFolderRow {
    pub id: Uuid,
    pub host: String,
    pub quota_scope_id: Option<String>,
    pub name: String,
    pub user: Option<Uuid>,
    pub user_email: Option<String>,
    pub group: Option<Uuid>,
    pub group_name: Option<String>,
    pub creator: Option<String>,
    pub unmanaged_path: Option<String>,
    pub usage_mode: VFolderUsageMode,
    pub permission: Option<VFolderPermission>,
    pub ownership_type: VFolderOwnershipType,
    pub max_files: i32,
    pub max_size: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub cur_size: i32,
    pub cloneable: bool,
    pub status: String,
}

impl VFolderRow {
    pub fn decode(row: &Row) -> Result<VFolderRow, QueryError> {
        Ok(VFolderRow {
            id: row.read("id")?,
            host: row.read("host")?,
            quota_scope_id: row.read("quota_scope_id")?,
            name: row.read("name")?,
            user: row.read("user")?,
            user_email: row.read("user_email")?,
            group: row.read("group")?,
            group_name: row.read("group_name")?,
            creator: row.read("creator")?,
            unmanaged_path: row.read("unmanaged_path")?,
            usage_mode: row.read("usage_mode")?,
            permission: row.read("permission")?,
            ownership_type: row.read("ownership_type")?,
            max_files: row.read("max_files")?,
            max_size: row.read("max_size")?,
            created_at: row.read("created_at")?,
            last_used: row.read("last_used")?,
            cur_size: row.read("cur_size")?,
            cloneable: row.read("cloneable")?,
            status: row.read("status")?,
        })
    }
}

/// Which folders a list takes.
#[derive(Debug, Clone)]
pub enum FolderScope {
    /// `vfolder_list`: narrowed by domain (of the owning user), group and owning user.
    Listed {
        domain_name: Option<String>,
        group: Option<Uuid>,
        owner: Option<Uuid>,
    },
    /// The folders `user` owns (in a domain, of a group, when given).
    Own {
        user: Uuid,
        domain_name: Option<String>,
        group: Option<Uuid>,
    },
    /// User folders others shared with `user`.
    Invited {
        user: Uuid,
        domain_name: Option<String>,
    },
    /// Folders of the projects (groups) `user` belongs to.
    Project {
        user: Uuid,
        domain_name: Option<String>,
    },
}

impl FolderScope {
    /// The tables and conditions of this scope.
    fn tables_and_conditions(&self, params: &mut SqlParams) -> (String, Conditions) {
        let mut conditions = Conditions::new();
        let from = match self {
            FolderScope::Listed {
                domain_name,
                group,
                owner,
            } => {
                if let Some(domain) = domain_name {
                    conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
                }
                if let Some(group) = group {
                    conditions.add(format!("v.\"group\" = {}", params.push(*group)));
                }
                if let Some(user) = owner {
                    conditions.add(format!("v.\"user\" = {}", params.push(*user)));
                }
                VFOLDER_FROM.to_owned()
            }
            FolderScope::Own {
                user,
                domain_name,
                group,
            } => {
                conditions.add(format!("v.\"user\" = {}", params.push(*user)));
                if let Some(domain) = domain_name {
                    conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
                }
                if let Some(group) = group {
                    conditions.add(format!("v.\"group\" = {}", params.push(*group)));
                }
                VFOLDER_FROM.to_owned()
            }
            FolderScope::Invited { user, domain_name } => {
                conditions.add(format!("p.\"user\" = {}", params.push(*user)));
                conditions.add("v.ownership_type = 'user'".to_owned());
                if let Some(domain) = domain_name {
                    conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
                }
                format!("{VFOLDER_FROM} JOIN vfolder_permissions p ON p.vfolder = v.id")
            }
            FolderScope::Project { user, domain_name } => {
                conditions.add(format!(
                    "v.\"group\" IN (SELECT ag.group_id FROM association_groups_users ag \
                     WHERE ag.user_id = {})",
                    params.push(*user)
                ));
                if let Some(domain) = domain_name {
                    conditions.add(format!("g.domain_name = {}", params.push(domain.clone())));
                }
                VFOLDER_FROM.to_owned()
            }
        };
        (from, conditions)
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

/// A page of the folders of `scope`, filtered and ordered by the client's `filter`/`order`,
/// newest first by default.
pub fn folder_page(
    scope: &FolderScope,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let (from, mut conditions) = scope.tables_and_conditions(&mut params);
    if let Some(condition) = minilang::filter_sql(filter, VFOLDER_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, VFOLDER_ORDER_FIELDS)? {
        Some(order) => format!("{order}, v.id"),
        None => DEFAULT_VFOLDER_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: format!("SELECT {VFOLDER_COLUMNS} FROM {from} {where_clause}"),
        count: format!("SELECT count(*) FROM {from} {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

/// The statements this module assembles (each scope without and with a filter and an
/// ordering), for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let user = Uuid::nil();
    let domain_name = Some("default".to_owned());
    let scopes = [
        FolderScope::Listed {
            domain_name: domain_name.clone(),
            group: Some(user),
            owner: Some(user),
        },
        FolderScope::Own {
            user,
            domain_name: domain_name.clone(),
            group: Some(user),
        },
        FolderScope::Invited {
            user,
            domain_name: domain_name.clone(),
        },
        FolderScope::Project { user, domain_name },
    ];
    let mut out = Vec::new();
    for scope in &scopes {
        for (filter, order) in [
            (None, None),
            (Some("usage_mode == \"general\""), Some("-name")),
        ] {
            let (page, count) = folder_page(scope, filter, order)?.statements(true);
            out.extend([page, count]);
        }
    }
    Ok(out)
}
