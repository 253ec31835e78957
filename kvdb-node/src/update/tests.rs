//! The pure rules of [`decide`] that the machine's tests do not cover.

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
fn floats_parse_like_string2ld_and_format_like_incrbyfloat() {
    assert_eq!(parse_float(b"5.0e3"), Some(5000.0));
    assert_eq!(parse_float(b" 1"), None);
    assert_eq!(parse_float(b"nan"), None);
    assert_eq!(parse_float(b""), None);
    assert_eq!(format_float(5000.0), "5000");
    assert_eq!(format_float(10.5), "10.5");
    assert_eq!(format_float(-0.0), "0");
}

#[test]
fn gt_and_lt_count_no_expiry_as_never() {
    assert!(!expire_holds(ExpireWhen::Gt, None, Some(5)));
    assert!(expire_holds(ExpireWhen::Lt, None, Some(5)));
    assert!(expire_holds(ExpireWhen::Gt, Some(4), Some(5)));
    assert!(!expire_holds(ExpireWhen::Lt, Some(4), Some(5)));
    assert!(expire_holds(ExpireWhen::Nx, None, Some(5)));
    assert!(!expire_holds(ExpireWhen::Xx, None, Some(5)));
}
