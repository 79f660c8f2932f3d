//! The users of the GraphQL `User` type: one by email or uuid, the legacy `users` list, a page
//! with the original's `filter`/`order` names (`User._queryfilter_fieldspec` and
//! `_queryorder_colmap`), and the reload of a user a mutation changed; each with the user's
//! groups inline when asked for.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::listing::{Conditions, Listing, SqlParams, query_as};
use super::{QueryError, ReadColumn, db_err};
use crate::enums::{UserRole, UserStatus};
use crate::minilang::enums::{USER_ROLE, USER_STATUS};
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`UserRow::decode`] reads, over the alias `u`.
const USER_COLUMNS: &str = "u.uuid, u.username, u.email, u.need_password_change, \
     u.full_name, u.description, u.status, u.status_info, u.created_at, u.modified_at, \
     u.domain_name, u.role, u.resource_policy, u.allowed_client_ip::text[] AS allowed_client_ip, \
     u.totp_activated, u.totp_activated_at, u.sudo_session_enabled, u.main_access_key";

/// The user's groups as a JSON array, for the `groups` field (one index lookup per user row).
const USER_GROUPS_COLUMN: &str = "(SELECT coalesce(json_agg(json_build_object('id', g.id, \
     'name', g.name) ORDER BY g.name), '[]'::json) FROM association_groups_users ag \
     JOIN groups g ON g.id = ag.group_id WHERE ag.user_id = u.uuid) AS groups";

/// The newest users first, as the original; the uuid keeps pages stable among equal times.
const DEFAULT_USER_ORDER: &str = "u.created_at DESC, u.uuid";

/// One user row.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub uuid: Uuid,
    pub username: Option<String>,
    pub email: String,
    pub need_password_change: bool,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub status: UserStatus,
    pub status_info: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub domain_name: Option<String>,
    pub role: UserRole,
    pub resource_policy: String,
    pub allowed_client_ip: Option<Vec<String>>,
    pub totp_activated: bool,
    pub totp_activated_at: Option<DateTime<Utc>>,
    pub sudo_session_enabled: bool,
    pub main_access_key: Option<String>,
    /// The user's groups as a JSON array of `{"id", "name"}`, when asked for.
    pub groups: Option<serde_json::Value>,
}

impl UserRow {
    fn decode(row: &Row, with_groups: bool) -> Result<UserRow, QueryError> {
        Ok(UserRow {
            uuid: row.read("uuid")?,
            username: row.read("username")?,
            email: row.read("email")?,
            need_password_change: row.read("need_password_change")?,
            full_name: row.read("full_name")?,
            description: row.read("description")?,
            status: row.read("status")?,
            status_info: row.read("status_info")?,
            created_at: row.read("created_at")?,
            modified_at: row.read("modified_at")?,
            domain_name: row.read("domain_name")?,
            role: row.read("role")?,
            resource_policy: row.read("resource_policy")?,
            allowed_client_ip: row.read("allowed_client_ip")?,
            totp_activated: row.read("totp_activated")?,
            totp_activated_at: row.read("totp_activated_at")?,
            sudo_session_enabled: row.read("sudo_session_enabled")?,
            main_access_key: row.read("main_access_key")?,
            groups: if with_groups {
                Some(row.read("groups")?)
            } else {
                None
            },
        })
    }

    /// A decoder for a listing of rows selected with or without the groups column.
    pub fn decoder(with_groups: bool) -> impl Fn(&Row) -> Result<UserRow, QueryError> {
        move |row| UserRow::decode(row, with_groups)
    }
}

fn columns(with_groups: bool) -> String {
    if with_groups {
        format!("{USER_COLUMNS}, {USER_GROUPS_COLUMN}")
    } else {
        USER_COLUMNS.to_owned()
    }
}

/// One user, by email or by uuid.
#[derive(Debug, Clone)]
pub enum UserKey {
    Email(String),
    Uuid(Uuid),
}

