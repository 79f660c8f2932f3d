//! Whether a client connection is serving a request or waiting for the next one, for the
//! worker's idle-connection watchdog. actix-web times out the head of a connection's *first*
//! request only: once a keep-alive connection has served one, a client can send the next head
//! one byte every few seconds and hold the connection for good. The worker attaches a
//! [`ConnectionActivity`] to each connection; the request pipeline marks each request busy
//! until its response body is done ([`ConnectionActivity::begin`]); the watchdog closes a
//! connection that has been between requests for longer than [`ConnectionActivity::grace`]
//! (keep-alive plus the head timeout: a well-behaved client has either sent a whole head or
//! been closed by actix by then).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;
use tokio::time::Instant;

/// The request state of one connection (lives in the connection's extensions).
#[derive(Debug)]
pub struct ConnectionActivity {
    /// Requests whose responses are not finished yet (HTTP/1 pipelining allows several).
    busy: Cell<u32>,
    /// When the connection last became idle (or was accepted).
    idle_since: Cell<Instant>,
    grace: Duration,
}

impl ConnectionActivity {
    pub fn new(grace: Duration) -> Rc<ConnectionActivity> {
        Rc::new(ConnectionActivity {
            busy: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
            grace,
        })
    }

    /// How long the connection may stay between requests.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Marks a request as started; the guard marks it finished when dropped.
    pub fn begin(self: &Rc<Self>) -> RequestInProgress {
        self.busy.set(self.busy.get() + 1);
        RequestInProgress(Rc::clone(self))
    }

    /// When the watchdog should look again: `None` when the connection has been idle past its
    /// grace and is to be closed now.
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        if self.busy.get() > 0 {
            return Some(now + self.grace);
        }
        let deadline = self.idle_since.get() + self.grace;
        (deadline > now).then_some(deadline)
    }
}

/// A request in progress on its connection.
#[derive(Debug)]
pub struct RequestInProgress(Rc<ConnectionActivity>);

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.busy.set(activity.busy.get().saturating_sub(1));
        if activity.busy.get() == 0 {
            activity.idle_since.set(Instant::now());
        }
    }
}

/// A response body that keeps its request in progress until it is sent (or dropped): a
/// streamed reply (events, WebSocket) is activity too.
pub struct TrackedBody {
    body: BoxBody,
    _request: RequestInProgress,
}

impl TrackedBody {
    pub fn new(body: BoxBody, request: RequestInProgress) -> TrackedBody {
        TrackedBody {
            body,
            _request: request,
        }
    }
}

impl MessageBody for TrackedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_connection_is_closed_only_after_its_grace_between_requests() {
        let grace = Duration::from_secs(35);
        let activity = ConnectionActivity::new(grace);
        let start = Instant::now();
        assert!(activity.next_check(start).is_some());
        assert_eq!(activity.next_check(start + grace), None);
        let request = activity.begin();
        let second = activity.begin();
        // Busy connections are never due, however long the request takes.
        assert!(activity.next_check(start + grace * 10).is_some());
        drop(request);
        assert!(activity.next_check(start + grace * 10).is_some());
        drop(second);
        let idle = activity.idle_since.get();
        assert_eq!(activity.next_check(idle), Some(idle + grace));
        assert_eq!(activity.next_check(idle + grace), None);
    }
}
