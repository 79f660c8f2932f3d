//! A cheap, non-recursive lexical pass over a GraphQL document before anything parses it: its
//! size and how deeply its brackets (`{`, `[`, `(`) nest. The parser (pest, recursive descent)
//! recurses once or more per bracket, so a few kB of `[[[[...` would overflow a worker's stack
//! long before any limit of the schema is looked at.
//!
//! The scan skips what the parser reads as strings, block strings and comments, with the
//! grammar's own rules (`async-graphql-parser`'s `graphql.pest`). Where a string is malformed
//! it stops skipping and counts again: it may then count more brackets than the parser would
//! reach, never fewer, so whatever passes the scan nests at most as deep as it says.

/// Where a limit was crossed, 1-based, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// What the scan refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrescanError {
    #[error("the GraphQL document is {size} bytes long, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "the GraphQL document nests brackets more than {limit} levels deep (at line {}, column {})",
        at.line, at.column
    )]
    TooDeep { limit: usize, at: Location },
}

/// The deepest bracket nesting found by a scan that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prescan {
    pub max_nesting: usize,
}

/// Checks `document` against `max_bytes` and `max_nesting` without recursion.
pub fn prescan(
    document: &str,
    max_bytes: usize,
    max_nesting: usize,
) -> Result<Prescan, PrescanError> {
    if document.len() > max_bytes {
        return Err(PrescanError::TooLarge {
            size: document.len(),
            limit: max_bytes,
        });
    }
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max_nesting {
                    return Err(PrescanError::TooDeep {
                        limit: max_nesting,
                        at: location_of(bytes, i),
                    });
                }
                max_depth = max_depth.max(depth);
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'#' => i = skip_comment(bytes, i),
            b'"' => i = skip_string(bytes, i),
            _ => i += 1,
        }
    }
    Ok(Prescan {
        max_nesting: max_depth,
    })
}

fn is_line_terminator(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

/// `COMMENT = "#" ~ (!line_terminator ~ ANY)*`: returns the index of the line terminator.
fn skip_comment(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && !is_line_terminator(bytes[i]) {
        i += 1;
    }
    i
}

/// A string at `start` (which holds `"`): returns the index just after it. A block string
/// (`"""`) that is never closed is, as in the parser, an empty string `""` followed by the
/// start of another string.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"")
        && let Some(end) = block_string_end(bytes, start + 3)
    {
        return end;
    }
    skip_regular_string(bytes, start)
}

/// The index after the `"""` that closes a block string whose content starts at `from`, where
/// `\"""` is an escaped quote triple (`block_string_character`).
fn block_string_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// `"` ~ string_character* ~ `"`, where a string character is anything but `"`, `\` and a
/// line terminator, or an escape `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u`. A line
/// terminator or an unknown escape makes the string invalid: the scan goes back to counting
/// right there.
fn skip_regular_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return i + 1,
            b'\\' => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') => i += 2,
                _ => return i + 1,
            },
            byte if is_line_terminator(byte) => return i,
            _ => i += 1,
        }
    }
    i
}

fn location_of(bytes: &[u8], offset: usize) -> Location {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Columns count characters, not bytes, as the parser's positions do.
    let column = String::from_utf8_lossy(&bytes[line_start..offset])
        .chars()
        .count()
        + 1;
    Location { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(document: &str) -> usize {
        prescan(document, usize::MAX, usize::MAX)
            .unwrap()
            .max_nesting
    }

    #[test]
    fn counts_every_kind_of_bracket() {
        assert_eq!(depth("{ a }"), 1);
        assert_eq!(depth("{ a(x: [[1]]) { b } }"), 4);
        assert_eq!(
            depth("query ($v: [[Int]] = [[1]]) { a(x: {y: {z: 1}}) }"),
            4
        );
    }

    #[test]
    fn strings_block_strings_and_comments_are_not_counted() {
        assert_eq!(depth(r#"{ a(x: "[[[[{{{{((((") }"#), 2);
        assert_eq!(depth(r#"{ a(x: "\"[[[[\\") }"#), 2);
        assert_eq!(depth("{ a(x: \"\"\"[[[\n{{{ \\\"\"\" [[[ \"\"\") }"), 2);
        assert_eq!(depth("{ a # [[[[[[\n }"), 1);
        assert_eq!(depth(r#"{ a(x: "", y: "") }"#), 2);
    }

    #[test]
    fn malformed_strings_go_back_to_counting() {
        // A line terminator ends a regular string (the parser refuses it there).
        assert_eq!(depth("{ a(x: \"open\n [[[ ]]] ) }"), 5);
        // An unknown escape too.
        assert_eq!(depth(r#"{ a(x: "\q [[[") }"#), 5);
        // An unclosed block string is `""` and then another string.
        assert_eq!(depth("{ a(x: \"\"\"\n[[[ ) }"), 5);
    }

    #[test]
    fn refuses_deep_nesting_with_where_it_happened() {
        let document = format!("{{ a(x: {}) }}", "[".repeat(2_500));
        let error = prescan(&document, usize::MAX, 32).unwrap_err();
        assert_eq!(
            error,
            PrescanError::TooDeep {
                limit: 32,
                at: Location {
                    line: 1,
                    column: 38
                }
            }
        );
        assert!(error.to_string().contains("more than 32 levels deep"));
        assert!(prescan("{\n  a\n  { b }\n}", usize::MAX, 1).is_err());
    }

    #[test]
    fn refuses_large_documents() {
        let error = prescan(&"a".repeat(101), 100, 32).unwrap_err();
        assert_eq!(
            error,
            PrescanError::TooLarge {
                size: 101,
                limit: 100
            }
        );
    }
}
