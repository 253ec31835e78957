use kvdb_core::error::RoutingError;
use kvdb_core::{ShardId, Version};

use super::*;

fn tally() -> Tally {
    Tally::new(latency_histogram().unwrap())
}

fn setup() -> Setup {
    Setup {
        op: "mixed",
        get_ratio: Some(0.9),
        target: "gateway",
        endpoints: vec!["127.0.0.1:7379".into()],
        concurrency: 50,
        connections: 1,
        key_space: 100_000,
        value_size: 100,
        consistency: "strong",
        preload: true,
    }
}

#[test]
fn errors_are_grouped_by_kind() {
    let cases = [
        (
            ClientError::ConditionFailed {
                current: Version(3),
            },
            ErrorKind::ConditionFailed,
        ),
        (
            ClientError::Kv(KvError::DeadlineExceeded),
            ErrorKind::Deadline,
        ),
        (
            ClientError::Kv(KvError::Unavailable("down".into())),
            ErrorKind::Unavailable,
        ),
        (ClientError::Kv(KvError::NoShardMap), ErrorKind::Unavailable),
        (
            ClientError::Kv(KvError::Routing(RoutingError::NotLeader {
                shard: ShardId(1),
                leader: None,
            })),
            ErrorKind::Unavailable,
        ),
        (
            ClientError::Kv(KvError::Internal("bug".into())),
            ErrorKind::Other,
        ),
        (
            ClientError::Kv(KvError::InvalidArgument("big".into())),
            ErrorKind::Other,
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(ErrorKind::of(&error), kind, "{error}");
    }
}

#[test]
fn a_tally_counts_ops_misses_and_errors() {
    let mut t = tally();
    let ms = Duration::from_millis;
    t.record(Op::Put, ms(1), Ok(true));
    t.record(Op::Get, ms(2), Ok(true));
    t.record(Op::Get, ms(3), Ok(false));
    let deadline = ClientError::Kv(KvError::DeadlineExceeded);
    t.record(Op::Get, ms(5000), Err(&deadline));
    assert_eq!((t.gets, t.puts, t.misses), (3, 1, 1));
    assert_eq!(t.errors.deadline, 1);
    assert_eq!(t.first_error.as_deref(), Some("deadline exceeded"));
    assert_eq!(t.latency.len(), 4, "failed requests are timed too");
}

#[test]
fn merged_tallies_add_up() {
    let (mut a, mut b) = (tally(), tally());
    let down = ClientError::Kv(KvError::Unavailable("node 2".into()));
    a.record(Op::Put, Duration::from_micros(100), Ok(true));
    b.record(Op::Put, Duration::from_micros(300), Err(&down));
    b.record(Op::Get, Duration::from_micros(200), Ok(false));
    a.merge(&b).unwrap();
    assert_eq!((a.requests(), a.puts, a.gets, a.misses), (3, 2, 1, 1));
    assert_eq!(a.errors.unavailable, 1);
    assert_eq!(a.first_error.as_deref(), Some("unavailable: node 2"));
    assert_eq!(a.latency.max(), 300);
}

#[test]
fn percentiles_come_from_the_histogram() {
    let mut t = tally();
    // 1..=1000 ms, one request each.
    for i in 1..=1000 {
        t.record(Op::Put, Duration::from_millis(i), Ok(true));
    }
    let l = Latency::of(&t.latency);
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
    assert!(near(l.p50, 500.0), "p50 {}", l.p50);
    assert!(near(l.p90, 900.0), "p90 {}", l.p90);
    assert!(near(l.p99, 990.0), "p99 {}", l.p99);
    assert!(near(l.p999, 999.0), "p99.9 {}", l.p999);
    assert!(near(l.max, 1000.0), "max {}", l.max);
    assert!(near(l.mean, 500.5), "mean {}", l.mean);
}

#[test]
fn an_empty_run_has_zero_latency_and_throughput() {
    let summary = Summary::new(setup(), &tally(), Duration::ZERO);
    assert_eq!(summary.latency_ms.max, 0.0);
    assert_eq!(summary.throughput, 0.0);
}

#[test]
fn throughput_counts_successes_only() {
    let mut t = tally();
    let other = ClientError::Kv(KvError::Internal("x".into()));
    for _ in 0..30 {
        t.record(Op::Put, Duration::from_millis(1), Ok(true));
    }
    for _ in 0..10 {
        t.record(Op::Put, Duration::from_millis(1), Err(&other));
    }
    let summary = Summary::new(setup(), &t, Duration::from_secs(2));
    assert_eq!((summary.requests, summary.ok), (40, 30));
    assert_eq!(summary.throughput, 15.0);
}

#[test]
fn json_is_one_flat_object_with_nested_errors_and_latency() {
    let mut t = tally();
    t.record(Op::Get, Duration::from_millis(2), Ok(true));
    let summary = Summary::new(setup(), &t, Duration::from_secs(1));
    let json = serde_json::to_value(&summary).unwrap();
    let object = json.as_object().unwrap();
    for field in [
        "op",
        "get_ratio",
        "target",
        "endpoints",
        "concurrency",
        "connections",
        "key_space",
        "value_size",
        "consistency",
        "preload",
        "requests",
        "gets",
        "puts",
        "ok",
        "misses",
        "errors",
        "elapsed_s",
        "throughput",
        "latency_ms",
    ] {
        assert!(object.contains_key(field), "missing {field} in {json}");
    }
    assert!(
        !object.contains_key("first_error"),
        "absent when nothing failed"
    );
    assert_eq!(json["op"], "mixed");
    assert_eq!(json["errors"]["deadline"], 0);
    assert_eq!(json["throughput"], 1.0);
    let latency = json["latency_ms"].as_object().unwrap();
    let keys: Vec<&str> = latency.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    for key in ["mean", "p50", "p90", "p99", "p999", "max"] {
        assert!(latency[key].is_f64(), "{key}");
    }
}

#[test]
fn pure_ops_leave_the_get_ratio_out() {
    let setup = Setup {
        op: "put",
        get_ratio: None,
        ..setup()
    };
    let json = serde_json::to_value(Summary::new(setup, &tally(), Duration::ZERO)).unwrap();
    assert!(json.get("get_ratio").is_none());
}

#[test]
fn the_text_report_names_every_figure() {
    let mut t = tally();
    t.record(Op::Put, Duration::from_millis(1), Ok(true));
    let text = Summary::new(setup(), &t, Duration::from_secs(1)).to_string();
    for needle in [
        "mixed (90% gets) via gateway 127.0.0.1:7379",
        "throughput  1 ops/s",
        "p99.9",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}
