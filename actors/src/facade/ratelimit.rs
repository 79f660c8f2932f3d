//! API rate limiting as the original: a sliding 900 s window per access key in Redis db 1
//! (a sorted set of request timestamps per key, trimmed and counted by one Lua script), the
//! limit being `keypairs.rate_limit`. Successful replies carry `X-RateLimit-*` headers;
//! anonymous requests are not counted and show `1000/1000/900`.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use redis::aio::ConnectionManager;

/// The sliding window, in seconds (`_rlim_window` of the original).
pub const RATE_LIMIT_WINDOW_SECONDS: u64 = 900;

/// What anonymous replies announce (the original's fixed values).
pub const ANONYMOUS_LIMIT: i64 = 1000;

pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const WINDOW_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-window");

/// Records one request of KEYS[1] at ARGV[1] (seconds, ms precision) and returns how many
/// requests the key made within the last ARGV[2] seconds. Members are unique request ids from
/// a shared counter, wrapped before it grows unbounded; the keys and the counter are the
/// original's, so both implementations can share a Redis.
const SLIDING_WINDOW_LUA: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local request_id = tonumber(redis.call('INCR', '__request_id'))
if request_id >= 1e12 then
    redis.call('SET', '__request_id', 1)
end
if redis.call('EXISTS', key) == 1 then
    redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
end
redis.call('ZADD', key, now, tostring(request_id))
redis.call('EXPIRE', key, window)
return redis.call('ZCARD', key)
";

/// The counters of one request, rendered as the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    pub limit: i64,
    pub remaining: i64,
}

impl RateLimitState {
    pub const ANONYMOUS: RateLimitState = RateLimitState {
        limit: ANONYMOUS_LIMIT,
        remaining: ANONYMOUS_LIMIT,
    };

    /// The state after `count` requests in the window; `None` when the limit is exceeded.
    pub fn after(limit: i64, count: i64) -> Option<RateLimitState> {
        (count <= limit).then_some(RateLimitState {
            limit,
            remaining: limit - count,
        })
    }

    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT_HEADER, HeaderValue::from(self.limit));
        headers.insert(REMAINING_HEADER, HeaderValue::from(self.remaining));
        headers.insert(WINDOW_HEADER, HeaderValue::from(RATE_LIMIT_WINDOW_SECONDS));
    }
}

/// While Redis is away every signed request is refused; one log line per this interval (with
/// the number refused since the last one) tells the operator without a line per request.
pub const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The Lua script, loaded once per connection and then run by its SHA.
pub struct RateLimiter {
    script: redis::Script,
    /// When a refusal was last logged, and how many were refused since.
    outage_log: Mutex<(Option<Instant>, u64)>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            script: redis::Script::new(SLIDING_WINDOW_LUA),
            outage_log: Mutex::new((None, 0)),
        }
    }
}

/// Whether a refusal at `now` is logged, the last one having been logged at `last`.
fn refusal_log_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= OUTAGE_LOG_INTERVAL)
}

impl RateLimiter {
    /// Counts one request refused because Redis could not count it; `Some(refused)` (how many
    /// since the last log line, this one included) when it is time to log again.
    pub fn note_refusal(&self) -> Option<u64> {
        let mut state = match self.outage_log.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.1 += 1;
        let now = Instant::now();
        if !refusal_log_due(state.0, now) {
            return None;
        }
        let refused = state.1;
        *state = (Some(now), 0);
        Some(refused)
    }

    /// Counts one request of `access_key` and returns how many it made within the window.
    pub async fn count_request(
        &self,
        redis: &mut ConnectionManager,
        access_key: &str,
    ) -> Result<i64, redis::RedisError> {
        self.script
            .key(access_key)
            .arg(now_with_milliseconds())
            .arg(RATE_LIMIT_WINDOW_SECONDS)
            .invoke_async(redis)
            .await
    }
}

/// The current time in seconds with millisecond precision, as a decimal string.
fn now_with_milliseconds() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_down_and_the_limit_is_inclusive() {
        assert_eq!(
            RateLimitState::after(30000, 10),
            Some(RateLimitState {
                limit: 30000,
                remaining: 29990
            })
        );
        assert_eq!(
            RateLimitState::after(3, 3),
            Some(RateLimitState {
                limit: 3,
                remaining: 0
            })
        );
        assert_eq!(RateLimitState::after(3, 4), None);
    }

    #[test]
    fn refusals_are_logged_once_per_interval() {
        let start = Instant::now();
        assert!(refusal_log_due(None, start));
        assert!(!refusal_log_due(Some(start), start));
        assert!(!refusal_log_due(
            Some(start),
            start + OUTAGE_LOG_INTERVAL - Duration::from_millis(1)
        ));
        assert!(refusal_log_due(Some(start), start + OUTAGE_LOG_INTERVAL));
        let limiter = RateLimiter::default();
        assert_eq!(limiter.note_refusal(), Some(1));
        assert_eq!(limiter.note_refusal(), None);
        assert_eq!(limiter.note_refusal(), None);
    }

    #[test]
    fn headers_are_the_originals() {
        let mut headers = HeaderMap::new();
        RateLimitState::ANONYMOUS.write_headers(&mut headers);
        assert_eq!(headers.get("X-RateLimit-Limit").unwrap(), "1000");
        assert_eq!(headers.get("X-RateLimit-Remaining").unwrap(), "1000");
        assert_eq!(headers.get("X-RateLimit-Window").unwrap(), "900");
    }

    #[test]
    fn timestamps_have_millisecond_precision() {
        let now = now_with_milliseconds();
        let (seconds, millis) = now.split_once('.').unwrap();
        assert!(seconds.parse::<u64>().unwrap() > 1_700_000_000);
        assert_eq!(millis.len(), 3);
    }
}
