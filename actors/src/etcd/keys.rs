//! etcd key layout of Backend.AI: namespacing, URL-quoted segments, and flattening nested
//! objects into `/`-separated keys and back. Pure functions, no I/O.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::compat::pyrepr::python_str;

/// Python's `urllib.parse.quote(s, safe="")` leaves only these unescaped.
const QUOTE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// `urllib.parse.quote(value, safe="")`: `/` becomes `%2F`, `:` becomes `%3A`.
pub fn quote(value: &str) -> String {
    utf8_percent_encode(value, QUOTE_SET).to_string()
}

/// `urllib.parse.unquote(value)`: invalid escapes are kept as they are.
pub fn unquote(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// The physical key of a logical key: `/sorna/<namespace>/<key>`, one leading `/` stripped.
pub fn mangle(namespace: &str, key: &str) -> String {
    let key = key.strip_prefix('/').unwrap_or(key);
    format!("/sorna/{namespace}/{key}")
}

/// The logical key of a physical key, or `None` when it is outside the namespace.
pub fn demangle<'a>(namespace: &str, physical: &'a str) -> Option<&'a str> {
    physical
        .strip_prefix("/sorna/")
        .and_then(|rest| rest.strip_prefix(namespace))
        .and_then(|rest| rest.strip_prefix('/'))
}

/// `put_prefix`: flattens a nested object under `prefix` (which is used as given, unquoted).
/// Each nested key is quoted; a `""` key stands for its parent's own value.
pub fn flatten(prefix: &str, value: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    match value {
        Value::Object(map) => flatten_into(prefix, map, &mut pairs),
        leaf => pairs.push((prefix.to_owned(), python_str(leaf))),
    }
    pairs
}

fn flatten_into(prefix: &str, map: &Map<String, Value>, pairs: &mut Vec<(String, String)>) {
    for (key, value) in map {
        let flattened = if key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}/{}", quote(key))
        };
        match value {
            Value::Object(inner) => flatten_into(&flattened, inner, pairs),
            leaf => pairs.push((flattened, python_str(leaf))),
        }
    }
}

/// `make_dict_from_pairs`: rebuilds the nested object from logical keys under `prefix`, in the
/// order given (etcd returns keys sorted). Segments are unquoted; a value that is also a parent
/// moves under the `""` key.
pub fn unflatten<'a>(
    prefix: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in pairs {
        let Some(subkey) = key.strip_prefix(prefix) else {
            continue;
        };
        let subkey = subkey.strip_prefix('/').unwrap_or(subkey);
        let components: Vec<&str> = subkey.split('/').collect();
        let (last, parents) = components.split_last().unwrap_or((&"", &[]));
        let mut parent = &mut root;
        for component in parents {
            let component = unquote(component);
            let slot = parent
                .entry(component)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                let own_value = std::mem::take(slot);
                let mut promoted = Map::new();
                promoted.insert(String::new(), own_value);
                *slot = Value::Object(promoted);
            }
            parent = match slot {
                Value::Object(map) => map,
                _ => unreachable!("promoted to an object just above"),
            };
        }
        parent.insert(unquote(last), Value::String(value.to_owned()));
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quoting_matches_python() {
        assert_eq!(quote("cr.backend.ai"), "cr.backend.ai");
        assert_eq!(quote("127.0.0.1:25000"), "127.0.0.1%3A25000");
        assert_eq!(quote("a/b c~d_e-f"), "a%2Fb%20c~d_e-f");
        assert_eq!(quote("한"), "%ED%95%9C");
        assert_eq!(unquote("127.0.0.1%3A25000"), "127.0.0.1:25000");
        assert_eq!(unquote("100%"), "100%");
    }

    #[test]
    fn mangling_adds_the_namespace() {
        assert_eq!(
            mangle("local", "config/redis/addr"),
            "/sorna/local/config/redis/addr"
        );
        assert_eq!(
            mangle("local", "/manager/status"),
            "/sorna/local/manager/status"
        );
        assert_eq!(
            demangle("local", "/sorna/local/manager/status"),
            Some("manager/status")
        );
        assert_eq!(demangle("local", "/sorna/localx/manager/status"), None);
    }

    #[test]
    fn flatten_quotes_nested_keys_and_maps_empty_key_to_parent() {
        let tree = json!({
            "docker": {"registry": {"127.0.0.1:25000": {"": "http://127.0.0.1:25000", "type": "docker"}}},
            "redis": {"addr": "127.0.0.1:8110"}
        });
        assert_eq!(
            flatten("config", &tree),
            vec![
                (
                    "config/docker/registry/127.0.0.1%3A25000".to_owned(),
                    "http://127.0.0.1:25000".to_owned()
                ),
                (
                    "config/docker/registry/127.0.0.1%3A25000/type".to_owned(),
                    "docker".to_owned()
                ),
                ("config/redis/addr".to_owned(), "127.0.0.1:8110".to_owned()),
            ]
        );
    }

    #[test]
    fn unflatten_promotes_parent_values() {
        let pairs = [
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai",
            ),
            ("config/docker/registry/cr.backend.ai/project", "stable"),
            ("config/docker/registry/cr.backend.ai/type", "harbor2"),
            (
                "config/docker/registry/127.0.0.1%3A5000",
                "http://127.0.0.1:5000",
            ),
        ];
        let tree = unflatten("config", pairs.iter().map(|(k, v)| (*k, *v)));
        assert_eq!(
            Value::Object(tree),
            json!({"docker": {"registry": {
                "cr.backend.ai": {"": "https://cr.backend.ai", "project": "stable", "type": "harbor2"},
                "127.0.0.1:5000": "http://127.0.0.1:5000"
            }}})
        );
    }

    #[test]
    fn flatten_then_unflatten_round_trips() {
        let tree = json!({"config": {"docker": {"registry": {"a:1/b": {"": "u", "x": "1"}}}}, "volumes": {"default_host": "p:v"}});
        let pairs = flatten("", &tree);
        let logical: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches('/').to_owned(), v))
            .collect();
        let rebuilt = unflatten("", logical.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(Value::Object(rebuilt), tree);
    }
}
