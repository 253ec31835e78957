//! Loopback tests: real Raft groups talking through the transport on
//! 127.0.0.1, each process-like `TestNode` serving one `RaftTransportService`.

mod mem_store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, Config, Raft, Vote};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::{Channel, Server};

use self::mem_store::{MemLog, MemMachine};
use super::forward::{self, ForwardError};
use super::{GrpcNetworkFactory, PeerChannels, RaftRouter, RaftTransportService};
use crate::proto::v1::raft_transport_client::RaftTransportClient;
use crate::proto::v1::{RaftCall, RaftCalls, RaftRequest};
use crate::raft::codec;

openraft::declare_raft_types!(
    /// Test type configuration: `String` commands, everything else default.
    TestTypes
);

/// How long any condition may take to become true.
const DEADLINE: Option<Duration> = Some(Duration::from_secs(10));

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "kvdb-transport-test".to_owned(),
        heartbeat_interval: 100,
        election_timeout_min: 1_000,
        election_timeout_max: 2_000,
        // Several chunks per snapshot, and logs purged right after one.
        snapshot_max_chunk_size: 64,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Config::default()
    };
    Arc::new(config.validate().unwrap())
}

/// One in-process "node": a transport server and one Raft per group.
struct TestNode {
    id: u64,
    addr: String,
    peers: PeerChannels,
    router: RaftRouter<TestTypes>,
    groups: BTreeMap<u64, (Raft<TestTypes>, MemMachine)>,
}

impl TestNode {
    async fn start(id: u64, groups: &[u64]) -> Self {
        Self::start_with(id, groups, false).await
    }

    /// A node whose transport serves forwarded client writes when `forwarded_writes`.
    async fn start_with(id: u64, groups: &[u64], forwarded_writes: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let peers = PeerChannels::default();
        let router = RaftRouter::new();
        let mut rafts = BTreeMap::new();
        for &group in groups {
            let machine = MemMachine::default();
            let network = GrpcNetworkFactory::new(group, peers.clone());
            let raft = Raft::new(id, config(), network, MemLog::default(), machine.clone())
                .await
                .unwrap();
            router.register(group, raft.clone());
            rafts.insert(group, (raft, machine));
        }
        let mut service = RaftTransportService::new(router.clone());
        if forwarded_writes {
            service = service.with_forwarded_writes();
        }
        let service = service.into_server();
        tokio::spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self {
            id,
            addr,
            peers,
            router,
            groups: rafts,
        }
    }

    fn raft(&self, group: u64) -> &Raft<TestTypes> {
        &self.groups[&group].0
    }

    fn applied(&self, group: u64) -> Vec<String> {
        self.groups[&group].1.values()
    }

    fn basic_node(&self) -> BasicNode {
        BasicNode::new(&self.addr)
    }

    /// A fresh channel to this node's transport.
    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy()
    }
}

fn members(nodes: &[TestNode]) -> BTreeMap<u64, BasicNode> {
    nodes.iter().map(|n| (n.id, n.basic_node())).collect()
}

/// Waits until every node agrees on a leader of `group`, and returns it.
async fn agreed_leader(nodes: &[TestNode], group: u64) -> &TestNode {
    let metrics = nodes[0]
        .raft(group)
        .wait(DEADLINE)
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .unwrap();
    let leader = metrics.current_leader.unwrap();
    for node in nodes {
        node.raft(group)
            .wait(DEADLINE)
            .current_leader(leader, "every node knows the leader")
            .await
            .unwrap();
    }
    nodes.iter().find(|n| n.id == leader).unwrap()
}

fn vote_request() -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(1, 2), None)
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(5))
}

#[tokio::test]
async fn two_groups_elect_and_commit_over_shared_channels() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start(id, &[1, 2]).await);
    }

    // --- node 1 bootstraps both groups, so it votes in both over its channels
    for group in [1, 2] {
        nodes[0]
            .raft(group)
            .initialize(members(&nodes))
            .await
            .unwrap();
    }

    // --- a write to each group commits and is applied on all three nodes
    for group in [1, 2] {
        let leader = agreed_leader(&nodes, group).await;
        let value = format!("hello group {group}");
        let written = leader
            .raft(group)
            .client_write(value.clone())
            .await
            .unwrap();
        for node in &nodes {
            node.raft(group)
                .wait(DEADLINE)
                .applied_index_at_least(Some(written.log_id.index), "write applied")
                .await
                .unwrap();
            assert_eq!(node.applied(group), vec![value.clone()]);
        }
    }

    // --- two groups, one channel per peer address
    assert_eq!(nodes[0].peers.len(), 2);
    for node in &nodes {
        assert!(
            node.peers.len() <= 2,
            "node {} pool: {}",
            node.id,
            node.peers.len()
        );
    }
}

