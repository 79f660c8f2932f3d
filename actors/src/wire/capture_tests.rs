//! Decoding of real event bodies captured from agents 23.09.10 and 26.9.6: both generations'
//! heartbeats must give the same fields.

use bai_schema::{SlotAmount, SlotUnit};

use super::entry::{EMPTY_METADATA_26, decode_entry};
use super::events::Event;

const HEARTBEAT_2309: &[u8] =
    include_bytes!("../../tests/data/events/2309-agent_heartbeat.args.bin");
const ERROR_2309: &[u8] = include_bytes!("../../tests/data/events/2309-agent_error.args.bin");
const TERMINATED_2309: &[u8] =
    include_bytes!("../../tests/data/events/2309-agent_terminated.args.bin");
const HEARTBEAT_26: &[u8] =
    include_bytes!("../../tests/data/events/26-agent_heartbeat.payload.json");
const METADATA_26: &[u8] =
    include_bytes!("../../tests/data/events/26-agent_heartbeat.metadata.json");
const ERROR_26: &[u8] = include_bytes!("../../tests/data/events/26-agent_error.payload.json");

fn entry(name: &str, source: &str, body_field: &str, body: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields = vec![
        (b"name".to_vec(), name.as_bytes().to_vec()),
        (b"source".to_vec(), source.as_bytes().to_vec()),
        (body_field.as_bytes().to_vec(), body.to_vec()),
    ];
    if body_field == "payload" {
        fields.push((b"metadata".to_vec(), METADATA_26.to_vec()));
    }
    fields
}

fn heartbeat(fields: &[(Vec<u8>, Vec<u8>)]) -> super::AgentInfo {
    match decode_entry(fields).unwrap().1 {
        Event::AgentHeartbeat(info) => std::sync::Arc::unwrap_or_clone(info),
        other => panic!("decoded {other:?}"),
    }
}

#[test]
fn the_23_09_and_26_heartbeats_decode_to_the_same_fields() {
    let old = heartbeat(&entry(
        "agent_heartbeat",
        "i-dummy-research",
        "args",
        HEARTBEAT_2309,
    ));
    let new = heartbeat(&entry(
        "agent_heartbeat",
        "i-dummy-research-26",
        "payload",
        HEARTBEAT_26,
    ));
    assert_eq!(METADATA_26, EMPTY_METADATA_26.as_bytes());
    for info in [&old, &new] {
        assert_eq!(info.ip, "127.0.0.1");
        assert_eq!(info.region, "local");
        assert_eq!(info.scaling_group, "default");
        assert_eq!(info.public_key, None);
        assert_eq!(info.public_host, "127.0.0.1");
        assert_eq!(info.architecture, "x86_64");
        assert!(!info.auto_terminate_abusing_kernel);
        assert_eq!(
            info.available_slots.get("cpu"),
            SlotAmount::parse("9").unwrap()
        );
        assert_eq!(info.slot_types.get("cpu"), Some(&SlotUnit::Count));
        assert_eq!(info.slot_types.get("mem"), Some(&SlotUnit::Bytes));
        assert_eq!(info.available_slots.len(), 2);
        assert_eq!(
            info.compute_plugins["cpu"]["version"],
            info.version.as_str()
        );
    }
    assert_eq!(old.addr, "tcp://127.0.0.1:16001");
    assert_eq!(new.addr, "tcp://127.0.0.1:16002");
    assert_eq!(
        old.available_slots.get("mem"),
        SlotAmount::parse("48926258176").unwrap()
    );
    assert_eq!(
        new.available_slots.get("mem"),
        SlotAmount::parse("48922361856").unwrap()
    );
    assert_eq!(old.version, "23.09.10");
    assert_eq!(new.version, "26.9.6");
    assert_eq!(old.images.as_deref(), Some(&vec![]));
    assert_eq!(new.images, None);
}

#[test]
fn re_encoding_the_23_09_heartbeat_gives_the_captured_bytes() {
    let info = heartbeat(&entry("agent_heartbeat", "a", "args", HEARTBEAT_2309));
    let event = Event::AgentHeartbeat(std::sync::Arc::new(info));
    let packed = super::msgpack::encode(&super::Value::Array(event.to_args().unwrap()));
    assert_eq!(hex::encode(packed), hex::encode(HEARTBEAT_2309));
}

#[test]
fn the_captured_error_and_termination_events_decode() {
    for (fields, expected_message) in [
        (
            entry("agent_error", "i-dummy-research", "args", ERROR_2309),
            "KeyError: 'watcher'",
        ),
        (
            entry("agent_error", "i-dummy-setup", "payload", ERROR_26),
            "ValueError: badly formed hexadecimal UUID string",
        ),
    ] {
        match decode_entry(&fields).unwrap().1 {
            Event::AgentError(report) => {
                assert_eq!(report.message, expected_message);
                assert!(report.traceback.unwrap().contains("File"));
                assert!(report.severity.eq_ignore_ascii_case("error"));
            }
            other => panic!("decoded {other:?}"),
        }
    }
    assert_eq!(
        decode_entry(&entry("agent_terminated", "a", "args", TERMINATED_2309))
            .unwrap()
            .1,
        Event::AgentTerminated {
            reason: "shutdown".into()
        }
    );
}
