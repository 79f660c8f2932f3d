//! The folders a new session mounts (the original's `prepare_vfolder_mounts`): the requested
//! `mounts` (`name` or `name/subpath`) with their `mount_map` targets, plus every
//! dot-prefixed folder of the owner (mounted automatically), each checked against the
//! `mount-in-session` host permission and resolved to a host path by its storage proxy.
//! The result is the `VFolderMount` JSON list that goes into `kernels.vfolder_mounts` and the
//! agent's `create_kernels` (`mounts`).
//!
//! Call [`resolve_session_mounts`] for every session creation, also without requested
//! mounts (dot-prefixed folders still mount). Its errors map to the original's problems.

use std::collections::BTreeMap;

use bai_schema::enums::{UserRole, VFolderPermission};
use bai_schema::queries::QueryError;
use bai_schema::queries::vfolder::{
    AccessQuery, AccessibleVFolder, GroupSource, NameFilter, accessible_vfolders,
    host_permission_sources,
};
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::StorageError;
use super::ids::{VFolderHost, VFolderId};
use super::permissions::{HostMapError, HostPermission, HostPermissionMap, denial_message};
use super::proxies::ProxySet;
use super::relative_path::{PathError, VFolderPath, container_path};

/// Where folders mount in the container unless `mount_map` says otherwise.
pub const KERNEL_HOME: &str = "/home/work";

/// Folders with a fixed place in the container (`VFOLDER_DSTPATHS_MAP`).
const FIXED_DESTINATIONS: &[(&str, &str)] = &[(".linuxbrew", "/home/linuxbrew/.linuxbrew")];

/// Whose session it is: the owner's user, domain and session group, and the keypair
/// resource policy of the owner's access key.
#[derive(Debug, Clone)]
pub struct MountScope<'a> {
    pub user: Uuid,
    pub role: UserRole,
    pub domain_name: &'a str,
    /// The group (project) the session runs in.
    pub group: Option<Uuid>,
    /// `keypair_resource_policies.allowed_vfolder_hosts` of the owner's keypair.
    pub policy_allowed_hosts: &'a Value,
    pub policy_name: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A bad request: overlapping paths, a subpath escaping its folder, a denied host.
    #[error("{0}")]
    Invalid(String),
    /// A requested folder the owner cannot reach.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] QueryError),
    #[error(transparent)]
    HostMap(#[from] HostMapError),
    #[error("vfolder {folder} has a bad quota scope: {reason}")]
    BadRow { folder: Uuid, reason: String },
}

/// `os.path.normpath` for relative POSIX paths: `""` → `"."`, `a/./b/../c` → `a/c`;
/// leading `..` stay.
pub fn normpath(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// `PurePosixPath(a).is_relative_to(b)`: `b`'s components are a prefix of `a`'s.
fn is_relative_to(path: &str, base: &str) -> bool {
    let components = |p: &str| -> Vec<String> {
        let absolute = p.starts_with('/');
        let mut parts: Vec<String> = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .collect();
        if absolute {
            parts.insert(0, "/".into());
        }
        parts
    };
    let (path, base) = (components(path), components(base));
    path.len() >= base.len() && path[..base.len()] == base[..]
}

/// `PurePosixPath(base) / rel` (a `.` adds nothing).
fn join_path(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return rel.to_owned();
    }
    let rel = normpath(rel);
    if rel == "." {
        return base.to_owned();
    }
    format!("{}/{rel}", base.trim_end_matches('/'))
}

/// One requested mount: the key as given (`name` or `name/subpath`), the folder name and the
/// checked subpath (the root, `.`, when none is given).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedMount {
    pub key: String,
    pub name: String,
    pub subpath: VFolderPath,
}

/// Splits and checks the requested keys (pure). A subpath must stay inside its folder: no
/// `..` component at all (the original only checked the normalised result), nothing absolute.
pub fn parse_requested(mounts: &[String]) -> Result<Vec<RequestedMount>, MountError> {
    let mut requested = Vec::new();
    for key in mounts {
        let (name, subpath) = key.split_once('/').unwrap_or((key.as_str(), ""));
        let subpath = match subpath {
            "" => Ok(VFolderPath::root()),
            text => VFolderPath::parse(text),
        }
        .map_err(|error| match error {
            PathError::ParentComponent | PathError::Absolute => MountError::Invalid(format!(
                "The subpath '{subpath}' should designate a subdirectory of the vfolder '{name}'."
            )),
            other => MountError::Invalid(format!("mount '{key}': {other}")),
        })?;
        if matches!(name, "" | "." | "..") {
            return Err(MountError::Invalid(format!(
                "mount '{key}' does not start with a folder name"
            )));
        }
        requested.push(RequestedMount {
            key: key.clone(),
            name: name.to_owned(),
            subpath,
        });
    }
    for first in mounts {
        for second in mounts {
            if first != second && is_relative_to(first, second) {
                return Err(MountError::Invalid(format!(
                    "VFolder source path '{first}' overlaps with '{second}'"
                )));
            }
        }
    }
    Ok(requested)
}

