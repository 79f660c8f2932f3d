//! What a scheduling pass keeps in etcd, shared by every manager of the cluster as in the
//! original (23.09; 22.09 has neither): the round-robin cursors (`roundrobin_states`, so they
//! survive restarts and every manager continues where the last pass stopped) and the operator's
//! `config/agent/max-container-count`.
//!
//! 23.09 keeps one JSON document for every resource group:
//! `{"<group>": {"<arch>": {"schedulable_group_id": md5("#".join(agent ids)), "next_index": N}}}`.
//! (24.09 moved it to `resource-group-states/<group>/agselector.roundrobin`.) 23.09 drops a
//! cursor whose digest no longer matches the agents; we keep it modulo the agent count, as 24.09
//! does, and write the digest so a 23.09 manager can read what we store.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use crate::etcd::{EtcdError, EtcdStore};

/// The etcd key of every resource group's round-robin state (`SharedConfig.get_roundrobin_state`).
pub const ROUNDROBIN_STATES_KEY: &str = "roundrobin_states";
/// The operator's cap on containers per agent.
pub const MAX_CONTAINER_COUNT_KEY: &str = "config/agent/max-container-count";

/// Cursors per resource group, then per architecture.
pub type Cursors = BTreeMap<String, BTreeMap<String, usize>>;
/// The agent ids each cursor counts over, per resource group, then per architecture.
pub type Members = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The original's `get_schedulable_group_id`: md5 of the agent ids (sorted) joined by `#`.
pub fn schedulable_group_id(agent_ids: &[String]) -> String {
    hex::encode(Md5::digest(agent_ids.join("#").as_bytes()))
}

/// Reads the cursors out of the `roundrobin_states` document; anything unreadable counts as no
/// cursor (the pass starts from the first agent).
pub fn parse_roundrobin_states(text: &str) -> Cursors {
    let Ok(Value::Object(groups)) = serde_json::from_str::<Value>(text) else {
        return Cursors::new();
    };
    groups
        .iter()
        .filter_map(|(group, states)| {
            let cursors: BTreeMap<String, usize> = states
                .as_object()?
                .iter()
                .filter_map(|(arch, state)| {
                    let index = state.get("next_index")?.as_u64()?;
                    Some((arch.clone(), usize::try_from(index).ok()?))
                })
                .collect();
            Some((group.clone(), cursors))
        })
        .collect()
}

/// The `roundrobin_states` document `existing` with the `moved` cursors written in (other groups
/// and architectures kept as they were; an unreadable document is replaced).
pub fn merge_roundrobin_states(
    existing: Option<&str>,
    moved: &Cursors,
    members: &Members,
) -> String {
    let mut groups = match existing.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(groups))) => groups,
        _ => Map::new(),
    };
    for (group, cursors) in moved {
        let entry = groups
            .entry(group.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Some(states) = entry.as_object_mut() else {
            continue;
        };
        for (arch, index) in cursors {
            let ids = members
                .get(group)
                .and_then(|by_arch| by_arch.get(arch))
                .map(Vec::as_slice)
                .unwrap_or_default();
            states.insert(
                arch.clone(),
                json!({ "schedulable_group_id": schedulable_group_id(ids), "next_index": index }),
            );
        }
    }
    Value::Object(groups).to_string()
}

/// The cursors of `after` that differ from `before`, i.e. what a pass has to write back.
pub fn changed_cursors(before: &Cursors, after: &Cursors) -> Cursors {
    after
        .iter()
        .filter(|(group, cursors)| before.get(*group) != Some(*cursors))
        .map(|(group, cursors)| (group.clone(), cursors.clone()))
        .collect()
}

/// `config/agent/max-container-count`: a positive whole number, as the original's `int()` reads
/// it; anything else (or 0) means no cap.
pub fn parse_max_container_count(text: Option<&str>) -> Option<u32> {
    let count: u32 = text?.trim().parse().ok()?;
    (count > 0).then_some(count)
}

pub async fn load_cursors(etcd: &EtcdStore) -> Result<Cursors, EtcdError> {
    Ok(etcd
        .get(ROUNDROBIN_STATES_KEY)
        .await?
        .map(|text| parse_roundrobin_states(&text))
        .unwrap_or_default())
}

