//! The `filter` and `order` mini-languages the list queries take (`agent_list(filter: ...,
//! order: ...)`), as the original's `models/minilang`: a pure parser to an AST and a compiler
//! from the AST to parameterized SQL over a type's declared fields. It lives in the data model,
//! as the original's `ai/backend/manager/models/minilang/`: the per-domain list modules of
//! `crate::queries` declare which GraphQL field names map to which column expressions.

pub mod compile;
pub mod enums;
pub mod filter;
pub mod order;

pub use compile::{EnumSpec, FieldKind, FilterField, OrderField, compile_filter, compile_order};
pub use filter::{FilterExpr, parse_filter};
pub use order::{OrderKey, parse_order};

use crate::queries::listing::SqlParams;

/// A filter or ordering the server cannot apply, with what is wrong in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MinilangError {
    #[error("query filter parsing error: {0}")]
    FilterSyntax(String),
    #[error("query ordering parsing error: {0}")]
    OrderSyntax(String),
    #[error("unknown/unsupported field name {field:?} in the {context} (known fields: {known})")]
    UnknownField {
        field: String,
        context: &'static str,
        known: String,
    },
    #[error("invalid filter value for field {field:?}: {reason}")]
    BadValue { field: String, reason: String },
}

impl MinilangError {
    pub fn filter(reason: impl Into<String>) -> MinilangError {
        MinilangError::FilterSyntax(reason.into())
    }

    pub fn order(reason: impl Into<String>) -> MinilangError {
        MinilangError::OrderSyntax(reason.into())
    }
}

/// Parses and compiles an optional filter in one step.
pub fn filter_sql(
    filter: Option<&str>,
    fields: &[FilterField],
    params: &mut SqlParams,
) -> Result<Option<String>, MinilangError> {
    match filter {
        None => Ok(None),
        Some(text) => {
            let expr = parse_filter(text)?;
            compile_filter(&expr, fields, params).map(Some)
        }
    }
}

/// Parses and compiles an optional ordering; `None` when absent or empty.
pub fn order_sql(
    order: Option<&str>,
    fields: &[OrderField],
) -> Result<Option<String>, MinilangError> {
    match order {
        None => Ok(None),
        Some(text) => {
            let keys = parse_order(text)?;
            if keys.is_empty() {
                return Ok(None);
            }
            compile_order(&keys, fields).map(Some)
        }
    }
}
