//! Hostile GraphQL requests (issue #13 items 1 and 2) against a real `bai-manager
//! start-server`, signed with a plain user's and the admin's keypairs: documents nesting
//! brackets thousands deep in arguments, object literals and variable defaults, variables
//! nesting deep, huge documents and bodies, fragment fan-out and cycles, on both GraphQL routes
//! and through the query-vs-mutation decision of a frozen manager. Each gets its exact error,
//! and the one worker that answered keeps serving (same pid, `GET /` answers).
//!
//! Also the GraphQL log lines (issue #16 item 9): the operation and root fields at INFO, each
//! error at WARNING with its path and message, and never a variable's value.

use std::time::Duration;

use bai_actors::facade::auth::signature::{HashAlgorithm, SignedParts, compute_signature};
use bai_testkit::TestEnv;
use serde_json::{Value, json};

use crate::api_support::{ADMIN_AK, ADMIN_SK, USER_AK, USER_SK};
use crate::manager_process::ManagerProcess;

/// How long the test waits for one answer. Generous: before the fix the fragment bomb held a
/// worker for 317 s, and a crashed worker never answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

struct Keypair {
    access_key: &'static str,
    secret_key: &'static str,
}

const USER: Keypair = Keypair {
    access_key: USER_AK,
    secret_key: USER_SK,
};
const ADMIN: Keypair = Keypair {
    access_key: ADMIN_AK,
    secret_key: ADMIN_SK,
};

struct HostileWorld {
    env: TestEnv,
    manager: ManagerProcess,
    client: reqwest::Client,
    worker: u32,
}

