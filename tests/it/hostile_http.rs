//! Issue 13.4, 13.7 and 13.9 against a running manager: slow heads and bodies are cut off
//! (408 / disconnect) while the worker keeps serving, the connection cap holds and says so in
//! the log, NUL characters anywhere are 400 `invalid-api-params` (never 500 or an ERROR line),
//! a malformed request head logs no ERROR, and `callback_url` must be http(s).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer, USER_AK, USER_SK};
use crate::hostile_paths::session_body;
use crate::hostile_support::{HostileWorld, WAIT, assert_invalid_param};

/// Short limits, so that the tests wait for seconds, not for the production defaults.
const SHORT_LIMITS: &str = "request-head-timeout = 1.0\nrequest-body-timeout = 1.0";

/// The gap between two bytes of a slow client: well within each timeout, so only the
/// whole-head or whole-body deadline can stop it.
const TRICKLE: Duration = Duration::from_millis(200);

/// Writes `head` and then `trickle` one byte at a time, [`TRICKLE`] apart, while reading
/// what the server answers; returns the answer once the server closes the connection.
async fn trickle_until_closed(addr: &str, head: &[u8], trickle: &[u8]) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    trickle_on(stream, head, trickle, WAIT).await
}

/// [`trickle_until_closed`] on an open connection, waiting up to `wait` for the close.
async fn trickle_on(stream: TcpStream, head: &[u8], trickle: &[u8], wait: Duration) -> String {
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head).await.unwrap();
    let trickle = trickle.to_vec();
    let writing = tokio::spawn(async move {
        for byte in trickle {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(TRICKLE).await;
        }
        // Then stay silent with the connection open.
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(wait, reader.read_to_end(&mut answer)).await;
    writing.abort();
    // A reset after the answer is a close too.
    assert!(
        read.is_ok(),
        "the server kept a slow connection open for {wait:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one whole response (head and `Content-Length` body) from a kept-alive connection.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end_of_head) = text.find("\r\n\r\n") {
            let length = text[..end_of_head]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end_of_head + 4 + length {
                return text;
            }
        }
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("no response")
            .unwrap();
        assert!(read > 0, "closed before a whole response: {text}");
        received.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test]
async fn slow_heads_and_bodies_are_cut_off_and_the_worker_keeps_serving() {
    let world = HostileWorld::start(SHORT_LIMITS, false).await;
    let addr = world.addr();

    // A body that would take 100 × 200 ms: 408 and closed, as an anonymous client.
    let head = b"POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let slow_body = tokio::spawn({
        let addr = addr.clone();
        async move { trickle_until_closed(&addr, head, &[b' '; 99]).await }
    });
    // A head that never ends.
    let slow_head = tokio::spawn({
        let addr = addr.clone();
        async move { trickle_until_closed(&addr, b"GET / HTTP/1.1\r\n", &b"X-Slow: y".repeat(20)).await }
    });
    // Others are served meanwhile.
    world.assert_serving().await;
    let answer = slow_body.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    let answer = slow_head.await.unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    world.assert_serving().await;

    // A body that arrives whole in time is still read.
    let reply = world
        .anonymous(
            Method::POST,
            "/auth/authorize",
            br#"{"type": "keypair", "domain": "default", "username": "nobody@x", "password": "x"}"#,
        )
        .await;
    assert_eq!(reply.0, 401, "{}", reply.1);
}

