//! Preparing one key's operations for the linearizability search.
//!
//! Every operation becomes a [`Call`] with a window: it may take effect from
//! its invoke until its `end`. An acknowledged call must be placed by its
//! completion. A mutation with an unknown outcome may take effect at any time
//! after its invoke, or never; left like that, each one stays concurrent with
//! the rest of the history and the search grows exponentially in their number.
//! Timeouts are common under faults, so this module narrows those windows
//! using facts that hold when workloads write unique values:
//!
//! - An unknown put whose value a read saw took effect before that read
//!   completed: it becomes required, with that completion as its end.
//! - An unknown put whose value nobody saw can only matter by producing a
//!   version that a CAS refers to and nothing else produced (a rejection
//!   reporting it). (A version that another operation produced cannot be its
//!   version: versions strictly increase, so the model rejects that anyway.)
//!   Such puts are interchangeable, so they are all replaced by one optional
//!   stand-in per unexplained version: a put of an unread value at exactly
//!   that version, placeable after every operation that saw an older version
//!   was invoked and before the last reference (and before any operation that
//!   saw a newer version) completed.
//!   The stand-in ignores the CAS condition of the put it replaces, so the
//!   check is slightly lenient there. If there are fewer such puts than
//!   unexplained versions, they are kept as they are instead.
//! - An unknown delete can only matter to an operation that observes absence
//!   (a read of nothing, a rejection reporting version 0, a CAS on version 0).
//!   Its window ends with the last such observer; with none, it is dropped.
//!
//! A call still optional when the search reaches the end of its window is
//! abandoned on that branch, which lets the memo merge the branches that
//! placed it with those that did not. Optional calls with the same effect and
//! the same window end (typically unknown deletes) are interchangeable: the
//! search decides them in invoke order, see [`symmetry_chain`].

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::Operation;
use crate::model::{Call, Interner, ValueId};
use crate::op::Version;

/// An operation that constrains the search.
pub(crate) struct Compiled<'a> {
    pub(crate) op: &'a Operation,
    pub(crate) call: Call,
    /// Whether the call must be placed (its effect is known or observed).
    pub(crate) required: bool,
    /// The logical time from which the call may be placed: its invoke, or
    /// later for a stand-in.
    pub(crate) start: u64,
    /// The logical time by which the call must be placed (required) or after
    /// which it no longer matters (optional); `u64::MAX` when unbounded.
    pub(crate) end: u64,
}

/// Compiles `ops` and narrows the windows of unknown outcomes.
pub(crate) fn reduce<'a>(ops: &'a [Operation], values: &mut Interner) -> Vec<Compiled<'a>> {
    let mut calls: Vec<Compiled<'a>> = ops
        .iter()
        .filter_map(|op| {
            let call = Call::compile(&op.op, &op.outcome, values)?;
            let required = call.is_acknowledged();
            let end = match op.completed_at {
                Some(t) if required => t,
                _ => u64::MAX,
            };
            Some(Compiled {
                op,
                call,
                required,
                start: op.invoked_at,
                end,
            })
        })
        .collect();
    let facts = Facts::gather(&calls);
    let mut keep = vec![true; calls.len()];

    for c in &mut calls {
        if let Call::Put {
            value,
            version: None,
            ..
        } = c.call
            && facts.writers.get(&value) == Some(&1)
            && let Some(&seen) = facts.first_seen.get(&value)
        {
            // A put seen by a read took effect before that read completed.
            c.end = if c.required { c.end.min(seen) } else { seen };
            c.required = true;
        }
    }

    // Unexplained versions, each with the time it must exist by.
    let mut unexplained: BTreeMap<Version, u64> = BTreeMap::new();
    for c in &calls {
        if let Some(version) = facts.unexplained_reference(&c.call) {
            let by = unexplained.entry(version).or_default();
            *by = (*by).max(c.place_by());
        }
    }
    let unread: Vec<usize> = (0..calls.len())
        .filter(|&i| match calls[i].call {
            Call::Put { value, .. } => !calls[i].required && !facts.first_seen.contains_key(&value),
            _ => false,
        })
        .collect();
    let mut stand_ins = Vec::new();
    if unexplained.len() <= unread.len() {
        let value = values.unseen();
        let known = KnownVersions::gather(&calls);
        for (&version, &by) in &unexplained {
            let (after, before) = known.around(version);
            let end = by.min(before);
            let earliest = unread
                .iter()
                .map(|&i| &calls[i])
                .filter(|c| c.start < end)
                .min_by_key(|c| c.start);
            // With no candidate the reference stays unexplained: a violation.
            if let Some(candidate) = earliest
                && candidate.start.max(after) < end
            {
                stand_ins.push(Compiled {
                    op: candidate.op,
                    call: Call::Put {
                        value,
                        expected: None,
                        version: Some(version),
                        acknowledged: false,
                    },
                    required: false,
                    start: candidate.start.max(after),
                    end,
                });
            }
        }
        for &i in &unread {
            keep[i] = false;
        }
    } else {
        let ends: Vec<u64> = unexplained.values().copied().collect();
        for &i in &unread {
            match horizon(calls[i].start, &ends) {
                Some(end) => calls[i].end = end,
                None => keep[i] = false,
            }
        }
    }

    let observers: Vec<u64> = calls
        .iter()
        .zip(&keep)
        .filter(|(c, keep)| **keep && observes_absence(&c.call))
        .map(|(c, _)| c.place_by())
        .collect();
    for (c, keep) in calls.iter_mut().zip(&mut keep) {
        if matches!(
            c.call,
            Call::Delete {
                version: None,
                acknowledged: false
            }
        ) {
            match horizon(c.start, &observers) {
                Some(end) => c.end = end,
                None => *keep = false,
            }
        }
    }

    calls
        .into_iter()
        .zip(keep)
        .filter_map(|(c, keep)| keep.then_some(c))
        .chain(stand_ins)
        .collect()
}

