//! Scheduling policies and predicates through a real pass on real PostgreSQL (snapshot loader,
//! placement, reservation, recorded outcomes): which sessions FIFO, LIFO and DRF place when
//! capacity is short, and, for every limit, that a session over it stays PENDING with
//! `status_info = 'predicate-checks-failed'` and the original's message in `status_data`.

use bai_actors::scheduler::pass::run_pass;
use bai_actors::scheduler::reserve::Admission;
use bai_testkit::TestEnv;
use serde_json::Value;
use uuid::Uuid;

use crate::sched_support::{
    ADMIN_AK, DEFAULT_GROUP, SESSION_IMAGE, SessionSpec, USER_AK, enqueue, load_options,
    over_committed_agents, scheduling_world,
};

/// A resource group `name` open to the `default` domain, with `scheduler` and agents of
/// `cpus` cores and 64 GiB each.
async fn resource_group(
    client: &tokio_postgres::Client,
    name: &str,
    scheduler: &str,
    cpus: &[u32],
) {
    client
        .execute(
            "INSERT INTO scaling_groups (name, driver, scheduler, scheduler_opts)
             VALUES ($1, 'static', $2, '{}')",
            &[&name, &scheduler],
        )
        .await
        .expect("adding a resource group");
    client
        .execute(
            "INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ($1, 'default')",
            &[&name],
        )
        .await
        .expect("opening the resource group to the domain");
    add_agents_to(client, name, cpus).await;
}

async fn add_agents_to(client: &tokio_postgres::Client, group: &str, cpus: &[u32]) {
    for (n, cpu) in cpus.iter().enumerate() {
        let slots = serde_json::json!({"cpu": cpu.to_string(), "mem": (64u64 << 30).to_string()});
        client
            .execute(
                "INSERT INTO agents (id, status, status_changed, region, scaling_group,
                    available_slots, occupied_slots, addr, version, architecture)
                 VALUES ($1, 'ALIVE', now(), 'local', $2, $3, '{}', $4, '26.9.6', 'x86_64')",
                &[
                    &format!("i-{group}-{n}"),
                    &group,
                    &slots,
                    &format!("tcp://127.0.0.1:{}", 21000 + n),
                ],
            )
            .await
            .expect("adding an agent");
    }
}

fn sessions<'a>(access_key: &'a str, scaling_group: &'a str, count: usize) -> SessionSpec<'a> {
    SessionSpec {
        access_key,
        scaling_group,
        count,
        cpu: 1,
        mem_gib: 1,
    }
}

async fn pass(env: &TestEnv) {
    let mut writer = env.db.connect().await;
    run_pass(&mut writer, None, load_options(), Admission::Scheduled)
        .await
        .expect("a scheduling pass");
}

/// Status, status_info and status_data of one session.
async fn outcome(client: &tokio_postgres::Client, session: Uuid) -> (String, String, Value) {
    let row = client
        .query_one(
            "SELECT status::text, coalesce(status_info, ''), coalesce(status_data, 'null'::jsonb)
               FROM sessions WHERE id = $1",
            &[&session],
        )
        .await
        .expect("reading a session");
    (row.get(0), row.get(1), row.get(2))
}

async fn scheduled(client: &tokio_postgres::Client, ids: &[Uuid]) -> Vec<bool> {
    let mut flags = Vec::with_capacity(ids.len());
    for id in ids {
        flags.push(outcome(client, *id).await.0 == "SCHEDULED");
    }
    flags
}

/// Asserts that `session` waits, refused by exactly the predicate `name` with `msg`.
async fn assert_refused(client: &tokio_postgres::Client, session: Uuid, name: &str, msg: &str) {
    let (status, info, data) = outcome(client, session).await;
    assert_eq!(status, "PENDING", "{data}");
    assert_eq!(info, "predicate-checks-failed", "{data}");
    let scheduler = &data["scheduler"];
    assert_eq!(
        scheduler["failed_predicates"],
        serde_json::json!([{"name": name, "msg": msg}]),
        "{data}"
    );
    assert_eq!(scheduler["msg"], msg, "{data}");
    assert_eq!(scheduler["retries"], 1, "{data}");
    let passed = scheduler["passed_predicates"]
        .as_array()
        .expect("passed_predicates");
    assert!(
        passed.iter().any(|p| p["name"] == "concurrency") || name == "concurrency",
        "{data}"
    );
    let kernel_info: String = client
        .query_one(
            "SELECT coalesce(status_info, '') FROM kernels WHERE session_id = $1",
            &[&session],
        )
        .await
        .expect("reading a kernel")
        .get(0);
    assert_eq!(kernel_info, "predicate-checks-failed");
}

