//! `QuotaScope` (the 23.09 API the 23.09 Web UI's storage panels send): the `quota_scope` query
//! and the `set_quota_scope` / `unset_quota_scope` mutations, read from and written to the
//! storage proxy's quota-scope API (`GET`/`PATCH /quota-scope`, `DELETE /quota-scope/quota`).
//! A proxy whose volume keeps no quota scopes answers with empty details, as the original.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use bai_schema::queries::QueryError;
use bai_schema::queries::dotfiles::is_project_member;
use bai_schema::queries::quota_scope::{project_domain, user_domain};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::context::{GqlRequest, Requester};
use super::error::GqlError;
use super::scalars::BigInt;
use super::sql;
use super::storage_volume::{broker_of, storage_failed};
use crate::storage::VFolderHost;

/// Whose storage a quota scope limits: `user:<uuid>` or `project:<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScopeOwner {
    User(Uuid),
    Project(Uuid),
}

impl QuotaScopeOwner {
    /// Parses a quota scope id as the original's `QuotaScopeID.parse`.
    pub fn parse(quota_scope_id: &str) -> Result<QuotaScopeOwner, GqlError> {
        let invalid = || {
            GqlError::invalid(format!(
                "invalid quota scope id {quota_scope_id:?} (expected user:<uuid> or project:<uuid>)"
            ))
        };
        let (kind, id) = quota_scope_id.split_once(':').ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        match kind {
            "user" => Ok(QuotaScopeOwner::User(id)),
            "project" => Ok(QuotaScopeOwner::Project(id)),
            _ => Err(invalid()),
        }
    }
}

/// The usage and limit of a quota scope (`QuotaDetails`); every figure may be unknown.
#[derive(SimpleObject, Debug, Clone, Default, PartialEq)]
#[graphql(name = "QuotaDetails", rename_fields = "snake_case")]
pub struct QuotaDetails {
    pub usage_bytes: Option<BigInt>,
    pub usage_count: Option<BigInt>,
    pub hard_limit_bytes: Option<BigInt>,
}

/// The proxy's `{"used_bytes", "limit_bytes"}` as details (negative figures are unknown).
pub fn details_from_proxy(reply: &Value) -> QuotaDetails {
    let figure = |key: &str| {
        reply
            .get(key)
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
            .map(BigInt)
    };
    QuotaDetails {
        usage_bytes: figure("used_bytes"),
        usage_count: None,
        // The original treats a zero limit as no limit.
        hard_limit_bytes: figure("limit_bytes").filter(|n| n.0 > 0),
    }
}

/// One quota scope on one storage host.
#[derive(Debug, Clone)]
pub struct QuotaScope {
    quota_scope_id: String,
    storage_host_name: String,
}

#[Object(name = "QuotaScope", rename_fields = "snake_case")]
impl QuotaScope {
    async fn id(&self) -> ID {
        ID(format!(
            "QuotaScope:{}/{}",
            self.storage_host_name, self.quota_scope_id
        ))
    }

    async fn quota_scope_id(&self) -> &str {
        &self.quota_scope_id
    }

    async fn storage_host_name(&self) -> &str {
        &self.storage_host_name
    }

    /// Read live from the storage proxy; empty when it keeps no such scope.
    async fn details(&self, ctx: &Context<'_>) -> async_graphql::Result<QuotaDetails> {
        let request = GqlRequest::of(ctx)?;
        let host = VFolderHost::split(&self.storage_host_name);
        let view = broker_of(request)?.current();
        let client = view.client(&host.proxy).map_err(storage_failed)?;
        let body = json!({"volume": host.volume, "qsid": self.quota_scope_id});
        match client
            .call(
                Method::GET,
                "quota-scope",
                "reading a quota scope",
                Some(&body),
            )
            .await
        {
            Ok(Some(reply)) => Ok(details_from_proxy(&reply)),
            // No scope there yet, or a backend without quota scopes: nothing is known.
            Ok(None) | Err(_) => Ok(QuotaDetails::default()),
        }
    }
}

/// What `set_quota_scope` may change.
#[derive(InputObject, Debug)]
#[graphql(name = "QuotaScopeInput", rename_fields = "snake_case")]
pub struct QuotaScopeInput {
    pub hard_limit_bytes: Option<BigInt>,
}

/// The reply of `set_quota_scope` and `unset_quota_scope`.
#[derive(SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct SetQuotaScope {
    pub quota_scope: Option<QuotaScope>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UnsetQuotaScope {
    pub quota_scope: Option<QuotaScope>,
}

fn database_failed(error: QueryError) -> GqlError {
    GqlError::Database(error.to_string())
}

