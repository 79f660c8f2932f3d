//! Bounded property runs over everything here that reads a caller's bytes: request parameters,
//! the `Authorization` header and the signature check, the GraphQL front end (pre-scan, parse,
//! measure, then async-graphql's validation and executor), its scalars, and the filter/order
//! mini-languages. Each input must get an answer or a refusal, never a panic or a stack
//! overflow (the test threads have the 2 MiB stack of a worker thread).
//!
//! The inputs mix arbitrary text with token soups of each language, so most cases get past
//! the first character. `BAI_FUZZ_CASES` sets the cases per target (default
//! [`DEFAULT_FUZZ_CASES`], seconds in CI); run `BAI_FUZZ_CASES=100000 cargo test -p bai-actors
//! --release fuzz::` for a long run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use async_graphql::{Request, ScalarType, Variables};
use bai_schema::enums::{DefaultForUnspecified, UserRole, UserStatus};
use bai_schema::queries::keypair::{KeypairCredential, KeypairResourcePolicy, KeypairUser};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::facade::auth::credentials::CachedCredential;
use crate::facade::auth::date::{parse_request_date, request_date};
use crate::facade::auth::signature::{
    AuthorizationHeader, HashAlgorithm, SignedParts, compute_signature, signatures_match,
};
use crate::facade::auth::verify::{read_claim, verify_client_address, verify_signature};
use crate::facade::params::ApiParams;
use crate::gql::front_end::{Limits, measure, parse_document, root_fields, selected_operation};
use crate::gql::scalars::{GqlDateTime, JsonString};
use bai_schema::minilang::{
    FilterField, OrderField, compile_filter, compile_order, parse_filter, parse_order,
};
use bai_schema::queries::listing::SqlParams;

