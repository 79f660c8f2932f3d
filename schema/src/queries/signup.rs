//! Self sign-up (`POST /auth/signup`, the original's `auth.signup`): the domain check, and
//! the user row a sign-up creates (active, `status_info` "user-signup", role user, resource
//! policy `default`) with its membership of the domain's `default` group. The keypair is
//! `keypair_admin::insert_keypair`; the caller runs all of it in one transaction.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// A user signing up (password already hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignupUser {
    pub domain_name: String,
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub full_name: String,
    pub description: String,
}

/// Why a sign-up row could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupConflict {
    Email,
    Username,
}

/// Whether the domain exists (`None` when not) and is active.
pub async fn domain_active(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<bool>, QueryError> {
    let Some(row) = client
        .query_opt("SELECT is_active FROM domains WHERE name = $1", &[&name])
        .await
        .map_err(db_err("looking up the sign-up domain"))?
    else {
        return Ok(None);
    };
    let active: Option<bool> = row.read(0)?;
    Ok(Some(active.unwrap_or(false)))
}

/// Inserts the user unless its email or username is taken; the new uuid, or what is taken.
/// A concurrent sign-up of the same email loses on the unique index and reads as taken.
pub async fn insert_signup_user(
    client: &impl GenericClient,
    user: &SignupUser,
) -> Result<Result<Uuid, SignupConflict>, QueryError> {
    let taken = client
        .query_opt(
            "SELECT email = $1 FROM users WHERE email = $1 OR username = $2 LIMIT 1",
            &[&user.email, &user.username],
        )
        .await
        .map_err(db_err("checking the sign-up email"))?;
    if let Some(row) = taken {
        let same_email: bool = row.read(0)?;
        return Ok(Err(if same_email {
            SignupConflict::Email
        } else {
            SignupConflict::Username
        }));
    }
    let inserted = client
        .query_opt(
            "INSERT INTO users (username, email, password, need_password_change, full_name, \
                 description, status, status_info, domain_name, role, resource_policy) \
             VALUES ($1, $2, $3, false, $4, $5, 'active', 'user-signup', $6, 'user', 'default') \
             ON CONFLICT DO NOTHING RETURNING uuid",
            &[
                &user.username,
                &user.email,
                &user.password_hash,
                &user.full_name,
                &user.description,
                &user.domain_name,
            ],
        )
        .await
        .map_err(db_err("creating a signed-up user"))?;
    match inserted {
        Some(row) => Ok(Ok(row.read(0)?)),
        None => Ok(Err(SignupConflict::Email)),
    }
}

/// Adds the user to the `default` group of `domain`, when there is one; whether it did.
pub async fn join_default_group(
    client: &impl GenericClient,
    user: Uuid,
    domain: &str,
) -> Result<bool, QueryError> {
    let added = client
        .execute(
            "INSERT INTO association_groups_users (user_id, group_id) \
             SELECT $1, g.id FROM groups g WHERE g.domain_name = $2 AND g.name = 'default' \
             ON CONFLICT DO NOTHING",
            &[&user, &domain],
        )
        .await
        .map_err(db_err("adding a signed-up user to the default group"))?;
    Ok(added > 0)
}
