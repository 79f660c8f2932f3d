//! Typed Backend.AI events, decoded from and encoded to both bodies: the 23.09 positional
//! msgpack tuple (`args`) and the 26.x JSON object (`payload`). The field order of each tuple
//! and the key names of each object are those of `ai.backend.common.events`.

use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use uuid::Uuid;

use super::agent_info::{AgentInfo, AgentInfoError};
use super::msgpack::Value;

/// The body of a stream entry, in either generation's encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// 23.09: the event's positional fields, a msgpack array.
    Args(Vec<Value>),
    /// 26.x: the event's fields, a JSON object.
    Payload(Json),
}

/// One event, whichever agent generation or manager produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    AgentHeartbeat(Arc<AgentInfo>),
    /// `reason`: "self-started", "revived", ...
    AgentStarted {
        reason: String,
    },
    /// `reason`: "shutdown", "agent-lost", "agent-restart", ...
    AgentTerminated {
        reason: String,
    },
    AgentError(AgentErrorReport),
    Kernel(KernelEvent),
    Session(SessionEvent),
    /// A field-less "do something now" event (`do_schedule`, `do_prepare`, ...).
    Trigger(Trigger),
    DoTerminateSession {
        session_id: Uuid,
        reason: String,
    },
    /// `do_sync_kernel_stats`: an agent has just collected these kernels' statistics (23.09
    /// agents; 26.x agents no longer send it). The ids are as sent: the consumer skips those
    /// that are not UUIDs.
    DoSyncKernelStats {
        kernel_ids: Vec<String>,
    },
    /// An event of Backend.AI's catalogue that this manager receives but does not act on
    /// (`bgtask_updated`, `execution_started`, ...). Its body is not decoded.
    Unhandled {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentErrorReport {
    pub message: String,
    pub traceback: Option<String>,
    pub user: Option<String>,
    pub context_env: Json,
    pub severity: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelEventKind {
    Preparing,
    Pulling,
    Creating,
    Started,
    Cancelled,
    Terminating,
    Terminated,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KernelEvent {
    pub kind: KernelEventKind,
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    pub reason: String,
    /// `kernel_started` only (container id, ports, allocations...); `Json::Null` otherwise.
    pub creation_info: Json,
    /// `kernel_terminating`/`kernel_terminated` only.
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEventKind {
    Enqueued,
    Scheduled,
    CheckingPrecondition,
    Preparing,
    Cancelled,
    Started,
    Terminating,
    Terminated,
    Success,
    Failure,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub kind: SessionEventKind,
    pub session_id: Uuid,
    /// The creation events only (enqueued ... started).
    pub creation_id: Option<String>,
    pub reason: String,
    /// `session_success`/`session_failure` only.
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    DoSchedule,
    DoPrepare,
    DoScale,
    DoIdleCheck,
    DoUpdateSessionStatus,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("unknown event name {0:?}")]
    UnknownName(String),
    #[error("event {event}: missing field {field:?}")]
    MissingField {
        event: &'static str,
        field: &'static str,
    },
    #[error("event {event}: field {field:?} {detail}")]
    WrongType {
        event: &'static str,
        field: &'static str,
        detail: String,
    },
    #[error("event {event}: the body is {detail}, expected {expected}")]
    WrongBody {
        event: &'static str,
        detail: String,
        expected: &'static str,
    },
    #[error("agent_heartbeat: {0}")]
    AgentInfo(#[from] AgentInfoError),
    #[error("event {0:?} is only received, never produced by the manager")]
    NotProducible(String),
}

/// Event names of Backend.AI's catalogue (23.09 to 26.x) that the manager may see on the
/// stream and deliberately ignores; anything not here and not typed above is an error.
pub const UNHANDLED_EVENT_NAMES: &[&str] = &[
    "agent_images_remove",
    "agent_installed_images_remove",
    "bgtask_cancelled",
    "bgtask_done",
    "bgtask_failed",
    "bgtask_partial_success",
    "bgtask_updated",
    "do_agent_resource_check",
    "do_sync_kernel_logs",
    "do_volume_mount",
    "do_volume_unmount",
    "execution_cancelled",
    "execution_finished",
    "execution_started",
    "execution_timeout",
    "image_pull_failed",
    "image_pull_finished",
    "image_pull_started",
    "kernel_enqueued",
    "kernel_pull_progress",
    "model_service_status_updated",
    "route_created",
    "volume_mounted",
    "volume_unmounted",
];

impl KernelEventKind {
    pub const ALL: [KernelEventKind; 7] = [
        KernelEventKind::Preparing,
        KernelEventKind::Pulling,
        KernelEventKind::Creating,
        KernelEventKind::Started,
        KernelEventKind::Cancelled,
        KernelEventKind::Terminating,
        KernelEventKind::Terminated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelEventKind::Preparing => "kernel_preparing",
            KernelEventKind::Pulling => "kernel_pulling",
            KernelEventKind::Creating => "kernel_creating",
            KernelEventKind::Started => "kernel_started",
            KernelEventKind::Cancelled => "kernel_cancelled",
            KernelEventKind::Terminating => "kernel_terminating",
            KernelEventKind::Terminated => "kernel_terminated",
        }
    }

    fn is_termination(self) -> bool {
        matches!(
            self,
            KernelEventKind::Terminating | KernelEventKind::Terminated
        )
    }
}

impl SessionEventKind {
    pub const ALL: [SessionEventKind; 10] = [
        SessionEventKind::Enqueued,
        SessionEventKind::Scheduled,
        SessionEventKind::CheckingPrecondition,
        SessionEventKind::Preparing,
        SessionEventKind::Cancelled,
        SessionEventKind::Started,
        SessionEventKind::Terminating,
        SessionEventKind::Terminated,
        SessionEventKind::Success,
        SessionEventKind::Failure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SessionEventKind::Enqueued => "session_enqueued",
            SessionEventKind::Scheduled => "session_scheduled",
            SessionEventKind::CheckingPrecondition => "session_checking_precondition",
            SessionEventKind::Preparing => "session_preparing",
            SessionEventKind::Cancelled => "session_cancelled",
            SessionEventKind::Started => "session_started",
            SessionEventKind::Terminating => "session_terminating",
            SessionEventKind::Terminated => "session_terminated",
            SessionEventKind::Success => "session_success",
            SessionEventKind::Failure => "session_failure",
        }
    }

    fn layout(self) -> SessionLayout {
        match self {
            SessionEventKind::Terminating | SessionEventKind::Terminated => {
                SessionLayout::Termination
            }
            SessionEventKind::Success | SessionEventKind::Failure => SessionLayout::Result,
            _ => SessionLayout::Creation,
        }
    }
}

enum SessionLayout {
    /// `(session_id, creation_id, reason)`
    Creation,
    /// `(session_id, reason)`
    Termination,
    /// `(session_id, reason, exit_code)`
    Result,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [
        Trigger::DoSchedule,
        Trigger::DoPrepare,
        Trigger::DoScale,
        Trigger::DoIdleCheck,
        Trigger::DoUpdateSessionStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Trigger::DoSchedule => "do_schedule",
            Trigger::DoPrepare => "do_prepare",
            Trigger::DoScale => "do_scale",
            Trigger::DoIdleCheck => "do_idle_check",
            Trigger::DoUpdateSessionStatus => "do_update_session_status",
        }
    }
}

/// Reads fields by position (23.09) or by key (26.x) with one vocabulary.
struct Fields<'a> {
    event: &'static str,
    args: Option<&'a [Value]>,
    payload: Option<&'a Map<String, Json>>,
}