#[tokio::test]
async fn a_keep_alive_connection_cannot_trickle_its_next_head() {
    let world = HostileWorld::start(SHORT_LIMITS, false).await;
    let mut stream = TcpStream::connect(world.addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_one_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The second request's head never ends: closed after keep-alive (30 s) plus the head
    // timeout, though actix itself only times out first heads.
    let answer = trickle_on(
        stream,
        b"GET / HTTP/1.1\r\n",
        &b"X-Slow: y".repeat(100),
        Duration::from_secs(90),
    )
    .await;
    assert!(answer.is_empty(), "{answer}");
    world.assert_serving().await;
}

#[tokio::test]
async fn the_connection_cap_holds_and_is_logged() {
    let world = HostileWorld::start(
        "max-connections-per-worker = 4\nrequest-head-timeout = 60.0",
        false,
    )
    .await;
    let addr = world.addr();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    world
        .manager
        .wait_for_output("connection cap reached", WAIT);
    // A fifth client waits in the backlog: no answer while the four stay open.
    let waiting = tokio::spawn({
        let url = world.url("/");
        let http = world.http.clone();
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a connection beyond the cap was served"
    );
    drop(idle);
    let status = waiting.await.unwrap().unwrap();
    assert_eq!(status, 200);
    let warnings = world
        .log()
        .lines()
        .filter(|l| l.contains("connection cap reached"))
        .count();
    assert_eq!(warnings, 1, "the warning is rate-limited:\n{}", world.log());
}

#[tokio::test]
async fn nul_characters_are_invalid_parameters_everywhere() {
    let world = HostileWorld::start("", false).await;
    let user = Signer::new(USER_AK, USER_SK);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);

    // Anonymous login.
    let reply = world
        .anonymous(
            Method::POST,
            "/auth/authorize",
            br#"{"type": "keypair", "domain": "default", "username": "a\u0000b", "password": "x"}"#,
        )
        .await;
    assert_invalid_param(&reply, "username");
    let reply = world
        .anonymous(
            Method::POST,
            "/auth/authorize",
            br#"{"type": "keypair", "domain": "def\u0000ault", "username": "u", "password": "x"}"#,
        )
        .await;
    assert_invalid_param(&reply, "domain");

    // Query strings, path segments and JSON bodies of signed routes.
    let reply = world
        .signed(&user, Method::GET, "/auth/role?group=%00", None)
        .await;
    assert_invalid_param(&reply, "query");
    let reply = world
        .signed(&user, Method::GET, "/folders/x%00y", None)
        .await;
    assert_invalid_param(&reply, "path");
    let reply = world
        .signed(&user, Method::GET, "/auth?echo=a%00", None)
        .await;
    assert_invalid_param(&reply, "query");
    let reply = world
        .signed(
            &user,
            Method::POST,
            "/folders",
            Some(&json!({"name": "f\u{0}", "host": "local:volume1"})),
        )
        .await;
    assert_invalid_param(&reply, "name");
    let mut body = session_body("nul-session");
    body["config"]["environ"] = json!({"A": "x\u{0}y"});
    let reply = world
        .signed(&user, Method::POST, "/session", Some(&body))
        .await;
    assert_invalid_param(&reply, "config.environ.A");
    let mut body = session_body("nul\u{0}session");
    body["config"]["environ"] = json!({});
    let reply = world
        .signed(&user, Method::POST, "/session", Some(&body))
        .await;
    assert_invalid_param(&reply, "name");
    let reply = world
        .signed(
            &admin,
            Method::POST,
            "/resource/check-presets",
            Some(&json!({"scaling_group": "x\u{0}", "group": "default"})),
        )
        .await;
    assert_invalid_param(&reply, "scaling_group");

    // A GraphQL variable: a GraphQL error, not a 500.
    let reply = world
        .signed(
            &admin,
            Method::POST,
            "/admin/gql",
            Some(&json!({
                "query": "query($name: String) { domain(name: $name) { name } }",
                "variables": {"name": "de\u{0}fault"},
            })),
        )
        .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let message = reply.1["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("NUL"), "{}", reply.1);
    // The same as an escape inside the document's own string literal.
    let reply = world
        .signed(
            &admin,
            Method::POST,
            "/admin/gql",
            Some(&json!({"query": "{ domain(name: \"de\\u0000fault\") { name } }"})),
        )
        .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let message = reply.1["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("NUL"), "{}", reply.1);
    // A mutation reports it as its failure message, as it does other bad data.
    let reply = world
        .signed(
            &admin,
            Method::POST,
            "/admin/gql",
            Some(&json!({
                "query": "mutation($text: String) { create_domain(name: \"nul-text\", props: {description: $text}) { ok msg } }",
                "variables": {"text": "nul\u{0}text"},
            })),
        )
        .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let outcome = &reply.1["data"]["create_domain"];
    assert_eq!(outcome["ok"], false, "{}", reply.1);
    assert!(
        outcome["msg"].as_str().is_some_and(|m| m.contains("0x00")),
        "{}",
        reply.1
    );

    world.flush_log("after-the-nul-requests").await;
    assert_eq!(world.error_lines(), Vec::<String>::new(), "{}", world.log());
}

#[tokio::test]
async fn a_malformed_request_head_is_not_an_error_of_the_manager() {
    let world = HostileWorld::start("", false).await;
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(world.addr()).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the server kept a garbage connection open");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }
    world.flush_log("after-the-garbage").await;
    // The parse failures were seen (at DEBUG), and nothing was logged at ERROR.
    assert!(world.log().contains("stream error"), "{}", world.log());
    assert_eq!(world.error_lines(), Vec::<String>::new(), "{}", world.log());
    world.assert_serving().await;
}

#[tokio::test]
async fn callback_urls_must_be_http_or_https() {
    let world = HostileWorld::start("", false).await;
    let user = Signer::new(USER_AK, USER_SK);
    for url in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://x/y",
    ] {
        let mut body = session_body("callback-scheme");
        body["callback_url"] = json!(url);
        let reply = world
            .signed(&user, Method::POST, "/session", Some(&body))
            .await;
        let reason = assert_invalid_param(&reply, "callback_url");
        assert!(reason.contains("http"), "{url}: {reason}");
    }
    let mut body = session_body("callback-scheme");
    body["callback_url"] = json!("not a url");
    let reply = world
        .signed(&user, Method::POST, "/session", Some(&body))
        .await;
    assert_invalid_param(&reply, "callback_url");
}