impl Compiled<'_> {
    /// When the call's effect or observation has happened by, at the latest.
    fn place_by(&self) -> u64 {
        if self.required { self.end } else { u64::MAX }
    }
}

/// The latest of `ends` after `invoked_at`.
fn horizon(invoked_at: u64, ends: &[u64]) -> Option<u64> {
    ends.iter().copied().filter(|end| *end > invoked_at).max()
}

fn observes_absence(call: &Call) -> bool {
    matches!(
        call,
        Call::Read(None)
            | Call::ReadValue(None)
            | Call::Rejected {
                current: Version::ABSENT,
                ..
            }
            | Call::Put {
                expected: Some(Version::ABSENT),
                ..
            }
    )
}

/// Versions known for certain (acknowledged mutations, reads), with when the
/// operations that reported them were invoked and completed.
struct KnownVersions {
    ops: Vec<(Version, u64, u64)>,
}

impl KnownVersions {
    fn gather(calls: &[Compiled<'_>]) -> Self {
        let ops = calls
            .iter()
            .filter(|c| c.required)
            .filter_map(|c| match c.call {
                Call::Put {
                    version: Some(v), ..
                }
                | Call::Delete {
                    version: Some(v), ..
                }
                | Call::Read(Some((_, v))) => Some((v, c.start, c.end)),
                _ => None,
            })
            .collect();
        KnownVersions { ops }
    }

    /// Bounds on when `version` can have been written: after every operation
    /// that reported an older version was invoked (it linearized earlier),
    /// and before every one that reported a newer version completed.
    fn around(&self, version: Version) -> (u64, u64) {
        let after = self.ops.iter().filter(|(v, ..)| *v < version);
        let before = self.ops.iter().filter(|(v, ..)| *v > version);
        (
            after.map(|(_, start, _)| *start).max().unwrap_or(0),
            before.map(|(.., end)| *end).min().unwrap_or(u64::MAX),
        )
    }
}

/// What the whole key's history says about values and versions.
struct Facts {
    /// How many puts wrote each value.
    writers: HashMap<ValueId, usize>,
    /// The earliest completion of a read that saw each value.
    first_seen: HashMap<ValueId, u64>,
    /// Versions a client could learn without any unknown mutation: absence,
    /// acknowledged mutations, versions reads returned.
    explained: HashSet<Version>,
}

impl Facts {
    fn gather(calls: &[Compiled<'_>]) -> Facts {
        let mut facts = Facts {
            writers: HashMap::new(),
            first_seen: HashMap::new(),
            explained: HashSet::from([Version::ABSENT]),
        };
        for c in calls {
            match c.call {
                Call::Read(Some((value, version))) => {
                    let seen = facts.first_seen.entry(value).or_insert(c.end);
                    *seen = (*seen).min(c.end);
                    facts.explained.insert(version);
                }
                Call::ReadValue(Some(value)) => {
                    let seen = facts.first_seen.entry(value).or_insert(c.end);
                    *seen = (*seen).min(c.end);
                }
                Call::Put { value, version, .. } => {
                    *facts.writers.entry(value).or_default() += 1;
                    facts.explained.extend(version);
                }
                Call::Delete { version, .. } => facts.explained.extend(version),
                Call::Read(None)
                | Call::ReadValue(None)
                | Call::Rejected { .. }
                | Call::Impossible => {}
            }
        }
        facts
    }

    /// The version `call` needs the key to have had, if nothing explains it.
    fn unexplained_reference(&self, call: &Call) -> Option<Version> {
        let version = match *call {
            Call::Put {
                expected: Some(expected),
                ..
            } => expected,
            // Only the version seen constrains the state, not the one hoped for.
            Call::Rejected { current, .. } => current,
            _ => return None,
        };
        (!self.explained.contains(&version)).then_some(version)
    }
}

/// For each call, the optional call it must wait for: the previous one, in
/// invoke order, with the same effect and the same window end. Any
/// linearization placing the later of two such calls while the earlier is
/// undecided stays valid with the two swapped, so only one order is searched.
pub(crate) fn symmetry_chain(calls: &[Compiled<'_>]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..calls.len()).filter(|&i| !calls[i].required).collect();
    order.sort_by_key(|&i| calls[i].start);
    let mut last: HashMap<(Call, u64), usize> = HashMap::new();
    let mut chain = vec![None; calls.len()];
    for i in order {
        chain[i] = last.insert((calls[i].call, calls[i].end), i);
    }
    chain
}