fn one_user_sql(
    key: UserKey,
    domain_name: Option<String>,
    with_groups: bool,
    params: &mut SqlParams,
) -> String {
    let mut conditions = Conditions::new();
    match key {
        UserKey::Email(email) => conditions.add(format!("u.email = {}", params.push(email))),
        UserKey::Uuid(uuid) => conditions.add(format!("u.uuid = {}", params.push(uuid))),
    }
    if let Some(domain) = domain_name {
        conditions.add(format!("u.domain_name = {}", params.push(domain)));
    }
    format!(
        "SELECT {} FROM users u {} ORDER BY {DEFAULT_USER_ORDER}",
        columns(with_groups),
        conditions.where_clause()
    )
}

/// The user with `key` (in `domain_name`, when given).
pub async fn user(
    client: &impl GenericClient,
    key: UserKey,
    domain_name: Option<String>,
    with_groups: bool,
) -> Result<Option<UserRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = one_user_sql(key, domain_name, with_groups, &mut params);
    let rows = query_as(
        client,
        &sql,
        &params,
        "reading a user",
        UserRow::decoder(with_groups),
    )
    .await?;
    Ok(rows.into_iter().next())
}

/// Which users a list takes. `status` is a stored label (`active`, ...); without it,
/// `is_active` picks the original's active or inactive statuses.
#[derive(Debug, Clone, Default)]
pub struct UserSelection {
    pub domain_name: Option<String>,
    pub group_id: Option<Uuid>,
    pub is_active: Option<bool>,
    pub status: Option<String>,
}

impl UserSelection {
    /// The `FROM` clause and conditions of a user listing.
    fn tables_and_conditions(&self, params: &mut SqlParams) -> (String, Conditions) {
        let mut from = "users u".to_owned();
        let mut conditions = Conditions::new();
        if let Some(group_id) = self.group_id {
            from.push_str(&format!(
                " JOIN association_groups_users gm ON gm.user_id = u.uuid AND gm.group_id = {}",
                params.push(group_id)
            ));
        }
        if let Some(domain) = &self.domain_name {
            conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
        }
        if let Some(label) = &self.status {
            conditions.add(format!(
                "u.status = (SELECT {}::text::userstatus)",
                params.push(label.clone())
            ));
        } else if let Some(is_active) = self.is_active {
            // The original's ACTIVE_USER_STATUSES / INACTIVE_USER_STATUSES.
            conditions.add(if is_active {
                "u.status = 'active'"
            } else {
                "u.status IN ('inactive', 'deleted', 'before-verification')"
            });
        }
        (from, conditions)
    }
}

fn users_sql(
    selection: &UserSelection,
    with_groups: bool,
    limit: Option<i64>,
    params: &mut SqlParams,
) -> String {
    let (from, conditions) = selection.tables_and_conditions(params);
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    format!(
        "SELECT {} FROM {from} {} ORDER BY {DEFAULT_USER_ORDER}{limit}",
        columns(with_groups),
        conditions.where_clause()
    )
}

/// The users of `selection`, newest first, at most `limit` (the legacy `users` query).
pub async fn users(
    client: &impl GenericClient,
    selection: &UserSelection,
    with_groups: bool,
    limit: Option<i64>,
) -> Result<Vec<UserRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = users_sql(selection, with_groups, limit, &mut params);
    query_as(
        client,
        &sql,
        &params,
        "reading users",
        UserRow::decoder(with_groups),
    )
    .await
}

/// The original's `User._queryfilter_fieldspec`.
pub const USER_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "uuid",
        sql: "u.uuid",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "username",
        sql: "u.username",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "email",
        sql: "u.email",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "need_password_change",
        sql: "u.need_password_change",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "full_name",
        sql: "u.full_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "description",
        sql: "u.description",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "is_active",
        sql: "(u.status = 'active')",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "status",
        sql: "u.status",
        kind: FieldKind::Enum(&USER_STATUS),
    },
    FilterField {
        name: "status_info",
        sql: "u.status_info",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "created_at",
        sql: "u.created_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "modified_at",
        sql: "u.modified_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "domain_name",
        sql: "u.domain_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "role",
        sql: "u.role",
        kind: FieldKind::Enum(&USER_ROLE),
    },
    FilterField {
        name: "resource_policy",
        sql: "u.resource_policy",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "allowed_client_ip",
        sql: "u.allowed_client_ip::text[]",
        kind: FieldKind::TextArray,
    },
    FilterField {
        name: "totp_activated",
        sql: "u.totp_activated",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "totp_activated_at",
        sql: "u.totp_activated_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "sudo_session_enabled",
        sql: "u.sudo_session_enabled",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "main_access_key",
        sql: "u.main_access_key",
        kind: FieldKind::Text,
    },
];

