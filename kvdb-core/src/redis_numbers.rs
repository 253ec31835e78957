//! Numbers in strings as Redis reads and writes them: the one definition the RESP front
//! door (command arguments) and the shard state machine (INCR and INCRBYFLOAT on stored
//! values) share, so both accept exactly what Redis accepts.
//!
//! [`long_double`] is `INCRBYFLOAT`'s arithmetic; [`parse_float`] and [`format_float`] are
//! the `f64` reading of a float argument, and the arithmetic of `INCRBYFLOAT` entries logged
//! before it, which replay as they first applied.

pub mod long_double;

/// A 64-bit integer as Redis's `string2ll` reads one: an optional minus, digits, no leading
/// zeros, no plus, no spaces.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || bytes == b"0");
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A float as Redis's `string2ld` reads one: no surrounding spaces, not NaN.
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.starts_with(char::is_whitespace) {
        return None;
    }
    text.parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// A float as `INCRBYFLOAT` answers it: plain decimal, no exponent, no trailing zeros.
pub fn format_float(value: f64) -> String {
    // `Display` gives the shortest text that reads back as the same f64, without exponent.
    let text = format!("{value}");
    if text == "-0" { "0".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"1.0",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_parse_and_print_like_redis() {
        assert_eq!(parse_float(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b""), None);
        assert_eq!(format_float(5000.0), "5000");
        assert_eq!(format_float(10.5), "10.5");
        assert_eq!(format_float(-0.0), "0");
    }
}
