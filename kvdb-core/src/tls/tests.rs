use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::Code;
use tonic::service::Routes;
use tonic::transport::Channel;

use super::*;
use crate::incoming::Listening;

/// Serves nothing (every method answers UNIMPLEMENTED) over `tls`.
async fn serve(tls: Arc<ServerTls>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let listening = Listening {
        tls: Some(tls),
        ..Listening::default()
    };
    tokio::spawn(
        listening
            .server()
            .add_routes(Routes::default())
            .serve_with_incoming(listening.incoming(listener)),
    );
    address
}

/// Whether one unary call over `endpoint` reaches the server: it answers UNIMPLEMENTED to
/// every method, and a refused connection or handshake fails the call otherwise.
async fn served(endpoint: Endpoint) -> bool {
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut grpc = tonic::client::Grpc::<Channel>::new(channel);
    if grpc.ready().await.is_err() {
        return false;
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/none.None/Nothing");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let answer = grpc.unary(tonic::Request::new(()), path, codec).await;
    answer.unwrap_err().code() == Code::Unimplemented
}

fn client(files: &TlsFiles, present_certificate: bool) -> ClientTls {
    let identity = present_certificate.then_some((files.cert.as_path(), files.key.as_path()));
    ClientTls::load(&files.ca, identity).unwrap()
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_is_served_and_one_in_clear_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_throwaway(dir.path(), &["127.0.0.1"]).unwrap();
    let address = serve(ServerTls::load(files.clone()).unwrap()).await;
    let host = address.to_string();

    let trusted = client(&files, true).endpoint(&host).unwrap();
    assert!(served(trusted).await);
    let clear = Endpoint::from_shared(format!("http://{host}")).unwrap();
    assert!(!served(clear).await, "a client in clear is refused");
}

#[tokio::test]
async fn client_certificates_are_demanded_when_required_and_checked_when_presented() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let files = write_throwaway(dir.path(), &["127.0.0.1"]).unwrap();
    let stranger = write_throwaway(other.path(), &["127.0.0.1"]).unwrap();
    let required = serve(ServerTls::load(files.clone()).unwrap()).await;
    let optional = serve(
        ServerTls::load(TlsFiles {
            require_client_cert: false,
            ..files.clone()
        })
        .unwrap(),
    )
    .await;

    let anonymous = client(&files, false);
    assert!(
        !served(anonymous.endpoint(&required.to_string()).unwrap()).await,
        "no client certificate where one is required"
    );
    assert!(served(anonymous.endpoint(&optional.to_string()).unwrap()).await);
    // A certificate from another CA is refused even where certificates are optional.
    let foreign = ClientTls::load(&files.ca, Some((&stranger.cert, &stranger.key))).unwrap();
    assert!(!served(foreign.endpoint(&optional.to_string()).unwrap()).await);
    // And a client that trusts another CA refuses the server.
    let wrong_ca = client(&stranger, true);
    assert!(!served(wrong_ca.endpoint(&required.to_string()).unwrap()).await);
}

#[tokio::test]
async fn renewed_files_serve_new_connections_and_broken_ones_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_throwaway(dir.path(), &["127.0.0.1"]).unwrap();
    let old_client = client(&first, true);
    let address = serve(ServerTls::load(first.clone()).unwrap())
        .await
        .to_string();
    assert!(served(old_client.endpoint(&address).unwrap()).await);

    // A half-written renewal: the server keeps its certificate.
    std::fs::write(&first.cert, "not a certificate").unwrap();
    tokio::time::sleep(RELOAD_CHECK).await;
    assert!(served(old_client.endpoint(&address).unwrap()).await);

    // A whole new set, from another CA: new connections get it.
    let renewed = write_throwaway(dir.path(), &["127.0.0.1"]).unwrap();
    let new_client = client(&renewed, true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served(new_client.endpoint(&address).unwrap()).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!served(old_client.endpoint(&address).unwrap()).await);
}

#[test]
fn unusable_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_throwaway(dir.path(), &["localhost"]).unwrap();
    let missing = TlsFiles {
        key: dir.path().join("absent.pem"),
        ..files.clone()
    };
    let err = ServerTls::load(missing).unwrap_err();
    assert!(err.to_string().contains("absent.pem"), "{err}");

    let swapped = TlsFiles {
        cert: files.key.clone(),
        ..files.clone()
    };
    assert!(matches!(
        ServerTls::load(swapped).unwrap_err(),
        TlsError::NoCertificate { .. }
    ));

    let no_key = TlsFiles {
        key: files.cert.clone(),
        ..files.clone()
    };
    assert!(matches!(
        ClientTls::load(&files.ca, Some((&no_key.cert, &no_key.key))).unwrap_err(),
        TlsError::NoKey { .. }
    ));

    // A key from another set does not match the certificate.
    let other = tempfile::tempdir().unwrap();
    let stranger = write_throwaway(other.path(), &["localhost"]).unwrap();
    let mismatched = TlsFiles {
        key: stranger.key,
        ..files
    };
    assert!(matches!(
        ServerTls::load(mismatched).unwrap_err(),
        TlsError::Refused(_)
    ));
}
