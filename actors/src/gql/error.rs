//! The errors a GraphQL resolver returns. Each becomes an entry of the response's `errors` list
//! (async-graphql keeps the value as the error's source) with a message that says what is
//! wrong; database details go to the log, not to the caller.

use bai_schema::minilang::MinilangError;

#[derive(Debug, thiserror::Error)]
pub enum GqlError {
    /// The caller's role may not run this query or see this object.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller's role is not one the query knows.
    #[error("unknown client role: {0}")]
    UnknownRole(String),
    /// The object does not exist (or is not visible to the caller).
    #[error("No such {0}.")]
    NotFound(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Minilang(#[from] MinilangError),
    /// The database failed. The detail goes to the server log only (see `http.rs`); the
    /// caller reads a generic message.
    #[error("internal server error (database)")]
    Database(String),
    /// Something that should not happen; the detail goes to the server log only.
    #[error("internal server error")]
    Internal(String),
}

impl From<tokio_postgres::Error> for GqlError {
    fn from(error: tokio_postgres::Error) -> GqlError {
        match error.as_db_error() {
            // A NUL character in a string argument or variable: PostgreSQL refuses it in text
            // (22021). That is the caller's input, not a database failure.
            Some(db)
                if *db.code() == tokio_postgres::error::SqlState::CHARACTER_NOT_IN_REPERTOIRE =>
            {
                GqlError::InvalidArgument("a string contains a NUL character".into())
            }
            Some(db) => GqlError::Database(format!("{}: {}", db.code().code(), db.message())),
            None => GqlError::Database(error.to_string()),
        }
    }
}

impl From<bai_schema::queries::QueryError> for GqlError {
    fn from(error: bai_schema::queries::QueryError) -> GqlError {
        match error {
            bai_schema::queries::QueryError::Db { source, .. } => GqlError::from(source),
            other => GqlError::Database(other.to_string()),
        }
    }
}

impl GqlError {
    pub fn forbidden(reason: impl Into<String>) -> GqlError {
        GqlError::Forbidden(reason.into())
    }

    pub fn invalid(reason: impl Into<String>) -> GqlError {
        GqlError::InvalidArgument(reason.into())
    }
}

/// The result type of resolvers.
pub type GqlResult<T> = Result<T, GqlError>;
