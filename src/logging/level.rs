//! Log levels as manager.toml names them (Python's `logging` names) and their slog equivalents.

use std::fmt;
use std::str::FromStr;

/// A level of `[logging] level` and `[logging.pkg-ns]`. Ordered from the most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Python's NOTSET: lets everything through.
    NotSet,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// Every name accepted in manager.toml, for error messages.
    pub const NAMES: &'static str = "NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL";

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::NotSet => "NOTSET",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }

    /// The level of a slog record. slog's TRACE is finer than DEBUG; Python has no such level,
    /// so it maps to NOTSET and only passes when the configuration says NOTSET.
    pub fn from_slog(level: slog::Level) -> LogLevel {
        match level {
            slog::Level::Trace => LogLevel::NotSet,
            slog::Level::Debug => LogLevel::Debug,
            slog::Level::Info => LogLevel::Info,
            slog::Level::Warning => LogLevel::Warning,
            slog::Level::Error => LogLevel::Error,
            slog::Level::Critical => LogLevel::Critical,
        }
    }

    /// The level of a `log` crate record (actix, tokio-postgres, ... log through it).
    pub fn from_log(level: log::Level) -> LogLevel {
        match level {
            log::Level::Trace => LogLevel::NotSet,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warning,
            log::Level::Error => LogLevel::Error,
        }
    }

    /// The most verbose `log` crate level that can pass this level, to set `log::set_max_level`.
    pub fn to_log_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::NotSet => log::LevelFilter::Trace,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Warning => log::LevelFilter::Warn,
            LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no log level (as `std`'s parse errors: a unit type with a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a log level (one of {})", LogLevel::NAMES)]
pub struct ParseLogLevelError;

impl FromStr for LogLevel {
    type Err = ParseLogLevelError;

    /// Accepts the names case-insensitively (the original upper-cases `--debug`'s level, and
    /// operators write `"info"` as often as `"INFO"`); `WARN` is accepted for `WARNING`.
    fn from_str(text: &str) -> Result<LogLevel, ParseLogLevelError> {
        match text.trim().to_ascii_uppercase().as_str() {
            "NOTSET" => Ok(LogLevel::NotSet),
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" | "WARN" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            "CRITICAL" => Ok(LogLevel::Critical),
            _ => Err(ParseLogLevelError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively_and_order_from_verbose() {
        assert_eq!("info".parse::<LogLevel>(), Ok(LogLevel::Info));
        assert_eq!("WARNING".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert!("LOUD".parse::<LogLevel>().is_err());
        assert!(LogLevel::Debug < LogLevel::Info);
        assert!(LogLevel::Critical > LogLevel::Error);
        assert_eq!(LogLevel::from_slog(slog::Level::Trace), LogLevel::NotSet);
    }
}
