//! Mutual TLS on every gRPC plane, over real servers on loopback: a cluster whose processes
//! demand client certificates starts (registration, heartbeats and Raft all run over TLS),
//! serves smart and gateway clients that present a certificate, and refuses clients in clear
//! or without a certificate; the Admin API is served over TLS too, and the CLI's TLS flags
//! reach both.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestCluster;
use kvdb::coordinator::admin::AdminClient;
use kvdb::core::auth::Credentials;
use kvdb::core::tls::{ClientTls, write_throwaway};
use kvdb_client::{ExecutorConfig, GatewayClient, Kv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_mutual_tls_serves_only_clients_with_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let files = write_throwaway(certs.path(), &["127.0.0.1"]).unwrap();
    let cluster_files = files.clone();
    let test =
        TestCluster::start_with(3, move |config| config.auth.tls = Some(cluster_files)).await;
    let cluster = &test.cluster;
    let coordinator = cluster.coordinator_address();
    let gateway = cluster.gateway_address().unwrap().to_string();
    let with_certificate =
        Credentials::default().with_tls(Some(ClientTls::for_server(&files).unwrap()));

    // --- a smart client goes to the coordinator and the nodes directly
    let smart = kvdb_client::Client::connect_with(
        std::slice::from_ref(&coordinator),
        ExecutorConfig {
            credentials: with_certificate.clone(),
            ..ExecutorConfig::default()
        },
    )
    .await
    .expect("a smart client with a certificate connects");
    smart
        .put(b"tls-key", b"v1")
        .await
        .expect("smart client writes");

    // --- the gateway, and the CLI through it
    let gateway_client = GatewayClient::connect_with(&gateway, with_certificate.clone())
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let read = gateway_client.get(b"tls-key").await.expect("gateway reads");
    assert_eq!(read.map(|v| v.value), Some(b"v1".to_vec()));
    let cli = |with_cert: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvdb"));
        command
            .args(["get", "tls-key", "--timeout", "3s", "--gateway", &gateway])
            .arg("--tls-ca")
            .arg(&files.ca);
        if with_cert {
            command
                .arg("--tls-cert")
                .arg(&files.cert)
                .arg("--tls-key")
                .arg(&files.key);
        }
        command.output().expect("kvdb runs")
    };
    let out = cli(true);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");
    let out = cli(false);
    assert!(
        !out.status.success(),
        "the CLI without a client certificate was served: {out:?}"
    );

    // --- the Admin API, from Rust and from the CLI
    let admin = cluster.admin_address().to_string();
    let tls = ClientTls::for_server(&files).unwrap();
    let view = AdminClient::new(&admin)
        .unwrap()
        .with_tls(&tls)
        .unwrap()
        .cluster()
        .await
        .expect("the Admin API over TLS");
    assert!(view.ready, "{view:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .args(["admin", "--admin", &admin, "--json", "nodes"])
        .arg("--tls-ca")
        .arg(&files.ca)
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .output()
        .expect("kvdb runs");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("node-1"),
        "{out:?}"
    );
    let clear_admin = AdminClient::new(&admin)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(
        clear_admin.cluster().await.is_err(),
        "the Admin API in clear"
    );

    // --- refused: in clear, and over TLS without a certificate
    let clear = GatewayClient::connect(&gateway)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(clear.get(b"tls-key").await.is_err(), "a client in clear");
    let anonymous =
        Credentials::default().with_tls(Some(ClientTls::load(&files.ca, None).unwrap()));
    let anonymous = GatewayClient::connect_with(&gateway, anonymous)
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    assert!(
        anonymous.get(b"tls-key").await.is_err(),
        "a client without a certificate"
    );

    test.stop().await;
}
