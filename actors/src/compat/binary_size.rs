//! The text of the original's `BinarySize` (`str(BinarySize(n))`, e.g. in a Jinja template):
//! `1 byte`, `64 MiB`, `1.5 GiB`, two decimals at most with Python's `Decimal.normalize()`,
//! which writes `10.00` as `1E+1`.

const SUFFIXES: [&str; 9] = ["", "K", "M", "G", "T", "P", "E", "Z", "Y"];

/// `str(BinarySize(bytes))`.
pub fn python_str(bytes: u64) -> String {
    let mut scale = bytes;
    let mut suffix_index = 0;
    while scale >= 1024 {
        scale /= 1024;
        suffix_index += 1;
    }
    if suffix_index == 0 {
        return if bytes == 1 {
            "1 byte".to_owned()
        } else {
            format!("{bytes} bytes")
        };
    }
    let multiplier = 1024u128.pow(suffix_index);
    let bytes = u128::from(bytes);
    let value = if bytes % multiplier == 0 {
        (bytes / multiplier).to_string()
    } else {
        normalized_hundredths(round_half_even(bytes * 100, multiplier))
    };
    format!("{value} {}iB", SUFFIXES[suffix_index as usize])
}

/// `numerator / denominator` rounded to an integer, ties to even (`Decimal.quantize`).
fn round_half_even(numerator: u128, denominator: u128) -> u128 {
    let quotient = numerator / denominator;
    let twice_remainder = (numerator % denominator) * 2;
    if twice_remainder > denominator || (twice_remainder == denominator && quotient % 2 == 1) {
        quotient + 1
    } else {
        quotient
    }
}

/// `str(Decimal(hundredths / 100).normalize())`: trailing zeros dropped, and an integer that
/// ends in zeros written with an exponent (`1E+1`, `1.2E+2`).
fn normalized_hundredths(hundredths: u128) -> String {
    let whole = hundredths / 100;
    let fraction = hundredths % 100;
    if fraction != 0 {
        let digits = format!("{fraction:02}");
        return format!("{whole}.{}", digits.trim_end_matches('0'));
    }
    if whole == 0 || !whole.is_multiple_of(10) {
        return whole.to_string();
    }
    let digits = whole.to_string();
    let significant = digits.trim_end_matches('0');
    let exponent = digits.len() - 1;
    let (first, rest) = significant.split_at(1);
    if rest.is_empty() {
        format!("{first}E+{exponent}")
    } else {
        format!("{first}.{rest}E+{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs printed by `str(ai.backend.common.types.BinarySize(n))` (backend.ai-common 23.09).
    #[test]
    fn matches_the_originals_text() {
        let pinned: [(u64, &str); 22] = [
            (0, "0 bytes"),
            (1, "1 byte"),
            (2, "2 bytes"),
            (1023, "1023 bytes"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (1025, "1 KiB"),
            (67108864, "64 MiB"),
            (1610612736, "1.5 GiB"),
            (1078984704, "1 GiB"),
            (1098437885952, "1023 GiB"),
            (3298534883329, "3 TiB"),
            (1234567890123, "1.12 TiB"),
            (5764607523034234880, "5 EiB"),
            (10241, "1E+1 KiB"),
            (122881, "1.2E+2 KiB"),
            (104857603, "1E+2 MiB"),
            (1048576001, "1E+3 MiB"),
            (1047553, "1023 KiB"),
            (5125, "5 KiB"),
            (1029, "1 KiB"),
            (1039, "1.01 KiB"),
        ];
        for (bytes, text) in pinned {
            assert_eq!(python_str(bytes), text, "{bytes} bytes");
        }
    }
}