/// Where a mount goes in the container: the fixed place of special folders, else the
/// `mount_map` target (absolute, or relative to /home/work; never with a `..` component),
/// else /home/work/<name>.
pub fn kernel_path(
    name: &str,
    key: &str,
    mount_map: &Map<String, Value>,
) -> Result<String, MountError> {
    if let Some((_, fixed)) = FIXED_DESTINATIONS.iter().find(|(n, _)| *n == name) {
        return Ok((*fixed).to_owned());
    }
    let Some(target) = mount_map.get(key).and_then(Value::as_str) else {
        return Ok(format!("{KERNEL_HOME}/{name}"));
    };
    let target = container_path(target).map_err(|error| {
        MountError::Invalid(format!("mount_map target of '{key}' is refused: {error}"))
    })?;
    Ok(if target.starts_with('/') {
        target
    } else {
        join_path(KERNEL_HOME, &target)
    })
}

/// Refuses mounts whose container paths nest (pure).
pub fn check_kernel_paths(mounts: &[Value]) -> Result<(), MountError> {
    for first in mounts {
        for second in mounts {
            if first["name"] == second["name"] {
                continue;
            }
            let (a, b) = (
                first["kernel_path"].as_str().unwrap_or(""),
                second["kernel_path"].as_str().unwrap_or(""),
            );
            if is_relative_to(a, b) {
                return Err(MountError::Invalid(format!(
                    "VFolder mount path {a} overlaps with {b}"
                )));
            }
        }
    }
    Ok(())
}

/// The `mount-in-session` check's map: the user part (domain ∪ the user's groups ∪ policy)
/// and, for a session group, the group part (domain ∪ the group ∪ policy).
async fn allowed_hosts(
    client: &impl GenericClient,
    view: &ProxySet,
    scope: &MountScope<'_>,
) -> Result<HostPermissionMap, MountError> {
    let mut map = HostPermissionMap::default();
    let mut add = |sources: bai_schema::queries::vfolder::HostPermissionSources| {
        if let Some(domain) = &sources.domain {
            map.merge_json(domain, &format!("domain {}", scope.domain_name))?;
        }
        for group in &sources.groups {
            map.merge_json(group, "a group of the session owner")?;
        }
        map.merge_json(
            scope.policy_allowed_hosts,
            &format!("keypair resource policy {}", scope.policy_name),
        )
    };
    if view.config.allows_type("user") {
        let sources = host_permission_sources(
            client,
            scope.domain_name,
            GroupSource::MemberOf {
                user: scope.user,
                group: None,
            },
        )
        .await?;
        add(sources)?;
    }
    if view.config.allows_type("group")
        && let Some(group) = scope.group
    {
        let sources =
            host_permission_sources(client, scope.domain_name, GroupSource::Group(group)).await?;
        add(sources)?;
    }
    Ok(map)
}

