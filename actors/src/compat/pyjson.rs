//! Python's JSON and time text forms that clients print as they are: `json.dumps` (the content
//! of every GraphQL `JSONString` field, e.g. `"{\"cpu\": \"1\", \"mem\": \"536870912\"}"`, the
//! legacy `files` string of a folder listing), `json.dumps(indent=4)` (`etcd get --prefix`),
//! `repr(float)` and `datetime.isoformat()` (every `DateTime` field, e.g.
//! `2026-11-28T02:13:53.273016+00:00`).

use std::fmt::Write;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

/// `json.dumps(value)` with Python's defaults: `", "` and `": "` separators, non-ASCII escaped
/// as `\uXXXX`, floats in `repr` form, keys in the value's own order.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&json_string(key));
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// An integer as it is, a float in `repr` form.
fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    }
}

/// Python's `json.dumps(value, indent=4)`.
pub fn dumps_indent4(value: &Value) -> String {
    let mut out = String::new();
    write_indented(&mut out, value, 0);
    out
}

const INDENT: &str = "    ";

fn write_indented(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => out.push_str(&json_string(s)),
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
                write_indented(out, item, level + 1);
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
                out.push_str(&json_string(key));
                out.push_str(": ");
                write_indented(out, item, level + 1);
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

/// `json.dumps` of a string with `ensure_ascii=True`: everything outside printable ASCII
/// becomes `\uXXXX` (UTF-16 surrogate pairs above U+FFFF, lowercase hex), with the short escapes
/// Python uses.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
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
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents in
/// [-4, 16), otherwise `d.ddde+XX`; whole numbers keep a `.0`. (A JSON value holds no NaN or
/// infinity, so `json.dumps`'s `NaN`/`Infinity` never arise.)
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let positional = format!("{value}");
        if positional.contains('.') {
            positional
        } else {
            format!("{positional}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// `datetime.isoformat()` of an aware UTC time: microseconds only when non-zero, `+00:00`.
pub fn isoformat(at: &DateTime<Utc>) -> String {
    let micros = at.nanosecond() / 1_000 % 1_000_000;
    if micros == 0 {
        at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", at.format("%Y-%m-%dT%H:%M:%S"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn dumps_like_python() {
        let value: Value = serde_json::from_str(
            r#"{"cpu": "1", "mem": "536870912", "list": [1, 2.5, null, true]}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&value),
            r#"{"cpu": "1", "mem": "536870912", "list": [1, 2.5, null, true]}"#
        );
        assert_eq!(dumps(&json!({})), "{}");
        assert_eq!(dumps(&json!("é\"\n")), r#""\u00e9\"\n""#);
        assert_eq!(dumps(&json!("😀")), r#""\ud83d\ude00""#);
    }

    #[test]
    fn floats_like_python_repr() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(0.1), "0.1");
        assert_eq!(float_repr(123.456), "123.456");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1.5e-5), "1.5e-05");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(15000000000.0), "15000000000.0");
        assert_eq!(float_repr(-2.0), "-2.0");
        assert_eq!(float_repr(0.0), "0.0");
        assert_eq!(float_repr(-0.0), "-0.0");
        assert_eq!(float_repr(f64::NAN), "nan");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-inf");
        // A folder listing's timestamps.
        assert_eq!(float_repr(1764296033.273016), "1764296033.273016");
        assert_eq!(float_repr(1764296033.0), "1764296033.0");
    }

    #[test]
    fn indented_dumps_nest_like_python() {
        assert_eq!(dumps_indent4(&json!({})), "{}");
        assert_eq!(
            dumps_indent4(
                &json!({"docker": {"registry": {"cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2"}}}, "redis": {"addr": "127.0.0.1:8111"}, "e": {}, "l": []})
            ),
            "{\n    \"docker\": {\n        \"registry\": {\n            \"cr.backend.ai\": {\n                \"\": \"https://cr.backend.ai\",\n                \"type\": \"harbor2\"\n            }\n        }\n    },\n    \"redis\": {\n        \"addr\": \"127.0.0.1:8111\"\n    },\n    \"e\": {},\n    \"l\": []\n}"
        );
    }

    #[test]
    fn indented_strings_are_escaped_like_ensure_ascii() {
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
        // Floats in repr form, as Python prints them (serde_json would print `1e16`).
        assert_eq!(
            dumps_indent4(&json!([1e16, 2.0])),
            "[\n    1e+16,\n    2.0\n]"
        );
    }

    #[test]
    fn isoformat_like_python() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 2, 13, 53).unwrap();
        assert_eq!(isoformat(&at), "2026-11-28T02:13:53+00:00");
        let at = at + chrono::Duration::microseconds(273016);
        assert_eq!(isoformat(&at), "2026-11-28T02:13:53.273016+00:00");
    }
}