#[tokio::test]
async fn fifo_places_the_oldest_sessions_and_lifo_the_newest() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    resource_group(&client, "fifo-rg", "fifo", &[3]).await;
    resource_group(&client, "lifo-rg", "lifo", &[3]).await;
    let fifo = enqueue(&client, &sessions(ADMIN_AK, "fifo-rg", 5)).await;
    let lifo = enqueue(&client, &sessions(ADMIN_AK, "lifo-rg", 5)).await;
    pass(&env).await;

    assert_eq!(
        scheduled(&client, &fifo).await,
        [true, true, true, false, false]
    );
    assert_eq!(
        scheduled(&client, &lifo).await,
        [false, false, true, true, true]
    );
    for waiting in [fifo[3], fifo[4], lifo[0], lifo[1]] {
        let (status, info, data) = outcome(&client, waiting).await;
        assert_eq!(
            (status.as_str(), info.as_str()),
            ("PENDING", "no-available-instances")
        );
        assert!(
            data["scheduler"]["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("Could not find a contiguous resource region")),
            "{data}"
        );
    }
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());
}

async fn scheduled_by_keypair(
    client: &tokio_postgres::Client,
    group: &str,
    access_key: &str,
) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM sessions
              WHERE scaling_group_name = $1 AND access_key = $2 AND status = 'SCHEDULED'",
            &[&group, &access_key],
        )
        .await
        .expect("counting")
        .get(0)
}

#[tokio::test]
async fn drf_evens_out_the_dominant_shares_of_two_keypairs_where_fifo_serves_the_first() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    resource_group(&client, "drf-rg", "drf", &[8]).await;
    resource_group(&client, "fifo-rg", "fifo", &[8]).await;
    // The admin's keypair already holds 2 of the 8 cores in each group.
    enqueue(&client, &sessions(ADMIN_AK, "drf-rg", 2)).await;
    enqueue(&client, &sessions(ADMIN_AK, "fifo-rg", 2)).await;
    pass(&env).await;
    // Then both queue 6 more, the admin first.
    for group in ["drf-rg", "fifo-rg"] {
        enqueue(&client, &sessions(ADMIN_AK, group, 6)).await;
        enqueue(&client, &sessions(USER_AK, group, 6)).await;
    }
    pass(&env).await;

    // DRF: the user catches up to the admin's share, then they alternate: 4 cores each.
    assert_eq!(scheduled_by_keypair(&client, "drf-rg", ADMIN_AK).await, 4);
    assert_eq!(scheduled_by_keypair(&client, "drf-rg", USER_AK).await, 4);
    // FIFO: the admin's older sessions take every free core.
    assert_eq!(scheduled_by_keypair(&client, "fifo-rg", ADMIN_AK).await, 8);
    assert_eq!(scheduled_by_keypair(&client, "fifo-rg", USER_AK).await, 0);
    assert_eq!(over_committed_agents(&client).await, Vec::<String>::new());
}

/// Sets the `sched-test` policy columns of every keypair (SQL `SET` list).
async fn policy(client: &tokio_postgres::Client, set: &str) {
    client
        .batch_execute(&format!(
            "UPDATE keypair_resource_policies SET {set} WHERE name = 'sched-test'"
        ))
        .await
        .expect("setting the keypair policy");
}

/// Three one-core sessions of the admin onto a roomy agent: the first two are placed, and the
/// third is left for the caller to check.
async fn third_of_three(env: &TestEnv, client: &tokio_postgres::Client) -> Uuid {
    add_agents_to(client, "default", &[16]).await;
    let ids = enqueue(client, &sessions(ADMIN_AK, "default", 3)).await;
    pass(env).await;
    assert_eq!(scheduled(client, &ids[..2]).await, [true, true]);
    ids[2]
}

#[tokio::test]
async fn the_keypairs_concurrent_session_limit_keeps_the_third_session_waiting() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    policy(&client, "max_concurrent_sessions = 2").await;
    let third = third_of_three(&env, &client).await;
    assert_refused(
        &client,
        third,
        "concurrency",
        "You cannot run more than 2 concurrent sessions",
    )
    .await;
}

/// A second keypair of the admin, `AKIASECONDKEYEXAMPLE`, on a new policy `second` with the
/// given `total_resource_slots` and `default_for_unspecified`; the admin's main keypair keeps the
/// unlimited one, so only the keypair predicate (not the user one) looks at `second`.
const SECOND_AK: &str = "AKIASECONDKEYEXAMPLE";

