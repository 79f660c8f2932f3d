//! Image references as Backend.AI reads them (`ai.backend.common.docker.ImageRef`): the
//! canonical `registry/project/name:tag` form, tag validation, and architecture aliases.
//! Pure functions, no I/O.

/// Architecture names as registries report them (Go's `GOARCH`) → Backend.AI's names.
const ARCH_NAME_ALIASES: &[(&str, &str)] = &[
    ("arm64", "aarch64"),
    ("amd64", "x86_64"),
    ("x64", "x86_64"),
    ("x32", "x86"),
    ("i686", "x86"),
];

/// The registry of a reference that names none, as Docker does.
pub const DEFAULT_REGISTRY: &str = "index.docker.io";
/// The project prepended to a bare name on the default registry.
pub const DEFAULT_REPOSITORY: &str = "lablup";
/// The architecture of a row when a command does not name one.
pub const DEFAULT_ARCHITECTURE: &str = "x86_64";

/// Backend.AI's name for an architecture (`amd64` → `x86_64`, `arm64` → `aarch64`).
pub fn normalize_architecture(architecture: &str) -> String {
    ARCH_NAME_ALIASES
        .iter()
        .find(|(alias, _)| *alias == architecture)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| architecture.to_owned())
}

/// A parsed reference: `registry/name:tag`, where `name` is `project/image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub name: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    #[error("invalid image tag {0:?}")]
    InvalidTag(String),
}

impl ImageRef {
    /// `registry/name:tag`.
    pub fn canonical(&self) -> String {
        format!("{}/{}:{}", self.registry, self.name, self.tag)
    }

    /// The first path component of `name` (Backend.AI's "project"), if the name has one.
    pub fn project(&self) -> Option<&str> {
        self.name.split_once('/').map(|(project, _)| project)
    }

    /// Parses a reference the way `ImageRef(value, ["*"], arch)` does: with a `/`, the first
    /// component is the registry whatever it looks like; without one, the default registry and
    /// the `lablup` project are assumed. A missing tag is `latest`.
    pub fn parse_any_registry(value: &str) -> Result<ImageRef, ImageRefError> {
        if value.contains("://") || value.starts_with("//") {
            return Err(ImageRefError::InvalidName(value.to_owned()));
        }
        let (registry, name, tag) = match value.split_once('/') {
            None => {
                let (name, tag) = split_name_tag(value)?;
                let name = if name.contains('/') {
                    name
                } else {
                    format!("{DEFAULT_REPOSITORY}/{name}")
                };
                (DEFAULT_REGISTRY.to_owned(), name, tag)
            }
            Some((registry, rest)) => {
                let using_default = registry == "docker.io" || registry.ends_with(".docker.io");
                let (name, tag) = split_name_tag(rest)?;
                let name = if using_default && !name.contains('/') {
                    format!("{DEFAULT_REPOSITORY}/{name}")
                } else {
                    name
                };
                (registry.to_owned(), name, tag)
            }
        };
        validate_tag(&tag)?;
        Ok(ImageRef {
            registry,
            name,
            tag,
        })
    }
}

/// Whether `registry` is one `ImageRef` takes as a registry: the default one, one of `known`,
/// or an IP address (with or without a port).
fn is_known_registry(registry: &str, known: &[String]) -> bool {
    if registry == DEFAULT_REGISTRY || known.iter().any(|k| k == registry) {
        return true;
    }
    let host = match registry.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => registry.split(':').next().unwrap_or_default(),
    };
    host.parse::<std::net::IpAddr>().is_ok()
}

impl ImageRef {
    /// Parses a reference as `ImageRef(value, known_registries)` does: the first component is
    /// the registry when it is a known one (or an IP address, or `known` is `["*"]`); otherwise
    /// the whole value names an image on the default registry. Only the tag's shape (a slug) is
    /// checked, as there.
    pub fn parse_known(value: &str, known: &[String]) -> Result<ImageRef, ImageRefError> {
        if value.contains("://") || value.starts_with("//") {
            return Err(ImageRefError::InvalidName(value.to_owned()));
        }
        let on_default = |value: &str| -> Result<(String, String, String), ImageRefError> {
            let (name, tag) = split_name_tag(value)?;
            let name = if name.contains('/') {
                name
            } else {
                format!("{DEFAULT_REPOSITORY}/{name}")
            };
            Ok((DEFAULT_REGISTRY.to_owned(), name, tag))
        };
        let (registry, name, tag) = match value.split_once('/') {
            None => on_default(value)?,
            Some((first, rest)) if is_known_registry(first, known) => {
                let (name, tag) = split_name_tag(rest)?;
                let using_default = first == "docker.io" || first.ends_with(".docker.io");
                let name = if using_default && !name.contains('/') {
                    format!("{DEFAULT_REPOSITORY}/{name}")
                } else {
                    name
                };
                (first.to_owned(), name, tag)
            }
            Some((first, rest)) if known.len() == 1 && known[0] == "*" => {
                let (name, tag) = split_name_tag(rest)?;
                (first.to_owned(), name, tag)
            }
            Some(_) => on_default(value)?,
        };
        if !is_slug(&tag) {
            return Err(ImageRefError::InvalidTag(tag));
        }
        Ok(ImageRef {
            registry,
            name,
            tag,
        })
    }
}

/// Splits `name:tag` at the last `:`; the tag defaults to `latest`.
fn split_name_tag(value: &str) -> Result<(String, String), ImageRefError> {
    let (name, tag) = match value.rsplit_once(':') {
        Some((name, tag)) => (name, tag),
        None => (value, "latest"),
    };
    if name.is_empty() {
        return Err(ImageRefError::InvalidName(value.to_owned()));
    }
    Ok((name.to_owned(), tag.to_owned()))
}

