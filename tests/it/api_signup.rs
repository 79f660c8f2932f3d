//! `POST /auth/signup` against PostgreSQL and etcd: closed (403, no user) until etcd
//! `config/api/allow-signup` is `true`; then it creates an active user with a working keypair
//! in the domain's `default` group, refuses an existing email without writing anything, refuses
//! unknown domains and malformed emails, and never logs the password or the secret key.

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{ApiWorld, Signer, call, problem_type};

fn signup(body: &Value) -> TestRequest {
    TestRequest::post()
        .uri("/auth/signup")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(body.to_string())
}

async fn count(world: &ApiWorld, sql: &str, email: &str) -> i64 {
    world
        .db()
        .await
        .query_one(sql, &[&email])
        .await
        .unwrap()
        .get(0)
}

async fn users_with(world: &ApiWorld, email: &str) -> i64 {
    count(world, "SELECT count(*) FROM users WHERE email = $1", email).await
}

async fn keypairs_of(world: &ApiWorld, email: &str) -> i64 {
    count(
        world,
        "SELECT count(*) FROM keypairs WHERE user_id = $1",
        email,
    )
    .await
}

const PASSWORD: &str = "s3cret-Signup-pw";

#[actix_web::test]
async fn signup_is_closed_unless_etcd_allows_it() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let body = json!({"domain": "default", "email": "eve@example.com", "password": PASSWORD});
    for value in [None, Some("false"), Some("yes")] {
        if let Some(value) = value {
            world.env.etcd_put("config/api/allow-signup", value).await;
        }
        let (status, _, reply) = call(&app, signup(&body).to_request()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{value:?}: {reply}");
        assert_eq!(reply["type"], problem_type("generic-forbidden"));
        assert!(
            reply["msg"]
                .as_str()
                .unwrap_or_default()
                .contains("config/api/allow-signup"),
            "{reply}"
        );
    }
    assert_eq!(users_with(&world, "eve@example.com").await, 0);
}

#[actix_web::test]
async fn an_allowed_signup_creates_a_working_user_once() {
    let world = ApiWorld::new().await;
    world.env.etcd_put("config/api/allow-signup", "true").await;
    let app = api_app!(world);
    let email = "newbie@example.com";
    let body = json!({
        "domain": "default", "email": email, "password": PASSWORD,
        "full_name": "New Bie", "description": "signed up in a test",
    });
    let (status, _, reply) = call(&app, signup(&body).to_request()).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let access_key = reply["access_key"].as_str().unwrap().to_owned();
    let secret_key = reply["secret_key"].as_str().unwrap().to_owned();
    assert!(
        access_key.starts_with("AKIA") && access_key.len() == 20,
        "{access_key}"
    );
    assert_eq!(secret_key.len(), 40);
    assert_eq!(reply.as_object().unwrap().len(), 2, "{reply}");

    // The new keypair signs requests.
    let signer = Signer::new(&access_key, &secret_key);
    let request = signer.request(Method::GET, "/auth/role", None).to_request();
    let (status, _, roles) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    assert_eq!(
        roles,
        json!({"global_role": "user", "domain_role": "user", "group_role": null})
    );

    // The rows as the original writes them.
    let db = world.db().await;
    let user = db
        .query_one(
            "SELECT u.username, u.status::text, u.status_info, u.role::text, u.resource_policy,
                    u.need_password_change, u.full_name, u.description, u.domain_name,
                    u.main_access_key, u.password, k.is_active, k.is_admin, k.resource_policy,
                    (SELECT array_agg(g.name) FROM association_groups_users a
                       JOIN groups g ON g.id = a.group_id WHERE a.user_id = u.uuid)
               FROM users u JOIN keypairs k ON k.\"user\" = u.uuid WHERE u.email = $1",
            &[&email],
        )
        .await
        .unwrap();
    assert_eq!(user.get::<_, String>(0), email);
    assert_eq!(user.get::<_, String>(1), "active");
    assert_eq!(user.get::<_, String>(2), "user-signup");
    assert_eq!(user.get::<_, String>(3), "user");
    assert_eq!(user.get::<_, String>(4), "default");
    assert!(!user.get::<_, bool>(5));
    assert_eq!(user.get::<_, String>(6), "New Bie");
    assert_eq!(user.get::<_, String>(7), "signed up in a test");
    assert_eq!(user.get::<_, String>(8), "default");
    assert_eq!(user.get::<_, String>(9), access_key);
    let hash: String = user.get(10);
    assert!(bcrypt::verify(PASSWORD, &hash).unwrap(), "{hash}");
    assert!(user.get::<_, bool>(11));
    assert!(!user.get::<_, bool>(12));
    assert_eq!(user.get::<_, String>(13), "default");
    assert_eq!(user.get::<_, Vec<String>>(14), vec!["default".to_owned()]);

    // The same email again: 400 and nothing more written.
    let again =
        json!({"domain": "default", "email": email, "password": "other", "username": "other-name"});
    let (status, _, reply) = call(&app, signup(&again).to_request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["type"], problem_type("generic-bad-request"));
    assert_eq!(reply["msg"], "Email already exists");
    assert_eq!(users_with(&world, email).await, 1);
    assert_eq!(keypairs_of(&world, email).await, 1);
    assert_eq!(
        count(
            &world,
            "SELECT count(*) FROM users WHERE username = $1",
            "other-name"
        )
        .await,
        0
    );

    // Unknown domains, malformed emails and missing fields are refused before any write.
    for (body, needle) in [
        (
            json!({"domain": "nowhere", "email": "x@example.com", "password": PASSWORD}),
            "no such domain",
        ),
        (
            json!({"domain": "default", "email": "not-an-email", "password": PASSWORD}),
            "not an email",
        ),
        (
            json!({"domain": "default", "email": "y@example.com"}),
            "password",
        ),
    ] {
        let (status, _, reply) = call(&app, signup(&body).to_request()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_eq!(reply["type"], problem_type("invalid-api-params"), "{reply}");
        // The missing-parameter problem names the field in `data`, the others in `msg`.
        assert!(reply.to_string().contains(needle), "{needle}: {reply}");
    }
    for email in ["x@example.com", "not-an-email", "y@example.com"] {
        assert_eq!(users_with(&world, email).await, 0, "{email}");
    }

    let log = world.log.text();
    assert!(log.contains("AUTH.SIGNUP"), "{log}");
    assert!(!log.contains(PASSWORD), "the password was logged");
    assert!(!log.contains(&secret_key), "the secret key was logged");
}
