//! `KvNode.Calls`: operations on one stream are answered like their unary RPCs.

mod common;

use std::time::Duration;

use common::{TestCluster, put_req, target};
use kvdb_core::Epoch;
use kvdb_core::error::{KvError, RoutingError};
use kvdb_core::proto::v1 as pb;
use kvdb_core::status::from_call_error;
use pb::node_call::Op;
use pb::reply::Result as Outcome;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Replies from `inbound` until every id in `ids` has one.
async fn replies_for(
    inbound: &mut tonic::Streaming<pb::Replies>,
    ids: &[u64],
) -> Vec<(u64, Outcome)> {
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .expect("replies within 10 s")
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        for reply in message.replies {
            assert!(ids.contains(&reply.id), "unexpected reply id {}", reply.id);
            got.push((reply.id, reply.result.expect("every reply has a result")));
        }
    }
    got.sort_by_key(|(id, _)| *id);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_one_stream_get_their_own_answers_and_errors() {
    let cluster = TestCluster::start(3, 8, 3).await;
    let key = b"stream-key".to_vec();
    let shard = cluster.shard_of(&key);
    let leader = cluster.address(cluster.raft_leader(shard.id).unwrap());
    let other_key = (0..1000)
        .map(|i| format!("other-{i}").into_bytes())
        .find(|k| cluster.shard_of(k).id != shard.id)
        .unwrap();
    let mut stale = target(&shard);
    stale.epoch = Epoch(0).0;
    let put = |key: Vec<u8>, target: pb::ShardTarget| {
        Op::Put(pb::NodePutRequest {
            target: Some(target),
            request: Some(put_req(key, "streamed")),
        })
    };

    let (outbound, calls) = mpsc::unbounded_channel();
    let mut inbound = cluster
        .client(&leader)
        .calls(UnboundedReceiverStream::new(calls))
        .await
        .unwrap()
        .into_inner();

    tracing::info!("--- one message: a good write, a stale epoch, a foreign key, no operation");
    let call = |id, op| pb::NodeCall { id, op };
    outbound
        .send(pb::NodeCalls {
            calls: vec![
                call(1, Some(put(key.clone(), target(&shard)))),
                call(2, Some(put(key.clone(), stale))),
                call(3, Some(put(other_key, target(&shard)))),
                call(4, None),
            ],
        })
        .unwrap();
    let replies = replies_for(&mut inbound, &[1, 2, 3, 4]).await;
    let Outcome::Put(written) = &replies[0].1 else {
        panic!("the write failed: {:?}", replies[0].1);
    };
    assert!(written.applied);
    let error = |outcome: &Outcome| match outcome {
        Outcome::Error(e) => from_call_error(e),
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(
        matches!(error(&replies[1].1), KvError::Routing(RoutingError::StaleEpoch { current, .. }) if current == shard.epoch),
        "{:?}",
        replies[1].1
    );
    assert!(
        matches!(
            error(&replies[2].1),
            KvError::Routing(RoutingError::ShardMoved { .. })
        ),
        "{:?}",
        replies[2].1
    );
    assert!(matches!(error(&replies[3].1), KvError::InvalidArgument(_)));

    tracing::info!("--- a later read on the same stream sees the write");
    outbound
        .send(pb::NodeCalls {
            calls: vec![call(
                5,
                Some(Op::Get(pb::NodeGetRequest {
                    target: Some(target(&shard)),
                    request: Some(pb::GetRequest {
                        key: key.clone().into(),
                        consistency: pb::Consistency::Strong as i32,
                        hash_fields: None,
                        hash_page: None,
                    }),
                })),
            )],
        })
        .unwrap();
    let replies = replies_for(&mut inbound, &[5]).await;
    let Outcome::Get(got) = &replies[0].1 else {
        panic!("the read failed: {:?}", replies[0].1);
    };
    assert!(got.found);
    assert_eq!(got.value.as_ref(), b"streamed");
    assert_eq!(got.version, written.version);

    tracing::info!("--- the node ends the stream once the client closes its side");
    drop(outbound);
    let end = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_ends_its_open_streams() {
    let mut cluster = TestCluster::start(3, 8, 3).await;
    let address = cluster.address(0);
    let (outbound, calls) = mpsc::unbounded_channel::<pb::NodeCalls>();
    let mut inbound = cluster
        .client(&address)
        .calls(UnboundedReceiverStream::new(calls))
        .await
        .unwrap()
        .into_inner();

    tracing::info!("--- the node stops although the client keeps its side open");
    tokio::time::timeout(Duration::from_secs(20), cluster.stop_node(0))
        .await
        .expect("an open call stream does not hold up the node's shutdown");
    let end = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("the stream ends");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    drop(outbound);
    cluster.shutdown().await;
}
