//! A shard's key-value [`Storage`]: the apply that every committed write pays on every replica,
//! and the get that every read pays on the serving replica.
//!
//! Each backend is measured with a store preloaded with [`PRELOADED`] keys of 100-byte values
//! (the load generator's default value size). An apply is one put plus the state machine's
//! metadata blob, as the shard state machine writes it. `RedbStorage` is measured with both
//! commit durabilities: `Deferred` is what shard replicas run with (the Raft log is the durable
//! copy), `Immediate` shows what an fsync per apply would cost.
//!
//! Run: `cargo bench -p kvdb-core --bench storage -- --quick`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use kvdb_core::storage::{
    CommitDurability, MemoryStorage, RedbStorage, Storage, StoredValue, WriteBatch,
};
use kvdb_core::{ShardId, Version};

/// Keys in the store before measuring.
const PRELOADED: u64 = 10_000;
/// Value size, as the load generator's default.
const VALUE_SIZE: usize = 100;
/// Size of the metadata blob (last applied log id and membership) sent with each apply.
const META_SIZE: usize = 64;

fn key(i: u64) -> Vec<u8> {
    format!("bench-{i}").into_bytes()
}

fn preload(store: &impl Storage) {
    let value = vec![b'v'; VALUE_SIZE];
    let mut batch = WriteBatch::new();
    for i in 0..PRELOADED {
        batch = batch.put(key(i), StoredValue::new(value.clone(), Version(i + 1)));
    }
    store.apply(batch).expect("preload");
}

/// Measures one-put applies (overwriting preloaded keys) and gets of present keys.
fn bench_backend(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, store: &impl Storage) {
    preload(store);
    let value = vec![b'w'; VALUE_SIZE];
    let meta = vec![0u8; META_SIZE];
    let mut version = PRELOADED;
    group.bench_function(format!("{name}/apply_put"), |b| {
        b.iter(|| {
            version += 1;
            let batch = WriteBatch::new()
                .put(
                    key(version % PRELOADED),
                    StoredValue::new(value.clone(), Version(version)),
                )
                .with_meta(meta.clone());
            store.apply(black_box(batch))
        })
    });
    let mut i = 0;
    group.bench_function(format!("{name}/get"), |b| {
        b.iter(|| {
            i = (i + 7919) % PRELOADED;
            store.get(black_box(&key(i)))
        })
    });
}

fn bench_storage(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Elements(1));

    bench_backend(&mut group, "memory", &MemoryStorage::new());

    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(redb::Database::create(dir.path().join("kv.redb")).expect("create redb"));
    for (shard, (name, durability)) in [
        ("redb_deferred", CommitDurability::Deferred),
        ("redb_immediate", CommitDurability::Immediate),
    ]
    .into_iter()
    .enumerate()
    {
        let store =
            RedbStorage::open_with(db.clone(), ShardId(shard as u64), durability).expect("open");
        bench_backend(&mut group, name, &store);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_storage
}
criterion_main!(benches);