/// Cases per target when `BAI_FUZZ_CASES` is not set: each target runs in about a second.
pub const DEFAULT_FUZZ_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("BAI_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_FUZZ_CASES);
    Config {
        cases,
        // A failure is printed with its input; nothing is written into the source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Picks tokens of `vocabulary` (and now and then any text) and joins them, sometimes without
/// spaces, so that tokens also run into each other.
fn token_soup(vocabulary: &'static [&'static str], max_tokens: usize) -> BoxedStrategy<String> {
    let token = prop_oneof![
        8 => proptest::sample::select(vocabulary).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
        1 => any::<char>().prop_map(|c| c.to_string()),
    ];
    (vec(token, 0..max_tokens), any::<bool>())
        .prop_map(|(tokens, spaced)| tokens.join(if spaced { " " } else { "" }))
        .boxed()
}

/// `depth` openings of `open`, then maybe the closings: nesting far past every limit.
fn deep(open: &'static str, close: &'static str) -> BoxedStrategy<String> {
    (0usize..3_000, any::<bool>())
        .prop_map(move |(depth, closed)| {
            let mut text = open.repeat(depth);
            if closed {
                text.push_str(&close.repeat(depth));
            }
            text
        })
        .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            "\\PC{0,16}",
            proptest::sample::select(&["true", "yes", "0", "-1", "1e400", "", " 5 ", "null"][..])
                .prop_map(str::to_owned),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(40, 200, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map("[a-z_]{1,6}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Request bodies: arbitrary bytes, JSON objects of any shape, deep nesting, and valid JSON
/// with a byte changed.
fn body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..256),
        btree_map(
            proptest::sample::select(&["a", "b", "group", "limit", "config"][..]),
            json_value(),
            0..5
        )
        .prop_map(|map| serde_json::to_vec(&map).unwrap_or_default()),
        deep("[", "]").prop_map(String::into_bytes),
        deep("{\"a\":", "}").prop_map(String::into_bytes),
        (json_value(), any::<usize>(), any::<u8>()).prop_map(|(value, at, byte)| {
            let mut bytes = serde_json::to_vec(&json!({"a": value})).unwrap_or_default();
            let len = bytes.len();
            bytes[at % len] = byte;
            bytes
        }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_request_parameters(body in body(), query in "\\PC{0,64}") {
        if let Ok(params) = ApiParams::from_parts(&body, &query) {
            for key in ["a", "b", "group", "limit", "config"] {
                let keys = [key, "fallback"];
                let _ = params.opt_string(&keys);
                let _ = params.string(&keys);
                let _ = params.to_bool(&keys, false);
                let _ = params.to_int(&keys, 0, i64::MIN);
                let _ = params.to_int(&keys, 0, 1);
                let _ = params.opt_object(&keys);
                let _ = params.opt_list(&keys);
                let _ = params.has(&keys);
            }
            let _ = params.query();
        }
    }
}

const AUTHORIZATION_VOCABULARY: &[&str] = &[
    "BackendAI",
    "Sorna",
    "signMethod=HMAC-SHA256",
    "signMethod=hmac-sha1",
    "signMethod=HMAC-MD5",
    "signMethod=",
    "credential=AKIAIOSFODNN7EXAMPLE:abc",
    "credential=:",
    "credential=",
    ",",
    "=",
    ":",
    " ",
    "HMAC-SHA512",
    "-",
];

const DATE_VOCABULARY: &[&str] = &[
    "2026-12-06",
    "T",
    " ",
    "12:00:00",
    ".123456",
    "+00:00",
    "+0900",
    "-14:00",
    "Z",
    "Sun, 06 Dec 2026 12:00:00 GMT",
    "+262143-01-01",
    "9999-12-31T23:59:59+23:59",
    "20261206T120000",
    ":",
    "-",
];

fn credential(secret_key: &str, allowed_client_ip: Vec<String>) -> CachedCredential {
    CachedCredential::new(&KeypairCredential {
        access_key: "AKIAIOSFODNN7EXAMPLE".to_owned(),
        secret_key: secret_key.to_owned(),
        is_admin: false,
        rate_limit: 1000,
        user_id: Some("user@example.com".to_owned()),
        user: KeypairUser {
            uuid: uuid::Uuid::nil(),
            username: None,
            email: "user@example.com".to_owned(),
            full_name: None,
            domain_name: Some("default".to_owned()),
            role: UserRole::User,
            status: UserStatus::Active,
            allowed_client_ip,
            need_password_change: false,
            sudo_session_enabled: false,
            main_access_key: None,
            resource_policy: "default".to_owned(),
        },
        policy: KeypairResourcePolicy {
            name: "default".to_owned(),
            default_for_unspecified: DefaultForUnspecified::Unlimited,
            total_resource_slots: Default::default(),
            max_session_lifetime: 0,
            max_concurrent_sessions: 1,
            max_pending_session_count: None,
            max_pending_session_resource_slots: None,
            max_concurrent_sftp_sessions: 1,
            max_containers_per_session: 1,
            max_vfolder_count: 0,
            max_vfolder_size: 0,
            idle_timeout: 0,
            allowed_vfolder_hosts: json!({}),
        },
    })
}

/// A header value from arbitrary bytes, when HTTP allows them.
fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_authorization_header_and_sign_method(
        header in prop_oneof![token_soup(AUTHORIZATION_VOCABULARY, 12), "\\PC{0,80}"],
        sign_method in prop_oneof![token_soup(AUTHORIZATION_VOCABULARY, 4), "\\PC{0,20}"],
    ) {
        if let Ok(parsed) = AuthorizationHeader::parse(&header) {
            let _ = HashAlgorithm::from_sign_method(&parsed.sign_method);
        }
        let _ = HashAlgorithm::from_sign_method(&sign_method);
    }

    #[test]
    fn fuzz_request_dates(raw in prop_oneof![token_soup(DATE_VOCABULARY, 8), "\\PC{0,40}"]) {
        if let Some(date) = parse_request_date(&raw) {
            let _ = date.format("%Y%m%d").to_string();
        }
        if let Some(date) = request_date(|_| Some(raw.as_str())) {
            let _ = date.key_date();
            let _ = date.is_within_window(chrono::Utc::now());
        }
    }

    /// Any request's signature computed with the secret verifies, and one changed character
    /// does not; arbitrary headers give an error, not a panic.
    #[test]
    fn fuzz_signature_verification(
        secret in "\\PC{0,48}",
        method in proptest::sample::select(&["GET", "POST", "PUT", "PATCH", "DELETE"][..]),
        path in "/[a-zA-Z0-9/_.~-]{0,30}(\\?[a-z0-9=&]{0,20})?",
        host in "[a-z0-9.:-]{1,30}",
        content_type in "[a-z/+.-]{0,30}",
        version in "[a-zA-Z0-9.]{0,16}",
        sign_method in proptest::sample::select(
            &["HMAC-SHA1", "HMAC-SHA224", "hmac-sha256", "HMAC-SHA384", "HMAC-SHA512"][..]),
        tamper in any::<prop::sample::Index>(),
        extra_headers in vec(("[a-zA-Z-]{1,20}", vec(any::<u8>(), 0..40)), 0..4),
        forwarded_for in proptest::option::of("\\PC{0,40}"),
        allowed in vec("\\PC{0,20}|10\\.0\\.0\\.0/8|::1/128", 0..3),
    ) {
        let now = chrono::Utc::now();
        let raw_date = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let key_date = now.format("%Y%m%d").to_string();
        let Ok(hash) = HashAlgorithm::from_sign_method(sign_method) else {
            return Err(TestCaseError::fail("a known sign method"));
        };
        let content_type_header = if content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            content_type.clone()
        };
        let parts = SignedParts {
            method,
            path_and_query: &path,
            raw_date: &raw_date,
            host: &host,
            content_type: &content_type_header,
            modern_version_header: true,
            version: &version,
            key_date: &key_date,
        };
        let signature = compute_signature(&secret, &parts, hash);
        let mut tampered = signature.clone().into_bytes();
        let at = tamper.index(tampered.len());
        tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        prop_assert!(signatures_match(&signature, &signature));
        prop_assert!(!signatures_match(&signature, &tampered));

        for (given, should_verify) in [(&signature, true), (&tampered, false)] {
            let mut request = TestRequest::default()
                .method(method.parse().map_err(|_| TestCaseError::fail("method"))?)
                .uri(&path)
                .peer_addr(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000))
                .insert_header(("Host", host.as_str()))
                .insert_header(("Date", raw_date.as_str()))
                .insert_header(("X-BackendAI-Version", version.as_str()))
                .insert_header((
                    "Authorization",
                    format!(
                        "BackendAI signMethod={sign_method}, credential=AKIAIOSFODNN7EXAMPLE:{given}"
                    ),
                ));
            if !content_type.is_empty() {
                request = request.insert_header(("Content-Type", content_type.as_str()));
            }
            if let Some(forwarded) = forwarded_for.as_deref().and_then(|f| header_value(f.as_bytes())) {
                request = request.insert_header(("X-Forwarded-For", forwarded));
            }
            let request = request.to_http_request();
            let claim = read_claim(&request)
                .map_err(|e| TestCaseError::fail(format!("claim: {e}")))?
                .ok_or_else(|| TestCaseError::fail("no claim"))?;
            let credential = credential(&secret, allowed.clone());
            let verified = verify_signature(&request, &claim, &credential);
            prop_assert_eq!(verified.is_ok(), should_verify, "{:?}", verified);
            let _ = verify_client_address(&request, &credential);
        }

        // The same request with arbitrary extra headers (some replacing the signed ones).
        let mut request = TestRequest::default().uri(&path);
        for (name, value) in &extra_headers {
            if let (Ok(name), Some(value)) =
                (HeaderName::from_bytes(name.as_bytes()), header_value(value))
            {
                request = request.insert_header((name, value));
            }
        }
        let request = request.to_http_request();
        if let Ok(Some(claim)) = read_claim(&request) {
            let _ = verify_signature(&request, &claim, &credential(&secret, allowed.clone()));
        }
    }
}

