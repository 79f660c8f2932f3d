//! `User`: the `user`, `user_from_uuid`, `users` and `user_list` queries (their SQL, filters
//! and orderings are `bai_schema::queries::user_list`). The mutations are in `user_mutation.rs`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::enums::UserStatus;
use bai_schema::queries::user_list::{self, UserKey, UserRow, UserSelection};
use uuid::Uuid;

use super::context::GqlRequest;
use super::enums::USER_STATUS;
use super::error::{GqlError, GqlResult};
use super::pagination::{LEGACY_LIST_LIMIT, ListSelection, Page, selects};
use super::permissions::{domain_read_scope, scoped};
use super::scalars::GqlDateTime;
use super::sql;

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

impl User {
    pub fn from_row(row: UserRow) -> GqlResult<User> {
        let groups = row
            .groups
            .map(|raw| {
                serde_json::from_value(raw)
                    .map_err(|e| GqlError::Internal(format!("user groups: {e}")))
            })
            .transpose()?;
        Ok(User {
            id: Some(ID(row.uuid.to_string())),
            uuid: Some(row.uuid),
            username: row.username,
            email: Some(row.email),
            need_password_change: Some(row.need_password_change),
            full_name: row.full_name,
            description: row.description,
            is_active: Some(row.status == UserStatus::Active),
            status: Some(row.status.as_str().to_owned()),
            status_info: row.status_info,
            created_at: Some(GqlDateTime(row.created_at)),
            modified_at: Some(GqlDateTime(row.modified_at)),
            domain_name: row.domain_name,
            role: Some(row.role.as_str().to_owned()),
            resource_policy: Some(row.resource_policy),
            allowed_client_ip: row.allowed_client_ip,
            totp_activated: Some(row.totp_activated),
            totp_activated_at: row.totp_activated_at.map(GqlDateTime),
            sudo_session_enabled: Some(row.sudo_session_enabled),
            main_access_key: row.main_access_key,
            groups,
        })
    }
}

/// The users of one statement's rows.
fn users_of_rows(rows: Vec<UserRow>) -> GqlResult<Vec<User>> {
    rows.into_iter().map(User::from_row).collect()
}

/// The arguments shared by `users` and `user_list`, with `status` read as a stored label.
fn user_selection(
    domain_name: Option<String>,
    group_id: Option<Uuid>,
    is_active: Option<bool>,
    status: Option<String>,
) -> GqlResult<UserSelection> {
    let status = status
        .map(|status| {
            USER_STATUS
                .label_of(&status)
                .map(str::to_owned)
                .ok_or_else(|| {
                    GqlError::invalid(format!(
                        "status: {status:?} is not one of {}",
                        USER_STATUS.labels.join(", ")
                    ))
                })
        })
        .transpose()?;
    Ok(UserSelection {
        domain_name,
        group_id,
        is_active,
        status,
    })
}

/// One user (its groups when selected).
async fn one_user(
    ctx: &Context<'_>,
    request: &GqlRequest,
    key: UserKey,
    domain_name: Option<String>,
) -> GqlResult<Option<User>> {
    let client = sql::connection(&request.db).await?;
    user_list::user(&client, key, domain_name, selects(ctx, "groups"))
        .await?
        .map(User::from_row)
        .transpose()
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
        let email = scope.owner.unwrap_or_default();
        Ok(one_user(ctx, request, UserKey::Email(email), scope.domain_name).await?)
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
        let uuid = scope.owner.unwrap_or(requester.user_uuid);
        Ok(one_user(ctx, request, UserKey::Uuid(uuid), scope.domain_name).await?)
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
        let selection = user_selection(domain_name, group_id, is_active, status)?;
        let client = sql::connection(&request.db).await?;
        let rows = user_list::users(
            &client,
            &selection,
            selects(ctx, "groups"),
            Some(LEGACY_LIST_LIMIT),
        )
        .await
        .map_err(GqlError::from)?;
        Ok(Some(users_of_rows(rows)?))
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
        let users = user_selection(domain_name, group_id, is_active, status)?;
        let with_groups = ctx.look_ahead().field("items").field("groups").exists();
        let listing =
            user_list::user_page(&users, with_groups, filter.as_deref(), order.as_deref())
                .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                UserRow::decoder(with_groups),
            )
            .await
            .map_err(GqlError::from)?;
        Ok(Some(UserList {
            items: users_of_rows(rows)?,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
