//! Reading Redis stream replies (XREADGROUP, XAUTOCLAIM, XREAD) by hand from raw values, so
//! that one entry with odd bytes can never make a whole batch unreadable.

use redis::Value as RedisValue;

/// One stream entry: its id and its field/value pairs as raw bytes. `fields` is `None` for an
/// entry that was deleted (trimmed) while pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub id: String,
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected Redis stream reply shape: {0}")]
pub struct ReplyShapeError(pub String);

fn bytes(value: &RedisValue) -> Option<Vec<u8>> {
    match value {
        RedisValue::BulkString(bytes) => Some(bytes.clone()),
        RedisValue::SimpleString(text) => Some(text.as_bytes().to_vec()),
        RedisValue::Int(number) => Some(number.to_string().into_bytes()),
        _ => None,
    }
}

fn text(value: &RedisValue) -> Option<String> {
    bytes(value).and_then(|raw| String::from_utf8(raw).ok())
}

fn items(value: &RedisValue) -> Option<&[RedisValue]> {
    match value {
        RedisValue::Array(items) | RedisValue::Set(items) => Some(items),
        _ => None,
    }
}

/// `[id, [field, value, ...]]` (RESP2) — the field list may also be a RESP3 map or nil.
fn entry(value: &RedisValue) -> Result<RawEntry, ReplyShapeError> {
    let shape = || ReplyShapeError(format!("stream entry {value:?}"));
    let parts = items(value).ok_or_else(shape)?;
    let id = parts.first().and_then(text).ok_or_else(shape)?;
    let fields = match parts.get(1) {
        None | Some(RedisValue::Nil) => None,
        Some(RedisValue::Map(pairs)) => Some(
            pairs
                .iter()
                .map(|(k, v)| (bytes(k).unwrap_or_default(), bytes(v).unwrap_or_default()))
                .collect(),
        ),
        Some(list) => {
            let flat = items(list).ok_or_else(shape)?;
            Some(
                flat.chunks(2)
                    .map(|pair| {
                        let key = bytes(&pair[0]).unwrap_or_default();
                        let value = pair.get(1).and_then(bytes).unwrap_or_default();
                        (key, value)
                    })
                    .collect(),
            )
        }
    };
    Ok(RawEntry { id, fields })
}

fn entries(value: &RedisValue) -> Result<Vec<RawEntry>, ReplyShapeError> {
    match value {
        RedisValue::Nil => Ok(Vec::new()),
        other => items(other)
            .ok_or_else(|| ReplyShapeError(format!("entry list {other:?}")))?
            .iter()
            .map(entry)
            .collect(),
    }
}

/// XREADGROUP / XREAD: nil on timeout, else `[[stream, [entry...]], ...]` (or a RESP3 map).
pub fn read_reply(value: &RedisValue) -> Result<Vec<RawEntry>, ReplyShapeError> {
    let mut all = Vec::new();
    match value {
        RedisValue::Nil => {}
        RedisValue::Map(streams) => {
            for (_, stream_entries) in streams {
                all.extend(entries(stream_entries)?);
            }
        }
        other => {
            let streams =
                items(other).ok_or_else(|| ReplyShapeError(format!("read reply {other:?}")))?;
            for stream in streams {
                let parts = items(stream)
                    .ok_or_else(|| ReplyShapeError(format!("stream reply {stream:?}")))?;
                if let Some(stream_entries) = parts.get(1) {
                    all.extend(entries(stream_entries)?);
                }
            }
        }
    }
    Ok(all)
}

/// XAUTOCLAIM: `[next start id, [entry...], [deleted id...]]` (the third part since Redis 7).
/// Deleted ids come back as entries without fields.
pub fn autoclaim_reply(value: &RedisValue) -> Result<(String, Vec<RawEntry>), ReplyShapeError> {
    let parts = items(value).ok_or_else(|| ReplyShapeError(format!("xautoclaim {value:?}")))?;
    let next = parts
        .first()
        .and_then(text)
        .ok_or_else(|| ReplyShapeError(format!("xautoclaim cursor {value:?}")))?;
    let mut claimed = match parts.get(1) {
        Some(list) => entries(list)?,
        None => Vec::new(),
    };
    if let Some(deleted) = parts.get(2).and_then(items) {
        claimed.extend(
            deleted
                .iter()
                .filter_map(text)
                .map(|id| RawEntry { id, fields: None }),
        );
    }
    Ok((next, claimed))
}

/// The millisecond part of a stream id (`1795830817001-0` → 1795830817001).
pub fn id_millis(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &[u8]) -> RedisValue {
        RedisValue::BulkString(text.to_vec())
    }

    #[test]
    fn reads_xreadgroup_replies_with_odd_bytes() {
        let reply = RedisValue::Array(vec![RedisValue::Array(vec![
            bulk(b"events"),
            RedisValue::Array(vec![
                RedisValue::Array(vec![
                    bulk(b"1-0"),
                    RedisValue::Array(vec![bulk(b"name"), bulk(b"\xff\xfe"), bulk(b"odd")]),
                ]),
                RedisValue::Array(vec![bulk(b"2-0"), RedisValue::Nil]),
            ]),
        ])]);
        let entries = read_reply(&reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].fields.as_ref().unwrap(),
            &vec![
                (b"name".to_vec(), b"\xff\xfe".to_vec()),
                (b"odd".to_vec(), Vec::new())
            ]
        );
        assert_eq!(entries[1].fields, None);
        assert_eq!(read_reply(&RedisValue::Nil).unwrap(), vec![]);
    }

    #[test]
    fn reads_xautoclaim_replies_including_deleted_ids() {
        let reply = RedisValue::Array(vec![
            bulk(b"0-0"),
            RedisValue::Array(vec![RedisValue::Array(vec![
                bulk(b"5-0"),
                RedisValue::Array(vec![bulk(b"name"), bulk(b"x")]),
            ])]),
            RedisValue::Array(vec![bulk(b"4-0")]),
        ]);
        let (next, entries) = autoclaim_reply(&reply).unwrap();
        assert_eq!(next, "0-0");
        assert_eq!(entries[0].id, "5-0");
        assert_eq!(
            entries[1],
            RawEntry {
                id: "4-0".into(),
                fields: None
            }
        );
        assert!(autoclaim_reply(&RedisValue::Int(3)).is_err());
        assert_eq!(id_millis("1795830817001-3"), Some(1795830817001));
    }
}
