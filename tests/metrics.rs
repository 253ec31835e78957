//! Every server serves Prometheus metrics on `--metrics-listen`, and they move with what the
//! cluster does: real `kvdb` processes, a workload through a gateway, and each exposition
//! parsed before and after.
//!
//! - the gateway counts exactly the requests it served, by operation and outcome, with a
//!   latency histogram that saw each of them;
//! - the nodes' request counters together account for the gateway's writes;
//! - each node's per-shard Raft series agree with the Admin API (who leads which shard, in
//!   which term), and its Raft log writer reports durable commits;
//! - every shard's leader counted its election, every node follows the map's watch at the
//!   gateway's version;
//! - a smart client given a registry counts its own requests;
//! - the coordinator's gauges show the nodes and shards the Admin API lists.

mod chaos;

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use chaos::process::ProcessCluster;
use kvdb::coordinator::admin::AdminClient;
use kvdb_client::{GatewayClient, Kv};
use prometheus_parse::{Sample, Scrape, Value};

const NODES: usize = 3;
const SHARDS: u32 = 4;
const PUTS: usize = 40;
const GETS: usize = 25;

/// One scrape of `address`, parsed; panics when the text is not a complete exposition.
fn scrape(address: &str) -> Scrape {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(
        body.ends_with("# EOF\n"),
        "an exposition ends with # EOF: {body}"
    );
    Scrape::parse(body.as_bytes().lines()).expect("the exposition parses")
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => panic!("no summaries are exported"),
    }
}

/// The value of the series `metric{labels}`, 0 when absent (a counter not yet incremented).
fn get(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0.0, value)
}

