use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cmd {
    #[command(flatten)]
    bench: BenchArgs,
}

fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
    Cmd::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
}

#[test]
fn defaults_match_the_java_originals_workload() {
    let args = parse(&[]).unwrap();
    assert_eq!(args.op, BenchOp::Put);
    assert_eq!(
        (args.concurrency, args.requests, args.value_size),
        (50, 20_000, 100)
    );
    assert_eq!(args.key_space, 100_000);
    assert_eq!(args.budget(), Budget::Requests(20_000));
    assert_eq!(args.timeout, Duration::from_secs(5));
    assert!(!args.json && !args.preload);
}

#[test]
fn the_target_is_the_gateway_unless_smart_or_coordinators() {
    let gateway = parse(&["--gateway", "10.0.0.1:1"]).unwrap();
    assert_eq!(gateway.target(), Target::Gateway("10.0.0.1:1".into()));
    let smart = parse(&["--smart"]).unwrap();
    assert_eq!(
        smart.target(),
        Target::Smart(vec![DEFAULT_COORDINATOR.into()])
    );
    let listed = parse(&["--coordinators", "a:1,b:2", "--gateway", "g:3"]).unwrap();
    assert_eq!(
        listed.target(),
        Target::Smart(vec!["a:1".into(), "b:2".into()])
    );
    assert_eq!(listed.setup().target, "smart");
}

#[test]
fn a_duration_replaces_the_request_count() {
    let args = parse(&["--duration", "30s"]).unwrap();
    assert_eq!(args.budget(), Budget::Time(Duration::from_secs(30)));
    assert!(
        parse(&["--duration", "30s", "-n", "10"]).is_err(),
        "either one, not both"
    );
    assert!(parse(&["--duration", "0s"]).is_err());
}

#[test]
fn out_of_range_numbers_are_refused() {
    for bad in [
        &["--get-ratio", "1.5"][..],
        &["--get-ratio", "-0.1"],
        &["--get-ratio", "x"],
        &["-c", "0"],
        &["-n", "0"],
        &["--key-space", "0"],
        &["--connections", "0"],
        &["--timeout", "0ms"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn mixed_runs_report_their_ratio_and_preload() {
    let args = parse(&[
        "--op",
        "mixed",
        "--get-ratio",
        "0.9",
        "--preload",
        "-c",
        "8",
    ])
    .unwrap();
    assert_eq!(args.mix(), OpMix::mixed(0.9));
    let setup = args.setup();
    assert_eq!(
        (setup.op, setup.get_ratio, setup.preload),
        ("mixed", Some(0.9), true)
    );
    assert_eq!(setup.concurrency, 8);
}

#[test]
fn puts_preload_when_asked_so_that_they_run_over_a_filled_store() {
    let setup = parse(&["--preload"]).unwrap().setup();
    assert_eq!(
        (setup.op, setup.get_ratio, setup.preload),
        ("put", None, true)
    );
    assert!(!parse(&[]).unwrap().setup().preload);
}

#[test]
fn phases_carry_the_request_options() {
    let args = parse(&[
        "--op",
        "get",
        "--consistency",
        "eventual",
        "--timeout",
        "300ms",
        "--value-size",
        "7",
    ])
    .unwrap();
    let phase = args.phase(args.mix(), KeyOrder::Random, args.budget(), 1);
    assert_eq!(phase.get_options.consistency, Consistency::Eventual);
    assert_eq!(phase.get_options.timeout, Some(Duration::from_millis(300)));
    assert_eq!(phase.put_options.timeout, Some(Duration::from_millis(300)));
    assert_eq!(phase.value.len(), 7);
    assert_eq!(phase.mix, OpMix::GET);
}
