//! `KeyPair`: the `keypair`, `keypairs` and `keypair_list` queries, the keypair mutations and
//! the generation of new access/secret keys.
//!
//! Secret keys: the original returns `secret_key` to anyone who may list a keypair. We return it
//! only to the keypair's owner and in the result of `create_keypair`; for everyone else the field
//! is `null` (the JSON shape stays the same).

use std::collections::HashMap;

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use bai_schema::queries::QueryError;
use bai_schema::queries::keypair_admin::{self, KeypairChanges, KeypairRow, NewKeypair};
use bai_schema::queries::keypair_list::{self, KeypairScope};
use uuid::Uuid;

use super::context::{GqlRequest, Requester};
use super::error::GqlError;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::pagination::{LEGACY_LIST_LIMIT, ListSelection, Page};
use super::permissions::scoped;
use super::scalars::GqlDateTime;
use super::sql;
use crate::compat::keypair::generate_keypair;

/// The owner's name and email, as the original's `UserInfo`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "UserInfo", rename_fields = "snake_case")]
pub struct UserInfo {
    pub email: Option<String>,
    pub full_name: Option<String>,
}

/// A keypair as the original's GraphQL `KeyPair` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "KeyPair", rename_fields = "snake_case", complex)]
pub struct KeyPair {
    pub id: Option<ID>,
    /// The owner's email (a legacy id).
    pub user_id: Option<String>,
    pub full_name: Option<String>,
    pub access_key: Option<String>,
    /// Only for the keypair's owner and in `create_keypair`'s result; `null` otherwise.
    pub secret_key: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    pub created_at: Option<GqlDateTime>,
    pub modified_at: Option<GqlDateTime>,
    /// The time of the last request signed with the key: `kp:{ak}:last_call_time` in Redis
    /// (a UNIX time the authentication writes), else the database column.
    pub last_used: Option<GqlDateTime>,
    pub rate_limit: Option<i32>,
    pub num_queries: Option<i32>,
    /// The owner's uuid.
    pub user: Option<Uuid>,
    /// The names of the owner's projects (groups).
    pub projects: Option<Vec<String>>,
    pub ssh_public_key: Option<String>,
    /// Sessions the keypair runs now.
    pub concurrency_used: Option<i32>,
    pub user_info: Option<UserInfo>,
    /// Deprecated since 22.03 (moved to the resource policy); always 0.
    #[graphql(
        deprecation = "Moved to KeyPairResourcePolicy object as the max_concurrent_sessions field."
    )]
    pub concurrency_limit: Option<i32>,
}

