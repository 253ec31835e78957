//! What a server writes to a log file: plain text without colour codes (stderr is not a
//! terminal), or one JSON object per line with `--log-format json`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback address nothing listens on right now.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// Starts a coordinator logging at info into `log`, with `extra` flags.
fn start_coordinator(dir: &Path, log: &Path, extra: &[&str]) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .args(["coordinator", "--id", "1", "--listen"])
        .arg(free_address())
        .arg("--admin-listen")
        .arg(free_address())
        .arg("--data")
        .arg(dir.join("data"))
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("KVDB_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn kvdb coordinator")
}

/// The log once it holds `lines` lines, then stops the server.
fn lines_of(mut server: Child, log: &Path, lines: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().count() >= lines {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator logged only:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn a_log_file_gets_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("coordinator.log");
    let server = start_coordinator(dir.path(), &log, &[]);
    let lines = lines_of(server, &log, 3);
    assert!(lines.iter().any(|l| l.contains(" INFO ")), "{lines:#?}");
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in a log file: {lines:#?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("coordinator.log");
    let server = start_coordinator(dir.path(), &log, &["--log-format", "json"]);
    let lines = lines_of(server, &log, 3);
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
}

/// A first port of three consecutive free loopback ports.
fn three_free_ports() -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("address").port();
        let rest: Vec<_> = (1..3)
            .filter_map(|i| port.checked_add(i))
            .filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if rest.len() == 2 {
            return port;
        }
    }
    panic!("no three consecutive free ports");
}

/// Runs `kvdb dev` with `ports` (its listen flags) on `data` until it serves a write through
/// its gateway, stops it with SIGTERM, and returns what it logged.
fn dev_run(data: &Path, ports: &[String]) -> String {
    let gateway = &ports[1];
    let log = data.with_extension("log");
    let file = std::fs::File::create(&log).expect("log file");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_kvdb"))
        .arg("dev")
        .args(ports)
        .arg("--data")
        .arg(data)
        .env_remove("RUST_LOG")
        .env_remove("KVDB_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn kvdb dev");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let put = Command::new(env!("CARGO_BIN_EXE_kvdb"))
            .args(["put", "--gateway", gateway, "greeting", "hello"])
            .output()
            .expect("kvdb put");
        if put.status.success() {
            break;
        }
        if Instant::now() > deadline || matches!(dev.try_wait(), Ok(Some(_))) {
            let _ = dev.kill();
            panic!(
                "the dev cluster never took a write:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let term = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = dev.wait().expect("kvdb dev exits");
    assert!(status.success(), "kvdb dev exited with {status}");
    std::fs::read_to_string(&log).expect("the log")
}

#[test]
fn a_dev_cluster_starts_restarts_and_stops_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    // A restart keeps the addresses: shard groups know their members by address.
    let ports = [
        "--gateway-listen".to_owned(),
        free_address(),
        "--coordinator-listen".to_owned(),
        free_address(),
        "--admin-listen".to_owned(),
        free_address(),
        "--resp-listen".to_owned(),
        free_address(),
        "--node-port".to_owned(),
        three_free_ports().to_string(),
    ];
    for run in ["first start", "restart"] {
        let log = dev_run(&data, &ports);
        assert!(log.lines().any(|l| l.contains(" INFO ")), "{run}: {log}");
        let noisy: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        assert!(
            noisy.is_empty(),
            "{run} logged warnings or errors:\n{}",
            noisy.join("\n")
        );
    }
}
