//! The msgpack value model of Backend.AI's wire ("Backend.AI msgpack": `use_bin_type=True`,
//! `strict_types=True`, ext types for UUIDs, datetimes and pickled Python objects), with a
//! decoder that never trusts a length prefix and an encoder that writes what Python writes.

use std::fmt;

/// How deep arrays and maps may nest before a payload is refused; the deepest real event
/// (`kernel_started.creation_info`) nests about 8 levels.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The ext type codes of `ai.backend.common.msgpack`.
pub mod ext_code {
    pub const UUID: i8 = 1;
    pub const DATETIME: i8 = 2;
    pub const DECIMAL: i8 = 3;
    pub const POSIX_PATH: i8 = 4;
    pub const PURE_POSIX_PATH: i8 = 5;
    pub const ENUM: i8 = 6;
    pub const IMAGE_REF: i8 = 7;
    pub const RESOURCE_SLOT: i8 = 8;
    pub const BINARY_SIZE: i8 = 16;
}

/// One msgpack value. Maps keep their pairs in wire order (Python dicts are ordered, and
/// keys need not be strings: `create_kernels` uses UUID keys).
#[derive(Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Every integer that fits an `i64`.
    Int(i64),
    /// Only the integers above `i64::MAX`.
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// An extension value: its type code and raw payload (see [`ext_code`]).
    Ext(i8, Vec<u8>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MsgpackError {
    #[error("msgpack ends early at byte {offset} (needed {needed} more bytes)")]
    Truncated { offset: usize, needed: usize },
    #[error("msgpack byte 0x{marker:02x} at offset {offset} is not a valid marker")]
    BadMarker { marker: u8, offset: usize },
    #[error("msgpack string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("msgpack nests deeper than {MAX_NESTING_DEPTH} levels at offset {offset}")]
    TooDeep { offset: usize },
    #[error("{extra} trailing bytes after the msgpack value")]
    TrailingBytes { extra: usize },
}

impl Value {
    pub fn str(text: impl Into<String>) -> Value {
        Value::Str(text.into())
    }

    /// A map from string keys, in the given order.
    pub fn map_of<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (Value::Str(key.into()), value))
                .collect(),
        )
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(number) => Some(*number),
            Value::F32(number) => Some(f64::from(*number)),
            Value::Int(number) => Some(*number as f64),
            Value::UInt(number) => Some(*number as f64),
            _ => None,
        }
    }

    pub fn as_bin(&self) -> Option<&[u8]> {
        match self {
            Value::Bin(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(pairs) => Some(pairs),
            _ => None,
        }
    }

    pub fn as_ext(&self) -> Option<(i8, &[u8])> {
        match self {
            Value::Ext(code, bytes) => Some((*code, bytes)),
            _ => None,
        }
    }

    /// The value under string key `key` of a map (the first, if a producer repeated it).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::F32(_) | Value::F64(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Bool(flag) => write!(f, "{flag}"),
            Value::Int(number) => write!(f, "{number}"),
            Value::UInt(number) => write!(f, "{number}"),
            Value::F32(number) => write!(f, "{number}f32"),
            Value::F64(number) => write!(f, "{number}"),
            Value::Str(text) => write!(f, "{text:?}"),
            Value::Bin(bytes) if bytes.len() <= 32 => write!(f, "bin({})", hex::encode(bytes)),
            Value::Bin(bytes) => write!(f, "bin({} bytes)", bytes.len()),
            Value::Array(items) => f.debug_list().entries(items).finish(),
            Value::Map(pairs) => f
                .debug_map()
                .entries(pairs.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Ext(code, bytes) if bytes.len() <= 32 => {
                write!(f, "ext{code}({})", hex::encode(bytes))
            }
            Value::Ext(code, bytes) => write!(f, "ext{code}({} bytes)", bytes.len()),
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Str(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Str(text)
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Value {
        Value::Int(number)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Bool(flag)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(option: Option<T>) -> Value {
        option.map_or(Value::Nil, Into::into)
    }
}

/// Decodes exactly one value that spans all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, MsgpackError> {
    let mut reader = Reader { bytes, offset: 0 };
    let value = reader.value(0)?;
    let extra = bytes.len() - reader.offset;
    if extra > 0 {
        return Err(MsgpackError::TrailingBytes { extra });
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], MsgpackError> {
        let available = self.bytes.len() - self.offset;
        if count > available {
            return Err(MsgpackError::Truncated {
                offset: self.offset,
                needed: count - available,
            });
        }
        let slice = &self.bytes[self.offset..self.offset + count];
        self.offset += count;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn len8(&mut self) -> Result<usize, MsgpackError> {
        Ok(usize::from(self.byte()?))
    }

    fn len16(&mut self) -> Result<usize, MsgpackError> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize, MsgpackError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn string(&mut self, len: usize) -> Result<Value, MsgpackError> {
        let start = self.offset;
        let bytes = self.take(len)?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| MsgpackError::BadUtf8 { offset: start })?;
        Ok(Value::Str(text.to_owned()))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, MsgpackError> {
        // Every element takes at least one byte: a lying length cannot make us allocate more
        // than the payload itself.
        let mut items = Vec::with_capacity(len.min(self.bytes.len() - self.offset));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, MsgpackError> {
        let mut pairs = Vec::with_capacity(len.min((self.bytes.len() - self.offset) / 2));
        for _ in 0..len {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            pairs.push((key, value));
        }
        Ok(Value::Map(pairs))
    }

    fn ext(&mut self, len: usize) -> Result<Value, MsgpackError> {
        let code = self.byte()? as i8;
        Ok(Value::Ext(code, self.take(len)?.to_vec()))
    }

    fn value(&mut self, depth: usize) -> Result<Value, MsgpackError> {
        if depth > MAX_NESTING_DEPTH {
            return Err(MsgpackError::TooDeep {
                offset: self.offset,
            });
        }
        let marker_offset = self.offset;
        let marker = self.byte()?;
        let value = match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(marker & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let len = self.len8()?;
                Value::Bin(self.take(len)?.to_vec())
            }
            0xc5 => {
                let len = self.len16()?;
                Value::Bin(self.take(len)?.to_vec())
            }
            0xc6 => {
                let len = self.len32()?;
                Value::Bin(self.take(len)?.to_vec())
            }
            0xc7 => {
                let len = self.len8()?;
                self.ext(len)?
            }
            0xc8 => {
                let len = self.len16()?;
                self.ext(len)?
            }
            0xc9 => {
                let len = self.len32()?;
                self.ext(len)?
            }
            0xca => Value::F32(f32::from_be_bytes(self.be()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(i64::from(self.byte()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => {
                let number = u64::from_be_bytes(self.be()?);
                i64::try_from(number).map_or(Value::UInt(number), Value::Int)
            }
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let len = self.len8()?;
                self.string(len)?
            }
            0xda => {
                let len = self.len16()?;
                self.string(len)?
            }
            0xdb => {
                let len = self.len32()?;
                self.string(len)?
            }
            0xdc => {
                let len = self.len16()?;
                self.array(len, depth)?
            }
            0xdd => {
                let len = self.len32()?;
                self.array(len, depth)?
            }
            0xde => {
                let len = self.len16()?;
                self.map(len, depth)?
            }
            0xdf => {
                let len = self.len32()?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0xc1 => {
                return Err(MsgpackError::BadMarker {
                    marker,
                    offset: marker_offset,
                });
            }
        };
        Ok(value)
    }
}

/// Encodes `value` the way Python's `msgpack.packb(use_bin_type=True)` does: the smallest
/// integer, string, bin, array, map and ext forms, floats as float64 unless they were F32.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Int(number) => encode_int(*number, out),
        Value::UInt(number) => encode_uint(*number, out),
        Value::F32(number) => {
            out.push(0xca);
            out.extend_from_slice(&number.to_be_bytes());
        }
        Value::F64(number) => {
            out.push(0xcb);
            out.extend_from_slice(&number.to_be_bytes());
        }
        Value::Str(text) => {
            let len = text.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else {
                length_header(len, [0xd9, 0xda, 0xdb], out);
            }
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bin(bytes) => {
            length_header(bytes.len(), [0xc4, 0xc5, 0xc6], out);
            out.extend_from_slice(bytes);
        }
        Value::Array(items) => {
            collection_header(items.len(), 0x90, [0xdc, 0xdd], out);
            for item in items {
                encode_into(item, out);
            }
        }
        Value::Map(pairs) => {
            collection_header(pairs.len(), 0x80, [0xde, 0xdf], out);
            for (key, value) in pairs {
                encode_into(key, out);
                encode_into(value, out);
            }
        }
        Value::Ext(code, bytes) => {
            match bytes.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                len => length_header(len, [0xc7, 0xc8, 0xc9], out),
            }
            out.push(*code as u8);
            out.extend_from_slice(bytes);
        }
    }
}

fn encode_uint(number: u64, out: &mut Vec<u8>) {
    if number < 0x80 {
        out.push(number as u8);
    } else if number <= u64::from(u8::MAX) {
        out.extend_from_slice(&[0xcc, number as u8]);
    } else if number <= u64::from(u16::MAX) {
        out.push(0xcd);
        out.extend_from_slice(&(number as u16).to_be_bytes());
    } else if number <= u64::from(u32::MAX) {
        out.push(0xce);
        out.extend_from_slice(&(number as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&number.to_be_bytes());
    }
}

fn encode_int(number: i64, out: &mut Vec<u8>) {
    if number >= 0 {
        return encode_uint(number as u64, out);
    }
    if number >= -32 {
        out.push(number as i8 as u8);
    } else if number >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, number as i8 as u8]);
    } else if number >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(number as i16).to_be_bytes());
    } else if number >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(number as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&number.to_be_bytes());
    }
}

