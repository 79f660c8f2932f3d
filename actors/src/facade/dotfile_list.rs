//! Dotfile lists as the original stores them: a msgpack array of `{path, perm, data}` maps,
//! at most [`MAXIMUM_DOTFILE_SIZE`] bytes packed and [`MAX_DOTFILES`] entries, with reserved
//! paths refused. Pure functions: the routes read the packed bytes, apply a change here and
//! write the result back in one transaction.

use serde::{Deserialize, Serialize};

use crate::facade::problem::{Problem, ProblemKind};

/// The original's `MAXIMUM_DOTFILE_SIZE`: the packed list (and each file's data, and a
/// bootstrap script) must fit in 64 KiB.
pub const MAXIMUM_DOTFILE_SIZE: usize = 64 * 1024;

/// The most dotfiles one owner may have (the original's creation limit).
pub const MAX_DOTFILES: usize = 100;

/// The original's `RESERVED_DOTFILES`: paths the kernel runner manages itself.
pub const RESERVED_DOTFILES: &[&str] = &[
    ".terminfo",
    ".jupyter",
    ".ssh",
    ".ssh/authorized_keys",
    ".local",
    ".config",
];

/// One dotfile. Field order is the original's, so the packed bytes match its `packb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dotfile {
    pub path: String,
    pub perm: String,
    pub data: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DotfileError {
    #[error("the stored dotfiles of {owner} are not a msgpack list of dotfiles: {reason}")]
    Corrupt { owner: String, reason: String },
    #[error("No leftover space for dotfile storage")]
    NoSpace,
    #[error("Dotfile creation limit reached")]
    LimitReached,
    #[error("dotfile path is reserved for internal operations.")]
    Reserved,
    #[error("dotfile already exists: {0}")]
    AlreadyExists(String),
    #[error("no such dotfile: {0}")]
    NotFound(String),
    #[error("permission must be three octal digits, like 644")]
    BadPermission,
    #[error("data must be at most {MAXIMUM_DOTFILE_SIZE} characters")]
    TooLarge,
}

impl From<DotfileError> for Problem {
    fn from(error: DotfileError) -> Problem {
        match error {
            DotfileError::Corrupt { .. } => Problem::internal(error.to_string()),
            DotfileError::NoSpace | DotfileError::LimitReached => {
                Problem::new(ProblemKind::GenericBadRequest)
                    .with_title("Dotfile creation has failed.")
                    .with_msg(error.to_string())
            }
            DotfileError::AlreadyExists(_) => {
                Problem::new(ProblemKind::GenericBadRequest).with_title("Dotfile already exists.")
            }
            DotfileError::NotFound(_) => Problem::not_found("dotfile"),
            DotfileError::Reserved | DotfileError::BadPermission | DotfileError::TooLarge => {
                Problem::invalid_params(error.to_string())
            }
        }
    }
}

/// Reads a stored list (an empty column reads as no dotfiles).
pub fn decode(packed: &[u8], owner: &str) -> Result<Vec<Dotfile>, DotfileError> {
    if packed.is_empty() {
        return Ok(Vec::new());
    }
    rmp_serde::from_slice(packed).map_err(|e| DotfileError::Corrupt {
        owner: owner.to_owned(),
        reason: e.to_string(),
    })
}

/// Packs a list as the original does (an array of maps with string keys).
pub fn encode(dotfiles: &[Dotfile]) -> Vec<u8> {
    // Serializing owned strings into a Vec cannot fail.
    rmp_serde::to_vec_named(dotfiles).unwrap_or_else(|_| vec![0x90])
}

/// Checks a new or updated dotfile's permission (`^[0-7]{3}$`) and data size.
pub fn validate(dotfile: &Dotfile) -> Result<(), DotfileError> {
    let perm = dotfile.perm.as_bytes();
    if perm.len() != 3 || !perm.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(DotfileError::BadPermission);
    }
    if dotfile.data.chars().count() > MAXIMUM_DOTFILE_SIZE {
        return Err(DotfileError::TooLarge);
    }
    Ok(())
}

fn packed_within_limit(dotfiles: &[Dotfile]) -> Result<Vec<u8>, DotfileError> {
    let packed = encode(dotfiles);
    if packed.len() > MAXIMUM_DOTFILE_SIZE {
        return Err(DotfileError::NoSpace);
    }
    Ok(packed)
}