impl HostileWorld {
    async fn start() -> HostileWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let config = env.manager_toml("");
        let mut manager =
            ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
        manager.wait_for_port(env.service_port);
        // The supervisor listens before it forks the worker.
        manager.wait_for_output("worker 1 serving", Duration::from_secs(30));
        let workers = manager.worker_pids();
        assert_eq!(workers.len(), 1, "num-proc = 1: {workers:?}");
        let client = reqwest::Client::builder()
            .timeout(ANSWER_TIMEOUT)
            .build()
            .unwrap();
        HostileWorld {
            env,
            manager,
            client,
            worker: workers[0],
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.env.service_port)
    }

    /// A signed request as the official client signs it.
    async fn send(
        &self,
        keypair: &Keypair,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let date = chrono::Utc::now();
        let raw_date = date.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let key_date = date.format("%Y%m%d").to_string();
        let host = self.host();
        let parts = SignedParts {
            method: method.as_str(),
            path_and_query: path,
            raw_date: &raw_date,
            host: &host,
            content_type: "application/json",
            modern_version_header: true,
            version: "v6.20220615",
            key_date: &key_date,
        };
        let signature = compute_signature(keypair.secret_key, &parts, HashAlgorithm::Sha256);
        let response = self
            .client
            .request(method, format!("http://{host}{path}"))
            .header("Date", &raw_date)
            .header("Content-Type", "application/json")
            .header("X-BackendAI-Version", "v6.20220615")
            .header(
                "Authorization",
                format!(
                    "BackendAI signMethod=HMAC-SHA256, credential={}:{signature}",
                    keypair.access_key
                ),
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no answer to {path} ({e}); manager output:\n{}",
                    self.manager.output()
                )
            });
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn post(&self, keypair: &Keypair, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.post_raw(keypair, path, bytes).await
    }

    async fn post_raw(&self, keypair: &Keypair, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.send(keypair, reqwest::Method::POST, path, body).await
    }

    /// Sends `document` to both routes and checks the one error each answers with: 200 with
    /// `errors` on `/admin/gql`, 400 `graphql-error` with the errors as `data` on the legacy
    /// route. Then checks the worker.
    async fn assert_refused(
        &self,
        keypair: &Keypair,
        document: &str,
        message: &str,
        location: Option<(usize, usize)>,
    ) {
        let body = json!({"query": document});
        let expected_error = match location {
            Some((line, column)) => {
                json!({"message": message, "locations": [{"line": line, "column": column}]})
            }
            None => json!({"message": message}),
        };
        let (status, answer) = self.post(keypair, "/admin/gql", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"data": null, "errors": [expected_error.clone()]})
        );
        self.assert_still_serving().await;

        let (status, answer) = self.post(keypair, "/admin/graphql", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["type"], "https://api.backend.ai/probs/graphql-error",
            "{answer}"
        );
        assert_eq!(answer["data"], json!([expected_error]));
        self.assert_still_serving().await;
    }

    /// Sends `body` to both routes; each must answer 400 `invalid-api-params` with `msg`.
    async fn assert_bad_body(&self, keypair: &Keypair, body: Vec<u8>, msg: &str) {
        for path in ["/admin/gql", "/admin/graphql"] {
            let (status, answer) = self.post_raw(keypair, path, body.clone()).await;
            assert_eq!(status, 400, "{path}: {answer}");
            assert_eq!(
                answer["type"], "https://api.backend.ai/probs/invalid-api-params",
                "{answer}"
            );
            assert_eq!(answer["msg"], msg, "{answer}");
            self.assert_still_serving().await;
        }
    }

    /// The worker that was there at the start still is, and answers `GET /`.
    async fn assert_still_serving(&self) {
        let response = self
            .client
            .get(format!("http://{}/", self.host()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET / failed ({e}):\n{}", self.manager.output()));
        assert_eq!(response.status(), 200);
        assert_eq!(
            self.manager.worker_pids(),
            [self.worker],
            "the worker was replaced:\n{}",
            self.manager.output()
        );
    }

    /// A query that works, to show the refusals are not all a worker can say.
    async fn assert_ordinary_query_works(&self, keypair: &Keypair) {
        let (status, answer) = self
            .post(
                keypair,
                "/admin/gql",
                &json!({"query": "{ keypair_list(limit: 1, offset: 0) { total_count } }"}),
            )
            .await;
        assert_eq!(status, 200);
        assert!(answer.get("errors").is_none(), "{answer}");
        assert!(answer["data"]["keypair_list"]["total_count"].as_i64() >= Some(1));
    }
}

/// The message for brackets nesting past the limit at `line`, `column`.
fn too_deep(line: usize, column: usize) -> String {
    format!(
        "the GraphQL document nests brackets more than 32 levels deep (at line {line}, column \
         {column})"
    )
}

/// `count` fragments on the query root, each spreading the next one twice (issue #13: 30 of
/// them, 1.7 kB, held a worker for 317 s).
fn fragment_bomb(count: usize) -> String {
    let mut document = String::from("query { ...F0 }\n");
    for n in 0..count {
        document.push_str(&format!(
            "fragment F{n} on Queries {{ ...F{next} ...F{next} }}\n",
            next = n + 1
        ));
    }
    document.push_str(&format!(
        "fragment F{count} on Queries {{ keypair_list(limit: 1, offset: 0) {{ total_count }} }}\n"
    ));
    document
}

const FRAGMENT_BUDGET_MESSAGE: &str = "the GraphQL document has more than 3000 fields, fragment \
     spreads and argument values once its fragments are expanded";

#[tokio::test]
async fn hostile_documents_get_their_limit_error_and_the_worker_keeps_serving() {
    let world = HostileWorld::start().await;
    world.assert_ordinary_query_works(&USER).await;

    // 2,500 nested list brackets in an argument (the 5 kB document of the issue). `{` and `(`
    // are levels 1 and 2, so the 31st bracket is the 33rd level.
    let prefix = "{ keypair_list(limit:1, offset:0, filter: ";
    let document = format!(
        "{prefix}{}{}) {{ total_count }} }}",
        "[".repeat(2_500),
        "]".repeat(2_500)
    );
    let column = prefix.len() + 31;
    for keypair in [&USER, &ADMIN] {
        world
            .assert_refused(keypair, &document, &too_deep(1, column), Some((1, column)))
            .await;
    }

    // Nested object literals.
    let document = format!(
        "{prefix}{}1{}) {{ total_count }} }}",
        "{a: ".repeat(2_500),
        "}".repeat(2_500)
    );
    // `{a: ` is four characters a level: the 31st brace is the 33rd level.
    let column = prefix.len() + 4 * 30 + 1;
    world
        .assert_refused(&USER, &document, &too_deep(1, column), Some((1, column)))
        .await;

    // A nested variable default, on the second line (`(` is level 1).
    let prefix = "query ($f: String =\n  ";
    let document = format!(
        "{prefix}{}\"x\"{}) {{ keypair_list(limit: 1, offset: 0, filter: $f) {{ total_count }} }}",
        "[".repeat(2_500),
        "]".repeat(2_500)
    );
    world
        .assert_refused(&USER, &document, &too_deep(2, 2 + 32), Some((2, 2 + 32)))
        .await;

    // Deep selections: `{ a { a { ...` 2,500 deep.
    let document = format!("{}{}", "{ keypair_list ".repeat(2_500), "}".repeat(2_500));
    world
        .assert_refused(&USER, &document, &too_deep(1, 15 * 32 + 1), Some((1, 481)))
        .await;

    // Brackets inside strings, block strings and comments are text, not nesting.
    let document = format!(
        "{{ keypair_list(limit: 1, offset: 0, filter: \"\"\"{}\"\"\") {{ total_count }} }} # {}",
        "[".repeat(2_500),
        "{".repeat(2_500)
    );
    let (status, answer) = world
        .post(&USER, "/admin/gql", &json!({"query": document}))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("query filter parsing error"),
        "{answer}"
    );
    world.assert_still_serving().await;

    // Variables nesting 2,500 deep: refused before the JSON is parsed.
    let body = format!(
        r#"{{"query": "query ($f: String) {{ keypair_list(limit: 1, offset: 0, filter: $f) {{ total_count }} }}", "variables": {{"f": {}1{}}}}}"#,
        "[".repeat(2_500),
        "]".repeat(2_500)
    );
    world
        .assert_bad_body(
            &USER,
            body.into_bytes(),
            "the JSON body nests objects and arrays more than 32 levels deep",
        )
        .await;

    // A 100 kB document (padded with a comment), and a body over the 256 KiB cap.
    let document = format!(
        "{{ keypair_list(limit: 1, offset: 0) {{ total_count }} }}\n#{}",
        "x".repeat(100_000)
    );
    let message = format!(
        "the GraphQL document is {} bytes long, more than the limit of 65536 bytes",
        document.len()
    );
    world.assert_refused(&USER, &document, &message, None).await;
    let document = format!("{{ a }}\n#{}", "x".repeat(300_000));
    world
        .assert_bad_body(
            &USER,
            serde_json::to_vec(&json!({"query": document})).unwrap(),
            "the request body is larger than 262144 bytes",
        )
        .await;

    // Fragment fan-out: 2^30 spreads once expanded.
    let document = fragment_bomb(30);
    assert!(document.len() < 2_000, "{}", document.len());
    for keypair in [&USER, &ADMIN] {
        world
            .assert_refused(keypair, &document, FRAGMENT_BUDGET_MESSAGE, None)
            .await;
    }
    // A fragment spreading itself through another.
    let document = "query { ...A } fragment A on Queries { ...B } \
                    fragment B on Queries { keypair_list(limit: 1, offset: 0) { total_count } ...A }";
    world
        .assert_refused(
            &USER,
            document,
            "fragment \"A\" spreads itself (directly or through other fragments)",
            Some((1, 121)),
        )
        .await;
    // Fan-out within the budget still runs, once per distinct field.
    let (status, answer) = world
        .post(&USER, "/admin/gql", &json!({"query": fragment_bomb(6)}))
        .await;
    assert_eq!(status, 200);
    assert!(answer.get("errors").is_none(), "{answer}");

    world.assert_ordinary_query_works(&USER).await;
}

