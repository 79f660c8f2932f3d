//! One log record in a plain, owned form: what the drivers write, and what a worker process
//! sends to its supervisor (one JSON object per line) so that a single process owns the console
//! and the log file.

use std::fmt::Write as _;

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};

use super::LogLevel;
use crate::config::LogFormat;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub level: LogLevel,
    /// The Rust module path (the original's logger name).
    pub module: String,
    pub pid: u32,
    /// `supervisor`, `worker-1`, ... or `cli` (the original's processName).
    pub process: String,
    pub message: String,
    /// Structured fields, in the order they were given.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
}

/// ANSI colors per level, after the original's coloredlogs styles.
fn level_style(level: LogLevel) -> &'static str {
    match level {
        LogLevel::NotSet | LogLevel::Debug => "\x1b[32m",
        LogLevel::Info => "\x1b[96m",
        LogLevel::Warning => "\x1b[33m",
        LogLevel::Error => "\x1b[91m",
        LogLevel::Critical => "\x1b[1;97;41m",
    }
}
const DIM: &str = "\x1b[90m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

impl LogLine {
    /// The console form: `simple` is `LEVEL message`, `verbose` is
    /// `time LEVEL module [pid] message`; fields follow as `key=value`.
    pub fn to_console(&self, format: LogFormat, colored: bool) -> String {
        let (level_on, dim_on, pid_on, off) = if colored {
            (level_style(self.level), DIM, CYAN, RESET)
        } else {
            ("", "", "", "")
        };
        let mut out = String::with_capacity(96 + self.message.len());
        if format == LogFormat::Verbose {
            let local: DateTime<Local> = self.time.into();
            let _ = write!(
                out,
                "{dim_on}{}{off} ",
                local.format("%Y-%m-%d %H:%M:%S%.3f")
            );
        }
        let _ = write!(out, "{level_on}{}{off} ", self.level);
        if format == LogFormat::Verbose {
            let _ = write!(
                out,
                "{dim_on}{}{off} {pid_on}[{}]{off} ",
                self.module, self.pid
            );
        }
        out.push_str(&self.message);
        for (key, value) in &self.fields {
            let _ = write!(out, " {dim_on}{key}={off}{value}");
        }
        out
    }

    /// The file form: one JSON object with the original's keys (`timestamp`, `level`, `name`,
    /// `processName`, `message`) plus `pid` and the structured fields.
    pub fn to_json(&self) -> String {
        let mut object = serde_json::Map::new();
        object.insert(
            "timestamp".into(),
            self.time
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
                .into(),
        );
        object.insert("level".into(), self.level.as_str().into());
        object.insert("name".into(), self.module.clone().into());
        object.insert("processName".into(), self.process.clone().into());
        object.insert("pid".into(), self.pid.into());
        object.insert("message".into(), self.message.clone().into());
        for (key, value) in &self.fields {
            if !object.contains_key(key) {
                object.insert(key.clone(), value.clone().into());
            }
        }
        serde_json::Value::Object(object).to_string()
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LogLine {
        LogLine {
            time: DateTime::parse_from_rfc3339("2024-05-01T10:20:30.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            level: LogLevel::Warning,
            module: "bai_manager::server".into(),
            pid: 42,
            process: "worker-1".into(),
            message: "worker restarted".into(),
            fields: vec![("index".into(), "1".into())],
        }
    }

    #[test]
    fn console_formats_match_the_original_layout() {
        let line = sample();
        assert_eq!(
            line.to_console(LogFormat::Simple, false),
            "WARNING worker restarted index=1"
        );
        let verbose = line.to_console(LogFormat::Verbose, false);
        assert!(
            verbose.ends_with(" WARNING bai_manager::server [42] worker restarted index=1"),
            "{verbose}"
        );
        assert!(
            line.to_console(LogFormat::Simple, true)
                .contains("\x1b[33m")
        );
    }

    #[test]
    fn json_form_has_the_original_keys_and_round_trips_through_the_relay_form() {
        let line = sample();
        let json: serde_json::Value = serde_json::from_str(&line.to_json()).unwrap();
        assert_eq!(json["timestamp"], "2024-05-01T10:20:30.123456Z");
        assert_eq!(json["level"], "WARNING");
        assert_eq!(json["name"], "bai_manager::server");
        assert_eq!(json["processName"], "worker-1");
        assert_eq!(json["index"], "1");
        let relayed: LogLine =
            serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
        assert_eq!(relayed, line);
    }
}
