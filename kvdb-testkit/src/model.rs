//! The sequential specification the checker holds KvDB to: one register per
//! key, with versions and CAS.
//!
//! The state is the current value (or absence) and what is known about the
//! last log index applied to the key. An acknowledged mutation fixes that
//! index exactly; a mutation whose outcome is unknown only bounds it from
//! below, and a later read or rejected CAS that reports the version pins it.
//! Versions must strictly increase per key (they are Raft log indices), a CAS
//! applies iff the current version equals the expected one, and an absent key
//! reports [`Version::ABSENT`].
//!
//! Values are interned per key into small integers so that states are cheap
//! to hash and copy during the search. Keys start absent: workloads checked
//! this way use fresh keys.

use std::collections::HashMap;

use crate::op::{Op, Outcome, Output, Value, Version};

/// An interned value of one key's history.
pub(crate) type ValueId = u32;

/// What is known about the last log index applied to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LastIndex {
    /// Exactly this index.
    Exact(Version),
    /// This index or a later one (a mutation with an unknown outcome applied).
    AtLeast(Version),
}

impl LastIndex {
    fn floor(self) -> u64 {
        match self {
            LastIndex::Exact(v) | LastIndex::AtLeast(v) => v.0,
        }
    }
}

/// The model state of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RegisterState {
    pub(crate) value: Option<ValueId>,
    pub(crate) last: LastIndex,
}

impl RegisterState {
    /// An absent key that has never been written.
    pub(crate) const INITIAL: RegisterState = RegisterState {
        value: None,
        last: LastIndex::Exact(Version::ABSENT),
    };

    /// The state after `call` takes effect, or `None` if it cannot take
    /// effect (or observe what it observed) in this state.
    pub(crate) fn step(self, call: &Call) -> Option<RegisterState> {
        match *call {
            Call::Read(None) => self.value.is_none().then_some(self),
            Call::Read(Some((value, version))) => {
                (self.value == Some(value)).then_some(())?;
                self.observe(version)
            }
            Call::ReadValue(seen) => (self.value == seen).then_some(self),
            Call::Put {
                value,
                expected,
                version,
                ..
            } => {
                let state = match expected {
                    Some(expected) => self.observe(expected)?,
                    None => self,
                };
                state.apply(Some(value), version)
            }
            Call::Rejected { expected, current } => {
                (expected != current).then_some(())?;
                self.observe(current)
            }
            Call::Delete { version, .. } => self.apply(None, version),
            Call::Impossible => None,
        }
    }

    /// The key reports `version` now: check it, pinning a lower bound.
    fn observe(self, version: Version) -> Option<RegisterState> {
        if self.value.is_none() {
            return (version == Version::ABSENT).then_some(self);
        }
        match self.last {
            LastIndex::Exact(last) => (last == version).then_some(self),
            LastIndex::AtLeast(floor) => (version >= floor).then_some(RegisterState {
                last: LastIndex::Exact(version),
                ..self
            }),
        }
    }

    /// A mutation at `version` (unknown when `None`) leaves `value`.
    fn apply(self, value: Option<ValueId>, version: Option<Version>) -> Option<RegisterState> {
        let floor = self.last.floor();
        let last = match version {
            Some(v) if v.0 > floor => LastIndex::Exact(v),
            Some(_) => return None,
            None => LastIndex::AtLeast(Version(floor + 1)),
        };
        Some(RegisterState { value, last })
    }
}

/// One operation compiled for the search: values interned, outcome folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Call {
    /// A read that observed this (or absence).
    Read(Option<(ValueId, Version)>),
    /// A read that observed this value (or absence), its version untold.
    ReadValue(Option<ValueId>),
    /// A put, conditional when `expected` is set, applied at `version`
    /// (untold when `None`); `acknowledged` when it surely applied, told its version or not.
    Put {
        value: ValueId,
        expected: Option<Version>,
        version: Option<Version>,
        acknowledged: bool,
    },
    /// A CAS that saw `current` instead of `expected`.
    Rejected { expected: Version, current: Version },
    /// A delete applied at `version` (untold when `None`); `acknowledged` as for a put.
    Delete {
        version: Option<Version>,
        acknowledged: bool,
    },
    /// An outcome that does not fit the request (e.g. a read that reports
    /// "applied"): it can never be placed, so the checker reports it.
    Impossible,
}

impl Call {
    /// Compiles `op` and its outcome, or `None` when the operation constrains
    /// nothing (it failed, or it is a read whose answer was lost).
    pub(crate) fn compile(op: &Op, outcome: &Outcome, values: &mut Interner) -> Option<Call> {
        let output = match outcome {
            Outcome::Fail => return None,
            Outcome::Unknown if !op.is_mutation() => return None,
            Outcome::Unknown => None,
            Outcome::Ok(output) => Some(output),
        };
        let call = match (op, output) {
            (Op::Read, Some(Output::Read(seen))) => Call::Read(
                seen.as_ref()
                    .map(|(value, version)| (values.intern(value), *version)),
            ),
            (Op::Read, Some(Output::Value(seen))) => {
                Call::ReadValue(seen.as_ref().map(|value| values.intern(value)))
            }
            (Op::Write(value), None | Some(Output::Applied(_) | Output::Done)) => Call::Put {
                value: values.intern(value),
                expected: None,
                version: applied_version(output),
                acknowledged: output.is_some(),
            },
            (Op::Cas { expected, new }, None | Some(Output::Applied(_) | Output::Done)) => {
                Call::Put {
                    value: values.intern(new),
                    expected: Some(*expected),
                    version: applied_version(output),
                    acknowledged: output.is_some(),
                }
            }
            (Op::Cas { expected, .. }, Some(Output::Rejected { current })) => Call::Rejected {
                expected: *expected,
                current: *current,
            },
            (Op::Delete, None | Some(Output::Applied(_) | Output::Done)) => Call::Delete {
                version: applied_version(output),
                acknowledged: output.is_some(),
            },
            _ => Call::Impossible,
        };
        Some(call)
    }

    /// Whether the call's outcome is known, so it must be linearized before
    /// it completed, as opposed to an unknown-outcome mutation that may take
    /// effect anywhere after its invoke, or nowhere.
    pub(crate) fn is_acknowledged(&self) -> bool {
        !matches!(
            self,
            Call::Put {
                acknowledged: false,
                ..
            } | Call::Delete {
                acknowledged: false,
                ..
            }
        )
    }
}

fn applied_version(output: Option<&Output>) -> Option<Version> {
    match output {
        Some(Output::Applied(version)) => Some(*version),
        _ => None,
    }
}

/// Maps one key's values to dense ids and back.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Value, ValueId>,
    values: Vec<Value>,
}

impl Interner {
    pub(crate) fn intern(&mut self, value: &Value) -> ValueId {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.values.len() as ValueId;
        self.values.push(value.clone());
        self.ids.insert(value.clone(), id);
        id
    }

    /// A fresh id standing for "some value nobody read": it equals no value
    /// of the history, so no read can match it.
    pub(crate) fn unseen(&mut self) -> ValueId {
        let id = self.values.len() as ValueId;
        self.values.push(b"<an unread write>".to_vec());
        id
    }

    pub(crate) fn value(&self, id: ValueId) -> &Value {
        &self.values[id as usize]
    }
}
