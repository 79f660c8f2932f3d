//! The rules of vfolders that need no I/O: the per-host permission names and how the maps of
//! the domain, the groups and the keypair resource policy merge (a union per host), and which
//! folder names are allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::compat::reserved::is_reserved_folder_name;

/// One permission on a vfolder host (`VFolderHostPermission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPermission {
    Create,
    Modify,
    Delete,
    MountInSession,
    UploadFile,
    DownloadFile,
    InviteOthers,
    SetUserPermission,
}

impl HostPermission {
    pub const ALL: [HostPermission; 8] = [
        HostPermission::Create,
        HostPermission::Modify,
        HostPermission::Delete,
        HostPermission::MountInSession,
        HostPermission::UploadFile,
        HostPermission::DownloadFile,
        HostPermission::InviteOthers,
        HostPermission::SetUserPermission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostPermission::Create => "create-vfolder",
            HostPermission::Modify => "modify-vfolder",
            HostPermission::Delete => "delete-vfolder",
            HostPermission::MountInSession => "mount-in-session",
            HostPermission::UploadFile => "upload-file",
            HostPermission::DownloadFile => "download-file",
            HostPermission::InviteOthers => "invite-others",
            HostPermission::SetUserPermission => "set-user-specific-permission",
        }
    }

    pub fn parse(text: &str) -> Option<HostPermission> {
        HostPermission::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl fmt::Display for HostPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bad `allowed_vfolder_hosts` value, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the allowed_vfolder_hosts of {source_name} is invalid: {reason}")]
pub struct HostMapError {
    pub source_name: String,
    pub reason: String,
}

/// Hosts and the permissions granted on each (`VFolderHostPermissionMap`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPermissionMap(BTreeMap<String, BTreeSet<HostPermission>>);

impl HostPermissionMap {
    /// Adds the grants of one `allowed_vfolder_hosts` JSON value (`{host: [perm, …]}`).
    /// `source_name` names the row for the error ("domain default", "keypair policy x").
    pub fn merge_json(&mut self, value: &Value, source_name: &str) -> Result<(), HostMapError> {
        let bad = |reason: String| HostMapError {
            source_name: source_name.to_owned(),
            reason,
        };
        let Value::Object(hosts) = value else {
            if value.is_null() {
                return Ok(());
            }
            return Err(bad("not a JSON object of host → permission list".into()));
        };
        for (host, permissions) in hosts {
            let Value::Array(permissions) = permissions else {
                return Err(bad(format!(
                    "the permissions of host {host} are not a list"
                )));
            };
            let granted = self.0.entry(host.clone()).or_default();
            for permission in permissions {
                let parsed = permission
                    .as_str()
                    .and_then(HostPermission::parse)
                    .ok_or_else(|| bad(format!("{permission} (host {host}) is no permission")))?;
                granted.insert(parsed);
            }
        }
        Ok(())
    }

    /// Adds every grant of `other`.
    pub fn union_with(&mut self, other: &HostPermissionMap) {
        for (host, granted) in &other.0 {
            self.0.entry(host.clone()).or_default().extend(granted);
        }
    }

    pub fn allows(&self, host: &str, permission: HostPermission) -> bool {
        self.0
            .get(host)
            .is_some_and(|granted| granted.contains(&permission))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn contains_host(&self, host: &str) -> bool {
        self.0.contains_key(host)
    }

    /// Keeps only the hosts `keep` accepts.
    pub fn retain_hosts(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|host, _| keep(host));
    }

    pub fn permissions(&self, host: &str) -> Vec<HostPermission> {
        self.0
            .get(host)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The message of the original's denial: "`create-vfolder` Not allowed in vfolder
/// host(`local:volume1`)".
pub fn denial_message(permission: HostPermission, host: &str) -> String {
    format!("`{permission}` Not allowed in vfolder host(`{host}`)")
}

/// The longest folder name the `vfolders.name` column holds.
pub const MAX_NAME_LENGTH: usize = 128;

/// Why a folder name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a slug: the trafaret check of the original (400 "Input validation error").
    #[error("value must be a valid slug.")]
    NotASlug,
    #[error("value is too long (max length {MAX_NAME_LENGTH})")]
    TooLong,
    /// `verify_vfolder_name` refused it.
    #[error("{0} is reserved for internal operations.")]
    Reserved(String),
}

/// `tx.Slug(allow_dot=True)`: one leading dot may precede
/// `[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?`.
pub fn is_slug_allowing_dot(name: &str) -> bool {
    let body = name.strip_prefix('.').unwrap_or(name);
    let bytes = body.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    if !first.is_ascii_alphanumeric() {
        return false;
    }
    match rest.split_last() {
        None => true,
        Some((&last, middle)) => {
            last.is_ascii_alphanumeric()
                && middle
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
    }
}

/// Checks a new folder name as the original does (slug first, then the reserved names).
pub fn check_folder_name(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LENGTH {
        return Err(NameError::TooLong);
    }
    if !is_slug_allowing_dot(name) {
        return Err(NameError::NotASlug);
    }
    if is_reserved_folder_name(name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_merge_as_a_union_per_host() {
        let mut map = HostPermissionMap::default();
        map.merge_json(
            &json!({"local:volume1": ["create-vfolder"]}),
            "domain default",
        )
        .unwrap();
        map.merge_json(&json!({}), "group default").unwrap();
        map.merge_json(
            &json!({"local:volume1": ["delete-vfolder"], "nfs:v": ["mount-in-session"]}),
            "keypair policy default",
        )
        .unwrap();
        assert!(map.allows("local:volume1", HostPermission::Create));
        assert!(map.allows("local:volume1", HostPermission::Delete));
        assert!(!map.allows("local:volume1", HostPermission::Modify));
        assert!(map.allows("nfs:v", HostPermission::MountInSession));
        assert!(!map.allows("other:v", HostPermission::Create));
        assert_eq!(
            map.hosts().collect::<Vec<_>>(),
            vec!["local:volume1", "nfs:v"]
        );
        assert_eq!(
            map.permissions("local:volume1"),
            vec![HostPermission::Create, HostPermission::Delete]
        );
    }

    #[test]
    fn bad_maps_name_their_source() {
        let mut map = HostPermissionMap::default();
        let err = map
            .merge_json(&json!({"local:volume1": ["fly"]}), "domain default")
            .unwrap_err();
        assert_eq!(err.source_name, "domain default");
        assert!(err.to_string().contains("fly"));
        assert!(map.merge_json(&json!(["x"]), "group g").is_err());
        assert!(map.merge_json(&Value::Null, "group g").is_ok());
    }

    #[test]
    fn every_permission_name_round_trips() {
        for permission in HostPermission::ALL {
            assert_eq!(HostPermission::parse(permission.as_str()), Some(permission));
        }
        assert_eq!(
            denial_message(HostPermission::Create, "local:volume1"),
            "`create-vfolder` Not allowed in vfolder host(`local:volume1`)"
        );
    }

    #[test]
    fn folder_names_follow_the_slug_and_reserved_rules() {
        for good in [
            "myvf1",
            "test_folder1",
            "a",
            ".local",
            ".linuxbrew",
            "a.b-c_d",
            "9x",
        ] {
            assert_eq!(check_folder_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "-a", "a-", "a b", "a/b", "..x", "한글", "x!"] {
            assert_eq!(check_folder_name(bad), Err(NameError::NotASlug), "{bad}");
        }
        for reserved in [".ssh", ".jupyter", ".bashrc", ".zshrc", ".bash_profile"] {
            assert!(
                matches!(check_folder_name(reserved), Err(NameError::Reserved(_))),
                "{reserved}"
            );
        }
        assert_eq!(
            check_folder_name(&"a".repeat(MAX_NAME_LENGTH + 1)),
            Err(NameError::TooLong)
        );
    }
}
