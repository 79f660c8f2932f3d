//! Tests of the pure placement: examples of each policy, selector and predicate, and properties
//! that must hold for any snapshot (no over-commit, limits respected, deterministic).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bai_schema::slots::intrinsic_slot_types;
use bai_schema::{ResourceSlot, SlotAmount};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::placement::{Decision, plan_pass};
use super::policy::SchedulingPolicy;
use super::selector::{AgentSelectionStrategy, order_by_priority};
use super::snapshot::*;

const GIB: i64 = 1 << 30;

fn slots(cpu: i64, mem_gib: i64) -> ResourceSlot {
    ResourceSlot::from_pairs([("cpu", cpu), ("mem", mem_gib * GIB)])
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn group_id() -> Uuid {
    id(0xaaaa)
}

fn user(ak: &str) -> Uuid {
    Uuid::from_u128(ak.bytes().fold(7u128, |h, b| h * 131 + u128::from(b)))
}

fn agent(name: &str, available: ResourceSlot) -> AgentView {
    AgentView {
        id: name.to_owned(),
        scaling_group: "default".to_owned(),
        architecture: "x86_64".to_owned(),
        available_slots: Arc::new(available),
        occupied_slots: Default::default(),
        container_count: 0,
        free: Default::default(),
    }
}

fn session(n: u128, ak: &str, requested: ResourceSlot) -> PendingSession {
    PendingSession {
        id: id(n),
        name: format!("s{n}"),
        access_key: ak.to_owned(),
        user_uuid: user(ak),
        group_id: group_id(),
        domain_name: "default".to_owned(),
        kind: SessionKind::Interactive,
        priority: 10,
        created_at: t0() + Duration::seconds(n as i64),
        scaling_group: "default".to_owned(),
        cluster_mode: ClusterMode::SingleNode,
        kernels: vec![PendingKernel {
            id: id(n << 16),
            requested_slots: requested,
            architecture: "x86_64".to_owned(),
            image: "cr.backend.ai/stable/python:3.9".to_owned(),
            designated_agent: None,
        }],
        starts_at: None,
        unmet_dependencies: Vec::new(),
        retries: 0,
    }
}

fn snapshot(
    agents: Vec<AgentView>,
    pending: Vec<PendingSession>,
    policy: SchedulingPolicy,
    selector: AgentSelectionStrategy,
) -> SchedulingSnapshot {
    let keys: BTreeSet<String> = pending.iter().map(|s| s.access_key.clone()).collect();
    let mut access = ScalingGroupAccess::default();
    access
        .by_domain
        .insert("default".to_owned(), BTreeSet::from(["default".to_owned()]));
    SchedulingSnapshot {
        now: t0() + Duration::hours(1),
        known_slots: intrinsic_slot_types(),
        resource_priority: default_resource_priority(),
        max_container_count: None,
        scaling_groups: vec![ScalingGroupView {
            name: "default".to_owned(),
            policy,
            selector,
            pending_timeout_secs: 0.0,
            num_retries_to_skip: 0,
            roundrobin_next_index: BTreeMap::new(),
        }],
        agents: agents.into_iter().map(Arc::new).collect(),
        pending,
        keypair_policies: keys
            .into_iter()
            .map(|ak| (ak, KeypairPolicy::default()))
            .collect(),
        user_policies: BTreeMap::new(),
        group_limits: BTreeMap::new(),
        domain_limits: BTreeMap::new(),
        usage: Usage::default(),
        access,
        image_minimums: BTreeMap::new(),
    }
}

fn scheduled_ids(plan: &super::PassPlan) -> Vec<Uuid> {
    plan.scheduled().map(|(id, _)| *id).collect()
}

fn agent_of(plan: &super::PassPlan, session: Uuid) -> Option<String> {
    plan.scheduled()
        .find(|(id, _)| **id == session)
        .map(|(_, assignments)| assignments[0].agent_id.clone())
}

fn failure_of(plan: &super::PassPlan, session: Uuid) -> Option<(String, String)> {
    plan.decisions.iter().find_map(|decision| match decision {
        Decision::PredicatesFailed {
            session_id,
            outcome,
            ..
        } if *session_id == session => outcome
            .failed
            .first()
            .map(|f| (f.name.to_owned(), f.msg.clone())),
        _ => None,
    })
}

#[test]
fn fifo_places_the_oldest_and_lifo_the_newest() {
    let agents = vec![agent("i-a", slots(2, 4))];
    let pending = vec![
        session(1, "AK1", slots(2, 4)),
        session(2, "AK1", slots(2, 4)),
    ];
    let fifo = plan_pass(&snapshot(
        agents.clone(),
        pending.clone(),
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(scheduled_ids(&fifo), vec![id(1)]);
    let lifo = plan_pass(&snapshot(
        agents,
        pending,
        SchedulingPolicy::Lifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(scheduled_ids(&lifo), vec![id(2)]);
    assert!(lifo.decisions.iter().any(|d| matches!(
        d,
        Decision::NoAvailableInstances { session_id, .. } if *session_id == id(1)
    )));
}

#[test]
fn fifo_skips_sessions_that_failed_too_often_when_configured() {
    let agents = vec![agent("i-a", slots(2, 4))];
    let mut stuck = session(1, "AK1", slots(2, 4));
    stuck.retries = 5;
    let pending = vec![stuck, session(2, "AK1", slots(2, 4))];
    let mut snap = snapshot(
        agents,
        pending,
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.scaling_groups[0].num_retries_to_skip = 3;
    assert_eq!(scheduled_ids(&plan_pass(&snap)), vec![id(2)]);
}

#[test]
fn drf_favours_the_keypair_with_the_smaller_dominant_share() {
    let agents = vec![agent("i-a", slots(8, 16)), agent("i-b", slots(8, 16))];
    // AK-BIG already holds half the cluster; AK-SMALL holds nothing. AK-BIG's sessions are older.
    let pending = vec![
        session(1, "AK-BIG", slots(4, 4)),
        session(2, "AK-BIG", slots(4, 4)),
        session(3, "AK-SMALL", slots(4, 4)),
        session(4, "AK-SMALL", slots(4, 4)),
    ];
    let mut snap = snapshot(
        agents,
        pending,
        SchedulingPolicy::Drf,
        AgentSelectionStrategy::Dispersed,
    );
    snap.usage.by_scaling_group_keypair.insert(
        "default".to_owned(),
        BTreeMap::from([("AK-BIG".to_owned(), slots(8, 8))]),
    );
    Arc::make_mut(&mut snap.agents[0]).occupied_slots = Arc::new(slots(8, 8));
    let plan = plan_pass(&snap);
    // Only 8 cpus are free: both go to AK-SMALL, whose share stays below AK-BIG's.
    assert_eq!(scheduled_ids(&plan), vec![id(3), id(4)]);
}

#[test]
fn drf_alternates_between_equal_keypairs() {
    let agents = vec![agent("i-a", slots(16, 64))];
    let pending = vec![
        session(1, "AK1", slots(2, 2)),
        session(2, "AK1", slots(2, 2)),
        session(3, "AK1", slots(2, 2)),
        session(4, "AK2", slots(2, 2)),
        session(5, "AK2", slots(2, 2)),
    ];
    let plan = plan_pass(&snapshot(
        agents,
        pending,
        SchedulingPolicy::Drf,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(
        scheduled_ids(&plan),
        vec![id(1), id(4), id(2), id(5), id(3)]
    );
}

#[test]
fn dispersed_takes_the_emptiest_and_concentrated_the_fullest_agent() {
    let mut busy = agent("i-busy", slots(8, 16));
    busy.occupied_slots = Arc::new(slots(6, 8));
    let agents = vec![busy, agent("i-idle", slots(8, 16))];
    let pending = vec![session(1, "AK1", slots(1, 1))];
    let dispersed = plan_pass(&snapshot(
        agents.clone(),
        pending.clone(),
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(agent_of(&dispersed, id(1)).as_deref(), Some("i-idle"));
    let concentrated = plan_pass(&snapshot(
        agents,
        pending,
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Concentrated,
    ));
    assert_eq!(agent_of(&concentrated, id(1)).as_deref(), Some("i-busy"));
}

#[test]
fn legacy_takes_the_biggest_agent_that_fits() {
    let mut big = agent("i-big", slots(64, 256));
    big.occupied_slots = Arc::new(slots(63, 0));
    let agents = vec![
        agent("i-small", slots(4, 8)),
        big,
        agent("i-mid", slots(16, 32)),
    ];
    let plan = plan_pass(&snapshot(
        agents,
        vec![session(1, "AK1", slots(2, 1))],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Legacy,
    ));
    assert_eq!(agent_of(&plan, id(1)).as_deref(), Some("i-mid"));
}

#[test]
fn roundrobin_cycles_through_agents_by_id_and_remembers_the_cursor() {
    let agents = vec![
        agent("i-c", slots(8, 8)),
        agent("i-a", slots(8, 8)),
        agent("i-b", slots(8, 8)),
    ];
    let pending = (1..=4).map(|n| session(n, "AK1", slots(1, 1))).collect();
    let mut snap = snapshot(
        agents,
        pending,
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::RoundRobin,
    );
    snap.scaling_groups[0]
        .roundrobin_next_index
        .insert("x86_64".to_owned(), 1);
    let plan = plan_pass(&snap);
    let chosen: Vec<String> = (1..=4).filter_map(|n| agent_of(&plan, id(n))).collect();
    assert_eq!(chosen, vec!["i-b", "i-c", "i-a", "i-b"]);
    assert_eq!(plan.roundrobin_next["default"]["x86_64"], 2);
}

#[test]
fn sessions_without_accelerators_avoid_accelerator_nodes() {
    let mut gpu = agent("i-gpu", slots(64, 256));
    Arc::make_mut(&mut gpu.available_slots).set("cuda.device", 8);
    let agents = vec![gpu, agent("i-cpu", slots(4, 8))];
    let mut request = slots(1, 1);
    request.set("cuda.device", 0);
    let plan = plan_pass(&snapshot(
        agents,
        vec![session(1, "AK1", request)],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(agent_of(&plan, id(1)).as_deref(), Some("i-cpu"));
}

#[test]
fn device_sub_slots_rank_right_after_their_device() {
    let request = ResourceSlot::from_pairs([
        ("mem", 1i64),
        ("cpu", 1),
        ("cuda.shares", 1),
        ("zzz.custom", 1),
    ]);
    assert_eq!(
        order_by_priority(&request, &default_resource_priority()),
        vec!["cuda.shares", "cpu", "mem", "zzz.custom"]
    );
}

#[test]
fn multi_container_single_node_sessions_land_on_one_agent() {
    let agents = vec![agent("i-a", slots(3, 8)), agent("i-b", slots(4, 8))];
    let mut s = session(1, "AK1", slots(2, 2));
    s.kernels.push(PendingKernel {
        id: id(99),
        ..s.kernels[0].clone()
    });
    let plan = plan_pass(&snapshot(
        agents,
        vec![s],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Concentrated,
    ));
    let (_, assignments) = plan.scheduled().next().expect("scheduled");
    assert_eq!(assignments.len(), 2);
    assert!(assignments.iter().all(|a| a.agent_id == "i-b"));
}

#[test]
fn a_multi_node_session_that_does_not_fit_whole_takes_nothing() {
    let agents = vec![agent("i-a", slots(2, 8)), agent("i-b", slots(2, 8))];
    let mut big = session(1, "AK1", slots(2, 2));
    big.cluster_mode = ClusterMode::MultiNode;
    for extra in 0..2 {
        big.kernels.push(PendingKernel {
            id: id(100 + extra),
            ..big.kernels[0].clone()
        });
    }
    let small = session(2, "AK1", slots(2, 2));
    let plan = plan_pass(&snapshot(
        agents,
        vec![big, small],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(scheduled_ids(&plan), vec![id(2)]);
}

#[test]
fn a_designated_agent_is_used_when_it_has_room() {
    let agents = vec![agent("i-a", slots(8, 8)), agent("i-b", slots(2, 8))];
    let mut s = session(1, "AK1", slots(1, 1));
    s.kernels[0].designated_agent = Some("i-b".to_owned());
    let mut too_big = session(2, "AK1", slots(4, 1));
    too_big.kernels[0].designated_agent = Some("i-b".to_owned());
    let plan = plan_pass(&snapshot(
        agents,
        vec![s, too_big],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(agent_of(&plan, id(1)).as_deref(), Some("i-b"));
    assert!(agent_of(&plan, id(2)).is_none());
}

#[test]
fn the_concurrency_limit_counts_running_and_newly_placed_sessions() {
    let agents = vec![agent("i-a", slots(16, 64))];
    let pending = (1..=3).map(|n| session(n, "AK1", slots(1, 1))).collect();
    let mut snap = snapshot(
        agents,
        pending,
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.keypair_policies
        .get_mut("AK1")
        .unwrap()
        .max_concurrent_sessions = 2;
    snap.usage.sessions_by_keypair.insert("AK1".to_owned(), 1);
    let plan = plan_pass(&snap);
    assert_eq!(scheduled_ids(&plan), vec![id(1)]);
    assert_eq!(
        failure_of(&plan, id(2)),
        Some((
            "concurrency".to_owned(),
            "You cannot run more than 2 concurrent sessions".to_owned()
        ))
    );
}

#[test]
fn keypair_user_group_and_domain_limits_refuse_with_their_messages() {
    let agents = vec![agent("i-a", slots(64, 256))];
    type Limit = Box<dyn Fn(&mut SchedulingSnapshot)>;
    let cases: Vec<(&str, Limit, &str)> = vec![
        (
            "keypair_resource_limit",
            Box::new(|snap| {
                let policy = snap.keypair_policies.get_mut("AK1").unwrap();
                policy.total_resource_slots = ResourceSlot::from_pairs([("cpu", 2i64)]);
                policy.unspecified_is_unlimited = true;
            }),
            "Your keypair resource quota is exceeded. (cpu=2 mem=Infinity)",
        ),
        (
            "keypair_resource_limit",
            Box::new(|snap| {
                let policy = snap.keypair_policies.get_mut("AK1").unwrap();
                policy.total_resource_slots = ResourceSlot::from_pairs([("cpu", 8i64)]);
                policy.unspecified_is_unlimited = false;
            }),
            "Your keypair resource quota is exceeded. (cpu=8 mem=0)",
        ),
        (
            "user_resource_limit",
            Box::new(|snap| {
                snap.user_policies.insert(
                    user("AK1"),
                    KeypairPolicy {
                        total_resource_slots: slots(2, 4),
                        unspecified_is_unlimited: false,
                        ..KeypairPolicy::default()
                    },
                );
            }),
            "Your main-keypair resource quota is exceeded. (cpu=2 mem=4g)",
        ),
        (
            "user_group_resource_limit",
            Box::new(|snap| {
                snap.group_limits
                    .insert(group_id(), ResourceSlot::from_pairs([("mem", 2 * GIB)]));
            }),
            "Your group resource quota is exceeded. (cpu=Infinity mem=2g)",
        ),
        (
            "domain_resource_limit",
            Box::new(|snap| {
                snap.domain_limits.insert(
                    "default".to_owned(),
                    ResourceSlot::from_pairs([("cpu", 1i64)]),
                );
            }),
            "Your domain resource quota is exceeded. (cpu=1 mem=Infinity)",
        ),
        (
            "allowed_scaling_group",
            Box::new(|snap| {
                snap.access = ScalingGroupAccess::default();
            }),
            "You do not have access to the scaling group 'default'.",
        ),
        (
            "image_resource_minimum",
            Box::new(|snap| {
                snap.image_minimums
                    .insert("cr.backend.ai/stable/python:3.9".to_owned(), slots(1, 8));
            }),
            "The resource request is below the image's minimum. (cr.backend.ai/stable/python:3.9: mem=4g < 8g)",
        ),
    ];
    for (name, limit, message) in cases {
        let mut snap = snapshot(
            agents.clone(),
            vec![session(1, "AK1", slots(4, 4))],
            SchedulingPolicy::Fifo,
            AgentSelectionStrategy::Dispersed,
        );
        limit(&mut snap);
        let plan = plan_pass(&snap);
        assert!(scheduled_ids(&plan).is_empty(), "{name} let it through");
        assert_eq!(
            failure_of(&plan, id(1)),
            Some((name.to_owned(), message.to_owned()))
        );
    }
}

#[test]
fn usage_of_sessions_placed_earlier_in_the_pass_counts_against_limits() {
    let agents = vec![agent("i-a", slots(64, 256))];
    let pending = (1..=3).map(|n| session(n, "AK1", slots(2, 1))).collect();
    let mut snap = snapshot(
        agents,
        pending,
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.keypair_policies
        .get_mut("AK1")
        .unwrap()
        .total_resource_slots = ResourceSlot::from_pairs([("cpu", 5i64)]);
    assert_eq!(scheduled_ids(&plan_pass(&snap)), vec![id(1), id(2)]);
}

#[test]
fn pending_limits_hold_back_sessions_behind_the_first_ones() {
    let agents = vec![agent("i-a", slots(64, 256))];
    let pending: Vec<_> = (1..=3).map(|n| session(n, "AK1", slots(2, 1))).collect();
    let mut by_count = snapshot(
        agents.clone(),
        pending.clone(),
        SchedulingPolicy::Lifo,
        AgentSelectionStrategy::Dispersed,
    );
    by_count
        .keypair_policies
        .get_mut("AK1")
        .unwrap()
        .max_pending_session_count = Some(1);
    let plan = plan_pass(&by_count);
    // LIFO tries 3 first: two sessions are ahead of it. Then 2 has one ahead; 1 goes.
    assert_eq!(
        failure_of(&plan, id(3)),
        Some((
            "pending_session_count_limit".to_owned(),
            "You cannot create more than 1 pending session.".to_owned()
        ))
    );
    assert_eq!(scheduled_ids(&plan), vec![id(1)]);

    let mut by_slots = snapshot(
        agents,
        pending,
        SchedulingPolicy::Lifo,
        AgentSelectionStrategy::Dispersed,
    );
    by_slots
        .keypair_policies
        .get_mut("AK1")
        .unwrap()
        .max_pending_session_resource_slots = Some(ResourceSlot::from_pairs([("cpu", 4i64)]));
    let plan = plan_pass(&by_slots);
    assert_eq!(
        failure_of(&plan, id(3)),
        Some((
            "pending_session_resource_limit".to_owned(),
            "Your pending session quota is exceeded. (cpu=4)".to_owned()
        ))
    );
    assert_eq!(scheduled_ids(&plan), vec![id(2), id(1)]);
}

#[test]
fn batch_sessions_wait_for_their_start_time_and_dependencies() {
    let agents = vec![agent("i-a", slots(8, 8))];
    let mut later = session(1, "AK1", slots(1, 1));
    later.kind = SessionKind::Batch;
    later.starts_at = Some(t0() + Duration::days(1));
    let mut dependent = session(2, "AK1", slots(1, 1));
    dependent.unmet_dependencies = vec!["prep (00000000-0000-0000-0000-000000000009)".to_owned()];
    let plan = plan_pass(&snapshot(
        agents,
        vec![later, dependent],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    ));
    assert_eq!(
        failure_of(&plan, id(1)),
        Some(("reserved_time".to_owned(), "Before start time".to_owned()))
    );
    assert_eq!(
        failure_of(&plan, id(2)).map(|f| f.1),
        Some(
            "Waiting dependency sessions to finish as success. (prep (00000000-0000-0000-0000-000000000009))"
                .to_owned()
        )
    );
}

#[test]
fn private_sessions_failing_a_predicate_are_cancelled() {
    let agents = vec![agent("i-a", slots(8, 8))];
    let mut sftp = session(1, "AK1", slots(1, 1));
    sftp.kind = SessionKind::System;
    let mut snap = snapshot(
        agents,
        vec![sftp],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.keypair_policies
        .get_mut("AK1")
        .unwrap()
        .max_concurrent_sftp_sessions = 1;
    snap.usage
        .sftp_sessions_by_keypair
        .insert("AK1".to_owned(), 1);
    let plan = plan_pass(&snap);
    assert!(matches!(
        plan.decisions[0],
        Decision::PredicatesFailed { cancel: true, .. }
    ));
}

#[test]
fn sessions_pending_past_the_timeout_are_cancelled_and_lower_priorities_wait() {
    let agents = vec![agent("i-a", slots(8, 8))];
    let old = session(1, "AK1", slots(1, 1));
    let mut low = session(2, "AK1", slots(1, 1));
    low.created_at = t0() + Duration::minutes(59);
    low.priority = 5;
    let mut high = session(3, "AK1", slots(1, 1));
    high.created_at = t0() + Duration::minutes(59);
    let mut snap = snapshot(
        agents,
        vec![old, low, high],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.scaling_groups[0].pending_timeout_secs = 600.0;
    let plan = plan_pass(&snap);
    assert_eq!(
        plan.decisions[0],
        Decision::PendingTimeout { session_id: id(1) }
    );
    assert_eq!(scheduled_ids(&plan), vec![id(3)]);
    assert_eq!(
        plan.decisions.len(),
        2,
        "the low-priority session is not tried"
    );
}

#[test]
fn the_container_count_limit_is_respected() {
    let mut full = agent("i-a", slots(64, 64));
    full.container_count = 3;
    let mut snap = snapshot(
        vec![full],
        vec![session(1, "AK1", slots(1, 1))],
        SchedulingPolicy::Fifo,
        AgentSelectionStrategy::Dispersed,
    );
    snap.max_container_count = Some(3);
    assert!(scheduled_ids(&plan_pass(&snap)).is_empty());
}

// ---------------------------------------------------------------------------------------------
// properties

fn arb_policy() -> impl Strategy<Value = SchedulingPolicy> {
    prop_oneof![
        Just(SchedulingPolicy::Fifo),
        Just(SchedulingPolicy::Lifo),
        Just(SchedulingPolicy::Drf)
    ]
}

fn arb_selector() -> impl Strategy<Value = AgentSelectionStrategy> {
    prop_oneof![
        Just(AgentSelectionStrategy::Legacy),
        Just(AgentSelectionStrategy::RoundRobin),
        Just(AgentSelectionStrategy::Concentrated),
        Just(AgentSelectionStrategy::Dispersed)
    ]
}

fn arb_agent() -> impl Strategy<Value = (i64, i64, i64, i64, u8, bool)> {
    // (cpu, mem GiB, occupied cpu, occupied mem GiB, gpus, aarch64)
    (
        1i64..=16,
        1i64..=32,
        0i64..=8,
        0i64..=8,
        0u8..=2,
        proptest::bool::weighted(0.1),
    )
}

fn arb_session() -> impl Strategy<Value = (u8, i64, i64, u8, u8, bool, i32)> {
    // (keypair, cpu, mem GiB, gpus, kernels, multi-node, priority)
    (
        0u8..3,
        0i64..=6,
        0i64..=10,
        0u8..=1,
        1u8..=3,
        proptest::bool::weighted(0.2),
        9i32..=10,
    )
}

fn build_snapshot(
    agents: Vec<(i64, i64, i64, i64, u8, bool)>,
    sessions: Vec<(u8, i64, i64, u8, u8, bool, i32)>,
    policy: SchedulingPolicy,
    selector: AgentSelectionStrategy,
    limits: (i32, i64),
) -> SchedulingSnapshot {
    let agents = agents
        .into_iter()
        .enumerate()
        .map(|(n, (cpu, mem, ocpu, omem, gpus, arm))| {
            let mut a = agent(&format!("i-{n:03}"), slots(cpu, mem));
            if gpus > 0 {
                Arc::make_mut(&mut a.available_slots).set("cuda.device", i64::from(gpus));
            }
            a.occupied_slots = Arc::new(slots(ocpu.min(cpu), omem.min(mem)));
            if arm {
                a.architecture = "aarch64".to_owned();
            }
            a
        })
        .collect();
    let pending = sessions
        .into_iter()
        .enumerate()
        .map(|(n, (ak, cpu, mem, gpus, kernels, multi, priority))| {
            let mut requested = slots(cpu, mem);
            requested.set("cuda.device", i64::from(gpus));
            let mut s = session(n as u128 + 1, &format!("AK{ak}"), requested);
            s.priority = priority;
            if multi {
                s.cluster_mode = ClusterMode::MultiNode;
            }
            for k in 1..kernels {
                s.kernels.push(PendingKernel {
                    id: id(((n as u128 + 1) << 16) + u128::from(k)),
                    ..s.kernels[0].clone()
                });
            }
            s
        })
        .collect();
    let mut snap = snapshot(agents, pending, policy, selector);
    snap.known_slots
        .insert("cuda.device".to_owned(), bai_schema::SlotUnit::Count);
    let (max_sessions, max_cpu) = limits;
    for policy in snap.keypair_policies.values_mut() {
        policy.max_concurrent_sessions = max_sessions;
        policy.total_resource_slots = ResourceSlot::from_pairs([("cpu", max_cpu)]);
    }
    snap
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn plans_never_over_commit_and_respect_limits(
        agents in proptest::collection::vec(arb_agent(), 0..12),
        sessions in proptest::collection::vec(arb_session(), 0..40),
        policy in arb_policy(),
        selector in arb_selector(),
        limits in (0i32..6, 1i64..40),
    ) {
        let snap = build_snapshot(agents, sessions, policy, selector, limits);
        let plan = plan_pass(&snap);

        // Each session is decided at most once.
        let mut seen = BTreeSet::new();
        for decision in &plan.decisions {
            prop_assert!(seen.insert(decision.session_id()), "decided twice");
        }

        // No agent over-committed, on any slot.
        let mut added: BTreeMap<String, ResourceSlot> = BTreeMap::new();
        for (_, assignments) in plan.scheduled() {
            for assignment in assignments {
                let sum = added.entry(assignment.agent_id.clone()).or_default();
                *sum = &*sum + &assignment.slots;
            }
        }
        for agent in &snap.agents {
            let used = match added.get(&agent.id) {
                Some(extra) => &*agent.occupied_slots + extra,
                None => (*agent.occupied_slots).clone(),
            };
            for (slot, amount) in used.iter() {
                prop_assert!(*amount <= agent.available_slots.get(slot),
                    "agent {} over-committed on {slot}: {amount} > {}", agent.id, agent.available_slots.get(slot));
            }
        }

        // Placed sessions: every kernel assigned, single-node on one agent of its architecture.
        let sessions_by_id: BTreeMap<Uuid, &PendingSession> = snap.pending.iter().map(|s| (s.id, s)).collect();
        let agents_by_id: BTreeMap<&str, &AgentView> = snap.agents.iter().map(|a| (a.id.as_str(), a.as_ref())).collect();
        let mut per_keypair: BTreeMap<&str, (i32, SlotAmount)> = BTreeMap::new();
        for (session_id, assignments) in plan.scheduled() {
            let session = sessions_by_id[session_id];
            prop_assert_eq!(assignments.len(), session.kernels.len());
            if session.cluster_mode == ClusterMode::SingleNode {
                prop_assert!(assignments.iter().all(|a| a.agent_id == assignments[0].agent_id));
            }
            for assignment in assignments {
                prop_assert_eq!(&agents_by_id[assignment.agent_id.as_str()].architecture, "x86_64");
            }
            let entry = per_keypair.entry(session.access_key.as_str()).or_insert((0, SlotAmount::ZERO));
            entry.0 += 1;
            entry.1 = entry.1 + session.requested_slots().get("cpu");
        }
        // Keypair limits: concurrency and cpu quota.
        let (max_sessions, max_cpu) = limits;
        for (count, cpu) in per_keypair.values() {
            if max_sessions > 0 {
                prop_assert!(*count <= max_sessions);
            }
            prop_assert!(*cpu <= SlotAmount::from(max_cpu));
        }
        // Only the highest priority is placed.
        if let Some(top) = snap.pending.iter().map(|s| s.priority).max() {
            for (session_id, _) in plan.scheduled() {
                prop_assert_eq!(sessions_by_id[session_id].priority, top);
            }
        }
    }

    #[test]
    fn plans_are_deterministic_whatever_the_input_order(
        agents in proptest::collection::vec(arb_agent(), 1..10),
        sessions in proptest::collection::vec(arb_session(), 1..30),
        policy in arb_policy(),
        selector in arb_selector(),
        limits in (0i32..6, 1i64..40),
        rotation in 0usize..30,
    ) {
        let snap = build_snapshot(agents, sessions, policy, selector, limits);
        let plan = plan_pass(&snap);
        prop_assert_eq!(&plan_pass(&snap), &plan);
        let mut shuffled = snap.clone();
        let agent_rotation = rotation % shuffled.agents.len();
        shuffled.agents.rotate_left(agent_rotation);
        shuffled.agents.reverse();
        let pending_rotation = rotation % shuffled.pending.len();
        shuffled.pending.rotate_left(pending_rotation);
        prop_assert_eq!(&plan_pass(&shuffled), &plan);
    }
}
