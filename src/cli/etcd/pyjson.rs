//! `json.dumps(obj, indent=4)` exactly as Python prints it (the original's `etcd get --prefix`):
//! `ensure_ascii` escapes, `", "`-free item separators with newlines, `{}` for an empty object.

use serde_json::Value;

/// Python's `json.dumps(value, indent=4)`.
pub fn dumps_indent4(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

const INDENT: &str = "    ";

fn write_value(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_value(out, item, level + 1);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, level + 1);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, level: usize) {
    out.push('\n');
    for _ in 0..level {
        out.push_str(INDENT);
    }
}

/// A JSON string with `ensure_ascii=True`: everything outside printable ASCII becomes `\uXXXX`
/// (UTF-16 surrogate pairs above U+FFFF, lowercase hex), with the short escapes Python uses.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            other => {
                let mut units = [0u16; 2];
                for unit in other.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_objects_and_nesting_match_python() {
        assert_eq!(dumps_indent4(&json!({})), "{}");
        assert_eq!(
            dumps_indent4(
                &json!({"docker": {"registry": {"cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2"}}}, "redis": {"addr": "127.0.0.1:8111"}, "e": {}, "l": []})
            ),
            "{\n    \"docker\": {\n        \"registry\": {\n            \"cr.backend.ai\": {\n                \"\": \"https://cr.backend.ai\",\n                \"type\": \"harbor2\"\n            }\n        }\n    },\n    \"redis\": {\n        \"addr\": \"127.0.0.1:8111\"\n    },\n    \"e\": {},\n    \"l\": []\n}"
        );
    }

    #[test]
    fn strings_are_escaped_like_ensure_ascii() {
        // Expected outputs are what CPython 3.11's json.dumps prints.
        assert_eq!(dumps_indent4(&json!("한")), "\"\\ud55c\"");
        assert_eq!(dumps_indent4(&json!("😀")), "\"\\ud83d\\ude00\"");
        assert_eq!(
            dumps_indent4(&json!("a\"b\\c\n\t\u{1}\u{7f}é/")),
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\\u00e9/\""
        );
        assert_eq!(
            dumps_indent4(&json!([1, true, null])),
            "[\n    1,\n    true,\n    null\n]"
        );
    }
}
