//! Every server answers gRPC health and reflection, as operators' tools (load balancers,
//! `grpcurl list`) expect, on real `kvdb` processes: health is NOT_SERVING until the server
//! can do its job and SERVING after (a coordinator once its group has a leader, a node once
//! it hosts its shards), and reflection lists exactly the services a port serves.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const DEADLINE: Duration = Duration::from_secs(30);

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// A `kvdb` server process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, name: &str, args: &[&str]) -> Server {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn kvdb");
    Server(child)
}

async fn channel(address: &str) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{address}")).unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(e) => assert!(Instant::now() < deadline, "{address} never listened: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn health(channel: &Channel, service: &str) -> ServingStatus {
    let request = HealthCheckRequest {
        service: service.into(),
    };
    let reply = HealthClient::new(channel.clone()).check(request).await;
    reply.expect("health answers").into_inner().status()
}

/// Waits until every one of `services` (and the whole server) reports `status`.
async fn wait_for_health(channel: &Channel, services: &[&str], status: ServingStatus) {
    let deadline = Instant::now() + DEADLINE;
    for service in std::iter::once(&"").chain(services) {
        loop {
            let now = health(channel, service).await;
            if now == status {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{service:?} stayed {now:?}, not {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The services reflection lists, sorted.
async fn listed(channel: &Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let reply = replies.next().await.expect("one reply").expect("a listing");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a listing: {reply:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

fn with_standard(services: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = services
        .iter()
        .chain(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ])
        .map(|s| (*s).to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_start_up_and_reflection_lists_each_servers_services() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let data = |name: &str| path.join(name).display().to_string();

    // --- a coordinator group of three with one member up has no leader: NOT_SERVING
    let coordinators: Vec<String> = (0..3).map(|_| free_address()).collect();
    let peers = coordinators
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let coordinator = |i: usize| {
        let (id, admin) = ((i + 1).to_string(), free_address());
        let name = format!("coordinator-{}", i + 1);
        let args = [
            "coordinator",
            "--id",
            &id,
            "--listen",
            &coordinators[i],
            "--admin-listen",
            &admin,
            "--peers",
            &peers,
            "--data",
            &data(&name),
        ];
        spawn(path, &name, &args)
    };
    let mut servers = vec![coordinator(0)];
    let first = channel(&coordinators[0]).await;
    let coordinator_services = ["kvdb.v1.Coordinator", "kvdb.v1.RaftTransport"];
    wait_for_health(&first, &coordinator_services, ServingStatus::NotServing).await;
    assert_eq!(listed(&first).await, with_standard(&coordinator_services));

    // --- the other two members start: a leader is elected, SERVING
    servers.push(coordinator(1));
    servers.push(coordinator(2));
    wait_for_health(&first, &coordinator_services, ServingStatus::Serving).await;

    // --- a node of a cluster whose shards are not created yet: NOT_SERVING until they are
    let node_address = free_address();
    let all_coordinators = coordinators.join(",");
    servers.push(spawn(
        path,
        "node-1",
        &[
            "node",
            "--name",
            "node-1",
            "--listen",
            &node_address,
            "--coordinators",
            &all_coordinators,
            "--data",
            &data("node-1"),
        ],
    ));
    let node = channel(&node_address).await;
    let node_services = [
        "kvdb.v1.KvNode",
        "kvdb.v1.RaftTransport",
        "kvdb.v1.ShardExport",
    ];
    wait_for_health(&node, &node_services, ServingStatus::NotServing).await;
    assert_eq!(listed(&node).await, with_standard(&node_services));
    let mut client =
        kvdb::core::proto::v1::coordinator_client::CoordinatorClient::new(first.clone());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let init = client
            .init_shards(kvdb::core::proto::v1::InitShardsRequest {
                num_shards: 2,
                replication_factor: 1,
            })
            .await;
        match init {
            Ok(_) => break,
            // Refused while the node has not registered yet, or sent to a follower.
            Err(e) => assert!(Instant::now() < deadline, "shards never created: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_health(&node, &node_services, ServingStatus::Serving).await;

    // --- a gateway, SERVING once it has the map
    let gateway_address = free_address();
    servers.push(spawn(
        path,
        "gateway",
        &[
            "gateway",
            "--listen",
            &gateway_address,
            "--coordinators",
            &all_coordinators,
        ],
    ));
    let gateway = channel(&gateway_address).await;
    wait_for_health(&gateway, &["kvdb.v1.KvGateway"], ServingStatus::Serving).await;
    assert_eq!(
        listed(&gateway).await,
        with_standard(&["kvdb.v1.KvGateway"])
    );
    drop(servers);
}
