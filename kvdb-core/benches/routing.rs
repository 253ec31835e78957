//! Routing hot paths: key -> slot, key -> route, and applying a shard-map delta.
//!
//! Every request a gateway, smart client or node handles pays for one slot hash and one route
//! lookup, so these must stay flat in the number of keys (the router keeps no per-key state)
//! and grow only with log(shards) (one binary search over the range ends). The key-count
//! axis uses key sets of different sizes to show the former; the 8- vs 4096-shard maps show
//! the latter. Delta application and the router rebuild that follows it run once per map
//! change, not per request, and are measured to show they stay cheap at 4096 shards.
//!
//! Run: `cargo bench -p kvdb-core --bench routing -- --quick`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kvdb_core::router::Router;
use kvdb_core::slot::slot;
use kvdb_core::{
    Epoch, MapVersion, NodeId, NodeInfo, NodeStatus, SLOT_COUNT, ShardId, ShardInfo, ShardMap,
    ShardMapDelta, ShardState, Slot,
};

/// Shard counts compared: a small cluster and the largest power of two that still gives each
/// shard 4 slots.
const SHARD_COUNTS: [u16; 2] = [8, 4096];
/// Key-set sizes compared for route lookups.
const KEY_COUNTS: [usize; 2] = [1_000, 1_000_000];

/// A valid map of `shards` equal slot ranges over 3 nodes, replicated 3 ways.
fn map(shards: u16) -> ShardMap {
    let mut map = ShardMap {
        version: MapVersion(1),
        ..ShardMap::default()
    };
    for id in 1..=3 {
        map.nodes.insert(
            NodeId(id),
            NodeInfo {
                id: NodeId(id),
                name: format!("node-{id}"),
                address: format!("127.0.0.1:739{id}"),
                zone: "default".into(),
                status: NodeStatus::Alive,
                resp_address: String::new(),
            },
        );
    }
    let width = SLOT_COUNT / shards;
    for i in 0..shards {
        let id = ShardId(u64::from(i));
        map.shards.insert(
            id,
            ShardInfo {
                id,
                slot_start: Slot(i * width),
                slot_end: Slot((i + 1) * width - 1),
                replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
                leader: Some(NodeId(u64::from(i % 3 + 1))),
                epoch: Epoch(1),
                state: ShardState::Stable,
                leader_term: 1,
            },
        );
    }
    map
}

/// Keys shaped like the load generator's: a prefix and a decimal index.
fn keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("bench-{i}").into_bytes())
        .collect()
}

fn bench_slot(c: &mut Criterion) {
    let mut group = c.benchmark_group("slot");
    group.throughput(Throughput::Elements(1));
    for (name, key) in [
        ("16B", vec![b'k'; 16]),
        ("256B", vec![b'k'; 256]),
        (
            "hash_tag_32B",
            b"{user1000}.followers.0123456789ab".to_vec(),
        ),
    ] {
        group.bench_function(name, |b| b.iter(|| slot(black_box(&key))));
    }
    group.finish();
}

fn bench_route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    for shards in SHARD_COUNTS {
        let router = Router::new(Arc::new(map(shards)));
        for count in KEY_COUNTS {
            let keys = keys(count);
            let mut next = 0;
            let id = BenchmarkId::new(format!("{shards}_shards"), format!("{count}_keys"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    next = (next + 1) % keys.len();
                    router.route(black_box(&keys[next]))
                })
            });
        }
        // The binary search alone, without the CRC.
        let mut s = 0u16;
        group.bench_function(BenchmarkId::new("slot_only", shards), |b| {
            b.iter(|| {
                s = (s + 7919) % SLOT_COUNT;
                router.route_slot(black_box(Slot(s)))
            })
        });
    }
    group.finish();
}

fn bench_delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_map_delta");
    for shards in SHARD_COUNTS {
        let mut base = map(shards);
        // A leader change of one shard: the most common delta.
        let mut changed = base.shards[&ShardId(1)].clone();
        changed.leader = Some(NodeId(3));
        changed.leader_term += 1;
        let delta = ShardMapDelta {
            version: base.version.next(),
            shards: vec![changed],
            ..ShardMapDelta::default()
        };
        let version = base.version;
        group.bench_function(BenchmarkId::new("apply", shards), |b| {
            b.iter(|| {
                // Rewinding the version makes the same delta apply again; the shard record is
                // replaced each time, as on a real apply.
                base.version = version;
                base.apply(black_box(&delta))
            })
        });
        // What a cache does after each applied delta: a new router over the new map.
        let applied = Arc::new(base.clone());
        group.bench_function(BenchmarkId::new("router_rebuild", shards), |b| {
            b.iter(|| Router::new(black_box(applied.clone())))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_slot, bench_route, bench_delta
}
criterion_main!(benches);
