//! Checks of mutation inputs shared by several types: slug names, resource-slot maps and the
//! allowed-vfolder-host permission maps.

use std::collections::BTreeMap;

use bai_schema::ResourceSlot;
use bai_schema::fixture::special::check_vfolder_host_permissions;
use serde_json::Value;

use super::error::GqlError;

/// The original's slug rule for domain and group names.
pub fn is_slug(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(inner_ok)
        }
        _ => false,
    }
}

/// Normalizes a resource-slot map given by a client (`{"cpu": "2", "mem": "4g"}`) to the
/// stored form (decimal strings, sizes in bytes).
pub fn resource_slots_input(field: &str, value: &Value) -> Result<Value, GqlError> {
    ResourceSlot::from_user_input(value, &BTreeMap::new())
        .map(|slots| slots.to_json())
        .map_err(|e| GqlError::invalid(format!("{field}: {e}")))
}

/// Checks an allowed-vfolder-host map: `{"<proxy>:<volume>": ["<permission>", ...]}`.
pub fn vfolder_host_permissions_input(field: &str, value: &Value) -> Result<Value, GqlError> {
    check_vfolder_host_permissions(value)
        .map(|()| value.clone())
        .map_err(|e| GqlError::invalid(format!("{field}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slugs() {
        for good in ["default", "a", "my-domain.1", "x_y"] {
            assert!(is_slug(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", "é"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn slots_are_normalized() {
        assert_eq!(
            resource_slots_input("total_resource_slots", &json!({"cpu": "2", "mem": "1g"}))
                .unwrap(),
            json!({"cpu": "2", "mem": "1073741824"})
        );
        assert!(resource_slots_input("x", &json!({"cpu": "lots"})).is_err());
        assert!(resource_slots_input("x", &json!([1])).is_err());
    }

    #[test]
    fn host_permissions_are_checked() {
        let ok = json!({"local:volume1": ["create-vfolder", "mount-in-session"]});
        assert_eq!(vfolder_host_permissions_input("h", &ok).unwrap(), ok);
        let err = vfolder_host_permissions_input("h", &json!({"v": ["fly"]})).unwrap_err();
        assert!(err.to_string().contains("unknown permission"), "{err}");
        assert!(vfolder_host_permissions_input("h", &json!({"v": "rw"})).is_err());
    }
}