async fn second_keypair(client: &tokio_postgres::Client, slots: &str, unspecified: &str) {
    client
        .execute(
            "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,
                max_concurrent_sessions, max_containers_per_session)
             VALUES ('second', $1::text::defaultforunspecified, $2::text::jsonb, 0, 8)",
            &[&unspecified, &slots],
        )
        .await
        .expect("adding a policy");
    client
        .execute(
            "INSERT INTO keypairs (user_id, access_key, secret_key, \"user\", resource_policy)
             SELECT user_id, $1, 'second-secret', \"user\", 'second' FROM keypairs WHERE access_key = $2",
            &[&SECOND_AK, &ADMIN_AK],
        )
        .await
        .expect("giving the admin a second keypair");
}

#[tokio::test]
async fn the_keypairs_total_resource_slots_limit_the_sessions_it_runs() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    second_keypair(&client, r#"{"cpu": "2"}"#, "UNLIMITED").await;
    add_agents_to(&client, "default", &[16]).await;
    let ids = enqueue(&client, &sessions(SECOND_AK, "default", 3)).await;
    pass(&env).await;
    assert_eq!(scheduled(&client, &ids[..2]).await, [true, true]);
    assert_refused(
        &client,
        ids[2],
        "keypair_resource_limit",
        "Your keypair resource quota is exceeded. (cpu=2 mem=Infinity)",
    )
    .await;
}

#[tokio::test]
async fn slots_a_limited_policy_leaves_out_are_zero() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    second_keypair(&client, r#"{"cpu": "4"}"#, "LIMITED").await;
    add_agents_to(&client, "default", &[16]).await;
    let ids = enqueue(&client, &sessions(SECOND_AK, "default", 1)).await;
    pass(&env).await;
    assert_refused(
        &client,
        ids[0],
        "keypair_resource_limit",
        "Your keypair resource quota is exceeded. (cpu=4 mem=0)",
    )
    .await;
}

#[tokio::test]
async fn the_users_main_keypair_policy_limits_sessions_of_its_other_keypairs() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    // The second keypair is unlimited; the admin's main keypair is limited to 2 cores.
    second_keypair(&client, "{}", "UNLIMITED").await;
    policy(&client, "total_resource_slots = '{\"cpu\": \"2\"}'").await;
    add_agents_to(&client, "default", &[16]).await;
    let ids = enqueue(&client, &sessions(SECOND_AK, "default", 3)).await;
    pass(&env).await;
    assert_eq!(scheduled(&client, &ids[..2]).await, [true, true]);
    assert_refused(
        &client,
        ids[2],
        "user_resource_limit",
        "Your main-keypair resource quota is exceeded. (cpu=2 mem=Infinity)",
    )
    .await;
}

#[tokio::test]
async fn the_projects_total_resource_slots_limit_its_sessions() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    client
        .execute(
            &format!(
                "UPDATE groups SET total_resource_slots = '{{\"cpu\": \"2\"}}' WHERE id = '{DEFAULT_GROUP}'"
            ),
            &[],
        )
        .await
        .expect("limiting the project");
    let third = third_of_three(&env, &client).await;
    assert_refused(
        &client,
        third,
        "user_group_resource_limit",
        "Your group resource quota is exceeded. (cpu=2 mem=Infinity)",
    )
    .await;
}

#[tokio::test]
async fn the_domains_total_resource_slots_limit_its_sessions() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    client
        .execute(
            "UPDATE domains SET total_resource_slots = '{\"cpu\": \"2\"}' WHERE name = 'default'",
            &[],
        )
        .await
        .expect("limiting the domain");
    let third = third_of_three(&env, &client).await;
    assert_refused(
        &client,
        third,
        "domain_resource_limit",
        "Your domain resource quota is exceeded. (cpu=2 mem=Infinity)",
    )
    .await;
}

#[tokio::test]
async fn a_resource_group_needs_the_domain_project_or_keypair_to_be_allowed_in() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    client
        .execute(
            "INSERT INTO scaling_groups (name, driver, scheduler) VALUES ('private-rg', 'static', 'fifo')",
            &[],
        )
        .await
        .expect("adding a resource group");
    add_agents_to(&client, "private-rg", &[8]).await;
    let admin = enqueue(&client, &sessions(ADMIN_AK, "private-rg", 1)).await;
    let user = enqueue(&client, &sessions(USER_AK, "private-rg", 1)).await;
    // Only the user's keypair is let in.
    client
        .execute(
            &format!(
                "INSERT INTO sgroups_for_keypairs (scaling_group, access_key) VALUES ('private-rg', '{USER_AK}')"
            ),
            &[],
        )
        .await
        .expect("allowing a keypair");
    pass(&env).await;
    assert_refused(
        &client,
        admin[0],
        "allowed_scaling_group",
        "You do not have access to the scaling group 'private-rg'.",
    )
    .await;
    assert_eq!(outcome(&client, user[0]).await.0, "SCHEDULED");

    // The project's association lets the admin in as well.
    client
        .execute(
            &format!(
                "INSERT INTO sgroups_for_groups (scaling_group, \"group\") VALUES ('private-rg', '{DEFAULT_GROUP}')"
            ),
            &[],
        )
        .await
        .expect("allowing the project");
    pass(&env).await;
    assert_eq!(outcome(&client, admin[0]).await.0, "SCHEDULED");
}

