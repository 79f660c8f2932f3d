//! Callosum's message framing over ZeroMQ: three frames `UPPER`, header, body.
//!
//! The header is plain msgpack `{type, meth, okey, seq, zip}` (keys in that order); the body is
//! plain msgpack `{meta: bin, body: bin|nil}` whose `body` bin holds the application payload in
//! Backend.AI msgpack (`{"args": [...], "kwargs": {...}}` for a call, the return value for a
//! result). Failures carry `[exception name, repr, traceback]` in `meta`. The handshake is a
//! separate `PING` message answered by `PONG`, both with two empty frames.

use crate::wire::Value;
use crate::wire::msgpack::{self, MsgpackError};

pub const UPPER: &[u8] = b"UPPER";
pub const PING: &[u8] = b"PING";
pub const PONG: &[u8] = b"PONG";

/// Callosum's `RPCMessageTypes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Function = 1,
    Result = 2,
    Failure = 3,
    Error = 4,
    Cancel = 5,
    Cancelled = 6,
}

impl MessageType {
    fn from_code(code: i64) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Function,
            2 => MessageType::Result,
            3 => MessageType::Failure,
            4 => MessageType::Error,
            5 => MessageType::Cancel,
            6 => MessageType::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("callosum message has {0} frames, expected 3")]
    FrameCount(usize),
    #[error("callosum message starts with {0:?}, expected UPPER, PING or PONG")]
    UnknownKind(String),
    #[error("callosum {part} is not valid msgpack: {source}")]
    Msgpack {
        part: &'static str,
        #[source]
        source: MsgpackError,
    },
    #[error("callosum header lacks a valid {0:?}")]
    Header(&'static str),
    #[error("callosum body lacks a valid {0:?}")]
    Body(&'static str),
    #[error("callosum message is snappy-compressed (zip), which this manager does not support")]
    Compressed,
}

/// The request id: (method, order key, sequence number). Replies echo all three.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub kind: MessageType,
    pub method: String,
    /// The order key exactly as sent (the 23.09 manager sends an empty str).
    pub order_key: Value,
    pub seq: u64,
    pub zip: bool,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        msgpack::encode(&Value::Map(vec![
            (Value::str("type"), Value::Int(self.kind as i64)),
            (Value::str("meth"), Value::str(self.method.clone())),
            (Value::str("okey"), self.order_key.clone()),
            (Value::str("seq"), Value::UInt(self.seq)),
            (Value::str("zip"), Value::Bool(self.zip)),
        ]))
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, FrameError> {
        let value = msgpack::decode(bytes).map_err(|source| FrameError::Msgpack {
            part: "header",
            source,
        })?;
        let kind = value
            .get("type")
            .and_then(Value::as_i64)
            .and_then(MessageType::from_code)
            .ok_or(FrameError::Header("type"))?;
        let method = value
            .get("meth")
            .and_then(Value::as_str)
            .ok_or(FrameError::Header("meth"))?
            .to_owned();
        let order_key = value.get("okey").cloned().unwrap_or(Value::Nil);
        let seq = match value.get("seq") {
            Some(Value::Int(n)) if *n >= 0 => *n as u64,
            Some(Value::UInt(n)) => *n,
            _ => return Err(FrameError::Header("seq")),
        };
        let zip = value.get("zip").and_then(Value::as_bool).unwrap_or(false);
        Ok(Header {
            kind,
            method,
            order_key,
            seq,
            zip,
        })
    }
}

/// One decoded callosum message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Ping,
    Pong,
    Upper { header: Header, payload: Payload },
}

/// What an `UPPER` message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A call: positional and keyword arguments.
    Call { args: Vec<Value>, kwargs: Value },
    /// A return value.
    Result(Value),
    /// The handler raised (FAILURE) or callosum failed (ERROR).
    Failure {
        name: String,
        repr: String,
        traceback: String,
    },
    /// CANCEL / CANCELLED.
    Cancelled,
}

/// The three frames of the PING handshake.
pub fn ping() -> [Vec<u8>; 3] {
    [PING.to_vec(), Vec::new(), Vec::new()]
}

