//! Network partitions over a set of proxied, directed links.
//!
//! A test gives every node-to-node link its own [`FaultProxy`] and registers
//! it here as `(from, to)`: the proxy carries the connections `from` opens to
//! `to`, so cutting it silences both directions of that traffic. Partitions
//! are then expressed by nodes: [`Partition::isolate`] a leader,
//! [`Partition::split`] the cluster in halves, [`Partition::ring`] where each
//! node sees only its neighbours, and [`Partition::heal`] everything.
//!
//! Cuts accumulate (isolating two nodes in turn isolates both) until `heal`.
//! A cut uses [`Fault::Blackhole`] unless built with [`Partition::with_cut`].
//!
//! Out of scope: links not registered here (a pair with no proxy is simply
//! never cut) and deciding which node to cut (the nemesis schedule's job).

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use crate::proxy::{Fault, FaultProxy};

/// Directed, proxied links between named nodes.
#[derive(Debug)]
pub struct Partition<N> {
    links: HashMap<(N, N), FaultProxy>,
    cut: Fault,
}

impl<N: Eq + Hash + Clone + Debug> Default for Partition<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Eq + Hash + Clone + Debug> Partition<N> {
    /// No links yet; cuts blackhole.
    pub fn new() -> Self {
        Self::with_cut(Fault::Blackhole)
    }

    /// No links yet; cuts apply `cut` (e.g. [`Fault::Drop`] for fast failure).
    pub fn with_cut(cut: Fault) -> Self {
        Partition {
            links: HashMap::new(),
            cut,
        }
    }

    /// Registers the proxy that carries `from`'s connections to `to`,
    /// returning any proxy it replaces.
    pub fn insert(&mut self, from: N, to: N, proxy: FaultProxy) -> Option<FaultProxy> {
        self.links.insert((from, to), proxy)
    }

    /// The proxy for `from -> to`, if registered.
    pub fn link(&self, from: &N, to: &N) -> Option<&FaultProxy> {
        self.links.get(&(from.clone(), to.clone()))
    }

    /// Every registered link.
    pub fn links(&self) -> impl Iterator<Item = (&(N, N), &FaultProxy)> {
        self.links.iter()
    }

    /// Sets `fault` on every link for which `pred(from, to)` holds.
    pub fn set_where(&self, fault: Fault, mut pred: impl FnMut(&N, &N) -> bool) {
        for ((from, to), proxy) in &self.links {
            if pred(from, to) {
                proxy.set(fault);
            }
        }
    }

    /// Cuts every link to or from `node`.
    pub fn isolate(&self, node: &N) {
        self.set_where(self.cut, |from, to| from == node || to == node);
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn split(&self, a: &[N], b: &[N]) {
        self.set_where(self.cut, |from, to| {
            (a.contains(from) && b.contains(to)) || (b.contains(from) && a.contains(to))
        });
    }

    /// Arranges `nodes` in a ring (the last next to the first) and cuts every
    /// link between nodes that are not neighbours. With five nodes, each one
    /// still reaches a majority (itself and two neighbours), but no two
    /// majorities agree on who is in them.
    pub fn ring(&self, nodes: &[N]) {
        let position = |node: &N| nodes.iter().position(|n| n == node);
        let len = nodes.len();
        self.set_where(self.cut, |from, to| match (position(from), position(to)) {
            (Some(i), Some(j)) => {
                let gap = i.abs_diff(j);
                gap > 1 && gap != len - 1
            }
            _ => false,
        });
    }

    /// Lets every link pass again.
    pub fn heal(&self) {
        self.set_where(Fault::Pass, |_, _| true);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;

    /// A full mesh of proxies over `nodes`; the upstream is irrelevant here.
    async fn mesh(nodes: &[&'static str]) -> Partition<&'static str> {
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let mut partition = Partition::new();
        for from in nodes {
            for to in nodes.iter().filter(|to| *to != from) {
                let proxy = FaultProxy::start(upstream).await.unwrap();
                partition.insert(*from, *to, proxy);
            }
        }
        partition
    }

    /// The links that are cut, as sorted `from->to` strings.
    fn cut(partition: &Partition<&'static str>) -> Vec<String> {
        let mut cut: Vec<String> = partition
            .links()
            .filter(|(_, proxy)| proxy.fault() != Fault::Pass)
            .map(|((from, to), _)| format!("{from}->{to}"))
            .collect();
        cut.sort();
        cut
    }

    #[tokio::test]
    async fn isolate_cuts_every_link_of_the_node() {
        let partition = mesh(&["a", "b", "c"]).await;
        partition.isolate(&"a");
        assert_eq!(cut(&partition), ["a->b", "a->c", "b->a", "c->a"]);
        partition.heal();
        assert!(cut(&partition).is_empty());
    }

    #[tokio::test]
    async fn split_cuts_only_crossing_links() {
        let partition = mesh(&["a", "b", "c"]).await;
        partition.split(&["a"], &["b", "c"]);
        assert_eq!(cut(&partition), ["a->b", "a->c", "b->a", "c->a"]);
        partition.heal();
        partition.split(&["a", "b"], &["c"]);
        assert_eq!(cut(&partition), ["a->c", "b->c", "c->a", "c->b"]);
    }

    #[tokio::test]
    async fn ring_keeps_only_neighbours() {
        let partition = mesh(&["a", "b", "c", "d", "e"]).await;
        partition.ring(&["a", "b", "c", "d", "e"]);
        let cut = cut(&partition);
        assert_eq!(cut.len(), 10);
        assert!(cut.contains(&"a->c".to_string()));
        assert!(!cut.contains(&"a->b".to_string()));
        assert!(!cut.contains(&"a->e".to_string()));
    }

    #[tokio::test]
    async fn cuts_use_the_configured_fault() {
        let mut partition = Partition::with_cut(Fault::Drop);
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        partition.insert("a", "b", FaultProxy::start(upstream).await.unwrap());
        partition.isolate(&"b");
        assert_eq!(partition.link(&"a", &"b").unwrap().fault(), Fault::Drop);
    }
}
