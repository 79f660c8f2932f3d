//! `host:port` values, written as `"h:p"`, `[h, p]` or `{host = h, port = p}`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The forms a `host:port` value may take, for error messages.
const FORMS: &str = "must be \"host:port\", [host, port] or { host = ..., port = ... }";

/// Why a value is not a `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("{0:?} is not a host:port address")]
    NotHostPort(String),
    #[error("{0:?} is not a port number")]
    NotAPortNumber(String),
    #[error("port {0} is out of range (1-65535)")]
    PortOutOfRange(i64),
    #[error("{0:?} has an empty host")]
    EmptyHost(String),
    #[error("{FORMS}: the port must be a number")]
    PortNotANumber,
    #[error("{FORMS}: the host must be a non-empty string")]
    HostNotAString,
    #[error("{FORMS}: unexpected key {0:?}")]
    UnexpectedKey(String),
    #[error("{FORMS}: {0} is missing")]
    Missing(&'static str),
    #[error("{FORMS}")]
    OtherForm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    /// Parses `"host:port"`, splitting at the last `:`; IPv6 brackets are stripped.
    pub fn parse(text: &str) -> Result<HostPort, HostPortError> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| HostPortError::NotHostPort(text.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = parse_port(
            port.parse::<i64>()
                .map_err(|_| HostPortError::NotAPortNumber(port.to_owned()))?,
        )?;
        if host.is_empty() {
            return Err(HostPortError::EmptyHost(text.to_owned()));
        }
        Ok(HostPort::new(host, port))
    }

    /// Reads any of the three TOML forms.
    pub fn from_toml(value: &toml::Value) -> Result<HostPort, HostPortError> {
        use toml::Value;
        let port_of = |value: &Value| -> Result<u16, HostPortError> {
            match value {
                Value::Integer(port) => parse_port(*port),
                Value::String(text) => parse_port(
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| HostPortError::NotAPortNumber(text.clone()))?,
                ),
                _ => Err(HostPortError::PortNotANumber),
            }
        };
        let host_of = |value: &Value| -> Result<String, HostPortError> {
            match value {
                Value::String(host) if !host.trim().is_empty() => Ok(host
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()),
                _ => Err(HostPortError::HostNotAString),
            }
        };
        match value {
            Value::String(text) => HostPort::parse(text),
            Value::Array(items) => match items.as_slice() {
                [host, port] => Ok(HostPort {
                    host: host_of(host)?,
                    port: port_of(port)?,
                }),
                _ => Err(HostPortError::OtherForm),
            },
            Value::Table(table) => {
                if let Some(extra) = table.keys().find(|k| *k != "host" && *k != "port") {
                    return Err(HostPortError::UnexpectedKey(extra.clone()));
                }
                let host = table.get("host").ok_or(HostPortError::Missing("host"))?;
                let port = table.get("port").ok_or(HostPortError::Missing("port"))?;
                Ok(HostPort {
                    host: host_of(host)?,
                    port: port_of(port)?,
                })
            }
            _ => Err(HostPortError::OtherForm),
        }
    }
}

fn parse_port(port: i64) -> Result<u16, HostPortError> {
    u16::try_from(port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or(HostPortError::PortOutOfRange(port))
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HostPortVisitor;
        impl<'de> Visitor<'de> for HostPortVisitor {
            type Value = HostPort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\", [host, port] or {host, port}")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HostPort, E> {
                HostPort::parse(text).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostPort, A::Error> {
                let host: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let port: i64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(HostPort::new(
                    &host,
                    parse_port(port).map_err(de::Error::custom)?,
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostPort, A::Error> {
                let mut host: Option<String> = None;
                let mut port: Option<i64> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "host" => host = Some(map.next_value()?),
                        "port" => port = Some(map.next_value()?),
                        other => return Err(de::Error::unknown_field(other, &["host", "port"])),
                    }
                }
                let host = host.ok_or_else(|| de::Error::missing_field("host"))?;
                let port = port.ok_or_else(|| de::Error::missing_field("port"))?;
                Ok(HostPort::new(
                    &host,
                    parse_port(port).map_err(de::Error::custom)?,
                ))
            }
        }
        deserializer.deserialize_any(HostPortVisitor)
    }
}