#[async_graphql::ComplexObject(rename_fields = "snake_case", rename_args = "snake_case")]
impl KeyPair {
    /// The keypair's sessions, newest first (at most `KEYPAIR_SESSIONS_LIMIT`), optionally of
    /// some statuses.
    async fn compute_sessions(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<super::session::ComputeSession>>> {
        let Some(access_key) = &self.access_key else {
            return Ok(None);
        };
        let request = GqlRequest::of(ctx)?;
        Ok(Some(
            super::session::sessions_of_keypair(request, access_key, status.as_deref()).await?,
        ))
    }

    /// The folders of the keypair's user, newest first (at most `LEGACY_LIST_LIMIT`).
    async fn vfolders(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<super::vfolder::VirtualFolder>>> {
        let Some(owner) = self.user else {
            return Ok(None);
        };
        let request = GqlRequest::of(ctx)?;
        Ok(Some(
            super::vfolder_scopes::folders_of_user(request, owner).await?,
        ))
    }
}

/// The per-keypair counters kept in Redis.
#[derive(Debug, Default, Clone)]
struct KeypairStats {
    num_queries: Option<i64>,
    concurrency_used: Option<i64>,
    last_call_time: Option<f64>,
}

/// Reads the counters of `access_keys` with one `MGET`. Redis trouble leaves them empty (the
/// original would fail the whole query; a list of keypairs is more useful without counters).
async fn load_stats(request: &GqlRequest, access_keys: &[String]) -> HashMap<String, KeypairStats> {
    let mut stats = HashMap::new();
    let Some(redis) = &request.redis_stat else {
        return stats;
    };
    if access_keys.is_empty() {
        return stats;
    }
    let mut keys = Vec::with_capacity(access_keys.len() * 3);
    for ak in access_keys {
        keys.push(format!("kp:{ak}:num_queries"));
        keys.push(format!("keypair.concurrency_used.{ak}"));
        keys.push(format!("kp:{ak}:last_call_time"));
    }
    let mut connection = redis.clone();
    let values: Vec<Option<String>> = match redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut connection)
        .await
    {
        Ok(values) => values,
        Err(_) => return stats,
    };
    for (ak, chunk) in access_keys.iter().zip(values.chunks(3)) {
        let parse_int =
            |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        stats.insert(
            ak.clone(),
            KeypairStats {
                num_queries: chunk.first().and_then(parse_int),
                concurrency_used: chunk.get(1).and_then(parse_int),
                last_call_time: chunk
                    .get(2)
                    .and_then(|v| v.as_deref())
                    .and_then(|s| s.trim().parse::<f64>().ok()),
            },
        );
    }
    stats
}

impl KeyPair {
    fn from_row(row: KeypairRow, requester: &Requester, reveal_secret: bool) -> KeyPair {
        let show_secret = reveal_secret || requester.owns_keypair_of(row.user);
        KeyPair {
            id: Some(ID(row.access_key.clone())),
            user_id: row.user_id,
            full_name: row.owner_full_name.clone(),
            secret_key: if show_secret { row.secret_key } else { None },
            is_active: Some(row.is_active),
            is_admin: Some(row.is_admin),
            resource_policy: Some(row.resource_policy),
            created_at: Some(GqlDateTime(row.created_at)),
            modified_at: Some(GqlDateTime(row.modified_at)),
            last_used: row.last_used.map(GqlDateTime),
            rate_limit: Some(row.rate_limit),
            num_queries: Some(0),
            user: Some(row.user),
            projects: Some(row.projects),
            ssh_public_key: row.ssh_public_key,
            concurrency_used: Some(0),
            user_info: Some(UserInfo {
                email: row.owner_email,
                full_name: row.owner_full_name,
            }),
            concurrency_limit: Some(0),
            access_key: Some(row.access_key),
        }
    }
}

/// Builds keypairs from rows and fills in their Redis counters.
async fn keypairs_from_rows(
    request: &GqlRequest,
    rows: Vec<KeypairRow>,
    reveal_secret: bool,
) -> Vec<KeyPair> {
    let mut keypairs: Vec<KeyPair> = rows
        .into_iter()
        .map(|row| KeyPair::from_row(row, &request.requester, reveal_secret))
        .collect();
    let access_keys: Vec<String> = keypairs
        .iter()
        .filter_map(|k| k.access_key.clone())
        .collect();
    let stats = load_stats(request, &access_keys).await;
    for keypair in &mut keypairs {
        let Some(stat) = keypair.access_key.as_ref().and_then(|ak| stats.get(ak)) else {
            continue;
        };
        if let Some(n) = stat.num_queries {
            keypair.num_queries = Some(i32::try_from(n).unwrap_or(i32::MAX));
        }
        if let Some(n) = stat.concurrency_used {
            keypair.concurrency_used = Some(i32::try_from(n).unwrap_or(i32::MAX));
        }
        if let Some(at) = stat.last_call_time {
            let seconds = at.floor() as i64;
            let nanos = ((at - at.floor()) * 1e9) as u32;
            if let Some(time) = chrono::DateTime::from_timestamp(seconds, nanos) {
                keypair.last_used = Some(GqlDateTime(time));
            }
        }
    }
    keypairs
}

/// A page of keypairs.
#[derive(SimpleObject)]
#[graphql(name = "KeyPairList", rename_fields = "snake_case")]
pub struct KeyPairList {
    pub items: Vec<KeyPair>,
    pub total_count: i32,
}

#[derive(Default)]
pub struct KeyPairQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl KeyPairQuery {
    /// A keypair by access key (the caller's own when omitted); users see only their own.
    async fn keypair(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        access_key: Option<String>,
    ) -> async_graphql::Result<Option<KeyPair>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let scope = scoped(
            requester,
            true,
            requester.access_key.clone(),
            domain_name,
            access_key,
        )?;
        let client = sql::connection(&request.db).await?;
        let rows =
            keypair_list::keypair(&client, scope.domain_name, scope.owner.unwrap_or_default())
                .await
                .map_err(GqlError::from)?;
        Ok(keypairs_from_rows(request, rows, false)
            .await
            .into_iter()
            .next())
    }

    /// Keypairs (legacy; at most 100 unless `email` is given); users see only their own.
    async fn keypairs(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        email: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<KeyPair>>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let scope = scoped(
            requester,
            false,
            requester.email.clone(),
            domain_name,
            email,
        )?;
        let limit = scope.owner.is_none().then_some(LEGACY_LIST_LIMIT);
        let scope = KeypairScope {
            domain_name: scope.domain_name,
            email: scope.owner,
            is_active,
        };
        let client = sql::connection(&request.db).await?;
        let rows = keypair_list::keypairs(&client, &scope, limit)
            .await
            .map_err(GqlError::from)?;
        Ok(Some(keypairs_from_rows(request, rows, false).await))
    }

