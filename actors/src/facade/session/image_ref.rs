//! Image references as a session request names them (`127.0.0.1:25000/testing/python:3.9`,
//! `python:3.9`, `lablup/python`): parsed as the original's `ImageRef(value, ["*"], arch)`,
//! which accepts any registry, into the canonical `registry/name:tag` the images table keys on.

pub use bai_schema::image_ref::normalize_architecture;

/// The registry of references without one.
pub const DEFAULT_REGISTRY: &str = "index.docker.io";
/// The repository of single-name references on the default registry.
pub const DEFAULT_REPOSITORY: &str = "library";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("{0:?} is not an image name: a reference has no scheme (no \"://\")")]
    HasScheme(String),
    #[error("{0:?} has an empty image name")]
    EmptyName(String),
    #[error("{tag:?} of {reference:?} is not a valid image tag")]
    BadTag { reference: String, tag: String },
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    /// `project/image`, e.g. `testing/python`.
    pub name: String,
    pub tag: String,
    pub architecture: String,
}

impl ImageRef {
    /// Parses `value` accepting any registry (the first path component is the registry).
    pub fn parse_any_registry(value: &str, architecture: &str) -> Result<ImageRef, ImageRefError> {
        if value.contains("://") || value.starts_with("//") {
            return Err(ImageRefError::HasScheme(value.to_owned()));
        }
        let (registry, rest, on_default) = match value.split_once('/') {
            None => (DEFAULT_REGISTRY, value, true),
            Some((registry, rest)) => {
                let on_default = registry == "docker.io" || registry.ends_with(".docker.io");
                (registry, rest, on_default)
            }
        };
        let (mut name, tag) = match rest.rsplit_once(':') {
            // A colon inside a later path component is part of the name, not a tag.
            Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
            _ => (rest.to_owned(), "latest".to_owned()),
        };
        if name.is_empty() {
            return Err(ImageRefError::EmptyName(value.to_owned()));
        }
        if on_default && !name.contains('/') {
            name = format!("{DEFAULT_REPOSITORY}/{name}");
        }
        if !is_slug(&tag) {
            return Err(ImageRefError::BadTag {
                reference: value.to_owned(),
                tag,
            });
        }
        Ok(ImageRef {
            registry: registry.to_owned(),
            name,
            tag,
            architecture: normalize_architecture(architecture),
        })
    }

    /// `registry/name:tag`.
    pub fn canonical(&self) -> String {
        format!("{}/{}:{}", self.registry, self.name, self.tag)
    }
}

/// `^[A-Za-z0-9](?:[A-Za-z0-9-._]*[A-Za-z0-9])?$`
fn is_slug(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// The architecture of this manager's machine: the default of session requests.
pub fn manager_architecture() -> String {
    normalize_architecture(std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_become_canonical_names() {
        let image =
            ImageRef::parse_any_registry("127.0.0.1:25000/testing/python:3.9-ubuntu20.04", "amd64")
                .unwrap();
        assert_eq!(image.registry, "127.0.0.1:25000");
        assert_eq!(image.name, "testing/python");
        assert_eq!(image.tag, "3.9-ubuntu20.04");
        assert_eq!(image.architecture, "x86_64");
        assert_eq!(
            image.canonical(),
            "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"
        );
        assert_eq!(
            ImageRef::parse_any_registry("python:3.9", "x86_64")
                .unwrap()
                .canonical(),
            "index.docker.io/library/python:3.9"
        );
        assert_eq!(
            ImageRef::parse_any_registry("cr.backend.ai/stable/python", "aarch64")
                .unwrap()
                .canonical(),
            "cr.backend.ai/stable/python:latest"
        );
        assert_eq!(
            ImageRef::parse_any_registry("index.docker.io/python:3", "arm64")
                .unwrap()
                .canonical(),
            "index.docker.io/library/python:3"
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        assert!(matches!(
            ImageRef::parse_any_registry("https://r/x:1", "x86_64"),
            Err(ImageRefError::HasScheme(_))
        ));
        assert!(matches!(
            ImageRef::parse_any_registry("r/x:-bad", "x86_64"),
            Err(ImageRefError::BadTag { .. })
        ));
        assert!(matches!(
            ImageRef::parse_any_registry("r/:1", "x86_64"),
            Err(ImageRefError::EmptyName(_))
        ));
    }
}