/// The three frames of the PONG answer (echoing the PING's frames 2 and 3).
pub fn pong(frame2: Vec<u8>, frame3: Vec<u8>) -> [Vec<u8>; 3] {
    [PONG.to_vec(), frame2, frame3]
}

/// A FUNCTION message: `method(*args, **kwargs)` with sequence number `seq`.
pub fn call(
    method: &str,
    seq: u64,
    args: Vec<Value>,
    kwargs: Vec<(String, Value)>,
) -> [Vec<u8>; 3] {
    let header = Header {
        kind: MessageType::Function,
        method: method.to_owned(),
        order_key: Value::str(""),
        seq,
        zip: false,
    };
    let inner = Value::Map(vec![
        (Value::str("args"), Value::Array(args)),
        (
            Value::str("kwargs"),
            Value::Map(
                kwargs
                    .into_iter()
                    .map(|(k, v)| (Value::Str(k), v))
                    .collect(),
            ),
        ),
    ]);
    let body = Value::Map(vec![
        (Value::str("meta"), Value::Bin(Vec::new())),
        (Value::str("body"), Value::Bin(msgpack::encode(&inner))),
    ]);
    [UPPER.to_vec(), header.encode(), msgpack::encode(&body)]
}

/// A RESULT reply to `request`.
pub fn result(request: &Header, value: &Value) -> [Vec<u8>; 3] {
    let header = Header {
        kind: MessageType::Result,
        ..request.clone()
    };
    let body = Value::Map(vec![
        (
            Value::str("meta"),
            Value::Bin(msgpack::encode(&Value::Array(Vec::new()))),
        ),
        (Value::str("body"), Value::Bin(msgpack::encode(value))),
    ]);
    [UPPER.to_vec(), header.encode(), msgpack::encode(&body)]
}

/// A FAILURE reply to `request`, as the agent sends when its handler raises.
pub fn failure(request: &Header, name: &str, repr: &str, traceback: &str) -> [Vec<u8>; 3] {
    let header = Header {
        kind: MessageType::Failure,
        ..request.clone()
    };
    let meta = Value::Array(vec![
        Value::str(name),
        Value::str(repr),
        Value::str(traceback),
    ]);
    let body = Value::Map(vec![
        (Value::str("meta"), Value::Bin(msgpack::encode(&meta))),
        (Value::str("body"), Value::Nil),
    ]);
    [UPPER.to_vec(), header.encode(), msgpack::encode(&body)]
}

