//! The Redis keys (database `live`) the idle checkers share with the original's: activity,
//! utilization series and the per-checker reports the UI reads.

use uuid::Uuid;

use super::config::CheckerKind;

/// How long a report lives (`DEFAULT_CHECK_INTERVAL * 10` in the original).
pub const REPORT_TTL_SECS: u64 = 150;
/// The shortest life of the activity and series keys (a day, or twice the timeout).
pub const MIN_ACTIVITY_TTL_SECS: u64 = 86_400;

pub fn last_access(session_id: Uuid) -> String {
    format!("session.{session_id}.last_access")
}

pub fn active_app_connections(session_id: Uuid) -> String {
    format!("session.{session_id}.active_app_connections")
}

pub fn util_series(session_id: Uuid) -> String {
    format!("session.{session_id}.util_series")
}

pub fn util_last_collected(session_id: Uuid) -> String {
    format!("session.{session_id}.util_last_collected")
}

/// `session.{id}.{checker}.report`: the remaining seconds, msgpack-encoded.
pub fn report(session_id: Uuid, checker: CheckerKind) -> String {
    format!("session.{session_id}.{}.report", checker.name())
}

/// `session.{id}.utilization_extra`: the averages against their thresholds.
pub fn utilization_extra(session_id: Uuid) -> String {
    format!("session.{session_id}.utilization_extra")
}

/// The life of an activity or series key given the timeout it serves.
pub fn activity_ttl(timeout_secs: f64) -> u64 {
    let doubled = if timeout_secs.is_finite() && timeout_secs > 0.0 {
        (timeout_secs * 2.0) as u64
    } else {
        0
    };
    doubled.max(MIN_ACTIVITY_TTL_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_originals() {
        let id = Uuid::nil();
        assert_eq!(
            last_access(id),
            "session.00000000-0000-0000-0000-000000000000.last_access"
        );
        assert_eq!(
            report(id, CheckerKind::NetworkTimeout),
            "session.00000000-0000-0000-0000-000000000000.network_timeout.report"
        );
        assert_eq!(
            utilization_extra(id),
            "session.00000000-0000-0000-0000-000000000000.utilization_extra"
        );
        assert_eq!(activity_ttl(600.0), 86_400);
        assert_eq!(activity_ttl(100_000.0), 200_000);
    }
}
