//! How deeply a JSON request body nests, found by a lexical scan before `serde_json` parses it,
//! so a body can be refused with a message that names the limit. (serde_json itself stops at
//! 128 levels with a bare syntax error; the values it builds are then walked recursively by
//! GraphQL variables, JSONB encoding and msgpack.)

/// The deepest nesting of objects and arrays accepted in a request body. Real bodies nest 3-5
/// levels (a session's `config.resources`, GraphQL `variables.props.<field>`); 32 leaves room
/// while keeping every recursive walk of the value shallow.
pub const MAX_JSON_NESTING: usize = 32;

/// The byte offset of the first `{`/`[` that opens level `limit + 1`, if any. Strings are
/// skipped with their escapes; the scan does not validate the JSON (serde_json does that next).
pub fn first_too_deep(body: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    // A backslash escapes the next byte (`\"`, `\\`, `\u...` alike).
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The message of the 400 reply to a body nesting deeper than `limit`.
pub fn too_deep_message(limit: usize) -> String {
    format!("the JSON body nests objects and arrays more than {limit} levels deep")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_objects_and_arrays_but_not_strings() {
        assert_eq!(first_too_deep(br#"{"a": [1, {"b": 2}]}"#, 3), None);
        assert_eq!(first_too_deep(br#"{"a": [1, {"b": 2}]}"#, 2), Some(10));
        assert_eq!(first_too_deep(br#"{"a": "[[[[{{{{\"[[["}"#, 1), None);
        assert_eq!(first_too_deep(br#"{"a": "\\", "b": [[1]]}"#, 2), Some(18));
    }

    #[test]
    fn deep_bodies_are_found_without_recursion() {
        let body = "[".repeat(1_000_000);
        assert_eq!(first_too_deep(body.as_bytes(), MAX_JSON_NESTING), Some(32));
    }
}
