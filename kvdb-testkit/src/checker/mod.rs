//! A per-key linearizability checker for KvDB histories.
//!
//! Linearizability is compositional, so each key is checked on its own
//! against the register model of [`model`](crate::model). The search is
//! Wing & Gong's, with Lowe's memoisation: walk the invoke/complete entries in
//! time order, tentatively linearize any operation whose invoke has been
//! reached, and backtrack when a completion is reached whose operation has not
//! been placed. A (placed-set, model-state) pair seen before is never explored
//! twice, which keeps real histories (a handful of concurrent clients) fast.
//!
//! Operations with an unknown outcome may take effect at any time after
//! their invoke, or never: the search succeeds once every operation with a
//! known outcome is placed. [`reduce`](crate::reduce) narrows their windows
//! first, since each one otherwise stays concurrent with everything after it.
//!
//! The search is bounded by [`CheckConfig::max_steps`]; when it runs out the
//! verdict is [`Verdict::Unknown`], never a hang.
//!
//! Out of scope: cross-key properties (transactions, snapshots) and TTL.

use std::collections::HashSet;

use crate::history::{History, Operation};
use crate::model::{Interner, RegisterState};
use crate::reduce::{Compiled, reduce};
use crate::report::{CheckReport, Inconclusive, KeyReport, KeyState, PlacedOp, Verdict, Violation};
use crate::search::{Best, Search, SearchEnd};

/// Limits on the checker's search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Search steps allowed per key before giving up with
    /// [`Inconclusive::BudgetExhausted`].
    pub max_steps: u64,
}

impl CheckConfig {
    /// The default step budget per key: seconds of work in a debug build.
    pub const DEFAULT_MAX_STEPS: u64 = 2_000_000;
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            max_steps: Self::DEFAULT_MAX_STEPS,
        }
    }
}

/// Checks every key of `history`.
pub fn check(history: &History, config: &CheckConfig) -> CheckReport {
    let keys = history
        .by_key()
        .into_iter()
        .map(|(key, ops)| check_key(&key, &ops, config))
        .collect();
    CheckReport { keys }
}

/// Checks the operations of one key (in any order; they are sorted by time).
pub fn check_key(key: &[u8], ops: &[Operation], config: &CheckConfig) -> KeyReport {
    let mut values = Interner::default();
    let compiled = reduce(ops, &mut values);
    let search = Search::new(&compiled);
    let (verdict, steps) = match search.run(config.max_steps) {
        (SearchEnd::Linearizable, steps) => (Verdict::Linearizable, steps),
        (SearchEnd::OutOfBudget, steps) => (
            Verdict::Unknown(Inconclusive::BudgetExhausted { steps }),
            steps,
        ),
        (SearchEnd::Stuck(best), steps) => {
            let violation = explain(key, &compiled, &values, best);
            (Verdict::Violation(Box::new(violation)), steps)
        }
    };
    KeyReport {
        key: key.to_vec(),
        operations: ops.len(),
        checked: compiled.len(),
        steps,
        verdict,
    }
}

fn explain(key: &[u8], compiled: &[Compiled<'_>], values: &Interner, best: Best) -> Violation {
    let describe = |state: RegisterState| KeyState {
        value: state.value.map(|id| values.value(id).clone()),
        last_index: state.last,
    };
    let state = best
        .placed
        .last()
        .map_or(RegisterState::INITIAL, |(_, s)| *s);
    let placed_set: HashSet<usize> = best.placed.iter().map(|(c, _)| *c).collect();
    // `blocked` is always set when the search gets stuck; fall back to the
    // first unplaced required call for robustness.
    let blocked = best
        .blocked
        .or_else(|| (0..compiled.len()).find(|c| compiled[*c].required && !placed_set.contains(c)))
        .unwrap_or(0);
    Violation {
        key: key.to_vec(),
        prefix: best
            .placed
            .iter()
            .map(|(call, after)| PlacedOp {
                op: compiled[*call].op.clone(),
                state_after: describe(*after),
            })
            .collect(),
        blocked: compiled[blocked].op.clone(),
        state: describe(state),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