/// The original's `User._queryorder_colmap`.
pub const USER_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "uuid",
        sql: "u.uuid",
    },
    OrderField {
        name: "username",
        sql: "u.username",
    },
    OrderField {
        name: "email",
        sql: "u.email",
    },
    OrderField {
        name: "need_password_change",
        sql: "u.need_password_change",
    },
    OrderField {
        name: "full_name",
        sql: "u.full_name",
    },
    OrderField {
        name: "is_active",
        sql: "(u.status = 'active')",
    },
    OrderField {
        name: "status",
        sql: "u.status",
    },
    OrderField {
        name: "status_info",
        sql: "u.status_info",
    },
    OrderField {
        name: "created_at",
        sql: "u.created_at",
    },
    OrderField {
        name: "modified_at",
        sql: "u.modified_at",
    },
    OrderField {
        name: "domain_name",
        sql: "u.domain_name",
    },
    OrderField {
        name: "role",
        sql: "u.role",
    },
    OrderField {
        name: "resource_policy",
        sql: "u.resource_policy",
    },
    OrderField {
        name: "totp_activated",
        sql: "u.totp_activated",
    },
    OrderField {
        name: "totp_activated_at",
        sql: "u.totp_activated_at",
    },
];

/// A page of the users of `selection`, filtered and ordered by the client's `filter`/`order`
/// (decode its rows with [`UserRow::decoder`] of the same `with_groups`).
pub fn user_page(
    selection: &UserSelection,
    with_groups: bool,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let (from, mut conditions) = selection.tables_and_conditions(&mut params);
    if let Some(condition) = minilang::filter_sql(filter, USER_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, USER_ORDER_FIELDS)? {
        Some(order) => format!("{order}, u.uuid"),
        None => DEFAULT_USER_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: format!("SELECT {} FROM {from} {where_clause}", columns(with_groups)),
        count: format!("SELECT count(*) FROM {from} {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

fn changed_user_sql() -> String {
    format!("SELECT {} FROM users u WHERE u.uuid = $1", columns(true))
}

/// A user a mutation just changed, with its groups (inside the mutation's transaction, so a
/// `tokio_postgres` client).
pub async fn changed_user(
    client: &impl tokio_postgres::GenericClient,
    uuid: Uuid,
) -> Result<Option<UserRow>, QueryError> {
    let row = client
        .query_opt(changed_user_sql().as_str(), &[&uuid])
        .await
        .map_err(db_err("reloading a changed user"))?;
    row.map(|row| UserRow::decode(&row, true)).transpose()
}

/// The statements this module assembles, for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let selection = UserSelection {
        domain_name: Some("default".into()),
        group_id: Some(Uuid::nil()),
        is_active: None,
        status: Some("active".into()),
    };
    let inactive = UserSelection {
        is_active: Some(false),
        status: None,
        ..selection.clone()
    };
    let domain = Some("default".to_owned());
    let mut out = vec![
        one_user_sql(
            UserKey::Email("a@example.com".into()),
            domain.clone(),
            true,
            &mut SqlParams::new(),
        ),
        one_user_sql(
            UserKey::Uuid(Uuid::nil()),
            domain,
            false,
            &mut SqlParams::new(),
        ),
        users_sql(&selection, true, Some(100), &mut SqlParams::new()),
        users_sql(&inactive, false, None, &mut SqlParams::new()),
        changed_user_sql(),
    ];
    for (filter, order) in [(None, None), (Some("role == \"ADMIN\""), Some("-email"))] {
        for with_groups in [false, true] {
            let (page, count) = user_page(&selection, with_groups, filter, order)?.statements(true);
            out.extend([page, count]);
        }
    }
    Ok(out)
}