#[tokio::test]
async fn learner_catches_up_through_chunked_snapshot() {
    let leader = TestNode::start(1, &[1]).await;
    let raft = leader.raft(1);
    raft.initialize(members(std::slice::from_ref(&leader)))
        .await
        .unwrap();
    raft.wait(DEADLINE)
        .current_leader(1, "leader")
        .await
        .unwrap();

    // --- write, snapshot, and purge the log the snapshot covers
    let mut expected = Vec::new();
    let mut last = 0;
    for i in 0..10 {
        expected.push(format!("value {i}"));
        last = raft
            .client_write(format!("value {i}"))
            .await
            .unwrap()
            .log_id
            .index;
    }
    raft.trigger().snapshot().await.unwrap();
    raft.wait(DEADLINE)
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "log purged")
        .await
        .unwrap();

    // --- a new learner can only be fed by InstallSnapshot
    let learner = TestNode::start(2, &[1]).await;
    raft.add_learner(2, learner.basic_node(), true)
        .await
        .unwrap();
    learner
        .raft(1)
        .wait(DEADLINE)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot installed",
        )
        .await
        .unwrap();
    assert_eq!(learner.applied(1), expected);
}

#[tokio::test]
async fn a_forwarded_write_is_applied_by_the_leader_and_never_forwarded_again() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start_with(id, &[1], true).await);
    }
    nodes[0].raft(1).initialize(members(&nodes)).await.unwrap();
    let leader = agreed_leader(&nodes, 1).await;
    let follower = nodes.iter().find(|n| n.id != leader.id).unwrap();
    let timeout = Duration::from_secs(5);

    // --- sent to the leader: committed and applied everywhere, the leader's outcome back
    let value = "forwarded".to_owned();
    let written = forward::client_write::<TestTypes>(
        crate::auth::Credentials::default().on(leader.channel()),
        1,
        &value,
        timeout,
    )
    .await
    .unwrap();
    for node in &nodes {
        node.raft(1)
            .wait(DEADLINE)
            .applied_index_at_least(Some(written.log_id.index), "forwarded write applied")
            .await
            .unwrap();
        assert_eq!(node.applied(1), vec![value.clone()]);
    }

    // --- sent to a follower: refused with the leader's whereabouts, not passed on
    let other = "to a follower".to_owned();
    let err = forward::client_write::<TestTypes>(
        crate::auth::Credentials::default().on(follower.channel()),
        1,
        &other,
        timeout,
    )
    .await
    .unwrap_err();
    let ForwardError::Refused(refused) = &err else {
        panic!("{err:?}")
    };
    let RaftError::APIError(ClientWriteError::ForwardToLeader(to)) = refused.as_ref() else {
        panic!("{refused:?}")
    };
    assert_eq!(to.leader_id, Some(leader.id));
    assert_eq!(leader.applied(1), vec![value]);
}

#[tokio::test]
async fn forwarded_writes_are_refused_where_not_served() {
    let node = TestNode::start(1, &[1]).await;
    let single = BTreeMap::from([(1, node.basic_node())]);
    node.raft(1).initialize(single).await.unwrap();
    agreed_leader(std::slice::from_ref(&node), 1).await;

    let value = "smuggled".to_owned();
    let err = forward::client_write::<TestTypes>(
        crate::auth::Credentials::default().on(node.channel()),
        1,
        &value,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ForwardError::Call(status) if status.code() == Code::PermissionDenied),
        "{err:?}"
    );
    assert!(node.applied(1).is_empty());
}

fn heartbeat() -> AppendEntriesRequest<TestTypes> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 2),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    }
}