#[tokio::test]
async fn the_query_or_mutation_decision_of_a_frozen_manager_is_guarded_too() {
    let world = HostileWorld::start().await;
    let (status, answer) = world
        .send(
            &ADMIN,
            reqwest::Method::PUT,
            "/manager/status",
            serde_json::to_vec(&json!({"status": "frozen"})).unwrap(),
        )
        .await;
    assert_eq!(status, 204, "{answer}");

    // Frozen, the handler decides whether the document is a mutation before running it:
    // hostile documents are refused before that decision parses anything.
    let prefix = "mutation { create_domain(name: \"x\", props: {description: ";
    let document = format!(
        "{prefix}{}\"x\"{}}}) {{ ok }} }}",
        "[".repeat(2_500),
        "]".repeat(2_500)
    );
    // `{`, `(` and `{` are levels 1-3: the 30th bracket is the 33rd level.
    let column = prefix.len() + 30;
    for keypair in [&USER, &ADMIN] {
        world
            .assert_refused(keypair, &document, &too_deep(1, column), Some((1, column)))
            .await;
    }
    let document = format!(
        "mutation M {{ ...F0 }}\n{}",
        fragment_bomb(30).replace("query { ...F0 }\n", "")
    )
    .replace(" on Queries", " on Mutations");
    world
        .assert_refused(&ADMIN, &document, FRAGMENT_BUDGET_MESSAGE, None)
        .await;

    // A named mutation sent without `operationName` is still recognised as one.
    let frozen = "The server is frozen due to maintenance. Please try again later.";
    let (status, answer) = world
        .post(
            &ADMIN,
            "/admin/gql",
            &json!({"query": "mutation M { delete_scaling_group(name: \"default\") { ok } }"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["errors"][0]["message"], frozen, "{answer}");
    world.assert_still_serving().await;
    // Queries still run.
    world.assert_ordinary_query_works(&USER).await;
}

#[tokio::test]
async fn graphql_requests_are_logged_with_root_fields_and_errors_without_variable_values() {
    let world = HostileWorld::start().await;
    let secret_value = "s3cret-filter-value-7f3a";
    let (status, answer) = world
        .post(
            &USER,
            "/admin/gql",
            &json!({
                "query": "query ListKeys($f: String) { keypair_list(limit: 1, offset: 0, \
                          filter: $f) { total_count } }",
                "variables": {"f": format!("access_key == \"{secret_value}\" & no_such_field == 1")},
                "operationName": "ListKeys",
            }),
        )
        .await;
    assert_eq!(status, 200);
    let message = answer["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("unknown/unsupported field name \"no_such_field\""),
        "{answer}"
    );

    // The lines are written by the supervisor for its worker: wait for the error's.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let error_line = loop {
        let output = world.manager.output();
        if let Some(line) = output
            .lines()
            .find(|line| line.contains("graphql error"))
            .map(str::to_owned)
        {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no graphql error logged:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = world.manager.output();
    assert!(
        error_line.starts_with("WARNING graphql error"),
        "{error_line}"
    );
    for part in [
        "path=keypair_list",
        "fields=keypair_list",
        &format!("access_key={USER_AK}"),
        "error=unknown/unsupported field name \"no_such_field\"",
    ] {
        assert!(error_line.contains(part), "{part} not in {error_line}");
    }
    let request_line = output
        .lines()
        .find(|line| line.contains("ADMIN.GQL"))
        .unwrap_or_else(|| panic!("no ADMIN.GQL line:\n{output}"));
    assert!(request_line.starts_with("INFO ADMIN.GQL"), "{request_line}");
    for part in ["op=query", "operation_name=ListKeys", "fields=keypair_list"] {
        assert!(request_line.contains(part), "{part} not in {request_line}");
    }
    assert!(
        !output.contains(secret_value),
        "a variable's value was logged:\n{output}"
    );
    assert!(!output.contains(USER_SK), "a secret key was logged");
}
