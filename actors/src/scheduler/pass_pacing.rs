//! How soon a requested pass may start: at least [`PASS_MIN_GAP`] after the previous one
//! started, so that the sessions enqueued (and the slots freed) meanwhile are placed together.
//!
//! Every enqueue and every ended session asks for a pass; run back to back, a pass at 100
//! sessions/s placed one or two sessions, and each pass reads the whole snapshot (agents,
//! pending sessions, usage) and writes its own reservation transaction. The gap bounds both at
//! 1 / [`PASS_MIN_GAP`] per second and adds at most the gap to a session's wait.

use std::time::{Duration, Instant};

/// The least time between the starts of two passes of one worker.
pub const PASS_MIN_GAP: Duration = Duration::from_millis(25);

/// How long a pass requested at `now` waits, the previous one having started at
/// `last_started` (zero: start now).
pub fn delay_before_pass(last_started: Option<Instant>, now: Instant, gap: Duration) -> Duration {
    match last_started {
        Some(started) => gap.saturating_sub(now.saturating_duration_since(started)),
        None => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_waits_out_the_rest_of_the_gap_and_no_more() {
        let gap = Duration::from_millis(25);
        let start = Instant::now();
        assert_eq!(delay_before_pass(None, start, gap), Duration::ZERO);
        assert_eq!(
            delay_before_pass(Some(start), start + Duration::from_millis(10), gap),
            Duration::from_millis(15)
        );
        assert_eq!(
            delay_before_pass(Some(start), start + gap, gap),
            Duration::ZERO
        );
        assert_eq!(
            delay_before_pass(Some(start), start + Duration::from_secs(3), gap),
            Duration::ZERO
        );
        // A clock read before the last start (another thread's `now`) waits the whole gap.
        assert_eq!(
            delay_before_pass(Some(start + Duration::from_millis(5)), start, gap),
            gap
        );
    }
}
