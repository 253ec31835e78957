//! What request metrics add to every request a node or gateway answers: one `record` call
//! (an atomic counter and a histogram observation for the common outcome, a labelled lookup
//! for the others), alone and from two threads at once, as the 2-core box's servers do.
//!
//! Run: `cargo bench -p kvdb-core --bench metrics -- --quick`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use kvdb_core::error::KvError;
use kvdb_core::metrics::{RequestMetrics, registry};

fn record(c: &mut Criterion) {
    let mut registry = registry();
    let metrics = RequestMetrics::register(&mut registry, "bench");
    let ok: Result<(), KvError> = Ok(());
    let failed: Result<(), KvError> = Err(KvError::DeadlineExceeded);
    let started = Instant::now();
    c.bench_function("record/ok", |b| {
        b.iter(|| metrics.record(black_box("get"), started, black_box(&ok)))
    });
    c.bench_function("record/error", |b| {
        b.iter(|| metrics.record(black_box("get"), started, black_box(&failed)))
    });
    c.bench_function("record/off", |b| {
        let off = RequestMetrics::off();
        b.iter(|| off.record(black_box("get"), started, black_box(&ok)))
    });
    c.bench_function("record/ok, another thread recording too", |b| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = {
            let (metrics, stop) = (metrics.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    metrics.record("get", started, &Ok::<(), KvError>(()));
                }
            })
        };
        b.iter(|| metrics.record(black_box("get"), started, black_box(&ok)));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        other.join().unwrap();
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
