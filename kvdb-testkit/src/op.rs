//! What a client asked a KvDB key to do, and what it was told.
//!
//! The vocabulary is the per-key register KvDB serves: byte-string values, a
//! version per write (the Raft log index that applied it, strictly increasing
//! per key), reads that see `(value, version)` or nothing, and CAS on the
//! version. TTLs are out of scope: a workload checked for linearizability
//! writes without expiry, because expiry happens at a time no client observes.

use std::fmt;

/// A key, as bytes.
pub type Key = Vec<u8>;

/// A value, as bytes. Workloads should write unique values so that a read
/// identifies the write it observed.
pub type Value = Vec<u8>;

/// The version of a key: the Raft log index of the write that produced the
/// current value. `Version(0)` is what an absent key reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(pub u64);

impl Version {
    /// The version an absent key reports, and the expected version of an
    /// "only if absent" CAS.
    pub const ABSENT: Version = Version(0);
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Identifies the client (a logical thread of the workload) that issued an
/// operation. A client must not have two operations in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Identifies one recorded operation within a [`History`](crate::History).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A request to one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// A strong read.
    Read,
    /// An unconditional put.
    Write(Value),
    /// A put applied iff the key's current version equals `expected`
    /// ([`Version::ABSENT`] means "only if the key does not exist").
    Cas {
        /// The version the key must have for the put to apply.
        expected: Version,
        /// The value to put.
        new: Value,
    },
    /// An unconditional delete.
    Delete,
}

impl Op {
    /// A write of `value`.
    pub fn write(value: impl Into<Value>) -> Self {
        Op::Write(value.into())
    }

    /// A CAS from version `expected` to `new`.
    pub fn cas(expected: u64, new: impl Into<Value>) -> Self {
        Op::Cas {
            expected: Version(expected),
            new: new.into(),
        }
    }

    /// Whether the operation can change the key.
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Op::Read)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read => write!(f, "read"),
            Op::Write(v) => write!(f, "write({})", show(v)),
            Op::Cas { expected, new } => write!(f, "cas({expected} -> {})", show(new)),
            Op::Delete => write!(f, "delete"),
        }
    }
}

/// What a successful operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// A read saw this value at this version, or `None` when the key was absent.
    Read(Option<(Value, Version)>),
    /// A write, CAS or delete took effect at this version (its log index).
    Applied(Version),
    /// A CAS whose condition did not hold: the key was at `current`
    /// ([`Version::ABSENT`] when absent). This is an observation, like a read.
    Rejected {
        /// The version the key had when the CAS was evaluated.
        current: Version,
    },
    /// A read that saw this value, or `None` when the key was absent, without learning its
    /// version: what a Redis `GET` tells.
    Value(Option<Value>),
    /// A write or delete that took effect at a version the client was not told: what a
    /// Redis `SET`'s `OK` tells.
    Done,
}

impl Output {
    /// A read that saw `value` at `version`.
    pub fn read(value: impl Into<Value>, version: u64) -> Self {
        Output::Read(Some((value.into(), Version(version))))
    }

    /// A read that found the key absent.
    pub fn absent() -> Self {
        Output::Read(None)
    }

    /// A mutation applied at `version`.
    pub fn applied(version: u64) -> Self {
        Output::Applied(Version(version))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Read(None) => write!(f, "absent"),
            Output::Read(Some((v, ver))) => write!(f, "{}@{ver}", show(v)),
            Output::Applied(ver) => write!(f, "applied@{ver}"),
            Output::Rejected { current } => write!(f, "rejected (current {current})"),
            Output::Value(None) => write!(f, "absent"),
            Output::Value(Some(v)) => write!(f, "{}", show(v)),
            Output::Done => write!(f, "done"),
        }
    }
}

/// How an operation ended, from the client's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The operation took effect (or, for a read or rejected CAS, observed the
    /// state) at some instant between its invoke and its completion.
    Ok(Output),
    /// The operation definitely did not take effect: a refused request, a
    /// routing error before proposal. It constrains nothing.
    Fail,
    /// The client cannot tell: a timeout or an ambiguous transport error. The
    /// operation may take effect at any instant after its invoke, or never.
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok(out) => write!(f, "ok {out}"),
            Outcome::Fail => write!(f, "fail"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

/// Renders bytes for humans: UTF-8 when printable, hex otherwise.
pub(crate) fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}