impl<'a> Fields<'a> {
    fn new(event: &'static str, body: &'a EventBody) -> Result<Fields<'a>, EventError> {
        match body {
            EventBody::Args(args) => Ok(Fields {
                event,
                args: Some(args),
                payload: None,
            }),
            EventBody::Payload(Json::Object(object)) => Ok(Fields {
                event,
                args: None,
                payload: Some(object),
            }),
            EventBody::Payload(other) => Err(EventError::WrongBody {
                event,
                detail: format!("JSON {}", json_kind(other)),
                expected: "a JSON object",
            }),
        }
    }

    fn wrong(&self, field: &'static str, detail: impl Into<String>) -> EventError {
        EventError::WrongType {
            event: self.event,
            field,
            detail: detail.into(),
        }
    }

    /// `None` when the field is absent or null.
    fn opt_text(&self, index: usize, key: &'static str) -> Result<Option<String>, EventError> {
        if let Some(args) = self.args {
            return match args.get(index) {
                None | Some(Value::Nil) => Ok(None),
                Some(value) => value
                    .as_text()
                    .map(Some)
                    .ok_or_else(|| self.wrong(key, format!("is a {}, not a str", value.kind()))),
            };
        }
        match self.payload.and_then(|object| object.get(key)) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(text)) => Ok(Some(text.clone())),
            Some(other) => {
                Err(self.wrong(key, format!("is JSON {}, not a string", json_kind(other))))
            }
        }
    }

    fn text(&self, index: usize, key: &'static str) -> Result<String, EventError> {
        self.opt_text(index, key)?.ok_or(EventError::MissingField {
            event: self.event,
            field: key,
        })
    }

    fn uuid(&self, index: usize, key: &'static str) -> Result<Uuid, EventError> {
        if let Some(value @ Value::Ext(..)) = self.args.and_then(|args| args.get(index)) {
            return value
                .as_uuid()
                .ok_or_else(|| self.wrong(key, "is an ext value that is not a UUID"));
        }
        let text = self.text(index, key)?;
        Uuid::parse_str(&text).map_err(|_| self.wrong(key, format!("{text:?} is not a UUID")))
    }

    fn opt_int(&self, index: usize, key: &'static str) -> Result<Option<i64>, EventError> {
        if let Some(args) = self.args {
            return match args.get(index) {
                None | Some(Value::Nil) => Ok(None),
                Some(Value::Int(number)) => Ok(Some(*number)),
                Some(other) => Err(self.wrong(key, format!("is a {}, not an int", other.kind()))),
            };
        }
        match self.payload.and_then(|object| object.get(key)) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, format!("{number} is not an integer"))),
            Some(other) => {
                Err(self.wrong(key, format!("is JSON {}, not a number", json_kind(other))))
            }
        }
    }

    /// A nested structure, as JSON; `Json::Null` when absent.
    fn json(&self, index: usize, key: &'static str) -> Json {
        if let Some(args) = self.args {
            return args.get(index).map_or(Json::Null, Value::to_json);
        }
        self.payload
            .and_then(|object| object.get(key))
            .cloned()
            .unwrap_or(Json::Null)
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

impl Event {
    /// The wire name (`agent_heartbeat`, `kernel_started`, ...).
    pub fn name(&self) -> &str {
        match self {
            Event::AgentHeartbeat(_) => "agent_heartbeat",
            Event::AgentStarted { .. } => "agent_started",
            Event::AgentTerminated { .. } => "agent_terminated",
            Event::AgentError(_) => "agent_error",
            Event::Kernel(event) => event.kind.name(),
            Event::Session(event) => event.kind.name(),
            Event::Trigger(trigger) => trigger.name(),
            Event::DoTerminateSession { .. } => "do_terminate_session",
            Event::DoSyncKernelStats { .. } => "do_sync_kernel_stats",
            Event::Unhandled { name } => name,
        }
    }

    /// Decodes the body of an event called `name`.
    pub fn decode(name: &str, body: &EventBody) -> Result<Event, EventError> {
        if let Some(kind) = KernelEventKind::ALL.into_iter().find(|k| k.name() == name) {
            return decode_kernel(kind, body);
        }
        if let Some(kind) = SessionEventKind::ALL.into_iter().find(|k| k.name() == name) {
            return decode_session(kind, body);
        }
        if let Some(trigger) = Trigger::ALL.into_iter().find(|t| t.name() == name) {
            return Ok(Event::Trigger(trigger));
        }
        match name {
            "agent_heartbeat" => decode_heartbeat(body),
            "agent_started" | "agent_terminated" => {
                let event = if name == "agent_started" {
                    "agent_started"
                } else {
                    "agent_terminated"
                };
                let reason = Fields::new(event, body)?
                    .opt_text(0, "reason")?
                    .unwrap_or_default();
                Ok(if name == "agent_started" {
                    Event::AgentStarted { reason }
                } else {
                    Event::AgentTerminated { reason }
                })
            }
            "agent_error" => {
                let fields = Fields::new("agent_error", body)?;
                Ok(Event::AgentError(AgentErrorReport {
                    message: fields.text(0, "message")?,
                    traceback: fields.opt_text(1, "traceback")?,
                    user: match fields.json(2, "user") {
                        Json::Null => None,
                        Json::String(text) => Some(text),
                        other => Some(other.to_string()),
                    },
                    context_env: fields.json(3, "context_env"),
                    severity: fields
                        .opt_text(4, "severity")?
                        .unwrap_or_else(|| "error".to_owned()),
                }))
            }
            "do_terminate_session" => {
                let fields = Fields::new("do_terminate_session", body)?;
                Ok(Event::DoTerminateSession {
                    session_id: fields.uuid(0, "session_id")?,
                    reason: fields.opt_text(1, "reason")?.unwrap_or_default(),
                })
            }
            "do_sync_kernel_stats" => decode_sync_kernel_stats(body),
            known if UNHANDLED_EVENT_NAMES.contains(&known) => Ok(Event::Unhandled {
                name: known.to_owned(),
            }),
            unknown => Err(EventError::UnknownName(unknown.to_owned())),
        }
    }

    /// The 23.09 positional tuple.
    pub fn to_args(&self) -> Result<Vec<Value>, EventError> {
        let args = match self {
            Event::AgentHeartbeat(info) => vec![info.to_msgpack()],
            Event::AgentStarted { reason } | Event::AgentTerminated { reason } => {
                vec![Value::str(reason.as_str())]
            }
            Event::AgentError(report) => vec![
                Value::str(report.message.as_str()),
                Value::from(report.traceback.clone()),
                Value::from(report.user.clone()),
                Value::from_json(&report.context_env),
                Value::str(report.severity.as_str()),
            ],
            Event::Kernel(event) => {
                let mut args = vec![
                    Value::str(event.kernel_id.to_string()),
                    Value::str(event.session_id.to_string()),
                    Value::str(event.reason.as_str()),
                ];
                if event.kind.is_termination() {
                    args.push(Value::Int(event.exit_code.unwrap_or(-1)));
                } else {
                    args.push(match &event.creation_info {
                        Json::Null => Value::Map(Vec::new()),
                        info => Value::from_json(info),
                    });
                }
                args
            }
            Event::Session(event) => {
                let session_id = Value::str(event.session_id.to_string());
                let reason = Value::str(event.reason.as_str());
                match event.kind.layout() {
                    SessionLayout::Creation => vec![
                        session_id,
                        Value::str(event.creation_id.clone().unwrap_or_default()),
                        reason,
                    ],
                    SessionLayout::Termination => vec![session_id, reason],
                    SessionLayout::Result => {
                        vec![
                            session_id,
                            reason,
                            Value::Int(event.exit_code.unwrap_or(-1)),
                        ]
                    }
                }
            }
            Event::Trigger(_) => Vec::new(),
            Event::DoTerminateSession { session_id, reason } => vec![
                Value::str(session_id.to_string()),
                Value::str(reason.as_str()),
            ],
            Event::DoSyncKernelStats { kernel_ids } => vec![Value::Array(
                kernel_ids
                    .iter()
                    .map(|id| Value::str(id.as_str()))
                    .collect(),
            )],
            Event::Unhandled { name } => return Err(EventError::NotProducible(name.clone())),
        };
        Ok(args)
    }

    /// The 26.x JSON object.
    pub fn to_payload(&self) -> Result<Json, EventError> {
        let payload = match self {
            Event::AgentHeartbeat(info) => json!({ "agent_info": info.to_json() }),
            Event::AgentStarted { reason } | Event::AgentTerminated { reason } => {
                json!({ "reason": reason })
            }
            Event::AgentError(report) => json!({
                "message": report.message,
                "traceback": report.traceback,
                "user": report.user,
                "context_env": report.context_env,
                "severity": report.severity,
            }),
            Event::Kernel(event) => {
                let mut object = json!({
                    "kernel_id": event.kernel_id.to_string(),
                    "session_id": event.session_id.to_string(),
                    "reason": event.reason,
                });
                if event.kind.is_termination() {
                    object["exit_code"] = json!(event.exit_code.unwrap_or(-1));
                } else if event.kind == KernelEventKind::Started {
                    object["creation_info"] = event.creation_info.clone();
                }
                object
            }
            Event::Session(event) => {
                let mut object = json!({ "session_id": event.session_id.to_string() });
                match event.kind.layout() {
                    SessionLayout::Creation => {
                        object["creation_id"] =
                            json!(event.creation_id.clone().unwrap_or_default());
                    }
                    SessionLayout::Termination => {}
                    SessionLayout::Result => {
                        object["exit_code"] = json!(event.exit_code.unwrap_or(-1));
                    }
                }
                object["reason"] = json!(event.reason);
                object
            }
            Event::Trigger(_) => json!({}),
            Event::DoTerminateSession { session_id, reason } => {
                json!({ "session_id": session_id.to_string(), "reason": reason })
            }
            Event::DoSyncKernelStats { kernel_ids } => json!({ "kernel_ids": kernel_ids }),
            Event::Unhandled { name } => return Err(EventError::NotProducible(name.clone())),
        };
        Ok(payload)
    }
}

fn decode_heartbeat(body: &EventBody) -> Result<Event, EventError> {
    let info = match body {
        EventBody::Args(args) => {
            let info = args.first().ok_or(EventError::MissingField {
                event: "agent_heartbeat",
                field: "agent_info",
            })?;
            AgentInfo::from_msgpack(info)?
        }
        EventBody::Payload(payload) => {
            let info = payload.get("agent_info").ok_or(EventError::MissingField {
                event: "agent_heartbeat",
                field: "agent_info",
            })?;
            AgentInfo::from_json(info)?
        }
    };
    Ok(Event::AgentHeartbeat(Arc::new(info)))
}

/// `do_sync_kernel_stats`: `([kernel_id, ...],)` (23.09) or `{"kernel_ids": [...]}` (the
/// class's field name, for a 26.x-style payload). Each id must be a string (or a UUID ext value).
fn decode_sync_kernel_stats(body: &EventBody) -> Result<Event, EventError> {
    const EVENT: &str = "do_sync_kernel_stats";
    const FIELD: &str = "kernel_ids";
    let missing = EventError::MissingField {
        event: EVENT,
        field: FIELD,
    };
    let wrong = |detail: String| EventError::WrongType {
        event: EVENT,
        field: FIELD,
        detail,
    };
    let kernel_ids = match body {
        EventBody::Args(args) => match args.first() {
            None | Some(Value::Nil) => return Err(missing),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Ext(..) => item
                        .as_uuid()
                        .map(|id| id.to_string())
                        .ok_or_else(|| wrong(format!("item {index} is an ext value, not a UUID"))),
                    other => other.as_text().ok_or_else(|| {
                        wrong(format!("item {index} is a {}, not a str", other.kind()))
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => return Err(wrong(format!("is a {}, not an array", other.kind()))),
        },
        EventBody::Payload(Json::Object(object)) => match object.get(FIELD) {
            None | Some(Json::Null) => return Err(missing),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Json::String(text) => Ok(text.clone()),
                    other => Err(wrong(format!(
                        "item {index} is JSON {}, not a string",
                        json_kind(other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(wrong(format!("is JSON {}, not an array", json_kind(other))));
            }
        },
        EventBody::Payload(other) => {
            return Err(EventError::WrongBody {
                event: EVENT,
                detail: format!("JSON {}", json_kind(other)),
                expected: "a JSON object",
            });
        }
    };
    Ok(Event::DoSyncKernelStats { kernel_ids })
}

fn decode_kernel(kind: KernelEventKind, body: &EventBody) -> Result<Event, EventError> {
    let fields = Fields::new(kind.name(), body)?;
    let kernel_id = fields.uuid(0, "kernel_id")?;
    let session_id = fields.uuid(1, "session_id")?;
    let reason = fields.opt_text(2, "reason")?.unwrap_or_default();
    let (creation_info, exit_code) = if kind.is_termination() {
        (
            Json::Null,
            Some(fields.opt_int(3, "exit_code")?.unwrap_or(-1)),
        )
    } else {
        (fields.json(3, "creation_info"), None)
    };
    Ok(Event::Kernel(KernelEvent {
        kind,
        kernel_id,
        session_id,
        reason,
        creation_info,
        exit_code,
    }))
}

fn decode_session(kind: SessionEventKind, body: &EventBody) -> Result<Event, EventError> {
    let fields = Fields::new(kind.name(), body)?;
    let session_id = fields.uuid(0, "session_id")?;
    let (creation_id, reason, exit_code) = match kind.layout() {
        SessionLayout::Creation => (
            fields.opt_text(1, "creation_id")?,
            fields.opt_text(2, "reason")?,
            None,
        ),
        SessionLayout::Termination => (None, fields.opt_text(1, "reason")?, None),
        SessionLayout::Result => (
            None,
            fields.opt_text(1, "reason")?,
            Some(fields.opt_int(2, "exit_code")?.unwrap_or(-1)),
        ),
    };
    Ok(Event::Session(SessionEvent {
        kind,
        session_id,
        creation_id,
        reason: reason.unwrap_or_default(),
        exit_code,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both_bodies(event: &Event) -> [EventBody; 2] {
        [
            EventBody::Args(event.to_args().unwrap()),
            EventBody::Payload(event.to_payload().unwrap()),
        ]
    }

    #[test]
    fn every_produced_event_decodes_to_itself_in_both_formats() {
        let kernel_id = Uuid::new_v4();
        let session_id = Uuid::new_v4();
        let mut events = vec![
            Event::AgentStarted {
                reason: "revived".into(),
            },
            Event::AgentTerminated {
                reason: "agent-lost".into(),
            },
            Event::DoTerminateSession {
                session_id,
                reason: "idle-timeout".into(),
            },
            Event::DoSyncKernelStats {
                kernel_ids: vec![kernel_id.to_string(), "not-a-uuid".into()],
            },
            Event::DoSyncKernelStats { kernel_ids: vec![] },
            Event::AgentError(AgentErrorReport {
                message: "ValueError: x".into(),
                traceback: Some("Traceback".into()),
                user: None,
                context_env: json!({}),
                severity: "error".into(),
            }),
        ];
        events.extend(Trigger::ALL.map(Event::Trigger));
        for kind in KernelEventKind::ALL {
            events.push(Event::Kernel(KernelEvent {
                kind,
                kernel_id,
                session_id,
                reason: "user-requested".into(),
                creation_info: if kind == KernelEventKind::Started {
                    json!({"container_id": "", "repl_in_port": 2000})
                } else {
                    Json::Null
                },
                exit_code: kind.is_termination().then_some(-1),
            }));
        }
        for kind in SessionEventKind::ALL {
            let layout = kind.layout();
            events.push(Event::Session(SessionEvent {
                kind,
                session_id,
                creation_id: matches!(layout, SessionLayout::Creation).then(|| "abc".to_owned()),
                reason: "".into(),
                exit_code: matches!(layout, SessionLayout::Result).then_some(0),
            }));
        }
        for event in events {
            for body in both_bodies(&event) {
                let decoded = Event::decode(event.name(), &body).unwrap();
                // A 23.09 tuple always carries creation_info (an empty map when unused).
                let expected = match (&event, &body) {
                    (Event::Kernel(k), EventBody::Args(_))
                        if !k.kind.is_termination() && k.creation_info.is_null() =>
                    {
                        Event::Kernel(KernelEvent {
                            creation_info: json!({}),
                            ..k.clone()
                        })
                    }
                    _ => event.clone(),
                };
                assert_eq!(decoded, expected, "{} {:?}", event.name(), body);
            }
        }
    }

    #[test]
    fn the_26_kernel_started_payload_decodes() {
        let payload = json!({"kernel_id": "4e7e1000-0000-0000-0000-000000000001", "session_id": "5e55104e-0000-0000-0000-000000000001", "reason": "", "creation_info": {"container_id": "", "kernel_host": "127.0.0.1", "repl_in_port": 2000}});
        let Event::Kernel(event) =
            Event::decode("kernel_started", &EventBody::Payload(payload)).unwrap()
        else {
            panic!("not a kernel event");
        };
        assert_eq!(event.kind, KernelEventKind::Started);
        assert_eq!(event.creation_info["repl_in_port"], 2000);
    }

    #[test]
    fn a_pickled_reason_enum_reads_as_its_value() {
        let args = vec![
            Value::str(Uuid::nil().to_string()),
            Value::str(Uuid::nil().to_string()),
            Value::python_enum(
                "ai.backend.common.events",
                "KernelLifecycleEventReason",
                "user-requested",
            ),
            Value::Int(0),
        ];
        let Event::Kernel(event) =
            Event::decode("kernel_terminated", &EventBody::Args(args)).unwrap()
        else {
            panic!("not a kernel event");
        };
        assert_eq!(event.reason, "user-requested");
        assert_eq!(event.exit_code, Some(0));
    }

    #[test]
    fn do_sync_kernel_stats_reads_the_23_09_tuple_and_refuses_bad_ids() {
        let id = Uuid::new_v4();
        let args = vec![Value::Array(vec![
            Value::str(id.to_string()),
            Value::uuid(id),
        ])];
        assert_eq!(
            Event::decode("do_sync_kernel_stats", &EventBody::Args(args)),
            Ok(Event::DoSyncKernelStats {
                kernel_ids: vec![id.to_string(), id.to_string()]
            })
        );
        assert_eq!(
            Event::decode("do_sync_kernel_stats", &EventBody::Args(vec![])),
            Err(EventError::MissingField {
                event: "do_sync_kernel_stats",
                field: "kernel_ids"
            })
        );
        let not_array = Event::decode(
            "do_sync_kernel_stats",
            &EventBody::Args(vec![Value::str(id.to_string())]),
        );
        assert!(
            matches!(&not_array, Err(EventError::WrongType { detail, .. }) if detail.contains("not an array")),
            "{not_array:?}"
        );
        let bad_item = Event::decode(
            "do_sync_kernel_stats",
            &EventBody::Args(vec![Value::Array(vec![Value::Int(7)])]),
        );
        assert!(
            matches!(&bad_item, Err(EventError::WrongType { detail, .. }) if detail.contains("item 0")),
            "{bad_item:?}"
        );
        let bad_payload = Event::decode(
            "do_sync_kernel_stats",
            &EventBody::Payload(json!({"kernel_ids": "x"})),
        );
        assert!(
            matches!(bad_payload, Err(EventError::WrongType { .. })),
            "{bad_payload:?}"
        );
        assert!(matches!(
            Event::decode("do_sync_kernel_stats", &EventBody::Payload(json!([]))),
            Err(EventError::WrongBody { .. })
        ));
    }

    #[test]
    fn bad_bodies_name_the_event_and_field() {
        assert_eq!(
            Event::decode("no_such_event", &EventBody::Args(vec![])),
            Err(EventError::UnknownName("no_such_event".into()))
        );
        assert_eq!(
            Event::decode("kernel_started", &EventBody::Args(vec![])),
            Err(EventError::MissingField {
                event: "kernel_started",
                field: "kernel_id"
            })
        );
        assert!(matches!(
            Event::decode("kernel_started", &EventBody::Args(vec![Value::str("zzz")])),
            Err(EventError::WrongType {
                field: "kernel_id",
                ..
            })
        ));
        assert!(matches!(
            Event::decode("agent_started", &EventBody::Payload(json!([1]))),
            Err(EventError::WrongBody { .. })
        ));
        assert!(matches!(
            Event::decode("agent_started", &EventBody::Args(vec![Value::Int(3)])),
            Err(EventError::WrongType {
                field: "reason",
                ..
            })
        ));
        assert_eq!(
            Event::decode("bgtask_updated", &EventBody::Args(vec![])),
            Ok(Event::Unhandled {
                name: "bgtask_updated".into()
            })
        );
    }
}