#[tokio::test]
async fn message_for_unknown_group_is_not_found() {
    let node = TestNode::start(1, &[1]).await;

    // --- the raw service answers NOT_FOUND
    let mut client = RaftTransportClient::connect(format!("http://{}", node.addr))
        .await
        .unwrap();
    let payload = codec::encode(&heartbeat()).unwrap();
    let request = RaftRequest {
        group: 7,
        payload: payload.into(),
    };
    let status = client.append_entries(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("group 7"), "{status:?}");

    // --- openraft sees an unreachable peer and backs off
    let mut factory = GrpcNetworkFactory::<TestTypes>::new(7, PeerChannels::default());
    let mut network = factory.new_client(1, &node.basic_node()).await;
    let err = network
        .append_entries(heartbeat(), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

    // --- once unregistered, a known group is refused the same way
    assert!(node.router.unregister(1).is_some());
    let mut factory = GrpcNetworkFactory::<TestTypes>::new(1, PeerChannels::default());
    let mut network = factory.new_client(1, &node.basic_node()).await;
    let err = network
        .append_entries(heartbeat(), option())
        .await
        .unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_vote_for_a_group_not_hosted_yet_is_refused_not_failed() {
    let node = TestNode::start(1, &[1]).await;
    let mut factory = GrpcNetworkFactory::<TestTypes>::new(7, PeerChannels::default());
    let mut network = factory.new_client(1, &node.basic_node()).await;
    let request = vote_request();
    let response = network.vote(request.clone(), option()).await.unwrap();
    assert!(!response.vote_granted, "{response:?}");
    assert_eq!(
        response.vote, request.vote,
        "the candidate's own vote: no newer term"
    );
    assert_eq!(response.last_log_id, None);
}

#[tokio::test]
async fn malformed_payload_is_invalid_argument() {
    let node = TestNode::start(1, &[1]).await;
    let mut client = RaftTransportClient::connect(format!("http://{}", node.addr))
        .await
        .unwrap();
    let request = RaftRequest {
        group: 1,
        payload: vec![0xff; 3].into(),
    };
    let status = client.append_entries(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn remote_raft_error_comes_back_as_remote_error() {
    let node = TestNode::start(1, &[1]).await;
    node.raft(1).shutdown().await.unwrap();

    let mut factory = GrpcNetworkFactory::<TestTypes>::new(1, PeerChannels::default());
    let mut network = factory.new_client(1, &node.basic_node()).await;
    let err = network.vote(vote_request(), option()).await.unwrap_err();
    let RPCError::RemoteError(remote) = err else {
        panic!("expected a remote error, got {err:?}");
    };
    assert_eq!(remote.target, 1);
    assert_eq!(remote.target_node, Some(node.basic_node()));
    assert!(
        matches!(remote.source, RaftError::Fatal(Fatal::Stopped)),
        "{remote:?}"
    );
}

#[tokio::test]
async fn peer_that_is_down_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);

    let mut factory = GrpcNetworkFactory::<TestTypes>::new(1, PeerChannels::default());
    let mut network = factory.new_client(2, &BasicNode::new(addr)).await;
    let err = network.vote(vote_request(), option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn invalid_peer_address_is_unreachable() {
    let peers = PeerChannels::default();
    let mut factory = GrpcNetworkFactory::<TestTypes>::new(1, peers.clone());
    let mut network = factory.new_client(2, &BasicNode::new("not a uri")).await;
    let err = network.vote(vote_request(), option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    assert!(peers.is_empty());
}

#[tokio::test]
async fn groups_share_one_channel_per_peer() {
    let peers = PeerChannels::default();
    let addrs = ["127.0.0.1:7001", "127.0.0.1:7002"];
    for group in [1, 2, 3] {
        let mut factory = GrpcNetworkFactory::<TestTypes>::new(group, peers.clone());
        for (target, addr) in (2..).zip(addrs) {
            factory.new_client(target, &BasicNode::new(addr)).await;
        }
    }
    assert_eq!(peers.len(), 2);

    // --- forgetting a peer drops its channel from the pool
    assert!(peers.remove(addrs[0]));
    assert!(!peers.remove(addrs[0]));
    assert_eq!(peers.len(), 1);
}

#[tokio::test]
async fn streamed_calls_fail_as_their_unary_call_would() {
    let node = TestNode::start(1, &[1]).await;

    // --- the raw stream answers each call by id, with the unary call's status code
    let mut client = RaftTransportClient::connect(format!("http://{}", node.addr))
        .await
        .unwrap();
    let append = AppendEntriesRequest::<TestTypes> {
        vote: Vote::new(1, 2),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    };
    let calls = RaftCalls {
        calls: vec![
            RaftCall {
                id: 10,
                request: Some(RaftRequest {
                    group: 7,
                    payload: codec::encode(&append).unwrap().into(),
                }),
            },
            RaftCall {
                id: 11,
                request: Some(RaftRequest {
                    group: 1,
                    payload: vec![0xff; 3].into(),
                }),
            },
        ],
    };
    let mut replies = client
        .append_entries_stream(tokio_stream::iter([calls]))
        .await
        .unwrap()
        .into_inner();
    let mut codes = BTreeMap::new();
    while codes.len() < 2 {
        let message = replies.message().await.unwrap().expect("a reply per call");
        for reply in message.replies {
            assert!(reply.reply.is_none(), "{reply:?}");
            codes.insert(reply.id, Code::from(reply.code));
        }
    }
    assert_eq!(
        codes,
        BTreeMap::from([(10, Code::NotFound), (11, Code::InvalidArgument)])
    );

    // --- through the network, the unknown group is an unreachable peer
    let mut factory = GrpcNetworkFactory::<TestTypes>::new(7, PeerChannels::default());
    let mut network = factory.new_client(1, &node.basic_node()).await;
    let err = network.append_entries(append, option()).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}
