//! `[logging]` of manager.toml (`ai.backend.common.logging.logging_config_iv`): the level, the
//! per-namespace levels, and the console and file drivers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Value;

use super::ConfigError;
use super::reader::Section;
use crate::logging::{LogLevel, ParseLogLevelError};

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDriver {
    /// Standard error, formatted for people.
    Console,
    /// A JSON-lines file with size-based rotation.
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `LEVEL message`.
    Simple,
    /// `time LEVEL module [pid] message`.
    Verbose,
}

#[derive(Debug, Clone)]
pub struct ConsoleLogSection {
    /// `None`: colored when standard error is a terminal.
    pub colored: Option<bool>,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct FileLogSection {
    /// The folder of the log file; created when missing.
    pub path: PathBuf,
    pub filename: String,
    /// How many rotated files (`<filename>.1` ... `.<n>`) are kept.
    pub backup_count: u32,
    /// The size in bytes at which the file is rotated.
    pub rotation_size: u64,
    pub format: LogFormat,
}

impl FileLogSection {
    pub fn file_path(&self) -> PathBuf {
        self.path.join(&self.filename)
    }
}

#[derive(Debug, Clone)]
pub struct LoggingSection {
    /// Records below this level are dropped by every driver.
    pub level: LogLevel,
    /// Level per namespace (`""` is the root); the longest matching namespace decides.
    pub pkg_ns: BTreeMap<String, LogLevel>,
    pub drivers: Vec<LogDriver>,
    pub console: ConsoleLogSection,
    /// Present when the file driver is on.
    pub file: Option<FileLogSection>,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            level: LogLevel::Info,
            pkg_ns: default_pkg_ns(),
            drivers: vec![LogDriver::Console],
            console: ConsoleLogSection {
                colored: None,
                format: LogFormat::Verbose,
            },
            file: None,
        }
    }
}

fn default_pkg_ns() -> BTreeMap<String, LogLevel> {
    BTreeMap::from([
        (String::new(), LogLevel::Warning),
        ("ai.backend".to_owned(), LogLevel::Info),
        ("tests".to_owned(), LogLevel::Debug),
    ])
}

/// The drivers the original knows; only console and file exist here.
const KNOWN_DRIVERS: &[&str] = &["console", "file", "logstash", "graylog"];

impl LoggingSection {
    pub fn read(section: &Section<'_>) -> Result<LoggingSection, ConfigError> {
        let level = level_of(section, "level", LogLevel::Info)?;
        let pkg_ns = match section.subsection("pkg-ns")? {
            None => default_pkg_ns(),
            Some(table) => {
                let mut levels = BTreeMap::new();
                for (namespace, value) in table.entries() {
                    let level = match value {
                        Value::String(text) => text.parse::<LogLevel>().map_err(|problem| {
                            table.invalid(namespace, value, &problem.to_string())
                        })?,
                        other => {
                            return Err(table.invalid(
                                namespace,
                                other,
                                &format!("must be a log level ({})", LogLevel::NAMES),
                            ));
                        }
                    };
                    levels.insert(namespace.to_owned(), level);
                }
                levels
            }
        };
        let driver_names = section.string_list("drivers", &["console"])?;
        let mut drivers = Vec::new();
        for name in &driver_names {
            let driver = match name.as_str() {
                "console" => LogDriver::Console,
                "file" => LogDriver::File,
                "logstash" | "graylog" => {
                    return Err(section.invalid(
                        "drivers",
                        &string_array(&driver_names),
                        &format!(
                            "the {name} driver is not supported by bai-manager (use \"console\" and/or \"file\", and ship the file with your log collector)"
                        ),
                    ));
                }
                _ => {
                    return Err(section.invalid(
                        "drivers",
                        &string_array(&driver_names),
                        &format!(
                            "{name:?} is not a log driver (one of {})",
                            super::reader::quoted_list(KNOWN_DRIVERS)
                        ),
                    ));
                }
            };
            if !drivers.contains(&driver) {
                drivers.push(driver);
            }
        }
        let console = match section.subsection("console")? {
            None => LoggingSection::default().console,
            Some(table) => ConsoleLogSection {
                colored: table.optional_boolean("colored")?,
                format: format_of(&table)?,
            },
        };
        let file = match section.subsection("file")? {
            None if drivers.contains(&LogDriver::File) => {
                return Err(section.missing(
                    "file",
                    "is required when drivers contains \"file\" (path and filename)",
                ));
            }
            None => None,
            Some(table) => {
                let parsed = read_file_section(&table)?;
                drivers.contains(&LogDriver::File).then_some(parsed)
            }
        };
        // Sections of drivers we do not support are accepted when not activated (the
        // upstream sample has them), so their keys are not reported as unknown.
        for unsupported in ["logstash", "graylog"] {
            if let Some(table) = section.subsection(unsupported)? {
                let _ = table.entries();
            }
        }
        Ok(LoggingSection {
            level,
            pkg_ns,
            drivers,
            console,
            file,
        })
    }
}

fn read_file_section(table: &Section<'_>) -> Result<FileLogSection, ConfigError> {
    let rotation_size = match table.raw("rotation-size") {
        None => 10 * 1024 * 1024,
        Some(value) => {
            let size = match value {
                Value::Integer(n) if *n > 0 => Some(*n as u64),
                Value::String(text) => bai_schema::slots::parse_binary_size(text)
                    .ok()
                    .filter(|n| *n > 0),
                _ => None,
            };
            size.ok_or_else(|| {
                table.invalid(
                    "rotation-size",
                    value,
                    "must be a positive size such as \"10M\", \"512K\" or a number of bytes",
                )
            })?
        }
    };
    Ok(FileLogSection {
        path: PathBuf::from(table.required_string("path")?),
        filename: table.required_string("filename")?,
        backup_count: table.int("backup-count", 5, 1..=100)? as u32,
        rotation_size,
        format: format_of(table)?,
    })
}

fn level_of(section: &Section<'_>, key: &str, default: LogLevel) -> Result<LogLevel, ConfigError> {
    match section.raw(key) {
        None => Ok(default),
        Some(value @ Value::String(text)) => text.parse().map_err(|problem: ParseLogLevelError| {
            section.invalid(key, value, &problem.to_string())
        }),
        Some(other) => Err(section.invalid(
            key,
            other,
            &format!("must be a log level ({})", LogLevel::NAMES),
        )),
    }
}

fn format_of(section: &Section<'_>) -> Result<LogFormat, ConfigError> {
    Ok(
        match section
            .choice("format", "verbose", &["simple", "verbose"])?
            .as_str()
        {
            "simple" => LogFormat::Simple,
            _ => LogFormat::Verbose,
        },
    )
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}
