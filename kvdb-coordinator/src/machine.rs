//! The coordinator's Raft state machine: [`MetaState`] behind core's
//! [`Machine`] contract, publishing every applied batch to the [`Feed`].
//!
//! The state lives in memory only. It is durable through the Raft log and
//! snapshots: after a restart, core's `StateMachineStore` imports the stored
//! snapshot and openraft re-applies the committed log after it, so the map
//! comes back exactly as it was.

use std::io;
use std::sync::Arc;

use kvdb_core::raft::state_machine::{Applied, Machine};
use openraft::{BasicNode, Entry, EntryPayload, LogId, StoredMembership};

use crate::command::{CommandResult, Outcome};
use crate::event::SharedEvent;
use crate::feed::{Feed, FeedEvent, View};
use crate::raft_group::TypeConfig;
use crate::state::MetaState;

/// The metadata state plus what Raft needs to know about it.
#[derive(Debug)]
pub struct MetaMachine {
    state: MetaState,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    feed: Arc<Feed>,
}

impl MetaMachine {
    /// An empty machine keeping `history` deltas, publishing to `feed`.
    pub fn new(history: usize, feed: Arc<Feed>) -> Self {
        Self {
            state: MetaState::new(history),
            applied: None,
            membership: StoredMembership::default(),
            feed,
        }
    }

    /// The metadata state, for reads that need more than the [`View`]
    /// (the delta history).
    pub fn state(&self) -> &MetaState {
        &self.state
    }

    fn publish(&self, events: Vec<FeedEvent>) {
        let mut view = View::new(
            self.state.map().clone(),
            self.state.init_params(),
            self.state.members().clone(),
            self.applied,
        );
        view.scheduler_paused = self.state.scheduler_paused();
        self.feed.publish(view, events);
    }
}

impl Machine<TypeConfig> for MetaMachine {
    fn applied_state(
        &self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    fn apply(
        &mut self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Applied<CommandResult>, io::Error> {
        let before = self.state.version();
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            self.applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Normal(command) => self.state.apply(command),
                EntryPayload::Blank => Ok(Outcome::Version(self.state.version())),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(Outcome::Version(self.state.version()))
                }
            };
            responses.push(response);
        }
        let events = match self.state.deltas_after(before) {
            Some(deltas) => deltas
                .into_iter()
                .map(|delta| FeedEvent::Delta(SharedEvent::delta(delta)))
                .collect(),
            // More changes in one batch than the history holds.
            None => vec![FeedEvent::Reset],
        };
        self.publish(events);
        Ok(responses.into())
    }

    fn export(&self) -> Result<Vec<u8>, io::Error> {
        self.state.export().map_err(io::Error::other)
    }

    fn import(
        &mut self,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        data: &[u8],
    ) -> Result<(), io::Error> {
        self.state.import(data).map_err(io::Error::other)?;
        self.applied = last_applied;
        self.membership = membership;
        self.publish(vec![FeedEvent::Reset]);
        Ok(())
    }
}
