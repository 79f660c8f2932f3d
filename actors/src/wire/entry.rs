//! The two shapes of an `events` stream entry: 23.09 (`name`, `source`, `args` = msgpack
//! tuple) and 26.x (`name`, `source`, `payload` = JSON object, `metadata` = JSON, optional
//! `_retry_count`), plus the 26.x pub/sub message on `events_all`.

use serde_json::Value as Json;

use super::events::{Event, EventBody, EventError};
use super::msgpack::{self, MsgpackError, Value};

/// The stream every agent and manager shares (db 4).
pub const EVENT_STREAM: &str = "events";
/// The pub/sub channel 26.x agents listen on for broadcast events (db 4).
pub const BROADCAST_CHANNEL: &str = "events_all";
/// The largest `args`/`payload` accepted. The biggest real bodies are a 23.09 heartbeat with a
/// compressed image list (tens of KiB) and `kernel_started` (a few KiB); a body beyond this is
/// refused unread, so one bad producer cannot make a worker parse megabytes.
pub const MAX_EVENT_BODY_BYTES: usize = 1024 * 1024;
/// What 26.x agents send as `metadata` when no request is involved.
pub const EMPTY_METADATA_26: &str =
    r#"{"request_id":null,"user":null,"triggered_user":null,"traceparent":null}"#;

/// Which generation's entry shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireFormat {
    /// `name`/`source`/`args` with a Backend.AI msgpack tuple: what 23.09 agents and managers
    /// up to 26.8 read from the stream.
    #[default]
    Args,
    /// `name`/`source`/`payload`/`metadata` with JSON: what 26.9+ peers write.
    Payload,
}

impl WireFormat {
    pub fn parse(text: &str) -> Option<WireFormat> {
        match text {
            "args" | "msgpack" | "23.09" => Some(WireFormat::Args),
            "payload" | "json" | "26" | "26.x" => Some(WireFormat::Payload),
            _ => None,
        }
    }
}

