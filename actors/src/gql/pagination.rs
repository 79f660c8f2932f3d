//! `limit`/`offset` pagination of the `*_list` queries and the look-ahead that lets a list
//! resolver skip work the query did not ask for (the count, nested objects).

use async_graphql::Context;

use super::error::GqlError;

/// The largest page a list query returns. The official client asks for at most 100 items
/// (`MAX_PAGE_SIZE`); a larger bound keeps scripts working while a single request still cannot
/// make the server read a whole table.
pub const MAX_PAGE_LIMIT: i32 = 1000;

/// The row cap of the legacy non-paginated lists (`users`, `keypairs`), as the original.
pub const LEGACY_LIST_LIMIT: i64 = 100;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub fn new(limit: i32, offset: i32) -> Result<Page, GqlError> {
        if !(0..=MAX_PAGE_LIMIT).contains(&limit) {
            return Err(GqlError::invalid(format!(
                "limit must be between 0 and {MAX_PAGE_LIMIT}, got {limit}"
            )));
        }
        if offset < 0 {
            return Err(GqlError::invalid(format!(
                "offset must not be negative, got {offset}"
            )));
        }
        Ok(Page {
            limit: i64::from(limit),
            offset: i64::from(offset),
        })
    }
}

/// What a `*_list` query selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListSelection {
    pub total_count: bool,
    pub items: bool,
}

impl ListSelection {
    pub fn of(ctx: &Context<'_>) -> ListSelection {
        let look_ahead = ctx.look_ahead();
        ListSelection {
            total_count: look_ahead.field("total_count").exists(),
            items: look_ahead.field("items").exists(),
        }
    }
}

/// Whether the current field's selection (or, for a list type, its `items`) asks for `name`.
pub fn selects(ctx: &Context<'_>, name: &str) -> bool {
    let look_ahead = ctx.look_ahead();
    look_ahead.field(name).exists() || look_ahead.field("items").field(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds() {
        assert_eq!(
            Page::new(20, 0).unwrap(),
            Page {
                limit: 20,
                offset: 0
            }
        );
        assert!(Page::new(-1, 0).is_err());
        assert!(Page::new(MAX_PAGE_LIMIT + 1, 0).is_err());
        assert!(Page::new(10, -5).is_err());
    }
}
