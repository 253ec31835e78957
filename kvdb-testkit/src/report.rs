//! What the linearizability checker concludes, per key and overall, in a form
//! a failing test can print.

use std::fmt;

use crate::history::Operation;
use crate::model::LastIndex;
use crate::op::{Key, Value, show};

/// The checker's conclusion for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations, consistent with real time, is legal.
    Linearizable,
    /// No such order exists.
    Violation(Box<Violation>),
    /// The search stopped before deciding.
    Unknown(Inconclusive),
}

/// Why the checker could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconclusive {
    /// The configured step budget ran out (too many concurrent or
    /// unknown-outcome operations on one key).
    #[error("search budget of {steps} steps exhausted")]
    BudgetExhausted {
        /// The budget that was spent.
        steps: u64,
    },
}

/// A key's state in the model, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The current value, `None` when absent.
    pub value: Option<Value>,
    /// What is known of the last log index applied to the key.
    pub last_index: LastIndex,
}

/// One operation of a linearization, with the state it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOp {
    /// The operation.
    pub op: Operation,
    /// The model state right after it.
    pub state_after: KeyState,
}

/// Evidence that a key's history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Key,
    /// The longest linearizable prefix the search found, in order.
    pub prefix: Vec<PlacedOp>,
    /// An operation that had to be placed next (it completed) but could not
    /// be, after that prefix.
    pub blocked: Operation,
    /// The state after the prefix.
    pub state: KeyState,
}

/// The result for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// The key.
    pub key: Key,
    /// Operations recorded on the key.
    pub operations: usize,
    /// Operations the search had to consider (failed operations, reads with
    /// lost answers and never-observed unknown writes constrain nothing).
    pub checked: usize,
    /// Search steps spent.
    pub steps: u64,
    /// The conclusion.
    pub verdict: Verdict,
}

/// The result for a whole history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// One report per key, in key order.
    pub keys: Vec<KeyReport>,
}

impl CheckReport {
    /// Whether every key was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.verdict, Verdict::Linearizable))
    }

    /// The violations found, one per failing key.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::Violation(v) => Some(v.as_ref()),
            _ => None,
        })
    }

    /// The keys the checker could not decide, with the reason.
    pub fn inconclusive(&self) -> impl Iterator<Item = (&Key, &Inconclusive)> {
        self.keys.iter().filter_map(|k| match &k.verdict {
            Verdict::Unknown(reason) => Some((&k.key, reason)),
            _ => None,
        })
    }

    /// Operations recorded over all keys.
    pub fn operations(&self) -> usize {
        self.keys.iter().map(|k| k.operations).sum()
    }
}

/// How many prefix operations an explanation prints.
const SHOWN_PREFIX: usize = 12;

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}", show(value))?,
            None => write!(f, "absent")?,
        }
        match self.last_index {
            LastIndex::Exact(v) => write!(f, " (last index {v})"),
            LastIndex::AtLeast(v) => write!(f, " (last index >= {v})"),
        }
    }
}

fn fmt_op(f: &mut fmt::Formatter<'_>, op: &Operation) -> fmt::Result {
    write!(
        f,
        "{} {} {} -> {} [t {}..",
        op.id, op.client, op.op, op.outcome, op.invoked_at
    )?;
    match op.completed_at {
        Some(t) => write!(f, "{t}, {:?}]", op.invoked_after),
        None => write!(f, ", {:?}]", op.invoked_after),
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {}: not linearizable; longest linearizable prefix has {} ops",
            show(&self.key),
            self.prefix.len()
        )?;
        let skipped = self.prefix.len().saturating_sub(SHOWN_PREFIX);
        if skipped > 0 {
            writeln!(f, "  ... {skipped} earlier ops")?;
        }
        for placed in &self.prefix[skipped..] {
            write!(f, "  ")?;
            fmt_op(f, &placed.op)?;
            writeln!(f, " => {}", placed.state_after)?;
        }
        write!(f, "  cannot place ")?;
        fmt_op(f, &self.blocked)?;
        write!(f, " in state {}", self.state)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let violations = self.violations().count();
        let inconclusive = self.inconclusive().count();
        writeln!(
            f,
            "{} keys, {} operations: {violations} violations, {inconclusive} inconclusive",
            self.keys.len(),
            self.operations()
        )?;
        for violation in self.violations() {
            writeln!(f, "{violation}")?;
        }
        for (key, reason) in self.inconclusive() {
            writeln!(f, "key {}: inconclusive: {reason}", show(key))?;
        }
        Ok(())
    }
}