/// Five one-core sessions onto one single-core agent: the first runs, the next two wait for
/// room, and the last two are the caller's to check.
async fn five_onto_one_core(env: &TestEnv, client: &tokio_postgres::Client) -> Vec<Uuid> {
    add_agents_to(client, "default", &[1]).await;
    let ids = enqueue(client, &sessions(ADMIN_AK, "default", 5)).await;
    pass(env).await;
    assert_eq!(outcome(client, ids[0]).await.0, "SCHEDULED");
    for waiting in &ids[1..3] {
        let (status, info, _) = outcome(client, *waiting).await;
        assert_eq!(
            (status.as_str(), info.as_str()),
            ("PENDING", "no-available-instances")
        );
    }
    ids
}

#[tokio::test]
async fn only_the_oldest_pending_sessions_up_to_the_pending_count_limit_are_considered() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    policy(&client, "max_pending_session_count = 2").await;
    let ids = five_onto_one_core(&env, &client).await;
    for refused in &ids[3..] {
        assert_refused(
            &client,
            *refused,
            "pending_session_count_limit",
            "You cannot create more than 2 pending session.",
        )
        .await;
    }
}

#[tokio::test]
async fn pending_sessions_beyond_the_pending_resource_limit_wait_their_turn() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    policy(
        &client,
        "max_pending_session_resource_slots = '{\"cpu\": \"2\"}'",
    )
    .await;
    let ids = five_onto_one_core(&env, &client).await;
    for refused in &ids[3..] {
        assert_refused(
            &client,
            *refused,
            "pending_session_resource_limit",
            "Your pending session quota is exceeded. (cpu=2)",
        )
        .await;
    }
}

#[tokio::test]
async fn a_request_below_the_images_minimum_waits() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    client
        .execute(
            "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                size_bytes, resources)
             VALUES ($1, 'stable', 'stable/python', '3.9-ubuntu20.04', 'cr.backend.ai', 'x86_64',
                'sha256:0000000000000000000000000000000000000000000000000000000000000000', 1,
                '{\"cpu\": {\"min\": \"1\"}, \"mem\": {\"min\": \"2g\"}}')",
            &[&SESSION_IMAGE],
        )
        .await
        .expect("adding the image");
    add_agents_to(&client, "default", &[8]).await;
    let ids = enqueue(&client, &sessions(ADMIN_AK, "default", 1)).await;
    pass(&env).await;
    assert_refused(
        &client,
        ids[0],
        "image_resource_minimum",
        &format!(
            "The resource request is below the image's minimum. ({SESSION_IMAGE}: mem=1g < 2g)"
        ),
    )
    .await;
}

#[tokio::test]
async fn a_batch_session_waits_for_its_start_time_and_a_session_for_its_dependencies() {
    let env = TestEnv::new().await;
    let client = scheduling_world(&env).await;
    add_agents_to(&client, "default", &[8]).await;
    let ids = enqueue(&client, &sessions(ADMIN_AK, "default", 3)).await;
    let (batch, dependency, dependent) = (ids[0], ids[1], ids[2]);
    client
        .execute(
            "UPDATE sessions SET session_type = 'BATCH', starts_at = now() + interval '1 hour'
              WHERE id = $1",
            &[&batch],
        )
        .await
        .expect("reserving a start time");
    client
        .execute(
            "INSERT INTO session_dependencies (session_id, depends_on) VALUES ($1, $2)",
            &[&dependent, &dependency],
        )
        .await
        .expect("adding a dependency");
    pass(&env).await;
    assert_refused(&client, batch, "reserved_time", "Before start time").await;
    assert_eq!(outcome(&client, dependency).await.0, "SCHEDULED");
    let name: String = client
        .query_one("SELECT name FROM sessions WHERE id = $1", &[&dependency])
        .await
        .expect("reading a name")
        .get(0);
    assert_refused(
        &client,
        dependent,
        "dependencies",
        &format!("Waiting dependency sessions to finish as success. ({name} ({dependency}))"),
    )
    .await;
}
