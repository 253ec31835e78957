use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::error::RoutingError;
use crate::ids::ShardId;

fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

#[test]
fn requests_are_counted_by_op_and_outcome() {
    let mut registry = registry();
    let metrics = RequestMetrics::register(&mut registry, "node");
    let not_leader: Result<(), KvError> = Err(RoutingError::NotLeader {
        shard: ShardId(1),
        leader: None,
    }
    .into());
    for _ in 0..3 {
        metrics.record("put", Instant::now(), &Ok::<(), KvError>(()));
    }
    metrics.record("put", Instant::now(), &not_leader);
    let text = encode(&registry);
    assert_eq!(
        sample(&text, r#"kvdb_node_requests_total{op="put",outcome="ok"}"#),
        Some("3")
    );
    assert_eq!(
        sample(
            &text,
            r#"kvdb_node_requests_total{op="put",outcome="not_leader"}"#
        ),
        Some("1")
    );
    assert_eq!(
        sample(
            &text,
            r#"kvdb_node_request_duration_seconds_count{op="put"}"#
        ),
        Some("4")
    );
    assert!(text.contains("# TYPE kvdb_node_requests counter"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_endpoint_serves_the_registry_at_metrics_only() {
    let mut registry = registry();
    let metrics = RequestMetrics::register(&mut registry, "gateway");
    metrics.record("get", Instant::now(), &Ok::<(), KvError>(()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::new(registry), async {
        let _ = stopped.await;
    }));

    let scraped = get(address, "/metrics").await;
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains(CONTENT_TYPE), "{scraped}");
    assert!(
        scraped.contains(r#"kvdb_gateway_requests_total{op="get",outcome="ok"} 1"#),
        "{scraped}"
    );
    let elsewhere = get(address, "/").await;
    assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");

    stop.send(()).unwrap();
    server.await.unwrap();
}
