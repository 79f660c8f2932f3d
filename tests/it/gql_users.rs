//! GraphQL users and keypairs against a real database: the CLI's list queries, the user and
//! keypair mutations with their effects, secret-key masking and per-role visibility.

use serde_json::{Value, json};

use crate::gql_support::{DOMAIN_ADMIN_AK, GqlWorld, MONITOR_AK, SUPERADMIN_AK, USER_AK, USER2_AK};

/// `backend.ai admin user list` (client 23.09.10).
const USER_LIST: &str = "query($limit:Int!, $offset:Int!, $status: String, $group_id: UUID, $filter: String, $order: String) {\n  user_list(\n      limit:$limit, offset:$offset, status:$status, group_id:$group_id, filter:$filter, order:$order) {\n    items { uuid username role email full_name need_password_change status status_info created_at domain_name groups { id name } allowed_client_ip sudo_session_enabled main_access_key }\n    total_count\n  }\n}";

/// `backend.ai admin keypair list` (client 23.09.10).
const KEYPAIR_LIST: &str = "query($limit:Int!, $offset:Int!, $is_active: Boolean, $domain_name: String, $filter: String, $order: String) {\n  keypair_list(\n      limit:$limit, offset:$offset, is_active:$is_active, domain_name:$domain_name, filter:$filter, order:$order) {\n    items { user_id projects user_info { full_name } access_key secret_key is_active is_admin created_at last_used resource_policy rate_limit concurrency_used }\n    total_count\n  }\n}";

const CREATE_USER: &str = "mutation($email: String!, $input: UserInput!) {\n    create_user(email: $email, props: $input) {\n        ok msg user {domain_name email username uuid}\n    }\n}\n";

const CREATE_KEYPAIR: &str = "mutation($user_id: String!, $input: KeyPairInput!) {  create_keypair(user_id: $user_id, props: $input) {    ok msg keypair { access_key secret_key }  }}";

fn page(extra: Value) -> Value {
    let mut variables = json!({"status": null, "group_id": null, "filter": null, "order": null, "limit": 20, "offset": 0});
    if let (Some(base), Some(extra)) = (variables.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    variables
}

fn emails(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u["email"]
                .as_str()
                .unwrap_or(u["user_id"].as_str().unwrap_or_default())
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn user_list_has_the_cli_shape() {
    let world = GqlWorld::with_fixtures().await;
    let data = world.data(SUPERADMIN_AK, USER_LIST, page(json!({}))).await;
    let list = &data["user_list"];
    assert_eq!(list["total_count"], 5);
    let admin = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "admin@lablup.com")
        .unwrap();
    let keys: Vec<&str> = admin
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "uuid",
            "username",
            "role",
            "email",
            "full_name",
            "need_password_change",
            "status",
            "status_info",
            "created_at",
            "domain_name",
            "groups",
            "allowed_client_ip",
            "sudo_session_enabled",
            "main_access_key"
        ]
    );
    assert_eq!(admin["uuid"], "f38dea23-50fa-42a0-b5ae-338f5f4693f4");
    assert_eq!(admin["role"], "superadmin");
    assert_eq!(admin["status"], "active");
    assert_eq!(admin["status_info"], "admin-requested");
    assert_eq!(
        admin["groups"],
        json!([{"id": "2de2b969-1d04-48a6-af16-0bc8adb3c831", "name": "default"}])
    );
    assert_eq!(admin["allowed_client_ip"], json!(null));
    assert_eq!(admin["main_access_key"], "AKIAIOSFODNN7EXAMPLE");

    // Filters, ordering and paging in the original's mini-languages.
    let data = world
        .data(SUPERADMIN_AK, USER_LIST, page(json!({"filter": "role == \"USER\" | role == \"monitor\"", "order": "-email", "limit": 2})))
        .await;
    assert_eq!(data["user_list"]["total_count"], 3);
    assert_eq!(
        emails(&data["user_list"]),
        ["user@lablup.com", "user2@lablup.com"]
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            USER_LIST,
            page(json!({"filter": "email ilike \"%ADMIN%\"", "order": "email", "offset": 1})),
        )
        .await;
    assert_eq!(data["user_list"]["total_count"], 2);
    assert_eq!(emails(&data["user_list"]), ["domain-admin@lablup.com"]);
    let errors = world
        .errors(
            SUPERADMIN_AK,
            USER_LIST,
            page(json!({"filter": "password == \"x\""})),
        )
        .await;
    assert!(
        errors[0].contains("unknown/unsupported field name \"password\""),
        "{errors:?}"
    );
    let errors = world
        .errors(SUPERADMIN_AK, USER_LIST, page(json!({"order": "password"})))
        .await;
    assert!(errors[0].contains("\"password\""), "{errors:?}");
}

