//! Tokens on every gRPC plane, over real servers on loopback: every RPC of every service in
//! the compiled descriptors is refused without a token, the roles get what they grant and no
//! more, and the cluster's own traffic (registration, heartbeats, Raft) runs on the cluster
//! token.

mod common;

use std::time::Duration;

use common::TestCluster;
use kvdb::coordinator::admin::AdminClient;
use kvdb::core::auth::{AuthConfig, Credentials};
use kvdb::core::tls::{ClientTls, TlsFiles};
use kvdb_client::{ExecutorConfig, GatewayClient, Kv};
use prost::Message;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const CLUSTER_TOKEN: &str = "cluster-secret-1";

fn auth() -> AuthConfig {
    AuthConfig {
        cluster_token: Some(CLUSTER_TOKEN.to_owned()),
        client_tokens: vec![
            "read=reader-1".to_owned(),
            "read-write=writer-1".to_owned(),
            "admin=operator-1".to_owned(),
        ],
        tls: None,
    }
}

/// Calls `path` on `address` with an empty request, presenting `token`: the status code.
async fn call(tls: Option<&ClientTls>, address: &str, path: &str, token: Option<&str>) -> Code {
    let credentials = Credentials::bearer(token).unwrap().with_tls(tls.cloned());
    let channel: Channel = credentials
        .endpoint(address)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(credentials.on(channel));
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let mut request = tonic::Request::new(());
    request.set_timeout(Duration::from_secs(5));
    let path = PathAndQuery::try_from(path.to_owned()).unwrap();
    match grpc.unary(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Every `/package.Service/Method` of the compiled descriptors, with its service's name.
fn every_rpc() -> Vec<(String, String)> {
    let set =
        prost_types::FileDescriptorSet::decode(kvdb::core::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut rpcs = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let name = format!("{}.{}", file.package(), service.name());
                rpcs.push((name.clone(), format!("/{name}/{}", method.name())));
            }
        }
    }
    rpcs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_is_refused_without_a_token_and_roles_get_what_they_grant() {
    tokens_on_every_plane(None).await;
}

/// The same over TLS (client certificates optional, so anonymous callers reach the tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_every_rpc_is_refused_without_a_token_and_roles_get_what_they_grant() {
    let certs = tempfile::tempdir().unwrap();
    let files = kvdb::core::tls::write_throwaway(certs.path(), &["127.0.0.1"]).unwrap();
    tokens_on_every_plane(Some(TlsFiles {
        require_client_cert: false,
        ..files
    }))
    .await;
}

