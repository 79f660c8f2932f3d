//! Paths that a client names inside a virtual folder, checked and normalised before they
//! reach a storage proxy. The proxy joins a `relpath` onto the folder's directory without
//! checking it (the original manager passed it through the same way), so `../../x` or `/etc`
//! would read and write outside the folder. [`VFolderPath`] and [`EntryName`] are the only
//! path types the storage-proxy client accepts: a path that does not parse never leaves the
//! manager.

use std::fmt;

/// The longest path accepted, in bytes: Linux's `PATH_MAX`. Longer paths cannot name a file
/// on the volume anyway, and the bound keeps log lines and proxy requests small.
pub const MAX_PATH_BYTES: usize = 4096;

/// The longest single component, in bytes: Linux's `NAME_MAX` on every file system the
/// storage proxy supports.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path was refused. The messages go to the client, after the parameter's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("the path contains a NUL character")]
    Nul,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path is absolute; give it relative to the folder")]
    Absolute,
    #[error("the path has a '..' component; paths may not leave the folder")]
    ParentComponent,
    #[error("the path names the folder itself, not an entry in it")]
    FolderRoot,
    #[error("a name may not contain '/'")]
    Separator,
    #[error("'.' and '..' are not names")]
    DotName,
}

/// Checks what every path and name must satisfy, whatever its shape.
fn check_characters(text: &str) -> Result<(), PathError> {
    if text.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if text.contains('\0') {
        return Err(PathError::Nul);
    }
    if text.contains('\\') {
        return Err(PathError::Backslash);
    }
    Ok(())
}

/// A normalised path relative to a folder's root: no `..`, no leading `/`, no `.` or empty
/// components. The root itself is `.`, the spelling the proxy expects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VFolderPath(String);

impl VFolderPath {
    /// The folder's root, `.`.
    pub fn root() -> VFolderPath {
        VFolderPath(".".to_owned())
    }

    /// Parses a client's path: `a/b/./c.txt` and `a//b/` normalise to `a/b/c.txt` and
    /// `a/b`; `.` and `./` are the root. Empty, absolute, `..`, NUL and backslashes are
    /// refused (a backslash is a separator on the clients' Windows machines, so `..\x` would
    /// mean something other than it looks).
    pub fn parse(text: &str) -> Result<VFolderPath, PathError> {
        check_characters(text)?;
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut components = Vec::new();
        for component in text.split('/') {
            match component {
                "" | "." => {}
                ".." => return Err(PathError::ParentComponent),
                name if name.len() > MAX_COMPONENT_BYTES => {
                    return Err(PathError::ComponentTooLong);
                }
                name => components.push(name),
            }
        }
        if components.is_empty() {
            return Ok(VFolderPath::root());
        }
        Ok(VFolderPath(components.join("/")))
    }

    /// Like [`VFolderPath::parse`], for operations on an entry (delete, rename, move, upload):
    /// the root itself is refused.
    pub fn parse_entry(text: &str) -> Result<VFolderPath, PathError> {
        let path = VFolderPath::parse(text)?;
        if path.is_root() {
            return Err(PathError::FolderRoot);
        }
        Ok(path)
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VFolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for VFolderPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// One path component: the new name of a renamed entry, which the proxy puts next to the old
/// one (`parent / new_name`), so a `/` or `..` in it would move the entry anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryName(String);

impl EntryName {
    pub fn parse(text: &str) -> Result<EntryName, PathError> {
        check_characters(text)?;
        match text {
            "" => Err(PathError::Empty),
            "." | ".." => Err(PathError::DotName),
            name if name.contains('/') => Err(PathError::Separator),
            name if name.len() > MAX_COMPONENT_BYTES => Err(PathError::ComponentTooLong),
            name => Ok(EntryName(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a folder goes inside a container (a `mount_map` target): absolute, or relative to
/// the kernel's home. Unlike [`VFolderPath`] an absolute path is fine (`/mnt/data`), but a
/// `..` component is not (`/home/work/../../root` would mount over `/root`), nor NUL or a
/// backslash. Returns the path with `.` and empty components removed.
pub fn container_path(text: &str) -> Result<String, PathError> {
    check_characters(text)?;
    if text.is_empty() {
        return Err(PathError::Empty);
    }
    let absolute = text.starts_with('/');
    let mut components = Vec::new();
    for component in text.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(PathError::ParentComponent),
            name if name.len() > MAX_COMPONENT_BYTES => {
                return Err(PathError::ComponentTooLong);
            }
            name => components.push(name),
        }
    }
    let joined = components.join("/");
    Ok(match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_normalise() {
        let parse = |text| VFolderPath::parse(text).unwrap().to_string();
        assert_eq!(parse("a/b/./c.txt"), "a/b/c.txt");
        assert_eq!(parse("a//b/"), "a/b");
        assert_eq!(parse("./x"), "x");
        assert_eq!(parse("."), ".");
        assert_eq!(parse("./"), ".");
        assert_eq!(parse("..."), "...");
        assert_eq!(parse("a..b/.hidden"), "a..b/.hidden");
        assert!(VFolderPath::parse(".").unwrap().is_root());
    }

    #[test]
    fn escapes_and_bad_characters_are_refused() {
        let refused = |text: &str| VFolderPath::parse(text).unwrap_err();
        assert_eq!(
            refused("../../../../other/secret.txt"),
            PathError::ParentComponent
        );
        assert_eq!(refused("a/../../b"), PathError::ParentComponent);
        assert_eq!(refused("a/.."), PathError::ParentComponent);
        assert_eq!(refused("/etc/hostname"), PathError::Absolute);
        assert_eq!(refused("//etc"), PathError::Absolute);
        assert_eq!(refused("a\0b"), PathError::Nul);
        assert_eq!(refused("..\\..\\x"), PathError::Backslash);
        assert_eq!(refused(""), PathError::Empty);
        assert_eq!(refused(&"a/".repeat(2049)), PathError::TooLong);
        assert_eq!(refused(&"a".repeat(256)), PathError::ComponentTooLong);
        assert_eq!(
            VFolderPath::parse_entry("./").unwrap_err(),
            PathError::FolderRoot
        );
        assert_eq!(VFolderPath::parse_entry("a/b").unwrap().as_str(), "a/b");
    }

    #[test]
    fn entry_names_are_one_component() {
        assert_eq!(EntryName::parse("new.txt").unwrap().as_str(), "new.txt");
        assert_eq!(
            EntryName::parse("../../x").unwrap_err(),
            PathError::Separator
        );
        assert_eq!(EntryName::parse("..").unwrap_err(), PathError::DotName);
        assert_eq!(EntryName::parse("").unwrap_err(), PathError::Empty);
        assert_eq!(EntryName::parse("a\0").unwrap_err(), PathError::Nul);
        assert_eq!(EntryName::parse("a\\b").unwrap_err(), PathError::Backslash);
    }

    #[test]
    fn container_paths_stay_where_they_point() {
        assert_eq!(container_path("/mnt//data/").unwrap(), "/mnt/data");
        assert_eq!(container_path("work/./x").unwrap(), "work/x");
        assert_eq!(
            container_path("/home/work/../../root").unwrap_err(),
            PathError::ParentComponent
        );
        assert_eq!(
            container_path("../root").unwrap_err(),
            PathError::ParentComponent
        );
        assert_eq!(container_path("/a\0").unwrap_err(), PathError::Nul);
    }
}
