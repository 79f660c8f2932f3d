//! The names the manager and the storage proxy share: vfolder hosts (`proxy:volume`), quota
//! scope ids (`user:<uuid>`, `project:<uuid>`) and vfolder ids (`<quota scope>/<folder hex>`).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A vfolder host `"<proxy>:<volume>"`, split at the first `:` like the original's
/// `split_host` (so a volume name may itself contain `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VFolderHost {
    pub proxy: String,
    pub volume: String,
}

impl VFolderHost {
    /// Splits `host`. A host without `:` names a proxy with an empty volume, as the original
    /// (`"local"` → proxy `local`, volume `""`); callers that need a volume check for it.
    pub fn split(host: &str) -> VFolderHost {
        let (proxy, volume) = host.split_once(':').unwrap_or((host, ""));
        VFolderHost {
            proxy: proxy.to_owned(),
            volume: volume.to_owned(),
        }
    }

    pub fn new(proxy: &str, volume: &str) -> VFolderHost {
        VFolderHost {
            proxy: proxy.to_owned(),
            volume: volume.to_owned(),
        }
    }
}

impl fmt::Display for VFolderHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proxy, self.volume)
    }
}

/// Who a quota scope belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaScopeType {
    User,
    Project,
}

impl QuotaScopeType {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaScopeType::User => "user",
            QuotaScopeType::Project => "project",
        }
    }
}

/// A quota scope: `user:<uuid>` for a user's folders, `project:<uuid>` for a group's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaScopeId {
    pub scope_type: QuotaScopeType,
    pub scope_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0:?} is not a quota scope id (expected user:<uuid> or project:<uuid>)")]
    QuotaScope(String),
}

impl QuotaScopeId {
    pub fn user(user: Uuid) -> QuotaScopeId {
        QuotaScopeId {
            scope_type: QuotaScopeType::User,
            scope_id: user,
        }
    }

    pub fn project(group: Uuid) -> QuotaScopeId {
        QuotaScopeId {
            scope_type: QuotaScopeType::Project,
            scope_id: group,
        }
    }
}

impl FromStr for QuotaScopeId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<QuotaScopeId, IdError> {
        let bad = || IdError::QuotaScope(text.to_owned());
        let (scope_type, rest) = text.split_once(':').ok_or_else(bad)?;
        let scope_type = match scope_type {
            "user" => QuotaScopeType::User,
            "project" => QuotaScopeType::Project,
            _ => return Err(bad()),
        };
        let scope_id = Uuid::parse_str(rest).map_err(|_| bad())?;
        Ok(QuotaScopeId {
            scope_type,
            scope_id,
        })
    }
}

impl fmt::Display for QuotaScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The uuid in its hyphenated form, as Python's `str(uuid)`.
        write!(
            f,
            "{}:{}",
            self.scope_type.as_str(),
            self.scope_id.hyphenated()
        )
    }
}

/// The storage-side id of a folder: `<quota scope>/<folder uuid hex>`, or the bare hex for a
/// legacy folder without a quota scope (which the 23.09 proxy refuses to create).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VFolderId {
    pub quota_scope: Option<QuotaScopeId>,
    pub folder_id: Uuid,
}

impl VFolderId {
    pub fn new(quota_scope: QuotaScopeId, folder_id: Uuid) -> VFolderId {
        VFolderId {
            quota_scope: Some(quota_scope),
            folder_id,
        }
    }

    /// From a `vfolders` row: its `quota_scope_id` text (possibly absent) and `id`.
    pub fn from_row(quota_scope_id: Option<&str>, folder_id: Uuid) -> Result<VFolderId, IdError> {
        let quota_scope = match quota_scope_id {
            None | Some("") => None,
            Some(text) => Some(text.parse()?),
        };
        Ok(VFolderId {
            quota_scope,
            folder_id,
        })
    }
}

impl fmt::Display for VFolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.folder_id.simple();
        match &self.quota_scope {
            Some(scope) => write!(f, "{scope}/{hex}"),
            None => write!(f, "{hex}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_at_the_first_colon() {
        assert_eq!(
            VFolderHost::split("local:volume1"),
            VFolderHost::new("local", "volume1")
        );
        assert_eq!(
            VFolderHost::split("nfs:vol:a"),
            VFolderHost::new("nfs", "vol:a")
        );
        assert_eq!(VFolderHost::split("local"), VFolderHost::new("local", ""));
        assert_eq!(
            VFolderHost::new("local", "volume1").to_string(),
            "local:volume1"
        );
    }

    #[test]
    fn vfids_look_like_the_captured_ones() {
        // manager-to-storage.http #2
        let user: Uuid = "f38dea23-50fa-42a0-b5ae-338f5f4693f4".parse().unwrap();
        let folder: Uuid = "726ec4ea2fa8490c8f40b37c1bf47e4b".parse().unwrap();
        let vfid = VFolderId::new(QuotaScopeId::user(user), folder);
        assert_eq!(
            vfid.to_string(),
            "user:f38dea23-50fa-42a0-b5ae-338f5f4693f4/726ec4ea2fa8490c8f40b37c1bf47e4b"
        );
        let project = VFolderId::new(QuotaScopeId::project(user), folder);
        assert!(project.to_string().starts_with("project:f38dea23-"));
        let legacy = VFolderId::from_row(None, folder).unwrap();
        assert_eq!(legacy.to_string(), "726ec4ea2fa8490c8f40b37c1bf47e4b");
    }

    #[test]
    fn quota_scope_ids_round_trip_and_reject_garbage() {
        let text = "project:2de2b969-1d04-48a6-af16-0bc8adb3c831";
        let scope: QuotaScopeId = text.parse().unwrap();
        assert_eq!(scope.scope_type, QuotaScopeType::Project);
        assert_eq!(scope.to_string(), text);
        for bad in [
            "",
            "user",
            "user:",
            "group:2de2b969-1d04-48a6-af16-0bc8adb3c831",
            "user:xyz",
        ] {
            assert!(bad.parse::<QuotaScopeId>().is_err(), "{bad}");
        }
        assert!(VFolderId::from_row(Some("bogus"), Uuid::nil()).is_err());
    }
}
