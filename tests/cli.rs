//! The `kvdb` binary's client commands against a running cluster's gateway:
//! what they print and the exit codes a script relies on.

mod common;

use std::process::Output;

use common::{TestCluster, kvdb};
use kvdb::client::Kv;
use kvdb::core::slot::slot;
use kvdb::core::{ShardId, ShardState};

/// Runs `kvdb admin --admin ADDRESS args...`.
async fn kvdb_admin(address: &str, args: &[&str]) -> Output {
    kvdb(&[&["admin", "--admin", address], args].concat()).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_print_results_and_exit_with_script_friendly_codes() {
    let test = TestCluster::start(3).await;
    let gateway = test.cluster.gateway_address().unwrap().to_string();
    let via = ["--gateway", gateway.as_str()];

    // --- put prints the new version
    let put = kvdb(&[&["put", "greeting", "hello"], &via[..]].concat()).await;
    assert_eq!(put.status.code(), Some(0), "stderr: {}", stderr(&put));
    let version: u64 = stdout(&put).trim().parse().expect("put prints a version");
    assert!(version > 0);

    // --- get prints the value
    let get = kvdb(&[&["get", "greeting"], &via[..]].concat()).await;
    assert_eq!(get.status.code(), Some(0), "stderr: {}", stderr(&get));
    assert_eq!(stdout(&get), "hello\n");

    // --- a hash prints a field<TAB>value line per field, in insertion order
    let client = test.cluster.gateway_client().unwrap();
    let pairs: [(&[u8], &[u8]); 2] = [(b"name", b"ada"), (b"lang", b"en")];
    client.hset(b"profile", &pairs).await.unwrap();
    let get = kvdb(&[&["get", "profile"], &via[..]].concat()).await;
    assert_eq!(get.status.code(), Some(0), "stderr: {}", stderr(&get));
    assert_eq!(stdout(&get), "name\tada\nlang\ten\n");

    // --- a missing key: exit 1, nothing on stdout
    let missing = kvdb(&[&["get", "no-such-key"], &via[..]].concat()).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());

    // --- cas with a stale version: exit 3, the value unchanged
    let stale = (version + 1000).to_string();
    let cas = kvdb(&[&["cas", "greeting", stale.as_str(), "bye"], &via[..]].concat()).await;
    assert_eq!(cas.status.code(), Some(3), "stderr: {}", stderr(&cas));
    assert!(cas.stdout.is_empty());
    let get = kvdb(&[&["get", "greeting"], &via[..]].concat()).await;
    assert_eq!(stdout(&get), "hello\n");

    // --- cas with the current version succeeds
    let current = version.to_string();
    let cas = kvdb(&[&["cas", "greeting", current.as_str(), "bye"], &via[..]].concat()).await;
    assert_eq!(cas.status.code(), Some(0), "stderr: {}", stderr(&cas));

    // --- nothing listening: exit 4, one line on stderr
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let down = kvdb(&["get", "greeting", "--gateway", &closed, "--timeout", "1s"]).await;
    assert_eq!(down.status.code(), Some(4), "stderr: {}", stderr(&down));
    assert!(down.stdout.is_empty());
    let message = stderr(&down);
    assert_eq!(
        message.lines().count(),
        1,
        "one line on stderr: {message:?}"
    );
    assert!(
        message.contains(&closed),
        "the message names the endpoint: {message:?}"
    );

    test.stop().await;
}