/// The original's `ensure_quota_scope_accessible_by_user`: superadmins reach every scope,
/// admins the scopes of their domain, users their own scope and their projects' scopes.
async fn ensure_accessible(
    request: &GqlRequest,
    requester: &Requester,
    owner: QuotaScopeOwner,
) -> Result<(), GqlError> {
    if requester.role == UserRole::Superadmin {
        return Ok(());
    }
    let client = sql::connection(&request.db).await?;
    let domain = match owner {
        QuotaScopeOwner::User(user) => user_domain(&client, user).await,
        QuotaScopeOwner::Project(project) => project_domain(&client, project).await,
    }
    .map_err(database_failed)?
    .ok_or_else(|| GqlError::invalid("no such quota scope"))?;
    let allowed = match (requester.role, owner) {
        (UserRole::Admin, _) => domain == requester.domain_name,
        (_, QuotaScopeOwner::User(user)) => user == requester.user_uuid,
        (_, QuotaScopeOwner::Project(project)) => {
            domain == requester.domain_name
                && is_project_member(&client, project, requester.user_uuid)
                    .await
                    .map_err(database_failed)?
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(GqlError::forbidden(
            "the quota scope is not accessible by the user",
        ))
    }
}

fn require_admin(requester: &Requester, mutation: &str) -> Result<(), GqlError> {
    match requester.role {
        UserRole::Superadmin | UserRole::Admin => Ok(()),
        _ => Err(GqlError::forbidden(format!(
            "no permission to execute {mutation}"
        ))),
    }
}

#[derive(Default)]
pub struct QuotaScopeQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl QuotaScopeQuery {
    /// One quota scope on one storage host.
    async fn quota_scope(
        &self,
        ctx: &Context<'_>,
        storage_host_name: String,
        quota_scope_id: String,
    ) -> async_graphql::Result<QuotaScope> {
        let request = GqlRequest::of(ctx)?;
        let owner = QuotaScopeOwner::parse(&quota_scope_id)?;
        ensure_accessible(request, &request.requester, owner).await?;
        Ok(QuotaScope {
            quota_scope_id,
            storage_host_name,
        })
    }
}

#[derive(Default)]
pub struct QuotaScopeMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl QuotaScopeMutation {
    /// Sets the hard limit of a quota scope (admins), creating the scope when the proxy has
    /// none yet; without `hard_limit_bytes` it changes nothing.
    async fn set_quota_scope(
        &self,
        ctx: &Context<'_>,
        quota_scope_id: String,
        storage_host_name: String,
        props: QuotaScopeInput,
    ) -> async_graphql::Result<SetQuotaScope> {
        let request = GqlRequest::of(ctx)?;
        require_admin(&request.requester, "set_quota_scope")?;
        let owner = QuotaScopeOwner::parse(&quota_scope_id)?;
        ensure_accessible(request, &request.requester, owner).await?;
        if let Some(limit) = props.hard_limit_bytes {
            let host = VFolderHost::split(&storage_host_name);
            let view = broker_of(request)?.current();
            let client = view.client(&host.proxy).map_err(storage_failed)?;
            let body = json!({
                "volume": host.volume,
                "qsid": quota_scope_id,
                "options": {"limit_bytes": limit.0},
            });
            client
                .call(
                    Method::PATCH,
                    "quota-scope",
                    "setting a quota scope",
                    Some(&body),
                )
                .await
                .map_err(storage_failed)?;
        }
        Ok(SetQuotaScope {
            quota_scope: Some(QuotaScope {
                quota_scope_id,
                storage_host_name,
            }),
        })
    }

    /// Removes the hard limit of a quota scope (admins).
    async fn unset_quota_scope(
        &self,
        ctx: &Context<'_>,
        quota_scope_id: String,
        storage_host_name: String,
    ) -> async_graphql::Result<UnsetQuotaScope> {
        let request = GqlRequest::of(ctx)?;
        require_admin(&request.requester, "unset_quota_scope")?;
        let owner = QuotaScopeOwner::parse(&quota_scope_id)?;
        ensure_accessible(request, &request.requester, owner).await?;
        let host = VFolderHost::split(&storage_host_name);
        let view = broker_of(request)?.current();
        let client = view.client(&host.proxy).map_err(storage_failed)?;
        let body = json!({"volume": host.volume, "qsid": quota_scope_id});
        client
            .call(
                Method::DELETE,
                "quota-scope/quota",
                "unsetting a quota scope",
                Some(&body),
            )
            .await
            .map_err(storage_failed)?;
        Ok(UnsetQuotaScope {
            quota_scope: Some(QuotaScope {
                quota_scope_id,
                storage_host_name,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_scope_ids_name_a_user_or_a_project() {
        let id = Uuid::parse_str("2de2b969-1d04-48a6-af16-0bc8adb3c831").unwrap();
        assert_eq!(
            QuotaScopeOwner::parse(&format!("project:{id}")).unwrap(),
            QuotaScopeOwner::Project(id)
        );
        assert_eq!(
            QuotaScopeOwner::parse(&format!("user:{id}")).unwrap(),
            QuotaScopeOwner::User(id)
        );
        for bad in [
            "",
            "user",
            "user:",
            "group:2de2b969-1d04-48a6-af16-0bc8adb3c831",
            "user:x",
        ] {
            assert!(QuotaScopeOwner::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn proxy_figures_become_details_and_unknowns_stay_empty() {
        let details = details_from_proxy(&json!({"used_bytes": 1024, "limit_bytes": 4096}));
        assert_eq!(details.usage_bytes, Some(BigInt(1024)));
        assert_eq!(details.hard_limit_bytes, Some(BigInt(4096)));
        let unknown = details_from_proxy(&json!({"used_bytes": null, "limit_bytes": 0}));
        assert_eq!(unknown, QuotaDetails::default());
        assert_eq!(
            details_from_proxy(&json!({"used_bytes": -1})).usage_bytes,
            None
        );
    }
}
