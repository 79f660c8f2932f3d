//! Typed, validating access to one table of manager.toml. Every error names the file, the
//! dotted key and the offending value; every key read is remembered, so the keys nobody read
//! can be reported as unknown.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{ConfigError, HostPort};

/// Which keys got their value from an environment variable: dotted key → variable name.
pub type EnvOrigins = BTreeMap<String, String>;

/// One table of the file (`[manager]`, `[logging.file]`, ...), read key by key. When dropped,
/// it adds the keys nobody read to `unread`.
pub struct Section<'a> {
    path: &'a Path,
    name: String,
    table: Option<&'a Table>,
    origins: &'a EnvOrigins,
    read: RefCell<BTreeSet<String>>,
    unread: &'a RefCell<Vec<String>>,
}

impl Drop for Section<'_> {
    fn drop(&mut self) {
        let unread = self.unread_keys();
        self.unread.borrow_mut().extend(unread);
    }
}

impl<'a> Section<'a> {
    /// The table `name` of `root`; a missing table reads as empty. A key that holds something
    /// else than a table is an error.
    pub fn of(
        path: &'a Path,
        root: &'a Table,
        name: &str,
        origins: &'a EnvOrigins,
        unread: &'a RefCell<Vec<String>>,
    ) -> Result<Section<'a>, ConfigError> {
        let table = match root.get(name) {
            None => None,
            Some(Value::Table(table)) => Some(table),
            Some(other) => {
                return Err(invalid_value(
                    path,
                    name,
                    other,
                    origins,
                    "must be a table (a [section])",
                ));
            }
        };
        Ok(Section {
            path,
            name: name.to_owned(),
            table,
            origins,
            read: RefCell::new(BTreeSet::new()),
            unread,
        })
    }

    /// The sub-table `[<this>.<key>]`, if present.
    pub fn subsection(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        match value {
            Value::Table(table) => Ok(Some(Section {
                path: self.path,
                name: self.dotted(key),
                table: Some(table),
                origins: self.origins,
                read: RefCell::new(BTreeSet::new()),
                unread: self.unread,
            })),
            other => Err(self.invalid(key, other, "must be a table (a [section])")),
        }
    }

    pub fn dotted(&self, key: &str) -> String {
        format!("{}.{}", self.name, key)
    }

    /// The raw value of `key`, marking the key as known.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.read.borrow_mut().insert(key.to_owned());
        self.table.and_then(|t| t.get(key))
    }

    /// An error about `key` holding `value`.
    pub fn invalid(&self, key: &str, value: &Value, problem: &str) -> ConfigError {
        invalid_value(self.path, &self.dotted(key), value, self.origins, problem)
    }

    /// An error about `key` being absent.
    pub fn missing(&self, key: &str, problem: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: self.dotted(key),
            value: "(missing)".to_owned(),
            problem: problem.to_owned(),
        }
    }

    /// The keys of this table that were never read, as dotted keys.
    fn unread_keys(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.table
            .map(|t| {
                t.keys()
                    .filter(|k| !read.contains(k.as_str()))
                    .map(|k| self.dotted(k))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        match self.raw(key) {
            None => Err(self.missing(key, "is required (a string)")),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(self.invalid(key, other, "must be a string")),
        }
    }

    pub fn string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self
            .optional_string(key)?
            .unwrap_or_else(|| default.to_owned()))
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.invalid(key, other, "must be a string")),
        }
    }

    /// One of `allowed`.
    pub fn choice(
        &self,
        key: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(key, default)?;
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            let raw = self.raw(key).cloned().unwrap_or(Value::String(value));
            Err(self.invalid(
                key,
                &raw,
                &format!("must be one of {}", quoted_list(allowed)),
            ))
        }
    }

    /// An integer in `range`; a string holding an integer is accepted (environment overrides
    /// are strings, and the original converts them).
    pub fn int(
        &self,
        key: &str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> Result<i64, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(default);
        };
        let number = match value {
            Value::Integer(n) => *n,
            Value::String(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| self.invalid(key, value, "must be an integer"))?,
            other => return Err(self.invalid(key, other, "must be an integer")),
        };
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(self.invalid(key, value, &range_problem(&range)))
        }
    }

    /// A number of at least `min` (an integer or a numeric string is accepted).
    pub fn float(&self, key: &str, default: f64, min: f64) -> Result<f64, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(default);
        };
        let number = match value {
            Value::Float(n) => *n,
            Value::Integer(n) => *n as f64,
            Value::String(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| self.invalid(key, value, "must be a number"))?,
            other => return Err(self.invalid(key, other, "must be a number")),
        };
        if number.is_finite() && number >= min {
            Ok(number)
        } else {
            Err(self.invalid(key, value, &format!("must be a number of at least {min}")))
        }
    }

    /// A boolean; the strings the original's `ToBool` accepts (`yes`, `no`, `1`, `0`, `on`,
    /// `off`, `true`, `false`) too.
    pub fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_boolean(key)?.unwrap_or(default))
    }

    pub fn optional_boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        match value {
            Value::Boolean(b) => Ok(Some(*b)),
            Value::Integer(1) => Ok(Some(true)),
            Value::Integer(0) => Ok(Some(false)),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "on" | "1" | "t" => Ok(Some(true)),
                "false" | "no" | "n" | "off" | "0" | "f" | "" => Ok(Some(false)),
                _ => Err(self.invalid(key, value, "must be true or false")),
            },
            other => Err(self.invalid(key, other, "must be true or false")),
        }
    }

    pub fn host_port(&self, key: &str, default: HostPort) -> Result<HostPort, ConfigError> {
        match self.raw(key) {
            None => Ok(default),
            Some(value) => HostPort::from_toml(value)
                .map_err(|problem| self.invalid(key, value, &problem.to_string())),
        }
    }

    pub fn required_host_port(&self, key: &str) -> Result<HostPort, ConfigError> {
        match self.raw(key) {
            None => Err(self.missing(
                key,
                "is required (\"host:port\", [host, port] or { host = ..., port = ... })",
            )),
            Some(value) => HostPort::from_toml(value)
                .map_err(|problem| self.invalid(key, value, &problem.to_string())),
        }
    }

    pub fn path(&self, key: &str, default: &str) -> Result<PathBuf, ConfigError> {
        Ok(PathBuf::from(self.string(key, default)?))
    }

    pub fn optional_path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.optional_string(key)?.map(PathBuf::from))
    }

    /// A list of strings.
    pub fn string_list(&self, key: &str, default: &[&str]) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .optional_string_list(key)?
            .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect()))
    }

    /// A list of strings, or a comma-separated string (the original's `ToSet` takes both).
    pub fn optional_string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(value) = self.raw(key) else {
            return Ok(None);
        };
        match value {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(self.invalid(key, value, "must be a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Value::String(text) => Ok(Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            other => Err(self.invalid(key, other, "must be a list of strings")),
        }
    }

    /// Every `key = value` pair of this table (for maps such as `[logging.pkg-ns]`), marking
    /// them all as known.
    pub fn entries(&self) -> Vec<(&'a str, &'a Value)> {
        let Some(table) = self.table else {
            return Vec::new();
        };
        let mut read = self.read.borrow_mut();
        table
            .iter()
            .map(|(k, v)| {
                read.insert(k.clone());
                (k.as_str(), v)
            })
            .collect()
    }

    pub fn is_present(&self) -> bool {
        self.table.is_some()
    }
}

/// An error about `dotted_key` holding `value`, saying where the value came from.
pub fn invalid_value(
    path: &Path,
    dotted_key: &str,
    value: &Value,
    origins: &EnvOrigins,
    problem: &str,
) -> ConfigError {
    let shown = match origins.get(dotted_key) {
        Some(var) => format!("{} (from ${var})", render(value)),
        None => render(value),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        key: dotted_key.to_owned(),
        value: shown,
        problem: problem.to_owned(),
    }
}

/// A value as it would be written in TOML, on one line.
pub fn render(value: &Value) -> String {
    match value {
        Value::Table(table) => {
            let inner: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", render(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn range_problem(range: &RangeInclusive<i64>) -> String {
    match (*range.start(), *range.end()) {
        (start, i64::MAX) => format!("must be at least {start}"),
        (start, end) => format!("must be between {start} and {end}"),
    }
}

pub fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
