//! Who may read and change what, as the original's `privileged_query`, `scoped_query` and
//! mutation `allowed_roles`, as pure functions of the caller and the arguments.
//!
//! - superadmin: everything;
//! - admin (domain admin): its own domain; asking for another domain is forbidden;
//! - user: its own objects in its own domain (sessions, keypairs, folders of its own);
//! - monitor: reads what a superadmin reads, changes nothing (the original 22.09 rejects the
//!   role as unknown in scoped queries; later versions made it a system-wide read-only role,
//!   which is what we implement). Like every non-superadmin it never sees other users'
//!   secret keys and is subject to `hide-agents`.

use bai_schema::enums::UserRole;

use super::context::Requester;
use super::error::GqlError;

/// Superadmin-only reads (`privileged_query(SUPERADMIN)`), which the monitor role may also run.
pub fn require_superadmin_read(requester: &Requester) -> Result<(), GqlError> {
    match requester.role {
        UserRole::Superadmin | UserRole::Monitor => Ok(()),
        _ => Err(GqlError::forbidden("superadmin privilege required")),
    }
}

/// The domain/user scope a scoped list or lookup runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<T> {
    /// Only objects of this domain, when set.
    pub domain_name: Option<String>,
    /// Only objects of this user (access key, email or uuid, depending on the query), when set.
    pub owner: Option<T>,
}

/// `scoped_query(autofill_user=..., user_key=...)`: narrows the requested domain and owner to
/// what the caller may see. `own_id` is the caller's id in the query's user key.
pub fn scoped<T: PartialEq + Clone>(
    requester: &Requester,
    autofill_user: bool,
    own_id: T,
    domain_name: Option<String>,
    owner: Option<T>,
) -> Result<Scope<T>, GqlError> {
    let autofill = |owner: Option<T>| match owner {
        None if autofill_user => Some(own_id.clone()),
        other => other,
    };
    let own_domain = || -> Result<String, GqlError> {
        match domain_name.as_deref() {
            Some(domain) if domain != requester.domain_name => Err(GqlError::forbidden(format!(
                "cannot query domain {domain:?} outside your own domain"
            ))),
            _ => Ok(requester.domain_name.clone()),
        }
    };
    match requester.role {
        UserRole::Superadmin | UserRole::Monitor => Ok(Scope {
            domain_name: domain_name.clone(),
            owner: autofill(owner),
        }),
        UserRole::Admin => Ok(Scope {
            domain_name: Some(own_domain()?),
            owner: autofill(owner),
        }),
        UserRole::User => {
            if owner.as_ref().is_some_and(|o| *o != own_id) {
                return Err(GqlError::forbidden("cannot query other users' objects"));
            }
            Ok(Scope {
                domain_name: Some(own_domain()?),
                owner: Some(own_id.clone()),
            })
        }
    }
}

/// The domain a domain-wide read (users, groups) is limited to: `None` for everything.
/// Users may not list other users at all.
pub fn domain_read_scope(
    requester: &Requester,
    domain_name: Option<String>,
    what: &str,
) -> Result<Option<String>, GqlError> {
    match requester.role {
        UserRole::Superadmin | UserRole::Monitor => Ok(domain_name),
        UserRole::Admin => match domain_name {
            Some(domain) if domain != requester.domain_name => Err(GqlError::forbidden(format!(
                "cannot query {what} of domain {domain:?} outside your own domain"
            ))),
            _ => Ok(Some(requester.domain_name.clone())),
        },
        UserRole::User => Err(GqlError::forbidden(format!("users cannot query {what}"))),
    }
}

/// The roles that may run a mutation (the original's `allowed_roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationRoles {
    SuperadminOnly,
    /// Superadmins, and domain admins within their own domain.
    AdminOrSuperadmin,
}

/// Whether the caller may run a mutation with the given allowed roles; the original answers a
/// denied mutation with `ok: false` and this message rather than a GraphQL error.
pub fn mutation_allowed(requester: &Requester, roles: MutationRoles) -> bool {
    matches!(
        (roles, requester.role),
        (_, UserRole::Superadmin) | (MutationRoles::AdminOrSuperadmin, UserRole::Admin)
    )
}

/// The message of a denied mutation, as the original.
pub fn no_permission_message(mutation: &str) -> String {
    format!("no permission to execute {mutation}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn requester(role: UserRole) -> Requester {
        Requester {
            access_key: "AKSELF".into(),
            is_admin: matches!(role, UserRole::Admin | UserRole::Superadmin),
            user_uuid: Uuid::nil(),
            email: "me@example.com".into(),
            role,
            domain_name: "default".into(),
        }
    }

    #[test]
    fn superadmin_and_monitor_keep_the_requested_scope() {
        for role in [UserRole::Superadmin, UserRole::Monitor] {
            let scope = scoped(
                &requester(role),
                false,
                "AKSELF",
                Some("other".into()),
                Some("AKX"),
            )
            .unwrap();
            assert_eq!(
                scope,
                Scope {
                    domain_name: Some("other".into()),
                    owner: Some("AKX")
                }
            );
            let scope = scoped(&requester(role), true, "AKSELF", None, None).unwrap();
            assert_eq!(scope.owner, Some("AKSELF"));
        }
    }

    #[test]
    fn admin_is_confined_to_its_domain() {
        let admin = requester(UserRole::Admin);
        let scope = scoped(&admin, false, "AKSELF", None, Some("AKX")).unwrap();
        assert_eq!(
            scope,
            Scope {
                domain_name: Some("default".into()),
                owner: Some("AKX")
            }
        );
        assert!(matches!(
            scoped(&admin, false, "AKSELF", Some("other".into()), None),
            Err(GqlError::Forbidden(_))
        ));
    }

    #[test]
    fn user_sees_only_its_own() {
        let user = requester(UserRole::User);
        let scope = scoped(&user, false, "AKSELF", None, None).unwrap();
        assert_eq!(
            scope,
            Scope {
                domain_name: Some("default".into()),
                owner: Some("AKSELF")
            }
        );
        assert!(matches!(
            scoped(&user, false, "AKSELF", None, Some("AKOTHER")),
            Err(GqlError::Forbidden(_))
        ));
        assert!(domain_read_scope(&user, None, "users").is_err());
    }

    #[test]
    fn mutations_follow_allowed_roles() {
        assert!(mutation_allowed(
            &requester(UserRole::Superadmin),
            MutationRoles::SuperadminOnly
        ));
        assert!(!mutation_allowed(
            &requester(UserRole::Admin),
            MutationRoles::SuperadminOnly
        ));
        assert!(mutation_allowed(
            &requester(UserRole::Admin),
            MutationRoles::AdminOrSuperadmin
        ));
        assert!(!mutation_allowed(
            &requester(UserRole::Monitor),
            MutationRoles::AdminOrSuperadmin
        ));
        assert!(!mutation_allowed(
            &requester(UserRole::User),
            MutationRoles::AdminOrSuperadmin
        ));
        assert_eq!(
            no_permission_message("create_user"),
            "no permission to execute create_user"
        );
    }
}
