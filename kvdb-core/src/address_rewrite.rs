//! [`AddressRewrite`]: a hook that changes the address an outbound
//! connection dials, without changing the address anyone advertises.
//!
//! Fault-injection tests put a TCP proxy on every link (node B to node A,
//! client to node A) and tell the dialing side to go through it: B still
//! learns A's real address from the shard map or Raft membership, and its
//! rewrite maps that address to the proxy for the link B -> A. Production
//! configurations leave the hook unset.
//!
//! Out of scope: name resolution and load balancing; the rewrite is applied
//! once, when a connection pool first creates the channel to an address.

use std::fmt;
use std::sync::Arc;

/// Maps an address (`host:port`) about to be dialed to the one actually
/// dialed. Cheap to clone; clones share the function.
///
/// Equality is identity (the same shared function), so configurations that
/// hold one stay comparable.
#[derive(Clone)]
pub struct AddressRewrite(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl AddressRewrite {
    /// A rewrite applying `rewrite` to every dialed address.
    pub fn new(rewrite: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self(Arc::new(rewrite))
    }

    /// The address to dial in place of `addr`.
    pub fn apply(&self, addr: &str) -> String {
        (self.0)(addr)
    }
}

impl fmt::Debug for AddressRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressRewrite(..)")
    }
}

impl PartialEq for AddressRewrite {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AddressRewrite {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_the_function_and_compares_by_identity() {
        let proxy = AddressRewrite::new(|addr| {
            if addr == "127.0.0.1:1" {
                "127.0.0.1:9".to_owned()
            } else {
                addr.to_owned()
            }
        });
        assert_eq!(proxy.apply("127.0.0.1:1"), "127.0.0.1:9");
        assert_eq!(proxy.apply("127.0.0.1:2"), "127.0.0.1:2");
        assert_eq!(proxy, proxy.clone());
        assert_ne!(proxy, AddressRewrite::new(str::to_owned));
        assert_eq!(format!("{proxy:?}"), "AddressRewrite(..)");
    }
}
