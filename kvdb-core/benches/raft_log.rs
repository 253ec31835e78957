//! The Raft log write path: durable writes through the shared log database's writer thread,
//! alone and with group commit across groups, and a whole single-node Raft write (append,
//! commit, apply) through openraft.
//!
//! `RaftLogStorage::append` cannot be called directly from outside openraft: it takes a
//! `LogFlushed` callback whose constructor is private to openraft. So the log is measured two
//! ways instead:
//! - `raft_log_writer`: `save_vote`, which takes the same path as an append (encode, queue to
//!   the writer thread, one durable redb transaction, fsync, answer) with a one-row payload.
//!   One group alone shows the cost of one durable commit; 8 groups writing at once show what
//!   group commit saves, against the same load with group commit off.
//! - `raft_write`: `Raft::client_write` on a one-member group over `GroupLogStore` and a
//!   `StateMachineStore` with a trivial machine: the real append (openraft builds the
//!   callback), commit and apply, with no network. One writer at a time, then 50 at once (the
//!   load generator's default concurrency), where openraft batches appends.
//!
//! Every figure includes an fsync, so it depends on the disk far more than on the code.
//!
//! Run: `cargo bench -p kvdb-core --bench raft_log -- --quick`.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use kvdb_core::raft::log_store::{LogDb, LogDbOptions};
use kvdb_core::raft::state_machine::{Applied, AppliedState, Machine, StateMachineStore};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::RaftLogStorage;
use openraft::{AnyError, BasicNode, Entry, EntryPayload, LogId, Raft, StoredMembership, Vote};
use tokio::runtime::Runtime;

openraft::declare_raft_types!(
    /// A bench group: opaque byte commands, no responses.
    BenchConfig:
        D = Vec<u8>,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<BenchConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Groups writing at once in the group-commit case.
const GROUPS: u64 = 8;
/// Concurrent writers in the concurrent Raft write case.
const WRITERS: usize = 50;
/// Command size, as the load generator's default value size.
const COMMAND_SIZE: usize = 100;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_writer(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("raft_log_writer");

    for group_commit in [true, false] {
        let options = LogDbOptions {
            group_commit,
            ..LogDbOptions::default()
        };
        let name = if group_commit {
            "group_commit"
        } else {
            "no_group_commit"
        };
        let db = LogDb::open(dir.path().join(format!("{name}.redb")), options).expect("open");
        let mut stores: Vec<_> = (1..=GROUPS).map(|g| db.group::<BenchConfig>(g)).collect();
        let mut term = 0;

        if group_commit {
            group.throughput(Throughput::Elements(1));
            group.bench_function("save_vote/1_group", |b| {
                b.iter(|| {
                    term += 1;
                    rt.block_on(stores[0].save_vote(&Vote::new(term, 1)))
                        .expect("save vote")
                })
            });
        }
        group.throughput(Throughput::Elements(GROUPS));
        group.bench_function(
            BenchmarkId::new(format!("save_vote/{GROUPS}_groups"), name),
            |b| {
                b.iter(|| {
                    term += 1;
                    let vote = Vote::new(term, 1);
                    let saves = stores.iter_mut().map(|s| s.save_vote(&vote));
                    for result in rt.block_on(join_all(saves)) {
                        result.expect("save vote");
                    }
                })
            },
        );
    }
    group.finish();
}

/// A machine that only records what Raft needs: the applied log id and membership.
#[derive(Default)]
struct NullMachine {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
}

impl Machine<BenchConfig> for NullMachine {
    fn applied_state(&self) -> Result<AppliedState, io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    fn apply(&mut self, entries: Vec<Entry<BenchConfig>>) -> Result<Applied<()>, io::Error> {
        let count = entries.len();
        for entry in entries {
            self.applied = Some(entry.log_id);
            if let EntryPayload::Membership(m) = entry.payload {
                self.membership = StoredMembership::new(Some(entry.log_id), m);
            }
        }
        Ok(vec![(); count].into())
    }

    fn export(&self) -> Result<Vec<u8>, io::Error> {
        Ok(Vec::new())
    }

    fn import(
        &mut self,
        last_applied: Option<LogId<u64>>,
        membership: StoredMembership<u64, BasicNode>,
        _data: &[u8],
    ) -> Result<(), io::Error> {
        self.applied = last_applied;
        self.membership = membership;
        Ok(())
    }
}

/// The network of a one-member group: there is never anyone to call.
struct NoPeers;

type RpcResult<T, E = RaftError<u64>> = Result<T, RPCError<u64, BasicNode, E>>;

fn unreachable<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(
        "a one-member group has no peers",
    )))
}

impl RaftNetwork<BenchConfig> for NoPeers {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<BenchConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        Err(unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<BenchConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        Err(unreachable())
    }
}

impl RaftNetworkFactory<BenchConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

/// Starts a one-member group on `db` and waits until it leads.
async fn start_leader(db: &LogDb) -> Raft<BenchConfig> {
    let config = openraft::Config::default().validate().expect("raft config");
    let log = db.group::<BenchConfig>(1);
    let sm = StateMachineStore::open(db.database().clone(), 1, NullMachine::default())
        .expect("state machine");
    let raft = Raft::new(1, Arc::new(config), NoPeers, log, sm)
        .await
        .expect("raft");
    raft.initialize(BTreeMap::from([(1, BasicNode::default())]))
        .await
        .expect("initialize");
    raft.wait(Some(Duration::from_secs(10)))
        .current_leader(1, "the only member leads")
        .await
        .expect("leader");
    raft
}

fn bench_raft_write(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = LogDb::open(dir.path().join("raft.redb"), LogDbOptions::default()).expect("open");
    let raft = rt.block_on(start_leader(&db));
    let command = vec![b'v'; COMMAND_SIZE];
    let mut group = c.benchmark_group("raft_write");

    group.throughput(Throughput::Elements(1));
    group.bench_function("client_write/1_writer", |b| {
        b.iter(|| {
            rt.block_on(raft.client_write(command.clone()))
                .expect("write")
        })
    });
    group.throughput(Throughput::Elements(WRITERS as u64));
    group.bench_function(format!("client_write/{WRITERS}_writers"), |b| {
        b.iter(|| {
            let writes = (0..WRITERS).map(|_| raft.client_write(command.clone()));
            for result in rt.block_on(join_all(writes)) {
                result.expect("write");
            }
        })
    });
    group.finish();
    rt.block_on(raft.shutdown()).expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_writer, bench_raft_write
}
criterion_main!(benches);
