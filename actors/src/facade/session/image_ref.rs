//! Image references as a session request names them (`127.0.0.1:25000/testing/python:3.9`,
//! `python:3.9`, `lablup/python`), read as the original's `ImageRef(value, ["*"], arch)`: the
//! one rule lives in `bai_schema::image_ref` ([`ImageRef::parse_known`]); this module only says
//! which registries a session request accepts (any).

pub use bai_schema::image_ref::normalize_architecture;
use bai_schema::image_ref::{ImageRef, ImageRefError};

/// The reference a session request names, from any registry.
pub fn request_image_ref(value: &str) -> Result<ImageRef, ImageRefError> {
    ImageRef::parse_known(value, &["*".to_owned()])
}

/// The architecture of this manager's machine: the default of session requests.
pub fn manager_architecture() -> String {
    normalize_architecture(std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Canonical names printed by `ImageRef(value, ["*"]).canonical` (backend.ai-common 23.09).
    #[test]
    fn references_become_the_originals_canonical_names() {
        let canonical = |value: &str| request_image_ref(value).unwrap().canonical();
        assert_eq!(
            canonical("127.0.0.1:25000/testing/python:3.9-ubuntu20.04"),
            "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"
        );
        assert_eq!(canonical("python:3.9"), "index.docker.io/lablup/python:3.9");
        assert_eq!(
            canonical("cr.backend.ai/stable/python"),
            "cr.backend.ai/stable/python:latest"
        );
        assert_eq!(
            canonical("index.docker.io/python:3"),
            "index.docker.io/lablup/python:3"
        );
        assert_eq!(canonical("docker.io/python:3"), "docker.io/python:3");
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        assert!(matches!(
            request_image_ref("https://r/x:1"),
            Err(ImageRefError::InvalidName(_))
        ));
        assert!(matches!(
            request_image_ref("r/x:-bad"),
            Err(ImageRefError::InvalidTag(_))
        ));
        assert!(matches!(
            request_image_ref("r/:1"),
            Err(ImageRefError::InvalidName(_))
        ));
    }
}
