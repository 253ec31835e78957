//! The Wing-Gong-Lowe search for a linearization of one key's calls.
//!
//! The invoke and end entries of every call sit in one doubly linked list in
//! time order. The search walks it from the head: at an invoke it tries to
//! place that call next (if the model allows it), at an end it must go back
//! (the call had to be placed by then), except that an optional call whose
//! window ended is abandoned instead. Placed and abandoned calls are unlinked,
//! and a (done-set, state) pair already explored is never explored again.

use std::collections::HashSet;

use crate::model::RegisterState;
use crate::reduce::{Compiled, symmetry_chain};

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

/// One end of a call in the time-ordered list.
struct Entry {
    call: usize,
    is_invoke: bool,
    /// The other end of the same call.
    partner: usize,
}

/// A decision on the search stack.
struct Frame {
    /// The invoke entry of the call decided.
    invoke: usize,
    /// The state before the decision.
    before: RegisterState,
    /// Placed (true) or abandoned (false).
    placed: bool,
}

/// The deepest point the search reached.
#[derive(Default)]
pub(crate) struct Best {
    depth: usize,
    /// Calls placed, in order, with the state after each.
    pub(crate) placed: Vec<(usize, RegisterState)>,
    /// A required call whose end was reached right there, unplaced.
    pub(crate) blocked: Option<usize>,
}

/// How a search ended.
pub(crate) enum SearchEnd {
    Linearizable,
    OutOfBudget,
    Stuck(Best),
}

/// The search over one key's calls.
pub(crate) struct Search<'c, 'a> {
    calls: &'c [Compiled<'a>],
    /// The interchangeable call each call must wait for.
    after: Vec<Option<usize>>,
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl<'c, 'a> Search<'c, 'a> {
    pub(crate) fn new(calls: &'c [Compiled<'a>]) -> Self {
        // At equal times: invokes, then required ends, then optional ends,
        // so an optional call stays available until the ops needing it end.
        let mut ends: Vec<(u64, u8, usize)> = Vec::with_capacity(calls.len() * 2);
        for (i, c) in calls.iter().enumerate() {
            ends.push((c.start, 0, i));
            ends.push((c.end, if c.required { 1 } else { 2 }, i));
        }
        ends.sort_unstable();

        let mut entries = vec![Entry {
            call: NIL,
            is_invoke: false,
            partner: NIL,
        }];
        let mut invoke_of = vec![NIL; calls.len()];
        for &(_, kind, call) in &ends {
            let is_invoke = kind == 0;
            let partner = if is_invoke { NIL } else { invoke_of[call] };
            if is_invoke {
                invoke_of[call] = entries.len();
            } else {
                entries[partner].partner = entries.len();
            }
            entries.push(Entry {
                call,
                is_invoke,
                partner,
            });
        }
        let n = entries.len();
        Search {
            calls,
            after: symmetry_chain(calls),
            entries,
            next: (1..=n).map(|i| if i == n { NIL } else { i }).collect(),
            prev: (0..n).map(|i| i.wrapping_sub(1)).collect(),
        }
    }

    pub(crate) fn run(mut self, max_steps: u64) -> (SearchEnd, u64) {
        let mut state = RegisterState::INITIAL;
        let mut done = DoneSet::new(self.calls.len());
        let mut stack: Vec<Frame> = Vec::new();
        let mut required_left = self.calls.iter().filter(|c| c.required).count();
        let mut best = Best::default();
        let mut entry = self.next[HEAD];
        let mut steps = 0;

        while required_left > 0 {
            if steps == max_steps {
                return (SearchEnd::OutOfBudget, steps);
            }
            steps += 1;
            let Some(current) = self.entries.get(entry) else {
                // Unreachable while required calls remain: the list ends
                // with ends. Treat it as a dead end.
                return (SearchEnd::Stuck(best), steps);
            };
            let (call, is_invoke) = (current.call, current.is_invoke);
            let required = self.calls[call].required;
            if is_invoke {
                let waits = self.after[call].is_some_and(|prior| !done.contains(prior));
                if !waits
                    && let Some(after) = state.step(&self.calls[call].call)
                    && done.visit(call, after)
                {
                    stack.push(Frame {
                        invoke: entry,
                        before: state,
                        placed: true,
                    });
                    state = after;
                    required_left -= usize::from(required);
                    self.lift(entry);
                    if stack.len() > best.depth {
                        best = self.best(&stack, state);
                    }
                    entry = self.next[HEAD];
                } else {
                    entry = self.next[entry];
                }
                continue;
            }
            if !required && done.visit(call, state) {
                // The window of an optional call is over: abandon it here.
                let invoke = current.partner;
                stack.push(Frame {
                    invoke,
                    before: state,
                    placed: false,
                });
                self.lift(invoke);
                entry = self.next[HEAD];
                continue;
            }
            if required && stack.len() == best.depth && best.blocked.is_none() {
                best.blocked = Some(call);
            }
            // Undo decisions back to the last placement, then try the next
            // candidate after it. An abandonment had no alternative.
            loop {
                let Some(frame) = stack.pop() else {
                    return (SearchEnd::Stuck(best), steps);
                };
                let undone = self.entries[frame.invoke].call;
                done.unmark(undone);
                state = frame.before;
                self.unlift(frame.invoke);
                if frame.placed {
                    required_left += usize::from(self.calls[undone].required);
                    entry = self.next[frame.invoke];
                    break;
                }
            }
        }
        (SearchEnd::Linearizable, steps)
    }

    fn best(&self, stack: &[Frame], top: RegisterState) -> Best {
        let afters = stack.iter().skip(1).map(|f| f.before);
        let placed = stack
            .iter()
            .zip(afters.chain(std::iter::once(top)))
            .filter(|(frame, _)| frame.placed)
            .map(|(frame, after)| (self.entries[frame.invoke].call, after))
            .collect();
        Best {
            depth: stack.len(),
            placed,
            blocked: None,
        }
    }

    /// Unlinks an invoke entry and its end.
    fn lift(&mut self, invoke: usize) {
        for e in [invoke, self.entries[invoke].partner] {
            let (p, n) = (self.prev[e], self.next[e]);
            self.next[p] = n;
            if n != NIL {
                self.prev[n] = p;
            }
        }
    }

    /// Relinks what [`Search::lift`] unlinked, in reverse order.
    fn unlift(&mut self, invoke: usize) {
        for e in [self.entries[invoke].partner, invoke] {
            let (p, n) = (self.prev[e], self.next[e]);
            self.next[p] = e;
            if n != NIL {
                self.prev[n] = e;
            }
        }
    }
}

/// The calls decided so far, and every (decided, state) pair explored.
struct DoneSet {
    bits: Vec<u64>,
    seen: HashSet<(Vec<u64>, RegisterState)>,
}

impl DoneSet {
    fn new(calls: usize) -> Self {
        DoneSet {
            bits: vec![0; calls.div_ceil(64)],
            seen: HashSet::new(),
        }
    }

    /// Marks `call` decided, leading to `state`, unless that configuration
    /// was explored before (then nothing changes and `false` is returned).
    fn visit(&mut self, call: usize, state: RegisterState) -> bool {
        self.bits[call / 64] |= 1 << (call % 64);
        if self.seen.insert((self.bits.clone(), state)) {
            return true;
        }
        self.unmark(call);
        false
    }

    fn contains(&self, call: usize) -> bool {
        self.bits[call / 64] & (1 << (call % 64)) != 0
    }

    fn unmark(&mut self, call: usize) {
        self.bits[call / 64] &= !(1 << (call % 64));
    }
}
