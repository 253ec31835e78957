//! The coordinator's openraft group: its type configuration, its storage in
//! the data directory, and the one-time bootstrap.
//!
//! Storage is core's: one redb file (`coordinator.redb`) holds the log, the
//! vote and the snapshots of group [`GROUP_ID`]; the state machine is a
//! [`MetaMachine`]. Messages travel over core's `RaftTransport` service,
//! which the coordinator's server hosts next to the Coordinator service.
//!
//! Bootstrap: a single member initializes itself. In a group, only the member
//! with the lowest id initializes, with every peer, and only while its log is
//! empty; the others wait to hear from it. A restart finds the log non-empty
//! and skips this step. Out of scope: membership changes of a running group
//! (adding or replacing a coordinator member), and re-bootstrapping a lowest
//! member that lost its data directory (its peers would refuse it).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use kvdb_core::data_format::{self, DirKind};
use kvdb_core::raft::log_store::{GroupLogStore, LogDb, LogDbOptions};
use kvdb_core::raft::state_machine::StateMachineStore;
use kvdb_core::raft::transport::{
    GrpcNetworkFactory, PeerChannels, PeerChannelsConfig, RaftRouter,
};
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Entry, Raft, SnapshotPolicy};
use tokio::sync::RwLock;

use crate::command::{Command, CommandResult};
use crate::config::CoordinatorConfig;
use crate::error::CoordinatorError;
use crate::feed::Feed;
use crate::machine::MetaMachine;

openraft::declare_raft_types!(
    /// The Raft types of the coordinator group.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The coordinator group's id on the Raft transport.
pub const GROUP_ID: u64 = 0;
/// The redb file of the coordinator's log, vote and snapshots.
pub const LOG_FILE: &str = "coordinator.redb";

/// The coordinator's Raft handle.
pub type MetaRaft = Raft<TypeConfig>;

/// A running coordinator Raft group and what serves it.
pub struct RaftGroup {
    /// The Raft handle.
    pub raft: MetaRaft,
    /// The state machine, for reads that need the delta history.
    pub machine: Arc<RwLock<MetaMachine>>,
    /// Dispatches incoming Raft messages to [`RaftGroup::raft`].
    pub router: RaftRouter<TypeConfig>,
    /// Connections to the other members (also used to forward requests).
    pub peers: PeerChannels,
}

fn internal(what: &str) -> impl FnOnce(String) -> CoordinatorError + '_ {
    move |e| CoordinatorError::Internal(format!("{what}: {e}"))
}

/// Opens (or creates) the group's storage under `config.data_dir` and starts
/// its Raft. Bootstraps when this member is the designated one and the log
/// is empty.
pub async fn open(
    config: &CoordinatorConfig,
    feed: Arc<Feed>,
) -> Result<RaftGroup, CoordinatorError> {
    let data_dir = config.data_dir.clone();
    let history = config.delta_history;
    // Before anything opens a file in it: a directory that is not ours stays untouched.
    let dir = data_dir.clone();
    tokio::task::spawn_blocking(move || data_format::claim(&dir, DirKind::Coordinator))
        .await
        .map_err(|e| CoordinatorError::Internal(format!("claim data directory: {e}")))?
        .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
    let stores = tokio::task::spawn_blocking(move || {
        let log_db = LogDb::open_when_free(data_dir.join(LOG_FILE), LogDbOptions::default())
            .map_err(|e| e.to_string())?;
        let machine = MetaMachine::new(history, feed);
        let sm = StateMachineStore::open(log_db.database().clone(), GROUP_ID, machine)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((log_db.group::<TypeConfig>(GROUP_ID), sm))
    })
    .await
    .map_err(|e| CoordinatorError::Internal(format!("open storage: {e}")))?;
    let (log_store, sm): (GroupLogStore<TypeConfig>, _) =
        stores.map_err(internal("open storage"))?;
    let machine = sm.machine();

    let peers = PeerChannels::new(PeerChannelsConfig {
        credentials: config
            .auth
            .credentials()
            .map_err(|e| CoordinatorError::InvalidArgument(format!("cluster token: {e}")))?,
        ..PeerChannelsConfig::default()
    });
    let network = GrpcNetworkFactory::<TypeConfig>::new(GROUP_ID, peers.clone());
    let raft_config = raft_config(config)?;
    let raft = Raft::new(config.id, raft_config, network, log_store, sm)
        .await
        .map_err(|e| internal("start raft")(e.to_string()))?;
    let router = RaftRouter::new();
    router.register(GROUP_ID, raft.clone());
    if !config.join {
        bootstrap(&raft, config.id, &config.members()).await?;
    }
    Ok(RaftGroup {
        raft,
        machine,
        router,
        peers,
    })
}

fn raft_config(config: &CoordinatorConfig) -> Result<Arc<openraft::Config>, CoordinatorError> {
    let election = config.raft_election_timeout.as_millis() as u64;
    let raft_config = openraft::Config {
        cluster_name: "kvdb-coordinator".into(),
        heartbeat_interval: config.raft_heartbeat_interval.as_millis() as u64,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.snapshot_every,
        ..Default::default()
    };
    let validated = raft_config
        .validate()
        .map_err(|e| CoordinatorError::InvalidArgument(format!("raft config: {e}")))?;
    Ok(Arc::new(validated))
}

/// Initializes the group once: by the lowest-id member, with every member.
async fn bootstrap(
    raft: &MetaRaft,
    id: u64,
    members: &BTreeMap<u64, String>,
) -> Result<(), CoordinatorError> {
    let designated = members.keys().next() == Some(&id);
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| internal("raft")(e.to_string()))?;
    if !designated || initialized {
        return Ok(());
    }
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    tracing::info!(id, members = ?members, "bootstrapping the coordinator group");
    match raft.initialize(nodes).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(internal("bootstrap")(e.to_string())),
    }
}