const GRAPHQL_VOCABULARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ":",
    "=",
    "!",
    "$",
    "$v",
    "@",
    "@include(if: $v)",
    "@skip(if: true)",
    "...",
    "query",
    "mutation",
    "subscription",
    "fragment",
    "F",
    "G",
    "on",
    "Queries",
    "Mutations",
    "KeyPair",
    "String",
    "Int",
    "Boolean",
    "[String!]!",
    "keypair_list",
    "keypair",
    "domains",
    "domain",
    "name",
    "limit: 1",
    "offset: 0",
    "filter:",
    "order:",
    "total_count",
    "items",
    "access_key",
    "is_active",
    "created_at",
    "__typename",
    "__schema",
    "__type(name: \"KeyPair\")",
    "types",
    "fields",
    "ofType",
    "kind",
    "create_domain",
    "props:",
    "ok",
    "msg",
    "\"",
    "\"x\"",
    "\"\"\"",
    "\\",
    "\\u00e9",
    "#",
    "\n",
    ",",
    "1",
    "-1.5e3",
    "99999999999999999999",
    "true",
    "null",
    "RUNNING",
    "{a: 1}",
];

/// The variables a random document runs with.
fn variables() -> BoxedStrategy<Value> {
    btree_map(
        proptest::sample::select(&["v", "f", "limit", "name"][..]),
        json_value(),
        0..3,
    )
    .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Documents go through the front end; those it lets through are validated and run by the
    /// schema (resolvers have no database here and fail at once).
    #[test]
    fn fuzz_graphql_front_end(
        document in prop_oneof![
            6 => token_soup(GRAPHQL_VOCABULARY, 80),
            1 => "\\PC{0,200}",
            1 => deep("[", "]").prop_map(|d| format!("{{ keypair_list(filter: {d}) {{ total_count }} }}")),
            1 => deep("{a: ", "}").prop_map(|d| format!("{{ a(x: {d}1) }}")),
            1 => deep("{ a ", "}"),
            1 => (0usize..40).prop_map(|n| {
                let mut text = String::from("query { ...F0 }");
                for i in 0..n {
                    text.push_str(&format!(" fragment F{i} on Queries {{ ...F{j} ...F{j} }}", j = i + 1));
                }
                text.push_str(&format!(" fragment F{n} on Queries {{ __typename }}"));
                text
            }),
        ],
        variables in variables(),
        operation_name in proptest::option::of(proptest::sample::select(&["A", "B", "Q", ""][..])),
    ) {
        match parse_document(&document, Limits::SERVER) {
            Ok(parsed) => {
                prop_assert!(measure(&parsed, Limits::SERVER).is_ok());
                if let Some(operation) = selected_operation(&parsed, operation_name) {
                    let _ = root_fields(&parsed, operation);
                }
                let mut request = Request::new(document.as_str())
                    .variables(Variables::from_json(variables));
                if let Some(name) = operation_name {
                    request = request.operation_name(name);
                }
                request.set_parsed_query(parsed);
                let response = futures::executor::block_on(crate::gql::http::schema().execute(request));
                let _ = serde_json::to_value(&response);
            }
            Err(error) => prop_assert!(!error.message.is_empty()),
        }
    }

    #[test]
    fn fuzz_graphql_scalars(text in prop_oneof![
        "\\PC{0,40}",
        json_value().prop_map(|v| v.to_string()),
        deep("[", "]"),
        token_soup(DATE_VOCABULARY, 8),
    ]) {
        let _ = JsonString::parse(async_graphql::Value::String(text.clone()));
        let _ = GqlDateTime::parse(async_graphql::Value::String(text));
    }
}