async fn tokens_on_every_plane(tls_files: Option<TlsFiles>) {
    let cluster_tls = tls_files.clone();
    let test = TestCluster::start_with(3, move |config| {
        config.auth = AuthConfig {
            tls: cluster_tls,
            ..auth()
        }
    })
    .await;
    // Callers trust the CA and present no certificate: only their tokens tell them apart.
    let tls = tls_files.map(|files| ClientTls::load(&files.ca, None).unwrap());
    let tls = tls.as_ref();
    let credentials =
        |token: Option<&str>| Credentials::bearer(token).unwrap().with_tls(tls.cloned());
    let admin_client = |url: &str| {
        let client = AdminClient::new(url).unwrap();
        match tls {
            Some(tls) => client.with_tls(tls).unwrap(),
            None => client,
        }
    };
    let cluster = &test.cluster;
    let coordinator = cluster.coordinator_address();
    let node = cluster.node_address(0).to_string();
    let gateway = cluster.gateway_address().unwrap().to_string();

    // --- every RPC, on the servers that serve it: refused without a token or with a wrong one
    let rpcs = every_rpc();
    assert!(rpcs.len() >= 27, "{} RPCs in the descriptors", rpcs.len());
    for (service, path) in &rpcs {
        let servers: Vec<&str> = match service.as_str() {
            "kvdb.v1.KvGateway" => vec![&gateway],
            "kvdb.v1.KvNode" | "kvdb.v1.ShardExport" => vec![&node],
            "kvdb.v1.RaftTransport" => vec![&node, &coordinator],
            "kvdb.v1.Coordinator" => vec![&coordinator],
            other => panic!("a service this test does not place: {other}"),
        };
        for server in servers {
            assert_eq!(
                call(tls, server, path, None).await,
                Code::Unauthenticated,
                "{path} at {server}"
            );
            assert_eq!(
                call(tls, server, path, Some("not-a-token")).await,
                Code::Unauthenticated,
                "{path} at {server}"
            );
        }
    }

    // --- the defects found from outside: control-plane and Raft calls need the cluster token
    let version = cluster.coordinator().map().version;
    for path in [
        "/kvdb.v1.Coordinator/RegisterNode",
        "/kvdb.v1.Coordinator/ReportShardLeader",
        "/kvdb.v1.Coordinator/Heartbeat",
    ] {
        assert_eq!(
            call(tls, &coordinator, path, Some("operator-1")).await,
            Code::PermissionDenied
        );
    }
    assert_eq!(
        call(
            tls,
            &node,
            "/kvdb.v1.RaftTransport/Vote",
            Some("operator-1")
        )
        .await,
        Code::PermissionDenied
    );
    assert_eq!(
        call(
            tls,
            &coordinator,
            "/kvdb.v1.Coordinator/InitShards",
            Some("writer-1")
        )
        .await,
        Code::PermissionDenied
    );
    // A backup reads every key: an operator's call, not a writer's.
    assert_eq!(
        call(tls, &node, "/kvdb.v1.ShardExport/Export", Some("writer-1")).await,
        Code::PermissionDenied
    );
    assert_eq!(
        cluster.coordinator().map().version,
        version,
        "a refused call changed the map"
    );
    // An admin token reaches the operator calls (here refused for its empty input, not its role).
    let init = call(
        tls,
        &coordinator,
        "/kvdb.v1.Coordinator/InitShards",
        Some("operator-1"),
    )
    .await;
    assert!(
        !matches!(init, Code::Unauthenticated | Code::PermissionDenied),
        "{init:?}"
    );
    assert_eq!(
        call(tls, &gateway, "/grpc.health.v1.Health/Check", None).await,
        Code::Ok,
        "health checks stay open"
    );

    // --- the Admin API takes admin and cluster tokens, nothing weaker
    let admin = format!("http://{}", cluster.admin_address());
    let anonymous = admin_client(&admin);
    assert!(anonymous.shards().await.is_err(), "the Admin API is open");
    let writer_admin = admin_client(&admin).with_token("writer-1");
    assert!(
        writer_admin.shards().await.is_err(),
        "a writer reads the Admin API"
    );
    let operator = admin_client(&admin).with_token("operator-1");
    assert!(!operator.shards().await.unwrap().shards.is_empty());

    // --- clients: a writer writes, a reader reads and cannot write
    let writer = GatewayClient::connect_with(&gateway, credentials(Some("writer-1"))).unwrap();
    writer
        .put(b"auth-key", b"v1")
        .await
        .expect("a writer writes");
    let reader = GatewayClient::connect_with(&gateway, credentials(Some("reader-1"))).unwrap();
    let read = reader.get(b"auth-key").await.expect("a reader reads");
    assert_eq!(read.map(|v| v.value), Some(b"v1".to_vec()));
    assert!(
        reader.put(b"auth-key", b"v2").await.is_err(),
        "a reader cannot write"
    );
    assert!(
        reader.incr_by(b"auth-counter", 1).await.is_err(),
        "a reader cannot update"
    );
    let anonymous = GatewayClient::connect_with(&gateway, credentials(None)).unwrap();
    assert!(anonymous.get(b"auth-key").await.is_err());
    // The smart client goes to the coordinator and the nodes directly, on its own token.
    let smart = kvdb_client::Client::connect_with(
        std::slice::from_ref(&coordinator),
        ExecutorConfig {
            credentials: credentials(Some("writer-1")),
            ..ExecutorConfig::default()
        },
    )
    .await
    .expect("a smart client with a token connects");
    smart
        .put(b"auth-key", b"v3")
        .await
        .expect("smart writer writes");
    let read = reader.get(b"auth-key").await.unwrap();
    assert_eq!(read.map(|v| v.value), Some(b"v3".to_vec()));

    test.stop().await;
}