#[tokio::test]
async fn users_are_created_modified_and_purged() {
    let world = GqlWorld::with_fixtures().await;
    // The variables the CLI sends for `admin user add`.
    let input = json!({"password": "+ld5tUhe", "role": "user", "status": "active", "need_password_change": false,
        "description": "", "domain_name": "default", "totp_activated": false, "sudo_session_enabled": false,
        "username": "smithlisa", "full_name": "Elizabeth Conley", "allowed_client_ip": null,
        "group_ids": ["2de2b969-1d04-48a6-af16-0bc8adb3c831"]});
    let data = world
        .data(
            SUPERADMIN_AK,
            CREATE_USER,
            json!({"email": "lisa@example.com", "input": input}),
        )
        .await;
    let result = &data["create_user"];
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["msg"], "success");
    assert_eq!(result["user"]["username"], "smithlisa");
    assert_eq!(result["user"]["domain_name"], "default");

    // The new user can sign in (bcrypt hash) and got a main keypair.
    let client = world.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT u.password, u.main_access_key, k.is_active, k.is_admin, k.rate_limit FROM users u \
             JOIN keypairs k ON k.access_key = u.main_access_key WHERE u.email = 'lisa@example.com'",
            &[],
        )
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(bcrypt::verify("+ld5tUhe", &hash).unwrap());
    assert!(row.get::<_, String>(1).starts_with("AKIA"));
    assert!(row.get::<_, bool>(2) && !row.get::<_, bool>(3));
    assert_eq!(row.get::<_, i32>(4), 10000);

    let data = world
        .data(
            SUPERADMIN_AK,
            USER_LIST,
            page(json!({"filter": "email == \"lisa@example.com\""})),
        )
        .await;
    let lisa = &data["user_list"]["items"][0];
    assert_eq!(lisa["full_name"], "Elizabeth Conley");
    assert_eq!(lisa["groups"][0]["name"], "default");

    let modify = "mutation($email: String!, $input: ModifyUserInput!) {\n    modify_user(email: $email, props: $input) {\n        ok msg\n    }\n}\n";
    let data = world
        .data(SUPERADMIN_AK, modify, json!({"email": "lisa@example.com", "input": {"username": "vanessa48",
            "full_name": "Ms. Shannon Matthews", "domain_name": "default", "role": "admin", "status": "inactive", "description": ""}}))
        .await;
    assert_eq!(data["modify_user"], json!({"ok": true, "msg": "success"}));
    let data = world
        .data(
            SUPERADMIN_AK,
            "query { user(email: \"lisa@example.com\") { username role status is_active } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["user"],
        json!({"username": "vanessa48", "role": "admin", "status": "inactive", "is_active": false})
    );
    // Promoted to admin: the main keypair became an admin keypair.
    let is_admin: bool = client
        .query_one("SELECT k.is_admin FROM keypairs k JOIN users u ON u.main_access_key = k.access_key WHERE u.email = 'lisa@example.com'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(is_admin);
    let data = world
        .data(
            SUPERADMIN_AK,
            modify,
            json!({"email": "nobody@example.com", "input": {"full_name": "x"}}),
        )
        .await;
    assert_eq!(
        data["modify_user"],
        json!({"ok": false, "msg": "no matching modifyuser"})
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            modify,
            json!({"email": "lisa@example.com", "input": {}}),
        )
        .await;
    assert_eq!(
        data["modify_user"],
        json!({"ok": false, "msg": "nothing to update"})
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            modify,
            json!({"email": "lisa@example.com", "input": {"status": "sleeping"}}),
        )
        .await;
    assert_eq!(data["modify_user"]["ok"], false);
    assert!(
        data["modify_user"]["msg"]
            .as_str()
            .unwrap()
            .contains("\"sleeping\"")
    );

    let data = world
        .data(
            SUPERADMIN_AK,
            "mutation { delete_user(email: \"lisa@example.com\") { ok msg } }",
            json!({}),
        )
        .await;
    assert_eq!(data["delete_user"], json!({"ok": true, "msg": "success"}));
    let data = world
        .data(
            SUPERADMIN_AK,
            "query { user(email: \"lisa@example.com\") { status } }",
            json!({}),
        )
        .await;
    assert_eq!(data["user"]["status"], "deleted");

    let purge = "mutation($email: String!, $input: PurgeUserInput!) {\n    purge_user(email: $email, props: $input) {\n        ok msg\n    }\n}\n";
    let variables = json!({"email": "lisa@example.com", "input": {"purge_shared_vfolders": false}});
    let data = world.data(SUPERADMIN_AK, purge, variables.clone()).await;
    assert_eq!(data["purge_user"], json!({"ok": true, "msg": "success"}));
    let data = world.data(SUPERADMIN_AK, purge, variables).await;
    assert_eq!(
        data["purge_user"],
        json!({"ok": false, "msg": "no matching purgeuser"})
    );
    let data = world.data(SUPERADMIN_AK, USER_LIST, page(json!({}))).await;
    assert_eq!(data["user_list"]["total_count"], 5);
    let keypairs: i64 = client
        .query_one(
            "SELECT count(*) FROM keypairs WHERE user_id = 'lisa@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keypairs, 0);
}

#[tokio::test]
async fn user_visibility_by_role() {
    let world = GqlWorld::with_fixtures().await;
    // A second domain with one user, to see that a domain admin does not see it.
    let client = world.pool.get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO domains (name) VALUES ('other');
             INSERT INTO users (email, username, domain_name, role) VALUES ('x@other.org', 'x', 'other', 'user');",
        )
        .await
        .unwrap();
    let data = world.data(SUPERADMIN_AK, USER_LIST, page(json!({}))).await;
    assert_eq!(data["user_list"]["total_count"], 6);
    let data = world.data(MONITOR_AK, USER_LIST, page(json!({}))).await;
    assert_eq!(data["user_list"]["total_count"], 6);
    let data = world
        .data(DOMAIN_ADMIN_AK, USER_LIST, page(json!({})))
        .await;
    assert_eq!(data["user_list"]["total_count"], 5);
    assert!(!emails(&data["user_list"]).contains(&"x@other.org".to_owned()));
    let errors = world
        .errors(
            DOMAIN_ADMIN_AK,
            "query { user_list(limit: 10, offset: 0, domain_name: \"other\") { total_count } }",
            json!({}),
        )
        .await;
    assert!(errors[0].contains("forbidden"), "{errors:?}");
    let errors = world.errors(USER_AK, USER_LIST, page(json!({}))).await;
    assert!(errors[0].contains("users cannot query users"), "{errors:?}");
    // A user reads itself, and not another user.
    let data = world
        .data(USER_AK, "query { user { email } }", json!({}))
        .await;
    assert_eq!(data["user"]["email"], "user@lablup.com");
    let errors = world
        .errors(
            USER_AK,
            "query { user(email: \"admin@lablup.com\") { email } }",
            json!({}),
        )
        .await;
    assert!(errors[0].contains("forbidden"), "{errors:?}");
    // Users mutations are superadmin-only.
    for access_key in [DOMAIN_ADMIN_AK, USER_AK, MONITOR_AK] {
        let data = world
            .data(
                access_key,
                CREATE_USER,
                json!({"email": "evil@example.com", "input": {"username": "evil",
                "password": "x", "need_password_change": false, "domain_name": "default"}}),
            )
            .await;
        assert_eq!(
            data["create_user"],
            json!({"ok": false, "msg": "no permission to execute create_user", "user": null})
        );
    }
}

