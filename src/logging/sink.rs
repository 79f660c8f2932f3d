//! Where finished log lines go: the console and file drivers of this process, or — in a worker
//! — the pipe to the supervisor, which owns the drivers.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use super::LogLine;
use super::file::RotatingFile;
use crate::config::{LogDriver, LogFormat, LoggingSection};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open the log file {path}: {source}")]
    OpenFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Drivers {
    console: Option<(LogFormat, bool)>,
    file: Option<RotatingFile>,
    /// Set after the first failed file write, so a full disk is reported once, not per line.
    file_failed: bool,
}

/// The console and file drivers, shared by every logger of the process.
#[derive(Debug, Clone)]
pub struct DriverSink {
    drivers: Arc<Mutex<Drivers>>,
}

impl DriverSink {
    pub fn open(config: &LoggingSection) -> Result<DriverSink, SinkError> {
        let console = config.drivers.contains(&LogDriver::Console).then(|| {
            let colored = config
                .console
                .colored
                .unwrap_or_else(|| std::io::stderr().is_terminal());
            (config.console.format, colored)
        });
        let file = match (&config.file, config.drivers.contains(&LogDriver::File)) {
            (Some(file), true) => {
                let path = file.file_path();
                Some(
                    RotatingFile::open(&path, file.rotation_size, file.backup_count)
                        .map_err(|source| SinkError::OpenFile { path, source })?,
                )
            }
            _ => None,
        };
        Ok(DriverSink {
            drivers: Arc::new(Mutex::new(Drivers {
                console,
                file,
                file_failed: false,
            })),
        })
    }

    pub fn emit(&self, line: &LogLine) {
        let mut drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((format, colored)) = drivers.console {
            let text = line.to_console(format, colored);
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
        if let Some(file) = drivers.file.as_mut() {
            match file.write_line(&line.to_json()) {
                Ok(()) => drivers.file_failed = false,
                Err(error) if !drivers.file_failed => {
                    drivers.file_failed = true;
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "ERROR cannot write the log file: {error}"
                    );
                }
                Err(_) => {}
            }
        }
    }
}

/// Where this process's records go.
#[derive(Debug, Clone)]
pub enum Sink {
    Drivers(DriverSink),
    /// A worker: one JSON line per record on standard error, read by the supervisor.
    Relay,
}

impl Sink {
    pub fn emit(&self, line: &LogLine) {
        match self {
            Sink::Drivers(drivers) => drivers.emit(line),
            Sink::Relay => {
                if let Ok(json) = serde_json::to_string(line) {
                    let _ = writeln!(std::io::stderr().lock(), "{json}");
                }
            }
        }
    }
}
