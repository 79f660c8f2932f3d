//! Python's `str()` and `repr()` of JSON-loaded values (`None`, `True`, `'text'`, `1e-05`): how
//! the original writes etcd leaves and some reply fields (`occupiedShares`, lists of strings).

use serde_json::Value;

use super::pyjson::float_repr;

/// `str(value)` as Python prints a JSON-loaded value: the way the original writes leaves.
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

pub fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                float_repr(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => python_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_str_repr(k), python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// `repr(str)`: single quotes unless the text has one and no double quote, `\\x` escapes for
/// control characters.
fn python_str_repr(s: &str) -> String {
    let quote_char = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote_char);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote_char => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote_char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_are_written_like_python_str() {
        assert_eq!(python_str(&json!(true)), "True");
        assert_eq!(python_str(&json!(1500)), "1500");
        assert_eq!(python_str(&json!(1.0)), "1.0");
        assert_eq!(python_str(&json!(0.00001)), "1e-05");
        assert_eq!(python_str(&json!(1e16)), "1e+16");
        assert_eq!(python_str(&json!(null)), "None");
        assert_eq!(python_str(&json!(["a", 1, false])), "['a', 1, False]");
        assert_eq!(python_str(&json!("it's")), "it's");
        assert_eq!(python_str(&json!(["it's"])), "[\"it's\"]");
    }

    #[test]
    fn strings_are_quoted_like_python_repr() {
        assert_eq!(python_repr(&json!("a")), "'a'");
        assert_eq!(python_repr(&json!("it's \"x\"")), "'it\\'s \"x\"'");
        assert_eq!(python_repr(&json!("tab\there\u{1}")), "'tab\\there\\x01'");
        assert_eq!(
            python_repr(&json!({"a": [1.5, null]})),
            "{'a': [1.5, None]}"
        );
    }
}
