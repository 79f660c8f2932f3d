//! Scaling groups a request may use: the union of those associated with the domain, the
//! group (project) and the keypair, active ones only, ordered by name (`query_allowed_sgroups`).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// A group (project) named by id or by name, within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(Uuid),
    Name(String),
}

impl GroupRef {
    /// A UUID-looking value is an id, anything else a name (the original's `UUID | String`).
    pub fn parse(text: &str) -> GroupRef {
        match Uuid::parse_str(text) {
            Ok(id) => GroupRef::Id(id),
            Err(_) => GroupRef::Name(text.to_owned()),
        }
    }

    fn as_params(&self) -> (Option<Uuid>, Option<&str>) {
        match self {
            GroupRef::Id(id) => (Some(*id), None),
            GroupRef::Name(name) => (None, Some(name.as_str())),
        }
    }
}

/// One allowed scaling group.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedScalingGroup {
    pub name: String,
    pub is_public: bool,
    pub use_host_network: bool,
    pub wsproxy_addr: Option<String>,
    pub scheduler_opts: serde_json::Value,
}

const ALLOWED_SQL: &str = r#"
SELECT s.name, s.is_public, s.use_host_network, s.wsproxy_addr, s.scheduler_opts
FROM scaling_groups s
WHERE s.is_active AND s.name IN (
    SELECT scaling_group FROM sgroups_for_domains WHERE domain = $1
    UNION
    SELECT f.scaling_group FROM sgroups_for_groups f JOIN groups g ON f."group" = g.id
    WHERE g.domain_name = $1 AND (g.id = $2 OR g.name = $3)
    UNION
    SELECT scaling_group FROM sgroups_for_keypairs WHERE access_key = $4
)
ORDER BY s.name
"#;

/// The scaling groups allowed for `access_key` in `domain` and `group`.
pub async fn allowed_scaling_groups(
    client: &impl GenericClient,
    domain: &str,
    group: &GroupRef,
    access_key: &str,
) -> Result<Vec<AllowedScalingGroup>, QueryError> {
    let statement = client
        .prepare_cached(ALLOWED_SQL)
        .await
        .map_err(db_err("preparing the allowed scaling groups query"))?;
    let (group_id, group_name) = group.as_params();
    let rows = client
        .query(&statement, &[&domain, &group_id, &group_name, &access_key])
        .await
        .map_err(db_err("listing the allowed scaling groups"))?;
    rows.into_iter()
        .map(|row| {
            Ok(AllowedScalingGroup {
                name: row.read(0)?,
                is_public: row.read(1)?,
                use_host_network: row.read(2)?,
                wsproxy_addr: row.read(3)?,
                scheduler_opts: row.read(4)?,
            })
        })
        .collect()
}

const KEYPAIR_ALLOWED_NAMES_SQL: &str = r#"
SELECT s.name
FROM scaling_groups s
WHERE s.is_active AND s.name IN (
    SELECT d.scaling_group FROM sgroups_for_domains d
    JOIN users u ON u.domain_name = d.domain
    JOIN keypairs k ON k."user" = u.uuid
    WHERE k.access_key = $1
    UNION
    SELECT f.scaling_group FROM sgroups_for_groups f
    JOIN association_groups_users a ON a.group_id = f."group"
    JOIN keypairs k ON k."user" = a.user_id
    WHERE k.access_key = $1
    UNION
    SELECT scaling_group FROM sgroups_for_keypairs WHERE access_key = $1
)
ORDER BY s.name
"#;

/// The names of the active scaling groups `access_key` may use through its user's domain,
/// any project its user belongs to, or the keypair itself (what the original's
/// `_append_sgroup_from_clause` allows when no scaling group is named).
pub async fn keypair_allowed_scaling_group_names(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<Vec<String>, QueryError> {
    let statement = client
        .prepare_cached(KEYPAIR_ALLOWED_NAMES_SQL)
        .await
        .map_err(db_err("preparing the keypair's scaling groups query"))?;
    let rows = client
        .query(&statement, &[&access_key])
        .await
        .map_err(db_err("listing the keypair's scaling groups"))?;
    rows.iter()
        .map(|row| {
            row.try_get(0)
                .map_err(db_err("reading the keypair's scaling groups"))
        })
        .collect()
}

/// Whether `scaling_group` allows `session_type` (`interactive`, `batch`, ...): its
/// `scheduler_opts.allowed_session_types`, by default interactive and batch.
pub fn allows_session_type(scheduler_opts: &serde_json::Value, session_type: &str) -> bool {
    match scheduler_opts
        .get("allowed_session_types")
        .and_then(|v| v.as_array())
    {
        Some(types) => types.iter().any(|t| {
            t.as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(session_type))
        }),
        None => matches!(session_type, "interactive" | "batch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_references_are_ids_or_names() {
        assert_eq!(
            GroupRef::parse("2de2b969-1d04-48a6-af16-0bc8adb3c831"),
            GroupRef::Id(Uuid::parse_str("2de2b969-1d04-48a6-af16-0bc8adb3c831").unwrap())
        );
        assert_eq!(GroupRef::parse("default"), GroupRef::Name("default".into()));
    }

    #[test]
    fn session_types_default_to_interactive_and_batch() {
        assert!(allows_session_type(&json!({}), "interactive"));
        assert!(allows_session_type(&json!({}), "batch"));
        assert!(!allows_session_type(&json!({}), "inference"));
        let opts = json!({"allowed_session_types": ["batch"]});
        assert!(!allows_session_type(&opts, "interactive"));
        assert!(allows_session_type(&opts, "batch"));
    }
}