/// Resolves the mounts of a new session to `VFolderMount` JSON objects
/// `{name, vfid, vfsubpath, host_path, kernel_path, mount_perm, usage_mode}`.
pub async fn resolve_session_mounts(
    client: &impl GenericClient,
    view: &ProxySet,
    scope: &MountScope<'_>,
    mounts: &[String],
    mount_map: &Map<String, Value>,
) -> Result<Vec<Value>, MountError> {
    let requested = parse_requested(mounts)?;
    let names: Vec<String> = requested.iter().map(|r| r.name.clone()).collect();
    let accessible = accessible_vfolders(
        client,
        &AccessQuery {
            names: NameFilter::OneOfOrDotted(&names),
            ..AccessQuery::new(
                scope.user,
                scope.role,
                scope.domain_name,
                &view.config.vfolder_types,
            )
        },
    )
    .await?;
    if accessible.is_empty() {
        if requested.is_empty() {
            return Ok(Vec::new());
        }
        return Err(MountError::NotFound(
            "There is no accessible vfolders at all.".into(),
        ));
    }
    let by_name: BTreeMap<&str, &AccessibleVFolder> =
        accessible.iter().map(|f| (f.name.as_str(), f)).collect();
    // Requested mounts first, then the automatic dot-prefixed ones not asked for by name.
    let mut wanted = requested.clone();
    for folder in &accessible {
        if folder.name.starts_with('.') && !wanted.iter().any(|w| w.key == folder.name) {
            wanted.push(RequestedMount {
                key: folder.name.clone(),
                name: folder.name.clone(),
                subpath: VFolderPath::root(),
            });
        }
    }
    let hosts = allowed_hosts(client, view, scope).await?;
    let mut resolved = Vec::new();
    for mount in &wanted {
        let folder = by_name.get(mount.name.as_str()).ok_or_else(|| {
            MountError::NotFound(format!(
                "VFolder {} is not found or accessible.",
                mount.name
            ))
        })?;
        if !hosts.allows(&folder.host, HostPermission::MountInSession) {
            return Err(MountError::Invalid(denial_message(
                HostPermission::MountInSession,
                &folder.host,
            )));
        }
        // Group folders of other groups are not mounted into this session.
        if let Some(group) = folder.group
            && Some(group) != scope.group
        {
            continue;
        }
        let vfid =
            VFolderId::from_row(folder.quota_scope_id.as_deref(), folder.id).map_err(|e| {
                MountError::BadRow {
                    folder: folder.id,
                    reason: e.to_string(),
                }
            })?;
        let (proxy, volume) = view.resolve(&folder.host)?;
        let base = proxy.mount_path(&volume, &vfid, &mount.subpath).await?;
        let permission = folder.permission.unwrap_or(VFolderPermission::ReadWrite);
        let usage_mode = folder.usage_mode.as_str();
        if folder.name == ".local" && folder.group.is_some() {
            // A group's .local holds one subfolder per user, made on first use.
            let user_dir = scope.user.simple().to_string();
            let user_path = VFolderPath::parse_entry(&user_dir)
                .map_err(|e| MountError::Invalid(format!("user folder {user_dir}: {e}")))?;
            proxy
                .mkdir(
                    &VFolderHost::split(&folder.host).volume,
                    &vfid,
                    &user_path,
                    false,
                    true,
                )
                .await?;
            resolved.push(json!({
                "name": folder.name,
                "vfid": vfid.to_string(),
                "vfsubpath": user_dir,
                "host_path": join_path(&base, &user_dir),
                "kernel_path": format!("{KERNEL_HOME}/.local"),
                "mount_perm": permission.as_str(),
                "usage_mode": usage_mode,
            }));
        } else {
            // The proxy answers with the folder's root (after checking the subpath).
            resolved.push(json!({
                "name": folder.name,
                "vfid": vfid.to_string(),
                "vfsubpath": mount.subpath.as_str(),
                "host_path": join_path(&base, mount.subpath.as_str()),
                "kernel_path": kernel_path(&folder.name, &mount.key, mount_map)?,
                "mount_perm": permission.as_str(),
                "usage_mode": usage_mode,
            }));
        }
    }
    check_kernel_paths(&resolved)?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_like_python() {
        assert_eq!(normpath(""), ".");
        assert_eq!(normpath("a/./b/../c/"), "a/c");
        assert_eq!(normpath("../x"), "../x");
        assert_eq!(normpath("/a/../../b"), "/b");
        assert!(is_relative_to("data/sub", "data"));
        assert!(!is_relative_to("database", "data"));
        assert_eq!(join_path("/vol/ab", "."), "/vol/ab");
        assert_eq!(join_path("/vol/ab", "x/y"), "/vol/ab/x/y");
    }

    #[test]
    fn requested_mounts_split_and_refuse_escapes_and_overlaps() {
        let parsed = parse_requested(&["data/sub".into(), "models".into()]).unwrap();
        assert_eq!(
            parsed,
            vec![
                RequestedMount {
                    key: "data/sub".into(),
                    name: "data".into(),
                    subpath: VFolderPath::parse("sub").unwrap()
                },
                RequestedMount {
                    key: "models".into(),
                    name: "models".into(),
                    subpath: VFolderPath::root()
                },
            ]
        );
        let escape = parse_requested(&["data/../etc".into()]).unwrap_err();
        assert_eq!(
            escape.to_string(),
            "The subpath '../etc' should designate a subdirectory of the vfolder 'data'."
        );
        for escape in [
            "data/sub/../../etc",
            "data/..",
            "../data",
            "data//etc/x/../y",
        ] {
            let error = parse_requested(&[escape.into()]).unwrap_err();
            assert!(matches!(error, MountError::Invalid(_)), "{escape}: {error}");
        }
        assert!(parse_requested(&["data/a/./b".into()]).is_ok());
        let overlap = parse_requested(&["data".into(), "data/sub".into()]).unwrap_err();
        assert_eq!(
            overlap.to_string(),
            "VFolder source path 'data/sub' overlaps with 'data'"
        );
    }

    #[test]
    fn kernel_paths_follow_the_mount_map() {
        let map: Map<String, Value> =
            serde_json::from_value(json!({"data": "/mnt/data", "models": "m"})).unwrap();
        let path = |name, key| kernel_path(name, key, &map).unwrap();
        assert_eq!(path("data", "data"), "/mnt/data");
        assert_eq!(path("models", "models"), "/home/work/m");
        assert_eq!(path("other", "other"), "/home/work/other");
        assert_eq!(
            path(".linuxbrew", ".linuxbrew"),
            "/home/linuxbrew/.linuxbrew"
        );
        let escaping: Map<String, Value> =
            serde_json::from_value(json!({"data": "/home/work/../../root", "models": "../../etc"}))
                .unwrap();
        assert!(kernel_path("data", "data", &escaping).is_err());
        assert!(kernel_path("models", "models", &escaping).is_err());
        let clash = vec![
            json!({"name": "a", "kernel_path": "/home/work/x"}),
            json!({"name": "b", "kernel_path": "/home/work/x/y"}),
        ];
        assert!(check_kernel_paths(&clash).is_err());
    }
}
