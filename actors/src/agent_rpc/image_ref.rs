//! `ai.backend.common.docker.ImageRef` as the agent unpickles it (msgpack ext type 7).
//!
//! `create_kernels` needs one ImageRef per kernel, keyed by the kernel's UUID (ext 1). We write
//! the pickle CPython writes for the dataclass: the six fields plus `_tag_set` (the version part
//! of the tag and a `PlatformTagSet` of the platform parts, which a Docker agent reads), built
//! with NEWOBJ + BUILD so that no constructor runs on the agent side. A tag whose platform parts
//! Python itself would reject gets no `_tag_set` (the six fields alone are enough for the
//! create/destroy path, as tested against the real agent).

use std::collections::BTreeSet;

use crate::wire::Value;
use crate::wire::msgpack::ext_code;
use crate::wire::pickle::PickleWriter;

const MODULE: &str = "ai.backend.common.docker";

/// The fields of an ImageRef.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The image name without registry and project, e.g. `python`.
    pub name: String,
    pub project: Option<String>,
    pub tag: String,
    pub registry: String,
    pub architecture: String,
    pub is_local: bool,
}

impl ImageRef {
    /// Splits a canonical name `registry/project/name:tag` knowing its registry and project (as
    /// stored in the `images` row).
    pub fn from_canonical(
        canonical: &str,
        registry: &str,
        project: Option<&str>,
        architecture: &str,
        is_local: bool,
    ) -> ImageRef {
        let (repository, tag) = match canonical.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => (canonical, "latest"),
        };
        let mut name = repository
            .strip_prefix(registry)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(repository);
        if let Some(project) = project.filter(|p| !p.is_empty()) {
            name = name
                .strip_prefix(project)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(name);
        }
        ImageRef {
            name: name.to_owned(),
            project: project.map(str::to_owned),
            tag: tag.to_owned(),
            registry: registry.to_owned(),
            architecture: architecture.to_owned(),
            is_local,
        }
    }

    /// `registry/project/name:tag`, empty parts skipped.
    pub fn canonical(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for part in [
            self.registry.as_str(),
            self.project.as_deref().unwrap_or(""),
            self.name.as_str(),
        ] {
            if !part.is_empty() {
                parts.push(part);
            }
        }
        format!("{}:{}", parts.join("/"), self.tag)
    }

    /// The version and platform parts of the tag, as `PlatformTagSet` parses them, or `None`
    /// when Python would reject the tag.
    fn tag_set(&self) -> Option<(String, Vec<(String, String)>)> {
        let mut parts = self.tag.split('-');
        let version = parts.next()?.to_owned();
        let mut platform = Vec::new();
        let mut seen = BTreeSet::new();
        for part in parts {
            let split = part
                .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
                .unwrap_or(part.len());
            let (key, rest) = part.split_at(split);
            if key.is_empty() || !valid_platform_version(rest) || !seen.insert(key.to_owned()) {
                return None;
            }
            platform.push((key.to_owned(), rest.to_owned()));
        }
        Some((version, platform))
    }

    /// The protocol-5 pickle CPython writes for this ImageRef.
    pub fn pickle(&self) -> Vec<u8> {
        let mut writer = PickleWriter::new();
        writer.global(MODULE, "ImageRef");
        writer.raw(b")\x81\x94"); // EMPTY_TUPLE NEWOBJ MEMOIZE: cls.__new__(cls)
        writer.empty_dict().mark();
        writer.str("name").str(&self.name);
        writer.str("project");
        match &self.project {
            Some(project) => writer.str(project),
            None => writer.none(),
        };
        writer.str("tag").str(&self.tag);
        writer.str("registry").str(&self.registry);
        writer.str("architecture").str(&self.architecture);
        writer.str("is_local").bool(self.is_local);
        if let Some((version, platform)) = self.tag_set() {
            writer.str("_tag_set").str(&version);
            // The module string is memo 0; CPython refers back to it (BINGET 0).
            writer.raw(b"h\x00").str("PlatformTagSet").raw(b"\x93\x94");
            writer.raw(b")\x81\x94N"); // PlatformTagSet.__new__, then state (None, {...})
            writer.empty_dict().str("_data").empty_dict();
            if platform.len() > 1 {
                writer.mark();
            }
            for (key, version) in &platform {
                writer.str(key).str(version);
            }
            match platform.len() {
                0 => {}
                1 => {
                    writer.raw(b"s");
                }
                _ => {
                    writer.set_items();
                }
            }
            writer.raw(b"s"); // {"_data": {...}}
            writer.tuple(2).raw(b"b"); // BUILD PlatformTagSet
            writer.tuple(2); // (version, PlatformTagSet)
        }
        writer.set_items().raw(b"b");
        writer.finish()
    }

    /// The msgpack value the agent unpacks into this ImageRef.
    pub fn to_ext(&self) -> Value {
        Value::Ext(ext_code::IMAGE_REF, self.pickle())
    }
}