    /// A page of keypairs; domain admins see their domain, users their own.
    #[allow(clippy::too_many_arguments)]
    async fn keypair_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        email: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<KeyPairList>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let page = Page::new(limit, offset)?;
        let scope = scoped(
            requester,
            false,
            requester.email.clone(),
            domain_name,
            email,
        )?;
        let scope = KeypairScope {
            domain_name: scope.domain_name,
            email: scope.owner,
            is_active,
        };
        let listing = keypair_list::keypair_page(&scope, filter.as_deref(), order.as_deref())
            .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                KeypairRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        Ok(Some(KeyPairList {
            items: keypairs_from_rows(request, rows, false).await,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

#[derive(InputObject, Debug)]
#[graphql(name = "KeyPairInput", rename_fields = "snake_case")]
pub struct KeyPairInput {
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(false)")]
    pub is_admin: Option<bool>,
    pub resource_policy: String,
    /// Deprecated and ignored.
    pub concurrency_limit: Option<i32>,
    pub rate_limit: i32,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyKeyPairInput", rename_fields = "snake_case")]
pub struct ModifyKeyPairInput {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    /// Deprecated and ignored.
    pub concurrency_limit: Option<i32>,
    pub rate_limit: Option<i32>,
}

mutation_payload!(CreateKeyPair, "CreateKeyPair", keypair: KeyPair);
mutation_payload!(ModifyKeyPair, "ModifyKeyPair");
mutation_payload!(DeleteKeyPair, "DeleteKeyPair");

type Step<T> = Result<Outcome<T>, Outcome<T>>;

/// Inserts a keypair with new keys for the user with `email` inside `client`'s transaction;
/// the new row, or none when no such user exists.
pub async fn insert_keypair(
    client: &impl deadpool_postgres::GenericClient,
    email: &str,
    is_active: bool,
    is_admin: bool,
    resource_policy: &str,
    rate_limit: i32,
) -> Result<Option<KeypairRow>, QueryError> {
    let (access_key, secret_key) = generate_keypair();
    let keypair = NewKeypair {
        owner_email: email.to_owned(),
        access_key,
        secret_key,
        is_active,
        is_admin,
        resource_policy: resource_policy.to_owned(),
        rate_limit,
    };
    keypair_admin::insert_keypair(client, &keypair).await
}

async fn create_keypair(ctx: &Context<'_>, user_id: String, props: KeyPairInput) -> Step<KeyPair> {
    let (request, client) =
        mutation::begin(ctx, "create_keypair", MutationRoles::SuperadminOnly).await?;
    let row = insert_keypair(
        &client,
        &user_id,
        props.is_active.unwrap_or(true),
        props.is_admin.unwrap_or(false),
        &props.resource_policy,
        props.rate_limit,
    )
    .await?;
    match row {
        // The creator receives the new secret key, once.
        Some(row) => Ok(Outcome::success(Some(KeyPair::from_row(
            row,
            &request.requester,
            true,
        )))),
        // The original inserts NULL as the owner and fails on the constraint.
        None => Ok(Outcome::failure(format!(
            "integrity error: there is no user with the email {user_id:?}"
        ))),
    }
}

async fn modify_keypair(
    ctx: &Context<'_>,
    access_key: String,
    props: ModifyKeyPairInput,
) -> Step<()> {
    let (_, client) = mutation::begin(ctx, "modify_keypair", MutationRoles::SuperadminOnly).await?;
    let changes = KeypairChanges {
        is_active: props.is_active,
        is_admin: props.is_admin,
        resource_policy: props.resource_policy,
        rate_limit: props.rate_limit,
    };
    Ok(
        if keypair_admin::update_keypair(&client, &access_key, &changes).await? {
            Outcome::success(None)
        } else {
            Outcome::no_match("ModifyKeyPair")
        },
    )
}

async fn delete_keypair(ctx: &Context<'_>, access_key: String) -> Step<()> {
    let (request, client) =
        mutation::begin(ctx, "delete_keypair", MutationRoles::SuperadminOnly).await?;
    if keypair_admin::main_key_users(&client, &access_key).await? > 0 {
        return Ok(Outcome::failure(
            "the keypair is used as main access key by any user",
        ));
    }
    if !keypair_admin::delete_keypair(&client, &access_key).await? {
        return Ok(Outcome::no_match("DeleteKeyPair"));
    }
    if let Some(redis) = &request.redis_stat {
        let mut connection = redis.clone();
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(format!("keypair.concurrency_used.{access_key}"))
            .query_async(&mut connection)
            .await;
    }
    Ok(Outcome::success(None))
}

#[derive(Default)]
pub struct KeyPairMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl KeyPairMutation {
    async fn create_keypair(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        props: KeyPairInput,
    ) -> CreateKeyPair {
        settle(create_keypair(ctx, user_id, props).await)
    }

    async fn modify_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        props: ModifyKeyPairInput,
    ) -> ModifyKeyPair {
        settle(modify_keypair(ctx, access_key, props).await)
    }

    async fn delete_keypair(&self, ctx: &Context<'_>, access_key: String) -> DeleteKeyPair {
        settle(delete_keypair(ctx, access_key).await)
    }
}
