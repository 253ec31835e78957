//! The Admin API's status page, as an operator's browser shows it: a real headless Chromium
//! loads `/ui`, runs its script against a running cluster, and the test reads the DOM it
//! rendered (`--dump-dom`). CI installs Debian's `chromium`; where no browser is installed
//! (set `KVDB_CHROMIUM` to one), the test says so and checks only that the page is served.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use common::TestCluster;
use kvdb_client::Kv;

/// The browser: `KVDB_CHROMIUM`, or `chromium` / `chromium-browser` on the `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KVDB_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The DOM of `url` once its script ran for a few (virtual) seconds.
fn rendered(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().expect("browser profile");
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run the browser");
    assert!(
        output.status.success(),
        "the browser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// Text of every `<td>` of the table with id `table`, row by row.
fn rows(dom: &str, table: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{table}\""))
        .unwrap_or_else(|| panic!("no table {table}"));
    let end = start + dom[start..].find("</table>").expect("the table ends");
    let body = &dom[start..end];
    body.split("<tr>")
        .skip(1)
        .filter(|row| row.contains("<td"))
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').expect("a cell") + 1..];
                    text[..text.find("</td>").expect("the cell ends")].to_owned()
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_nodes_and_shards_the_admin_api_lists() {
    let test = TestCluster::start(3).await;
    let cluster = &test.cluster;
    let client = cluster.client().await.expect("client");
    client.put(b"shown", b"on the page").await.expect("put");
    let url = format!("http://{}/ui", cluster.admin_address());

    // Served as HTML that loads nothing from elsewhere.
    let mut stream = std::net::TcpStream::connect(cluster.admin_address()).expect("connect");
    stream
        .write_all(b"GET /ui HTTP/1.1\r\nHost: kvdb\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    stream.read_to_string(&mut page).expect("response");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"), "{page}");
    assert!(page.contains("default-src 'none'"), "{page}");

    let Some(browser) = chromium() else {
        eprintln!("no chromium installed (set KVDB_CHROMIUM): the page was not rendered");
        test.stop().await;
        return;
    };
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || rendered(&browser, &url)
    })
    .await
    .unwrap();

    let map = cluster.coordinator().map();
    let nodes = rows(&dom, "nodes");
    assert_eq!(nodes.len(), map.nodes.len(), "{dom}");
    for node in map.nodes.values() {
        let row = nodes
            .iter()
            .find(|r| r[0] == node.id.0.to_string())
            .unwrap_or_else(|| panic!("node {} missing: {nodes:?}", node.id));
        assert_eq!(row[1], node.name);
        assert_eq!(row[2], node.address);
        assert_eq!(row[4], "alive");
    }
    let shards = rows(&dom, "shards");
    assert_eq!(shards.len(), map.shards.len(), "{shards:?}");
    for shard in map.shards.values() {
        let row = shards
            .iter()
            .find(|r| r[0] == shard.id.0.to_string())
            .unwrap_or_else(|| panic!("shard {} missing: {shards:?}", shard.id));
        assert_eq!(
            row[1],
            format!("{}-{}", shard.slot_start.0, shard.slot_end.0)
        );
        assert_eq!(row[3], "stable");
        let leader = shard.leader.map(|l| l.0.to_string());
        assert_eq!(Some(row[4].clone()), leader, "{row:?}");
    }
    assert!(dom.contains("Scheduler running"), "{dom}");
    assert!(dom.contains("updated "), "the script ran to its end: {dom}");
    test.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_the_page_asks_for_it_and_shows_nothing() {
    let test = TestCluster::start_with(3, |config| {
        config.auth.cluster_token = Some("page-secret".to_owned());
    })
    .await;
    let Some(browser) = chromium() else {
        eprintln!("no chromium installed (set KVDB_CHROMIUM): the page was not rendered");
        test.stop().await;
        return;
    };
    let url = format!("http://{}/ui", test.cluster.admin_address());
    let dom = tokio::task::spawn_blocking(move || rendered(&browser, &url))
        .await
        .unwrap();
    assert!(dom.contains("this cluster needs its admin token"), "{dom}");
    assert!(rows(&dom, "nodes").is_empty(), "{dom}");
    assert!(!dom.contains("page-secret"));
    test.stop().await;
}
