//! The slog drain of every logger, and the bridge that routes the `log` crate's records (actix,
//! tokio-postgres, redis, ...) through the same filter and sink.

use std::fmt;

use chrono::Utc;
use slog::{KV, OwnedKVList, Record};

use super::filter::NamespaceFilter;
use super::sink::Sink;
use super::{LogLevel, LogLine};

/// Filters by namespace and level, turns the record into a [`LogLine`] and hands it to the sink.
pub struct LineDrain {
    pub filter: NamespaceFilter,
    pub sink: Sink,
    pub process: String,
    pub pid: u32,
}

impl slog::Drain for LineDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = LogLevel::from_slog(record.level());
        if !self.filter.allows(record.module(), level) {
            return Ok(());
        }
        let mut fields = FieldCollector(Vec::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        self.sink.emit(&LogLine {
            time: Utc::now(),
            level,
            module: record.module().to_owned(),
            pid: self.pid,
            process: self.process.clone(),
            message: record.msg().to_string(),
            fields: fields.0,
        });
        Ok(())
    }
}

/// Collects key-value pairs as strings, innermost (the record's own) first.
struct FieldCollector(Vec<(String, String)>);

impl slog::Serializer for FieldCollector {
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments<'_>) -> slog::Result {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

/// `log` crate records into the same filter and sink.
pub struct LogBridge {
    pub filter: NamespaceFilter,
    pub sink: Sink,
    pub process: String,
    pub pid: u32,
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter
            .allows(metadata.target(), LogLevel::from_log(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let module = record.module_path().unwrap_or(record.target());
        let message = record.args().to_string();
        let level = demoted_level(module, LogLevel::from_log(record.level()), &message);
        if !self.filter.allows(module, level) {
            return;
        }
        self.sink.emit(&LogLine {
            time: Utc::now(),
            level,
            module: module.to_owned(),
            pid: self.pid,
            process: self.process.clone(),
            message,
            fields: Vec::new(),
        });
    }

    fn flush(&self) {}
}

/// The module of actix-web's HTTP/1 connection handling.
const ACTIX_H1_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// The level a bridged record is logged at. actix-http logs at ERROR when a connection ends
/// with a "stream error": a malformed request head, a client that hung up mid-request. That
/// is the client's doing, which anyone can cause without credentials, and the client already
/// got its 400; at ERROR it would page an operator and flood the log. It goes to DEBUG.
fn demoted_level(module: &str, level: LogLevel, message: &str) -> LogLevel {
    if module == ACTIX_H1_DISPATCHER && message.starts_with("stream error") {
        return LogLevel::Debug;
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_stream_errors_are_not_errors_of_the_manager() {
        assert_eq!(
            demoted_level(
                ACTIX_H1_DISPATCHER,
                LogLevel::Error,
                "stream error: request parse error: invalid Header provided"
            ),
            LogLevel::Debug
        );
        assert_eq!(
            demoted_level(ACTIX_H1_DISPATCHER, LogLevel::Error, "write zero; closing"),
            LogLevel::Error
        );
        assert_eq!(
            demoted_level("bai_actors::facade", LogLevel::Error, "stream error: x"),
            LogLevel::Error
        );
    }
}
