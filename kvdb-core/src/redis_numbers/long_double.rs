//! `INCRBYFLOAT` as Redis on x86-64 computes it: in the x87 80-bit `long double` (64-bit
//! significand), printed with `%.17Lf` less its trailing zeros.
//!
//! Users see the difference from `f64` at once: `SET x 0.1` then `INCRBYFLOAT x 0.2` answers
//! `0.3` from Redis and would answer `0.30000000000000004` in `f64`. The arithmetic is
//! rustc_apfloat's software x87 format, so every replica reaches the same bits whatever its
//! CPU; the printing is exact (big-integer arithmetic), rounding half to even as glibc's
//! `printf` does.
//!
//! Out of scope: hexadecimal floats (`strtold` reads them, Redis therefore too) and the
//! 128-bit `long double` of Redis builds on other architectures, which print differently.

use rustc_apfloat::ieee::X87DoubleExtended;
use rustc_apfloat::{Float, Round, Status};

/// Why an `INCRBYFLOAT` writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LongDoubleError {
    /// The value or the increment is not a float Redis reads.
    #[error("value is not a valid float")]
    NotFloat,
    /// The sum is not finite.
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
}

/// Digits `%.17Lf` prints after the point.
const DECIMALS: u32 = 17;

/// `base + by` as Redis's `INCRBYFLOAT` answers and stores it; an absent `base` is 0.
pub fn incr_by_float(base: Option<&[u8]>, by: &[u8]) -> Result<String, LongDoubleError> {
    let base = match base {
        Some(bytes) => parse(bytes).ok_or(LongDoubleError::NotFloat)?,
        None => X87DoubleExtended::ZERO,
    };
    let by = parse(by).ok_or(LongDoubleError::NotFloat)?;
    let sum = base.add_r(by, Round::NearestTiesToEven).value;
    if !sum.is_finite() {
        return Err(LongDoubleError::NanOrInfinity);
    }
    Ok(format(sum))
}

/// Checks an increment as `HINCRBYFLOAT` does before it reads the field: a float `strtold`
/// reads ([`LongDoubleError::NotFloat`] otherwise) that is not infinite
/// ([`LongDoubleError::NanOrInfinity`]).
pub fn check_increment(by: &[u8]) -> Result<(), LongDoubleError> {
    match parse(by) {
        None => Err(LongDoubleError::NotFloat),
        Some(by) if !by.is_finite() => Err(LongDoubleError::NanOrInfinity),
        Some(_) => Ok(()),
    }
}

/// A float as Redis's `string2ld` reads one with `strtold`: no surrounding spaces, not NaN,
/// and neither overflowing nor underflowing to zero.
fn parse(bytes: &[u8]) -> Option<X87DoubleExtended> {
    // The f64 reading accepts exactly the text strtold's decimal grammar does (NaN refused);
    // only the value is read again, in the wider format.
    super::parse_float(bytes)?;
    let text = std::str::from_utf8(bytes).ok()?;
    let unsigned = text.trim_start_matches(['+', '-']);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        let infinity = X87DoubleExtended::INFINITY;
        return Some(if text.starts_with('-') {
            -infinity
        } else {
            infinity
        });
    }
    let parsed = X87DoubleExtended::from_str_r(text, Round::NearestTiesToEven).ok()?;
    let out_of_range = parsed.status.contains(Status::OVERFLOW)
        || (parsed.status.contains(Status::UNDERFLOW) && parsed.value.is_zero());
    (!out_of_range).then_some(parsed.value)
}

/// `%.17Lf` of a finite `value`, without trailing zeros after the point, and `-0` as `0`.
fn format(value: X87DoubleExtended) -> String {
    let bits = value.to_bits();
    let negative = (bits >> 79) & 1 == 1;
    let biased = ((bits >> 64) & 0x7fff) as i32;
    let significand = bits as u64;
    // value = significand * 2^shift; a denormal (biased 0) has the smallest exponent's scale.
    let shift = biased.max(1) - 16383 - 63;
    let (integer, fraction) = if shift >= 0 {
        (
            BigDecimal::from_shifted(significand, shift as u32).to_string(),
            0,
        )
    } else {
        fixed_point(significand, shift.unsigned_abs())
    };
    let mut text = format!(
        "{}{integer}.{fraction:0width$}",
        if negative { "-" } else { "" },
        width = DECIMALS as usize
    );
    let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
    text.truncate(trimmed);
    if text == "-0" { "0".into() } else { text }
}

