//! Signals and closed pipes: a server whose peer resets a connection in the middle of a large
//! response lives on (SIGPIPE stays ignored in every server role), and a client command whose
//! stdout is closed ends quietly.
//!
//! The reset is made by hand on a raw socket: an HTTP/2 connection that opens wide flow-control
//! windows, asks for many large values, stops reading once the answers flow, and closes with
//! SO_LINGER 0, so the server's pending writes meet a reset connection.

mod chaos;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chaos::process::ProcessCluster;
use kvdb::core::proto::v1 as pb;
use kvdb::core::slot::slot;
use kvdb_client::{Kv, PutOptions};
use prost::Message;

const KEY: &[u8] = b"large-value";
/// Under the default 1 MiB value limit, with room for the request's framing.
const VALUE_BYTES: usize = 1_000_000;
/// Requests per reset connection: far more than the socket buffers hold.
const REQUESTS: u32 = 32;
/// Connections reset per test.
const RESETS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lives_on_when_a_peer_resets_a_connection_mid_response() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let mut cluster = ProcessCluster::start(bin, 3, 1).await;
    let client = cluster.client().await;
    let value = vec![b'v'; VALUE_BYTES];
    // One write with a deadline for a megabyte on a loaded debug build, while the shard may
    // still be electing its first leader: the client's retries inside it keep one write id,
    // where new puts after short deadlines would each add a megabyte to the log.
    let options = PutOptions {
        timeout: Some(chaos::DEADLINE),
        ..PutOptions::default()
    };
    client
        .put_with(KEY, &value, options)
        .await
        .expect("the put is acknowledged");
    let map = client.cache().current();
    let shard = map
        .shards
        .values()
        .find(|s| s.contains(slot(KEY)))
        .expect("a shard serves the key")
        .clone();
    let target = pb::ShardTarget {
        shard_id: shard.id.0,
        epoch: shard.epoch.0,
    };
    // Node 0 holds a replica (one shard at RF 3 on three nodes); EVENTUAL reads need no leader.
    let address = cluster.node_address(0).to_owned();
    let deadline = tokio::time::Instant::now() + chaos::DEADLINE;
    while value_bytes(&address, &target).await != Some(VALUE_BYTES) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 0 never applied the value"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    for _ in 0..RESETS {
        let address = address.clone();
        tokio::task::spawn_blocking(move || reset_mid_response(&address, target))
            .await
            .expect("the reset connection ran");
    }

    // Still serving on a fresh connection, and still the same process.
    assert_eq!(value_bytes(&address, &target).await, Some(VALUE_BYTES));
    assert!(
        cluster.is_running(0),
        "the node died after a reset connection:\n{}",
        cluster.node_log(0)
    );
}

/// The length of [`KEY`]'s value in an EVENTUAL read on the node at `address` over a new
/// connection; `None` if absent or on any error.
async fn value_bytes(address: &str, target: &pb::ShardTarget) -> Option<usize> {
    let request = pb::NodeGetRequest {
        target: Some(*target),
        request: Some(pb::GetRequest {
            key: KEY.to_vec().into(),
            consistency: pb::Consistency::Eventual as i32,
            hash_fields: None,
            hash_page: None,
        }),
    };
    let node = pb::kv_node_client::KvNodeClient::connect(format!("http://{address}")).await;
    let mut node = node.ok()?.max_decoding_message_size(4 * VALUE_BYTES);
    let got = node.get(request).await.ok()?.into_inner();
    got.found.then_some(got.value.len())
}

/// Opens an HTTP/2 connection to `address`, sends [`REQUESTS`] gets of [`KEY`] with flow
/// control out of the way, reads until the first answer bytes arrive, then resets the
/// connection while the server is still writing.
fn reset_mid_response(address: &str, target: pb::ShardTarget) {
    let mut socket = TcpStream::connect(address).expect("connect to the node");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: INITIAL_WINDOW_SIZE = 2^31 - 1; then open the connection window as wide.
    let window: u32 = 0x7fff_ffff;
    let mut settings = vec![0x00, 0x04];
    settings.extend(window.to_be_bytes());
    frame(&mut out, 0x4, 0, 0, &settings);
    frame(&mut out, 0x8, 0, 0, &(window - 65_535).to_be_bytes());
    let request = pb::NodeGetRequest {
        target: Some(target),
        request: Some(pb::GetRequest {
            key: KEY.to_vec().into(),
            consistency: pb::Consistency::Eventual as i32,
            hash_fields: None,
            hash_page: None,
        }),
    }
    .encode_to_vec();
    let mut message = vec![0u8];
    message.extend((request.len() as u32).to_be_bytes());
    message.extend(&request);
    for n in 0..REQUESTS {
        let stream = 2 * n + 1;
        let mut headers = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/kvdb.v1.KvNode/Get"),
            (":authority", address),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            // HPACK literal header field without indexing, new name, no Huffman coding.
            headers.push(0x00);
            headers.push(name.len() as u8);
            headers.extend(name.as_bytes());
            headers.push(value.len() as u8);
            headers.extend(value.as_bytes());
        }
        frame(&mut out, 0x1, 0x4, stream, &headers); // HEADERS, END_HEADERS
        frame(&mut out, 0x0, 0x1, stream, &message); // DATA, END_STREAM
    }
    socket.write_all(&out).expect("send the requests");
    // Wait for answer bytes beyond the server's SETTINGS: the server is writing responses.
    let mut received = 0usize;
    let mut buffer = [0u8; 16 * 1024];
    while received < 64 * 1024 {
        let n = socket.read(&mut buffer).expect("the node answers");
        assert!(n > 0, "the node closed the connection before answering");
        received += n;
    }
    socket2::SockRef::from(&socket)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(socket); // RST, with the server's writes still pending
}

/// Appends one HTTP/2 frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
}

/// Every server role (coordinator, node, gateway) runs with SIGPIPE ignored, as the kernel
/// reports it in `/proc/PID/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_role_ignores_sigpipe() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let mut cluster = ProcessCluster::start(bin, 3, 1).await;
    let (gateway, address) = cluster.start_gateway();
    // Listening: the process is past its start-up, where the runtime sets signal dispositions.
    let deadline = tokio::time::Instant::now() + chaos::DEADLINE;
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway never listened"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for pid in cluster.server_pids().into_iter().chain([gateway]) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
        let ignored = status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .expect("a SigIgn line");
        const SIGPIPE: u32 = 13;
        assert_ne!(
            ignored & (1 << (SIGPIPE - 1)),
            0,
            "process {pid} does not ignore SIGPIPE:\n{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_command_ends_quietly_when_its_stdout_closes() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let cluster = ProcessCluster::start(bin, 3, 4).await;
    // `true` exits without reading: every line kvdb prints meets a closed pipe.
    let script = format!(
        "'{}' admin --admin {} shards | true; exit ${{PIPESTATUS[0]}}",
        bin.display(),
        cluster.admin_address()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("run bash")
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "kvdb admin shards into a closed pipe: {output:?}"
    );
    assert!(
        output.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
