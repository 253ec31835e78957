//! Hand-written histories the checker must accept or reject.

use std::collections::HashMap;

use super::*;
use crate::op::{ClientId, Op, Outcome, Output, Version};
use crate::{LastIndex, PendingOp, Recorder};

/// Writes a history on key "k" as a script of invokes and completions.
#[derive(Default)]
struct Script {
    recorder: Recorder,
    pending: HashMap<&'static str, PendingOp>,
}

impl Script {
    fn invoke(&mut self, name: &'static str, op: Op) -> &mut Self {
        let client = ClientId(self.pending.len() as u64);
        let pending = self.recorder.invoke(client, "k", op);
        self.pending.insert(name, pending);
        self
    }

    fn ok(&mut self, name: &'static str, output: Output) -> &mut Self {
        self.end(name, Outcome::Ok(output))
    }

    fn end(&mut self, name: &'static str, outcome: Outcome) -> &mut Self {
        self.pending.remove(name).unwrap().complete(outcome);
        self
    }

    /// Invokes and completes at once.
    fn run(&mut self, name: &'static str, op: Op, output: Output) -> &mut Self {
        self.invoke(name, op).ok(name, output)
    }

    fn check(&self) -> KeyReport {
        let mut report = check(&self.recorder.history(), &CheckConfig::default());
        assert_eq!(report.keys.len(), 1);
        report.keys.remove(0)
    }

    fn assert_linearizable(&self) {
        let report = self.check();
        assert!(
            matches!(report.verdict, Verdict::Linearizable),
            "{:?}",
            report.verdict
        );
    }

