//! API rate limiting as the original: a sliding 900 s window per access key in Redis db 1
//! (a sorted set of request timestamps per key, trimmed and counted by one Lua script), the
//! limit being `keypairs.rate_limit`. Successful replies carry `X-RateLimit-*` headers;
//! anonymous requests are not counted and show `1000/1000/900`.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// The Lua script, loaded once per connection and then run by its SHA.
pub struct RateLimiter {
    script: redis::Script,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            script: redis::Script::new(SLIDING_WINDOW_LUA),
        }
    }
}

impl RateLimiter {
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
