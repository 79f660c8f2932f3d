//! `[manager]` keys that bound what one client connection may hold: how long its request head
//! and body may take to arrive, and how many connections a worker keeps open at once. Without
//! them, slow clients (one byte every few seconds) hold file descriptors for good.

use std::time::Duration;

use super::ConfigError;
use super::reader::Section;

/// The default of `request-head-timeout`: actix-web's own default. A client's head is a few
/// hundred bytes, sent in one packet; 5 s covers a slow link and a TLS handshake.
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The default of `request-body-timeout` (see `bai_actors::facade::body_deadline`).
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration =
    bai_actors::facade::body_deadline::DEFAULT_BODY_READ_TIMEOUT;

/// The default of `max-connections-per-worker`. Clients keep a few keep-alive connections each
/// (the web UI, the CLI, the SDK), so a whole cluster's users stay far below it; a flood of
/// idle or slow sockets stops here instead of at the process's file limit, where accepting
/// would fail for everyone, and new database and Redis connections with it.
pub const DEFAULT_MAX_CONNECTIONS_PER_WORKER: usize = 10_000;

/// The least timeout accepted: below it a healthy client on a busy network is cut off.
const MIN_TIMEOUT_SECONDS: f64 = 0.1;

/// The largest timeout accepted: an hour is already no protection at all, and larger numbers
/// (or `1e300`) cannot become a `Duration`.
const MAX_TIMEOUT_SECONDS: f64 = 3600.0;

/// The largest connection cap accepted: far above any file descriptor limit.
const MAX_CONNECTIONS_LIMIT: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpLimits {
    /// `request-head-timeout`: the time from accepting a connection until its first request
    /// head is complete; a slower client gets 408 and is disconnected.
    pub request_head_timeout: Duration,
    /// `request-body-timeout`: the time from a complete head until the body is complete; a
    /// slower client gets 408 and is disconnected.
    pub request_body_timeout: Duration,
    /// `max-connections-per-worker`: open client connections per worker process; at the cap
    /// the worker stops accepting (logging a WARN) until connections close.
    pub max_connections_per_worker: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            max_connections_per_worker: DEFAULT_MAX_CONNECTIONS_PER_WORKER,
        }
    }
}

fn seconds(section: &Section<'_>, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let value = section.float(key, default.as_secs_f64(), MIN_TIMEOUT_SECONDS)?;
    match section.raw(key) {
        Some(raw) if value > MAX_TIMEOUT_SECONDS => Err(section.invalid(
            key,
            raw,
            &format!("must be at most {MAX_TIMEOUT_SECONDS} seconds"),
        )),
        _ => Ok(Duration::from_secs_f64(value)),
    }
}

impl HttpLimits {
    /// Reads the keys from `[manager]`.
    pub fn read(section: &Section<'_>) -> Result<HttpLimits, ConfigError> {
        let defaults = HttpLimits::default();
        Ok(HttpLimits {
            request_head_timeout: seconds(
                section,
                "request-head-timeout",
                defaults.request_head_timeout,
            )?,
            request_body_timeout: seconds(
                section,
                "request-body-timeout",
                defaults.request_body_timeout,
            )?,
            max_connections_per_worker: section.int(
                "max-connections-per-worker",
                defaults.max_connections_per_worker as i64,
                1..=MAX_CONNECTIONS_LIMIT,
            )? as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::LocalConfig;

    const MINIMAL: &str = "[etcd]\nnamespace = \"local\"\n\n[db]\naddr = \"127.0.0.1:5432\"\n\
                           name = \"backend\"\nuser = \"postgres\"\npassword = \"x\"\n";

    fn limits(manager_keys: &str) -> Result<HttpLimits, ConfigError> {
        let text = format!("{MINIMAL}\n[manager]\n{manager_keys}\n");
        LocalConfig::parse(Path::new("/etc/bai/manager.toml"), &text, &|_| None)
            .map(|config| config.manager.http_limits)
    }

    #[test]
    fn the_limits_have_defaults_and_bounds() {
        assert_eq!(limits("").unwrap(), HttpLimits::default());
        let set = limits(
            "request-head-timeout = 2\nrequest-body-timeout = 0.5\nmax-connections-per-worker = 64",
        )
        .unwrap();
        assert_eq!(set.request_head_timeout, Duration::from_secs(2));
        assert_eq!(set.request_body_timeout, Duration::from_millis(500));
        assert_eq!(set.max_connections_per_worker, 64);
        for refused in [
            "request-head-timeout = 0",
            "request-body-timeout = 1e300",
            "request-body-timeout = \"soon\"",
            "max-connections-per-worker = 0",
        ] {
            assert!(limits(refused).is_err(), "{refused}");
        }
    }
}