#[tokio::test]
async fn keypair_list_masks_other_users_secrets() {
    let world = GqlWorld::with_fixtures().await;
    let variables = page(json!({"is_active": null, "domain_name": null}));
    let data = world
        .data(SUPERADMIN_AK, KEYPAIR_LIST, variables.clone())
        .await;
    let list = &data["keypair_list"];
    assert_eq!(list["total_count"], 5);
    let items = list["items"].as_array().unwrap();
    let first_keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        first_keys,
        [
            "user_id",
            "projects",
            "user_info",
            "access_key",
            "secret_key",
            "is_active",
            "is_admin",
            "created_at",
            "last_used",
            "resource_policy",
            "rate_limit",
            "concurrency_used"
        ]
    );
    // Same creation time: ordered by access key, as in the capture.
    let access_keys: Vec<&str> = items
        .iter()
        .map(|k| k["access_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        access_keys,
        [
            "AKIAHUKCHDEZGEXAMPLE",
            "AKIAIOSFODNN7EXAMPLE",
            "AKIANABBDUSEREXAMPLE",
            "AKIANAMONITOREXAMPLE",
            "AKIANATWOUSEREXAMPLE"
        ]
    );
    for keypair in items {
        assert_eq!(keypair["projects"], json!(["default"]));
        assert_eq!(keypair["resource_policy"], "default");
        assert_eq!(keypair["rate_limit"], 30000);
        assert_eq!(keypair["concurrency_used"], 0);
        if keypair["access_key"] == SUPERADMIN_AK {
            assert_eq!(
                keypair["secret_key"],
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            );
            assert_eq!(keypair["user_info"]["full_name"], "Admin Lablup");
        } else {
            assert_eq!(keypair["secret_key"], json!(null), "{keypair}");
        }
    }

    // Counters come from Redis database 0, as the original's.
    let mut redis = world.redis_stat.clone();
    let _: () = redis::cmd("SET")
        .arg(format!("keypair.concurrency_used.{USER_AK}"))
        .arg(2)
        .query_async(&mut redis)
        .await
        .unwrap();
    let data = world
        .data(
            SUPERADMIN_AK,
            KEYPAIR_LIST,
            page(json!({"filter": "email == \"user@lablup.com\""})),
        )
        .await;
    assert_eq!(data["keypair_list"]["items"][0]["concurrency_used"], 2);

    // A user sees only its own keypairs, with its own secret.
    let data = world.data(USER_AK, KEYPAIR_LIST, variables.clone()).await;
    assert_eq!(data["keypair_list"]["total_count"], 1);
    assert_eq!(
        data["keypair_list"]["items"][0]["secret_key"],
        "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf"
    );
    let errors = world
        .errors(USER_AK, "query { keypair_list(limit: 5, offset: 0, email: \"admin@lablup.com\") { total_count } }", json!({}))
        .await;
    assert!(errors[0].contains("forbidden"), "{errors:?}");
    // `keypair` with no argument is the caller's own (what `session list` asks first).
    let data = world
        .data(
            USER2_AK,
            "query {  keypair {    user_id access_key secret_key is_active is_admin  }}",
            json!({}),
        )
        .await;
    assert_eq!(
        data["keypair"],
        json!({"user_id": "user2@lablup.com", "access_key": USER2_AK, "secret_key": "P7oxTDdzHbEpUSs5v7r7EWj9yKstp8VpZ7SEyA-g", "is_active": true, "is_admin": false})
    );
    let errors = world
        .errors(
            USER2_AK,
            "query { keypair(access_key: \"AKIANABBDUSEREXAMPLE\") { access_key } }",
            json!({}),
        )
        .await;
    assert!(errors[0].contains("forbidden"), "{errors:?}");
    // The monitor reads every keypair but no secret other than its own.
    let data = world.data(MONITOR_AK, KEYPAIR_LIST, variables).await;
    let secrets: Vec<&Value> = data["keypair_list"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["secret_key"])
        .filter(|s| !s.is_null())
        .collect();
    assert_eq!(
        secrets,
        [&json!("7tuEwF1J7FfK41vOM4uSSyWCUWjPBolpVwvgkSBu")]
    );
}

