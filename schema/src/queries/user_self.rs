//! What users change about themselves: full name, password, sign-out (deactivation of the
//! user and its keypairs), and the keypair's SSH keypair.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, db_err};

/// Sets the full name of the user `email` in `domain`; whether the user exists.
pub async fn update_full_name(
    client: &impl GenericClient,
    domain: &str,
    email: &str,
    full_name: &str,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE users SET full_name = $3, modified_at = now() \
             WHERE domain_name = $1 AND email = $2",
            &[&domain, &email, &full_name],
        )
        .await
        .map_err(db_err("changing a user's full name"))?;
    Ok(updated > 0)
}

/// Stores a new password hash of `user` (no change needed afterwards, changed now).
pub async fn update_password(
    client: &impl GenericClient,
    user: Uuid,
    password_hash: &str,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE users SET password = $2, need_password_change = false, \
                 password_changed_at = now(), modified_at = now() WHERE uuid = $1",
            &[&user, &password_hash],
        )
        .await
        .map_err(db_err("changing a user's password"))?;
    Ok(())
}

/// Deactivates the user `email` and every keypair of it (the original's sign-out).
pub async fn deactivate_user(client: &impl GenericClient, email: &str) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE users SET status = 'inactive', modified_at = now() WHERE email = $1",
            &[&email],
        )
        .await
        .map_err(db_err("deactivating a user"))?;
    client
        .execute(
            "UPDATE keypairs SET is_active = false, modified_at = now() WHERE user_id = $1",
            &[&email],
        )
        .await
        .map_err(db_err("deactivating a user's keypairs"))?;
    Ok(())
}

/// The SSH public key of `access_key` (`None` when unset).
pub async fn ssh_public_key(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<Option<String>, QueryError> {
    let row = client
        .query_opt(
            "SELECT ssh_public_key FROM keypairs WHERE access_key = $1",
            &[&access_key],
        )
        .await
        .map_err(db_err("reading an SSH public key"))?;
    Ok(row
        .map(|row| row.try_get::<_, Option<String>>(0))
        .transpose()
        .map_err(db_err("reading an SSH public key"))?
        .flatten())
}

/// Stores the SSH keypair of `access_key`.
pub async fn set_ssh_keypair(
    client: &impl GenericClient,
    access_key: &str,
    public_key: &str,
    private_key: &str,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE keypairs SET ssh_public_key = $2, ssh_private_key = $3 WHERE access_key = $1",
            &[&access_key, &public_key, &private_key],
        )
        .await
        .map_err(db_err("storing an SSH keypair"))?;
    Ok(())
}
