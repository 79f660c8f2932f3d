//! `User`: the `user`, `user_from_uuid`, `users` and `user_list` queries with their SQL,
//! filters and orderings. The mutations are in `user_mutation.rs`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::enums::{UserRole, UserStatus};
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::GqlRequest;
use super::enums::{USER_ROLE, USER_STATUS};
use super::error::{GqlError, GqlResult};
use super::pagination::{LEGACY_LIST_LIMIT, ListSelection, Page, selects};
use super::permissions::{domain_read_scope, scoped};
use super::scalars::GqlDateTime;
use super::sql::{self, Conditions, Listing, SqlParams};
use bai_schema::minilang::{self, FieldKind, FilterField, OrderField};

/// A group a user belongs to.
#[derive(SimpleObject, Clone, Debug, serde::Deserialize)]
#[graphql(name = "UserGroup", rename_fields = "snake_case")]
pub struct UserGroup {
    pub id: Option<Uuid>,
    pub name: Option<String>,
}

/// A user as the original's GraphQL `User` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "User", rename_fields = "snake_case")]
pub struct User {
    pub id: Option<ID>,
    /// The same as `id` (legacy).
    pub uuid: Option<Uuid>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub status: Option<String>,
    pub status_info: Option<String>,
    pub created_at: Option<GqlDateTime>,
    pub modified_at: Option<GqlDateTime>,
    pub domain_name: Option<String>,
    pub role: Option<String>,
    pub resource_policy: Option<String>,
    pub allowed_client_ip: Option<Vec<String>>,
    pub totp_activated: Option<bool>,
    pub totp_activated_at: Option<GqlDateTime>,
    pub sudo_session_enabled: Option<bool>,
    pub main_access_key: Option<String>,
    pub groups: Option<Vec<UserGroup>>,
}

/// The columns `User::from_row` reads, over the alias `u`.
pub const USER_COLUMNS: &str = "u.uuid, u.username, u.email, u.need_password_change, \
     u.full_name, u.description, u.status, u.status_info, u.created_at, u.modified_at, \
     u.domain_name, u.role, u.resource_policy, u.allowed_client_ip::text[] AS allowed_client_ip, \
     u.totp_activated, u.totp_activated_at, u.sudo_session_enabled, u.main_access_key";

/// The user's groups as a JSON array, for the `groups` field (one index lookup per user row).
const USER_GROUPS_COLUMN: &str = "(SELECT coalesce(json_agg(json_build_object('id', g.id, \
     'name', g.name) ORDER BY g.name), '[]'::json) FROM association_groups_users ag \
     JOIN groups g ON g.id = ag.group_id WHERE ag.user_id = u.uuid) AS groups";

impl User {
    pub fn from_row(row: &Row, with_groups: bool) -> GqlResult<User> {
        let uuid: Uuid = row.try_get("uuid")?;
        let status: UserStatus = row.try_get("status")?;
        let role: UserRole = row.try_get("role")?;
        let groups = if with_groups {
            let raw: serde_json::Value = row.try_get("groups")?;
            Some(
                serde_json::from_value(raw)
                    .map_err(|e| GqlError::Internal(format!("user groups: {e}")))?,
            )
        } else {
            None
        };
        Ok(User {
            id: Some(ID(uuid.to_string())),
            uuid: Some(uuid),
            username: row.try_get("username")?,
            email: Some(row.try_get("email")?),
            need_password_change: Some(row.try_get("need_password_change")?),
            full_name: row.try_get("full_name")?,
            description: row.try_get("description")?,
            is_active: Some(status == UserStatus::Active),
            status: Some(status.as_str().to_owned()),
            status_info: row.try_get("status_info")?,
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            modified_at: Some(GqlDateTime(row.try_get("modified_at")?)),
            domain_name: row.try_get("domain_name")?,
            role: Some(role.as_str().to_owned()),
            resource_policy: Some(row.try_get("resource_policy")?),
            allowed_client_ip: row.try_get("allowed_client_ip")?,
            totp_activated: Some(row.try_get("totp_activated")?),
            totp_activated_at: row
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>("totp_activated_at")?
                .map(GqlDateTime),
            sudo_session_enabled: Some(row.try_get("sudo_session_enabled")?),
            main_access_key: row.try_get("main_access_key")?,
            groups,
        })
    }
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

/// The newest users first, as the original; the uuid keeps pages stable among equal times.
const DEFAULT_USER_ORDER: &str = "u.created_at DESC, u.uuid";

/// The arguments shared by `users` and `user_list`.
#[derive(Debug, Default)]
struct UserConditions {
    domain_name: Option<String>,
    group_id: Option<Uuid>,
    is_active: Option<bool>,
    status: Option<String>,
}

/// The `FROM` clause and conditions for a user listing.
fn user_from_and_conditions(
    args: &UserConditions,
    params: &mut SqlParams,
) -> GqlResult<(String, Conditions)> {
    let mut from = "users u".to_owned();
    let mut conditions = Conditions::new();
    if let Some(group_id) = args.group_id {
        from.push_str(&format!(
            " JOIN association_groups_users gm ON gm.user_id = u.uuid AND gm.group_id = {}",
            params.push(group_id)
        ));
    }
    if let Some(domain) = &args.domain_name {
        conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
    }
    if let Some(status) = &args.status {
        let label = USER_STATUS.label_of(status).ok_or_else(|| {
            GqlError::invalid(format!(
                "status: {status:?} is not one of {}",
                USER_STATUS.labels.join(", ")
            ))
        })?;
        conditions.add(format!(
            "u.status = (SELECT {}::text::userstatus)",
            params.push(label.to_owned())
        ));
    } else if let Some(is_active) = args.is_active {
        // The original's ACTIVE_USER_STATUSES / INACTIVE_USER_STATUSES.
        conditions.add(if is_active {
            "u.status = 'active'"
        } else {
            "u.status IN ('inactive', 'deleted', 'before-verification')"
        });
    }
    Ok((from, conditions))
}

/// Loads users matching `conditions` (one statement; the groups inline when selected).
async fn load_users(
    request: &GqlRequest,
    from: &str,
    conditions: &Conditions,
    params: &SqlParams,
    with_groups: bool,
    limit: Option<i64>,
) -> GqlResult<Vec<User>> {
    let client = sql::connection(&request.db).await?;
    let groups_column = if with_groups {
        format!(", {USER_GROUPS_COLUMN}")
    } else {
        String::new()
    };
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let statement = format!(
        "SELECT {USER_COLUMNS}{groups_column} FROM {from} {} ORDER BY {DEFAULT_USER_ORDER}{limit}",
        conditions.where_clause()
    );
    sql::query(&client, &statement, params)
        .await?
        .iter()
        .map(|row| User::from_row(row, with_groups))
        .collect()
}

/// A page of users.
#[derive(SimpleObject)]
#[graphql(name = "UserList", rename_fields = "snake_case")]
pub struct UserList {
    pub items: Vec<User>,
    pub total_count: i32,
}

#[derive(Default)]
pub struct UserQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl UserQuery {
    /// A user by email (the caller when omitted); users see only themselves.
    async fn user(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        email: Option<String>,
    ) -> async_graphql::Result<Option<User>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let scope = scoped(requester, true, requester.email.clone(), domain_name, email)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        let email = scope.owner.unwrap_or_default();
        conditions.add(format!("u.email = {}", params.push(email)));
        if let Some(domain) = scope.domain_name {
            conditions.add(format!("u.domain_name = {}", params.push(domain)));
        }
        let users = load_users(
            request,
            "users u",
            &conditions,
            &params,
            selects(ctx, "groups"),
            None,
        )
        .await?;
        Ok(users.into_iter().next())
    }