/// `\d+(?:\.\d+)*[a-z0-9]*` or empty.
fn valid_platform_version(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let bytes = text.as_bytes();
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
    while i < bytes.len() && bytes[i] == b'.' {
        let mut j = i + 1;
        if !digits(&mut j) {
            break;
        }
        i = j;
    }
    bytes[i..]
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(ImageRef(...), protocol=5)` from the 26.9.6 manager side, 261 bytes.
    const PYTHON_PICKLE: &str = "800595fa000000000000008c1861692e6261636b656e642e636f6d6d6f6e2e646f636b6572948c08496d6167655265669493942981947d94288c046e616d65948c06707974686f6e948c0770726f6a656374948c0774657374696e67948c03746167948c0f332e392d7562756e747532302e3034948c087265676973747279948c0d63722e6261636b656e642e6169948c0c617263686974656374757265948c067838365f3634948c0869735f6c6f63616c94898c085f7461675f736574948c03332e399468008c0e506c6174666f726d5461675365749493942981944e7d948c055f64617461947d948c067562756e7475948c0532302e3034947373869462869475622e";

    fn python_image() -> ImageRef {
        ImageRef::from_canonical(
            "cr.backend.ai/testing/python:3.9-ubuntu20.04",
            "cr.backend.ai",
            Some("testing"),
            "x86_64",
            false,
        )
    }

    #[test]
    fn the_pickle_is_byte_identical_to_pythons() {
        assert_eq!(hex::encode(python_image().pickle()), PYTHON_PICKLE);
    }

    #[test]
    fn canonical_names_split_into_the_dataclass_fields() {
        let image = python_image();
        assert_eq!(image.name, "python");
        assert_eq!(image.tag, "3.9-ubuntu20.04");
        assert_eq!(
            image.canonical(),
            "cr.backend.ai/testing/python:3.9-ubuntu20.04"
        );
        let local = ImageRef::from_canonical(
            "index.docker.io/lablup/python",
            "index.docker.io",
            None,
            "aarch64",
            true,
        );
        assert_eq!(local.name, "lablup/python");
        assert_eq!(local.tag, "latest");
        assert_eq!(local.canonical(), "index.docker.io/lablup/python:latest");
    }

    #[test]
    fn the_pickle_reads_back_with_our_unpickler() {
        for tag in [
            "3.9-ubuntu20.04-py39cuda11.3",
            "latest",
            "3.9-bad-tag-!",
            "1-ubuntu-ubuntu",
        ] {
            let image = ImageRef {
                tag: tag.to_owned(),
                project: None,
                ..python_image()
            };
            let bytes = image.pickle();
            crate::wire::pickle::read(&bytes)
                .unwrap_or_else(|e| panic!("tag {tag}: our own pickle does not read back: {e}"));
        }
    }

    #[test]
    fn platform_versions_follow_pythons_pattern() {
        assert!(valid_platform_version("20.04"));
        assert!(valid_platform_version("11.3"));
        assert!(valid_platform_version(""));
        assert!(valid_platform_version("3cu"));
        assert!(!valid_platform_version("x1"));
        assert!(!valid_platform_version("1.2-"));
    }
}