/// A decoded entry before its body is typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub name: String,
    pub source: String,
    pub body: EventBody,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EntryError {
    #[error("entry has no {0:?} field")]
    MissingField(&'static str),
    #[error("entry field {0:?} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("entry has neither an \"args\" nor a \"payload\" field")]
    NoBody,
    #[error("entry body is {size} bytes, more than the {MAX_EVENT_BODY_BYTES} accepted")]
    TooLarge { size: usize },
    #[error("entry args are not Backend.AI msgpack: {0}")]
    BadMsgpack(#[from] MsgpackError),
    #[error("entry args are a msgpack {0}, not a tuple")]
    ArgsNotATuple(&'static str),
    #[error("entry payload is not JSON: {0}")]
    BadJson(String),
    #[error(transparent)]
    Event(#[from] EventError),
}

fn field<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(key, _)| key.as_slice() == name.as_bytes())
        .map(|(_, value)| value.as_slice())
}

fn utf8_field(fields: &[(Vec<u8>, Vec<u8>)], name: &'static str) -> Result<String, EntryError> {
    let bytes = field(fields, name).ok_or(EntryError::MissingField(name))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| EntryError::NotUtf8(name))
}

/// Reads the fields of one stream entry, in either shape.
pub fn parse_entry(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Envelope, EntryError> {
    let name = utf8_field(fields, "name")?;
    let source = utf8_field(fields, "source")?;
    let body = if let Some(args) = field(fields, "args") {
        if args.len() > MAX_EVENT_BODY_BYTES {
            return Err(EntryError::TooLarge { size: args.len() });
        }
        match msgpack::decode(args)? {
            Value::Array(items) => EventBody::Args(items),
            other => return Err(EntryError::ArgsNotATuple(other.kind())),
        }
    } else if let Some(payload) = field(fields, "payload") {
        if payload.len() > MAX_EVENT_BODY_BYTES {
            return Err(EntryError::TooLarge {
                size: payload.len(),
            });
        }
        EventBody::Payload(
            serde_json::from_slice(payload).map_err(|e| EntryError::BadJson(e.to_string()))?,
        )
    } else {
        return Err(EntryError::NoBody);
    };
    Ok(Envelope { name, source, body })
}

/// Reads and types one stream entry.
pub fn decode_entry(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<(String, Event), EntryError> {
    let envelope = parse_entry(fields)?;
    let event = Event::decode(&envelope.name, &envelope.body)?;
    Ok((envelope.source, event))
}

/// The fields to XADD for `event` from `source`, in the field order the peers use.
pub fn render_entry(
    event: &Event,
    source: &str,
    format: WireFormat,
) -> Result<Vec<(&'static str, Vec<u8>)>, EventError> {
    let name = event.name().as_bytes().to_vec();
    let source = source.as_bytes().to_vec();
    Ok(match format {
        WireFormat::Args => vec![
            ("name", name),
            ("source", source),
            ("args", msgpack::encode(&Value::Array(event.to_args()?))),
        ],
        WireFormat::Payload => vec![
            ("name", name),
            ("source", source),
            ("payload", event.to_payload()?.to_string().into_bytes()),
            ("metadata", EMPTY_METADATA_26.as_bytes().to_vec()),
        ],
    })
}

/// The JSON message 26.x peers PUBLISH on `events_all`: the payload and metadata are JSON
/// strings nested in the JSON object.
pub fn render_broadcast(event: &Event, source: &str) -> Result<String, EventError> {
    let message = serde_json::json!({
        "name": event.name(),
        "source": source,
        "payload": event.to_payload()?.to_string(),
        "metadata": EMPTY_METADATA_26,
    });
    Ok(message.to_string())
}

/// Reads a 26.x `events_all` message.
pub fn parse_broadcast(message: &[u8]) -> Result<Envelope, EntryError> {
    let json: Json =
        serde_json::from_slice(message).map_err(|e| EntryError::BadJson(e.to_string()))?;
    let text = |key: &'static str| {
        json.get(key)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or(EntryError::MissingField(key))
    };
    let payload = text("payload")?;
    Ok(Envelope {
        name: text("name")?,
        source: text("source")?,
        body: EventBody::Payload(
            serde_json::from_str(&payload).map_err(|e| EntryError::BadJson(e.to_string()))?,
        ),
    })
}

/// Orders Redis stream ids (`<ms>-<seq>`) numerically, as Redis does; an id that is not one
/// sorts after every id that is.
pub fn compare_stream_ids(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(id: &str) -> Option<(u64, u64)> {
        let (ms, seq) = id.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(fields: Vec<(&'static str, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields
            .into_iter()
            .map(|(key, value)| (key.as_bytes().to_vec(), value))
            .collect()
    }

    #[test]
    fn the_captured_agent_started_entries_decode() {
        // 23.09: args = 91 ac "self-started"; 26.x: payload = {"reason":"self-started"}.
        let old = vec![
            (b"name".to_vec(), b"agent_started".to_vec()),
            (b"source".to_vec(), b"i-dummy-research".to_vec()),
            (
                b"args".to_vec(),
                hex::decode("91ac73656c662d73746172746564").unwrap(),
            ),
        ];
        let new = vec![
            (b"name".to_vec(), b"agent_started".to_vec()),
            (b"source".to_vec(), b"i-dummy-research-26".to_vec()),
            (
                b"payload".to_vec(),
                br#"{"reason":"self-started"}"#.to_vec(),
            ),
            (b"metadata".to_vec(), EMPTY_METADATA_26.as_bytes().to_vec()),
        ];
        let expected = Event::AgentStarted {
            reason: "self-started".into(),
        };
        assert_eq!(
            decode_entry(&old).unwrap(),
            ("i-dummy-research".into(), expected.clone())
        );
        assert_eq!(
            decode_entry(&new).unwrap(),
            ("i-dummy-research-26".into(), expected)
        );
    }

    #[test]
    fn rendered_entries_match_the_captured_bytes() {
        let event = Event::AgentTerminated {
            reason: "shutdown".into(),
        };
        let old = render_entry(&event, "i-x", WireFormat::Args).unwrap();
        assert_eq!(
            old[2],
            ("args", hex::decode("91a873687574646f776e").unwrap())
        );
        let new = render_entry(&event, "i-x", WireFormat::Payload).unwrap();
        assert_eq!(new[2], ("payload", br#"{"reason":"shutdown"}"#.to_vec()));
        assert_eq!(decode_entry(&owned(new)).unwrap().1, event);
        let broadcast = render_broadcast(&event, "manager").unwrap();
        let envelope = parse_broadcast(broadcast.as_bytes()).unwrap();
        assert_eq!(
            Event::decode(&envelope.name, &envelope.body).unwrap(),
            event
        );
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let with = |pairs: &[(&str, &[u8])]| -> Vec<(Vec<u8>, Vec<u8>)> {
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
                .collect()
        };
        assert_eq!(
            decode_entry(&with(&[("source", b"a"), ("args", b"\x90")])),
            Err(EntryError::MissingField("name"))
        );
        assert_eq!(
            decode_entry(&with(&[
                ("name", b"\xff"),
                ("source", b"a"),
                ("args", b"\x90")
            ])),
            Err(EntryError::NotUtf8("name"))
        );
        assert_eq!(
            decode_entry(&with(&[("name", b"agent_started"), ("source", b"a")])),
            Err(EntryError::NoBody)
        );
        assert!(matches!(
            decode_entry(&with(&[
                ("name", b"agent_started"),
                ("source", b"a"),
                ("args", b"\xc1")
            ])),
            Err(EntryError::BadMsgpack(_))
        ));
        assert_eq!(
            decode_entry(&with(&[
                ("name", b"agent_started"),
                ("source", b"a"),
                ("args", b"\x07")
            ])),
            Err(EntryError::ArgsNotATuple("int"))
        );
        assert!(matches!(
            decode_entry(&with(&[
                ("name", b"agent_started"),
                ("source", b"a"),
                ("payload", b"{")
            ])),
            Err(EntryError::BadJson(_))
        ));
        let huge = vec![0x90u8; 10 * 1024 * 1024];
        assert_eq!(
            decode_entry(&with(&[
                ("name", b"agent_started"),
                ("source", b"a"),
                ("args", &huge)
            ])),
            Err(EntryError::TooLarge { size: huge.len() })
        );
        assert!(matches!(
            decode_entry(&with(&[
                ("name", b"what"),
                ("source", b"a"),
                ("args", b"\x90")
            ])),
            Err(EntryError::Event(EventError::UnknownName(_)))
        ));
    }

    #[test]
    fn stream_ids_compare_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_stream_ids("9-0", "10-0"), Less);
        assert_eq!(compare_stream_ids("10-2", "10-10"), Less);
        assert_eq!(compare_stream_ids("10-0", "10-0"), Equal);
        assert_eq!(compare_stream_ids("x", "1-0"), Greater);
    }
}
