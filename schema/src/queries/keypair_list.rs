//! The keypairs of the GraphQL `KeyPair` type: one by access key, the legacy `keypairs` list
//! and a page with the original's `filter`/`order` names (`KeyPair._queryfilter_fieldspec` and
//! `_queryorder_colmap`), over the columns of `keypair_admin` (decoded by `KeypairRow::decode`).

use deadpool_postgres::GenericClient;

use super::QueryError;
use super::keypair_admin::{KEYPAIR_COLUMNS, KEYPAIR_FROM, KeypairRow};
use super::listing::{Conditions, Listing, SqlParams, query_as};
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The newest keypairs first, as the original; the access key keeps pages stable.
const DEFAULT_KEYPAIR_ORDER: &str = "k.created_at DESC, k.access_key";

/// Which keypairs a list takes: of a domain (the owner's), of one owner (by email), active or
/// not.
#[derive(Debug, Clone, Default)]
pub struct KeypairScope {
    pub domain_name: Option<String>,
    pub email: Option<String>,
    pub is_active: Option<bool>,
}

impl KeypairScope {
    fn conditions(&self, params: &mut SqlParams) -> Conditions {
        let mut conditions = Conditions::new();
        if let Some(domain) = &self.domain_name {
            conditions.add(format!("u.domain_name = {}", params.push(domain.clone())));
        }
        if let Some(email) = &self.email {
            conditions.add(format!("k.user_id = {}", params.push(email.clone())));
        }
        if let Some(is_active) = self.is_active {
            conditions.add(format!("k.is_active = {}", params.push(is_active)));
        }
        conditions
    }
}

/// The original's `KeyPair._queryfilter_fieldspec`.
pub const KEYPAIR_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "access_key",
        sql: "k.access_key",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "user_id",
        sql: "u.uuid",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "email",
        sql: "u.email",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "full_name",
        sql: "u.full_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "is_active",
        sql: "k.is_active",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "is_admin",
        sql: "k.is_admin",
        kind: FieldKind::Bool,
    },
    FilterField {
        name: "resource_policy",
        sql: "k.resource_policy",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "created_at",
        sql: "k.created_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "last_used",
        sql: "k.last_used",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "rate_limit",
        sql: "k.rate_limit",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "num_queries",
        sql: "k.num_queries",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "ssh_public_key",
        sql: "k.ssh_public_key",
        kind: FieldKind::Text,
    },
];

/// The original's `KeyPair._queryorder_colmap`.
pub const KEYPAIR_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "access_key",
        sql: "k.access_key",
    },
    OrderField {
        name: "email",
        sql: "u.email",
    },
    OrderField {
        name: "full_name",
        sql: "u.full_name",
    },
    OrderField {
        name: "is_active",
        sql: "k.is_active",
    },
    OrderField {
        name: "is_admin",
        sql: "k.is_admin",
    },
    OrderField {
        name: "resource_policy",
        sql: "k.resource_policy",
    },
    OrderField {
        name: "created_at",
        sql: "k.created_at",
    },
    OrderField {
        name: "last_used",
        sql: "k.last_used",
    },
    OrderField {
        name: "rate_limit",
        sql: "k.rate_limit",
    },
    OrderField {
        name: "num_queries",
        sql: "k.num_queries",
    },
];

fn select(where_clause: &str) -> String {
    format!("SELECT {KEYPAIR_COLUMNS} FROM {KEYPAIR_FROM} {where_clause}")
}

fn by_access_key_sql(
    domain_name: Option<String>,
    access_key: String,
    params: &mut SqlParams,
) -> String {
    let scope = KeypairScope {
        domain_name,
        ..KeypairScope::default()
    };
    let mut conditions = scope.conditions(params);
    conditions.add(format!("k.access_key = {}", params.push(access_key)));
    select(&conditions.where_clause())
}

/// One keypair by access key (of an owner in `domain_name`, when given).
pub async fn keypair(
    client: &impl GenericClient,
    domain_name: Option<String>,
    access_key: String,
) -> Result<Vec<KeypairRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = by_access_key_sql(domain_name, access_key, &mut params);
    query_as(
        client,
        &sql,
        &params,
        "reading a keypair",
        KeypairRow::decode,
    )
    .await
}

fn all_sql(scope: &KeypairScope, limit: Option<i64>, params: &mut SqlParams) -> String {
    let limit = match limit {
        Some(limit) => format!(" LIMIT {limit}"),
        None => String::new(),
    };
    let conditions = scope.conditions(params);
    format!(
        "{} ORDER BY {DEFAULT_KEYPAIR_ORDER}{limit}",
        select(&conditions.where_clause())
    )
}

/// The keypairs of `scope`, newest first, at most `limit` (the legacy `keypairs` query).
pub async fn keypairs(
    client: &impl GenericClient,
    scope: &KeypairScope,
    limit: Option<i64>,
) -> Result<Vec<KeypairRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = all_sql(scope, limit, &mut params);
    query_as(
        client,
        &sql,
        &params,
        "reading keypairs",
        KeypairRow::decode,
    )
    .await
}

/// A page of the keypairs of `scope`, filtered and ordered by the client's `filter`/`order`.
pub fn keypair_page(
    scope: &KeypairScope,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let mut conditions = scope.conditions(&mut params);
    if let Some(condition) = minilang::filter_sql(filter, KEYPAIR_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, KEYPAIR_ORDER_FIELDS)? {
        Some(order) => format!("{order}, k.access_key"),
        None => DEFAULT_KEYPAIR_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: select(&where_clause),
        count: format!("SELECT count(*) FROM {KEYPAIR_FROM} {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

/// The statements this module assembles, for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let scope = KeypairScope {
        domain_name: Some("default".into()),
        email: Some("a@example.com".into()),
        is_active: Some(true),
    };
    let mut out = vec![
        by_access_key_sql(Some("default".into()), "AKIA".into(), &mut SqlParams::new()),
        all_sql(&scope, Some(100), &mut SqlParams::new()),
        all_sql(&scope, None, &mut SqlParams::new()),
    ];
    for (filter, order) in [
        (None, None),
        (Some("is_admin == false"), Some("-access_key")),
    ] {
        let (page, count) = keypair_page(&scope, filter, order)?.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
}