/// The 8/16/32-bit length forms of str, bin and ext.
fn length_header(len: usize, markers: [u8; 3], out: &mut Vec<u8>) {
    if len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[markers[0], len as u8]);
    } else if len <= usize::from(u16::MAX) {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn collection_header(len: usize, fix_marker: u8, markers: [u8; 2], out: &mut Vec<u8>) {
    if len < 16 {
        out.push(fix_marker | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(markers[0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value) {
        let bytes = encode(&value);
        assert_eq!(
            decode(&bytes).unwrap(),
            value,
            "bytes {}",
            hex::encode(&bytes)
        );
    }

    #[test]
    fn values_round_trip_through_every_length_form() {
        for number in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            i64::MIN,
        ] {
            round_trip(Value::Int(number));
        }
        round_trip(Value::UInt(u64::MAX));
        round_trip(Value::F64(1.5));
        round_trip(Value::F32(0.25));
        for len in [0, 31, 32, 255, 256, 65535, 65536] {
            round_trip(Value::Str("x".repeat(len)));
            round_trip(Value::Bin(vec![7; len]));
            round_trip(Value::Ext(6, vec![1; len]));
        }
        for len in [0, 15, 16, 65535, 65536] {
            round_trip(Value::Array(vec![Value::Nil; len]));
        }
        round_trip(Value::Map(
            (0..20)
                .map(|i| (Value::Int(i), Value::str(i.to_string())))
                .collect(),
        ));
    }

    #[test]
    fn encoding_matches_python_msgpack_bytes() {
        // msgpack.packb(("hello", None, True, 300, -200, b"\x01"), use_bin_type=True)
        let value = Value::Array(vec![
            Value::str("hello"),
            Value::Nil,
            Value::Bool(true),
            Value::Int(300),
            Value::Int(-200),
            Value::Bin(vec![1]),
        ]);
        assert_eq!(
            hex::encode(encode(&value)),
            "96a568656c6c6fc0c3cd012cd1ff38c40101"
        );
        // A 16-byte ext (a UUID) uses fixext16.
        assert_eq!(encode(&Value::Ext(1, vec![0; 16]))[..2], [0xd8, 0x01]);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            decode(&[0xc1]),
            Err(MsgpackError::BadMarker { marker: 0xc1, .. })
        ));
        assert!(matches!(
            decode(&[0x92, 0x01]),
            Err(MsgpackError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[0xa2, 0xff, 0xfe]),
            Err(MsgpackError::BadUtf8 { .. })
        ));
        assert!(matches!(
            decode(&[0x01, 0x02]),
            Err(MsgpackError::TrailingBytes { extra: 1 })
        ));
        // An array claiming 4 billion items must fail fast, not allocate.
        assert!(matches!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(MsgpackError::Truncated { .. })
        ));
        let deep = vec![0x91; MAX_NESTING_DEPTH + 2];
        assert!(matches!(decode(&deep), Err(MsgpackError::TooDeep { .. })));
        assert!(matches!(decode(&[]), Err(MsgpackError::Truncated { .. })));
    }
}
