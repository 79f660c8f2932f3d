//! Checks of mutation inputs shared by several types: slug names, resource-slot maps and the
//! allowed-vfolder-host permission maps.

use std::collections::BTreeMap;

use bai_schema::ResourceSlot;
use serde_json::Value;

use super::error::GqlError;

/// The vfolder host permissions a domain, group or keypair resource policy may grant.
pub const VFOLDER_HOST_PERMISSIONS: [&str; 8] = [
    "create-vfolder",
    "modify-vfolder",
    "delete-vfolder",
    "mount-in-session",
    "upload-file",
    "download-file",
    "invite-others",
    "set-user-specific-permission",
];

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
    let Value::Object(hosts) = value else {
        return Err(GqlError::invalid(format!(
            "{field}: expected an object of host names to permission lists"
        )));
    };
    for (host, permissions) in hosts {
        let Value::Array(permissions) = permissions else {
            return Err(GqlError::invalid(format!(
                "{field}: the permissions of host {host:?} must be a list"
            )));
        };
        for permission in permissions {
            let known = permission
                .as_str()
                .is_some_and(|p| VFOLDER_HOST_PERMISSIONS.contains(&p));
            if !known {
                return Err(GqlError::invalid(format!(
                    "{field}: unknown permission {permission} for host {host:?} (known: {})",
                    VFOLDER_HOST_PERMISSIONS.join(", ")
                )));
            }
        }
    }
    Ok(value.clone())
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
