//! The gateway's health and errors follow whether it can route: with no shard map (no
//! coordinator reachable) it says NOT_SERVING and requests fail UNAVAILABLE with
//! `NO_SHARD_MAP` at their deadline, not DEADLINE_EXCEEDED; with a map it says SERVING.

mod common;

use std::time::Duration;

use kvdb::core::proto::v1 as pb;
use kvdb::core::proto::v1::kv_gateway_client::KvGatewayClient;
use kvdb::core::status::ERROR_KIND;
use kvdb::gateway::{Gateway, serve};
use kvdb_client::ExecutorConfig;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use common::{TestCluster, wait_until_async};

const SERVICE: &str = "kvdb.v1.KvGateway";

async fn status(channel: &Channel, service: &str) -> ServingStatus {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    let reply = HealthClient::new(channel.clone())
        .check(request)
        .await
        .unwrap();
    reply.into_inner().status()
}

#[tokio::test]
async fn without_a_coordinator_the_gateway_is_not_serving_and_answers_unavailable() {
    // A coordinator address that nothing listens on.
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let coordinator = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let gateway = Gateway::connect(&[coordinator], ExecutorConfig::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(
            &gateway,
            listener,
            kvdb::core::incoming::Listening::default(),
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    assert_eq!(status(&channel, SERVICE).await, ServingStatus::NotServing);
    assert_eq!(status(&channel, "").await, ServingStatus::NotServing);

    let mut get = Request::new(pb::GetRequest {
        key: b"k".to_vec().into(),
        consistency: pb::Consistency::Strong as i32,
        hash_fields: None,
        hash_page: None,
    });
    get.set_timeout(Duration::from_millis(300));
    let refused = KvGatewayClient::new(channel).get(get).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get(ERROR_KIND)
            .map(|v| v.to_str().unwrap()),
        Some("NO_SHARD_MAP"),
        "{refused:?}"
    );
    drop(stop);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_shard_map_the_gateway_is_serving() {
    let test = TestCluster::start(3).await;
    let address = test
        .cluster
        .gateway_address()
        .expect("the cluster runs a gateway");
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let serving = || {
        let channel = channel.clone();
        async move {
            status(&channel, SERVICE).await == ServingStatus::Serving
                && status(&channel, "").await == ServingStatus::Serving
        }
    };
    wait_until_async("the gateway to serve", serving).await;
    test.stop().await;
}