/// Decodes any callosum message (both directions).
pub fn decode(frames: &[&[u8]]) -> Result<Message, FrameError> {
    if frames.len() != 3 {
        return Err(FrameError::FrameCount(frames.len()));
    }
    match frames[0] {
        PING => return Ok(Message::Ping),
        PONG => return Ok(Message::Pong),
        UPPER => {}
        other => {
            return Err(FrameError::UnknownKind(
                String::from_utf8_lossy(other).into_owned(),
            ));
        }
    }
    let header = Header::decode(frames[1])?;
    if header.zip {
        return Err(FrameError::Compressed);
    }
    let body = msgpack::decode(frames[2]).map_err(|source| FrameError::Msgpack {
        part: "body",
        source,
    })?;
    let inner = |key: &'static str| -> Result<Option<Value>, FrameError> {
        match body.get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Bin(bytes)) => msgpack::decode(bytes)
                .map(Some)
                .map_err(|source| FrameError::Msgpack { part: key, source }),
            Some(_) => Err(FrameError::Body(key)),
        }
    };
    let payload = match header.kind {
        MessageType::Function => {
            let call = inner("body")?.ok_or(FrameError::Body("body"))?;
            let args = call
                .get("args")
                .and_then(Value::as_array)
                .ok_or(FrameError::Body("args"))?
                .to_vec();
            let kwargs = call
                .get("kwargs")
                .cloned()
                .unwrap_or(Value::Map(Vec::new()));
            Payload::Call { args, kwargs }
        }
        MessageType::Result => Payload::Result(inner("body")?.unwrap_or(Value::Nil)),
        MessageType::Failure | MessageType::Error => {
            let meta = inner("meta")?.ok_or(FrameError::Body("meta"))?;
            let part = |i: usize| {
                meta.as_array()
                    .and_then(|items| items.get(i))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            Payload::Failure {
                name: part(0),
                repr: part(1),
                traceback: part(2),
            }
        }
        MessageType::Cancel | MessageType::Cancelled => Payload::Cancelled,
    };
    Ok(Message::Upper { header, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn a_ping_call_is_byte_identical_to_the_captured_manager_request() {
        let frames = call(
            "ping",
            0,
            vec![Value::str("hello-from-rust-manager")],
            Vec::new(),
        );
        assert_eq!(frames[0], b"UPPER");
        // 85 a4"type" 01 a4"meth" a4"ping" a4"okey" a0 a3"seq" 00 a3"zip" c2
        assert_eq!(
            frames[1],
            unhex("85 a474797065 01 a46d657468 a470696e67 a46f6b6579 a0 a3736571 00 a37a6970 c2")
        );
        let mut expected_body = unhex("82 a46d657461 c400 a4626f6479 c427 82 a461726773 91 b7");
        expected_body.extend_from_slice(b"hello-from-rust-manager");
        expected_body.extend_from_slice(&unhex("a66b7761726773 80"));
        assert_eq!(frames[2], expected_body);
    }

    #[test]
    fn the_captured_result_and_failure_replies_decode() {
        let header =
            unhex("85 a474797065 02 a46d657468 a470696e67 a46f6b6579 a0 a3736571 00 a37a6970 c2");
        let mut body = unhex("82 a46d657461 c40190 a4626f6479 c418 b7");
        body.extend_from_slice(b"hello-from-rust-manager");
        let message = decode(&[b"UPPER", &header, &body]).unwrap();
        let Message::Upper { header, payload } = message else {
            panic!("not an UPPER message");
        };
        assert_eq!(header.kind, MessageType::Result);
        assert_eq!(header.seq, 0);
        assert_eq!(
            payload,
            Payload::Result(Value::str("hello-from-rust-manager"))
        );

        let request = Header::decode(&call("ping_kernel", 7, vec![], vec![])[1]).unwrap();
        let frames = failure(
            &request,
            "ValueError",
            "ValueError('badly formed')",
            "Traceback…",
        );
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let Message::Upper { header, payload } = decode(&refs).unwrap() else {
            panic!("not an UPPER message");
        };
        assert_eq!((header.kind, header.seq), (MessageType::Failure, 7));
        assert_eq!(
            payload,
            Payload::Failure {
                name: "ValueError".into(),
                repr: "ValueError('badly formed')".into(),
                traceback: "Traceback…".into()
            }
        );
    }

    #[test]
    fn calls_round_trip_through_the_server_side_decoder() {
        let frames = call(
            "destroy_kernel",
            42,
            vec![Value::str("k"), Value::str("s")],
            vec![("suppress_events".into(), Value::Bool(false))],
        );
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let Message::Upper { header, payload } = decode(&refs).unwrap() else {
            panic!("not an UPPER message");
        };
        assert_eq!(header.method, "destroy_kernel");
        assert_eq!(header.seq, 42);
        let Payload::Call { args, kwargs } = payload else {
            panic!("not a call");
        };
        assert_eq!(args, vec![Value::str("k"), Value::str("s")]);
        assert_eq!(kwargs.get("suppress_events"), Some(&Value::Bool(false)));
    }

    #[test]
    fn malformed_messages_are_named() {
        assert_eq!(decode(&[b"UPPER"]), Err(FrameError::FrameCount(1)));
        assert!(matches!(
            decode(&[b"HELLO", b"", b""]),
            Err(FrameError::UnknownKind(kind)) if kind == "HELLO"
        ));
        assert!(matches!(
            decode(&[b"UPPER", &[0xc1], b""]),
            Err(FrameError::Msgpack { part: "header", .. })
        ));
        assert_eq!(decode(&[b"PING", b"", b""]), Ok(Message::Ping));
    }
}
