//! The request date of a signed request: which header carries it, how it is parsed, and the
//! ±15 minute window it must fall in. The signing key uses the date as written, in the time
//! zone the header gives, so the parsed value keeps its offset.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};

/// How far a request date may be from the server's clock, either way.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// The headers that may carry the date, in the order they are looked at.
pub const DATE_HEADERS: [&str; 3] = ["Date", "X-BackendAI-Date", "X-Sorna-Date"];

/// A date header as sent and as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDate {
    pub raw: String,
    pub parsed: DateTime<FixedOffset>,
}

impl RequestDate {
    /// `YYYYMMDD` in the header's own time zone: the first input of the signing key.
    pub fn key_date(&self) -> String {
        self.parsed.format("%Y%m%d").to_string()
    }

    /// Whether the date is strictly within `MAX_CLOCK_SKEW` of `now`.
    pub fn is_within_window(&self, now: DateTime<Utc>) -> bool {
        let date = self.parsed.with_timezone(&Utc);
        now - MAX_CLOCK_SKEW < date && date < now + MAX_CLOCK_SKEW
    }
}

/// Parses the date formats clients send: ISO 8601 / RFC 3339 (the official client sends
/// `2022-09-01T12:00:00.123456+00:00`), with `T` or a space, with or without fractional
/// seconds and offset (no offset means UTC), and the HTTP date of RFC 1123 / RFC 2822.
pub fn parse_request_date(raw: &str) -> Option<DateTime<FixedOffset>> {
    let text = raw.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date);
    }
    if let Ok(date) = DateTime::parse_from_rfc2822(text) {
        return Some(date);
    }
    const WITH_OFFSET: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ];
    for format in WITH_OFFSET {
        if let Ok(date) = DateTime::parse_from_str(text, format) {
            return Some(date);
        }
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y%m%dT%H%M%S",
        "%a, %d %b %Y %H:%M:%S",
    ];
    let utc = FixedOffset::east_opt(0)?;
    for format in NAIVE {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return utc.from_local_datetime(&naive).single();
        }
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return utc.from_local_datetime(&day.and_hms_opt(0, 0, 0)?).single();
    }
    None
}

/// The first date header present, parsed; `None` when none is present or it is not a date.
pub fn request_date<'a>(mut header: impl FnMut(&str) -> Option<&'a str>) -> Option<RequestDate> {
    let raw = DATE_HEADERS
        .iter()
        .find_map(|name| header(name).filter(|value| !value.is_empty()))?;
    Some(RequestDate {
        raw: raw.to_owned(),
        parsed: parse_request_date(raw)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_clients_format_keeps_its_offset() {
        let date = parse_request_date("2026-11-28T02:15:15.618248+00:00").unwrap();
        assert_eq!(date.timestamp(), 1_795_832_115);
        let date = parse_request_date("2022-09-01T23:30:00+09:00").unwrap();
        let request = RequestDate {
            raw: "x".into(),
            parsed: date,
        };
        // The key date is the local date of the header, not the UTC date.
        assert_eq!(request.key_date(), "20220901");
        assert_eq!(
            date.with_timezone(&Utc).format("%Y%m%d").to_string(),
            "20220901"
        );
        let late = parse_request_date("2022-09-02T01:30:00+09:00").unwrap();
        assert_eq!(late.format("%Y%m%d").to_string(), "20220902");
        assert_eq!(
            late.with_timezone(&Utc).format("%Y%m%d").to_string(),
            "20220901"
        );
    }

    #[test]
    fn other_common_formats_parse() {
        for text in [
            "Sat, 28 Nov 2026 02:15:15 GMT",
            "Sat, 28 Nov 2026 02:15:15 +0000",
            "2026-11-28T02:15:15Z",
            "2026-11-28 02:15:15+00:00",
            "2026-11-28T02:15:15",
            "2026-11-28 02:15:15.5",
        ] {
            let date = parse_request_date(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                date.with_timezone(&Utc).timestamp(),
                1_795_832_115,
                "{text}"
            );
        }
        assert!(parse_request_date("yesterday").is_none());
        assert!(parse_request_date("").is_none());
    }

    #[test]
    fn the_window_is_fifteen_minutes_exclusive() {
        let now = Utc::now();
        let at = |offset: TimeDelta| RequestDate {
            raw: String::new(),
            parsed: (now + offset).fixed_offset(),
        };
        assert!(at(TimeDelta::minutes(14)).is_within_window(now));
        assert!(at(TimeDelta::minutes(-14)).is_within_window(now));
        assert!(!at(TimeDelta::minutes(15)).is_within_window(now));
        assert!(!at(TimeDelta::minutes(-16)).is_within_window(now));
    }

    #[test]
    fn date_headers_are_tried_in_order() {
        let headers = [
            ("X-BackendAI-Date", "2026-11-28T02:15:15+00:00"),
            ("X-Sorna-Date", "2020-01-01T00:00:00+00:00"),
        ];
        let found = request_date(|name| {
            headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| *value)
        })
        .unwrap();
        assert_eq!(found.raw, "2026-11-28T02:15:15+00:00");
        assert!(request_date(|_| None).is_none());
    }
}
