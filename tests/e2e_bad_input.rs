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
