//! The pure rules of [`decide`] that the machine's tests do not cover.

use super::*;

#[test]
fn gt_and_lt_count_no_expiry_as_never() {
    assert!(!expire_holds(ExpireWhen::Gt, None, Some(5)));
    assert!(expire_holds(ExpireWhen::Lt, None, Some(5)));
    assert!(expire_holds(ExpireWhen::Gt, Some(4), Some(5)));
    assert!(!expire_holds(ExpireWhen::Lt, Some(4), Some(5)));
    assert!(expire_holds(ExpireWhen::Nx, None, Some(5)));
    assert!(!expire_holds(ExpireWhen::Xx, None, Some(5)));
    assert!(!expire_holds(ExpireWhen::XxLt, None, Some(5)));
    assert!(expire_holds(ExpireWhen::XxLt, Some(6), Some(5)));
    assert!(!expire_holds(ExpireWhen::XxLt, Some(4), Some(5)));
}
