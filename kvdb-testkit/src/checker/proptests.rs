//! Histories generated from a real register store, concurrent clients and
//! lost answers included: the checker must accept them, and must reject them
//! once a single read is corrupted.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::op::{ClientId, Key, Op, Outcome, Output, Value, Version};
use crate::{PendingOp, Recorder};

/// A client of the simulated store, between the steps of one operation.
enum Client {
    Idle,
    Invoked {
        pending: PendingOp,
        key: Key,
        op: Op,
    },
    Applied {
        pending: PendingOp,
        output: Output,
    },
}

/// Drives clients against a correct in-memory KvDB key space: every
/// operation takes effect atomically between its invoke and its completion,
/// versions come from one shared log index, so the history is linearizable
/// by construction.
struct Simulation {
    recorder: Recorder,
    store: HashMap<Key, (Value, Version)>,
    log_index: u64,
    clients: Vec<Client>,
    keys: u32,
    writes: u64,
    reads_completed: usize,
    corrupt_read: Option<usize>,
}

impl Simulation {
    fn run(clients: usize, keys: u32, choices: &[u32], corrupt_read: Option<usize>) -> Self {
        let mut sim = Simulation {
            recorder: Recorder::new(),
            store: HashMap::new(),
            log_index: 0,
            clients: (0..clients).map(|_| Client::Idle).collect(),
            keys,
            writes: 0,
            reads_completed: 0,
            corrupt_read,
        };
        for &choice in choices {
            sim.step(choice);
        }
        sim
    }

    fn step(&mut self, choice: u32) {
        let index = choice as usize % self.clients.len();
        let roll = choice >> 8;
        let client = std::mem::replace(&mut self.clients[index], Client::Idle);
        self.clients[index] = match client {
            Client::Idle => self.invoke(index, roll),
            // One in eight answers is lost before or after taking effect.
            Client::Invoked { pending, .. } if roll.is_multiple_of(8) => {
                drop(pending);
                Client::Idle
            }
            Client::Invoked { pending, key, op } => Client::Applied {
                output: self.apply(&key, &op),
                pending,
            },
            Client::Applied { pending, .. } if roll.is_multiple_of(8) => {
                drop(pending);
                Client::Idle
            }
            Client::Applied { pending, output } => {
                pending.complete(Outcome::Ok(self.maybe_corrupt(output)));
                Client::Idle
            }
        };
    }

    fn invoke(&mut self, client: usize, roll: u32) -> Client {
        let key = format!("key{}", roll % self.keys).into_bytes();
        let op = match (roll / self.keys) % 5 {
            0 | 1 => Op::Read,
            2 => Op::Write(self.unique_value()),
            3 => {
                let expected = self.store.get(&key).map_or(Version::ABSENT, |(_, v)| *v);
                Op::Cas {
                    expected,
                    new: self.unique_value(),
                }
            }
            _ => Op::Delete,
        };
        let pending = self
            .recorder
            .invoke(ClientId(client as u64), key.clone(), op.clone());
        Client::Invoked { pending, key, op }
    }

    fn unique_value(&mut self) -> Value {
        self.writes += 1;
        format!("value{}", self.writes).into_bytes()
    }

    fn apply(&mut self, key: &Key, op: &Op) -> Output {
        let current = self.store.get(key).map_or(Version::ABSENT, |(_, v)| *v);
        match op {
            Op::Read => Output::Read(self.store.get(key).cloned()),
            Op::Cas { expected, .. } if *expected != current => Output::Rejected { current },
            Op::Write(new) | Op::Cas { new, .. } => {
                self.log_index += 1;
                let version = Version(self.log_index);
                self.store.insert(key.clone(), (new.clone(), version));
                Output::Applied(version)
            }
            Op::Delete => {
                self.log_index += 1;
                self.store.remove(key);
                Output::Applied(Version(self.log_index))
            }
        }
    }

    fn maybe_corrupt(&mut self, output: Output) -> Output {
        let Output::Read(seen) = output else {
            return output;
        };
        let this_read = self.reads_completed;
        self.reads_completed += 1;
        if self.corrupt_read == Some(this_read) {
            let version = seen.as_ref().map_or(Version(1), |(_, v)| *v);
            return Output::Read(Some((b"never written".to_vec(), version)));
        }
        Output::Read(seen)
    }
}

/// A deterministic stream of choices for the larger test.
fn xorshift_choices(mut seed: u64, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 16) as u32
        })
        .collect()
}

proptest! {
    #[test]
    fn histories_from_a_correct_store_are_accepted(
        clients in 1usize..5,
        keys in 1u32..4,
        choices in prop::collection::vec(any::<u32>(), 0..300),
    ) {
        let sim = Simulation::run(clients, keys, &choices, None);
        let report = check(&sim.recorder.history(), &CheckConfig::default());
        prop_assert!(report.is_linearizable(), "{}", report);
    }

    #[test]
    fn one_corrupted_read_is_always_rejected(
        clients in 1usize..5,
        keys in 1u32..4,
        choices in prop::collection::vec(any::<u32>(), 0..300),
        target in any::<prop::sample::Index>(),
    ) {
        let reads = Simulation::run(clients, keys, &choices, None).reads_completed;
        prop_assume!(reads > 0);
        let sim = Simulation::run(clients, keys, &choices, Some(target.index(reads)));
        let report = check(&sim.recorder.history(), &CheckConfig::default());
        prop_assert_eq!(report.violations().count(), 1, "{}", report);
    }
}

#[test]
fn thousand_operations_over_five_keys_check_quickly() {
    // Each operation takes about three steps: invoke, apply, complete.
    let sim = Simulation::run(5, 5, &xorshift_choices(0x5eed, 3_000), None);
    let history = sim.recorder.history();
    assert!(history.summary().operations >= 900);
    let report = check(&history, &CheckConfig::default());
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(report.keys.len(), 5);
}