/// Writes the moved cursors into `roundrobin_states`; runs under the scheduler lock, so the
/// read-modify-write does not race with another manager's pass.
pub async fn store_cursors(
    etcd: &EtcdStore,
    moved: &Cursors,
    members: &Members,
) -> Result<(), EtcdError> {
    if moved.is_empty() {
        return Ok(());
    }
    let existing = etcd.get(ROUNDROBIN_STATES_KEY).await?;
    let document = merge_roundrobin_states(existing.as_deref(), moved, members);
    etcd.put(ROUNDROBIN_STATES_KEY, &document).await
}

pub async fn load_max_container_count(etcd: &EtcdStore) -> Result<Option<u32>, EtcdError> {
    Ok(parse_max_container_count(
        etcd.get(MAX_CONTAINER_COUNT_KEY).await?.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: &str = r#"{"default": {"x86_64": {"schedulable_group_id": "ab", "next_index": 3}, "aarch64": {"schedulable_group_id": "cd", "next_index": 1}}, "gpu": {"x86_64": {"schedulable_group_id": "ef", "next_index": -1}}}"#;

    #[test]
    fn reads_the_originals_roundrobin_states() {
        let cursors = parse_roundrobin_states(STATES);
        assert_eq!(cursors["default"]["x86_64"], 3);
        assert_eq!(cursors["default"]["aarch64"], 1);
        assert!(cursors["gpu"].is_empty(), "a negative index is no cursor");
    }

    #[test]
    fn an_unreadable_document_starts_from_the_first_agent() {
        assert!(parse_roundrobin_states("not json").is_empty());
        assert!(parse_roundrobin_states("[1, 2]").is_empty());
        assert!(parse_roundrobin_states(r#"{"default": null}"#).is_empty());
    }

    #[test]
    fn the_schedulable_group_id_is_the_originals_md5() {
        // hashlib.md5("i-a#i-b".encode()).hexdigest()
        assert_eq!(
            schedulable_group_id(&["i-a".to_owned(), "i-b".to_owned()]),
            "0d582ae5c5bff9fc3513444d1be9baae"
        );
        assert_eq!(
            schedulable_group_id(&[]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn writing_keeps_the_other_groups_and_architectures() {
        let moved = Cursors::from([(
            "default".to_owned(),
            BTreeMap::from([("x86_64".to_owned(), 5)]),
        )]);
        let members = Members::from([(
            "default".to_owned(),
            BTreeMap::from([(
                "x86_64".to_owned(),
                vec!["i-a".to_owned(), "i-b".to_owned()],
            )]),
        )]);
        let text = merge_roundrobin_states(Some(STATES), &moved, &members);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["default"]["x86_64"]["next_index"], 5);
        assert_eq!(
            value["default"]["x86_64"]["schedulable_group_id"],
            "0d582ae5c5bff9fc3513444d1be9baae"
        );
        assert_eq!(value["default"]["aarch64"]["next_index"], 1);
        assert_eq!(value["gpu"]["x86_64"]["schedulable_group_id"], "ef");
        assert_eq!(parse_roundrobin_states(&text)["default"]["x86_64"], 5);
        let fresh = merge_roundrobin_states(Some("garbage"), &moved, &members);
        assert_eq!(parse_roundrobin_states(&fresh), moved);
    }

    #[test]
    fn only_moved_cursors_are_written_back() {
        let mut before = Cursors::new();
        before.insert("a".into(), BTreeMap::from([("x86_64".into(), 1)]));
        before.insert("b".into(), BTreeMap::from([("x86_64".into(), 2)]));
        let mut after = before.clone();
        after.insert("b".into(), BTreeMap::from([("x86_64".into(), 3)]));
        after.insert("c".into(), BTreeMap::from([("x86_64".into(), 0)]));
        let changed = changed_cursors(&before, &after);
        assert_eq!(changed.keys().collect::<Vec<_>>(), vec!["b", "c"]);
    }

    #[test]
    fn max_container_count_is_a_positive_whole_number() {
        assert_eq!(parse_max_container_count(Some("10")), Some(10));
        assert_eq!(parse_max_container_count(Some(" 3\n")), Some(3));
        assert_eq!(parse_max_container_count(Some("0")), None);
        assert_eq!(parse_max_container_count(Some("many")), None);
        assert_eq!(parse_max_container_count(None), None);
    }
}
