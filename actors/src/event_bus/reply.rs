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

fn bytes(value: RedisValue) -> Option<Vec<u8>> {
    match value {
        RedisValue::BulkString(bytes) => Some(bytes),
        RedisValue::SimpleString(text) => Some(text.into_bytes()),
        RedisValue::Int(number) => Some(number.to_string().into_bytes()),
        _ => None,
    }
}

fn text(value: RedisValue) -> Option<String> {
    bytes(value).and_then(|raw| String::from_utf8(raw).ok())
}

/// The items of an array, or the value itself when it is not one (for the error).
fn items(value: RedisValue) -> Result<Vec<RedisValue>, RedisValue> {
    match value {
        RedisValue::Array(items) | RedisValue::Set(items) => Ok(items),
        other => Err(other),
    }
}

/// The next of `parts` as text (an entry's id, a cursor); `what` names it in the error, which
/// is the only place the value is formatted.
fn leading_text(
    parts: &mut impl Iterator<Item = RedisValue>,
    what: &str,
) -> Result<String, ReplyShapeError> {
    match parts.next() {
        Some(RedisValue::BulkString(raw)) => String::from_utf8(raw)
            .map_err(|error| ReplyShapeError(format!("{what} {:?}", error.into_bytes()))),
        Some(RedisValue::SimpleString(text)) => Ok(text),
        Some(RedisValue::Int(number)) => Ok(number.to_string()),
        Some(other) => Err(ReplyShapeError(format!("{what} {other:?}"))),
        None => Err(ReplyShapeError(format!("{what} missing"))),
    }
}

/// `[id, [field, value, ...]]` (RESP2) — the field list may also be a RESP3 map or nil.
fn entry(value: RedisValue) -> Result<RawEntry, ReplyShapeError> {
    let mut parts = items(value)
        .map_err(|other| ReplyShapeError(format!("stream entry {other:?}")))?
        .into_iter();
    let id = leading_text(&mut parts, "stream entry id")?;
    let fields = match parts.next() {
        None | Some(RedisValue::Nil) => None,
        Some(RedisValue::Map(pairs)) => Some(
            pairs
                .into_iter()
                .map(|(k, v)| (bytes(k).unwrap_or_default(), bytes(v).unwrap_or_default()))
                .collect(),
        ),
        Some(list) => {
            let mut flat = items(list)
                .map_err(|other| ReplyShapeError(format!("stream entry {id} fields {other:?}")))?
                .into_iter();
            let mut pairs = Vec::with_capacity(flat.len().div_ceil(2));
            while let Some(key) = flat.next() {
                let key = bytes(key).unwrap_or_default();
                let value = flat.next().and_then(bytes).unwrap_or_default();
                pairs.push((key, value));
            }
            Some(pairs)
        }
    };
    Ok(RawEntry { id, fields })
}

fn entries(value: RedisValue) -> Result<Vec<RawEntry>, ReplyShapeError> {
    match value {
        RedisValue::Nil => Ok(Vec::new()),
        other => items(other)
            .map_err(|other| ReplyShapeError(format!("entry list {other:?}")))?
            .into_iter()
            .map(entry)
            .collect(),
    }
}

/// XREADGROUP / XREAD: nil on timeout, else `[[stream, [entry...]], ...]` (or a RESP3 map).
/// Takes the reply by value so that the entries keep its buffers instead of copies of them.
pub fn read_reply(value: RedisValue) -> Result<Vec<RawEntry>, ReplyShapeError> {
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
                items(other).map_err(|other| ReplyShapeError(format!("read reply {other:?}")))?;
            for stream in streams {
                let parts = items(stream)
                    .map_err(|other| ReplyShapeError(format!("stream reply {other:?}")))?;
                if let Some(stream_entries) = parts.into_iter().nth(1) {
                    all.extend(entries(stream_entries)?);
                }
            }
        }
    }
    Ok(all)
}

/// XAUTOCLAIM: `[next start id, [entry...], [deleted id...]]` (the third part since Redis 7).
/// Deleted ids come back as entries without fields.
pub fn autoclaim_reply(value: RedisValue) -> Result<(String, Vec<RawEntry>), ReplyShapeError> {
    let mut parts = items(value)
        .map_err(|other| ReplyShapeError(format!("xautoclaim {other:?}")))?
        .into_iter();
    let next = leading_text(&mut parts, "xautoclaim cursor")?;
    let mut claimed = match parts.next() {
        Some(list) => entries(list)?,
        None => Vec::new(),
    };
    if let Some(Ok(deleted)) = parts.next().map(items) {
        claimed.extend(
            deleted
                .into_iter()
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
        let entries = read_reply(reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].fields.as_ref().unwrap(),
            &vec![
                (b"name".to_vec(), b"\xff\xfe".to_vec()),
                (b"odd".to_vec(), Vec::new())
            ]
        );
        assert_eq!(entries[1].fields, None);
        assert_eq!(read_reply(RedisValue::Nil).unwrap(), vec![]);
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
        let (next, entries) = autoclaim_reply(reply).unwrap();
        assert_eq!(next, "0-0");
        assert_eq!(entries[0].id, "5-0");
        assert_eq!(
            entries[1],
            RawEntry {
                id: "4-0".into(),
                fields: None
            }
        );
        assert!(autoclaim_reply(RedisValue::Int(3)).is_err());
        assert_eq!(id_millis("1795830817001-3"), Some(1795830817001));
    }
}
