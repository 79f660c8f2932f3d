//! temporenc, the binary datetime format inside msgpack ext type 2 (Python's
//! `temporenc.packb(datetime)`). Decodes every type that carries a full date and time; encodes
//! UTC datetimes as DTSZ with microsecond precision, which is what Python writes for an aware
//! datetime with microseconds.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemporencError {
    #[error("temporenc value has {len} bytes, type {kind} needs {expected}")]
    BadLength {
        kind: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("temporenc value is empty or has an unknown type tag")]
    UnknownType,
    #[error("temporenc value has no full date and time (type {kind})")]
    NotADateTime { kind: &'static str },
    #[error("temporenc value holds an impossible date or time")]
    OutOfRange,
}

/// Big-endian bit reader over the encoded bytes.
struct Bits<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Bits<'_> {
    fn take(&mut self, count: usize) -> u64 {
        let mut value = 0u64;
        for _ in 0..count {
            let byte = self.bytes[self.position / 8];
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.position += 1;
        }
        value
    }
}

fn expect_len(kind: &'static str, bytes: &[u8], expected: usize) -> Result<(), TemporencError> {
    if bytes.len() != expected {
        return Err(TemporencError::BadLength {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    Ok(())
}

/// Decodes a temporenc value that has a full date and time. Values without a zone are taken
/// as UTC (the Backend.AI peers only send UTC times).
pub fn decode(bytes: &[u8]) -> Result<DateTime<Utc>, TemporencError> {
    let first = *bytes.first().ok_or(TemporencError::UnknownType)?;
    let mut bits = Bits { bytes, position: 0 };
    let (date, time, nanos, zone) = if first >> 6 == 0b00 {
        expect_len("DT", bytes, 5)?;
        bits.take(2);
        (bits.take(21), bits.take(17), 0, None)
    } else if first >> 6 == 0b01 {
        let precision = (first >> 4) & 0b11;
        let expected = [7, 8, 9, 6][usize::from(precision)];
        expect_len("DTS", bytes, expected)?;
        bits.take(4);
        let date = bits.take(21);
        let time = bits.take(17);
        (date, time, subsecond(&mut bits, precision), None)
    } else if first >> 5 == 0b110 {
        expect_len("DTZ", bytes, 6)?;
        bits.take(3);
        let date = bits.take(21);
        let time = bits.take(17);
        (date, time, 0, Some(bits.take(7)))
    } else if first >> 5 == 0b111 {
        let precision = (first >> 3) & 0b11;
        let expected = [8, 9, 10, 7][usize::from(precision)];
        expect_len("DTSZ", bytes, expected)?;
        bits.take(5);
        let date = bits.take(21);
        let time = bits.take(17);
        let nanos = subsecond(&mut bits, precision);
        (date, time, nanos, Some(bits.take(7)))
    } else if first >> 5 == 0b100 {
        return Err(TemporencError::NotADateTime { kind: "D" });
    } else if first >> 1 == 0b1010000 {
        return Err(TemporencError::NotADateTime { kind: "T" });
    } else {
        return Err(TemporencError::UnknownType);
    };
    let year = (date >> 9) as i32;
    let month = ((date >> 5) & 0b1111) as u32;
    let day = (date & 0b11111) as u32;
    let hour = (time >> 12) as u32;
    let minute = ((time >> 6) & 0b111111) as u32;
    let second = (time & 0b111111) as u32;
    if year == 4095 || month == 15 || day == 31 || hour == 31 || minute == 63 || second == 63 {
        return Err(TemporencError::NotADateTime { kind: "partial" });
    }
    let naive = NaiveDate::from_ymd_opt(year, month + 1, day + 1)
        .and_then(|date| date.and_hms_nano_opt(hour, minute, second, nanos as u32))
        .ok_or(TemporencError::OutOfRange)?;
    // D and T are stored in UTC whatever the zone; the zone only says what the writer's
    // local offset was, so the instant is the UTC reading.
    let _ = zone;
    Ok(Utc.from_utc_datetime(&naive))
}

fn subsecond(bits: &mut Bits<'_>, precision: u8) -> u64 {
    match precision {
        0b00 => bits.take(10) * 1_000_000,
        0b01 => bits.take(20) * 1_000,
        0b10 => bits.take(30),
        _ => 0,
    }
}

/// Big-endian bit writer.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    position: usize,
}

impl BitWriter {
    fn put(&mut self, value: u64, count: usize) {
        for index in (0..count).rev() {
            if self.position.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((value >> index) & 1) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= bit << (7 - self.position % 8);
            self.position += 1;
        }
    }
}

/// Encodes `at` as DTSZ with microsecond precision and offset +00:00 (9 bytes).
pub fn encode(at: &DateTime<Utc>) -> Vec<u8> {
    encode_with_offset(&at.with_timezone(&FixedOffset::east_opt(0).expect("zero offset")))
}

/// Encodes an aware datetime as DTSZ/µs, keeping its UTC offset (in 15-minute steps).
pub fn encode_with_offset(at: &DateTime<FixedOffset>) -> Vec<u8> {
    let utc = at.naive_utc();
    let date = ((utc.year().clamp(0, 4094) as u64) << 9)
        | (u64::from(utc.month0()) << 5)
        | u64::from(utc.day0());
    let time = (u64::from(utc.hour()) << 12)
        | (u64::from(utc.minute()) << 6)
        | u64::from(utc.second().min(60));
    let micros = u64::from(utc.nanosecond() / 1_000).min(999_999);
    let zone = (at.offset().local_minus_utc() / 60 / 15 + 64).clamp(0, 125) as u64;
    let mut writer = BitWriter::default();
    writer.put(0b111, 3);
    writer.put(0b01, 2);
    writer.put(date, 21);
    writer.put(time, 17);
    writer.put(micros, 20);
    writer.put(zone, 7);
    writer.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd_hms_micro(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_micro_opt(h, mi, s, us)
                .unwrap(),
        )
    }

    #[test]
    fn decodes_the_examples_of_the_spec() {
        // 1983-01-15T18:25:12 (DT), 18:25:12.123 (DTS ms), .123456 (DTS µs), +01:00 (DTZ)
        let plain = ymd_hms_micro(1983, 1, 15, 18, 25, 12, 0);
        assert_eq!(decode(&hex::decode("1efc1d264c").unwrap()).unwrap(), plain);
        assert_eq!(
            decode(&hex::decode("47bf07499307b0").unwrap()).unwrap(),
            ymd_hms_micro(1983, 1, 15, 18, 25, 12, 123_000)
        );
        assert_eq!(
            decode(&hex::decode("57bf0749930789 00".replace(' ', "")).unwrap()).unwrap(),
            ymd_hms_micro(1983, 1, 15, 18, 25, 12, 123_456)
        );
        assert_eq!(
            decode(&hex::decode("77bf07499300").unwrap()).unwrap(),
            plain
        );
        // The spec's DTZ example stores 18:25:12 as the UTC reading.
        assert_eq!(
            decode(&hex::decode("cf7e0e932644").unwrap()).unwrap(),
            plain
        );
        // 18:25:12.123456+01:00 is stored as 17:25:12.123456 UTC.
        assert_eq!(
            decode(&hex::decode("ebdf83a2c983c48110").unwrap()).unwrap(),
            ymd_hms_micro(1983, 1, 15, 17, 25, 12, 123_456)
        );
    }

    #[test]
    fn encodes_dtsz_microseconds_like_the_spec() {
        // Python's temporenc.packb(datetime(1983, 1, 15, 18, 25, 12, 123456, tz=+01:00)).
        let at = FixedOffset::east_opt(3600)
            .unwrap()
            .from_local_datetime(&ymd_hms_micro(1983, 1, 15, 18, 25, 12, 123_456).naive_utc())
            .unwrap();
        assert_eq!(hex::encode(encode_with_offset(&at)), "ebdf83a2c983c48110");
        // temporenc.packb(datetime(2026, 11, 28, 3, 57, 0, 42, tzinfo=timezone.utc))
        let now = ymd_hms_micro(2026, 11, 28, 3, 57, 0, 42);
        assert_eq!(hex::encode(encode(&now)), "ebf556c7c800005500");
        assert_eq!(decode(&encode(&now)).unwrap(), now);
    }

    #[test]
    fn refuses_partial_and_malformed_values() {
        assert_eq!(decode(&[]), Err(TemporencError::UnknownType));
        assert!(matches!(
            decode(&hex::decode("8f7e0e").unwrap()),
            Err(TemporencError::NotADateTime { kind: "D" })
        ));
        assert!(matches!(
            decode(&[0x1e, 0xfc]),
            Err(TemporencError::BadLength { .. })
        ));
    }
}