    fn assert_violation(&self) -> Violation {
        match self.check().verdict {
            Verdict::Violation(violation) => *violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }
}

#[test]
fn sequential_history_is_linearizable() {
    Script::default()
        .run("r0", Op::Read, Output::absent())
        .run("w1", Op::write("a"), Output::applied(1))
        .run("r1", Op::Read, Output::read("a", 1))
        .run("c1", Op::cas(1, "b"), Output::applied(4))
        .run(
            "c2",
            Op::cas(1, "x"),
            Output::Rejected {
                current: Version(4),
            },
        )
        .run("r2", Op::Read, Output::read("b", 4))
        .run("d", Op::Delete, Output::applied(9))
        .run("r3", Op::Read, Output::absent())
        .run("c3", Op::cas(0, "c"), Output::applied(12))
        .run("r4", Op::Read, Output::read("c", 12))
        .assert_linearizable();
}

#[test]
fn overlapping_writes_may_apply_in_either_order() {
    for (a, b) in [(5, 6), (6, 5)] {
        let (last, last_version) = if a > b { ("a", a) } else { ("b", b) };
        let (first, first_version) = if a > b { ("b", b) } else { ("a", a) };
        Script::default()
            .invoke("wa", Op::write("a"))
            .invoke("wb", Op::write("b"))
            .invoke("during", Op::Read)
            .ok("during", Output::read(first, first_version))
            .ok("wa", Output::applied(a))
            .ok("wb", Output::applied(b))
            .run("after", Op::Read, Output::read(last, last_version))
            .assert_linearizable();
    }
}

#[test]
fn cas_race_has_exactly_one_winner() {
    Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .invoke("c1", Op::cas(1, "b"))
        .invoke("c2", Op::cas(1, "c"))
        .ok(
            "c2",
            Output::Rejected {
                current: Version(2),
            },
        )
        .ok("c1", Output::applied(2))
        .run("r", Op::Read, Output::read("b", 2))
        .assert_linearizable();
}

#[test]
fn unknown_write_may_take_effect_late() {
    Script::default()
        .invoke("wa", Op::write("a"))
        .end("wa", Outcome::Unknown)
        .run("wb", Op::write("b"), Output::applied(2))
        .run("r1", Op::Read, Output::read("b", 2))
        // The timed-out write lands after all, after b.
        .run("r2", Op::Read, Output::read("a", 7))
        .run("c", Op::cas(7, "c"), Output::applied(8))
        .assert_linearizable();
}

#[test]
fn unknown_write_may_never_take_effect() {
    Script::default()
        .invoke("wa", Op::write("a"))
        .end("wa", Outcome::Unknown)
        .run("r1", Op::Read, Output::absent())
        .run("wb", Op::write("b"), Output::applied(3))
        .run("r2", Op::Read, Output::read("b", 3))
        .assert_linearizable();
}

#[test]
fn unknown_write_explains_a_rejected_cas() {
    // No read saw "b", but the rejection reports the version it produced.
    Script::default()
        .run("wa", Op::write("a"), Output::applied(1))
        .invoke("wb", Op::write("b"))
        .end("wb", Outcome::Unknown)
        .run(
            "c",
            Op::cas(1, "c"),
            Output::Rejected {
                current: Version(7),
            },
        )
        .assert_linearizable();
}

#[test]
fn failed_operations_constrain_nothing() {
    Script::default()
        .invoke("wa", Op::write("a"))
        .end("wa", Outcome::Fail)
        .run("r", Op::Read, Output::absent())
        .assert_linearizable();
}

#[test]
fn stale_read_after_acknowledged_write_is_rejected() {
    let violation = Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .run("r", Op::Read, Output::absent())
        .assert_violation();
    assert_eq!(violation.key, b"k");
    assert_eq!(violation.prefix.len(), 1);
    assert_eq!(violation.blocked.op, Op::Read);
    assert_eq!(violation.state.value.as_deref(), Some(b"a".as_slice()));
    assert_eq!(violation.state.last_index, LastIndex::Exact(Version(1)));
    let text = violation.to_string();
    assert!(text.contains("cannot place"), "{text}");
}

#[test]
fn lost_write_is_rejected() {
    let violation = Script::default()
        .run("wa", Op::write("a"), Output::applied(1))
        .run("wb", Op::write("b"), Output::applied(2))
        .run("r", Op::Read, Output::read("a", 1))
        .assert_violation();
    assert_eq!(violation.prefix.len(), 2);
    assert_eq!(violation.blocked.op, Op::Read);
}

#[test]
fn read_of_a_value_never_written_is_rejected() {
    Script::default()
        .invoke("w", Op::write("a"))
        .run("r", Op::Read, Output::read("z", 1))
        .ok("w", Output::applied(1))
        .assert_violation();
}

#[test]
fn two_cas_on_one_version_cannot_both_win() {
    Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .invoke("c1", Op::cas(1, "b"))
        .invoke("c2", Op::cas(1, "c"))
        .ok("c1", Output::applied(2))
        .ok("c2", Output::applied(3))
        .assert_violation();
}

#[test]
fn versions_going_backwards_are_rejected() {
    Script::default()
        .run("wa", Op::write("a"), Output::applied(5))
        .run("wb", Op::write("b"), Output::applied(3))
        .assert_violation();
}

#[test]
fn read_with_the_wrong_version_is_rejected() {
    Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .run("r", Op::Read, Output::read("a", 2))
        .assert_violation();
}

#[test]
fn rejection_that_matches_the_expected_version_is_rejected() {
    Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .run(
            "c",
            Op::cas(1, "b"),
            Output::Rejected {
                current: Version(1),
            },
        )
        .assert_violation();
}

#[test]
fn outcome_that_does_not_fit_the_request_is_reported() {
    let violation = Script::default()
        .run("r", Op::Read, Output::applied(1))
        .assert_violation();
    assert_eq!(violation.blocked.op, Op::Read);
}

#[test]
fn exhausted_budget_is_inconclusive() {
    let mut script = Script::default();
    script.run("w", Op::write("a"), Output::applied(1));
    script.run("r", Op::Read, Output::read("a", 1));
    let report = check(&script.recorder.history(), &CheckConfig { max_steps: 1 });
    assert!(matches!(
        report.keys[0].verdict,
        Verdict::Unknown(Inconclusive::BudgetExhausted { steps: 1 })
    ));
    assert!(!report.is_linearizable());
    assert_eq!(report.inconclusive().count(), 1);
}

#[test]
fn many_unobserved_unknown_writes_do_not_blow_up() {
    let recorder = Recorder::new();
    let lost: Vec<_> = (0..200u64)
        .map(|i| recorder.invoke(ClientId(i), "k", Op::write(format!("lost{i}"))))
        .collect();
    for (i, value) in ["a", "b", "c"].iter().enumerate() {
        let version = i as u64 + 1;
        recorder
            .invoke(ClientId(1000), "k", Op::write(*value))
            .complete(Outcome::Ok(Output::applied(version)));
        recorder
            .invoke(ClientId(1000), "k", Op::Read)
            .complete(Outcome::Ok(Output::read(*value, version)));
    }
    drop(lost);
    let report = check(&recorder.history(), &CheckConfig::default());
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(report.keys[0].checked, 6);
}

#[test]
fn rejection_reporting_a_version_nobody_wrote_is_rejected() {
    Script::default()
        .run("w", Op::write("a"), Output::applied(1))
        .run(
            "c",
            Op::cas(0, "b"),
            Output::Rejected {
                current: Version(5),
            },
        )
        .assert_violation();
}

#[test]
fn rejection_reporting_an_overwritten_version_is_rejected() {
    // The lost write may have produced version 5, but version 9 replaced it
    // before the CAS was sent.
    Script::default()
        .run("wa", Op::write("a"), Output::applied(1))
        .invoke("lost", Op::write("x"))
        .end("lost", Outcome::Unknown)
        .run("wb", Op::write("b"), Output::applied(9))
        .run(
            "c",
            Op::cas(1, "c"),
            Output::Rejected {
                current: Version(5),
            },
        )
        .assert_violation();
}

// --- Operations that learn no version (a Redis client's GET, SET and EXEC)

#[test]
fn versionless_reads_and_writes_are_placed_by_value_and_time() {
    Script::default()
        .run("wa", Op::write("a"), Output::Done)
        .run("ra", Op::Read, Output::Value(Some(b"a".to_vec())))
        .invoke("wb", Op::write("b"))
        .run("rab", Op::Read, Output::Value(Some(b"a".to_vec())))
        .ok("wb", Output::Done)
        .run("rb", Op::Read, Output::read("b", 7))
        .run("rb2", Op::Read, Output::Value(Some(b"b".to_vec())))
        .assert_linearizable();
}

#[test]
fn a_versionless_read_older_than_an_acknowledged_write_is_rejected() {
    let violation = Script::default()
        .run("wa", Op::write("a"), Output::Done)
        .run("wb", Op::write("b"), Output::Done)
        .run("r", Op::Read, Output::Value(Some(b"a".to_vec())))
        .assert_violation();
    assert_eq!(violation.blocked.op, Op::Read);
}

#[test]
fn an_acknowledged_versionless_write_must_take_effect() {
    // Unlike an unknown write, an acknowledged one cannot be left out.
    Script::default()
        .run("w", Op::write("a"), Output::Done)
        .run("r", Op::Read, Output::Value(None))
        .assert_violation();
    Script::default()
        .invoke("w", Op::write("a"))
        .end("w", Outcome::Unknown)
        .run("r", Op::Read, Output::Value(None))
        .assert_linearizable();
}

#[test]
fn a_versionless_write_seen_late_still_bounds_the_versions_around_it() {
    // Versioned writes at 1 and 3 around an untold one: a read of version 1 after the
    // untold write was acknowledged is stale.
    Script::default()
        .run("w1", Op::write("a"), Output::applied(1))
        .run("w", Op::write("b"), Output::Done)
        .run("r", Op::Read, Output::read("a", 1))
        .assert_violation();
}
