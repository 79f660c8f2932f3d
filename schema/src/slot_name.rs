//! A resource slot's name (`cpu`, `mem`, `cuda.shares`, ...), kept inside the value when it is
//! short, as every real slot name is.
//!
//! A cluster holds a few slot maps per agent and per session, and slot arithmetic builds new
//! maps all the time. With `String` names every map entry was a heap block of its own (32 bytes
//! for `cpu`) and every sum or difference allocated its names again; at 10,000 agents the kept
//! views alone held about 2 MiB of names. A `SlotName` is as large as a `String` and holds up to
//! [`INLINE_CAPACITY`] bytes without allocating.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest name held inline; longer ones (none of the known slot types) go to the heap.
pub const INLINE_CAPACITY: usize = 22;

#[derive(Clone)]
pub struct SlotName(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_CAPACITY],
    },
    Heap(Box<str>),
}

impl SlotName {
    pub fn new(name: &str) -> SlotName {
        if name.len() <= INLINE_CAPACITY {
            let mut bytes = [0u8; INLINE_CAPACITY];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            SlotName(Repr::Inline {
                len: name.len() as u8,
                bytes,
            })
        } else {
            SlotName(Repr::Heap(name.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // Only ever filled from a whole `&str`, so the prefix is valid UTF-8.
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(name) => name,
        }
    }
}

impl Deref for SlotName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SlotName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SlotName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for SlotName {
    fn from(name: &str) -> SlotName {
        SlotName::new(name)
    }
}

impl From<String> for SlotName {
    fn from(name: String) -> SlotName {
        if name.len() <= INLINE_CAPACITY {
            SlotName::new(&name)
        } else {
            SlotName(Repr::Heap(name.into_boxed_str()))
        }
    }
}

impl From<&String> for SlotName {
    fn from(name: &String) -> SlotName {
        SlotName::new(name)
    }
}

impl PartialEq for SlotName {
    fn eq(&self, other: &SlotName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SlotName {}

impl PartialEq<str> for SlotName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SlotName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for SlotName {
    fn partial_cmp(&self, other: &SlotName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SlotName {
    fn cmp(&self, other: &SlotName) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SlotName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_read_back_and_compare_as_their_text() {
        let longest_inline = "x".repeat(INLINE_CAPACITY);
        let too_long = "cuda.device.with.a.long.name";
        for name in [
            "",
            "cpu",
            "cuda.shares",
            longest_inline.as_str(),
            too_long,
            "é.ü",
        ] {
            let slot = SlotName::new(name);
            assert_eq!(slot.as_str(), name);
            assert_eq!(SlotName::from(name.to_owned()), slot);
            assert_eq!(slot.to_string(), name);
            assert_eq!(format!("{slot:?}"), format!("{name:?}"));
        }
        assert!(matches!(
            SlotName::new(&longest_inline).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(SlotName::new(too_long).0, Repr::Heap(_)));
        let mut names = [too_long, "mem", "cpu", "cuda.shares"].map(SlotName::new);
        names.sort();
        assert_eq!(
            names.iter().map(SlotName::as_str).collect::<Vec<_>>(),
            ["cpu", "cuda.device.with.a.long.name", "cuda.shares", "mem"]
        );
    }

    #[test]
    fn a_name_is_no_larger_than_a_string() {
        assert_eq!(
            std::mem::size_of::<SlotName>(),
            std::mem::size_of::<String>()
        );
    }
}
