//! Acting on behalf of another keypair (`owner_access_key`), as the original's
//! `get_access_key_scopes`: superadmins may act for anyone, domain admins for non-superadmins
//! of their own domain, users only for themselves.

use bai_schema::enums::UserRole;
use bai_schema::queries::keypair::{KeypairOwner, find_keypair_owner};
use deadpool_postgres::GenericClient;

use super::context::AuthContext;
use crate::facade::problem::{Problem, ProblemKind};

/// Whose keypair a request acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyScope {
    pub requester: String,
    pub owner: String,
    /// The owner's user, when it is not the requester.
    pub delegated_owner: Option<KeypairOwner>,
}

impl AccessKeyScope {
    pub fn is_delegated(&self) -> bool {
        self.delegated_owner.is_some()
    }
}

/// Whether `caller` may act on behalf of `owner` (a different keypair).
pub fn check_delegation(caller: &AuthContext, owner: &KeypairOwner) -> Result<(), Problem> {
    let forbidden = |msg: &str| Problem::new(ProblemKind::GenericForbidden).with_msg(msg);
    if caller.is_superadmin {
        return Ok(());
    }
    if !caller.is_admin {
        return Err(forbidden(
            "Only admins can perform operations on behalf of other users.",
        ));
    }
    if owner.domain_name.as_deref() != Some(caller.domain_name()) {
        return Err(forbidden(
            "Domain-admins can perform operations on behalf of other users in the same domain only.",
        ));
    }
    if owner.role == UserRole::Superadmin {
        return Err(forbidden(
            "Domain-admins cannot perform operations on behalf of super-admins.",
        ));
    }
    Ok(())
}

/// The requester and owner access keys of a request with an optional `owner_access_key`.
pub async fn access_key_scope(
    caller: &AuthContext,
    client: &impl GenericClient,
    owner_access_key: Option<&str>,
) -> Result<AccessKeyScope, Problem> {
    let requester = caller.access_key.clone();
    let Some(owner_key) = owner_access_key.filter(|owner| *owner != requester) else {
        return Ok(AccessKeyScope {
            owner: requester.clone(),
            requester,
            delegated_owner: None,
        });
    };
    let owner = find_keypair_owner(client, owner_key)
        .await
        .map_err(|e| Problem::internal(format!("cannot look up the owner access key: {e}")))?
        .ok_or_else(|| Problem::invalid_params("Unknown owner access key"))?;
    check_delegation(caller, &owner)?;
    Ok(AccessKeyScope {
        requester,
        owner: owner.access_key.clone(),
        delegated_owner: Some(owner),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::enums::{DefaultForUnspecified, UserStatus};
    use bai_schema::queries::keypair::{KeypairResourcePolicy, KeypairUser};
    use uuid::Uuid;

    fn caller(role: UserRole, is_admin: bool, domain: &str) -> AuthContext {
        AuthContext {
            access_key: "AKCALLER".into(),
            is_admin,
            is_superadmin: role == UserRole::Superadmin,
            rate_limit: 1000,
            user_id: None,
            user: KeypairUser {
                uuid: Uuid::nil(),
                username: None,
                email: "c@x".into(),
                full_name: None,
                domain_name: Some(domain.into()),
                role,
                status: UserStatus::Active,
                allowed_client_ip: vec![],
                need_password_change: false,
                sudo_session_enabled: false,
                main_access_key: None,
                resource_policy: "default".into(),
            },
            resource_policy: KeypairResourcePolicy {
                name: "default".into(),
                default_for_unspecified: DefaultForUnspecified::Unlimited,
                total_resource_slots: Default::default(),
                max_session_lifetime: 0,
                max_concurrent_sessions: 5,
                max_pending_session_count: None,
                max_pending_session_resource_slots: None,
                max_concurrent_sftp_sessions: 1,
                max_containers_per_session: 1,
                max_vfolder_count: 10,
                max_vfolder_size: 0,
                idle_timeout: 0,
                allowed_vfolder_hosts: serde_json::json!({}),
            },
        }
    }

    fn owner(role: UserRole, domain: &str) -> KeypairOwner {
        KeypairOwner {
            access_key: "AKOWNER".into(),
            user_uuid: Uuid::nil(),
            domain_name: Some(domain.into()),
            role,
            resource_policy: "default".into(),
        }
    }

    #[test]
    fn who_may_act_for_whom() {
        let superadmin = caller(UserRole::Superadmin, true, "default");
        let domain_admin = caller(UserRole::Admin, true, "default");
        let user = caller(UserRole::User, false, "default");
        assert!(check_delegation(&superadmin, &owner(UserRole::Superadmin, "other")).is_ok());
        assert!(check_delegation(&domain_admin, &owner(UserRole::User, "default")).is_ok());
        for (who, whom) in [
            (&domain_admin, owner(UserRole::User, "other")),
            (&domain_admin, owner(UserRole::Superadmin, "default")),
            (&user, owner(UserRole::User, "default")),
        ] {
            let problem = check_delegation(who, &whom).unwrap_err();
            assert_eq!(problem.status_code(), 403);
            assert_eq!(
                problem.body()["type"],
                "https://api.backend.ai/probs/generic-forbidden"
            );
        }
    }
}
