//! Requests that break the protocol, sent with the generated gRPC stubs as any other
//! language's client would: each gets `INVALID_ARGUMENT` with the `x-kvdb-error` trailer and
//! changes nothing.

mod common;

use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_gateway_client::KvGatewayClient;
use kvdb::core::status::ERROR_KIND;
use tonic::Code;

use common::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_an_undefined_consistency_is_refused() {
    let test = TestCluster::start(3).await;
    let address = test
        .cluster
        .gateway_address()
        .expect("the cluster runs a gateway");
    let mut gateway = KvGatewayClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let get = |consistency| pb::GetRequest {
        key: b"k".to_vec().into(),
        consistency,
        hash_fields: None,
        hash_page: None,
    };
    let status = gateway.get(get(99)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.metadata().contains_key(ERROR_KIND), "{status:?}");
    assert!(status.message().contains("consistency 99"), "{status:?}");
    // The defined values still work.
    for consistency in [0, 1, 2] {
        let found = gateway.get(get(consistency)).await.unwrap().into_inner();
        assert!(!found.found);
    }
    test.stop().await;
}

/// Requests tonic refuses before KvDB code runs: bytes that are not the request's protobuf,
/// and a message over the server's limit. Both are bad input like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_oversized_requests_are_invalid_arguments() {
    use kvdb::core::call_link::MAX_CLIENT_MESSAGE_BYTES;
    use tonic::codegen::http::uri::PathAndQuery;

    let test = TestCluster::start(3).await;
    let address = test.cluster.gateway_address().unwrap();
    let node = test.cluster.node_address(0);
    for server in [address.to_string(), node.to_string()] {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{server}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_encoding_message_size(2 * MAX_CLIENT_MESSAGE_BYTES);
        grpc.ready().await.unwrap();
        let path = if server == address.to_string() {
            "/kvdb.v1.KvGateway/Put"
        } else {
            "/kvdb.v1.KvNode/Put"
        };
        // A varint where the request has bytes: not a put request.
        let not_a_put = prost_types::Duration {
            seconds: 5,
            nanos: 0,
        };
        let codec = tonic_prost::ProstCodec::<prost_types::Duration, pb::PutResponse>::default();
        let status = grpc
            .unary(
                tonic::Request::new(not_a_put),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{server}: {status:?}");
        assert_eq!(
            status.metadata().get(ERROR_KIND).unwrap(),
            "INVALID_ARGUMENT",
            "{server}: {status:?}"
        );

        // One byte over what the server decodes.
        let huge = pb::PutRequest {
            key: b"huge".to_vec().into(),
            value: vec![7u8; MAX_CLIENT_MESSAGE_BYTES].into(),
            ..Default::default()
        };
        let codec = tonic_prost::ProstCodec::<pb::PutRequest, pb::PutResponse>::default();
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(
                tonic::Request::new(huge),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{server}: {status:?}");
        assert!(
            status.metadata().contains_key(ERROR_KIND),
            "{server}: {status:?}"
        );
    }
    test.stop().await;
}
