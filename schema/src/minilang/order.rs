//! The `order` mini-language of the list queries: `[+|-]name, ...`.
//!
//! Grammar (the original's `models/minilang/ordering.py`): a comma-separated list of field
//! names, each optionally prefixed with `+` (ascending, the default) or `-` (descending).

use super::MinilangError;

/// The most ordering keys accepted; each becomes an `ORDER BY` term.
pub const MAX_ORDER_KEYS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

impl Direction {
    pub fn sql(self) -> &'static str {
        match self {
            Direction::Ascending => "ASC",
            Direction::Descending => "DESC",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub field: String,
    pub direction: Direction,
}

/// Parses an ordering expression. An empty expression gives no keys.
pub fn parse_order(text: &str) -> Result<Vec<OrderKey>, MinilangError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    for (index, part) in trimmed.split(',').enumerate() {
        let part = part.trim();
        let (direction, name) = match part.as_bytes().first() {
            Some(b'+') => (Direction::Ascending, part[1..].trim_start()),
            Some(b'-') => (Direction::Descending, part[1..].trim_start()),
            _ => (Direction::Ascending, part),
        };
        let valid_name = name
            .bytes()
            .next()
            .is_some_and(|c| c == b'_' || c.is_ascii_alphabetic())
            && name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric());
        if !valid_name {
            return Err(MinilangError::order(format!(
                "key {} ({part:?}) is not a field name with an optional +/- prefix",
                index + 1
            )));
        }
        keys.push(OrderKey {
            field: name.to_owned(),
            direction,
        });
        if keys.len() > MAX_ORDER_KEYS {
            return Err(MinilangError::order(format!(
                "more than {MAX_ORDER_KEYS} ordering keys"
            )));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_with_directions() {
        let keys = parse_order("-created_at, +name,status").unwrap();
        assert_eq!(
            keys,
            vec![
                OrderKey {
                    field: "created_at".into(),
                    direction: Direction::Descending
                },
                OrderKey {
                    field: "name".into(),
                    direction: Direction::Ascending
                },
                OrderKey {
                    field: "status".into(),
                    direction: Direction::Ascending
                },
            ]
        );
        assert!(parse_order("  ").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_name() {
        for bad in ["name;drop", "-", "1abc", "a,,b", "a b", "--a"] {
            let err = parse_order(bad).unwrap_err().to_string();
            assert!(err.contains("not a field name"), "{bad}: {err}");
        }
    }
}