/// A tag Backend.AI accepts: a slug (`[A-Za-z0-9]` at both ends, `-._` inside), and every
/// `-`-separated part after the first a platform tag such as `ubuntu20.04`, `py39` or `cuda`
/// (letters, then an optional version), each platform named once.
pub fn validate_tag(tag: &str) -> Result<(), ImageRefError> {
    let invalid = || ImageRefError::InvalidTag(tag.to_owned());
    if !is_slug(tag) {
        return Err(invalid());
    }
    let mut seen_platforms: Vec<&str> = Vec::new();
    for part in tag.split('-').skip(1) {
        let platform = platform_tag_key(part).ok_or_else(invalid)?;
        if seen_platforms.contains(&platform) {
            return Err(invalid());
        }
        seen_platforms.push(platform);
    }
    Ok(())
}

/// `^[A-Za-z0-9](?:[A-Za-z0-9-._]*[A-Za-z0-9])?$`
fn is_slug(value: &str) -> bool {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The key of one platform tag (`^(?P<tag>[a-zA-Z_]+)(?P<version>\d+(?:\.\d+)*[a-z0-9]*)?$`),
/// or `None` when the part is not one.
fn platform_tag_key(part: &str) -> Option<&str> {
    let key_len = part
        .bytes()
        .take_while(|b| b.is_ascii_alphabetic() || *b == b'_')
        .count();
    if key_len == 0 {
        return None;
    }
    let (key, version) = part.split_at(key_len);
    if version.is_empty() || is_platform_version(version) {
        Some(key)
    } else {
        None
    }
}

/// `\d+(?:\.\d+)*[a-z0-9]*`
fn is_platform_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    while i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i += 1;
        digits(&mut i);
    }
    bytes[i..]
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Canonical names printed by `ImageRef(value, known).canonical` (backend.ai-common 23.09).
    #[test]
    fn known_registries_decide_what_the_first_component_is() {
        let known = vec!["cr.backend.ai".to_owned()];
        let canonical = |value: &str, known: &[String]| {
            ImageRef::parse_known(value, known).map(|r| r.canonical())
        };
        assert_eq!(
            canonical("cr.backend.ai/stable/python:3.9", &known).unwrap(),
            "cr.backend.ai/stable/python:3.9"
        );
        assert_eq!(
            canonical("other.io/x/y:1", &known).unwrap(),
            "index.docker.io/other.io/x/y:1"
        );
        assert_eq!(
            canonical("127.0.0.1:5000/x/y:1", &known).unwrap(),
            "127.0.0.1:5000/x/y:1"
        );
        assert_eq!(
            canonical("python:3.9", &known).unwrap(),
            "index.docker.io/lablup/python:3.9"
        );
        assert_eq!(
            canonical("index.docker.io/python", &known).unwrap(),
            "index.docker.io/lablup/python:latest"
        );
        assert_eq!(
            canonical("other.io/y:1", &["*".to_owned()]).unwrap(),
            "other.io/y:1"
        );
        assert!(canonical("x/y:-bad", &known).is_err());
        assert!(canonical("https://x/y", &known).is_err());
    }

    #[test]
    fn architectures_are_normalized() {
        assert_eq!(normalize_architecture("amd64"), "x86_64");
        assert_eq!(normalize_architecture("arm64"), "aarch64");
        assert_eq!(normalize_architecture("i686"), "x86");
        assert_eq!(normalize_architecture("riscv64"), "riscv64");
    }

    #[test]
    fn any_registry_references_take_the_first_component_as_registry() {
        let r =
            ImageRef::parse_any_registry("cr.backend.ai/stable/python:3.9-ubuntu20.04").unwrap();
        assert_eq!(r.registry, "cr.backend.ai");
        assert_eq!(r.name, "stable/python");
        assert_eq!(r.tag, "3.9-ubuntu20.04");
        assert_eq!(r.project(), Some("stable"));
        assert_eq!(r.canonical(), "cr.backend.ai/stable/python:3.9-ubuntu20.04");

        let r = ImageRef::parse_any_registry("127.0.0.1:5000/testing/python").unwrap();
        assert_eq!(r.canonical(), "127.0.0.1:5000/testing/python:latest");

        let r = ImageRef::parse_any_registry("python:3.9").unwrap();
        assert_eq!(r.canonical(), "index.docker.io/lablup/python:3.9");

        let r = ImageRef::parse_any_registry("index.docker.io/python:3.9").unwrap();
        assert_eq!(r.canonical(), "index.docker.io/lablup/python:3.9");
    }

    #[test]
    fn bad_references_are_rejected() {
        assert!(matches!(
            ImageRef::parse_any_registry("http://x/y:z"),
            Err(ImageRefError::InvalidName(_))
        ));
        assert!(matches!(
            ImageRef::parse_any_registry("reg/:tag"),
            Err(ImageRefError::InvalidName(_))
        ));
        assert!(matches!(
            ImageRef::parse_any_registry("reg/a/b:-x"),
            Err(ImageRefError::InvalidTag(_))
        ));
    }

    #[test]
    fn tags_follow_the_platform_tag_rules() {
        for good in [
            "latest",
            "3.9-ubuntu20.04",
            "22.09-py38-cuda11.3",
            "1.0-rc1",
            "v2_0",
            "2.10-ubuntu22.04-cuda12.1.1",
        ] {
            assert_eq!(validate_tag(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "2023-01-01",
            "3.9-ubuntu20.04-ubuntu22.04",
            "1.0-Py39X",
            "a b",
        ] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
