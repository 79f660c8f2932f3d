//! Logging with slog, driven by `[logging]` of manager.toml: the global level, per-namespace
//! levels (`pkg-ns`), and the console and file drivers with size-based rotation.
//!
//! With several worker processes, only the supervisor writes the console and the file: a worker
//! sends each record as one JSON line on its standard error, and the supervisor relays it
//! (the original did the same through a ZeroMQ socket), so rotation has a single writer.

mod drain;
mod file;
mod filter;
mod level;
mod line;
mod sink;

pub use file::RotatingFile;
pub use filter::NamespaceFilter;
pub use level::{LogLevel, ParseLogLevelError};
pub use line::LogLine;
pub use sink::{DriverSink, Sink, SinkError};

use slog::{Drain as _, o};

use crate::config::LoggingSection;

/// What kind of process is logging.
#[derive(Debug, Clone)]
pub enum Role {
    /// The supervisor or a CLI verb: writes the drivers itself.
    Owner { process: String },
    /// A worker process: relays every record to the supervisor.
    Worker { index: usize },
}

/// The logging of this process.
pub struct Logging {
    /// The root logger; make children with `logger.new(o!(...))`.
    pub logger: slog::Logger,
    /// The drivers, when this process owns them (to relay the workers' lines into).
    pub drivers: Option<DriverSink>,
}

/// Sets up logging for this process (once: it also installs the `log` crate bridge).
pub fn init(config: &LoggingSection, role: Role) -> Result<Logging, SinkError> {
    let filter = NamespaceFilter::new(config.level, &config.pkg_ns);
    let (sink, drivers, process) = match role {
        Role::Owner { process } => {
            let drivers = DriverSink::open(config)?;
            (Sink::Drivers(drivers.clone()), Some(drivers), process)
        }
        Role::Worker { index } => (Sink::Relay, None, format!("worker-{index}")),
    };
    let pid = std::process::id();
    let bridge = drain::LogBridge {
        filter: filter.clone(),
        sink: sink.clone(),
        process: process.clone(),
        pid,
    };
    if log::set_boxed_logger(Box::new(bridge)).is_ok() {
        log::set_max_level(filter.most_verbose().to_log_filter());
    }
    let drain = drain::LineDrain {
        filter,
        sink,
        process,
        pid,
    };
    Ok(Logging {
        logger: slog::Logger::root(drain.fuse(), o!()),
        drivers,
    })
}

/// Parses a line a worker wrote on its standard error: a relayed record, or — for anything
/// else, such as a panic message — a line of its own at ERROR level.
pub fn relayed_line(raw: &str, worker_index: usize, worker_pid: u32) -> LogLine {
    if raw.starts_with('{')
        && let Ok(line) = serde_json::from_str::<LogLine>(raw)
    {
        return line;
    }
    LogLine {
        time: chrono::Utc::now(),
        level: LogLevel::Error,
        module: "bai_manager::server::worker".to_owned(),
        pid: worker_pid,
        process: format!("worker-{worker_index}"),
        message: raw.to_owned(),
        fields: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_are_relayed_and_other_output_kept_as_errors() {
        let line = LogLine {
            time: chrono::Utc::now(),
            level: LogLevel::Info,
            module: "bai_manager::server::worker".into(),
            pid: 7,
            process: "worker-1".into(),
            message: "serving".into(),
            fields: vec![],
        };
        let raw = serde_json::to_string(&line).unwrap();
        assert_eq!(relayed_line(&raw, 1, 7), line);
        let panic = relayed_line("thread 'main' panicked at src/x.rs:1:1", 2, 9);
        assert_eq!(panic.level, LogLevel::Error);
        assert_eq!(panic.process, "worker-2");
        assert!(panic.message.contains("panicked"));
    }
}