    /// A user by uuid (the caller when omitted); users see only themselves.
    async fn user_from_uuid(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<Option<User>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let user_id = match user_id {
            Some(id) => Some(Uuid::parse_str(&id).map_err(|_| {
                GqlError::invalid(format!("user_id {:?} is not a UUID", id.as_str()))
            })?),
            None => None,
        };
        let scope = scoped(requester, true, requester.user_uuid, domain_name, user_id)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!(
            "u.uuid = {}",
            params.push(scope.owner.unwrap_or(requester.user_uuid))
        ));
        if let Some(domain) = scope.domain_name {
            conditions.add(format!("u.domain_name = {}", params.push(domain)));
        }
        let users = load_users(
            request,
            "users u",
            &conditions,
            &params,
            selects(ctx, "groups"),
            None,
        )
        .await?;
        Ok(users.into_iter().next())
    }

    /// Users (legacy, at most 100): superadmins all, domain admins their domain.
    async fn users(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        is_active: Option<bool>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<User>>> {
        let request = GqlRequest::of(ctx)?;
        let domain_name = domain_read_scope(&request.requester, domain_name, "users")?;
        let args = UserConditions {
            domain_name,
            group_id,
            is_active,
            status,
        };
        let mut params = SqlParams::new();
        let (from, conditions) = user_from_and_conditions(&args, &mut params)?;
        let users = load_users(
            request,
            &from,
            &conditions,
            &params,
            selects(ctx, "groups"),
            Some(LEGACY_LIST_LIMIT),
        )
        .await?;
        Ok(Some(users))
    }

    /// A page of users: superadmins all, domain admins their domain.
    #[allow(clippy::too_many_arguments)]
    async fn user_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        is_active: Option<bool>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<UserList>> {
        let request = GqlRequest::of(ctx)?;
        let page = Page::new(limit, offset)?;
        let domain_name = domain_read_scope(&request.requester, domain_name, "users")?;
        let args = UserConditions {
            domain_name,
            group_id,
            is_active,
            status,
        };
        let mut params = SqlParams::new();
        let (from, mut conditions) = user_from_and_conditions(&args, &mut params)?;
        if let Some(condition) =
            minilang::filter_sql(filter.as_deref(), USER_FILTER_FIELDS, &mut params)?
        {
            conditions.add(condition);
        }
        let order_by = match minilang::order_sql(order.as_deref(), USER_ORDER_FIELDS)? {
            Some(order) => format!("{order}, u.uuid"),
            None => DEFAULT_USER_ORDER.to_owned(),
        };
        let selection = ListSelection::of(ctx);
        let with_groups = ctx.look_ahead().field("items").field("groups").exists();
        let groups_column = if with_groups {
            format!(", {USER_GROUPS_COLUMN}")
        } else {
            String::new()
        };
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {USER_COLUMNS}{groups_column} FROM {from} {where_clause}"),
            count: format!("SELECT count(*) FROM {from} {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let items = rows
            .iter()
            .map(|row| User::from_row(row, with_groups))
            .collect::<GqlResult<Vec<_>>>()?;
        Ok(Some(UserList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