/// `significand / 2^k` rounded half to even at [`DECIMALS`] places: its integer part and its
/// fraction as an integer of [`DECIMALS`] digits.
fn fixed_point(significand: u64, k: u32) -> (String, u64) {
    const SCALE: u128 = 10u128.pow(DECIMALS);
    // Below 2^121, since significand < 2^64 and SCALE < 2^57.
    let scaled = u128::from(significand) * SCALE;
    let rounded = if k >= 122 {
        // Less than half of the last place: rounds to zero.
        0
    } else {
        let quotient = scaled >> k;
        let remainder = scaled & ((1u128 << k) - 1);
        let half = 1u128 << (k - 1);
        let up = remainder > half || (remainder == half && quotient & 1 == 1);
        quotient + u128::from(up)
    };
    ((rounded / SCALE).to_string(), (rounded % SCALE) as u64)
}

/// A non-negative integer in base 10^9 limbs, least significant first: enough to print
/// `significand * 2^shift` exactly for any `long double`.
struct BigDecimal(Vec<u64>);

impl BigDecimal {
    const BASE: u64 = 1_000_000_000;

    fn from_shifted(significand: u64, mut shift: u32) -> Self {
        let mut limbs = Vec::new();
        let mut rest = significand;
        while rest > 0 {
            limbs.push(rest % Self::BASE);
            rest /= Self::BASE;
        }
        let mut number = Self(limbs);
        while shift > 0 {
            // A limb times 2^29 stays below 2^59: no overflow.
            let step = shift.min(29);
            number.multiply(1 << step);
            shift -= step;
        }
        number
    }

    fn multiply(&mut self, factor: u64) {
        let mut carry = 0;
        for limb in &mut self.0 {
            let product = *limb * factor + carry;
            *limb = product % Self::BASE;
            carry = product / Self::BASE;
        }
        while carry > 0 {
            self.0.push(carry % Self::BASE);
            carry /= Self::BASE;
        }
    }
}

impl std::fmt::Display for BigDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut limbs = self.0.iter().rev();
        match limbs.next() {
            None => f.write_str("0"),
            Some(top) => {
                write!(f, "{top}")?;
                limbs.try_for_each(|limb| write!(f, "{limb:09}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(base: &str, by: &str) -> Result<String, LongDoubleError> {
        incr_by_float(Some(base.as_bytes()), by.as_bytes())
    }

    /// Every expected answer here is what redis-server 7.0 on x86-64 printed.
    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(incr("0.1", "0.2").unwrap(), "0.3");
        assert_eq!(incr("1.1", "2.2").unwrap(), "3.3");
        assert_eq!(incr("10.5", "0.1").unwrap(), "10.6");
        assert_eq!(incr("10.6", "-0.6").unwrap(), "10");
        assert_eq!(
            incr("5.0e3", "1.23456789012345678").unwrap(),
            "5001.23456789012345691"
        );
        assert_eq!(incr("3", "0.000000000000000001").unwrap(), "3");
        assert_eq!(incr("1", "0.0000001").unwrap(), "1.0000001");
        assert_eq!(incr_by_float(None, b"1.5").unwrap(), "1.5");
        let huge = incr("3.3", "1e300").unwrap();
        assert!(
            huge.starts_with("1000000000000000000008997324079559193870523944"),
            "{huge}"
        );
        assert_eq!(huge.len(), 301);
    }

    #[test]
    fn signs_zeros_and_tiny_values() {
        assert_eq!(incr("1", "-1").unwrap(), "0");
        assert_eq!(incr("0", "-0.000000000000000000001").unwrap(), "0");
        assert_eq!(incr("-2.5", "0").unwrap(), "-2.5");
        assert_eq!(incr("0", "0.000000000000000005").unwrap(), "0");
        assert_eq!(
            incr("0", "0.000000000000000015").unwrap(),
            "0.00000000000000002"
        );
    }

    #[test]
    fn bad_numbers_and_infinite_sums_write_nothing() {
        for bad in ["", " 1", "1 ", "abc", "nan", "1e5000", "1e-5000"] {
            assert_eq!(incr(bad, "1"), Err(LongDoubleError::NotFloat), "{bad:?}");
            assert_eq!(incr("1", bad), Err(LongDoubleError::NotFloat), "{bad:?}");
        }
        assert_eq!(incr("1", "inf"), Err(LongDoubleError::NanOrInfinity));
        assert_eq!(incr("1", "-infinity"), Err(LongDoubleError::NanOrInfinity));
        assert_eq!(incr("1", "+1.5").unwrap(), "2.5");
        assert_eq!(incr("1", ".5").unwrap(), "1.5");
        assert_eq!(incr("1", "5.").unwrap(), "6");
        assert_eq!(incr("1", "1E2").unwrap(), "101");
        assert_eq!(
            incr("1e4932", "1e4932"),
            Err(LongDoubleError::NanOrInfinity)
        );
        // Finite in a long double, though not in an f64.
        assert!(
            incr("1e400", "1")
                .unwrap()
                .starts_with("1000000000000000000")
        );
    }
}