/// Waits until `address` serves metrics (the process is up).
async fn wait_for_metrics(address: &str) {
    let deadline = Instant::now() + chaos::DEADLINE;
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "{address} never served metrics");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_exports_metrics_that_follow_the_workload() {
    let bin = Path::new(env!("CARGO_BIN_EXE_kvdb"));
    let mut cluster = ProcessCluster::start_serving_metrics(bin, NODES, SHARDS).await;
    let (_, gateway_address) = cluster.start_gateway();
    let gateway_metrics = cluster.gateway_metrics_address(0).to_owned();
    wait_for_metrics(&gateway_metrics).await;
    let nodes: Vec<String> = (0..NODES)
        .map(|i| cluster.node_metrics_address(i))
        .collect();

    let gateway_before = scrape(&gateway_metrics);
    let nodes_before: Vec<Scrape> = nodes.iter().map(|a| scrape(a)).collect();

    let client = GatewayClient::connect(&gateway_address).expect("gateway client");
    let deadline = Instant::now() + chaos::DEADLINE;
    // The gateway answers once it has a map: retry the first write until then.
    while client.put(b"metrics-0", b"v").await.is_err() {
        assert!(Instant::now() < deadline, "the gateway never took a write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let early = scrape(&gateway_metrics);
    for i in 1..PUTS {
        let key = format!("metrics-{i}");
        client.put(key.as_bytes(), b"v").await.expect("put");
    }
    for i in 0..GETS {
        let key = format!("metrics-{i}");
        let found = client.get(key.as_bytes()).await.expect("get");
        assert!(found.is_some(), "{key} was written");
    }
    let gateway_after = scrape(&gateway_metrics);

    // The gateway: every request after the first successful write, exactly.
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        get(&gateway_after, metric, labels) - get(&early, metric, labels)
    };
    let puts_ok = [("op", "put"), ("outcome", "ok")];
    let gets_ok = [("op", "get"), ("outcome", "ok")];
    assert_eq!(
        moved("kvdb_gateway_requests_total", &puts_ok),
        (PUTS - 1) as f64
    );
    assert_eq!(moved("kvdb_gateway_requests_total", &gets_ok), GETS as f64);
    let put_latency = |s: &Scrape| {
        get(
            s,
            "kvdb_gateway_request_duration_seconds_count",
            &[("op", "put")],
        )
    };
    assert_eq!(
        put_latency(&gateway_after) - put_latency(&early),
        (PUTS - 1) as f64
    );
    let put_seconds = |s: &Scrape| {
        get(
            s,
            "kvdb_gateway_request_duration_seconds_sum",
            &[("op", "put")],
        )
    };
    assert!(
        put_seconds(&gateway_after) > put_seconds(&early),
        "latency sums grow"
    );
    assert!(
        get(&gateway_after, "kvdb_gateway_requests_total", &puts_ok)
            >= get(&gateway_before, "kvdb_gateway_requests_total", &puts_ok) + PUTS as f64
    );
    assert!(get(&gateway_after, "kvdb_gateway_shard_map_version", &[]) > 0.0);

    // The nodes: leaders answered every write the gateway acknowledged (a retried attempt
    // the gateway counted once may have been answered twice, never less).
    let nodes_after: Vec<Scrape> = nodes.iter().map(|a| scrape(a)).collect();
    let node_puts = |scrapes: &[Scrape]| -> f64 {
        scrapes
            .iter()
            .map(|s| get(s, "kvdb_node_requests_total", &puts_ok))
            .sum()
    };
    let written = node_puts(&nodes_after) - node_puts(&nodes_before);
    let retries: f64 = ["not_leader", "unavailable", "shard_moved", "stale_epoch"]
        .iter()
        .map(|r| {
            get(
                &gateway_after,
                "kvdb_gateway_retries_total",
                &[("reason", r)],
            )
        })
        .sum();
    assert!(
        written >= PUTS as f64 && written <= PUTS as f64 + retries,
        "nodes answered {written} puts for the gateway's {PUTS} (retries: {retries})"
    );
    let entries =
        |scrapes: &[Scrape], name: &str| -> f64 { scrapes.iter().map(|s| get(s, name, &[])).sum() };
    let proposed = entries(&nodes_after, "kvdb_node_write_entries_total")
        - entries(&nodes_before, "kvdb_node_write_entries_total");
    let batched = entries(&nodes_after, "kvdb_node_batched_writes_total")
        - entries(&nodes_before, "kvdb_node_batched_writes_total");
    assert!(
        batched >= written && proposed >= 1.0 && proposed <= batched,
        "write queues proposed {proposed} entries for {batched} writes ({written} puts answered)"
    );
    for (before, after) in nodes_before.iter().zip(&nodes_after) {
        let commits = |s: &Scrape| get(s, "kvdb_raft_log_commits_total", &[]);
        assert!(
            commits(after) > commits(before),
            "every node's log took the writes"
        );
        assert!(get(after, "kvdb_raft_log_commit_duration_seconds_count", &[]) > 0.0);
        assert_eq!(get(after, "kvdb_node_shards", &[]), f64::from(SHARDS));
        assert!(get(after, "kvdb_node_disk_free_bytes", &[]) > 0.0);
        assert!(get(after, "kvdb_node_data_bytes", &[("file", "raft_log")]) > 0.0);
    }

    // Per-shard Raft series against the Admin API: the leader it names reports leading, in
    // the same term. Leadership can move between the two reads, so look again until they
    // agree.
    let admin = AdminClient::new(cluster.admin_address()).expect("admin client");
    let deadline = Instant::now() + chaos::DEADLINE;
    loop {
        let ids: HashMap<String, usize> = admin
            .nodes()
            .await
            .expect("nodes")
            .nodes
            .iter()
            .map(|n| {
                (
                    n.address.clone(),
                    cluster.index_of_address(&n.address).unwrap(),
                )
            })
            .collect();
        let shards = admin.shards().await.expect("shards").shards;
        let scrapes: Vec<Scrape> = nodes.iter().map(|a| scrape(a)).collect();
        let disagreement = shards.iter().find_map(|shard| {
            let leader = shard.leader.as_ref()?;
            let i = ids[leader.address.as_deref()?];
            let label = shard.id.0.to_string();
            let labels = [("shard", label.as_str())];
            let leads = get(&scrapes[i], "kvdb_shard_leader", &labels);
            let term = get(&scrapes[i], "kvdb_shard_term", &labels);
            let others = (0..NODES)
                .filter(|&j| j != i)
                .map(|j| get(&scrapes[j], "kvdb_shard_leader", &labels))
                .sum::<f64>();
            let agrees = leads == 1.0 && term == shard.leader_term as f64 && others == 0.0;
            (!agrees).then(|| format!("shard {label}: admin says node {i} leads in term {}, its metrics say leader={leads} term={term}, others leading: {others}", shard.leader_term))
        });
        let Some(disagreement) = disagreement else {
            assert!(
                shards.iter().all(|s| s.leader.is_some()),
                "every shard has a leader"
            );
            break;
        };
        assert!(Instant::now() < deadline, "{disagreement}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each shard's leader saw at least its own election; every node follows the map's watch.
    let scrapes: Vec<Scrape> = nodes.iter().map(|a| scrape(a)).collect();
    for shard in 0..SHARDS {
        let label = shard.to_string();
        let labels = [("shard", label.as_str())];
        let seen: f64 = scrapes
            .iter()
            .map(|s| get(s, "kvdb_shard_leader_changes_total", &labels))
            .sum();
        assert!(seen >= 1.0, "shard {shard}: no leader change counted");

        for s in &scrapes {
            assert!(
                s.samples
                    .iter()
                    .any(|x| x.metric == "kvdb_shard_snapshots_installed_total"
                        && x.labels.get("shard") == Some(label.as_str())),
                "shard {shard}: no snapshot series"
            );
        }
    }
    // The shards' keys add up to what was written: each shard's leader applied every
    // acknowledged write, and no replica holds more than its leader.
    let keys: f64 = (0..SHARDS)
        .map(|shard| {
            let label = shard.to_string();
            let labels = [("shard", label.as_str())];
            scrapes
                .iter()
                .map(|s| get(s, "kvdb_shard_keys", &labels))
                .fold(0.0, f64::max)
        })
        .sum();
    assert_eq!(keys, PUTS as f64, "kvdb_shard_keys adds up to the puts");
    for s in &scrapes {
        assert_eq!(get(s, "kvdb_node_shard_map_watching", &[]), 1.0);
        assert!(get(s, "kvdb_node_shard_map_updates_total", &[("kind", "map")]) >= 1.0);
        assert_eq!(
            get(s, "kvdb_node_shard_map_version", &[]),
            get(&gateway_after, "kvdb_gateway_shard_map_version", &[])
        );
    }

    // A smart client counts what it does into the application's registry.
    let mut registry = kvdb_client::metrics::registry();
    let smart = cluster.client().await.with_metrics(&mut registry);
    for i in 0..PUTS {
        smart
            .put(format!("smart-{i}").as_bytes(), b"v")
            .await
            .expect("put");
    }
    let text = kvdb_client::metrics::encode(&registry);
    let app = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    assert_eq!(
        get(&app, "kvdb_client_requests_total", &puts_ok),
        PUTS as f64
    );
    assert_eq!(
        get(
            &app,
            "kvdb_client_request_duration_seconds_count",
            &[("op", "put")]
        ),
        PUTS as f64
    );
    assert!(get(&app, "kvdb_client_shard_map_version", &[]) > 0.0);
    assert_eq!(get(&app, "kvdb_client_shard_map_watching", &[]), 1.0);

    // The coordinator: the nodes and shards the Admin API lists.
    let coordinator = scrape(cluster.coordinator_metrics_address());
    assert_eq!(
        get(
            &coordinator,
            "kvdb_coordinator_nodes",
            &[("status", "alive")]
        ),
        NODES as f64
    );
    assert_eq!(
        get(
            &coordinator,
            "kvdb_coordinator_shards",
            &[("state", "stable")]
        ),
        f64::from(SHARDS)
    );
    assert_eq!(get(&coordinator, "kvdb_coordinator_is_leader", &[]), 1.0);
    // Three nodes and the gateway follow the map at least.
    assert!(get(&coordinator, "kvdb_coordinator_watchers", &[]) >= (NODES + 1) as f64);
    assert!(get(&coordinator, "kvdb_coordinator_watch_events_total", &[]) >= (NODES + 1) as f64);

    // The Grafana dashboard in docs/ queries only metrics the servers export.
    let exported: Vec<&str> = [&gateway_after, &coordinator]
        .into_iter()
        .chain(&nodes_after)
        .flat_map(|s| s.samples.iter().map(|sample| sample.metric.as_str()))
        .collect();
    for name in dashboard_metrics() {
        let base = name.strip_suffix("_bucket").unwrap_or(&name);
        assert!(
            exported.iter().any(|m| m.starts_with(base)),
            "docs/grafana-dashboard.json queries {name}, which no server exports"
        );
    }
}

/// Every `kvdb_...` metric name in the dashboard's queries.
fn dashboard_metrics() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a query");
            for (start, _) in expr.match_indices("kvdb_") {
                let name: String = expr[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
    }
    assert!(names.len() > 10, "{names:?}");
    names
}
