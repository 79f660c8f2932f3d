//! The one way a test waits for a state: poll a check with a deadline, and fail naming what it
//! waited for (and what it last saw) when the deadline passes. The limit is a generous bound for
//! a state to be reached, never a speed assertion.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a check is repeated: quick enough not to slow a test down, slow enough not to load
/// the services it polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What a check answers: `true`, `Some(value)` or `Ok(value)` when the state is reached;
/// `false`, `None` or `Err(last seen)` while it is not.
pub trait Ready {
    type Value;
    /// The value once ready, or what was seen instead.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Ready for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Repeats `check` every [`POLL_INTERVAL`] until it is ready and returns its value; panics
/// naming `what` (and the last thing seen) once `limit` has passed.
pub async fn wait_for<R, F, Fut>(what: &str, limit: Duration, mut check: F) -> R::Value
where
    R: Ready,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    let deadline = Instant::now() + limit;
    loop {
        let seen = match check().await.ready() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            match seen {
                Some(seen) => {
                    panic!("gave up after {limit:?} waiting for {what}; last seen: {seen}")
                }
                None => panic!("gave up after {limit:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_kind_of_check_is_waited_for() {
        let mut calls = 0;
        let value = wait_for("the third call", Duration::from_secs(10), || {
            calls += 1;
            let ready = calls >= 3;
            async move { ready.then_some(calls) }
        })
        .await;
        assert_eq!(value, 3);
        wait_for("true", Duration::from_secs(1), || async { true }).await;
        let ok: u8 = wait_for("ok", Duration::from_secs(1), || async {
            Ok::<_, String>(7)
        })
        .await;
        assert_eq!(ok, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "gave up after 0ns waiting for never; last seen: still 1")]
    async fn a_check_that_never_holds_fails_with_what_it_saw() {
        wait_for("never", Duration::ZERO, || async {
            Err::<(), _>("still 1")
        })
        .await;
    }
}
