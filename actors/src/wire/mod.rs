//! The wire formats of Backend.AI's event bus: the msgpack value model with its ext types and
//! pickles, the two stream-entry shapes (23.09 `args`, 26.x `payload`), typed events, and the
//! producer that writes them.
//!
//! Reading: `entry::decode_entry(fields)` gives `(source, Event)`. Writing:
//! `EventProducer::produce(&event)`. RPC bodies (callosum) are built on [`msgpack::Value`];
//! any ext type can be carried with `Value::Ext(code, bytes)`.

pub mod agent_info;
#[cfg(test)]
mod capture_tests;
pub mod entry;
pub mod events;
pub mod ext;
pub mod msgpack;
pub mod msgpack_json;
pub mod pickle;
pub mod producer;
pub mod shared_parts;
pub mod temporenc;

pub use agent_info::{AgentImage, AgentInfo, AgentInfoError};
pub use entry::{EntryError, Envelope, WireFormat, decode_entry, parse_entry, render_entry};
pub use events::{
    AgentErrorReport, Event, EventBody, EventError, KernelEvent, KernelEventKind, SessionEvent,
    SessionEventKind, Trigger,
};
pub use msgpack::{MsgpackError, Value};
pub use producer::{EventProducer, MANAGER_SOURCE, ProduceError};
