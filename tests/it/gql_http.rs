//! `POST /admin/gql` and `POST /admin/graphql` through the façade with signed requests: the
//! response shapes, authentication, bad documents, query limits and the frozen manager.

use actix_web::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{
    ADMIN_AK, ADMIN_SK, ALL_SECRETS, ApiWorld, Signer, USER_AK, USER_SK, call, problem_type,
};

fn gql_body(query: &str, variables: Value) -> Value {
    json!({"query": query, "variables": variables})
}

#[actix_web::test]
async fn gql_answers_data_with_status_200_and_the_legacy_route_answers_data_alone() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let query = "query {  keypair {    user_id access_key secret_key is_active is_admin  }}";
    let (status, headers, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body(query, json!({}))),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("server").unwrap(), "BackendAI");
    assert!(headers.contains_key("x-ratelimit-remaining"));
    assert_eq!(
        body,
        json!({"data": {"keypair": {"user_id": "admin@lablup.com", "access_key": ADMIN_AK,
            "secret_key": ADMIN_SK, "is_active": true, "is_admin": true}}})
    );

    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/graphql",
                Some(&json!({"query": query})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keypair"]["access_key"], ADMIN_AK);

    // The legacy route turns GraphQL errors into a 400 problem with the errors as data.
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/graphql",
                Some(&json!({"query": "{ nothing }"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], problem_type("graphql-error"));
    assert!(
        body["data"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing"),
        "{body}"
    );
}

#[actix_web::test]
async fn gql_needs_a_signed_request_and_a_json_body() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    // No signature at all: the original's date check fails first.
    let request = actix_web::test::TestRequest::post()
        .uri("/admin/gql")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(gql_body("{ domains { name } }", json!({})).to_string())
        .to_request();
    let (status, _, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], problem_type("invalid-auth-params"));
    // A wrong secret.
    let forger = Signer::new(ADMIN_AK, "not-the-secret-key-of-the-admin-keypair");
    let (status, _, body) = call(
        &app,
        forger
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body("{ domains { name } }", json!({}))),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["type"], problem_type("auth-failed"));

    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/admin/gql", Some(&json!({"variables": {}})))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], problem_type("invalid-api-params"));
    assert_eq!(body["data"]["query"], "is required");
}

#[actix_web::test]
async fn bad_documents_get_graphql_errors() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let cases = [
        // A syntax error.
        (gql_body("query { domains { name }", json!({})), "expected"),
        // An unknown field.
        (
            gql_body("query { domains { name color } }", json!({})),
            "color",
        ),
        // A variable of the wrong type.
        (
            gql_body(
                "query($limit: Int!, $offset: Int!) { user_list(limit: $limit, offset: $offset) { total_count } }",
                json!({"limit": "twenty", "offset": 0}),
            ),
            "limit",
        ),
        // A variable declared with a type the argument does not take.
        (
            gql_body(
                "query($n: Int!) { domain(name: $n) { name } }",
                json!({"n": 3}),
            ),
            "argument \"name\"",
        ),
        // A filter the mini-language does not parse.
        (
            gql_body(
                "query { user_list(limit: 5, offset: 0, filter: \"email = 1\") { total_count } }",
                json!({}),
            ),
            "filter parsing error",
        ),
    ];
    for (body, expected) in cases {
        let (status, _, response) = call(
            &app,
            admin
                .request(Method::POST, "/admin/gql", Some(&body))
                .to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{response}");
        let errors = response["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors: {response}"));
        let message = errors[0]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
}

#[actix_web::test]
async fn over_deep_and_over_complex_queries_are_refused() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    // Introspection types nest without bound: a query 40 levels deep.
    let mut deep = "name".to_owned();
    for level in 0..40 {
        deep = if level % 2 == 0 {
            format!("ofType {{ {deep} }}")
        } else {
            format!("type {{ {deep} }}")
        };
    }
    let query = format!("query {{ __schema {{ types {{ fields {{ {deep} }} }} }} }}");
    let (status, _, response) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body(&query, json!({}))),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["data"], json!(null));
    let message = response["errors"][0]["message"].as_str().unwrap();
    // Refused by the front end's bracket count before the parser sees it (hostile_gql has the
    // rest of the front end's limits).
    assert!(
        message.starts_with("the GraphQL document nests brackets more than 32 levels deep"),
        "{message}"
    );

    // 600 aliased lists of one field (1,200 fields, within the front end's limits): refused by
    // complexity before any resolver runs.
    let wide: String = (0..600)
        .map(|i| format!("d{i}: domains {{ name }} "))
        .collect();
    let (_, _, response) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body(&format!("{{ {wide} }}"), json!({}))),
            )
            .to_request(),
    )
    .await;
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("complex"), "{message}");
}

#[actix_web::test]
async fn mutations_wait_while_the_manager_is_frozen() {
    let world = ApiWorld::new().await;
    world.env.etcd_put("manager/status", "frozen").await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let mutation = "mutation { delete_scaling_group(name: \"default\") { ok msg } }";
    let (status, _, response) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body(mutation, json!({}))),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        response["errors"][0]["message"],
        "The server is frozen due to maintenance. Please try again later."
    );
    // Reads still work, and the scaling group is still there.
    let (_, _, response) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/admin/gql",
                Some(&gql_body("{ scaling_groups { name } }", json!({}))),
            )
            .to_request(),
    )
    .await;
    assert_eq!(
        response["data"]["scaling_groups"],
        json!([{"name": "default"}])
    );
}

#[actix_web::test]
async fn no_response_carries_another_users_secret() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let query = "query { keypairs { access_key secret_key } keypair_list(limit: 20, offset: 0) { items { secret_key } } keypair { secret_key } }";
    for (access_key, secret_key) in [(ADMIN_AK, ADMIN_SK), (USER_AK, USER_SK)] {
        let signer = Signer::new(access_key, secret_key);
        let (_, _, response) = call(
            &app,
            signer
                .request(
                    Method::POST,
                    "/admin/gql",
                    Some(&gql_body(query, json!({}))),
                )
                .to_request(),
        )
        .await;
        assert!(response.get("errors").is_none(), "{response}");
        let text = response.to_string();
        for secret in ALL_SECRETS {
            assert_eq!(
                text.contains(secret),
                secret == secret_key,
                "{access_key}: {secret}"
            );
        }
    }
}

#[test]
fn gql_show_prints_the_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .args(["gql", "show"])
        .output()
        .expect("running bai-manager gql show");
    assert!(output.status.success());
    let sdl = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "type Queries",
        "type Mutations",
        "compute_session_list(limit: Int!, offset: Int!, filter: String, order: String, domain_name: String, group_id: String, access_key: String, status: String): ComputeSessionList",
        "create_keypair(user_id: String!, props: KeyPairInput!): CreateKeyPair!",
        "scalar JSONString",
    ] {
        assert!(sdl.contains(expected), "{expected:?} not in the schema");
    }
}