/// `stored` plus `new`, packed; the original's checks in its order.
pub fn add(stored: &[u8], owner: &str, new: Dotfile) -> Result<Vec<u8>, DotfileError> {
    validate(&new)?;
    if stored.len() >= MAXIMUM_DOTFILE_SIZE {
        return Err(DotfileError::NoSpace);
    }
    let mut dotfiles = decode(stored, owner)?;
    if dotfiles.len() >= MAX_DOTFILES {
        return Err(DotfileError::LimitReached);
    }
    if RESERVED_DOTFILES.contains(&new.path.as_str()) {
        return Err(DotfileError::Reserved);
    }
    if dotfiles.iter().any(|d| d.path == new.path) {
        return Err(DotfileError::AlreadyExists(new.path));
    }
    dotfiles.push(new);
    packed_within_limit(&dotfiles)
}

/// `stored` with the dotfile at `new.path` replaced (moved last, as the original does).
pub fn replace(stored: &[u8], owner: &str, new: Dotfile) -> Result<Vec<u8>, DotfileError> {
    validate(&new)?;
    let dotfiles = decode(stored, owner)?;
    let mut kept: Vec<Dotfile> = dotfiles
        .iter()
        .filter(|d| d.path != new.path)
        .cloned()
        .collect();
    if kept.len() == dotfiles.len() {
        return Err(DotfileError::NotFound(new.path));
    }
    kept.push(new);
    packed_within_limit(&kept)
}

/// `stored` without the dotfile at `path`.
pub fn remove(stored: &[u8], owner: &str, path: &str) -> Result<Vec<u8>, DotfileError> {
    let dotfiles = decode(stored, owner)?;
    let kept: Vec<Dotfile> = dotfiles
        .iter()
        .filter(|d| d.path != path)
        .cloned()
        .collect();
    if kept.len() == dotfiles.len() {
        return Err(DotfileError::NotFound(path.to_owned()));
    }
    Ok(encode(&kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> Dotfile {
        Dotfile {
            path: path.into(),
            perm: "644".into(),
            data: data.into(),
        }
    }

    #[test]
    fn packs_like_the_originals_msgpack() {
        // msgpack.packb([{"path": ".a", "perm": "644", "data": "x"}]) in Python.
        let expected: &[u8] = b"\x91\x83\xa4path\xa2.a\xa4perm\xa3644\xa4data\xa1x";
        assert_eq!(encode(&[file(".a", "x")]), expected);
        assert_eq!(decode(expected, "k").unwrap(), [file(".a", "x")]);
        assert_eq!(encode(&[]), b"\x90");
        assert_eq!(decode(b"", "k").unwrap(), []);
        assert!(matches!(
            decode(b"\xc1", "k"),
            Err(DotfileError::Corrupt { .. })
        ));
    }

    #[test]
    fn add_replace_remove_follow_the_originals_rules() {
        let one = add(b"\x90", "k", file(".vimrc", "set nu")).unwrap();
        assert_eq!(
            add(&one, "k", file(".vimrc", "again")),
            Err(DotfileError::AlreadyExists(".vimrc".into()))
        );
        assert_eq!(
            add(&one, "k", file(".ssh", "x")),
            Err(DotfileError::Reserved)
        );
        let mut bad = file(".x", "");
        bad.perm = "8".into();
        assert_eq!(add(&one, "k", bad), Err(DotfileError::BadPermission));
        let two = add(&one, "k", file(".bashrc", "ls")).unwrap();
        let replaced = replace(&two, "k", file(".vimrc", "set nonu")).unwrap();
        assert_eq!(
            decode(&replaced, "k").unwrap(),
            [file(".bashrc", "ls"), file(".vimrc", "set nonu")]
        );
        assert_eq!(
            replace(&two, "k", file(".zshrc", "")),
            Err(DotfileError::NotFound(".zshrc".into()))
        );
        let removed = remove(&replaced, "k", ".bashrc").unwrap();
        assert_eq!(decode(&removed, "k").unwrap(), [file(".vimrc", "set nonu")]);
        assert_eq!(
            remove(&removed, "k", ".bashrc"),
            Err(DotfileError::NotFound(".bashrc".into()))
        );
    }

    #[test]
    fn size_and_count_are_bounded() {
        let big = "x".repeat(40_000);
        let one = add(b"", "k", file(".a", &big)).unwrap();
        assert_eq!(add(&one, "k", file(".b", &big)), Err(DotfileError::NoSpace));
        let mut packed = encode(&[]);
        for index in 0..MAX_DOTFILES {
            packed = add(&packed, "k", file(&format!(".f{index}"), "")).unwrap();
        }
        assert_eq!(
            add(&packed, "k", file(".one-more", "")),
            Err(DotfileError::LimitReached)
        );
        let too_big = "y".repeat(MAXIMUM_DOTFILE_SIZE + 1);
        assert_eq!(validate(&file(".c", &too_big)), Err(DotfileError::TooLarge));
    }
}