/// `kvdb admin drain --wait` empties a node through the scheduler; a drain that would leave
/// too few nodes is refused and changes nothing; `scheduler pause` is what `operations` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_drain_waits_for_an_empty_node_and_refuses_what_cannot_finish() {
    let test = TestCluster::start(4).await;
    let admin = test.cluster.admin_address().to_string();

    // --- drain node-1 and wait: it ends with no replica and no leadership
    let drain = kvdb_admin(&admin, &["drain", "node-1", "--wait", "--timeout", "60s"]).await;
    assert_eq!(drain.status.code(), Some(0), "stderr: {}", stderr(&drain));
    assert_eq!(stdout(&drain), "node node-1 is drained\n");
    let map = test.cluster.coordinator().map();
    assert!(
        map.shards
            .values()
            .all(|s| !s.members().contains(&test.cluster.node_id(0)))
    );

    // --- draining a second node would leave 2 alive nodes for 3 replicas: refused
    let refused = kvdb_admin(&admin, &["drain", "node-2"]).await;
    assert_eq!(
        refused.status.code(),
        Some(5),
        "stderr: {}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("replication factor is 3"),
        "{}",
        stderr(&refused)
    );
    let nodes = kvdb_admin(&admin, &["--json", "nodes"]).await;
    let nodes: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap();
    assert_eq!(nodes["nodes"][1]["status"], "alive");

    // --- pause and resume show in `operations`
    let pause = kvdb_admin(&admin, &["scheduler", "pause"]).await;
    assert_eq!(pause.status.code(), Some(0), "stderr: {}", stderr(&pause));
    let ops = kvdb_admin(&admin, &["--json", "operations"]).await;
    let ops: serde_json::Value = serde_json::from_slice(&ops.stdout).unwrap();
    assert_eq!(ops["paused"], true);
    assert!(
        ops["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["reason"] == "drain"),
        "the drain's operations are listed: {ops}"
    );
    kvdb_admin(&admin, &["scheduler", "resume"]).await;
    let ops = kvdb_admin(&admin, &["operations"]).await;
    assert!(
        stdout(&ops).starts_with("scheduler running"),
        "{}",
        stdout(&ops)
    );

    test.stop().await;
}

/// `kvdb admin split --wait` splits a shard under the keys it holds, which all read back; a
/// split point outside the shard and an unknown shard are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_split_waits_for_the_new_shard_and_refuses_bad_split_points() {
    let test = TestCluster::start(3).await;
    let admin = test.cluster.admin_address().to_string();
    let gateway = test.cluster.gateway_address().unwrap().to_string();
    let map = test.cluster.coordinator().map();
    let keys = common::keys_in_shard(&map, ShardId(0), "split", 6);
    let slots: Vec<u16> = keys.iter().map(|k| slot(k).0).collect();
    let at = *slots.iter().filter(|s| **s > 0).min().unwrap();
    for (i, key) in keys.iter().enumerate() {
        let key = String::from_utf8(key.clone()).unwrap();
        let put = kvdb(&["put", &key, &format!("v{i}"), "--gateway", &gateway]).await;
        assert_eq!(put.status.code(), Some(0), "stderr: {}", stderr(&put));
    }

    // --- split shard 0 at the slot of one of its keys, and wait for the new shard
    let at_arg = at.to_string();
    let split = kvdb_admin(&admin, &["split", "0", "--at", &at_arg, "--wait"]).await;
    assert_eq!(split.status.code(), Some(0), "stderr: {}", stderr(&split));
    let map = test.cluster.coordinator().map();
    let child = map.shards.values().find(|s| s.slot_start.0 == at).unwrap();
    assert_eq!(child.state, ShardState::Stable);
    assert!(child.leader.is_some());
    assert_eq!(map.shards[&ShardId(0)].slot_end.0, at - 1);
    assert!(
        stdout(&split).starts_with(&format!("shard 0 keeps slots 0-{}; new shard", at - 1)),
        "{}",
        stdout(&split)
    );
    for (i, key) in keys.iter().enumerate() {
        let key = String::from_utf8(key.clone()).unwrap();
        let get = kvdb(&["get", &key, "--gateway", &gateway]).await;
        assert_eq!(stdout(&get), format!("v{i}\n"), "stderr: {}", stderr(&get));
    }

    // --- bad input: a slot the shard no longer holds, an unknown shard
    let version = test.cluster.coordinator().map().version;
    let outside = kvdb_admin(&admin, &["split", "0", "--at", &at_arg]).await;
    assert_eq!(
        outside.status.code(),
        Some(5),
        "stderr: {}",
        stderr(&outside)
    );
    assert!(
        stderr(&outside).contains(&format!("slot {at} is not inside shard 0")),
        "{}",
        stderr(&outside)
    );
    let unknown = kvdb_admin(&admin, &["split", "4242"]).await;
    assert_eq!(
        unknown.status.code(),
        Some(5),
        "stderr: {}",
        stderr(&unknown)
    );
    assert!(stderr(&unknown).contains("4242"), "{}", stderr(&unknown));
    assert_eq!(test.cluster.coordinator().map().version, version);

    test.stop().await;
}
