//! A deadline for receiving a request body. actix-web times out a slow request head but never
//! a slow body: a client that sends one byte every few seconds would hold its connection (and
//! a file descriptor) for good. The request pipeline wraps every body in a [`DeadlinePayload`];
//! when the client has not sent the whole body in time, the handler's read fails, and the
//! pipeline answers 408 and closes the connection instead of whatever the handler made of the
//! failed read.
//!
//! "In time" is the configured timeout plus one second per [`MIN_BODY_BYTES_PER_SECOND`]
//! received, so a large upload on a modest link finishes while a trickle gains nothing.
//! WebSocket requests are not wrapped: their "body" is the connection's message stream.

use std::cell::Cell;
use std::future::Future as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage as _;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep, sleep_until};

/// How long a client may take to send a whole request body, counted from the end of its head.
/// Parameter bodies are at most 1 MiB (`params::MAX_PARAMS_BODY_BYTES`), which even a slow
/// link sends in a few seconds; file data goes to the storage proxy, not here.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Each chunk received moves the deadline on by its size at this rate: 64 KiB/s is far below
/// any link a client uses for real uploads, and far above what a slow-body attack sends.
pub const MIN_BODY_BYTES_PER_SECOND: f64 = 64.0 * 1024.0;

/// The body deadline a worker uses, as application data (`[manager] request-body-timeout`);
/// without it the pipeline uses [`DEFAULT_BODY_READ_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

impl Default for BodyReadTimeout {
    fn default() -> Self {
        BodyReadTimeout(DEFAULT_BODY_READ_TIMEOUT)
    }
}

/// Set when a request's body deadline passed while a handler waited for more of it.
#[derive(Debug, Clone, Default)]
pub struct DeadlineFlag(Rc<Cell<bool>>);

impl DeadlineFlag {
    pub fn expired(&self) -> bool {
        self.0.get()
    }
}

/// A body stream that fails with `TimedOut` once `deadline` has passed and the client has not
/// sent the rest. What arrived in time is always delivered first.
pub struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<Sleep>>,
    flag: DeadlineFlag,
    finished: bool,
}

impl DeadlinePayload {
    /// Wraps `inner`; the returned flag tells whether the deadline cut the body short.
    pub fn new(inner: Payload, timeout: Duration) -> (DeadlinePayload, DeadlineFlag) {
        let flag = DeadlineFlag::default();
        let payload = DeadlinePayload {
            inner,
            deadline: Box::pin(sleep_until(Instant::now() + timeout)),
            flag: flag.clone(),
            finished: false,
        };
        (payload, flag)
    }
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let allowance =
                    Duration::from_secs_f64(chunk.len() as f64 / MIN_BODY_BYTES_PER_SECOND);
                let later = self.deadline.deadline() + allowance;
                self.deadline.as_mut().reset(later);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    self.finished = true;
                    self.flag.0.set(true);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body did not arrive in time",
                    )))))
                }
            },
        }
    }
}

/// Replaces a request's body with a [`DeadlinePayload`]; `None` when it has no body.
pub fn wrap(
    request: &mut actix_web::dev::ServiceRequest,
    timeout: Duration,
) -> Option<DeadlineFlag> {
    if is_stream_upgrade(request.method(), request.path(), request.headers()) {
        return None;
    }
    let payload = request.take_payload();
    if matches!(payload, Payload::None) {
        return None;
    }
    let (payload, flag) = DeadlinePayload::new(payload, timeout);
    request.set_payload(Payload::Stream {
        payload: Box::pin(payload),
    });
    Some(flag)
}

/// Whether the request is a WebSocket handshake for one of the stream routes: its payload is
/// then the connection's message stream, exempt from the body deadline. Only `GET
/// /stream/...`: an `Upgrade` header elsewhere must not let a hostile client send a body as
/// slowly as it likes.
pub fn is_stream_upgrade(
    method: &actix_web::http::Method,
    path: &str,
    headers: &actix_web::http::header::HeaderMap,
) -> bool {
    method == actix_web::http::Method::GET
        && path.starts_with("/stream/")
        && is_websocket_upgrade(headers)
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`): its payload is the
/// connection's message stream for as long as the stream lives, which no body deadline fits
/// (an idle app stream or terminal would be cut when it expired).
pub fn is_websocket_upgrade(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(actix_web::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_requests_are_recognised_by_their_upgrade_header() {
        use actix_web::http::header::{HeaderMap, HeaderValue, UPGRADE};
        let mut headers = HeaderMap::new();
        assert!(!is_websocket_upgrade(&headers));
        headers.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_upgrade(&headers));
        headers.insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&headers));
    }

    #[test]
    fn only_a_get_of_a_stream_route_escapes_the_body_deadline() {
        use actix_web::http::Method;
        use actix_web::http::header::{HeaderMap, HeaderValue, UPGRADE};
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        let pty = "/stream/session/s1/pty";
        assert!(is_stream_upgrade(&Method::GET, pty, &headers));
        assert!(!is_stream_upgrade(&Method::POST, pty, &headers));
        assert!(!is_stream_upgrade(&Method::GET, "/folders", &headers));
        assert!(!is_stream_upgrade(&Method::GET, pty, &HeaderMap::new()));
    }
    use futures::StreamExt;
    use futures::channel::mpsc;

    type Chunk = Result<Bytes, PayloadError>;

    /// A body whose chunks the test sends.
    fn body() -> (mpsc::UnboundedSender<Chunk>, Payload) {
        let (sender, receiver) = mpsc::unbounded::<Chunk>();
        let stream: actix_web::dev::Payload = Payload::Stream {
            payload: Box::pin(receiver),
        };
        (sender, stream)
    }

    #[actix_web::test]
    async fn a_body_that_stops_arriving_fails_at_the_deadline_after_what_came_in_time() {
        let (sender, inner) = body();
        sender
            .unbounded_send(Ok(Bytes::from_static(b"{\"a\"")))
            .unwrap();
        let (mut payload, flag) = DeadlinePayload::new(inner, Duration::from_millis(20));
        let first = payload.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"{\"a\"");
        assert!(!flag.expired());
        let error = payload.next().await.unwrap().unwrap_err();
        assert!(
            matches!(error, PayloadError::Io(ref e) if e.kind() == std::io::ErrorKind::TimedOut)
        );
        assert!(flag.expired());
        assert!(payload.next().await.is_none());
        drop(sender);
    }

    #[actix_web::test]
    async fn data_arriving_at_a_real_rate_moves_the_deadline_on() {
        let (sender, inner) = body();
        let (mut payload, flag) = DeadlinePayload::new(inner, Duration::from_millis(50));
        let before = payload.deadline.deadline();
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        sender.unbounded_send(Ok(chunk)).unwrap();
        payload.next().await.unwrap().unwrap();
        assert_eq!(payload.deadline.deadline() - before, Duration::from_secs(1));
        assert!(!flag.expired());
    }

    #[actix_web::test]
    async fn a_complete_body_is_delivered_whole() {
        let (sender, inner) = body();
        sender
            .unbounded_send(Ok(Bytes::from_static(b"{}")))
            .unwrap();
        drop(sender);
        let (payload, flag) = DeadlinePayload::new(inner, Duration::from_secs(5));
        let chunks: Vec<_> = payload.collect().await;
        assert_eq!(chunks.len(), 1);
        assert!(!flag.expired());
    }
}
