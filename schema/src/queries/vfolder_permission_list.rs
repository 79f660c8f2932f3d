//! Every share of every folder with a user (the superadmin's `vfolder_permission_list`), with
//! the original's `filter`/`order` names (`VirtualFolderPermission._queryfilter_fieldspec` and
//! `_queryorder_colmap`), newest folder first by default.

use tokio_postgres::Row;
use uuid::Uuid;

use super::listing::{Conditions, Listing, SqlParams};
use super::{QueryError, ReadColumn};
use crate::enums::VFolderPermission;
use crate::minilang::enums::VFOLDER_PERMISSION;
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// One share.
#[derive(Debug, Clone)]
pub struct PermissionRow {
    pub permission: Option<VFolderPermission>,
    pub vfolder: Uuid,
    pub vfolder_name: String,
    pub user: Uuid,
    pub user_email: String,
}

impl PermissionRow {
    pub fn decode(row: &Row) -> Result<PermissionRow, QueryError> {
        Ok(PermissionRow {
            permission: row.read("permission")?,
            vfolder: row.read("vfolder")?,
            vfolder_name: row.read("vfolder_name")?,
            user: row.read("user")?,
            user_email: row.read("user_email")?,
        })
    }
}

const PERMISSION_COLUMNS: &str = "p.permission, p.vfolder, v.name AS vfolder_name, p.\"user\", \
     u.email AS user_email";

const PERMISSION_FROM: &str = "vfolder_permissions p JOIN vfolders v ON v.id = p.vfolder \
     JOIN users u ON u.uuid = p.\"user\"";

/// The original's `VirtualFolderPermission._queryfilter_fieldspec`.
pub const PERMISSION_FILTER_FIELDS: &[FilterField] = &[
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
pub const PERMISSION_ORDER_FIELDS: &[OrderField] = &[
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

/// A page of shares, filtered and ordered by the client's `filter`/`order`.
pub fn permission_page(
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let mut conditions = Conditions::new();
    if let Some(condition) = minilang::filter_sql(filter, PERMISSION_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, PERMISSION_ORDER_FIELDS)? {
        Some(order) => format!("{order}, p.id"),
        None => "v.created_at DESC, p.id".to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: format!("SELECT {PERMISSION_COLUMNS} FROM {PERMISSION_FROM} {where_clause}"),
        count: format!("SELECT count(*) FROM {PERMISSION_FROM} {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

/// The statements this module assembles, for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let mut out = Vec::new();
    for (filter, order) in [
        (None, None),
        (Some("permission == \"rw\""), Some("-user_email")),
    ] {
        let (page, count) = permission_page(filter, order)?.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
}