#[tokio::test]
async fn keypairs_are_created_modified_and_deleted() {
    let world = GqlWorld::with_fixtures().await;
    let variables = json!({"user_id": "user@lablup.com", "input": {"is_active": false, "is_admin": true, "resource_policy": "default", "rate_limit": 25000}});
    let data = world.data(SUPERADMIN_AK, CREATE_KEYPAIR, variables).await;
    let result = &data["create_keypair"];
    assert_eq!(result["ok"], true, "{result}");
    let access_key = result["keypair"]["access_key"].as_str().unwrap().to_owned();
    let secret_key = result["keypair"]["secret_key"].as_str().unwrap().to_owned();
    assert!(access_key.starts_with("AKIA") && access_key.len() == 20);
    assert_eq!(secret_key.len(), 40);

    // Listed for the superadmin without the secret; the owner sees it.
    let filter = page(json!({"filter": format!("access_key == \"{access_key}\"")}));
    let data = world
        .data(SUPERADMIN_AK, KEYPAIR_LIST, filter.clone())
        .await;
    let listed = &data["keypair_list"]["items"][0];
    assert_eq!(listed["is_active"], false);
    assert_eq!(listed["is_admin"], true);
    assert_eq!(listed["rate_limit"], 25000);
    assert_eq!(listed["secret_key"], json!(null));
    let data = world.data(USER_AK, KEYPAIR_LIST, filter.clone()).await;
    assert_eq!(
        data["keypair_list"]["items"][0]["secret_key"],
        secret_key.as_str()
    );

    let modify = "mutation($access_key: String!, $input: ModifyKeyPairInput!) {  modify_keypair(access_key: $access_key, props: $input) {    ok msg  }}";
    let data = world
        .data(SUPERADMIN_AK, modify, json!({"access_key": access_key, "input": {"is_active": true, "is_admin": null, "resource_policy": null, "rate_limit": 100}}))
        .await;
    assert_eq!(
        data["modify_keypair"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world
        .data(SUPERADMIN_AK, KEYPAIR_LIST, filter.clone())
        .await;
    assert_eq!(data["keypair_list"]["items"][0]["is_active"], true);
    assert_eq!(data["keypair_list"]["items"][0]["rate_limit"], 100);

    let delete =
        "mutation($access_key: String!) {  delete_keypair(access_key: $access_key) {    ok msg  }}";
    // A main access key cannot be deleted.
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"access_key": USER_AK}))
        .await;
    assert_eq!(
        data["delete_keypair"],
        json!({"ok": false, "msg": "the keypair is used as main access key by any user"})
    );
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"access_key": access_key}))
        .await;
    assert_eq!(
        data["delete_keypair"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world.data(SUPERADMIN_AK, KEYPAIR_LIST, filter).await;
    assert_eq!(data["keypair_list"]["total_count"], 0);

    // An unknown user, and a caller that may not create keypairs.
    let data = world
        .data(SUPERADMIN_AK, CREATE_KEYPAIR, json!({"user_id": "ghost@example.com", "input": {"resource_policy": "default", "rate_limit": 1}}))
        .await;
    assert_eq!(data["create_keypair"]["ok"], false);
    let data = world
        .data(DOMAIN_ADMIN_AK, CREATE_KEYPAIR, json!({"user_id": "user@lablup.com", "input": {"resource_policy": "default", "rate_limit": 1}}))
        .await;
    assert_eq!(
        data["create_keypair"]["msg"],
        "no permission to execute create_keypair"
    );
}
