//! Session callbacks: a session created with a `callback_url` gets a POST of
//! `{"type": "session_lifecycle", "event": <e.g. "started">, "session_id", "when"}` for each of
//! its lifecycle events, as the original's `invoke_session_callback`. The event bus hands each
//! event to one worker of the cluster, so each callback is sent once; a failed delivery is
//! logged and not retried (the original does not retry either).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bai_schema::queries::interaction::session_callback_urls;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::{Value as Json, json};
use slog::Logger;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::event_bus::{EventBatch, EventInterest, Unhandled};
use crate::wire::{Event, SessionEvent};

/// The original's client timeout for a callback (`ClientTimeout(total=30.0)`).
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Callbacks in flight per worker; beyond this, new ones wait (a slow receiver must not make
/// the worker hold thousands of sockets).
pub const MAX_CALLBACKS_IN_FLIGHT: usize = 64;

/// The events that trigger a callback in the original.
pub const CALLBACK_EVENTS: [&str; 8] = [
    "session_enqueued",
    "session_scheduled",
    "session_preparing",
    "session_started",
    "session_cancelled",
    "session_terminated",
    "session_success",
    "session_failure",
];

pub fn interest() -> EventInterest {
    EventInterest::names(&CALLBACK_EVENTS)
}

/// The JSON body of a callback for `event_name` (e.g. `session_started`).
pub fn callback_payload(event_name: &str, session_id: Uuid, when: DateTime<Utc>) -> Json {
    json!({
        "type": "session_lifecycle",
        "event": event_name.strip_prefix("session_").unwrap_or(event_name),
        "session_id": session_id.to_string(),
        "when": when.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
    })
}

/// Only plain web URLs are called (the request parser refuses other schemes already; this
/// keeps a row written by older code from making the manager open `file:` or `unix:` URLs).
pub fn deliverable(url: &str) -> bool {
    url::Url::parse(url)
        .map(|parsed| matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some())
        .unwrap_or(false)
}

struct Shared {
    pool: Pool,
    http: reqwest::Client,
    in_flight: Semaphore,
    log: Logger,
}

pub struct SessionCallbacks {
    shared: Arc<Shared>,
}

impl SessionCallbacks {
    pub fn new(pool: Pool, log: Logger) -> SessionCallbacks {
        let http = reqwest::Client::builder()
            .timeout(CALLBACK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        SessionCallbacks {
            shared: Arc::new(Shared {
                pool,
                http,
                in_flight: Semaphore::new(MAX_CALLBACKS_IN_FLIGHT),
                log,
            }),
        }
    }
}

impl Actor for SessionCallbacks {
    type Context = Context<Self>;
}

/// The session callbacks' name in the supervision registry.
pub const ACTOR_NAME: &str = "session-callbacks";

/// No state but the shared client: a stopped actor restarts in place.
impl Supervised for SessionCallbacks {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        slog::warn!(self.shared.log, "session callbacks: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(SessionCallbacks, ACTOR_NAME);

/// Sends the callbacks of one batch's lifecycle events: one read of the URLs of the sessions
/// concerned, then one POST per event of a session that has one.
async fn deliver_batch(shared: Arc<Shared>, events: Vec<(&'static str, Uuid)>) {
    let mut sessions: Vec<Uuid> = events.iter().map(|(_, session)| *session).collect();
    sessions.sort();
    sessions.dedup();
    let urls = match shared.pool.get().await {
        Ok(client) => session_callback_urls(&client, &sessions).await,
        Err(error) => {
            slog::warn!(shared.log, "cannot read the sessions' callback URLs";
                "sessions" => sessions.len(), "error" => %error);
            return;
        }
    };
    let urls: std::collections::HashMap<Uuid, String> = match urls {
        Ok(urls) => urls.into_iter().collect(),
        Err(error) => {
            slog::warn!(shared.log, "cannot read the sessions' callback URLs";
                "sessions" => sessions.len(), "error" => %error);
            return;
        }
    };
    for (event_name, session_id) in events {
        if let Some(url) = urls.get(&session_id) {
            let shared = shared.clone();
            let url = url.clone();
            actix::spawn(async move { deliver(&shared, event_name, session_id, url).await });
        }
    }
}

async fn deliver(shared: &Shared, event_name: &'static str, session_id: Uuid, url: String) {
    if !deliverable(&url) {
        slog::warn!(shared.log, "not calling a session callback that is not an http(s) URL";
            "session" => %session_id);
        return;
    }
    let Ok(_permit) = shared.in_flight.acquire().await else {
        return;
    };
    let body = callback_payload(event_name, session_id, Utc::now());
    let sent = shared
        .http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match sent {
        Ok(response) => slog::info!(shared.log, "session callback delivered";
            "session" => %session_id, "event" => event_name, "status" => response.status().as_u16()),
        Err(error) => slog::warn!(shared.log, "session callback failed";
            "session" => %session_id, "event" => event_name, "error" => %error.without_url()),
    }
}

impl Handler<EventBatch> for SessionCallbacks {
    type Result = Result<(), Unhandled>;

    /// Deliveries run beside the actor (bounded in flight); a callback that fails is logged,
    /// not retried, as the original's.
    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        let mut events: Vec<(&'static str, Uuid)> = Vec::new();
        for received in batch.events {
            let Event::Session(SessionEvent { session_id, .. }) = &received.event else {
                continue;
            };
            let name = received.event.name();
            let Some(event_name) = CALLBACK_EVENTS.iter().find(|known| **known == name) else {
                continue;
            };
            events.push((event_name, *session_id));
        }
        if !events.is_empty() {
            actix::spawn(deliver_batch(self.shared.clone(), events));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_the_event_without_its_prefix() {
        let when = DateTime::parse_from_rfc3339("2026-12-06T01:02:03.000004Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = callback_payload("session_started", Uuid::nil(), when);
        assert_eq!(body["type"], "session_lifecycle");
        assert_eq!(body["event"], "started");
        assert_eq!(body["when"], "2026-12-06T01:02:03.000004+00:00");
        assert!(deliverable("https://example.com/hook"));
        assert!(!deliverable("file:///etc/passwd"));
        assert!(!deliverable("unix:/run/x.sock"));
    }
}