const FILTER_VOCABULARY: &[&str] = &[
    "(",
    ")",
    "!",
    "&",
    "|",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "in",
    "isnot",
    "is",
    "like",
    "ilike",
    "null",
    "true",
    "false",
    "[",
    "]",
    ",",
    "\"",
    "\\",
    "\\\"",
    "\"x\"",
    "\"RUNNING\"",
    "\"2026-12-06T00:00:00Z\"",
    "\"2026-12-06\"",
    "\"%py%\"",
    "\"8c5b4f46-5d4a-4a3e-9c1e-0a1b2c3d4e5f\"",
    "1",
    "-1.5e3",
    "1e999",
    "9223372036854775808",
    ".",
    "+",
    "e",
    "access_key",
    "user_id",
    "is_active",
    "is_admin",
    "created_at",
    "last_used",
    "status",
    "name",
    "email",
    "role",
    "domain_name",
    "resource_policy",
    "rate_limit",
    "num_queries",
    "scaling_group",
    "occupied_slots",
    "cluster_size",
    "session_name",
    "image",
    "tag",
    "host",
    "usage_mode",
    "permission",
    "ownership_type",
    "addr",
    "architecture",
];

/// Every list query's declared fields: the filter and order languages are compiled against each.
fn field_sets() -> Vec<(&'static [FilterField], &'static [OrderField])> {
    vec![
        (
            bai_schema::queries::agent_list::AGENT_FILTER_FIELDS,
            bai_schema::queries::agent_list::AGENT_ORDER_FIELDS,
        ),
        (
            bai_schema::queries::keypair_list::KEYPAIR_FILTER_FIELDS,
            bai_schema::queries::keypair_list::KEYPAIR_ORDER_FIELDS,
        ),
        (
            bai_schema::queries::session_list::SESSION_FILTER_FIELDS,
            bai_schema::queries::session_list::SESSION_ORDER_FIELDS,
        ),
        (
            bai_schema::queries::user_list::USER_FILTER_FIELDS,
            bai_schema::queries::user_list::USER_ORDER_FIELDS,
        ),
        (
            bai_schema::queries::vfolder_list::VFOLDER_FILTER_FIELDS,
            bai_schema::queries::vfolder_list::VFOLDER_ORDER_FIELDS,
        ),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_filter_language(text in prop_oneof![
        6 => token_soup(FILTER_VOCABULARY, 40),
        1 => "\\PC{0,80}",
        1 => deep("(", ")").prop_map(|d| format!("{d}a == 1")),
        1 => deep("!", "").prop_map(|d| format!("{d}a == 1")),
        1 => deep("[", "]").prop_map(|d| format!("a in {d}")),
        1 => (0usize..200).prop_map(|n| vec!["is_active == true"; n + 1].join(" & ")),
    ]) {
        if let Ok(expr) = parse_filter(&text) {
            for (filter_fields, _) in field_sets() {
                let mut params = SqlParams::new();
                let _ = compile_filter(&expr, filter_fields, &mut params);
            }
        }
    }

    #[test]
    fn fuzz_order_language(text in prop_oneof![
        4 => token_soup(&["+", "-", ",", " ", "name", "created_at", "access_key", "status",
                          "email", "_", "1", "role", "scaling_group", "x"], 40),
        1 => "\\PC{0,80}",
    ]) {
        if let Ok(keys) = parse_order(&text) {
            for (_, order_fields) in field_sets() {
                let _ = compile_order(&keys, order_fields);
            }
        }
    }
}
