//! The shape and the common steps of every mutation: the `{ok, msg, <object>}` payload, the
//! role check (a denied mutation answers `ok: false`, "no permission to execute <name>", as the
//! original), and the mapping of database failures to the original's messages.

use async_graphql::Context;
use deadpool_postgres::Object;
use tokio_postgres::error::SqlState;

use super::context::GqlRequest;
use super::error::GqlError;
pub use super::permissions::MutationRoles;
use super::permissions::{mutation_allowed, no_permission_message};

/// The outcome of a mutation before it becomes its GraphQL payload.
#[derive(Debug)]
pub struct Outcome<T> {
    pub ok: bool,
    pub msg: String,
    pub item: Option<T>,
}

impl<T> Outcome<T> {
    pub fn success(item: Option<T>) -> Outcome<T> {
        Outcome {
            ok: true,
            msg: "success".to_owned(),
            item,
        }
    }

    pub fn failure(msg: impl Into<String>) -> Outcome<T> {
        Outcome {
            ok: false,
            msg: msg.into(),
            item: None,
        }
    }

    /// Nothing matched the mutation's target (`no matching <payload type, lower-cased>`).
    pub fn no_match(payload_type: &str) -> Outcome<T> {
        Outcome::failure(format!("no matching {}", payload_type.to_lowercase()))
    }
}

impl<T> From<GqlError> for Outcome<T> {
    fn from(error: GqlError) -> Outcome<T> {
        Outcome::failure(match error {
            GqlError::Database(_) | GqlError::Internal(_) => {
                "unexpected error: internal server error".to_owned()
            }
            other => other.to_string(),
        })
    }
}

impl<T> From<tokio_postgres::Error> for Outcome<T> {
    fn from(error: tokio_postgres::Error) -> Outcome<T> {
        Outcome::failure(db_failure_message(&error))
    }
}

/// A failed query module call: a failed statement reads as the original's message for it
/// (`db_failure_message`); a row that does not decode is an internal error.
impl<T> From<bai_schema::queries::QueryError> for Outcome<T> {
    fn from(error: bai_schema::queries::QueryError) -> Outcome<T> {
        match error {
            bai_schema::queries::QueryError::Db { source, .. } => Outcome::from(source),
            other => Outcome::from(GqlError::Database(other.to_string())),
        }
    }
}

/// The original's message for a failed statement: `integrity error: ...` for constraint
/// violations, the database's message for bad data, `unexpected error: ...` otherwise. Only the
/// primary message is used; its `DETAIL` (which may quote row values) is not.
pub fn db_failure_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) if db.code().code().starts_with("23") => {
            format!("integrity error: {}", db.message())
        }
        Some(db) if db.code().code().starts_with("22") => db.message().to_owned(),
        Some(db) => format!("unexpected error: {}", db.message()),
        None => format!("unexpected error: {error}"),
    }
}

/// Whether a failed statement is worth retrying (serialization failure or deadlock).
pub fn is_retryable(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The request data and a database connection for a mutation the caller may run, or the
/// "no permission" outcome.
pub async fn begin<'a, T>(
    ctx: &Context<'a>,
    mutation_name: &str,
    roles: MutationRoles,
) -> Result<(&'a GqlRequest, Object), Outcome<T>> {
    let request = GqlRequest::of(ctx).map_err(Outcome::from)?;
    if !mutation_allowed(&request.requester, roles) {
        return Err(Outcome::failure(no_permission_message(mutation_name)));
    }
    let client = super::sql::connection(&request.db)
        .await
        .map_err(Outcome::from)?;
    Ok((request, client))
}

/// Declares a mutation payload type: `ok`, `msg` and optionally the changed object, named as
/// the original's mutation class.
macro_rules! mutation_payload {
    ($rust:ident, $gql:literal) => {
        #[derive(async_graphql::SimpleObject)]
        #[graphql(name = $gql, rename_fields = "snake_case")]
        pub struct $rust {
            pub ok: Option<bool>,
            pub msg: Option<String>,
        }

        impl<T> From<$crate::gql::mutation::Outcome<T>> for $rust {
            fn from(outcome: $crate::gql::mutation::Outcome<T>) -> $rust {
                $rust {
                    ok: Some(outcome.ok),
                    msg: Some(outcome.msg),
                }
            }
        }
    };
    ($rust:ident, $gql:literal, $field:ident: $item:ty) => {
        #[derive(async_graphql::SimpleObject)]
        #[graphql(name = $gql, rename_fields = "snake_case")]
        pub struct $rust {
            pub ok: Option<bool>,
            pub msg: Option<String>,
            pub $field: Option<$item>,
        }

        impl From<$crate::gql::mutation::Outcome<$item>> for $rust {
            fn from(outcome: $crate::gql::mutation::Outcome<$item>) -> $rust {
                $rust {
                    ok: Some(outcome.ok),
                    msg: Some(outcome.msg),
                    $field: outcome.item,
                }
            }
        }
    };
}

pub(crate) use mutation_payload;

/// Runs `body` and turns either result into the payload.
pub fn settle<T, P: From<Outcome<T>>>(result: Result<Outcome<T>, Outcome<T>>) -> P {
    match result {
        Ok(outcome) | Err(outcome) => P::from(outcome),
    }
}
