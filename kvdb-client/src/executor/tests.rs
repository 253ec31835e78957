//! Unit tests of the executor: replica choice and refresh waits.

use std::future::pending;
use std::pin::Pin;

use kvdb_core::cache::{CacheConfig, ShardMapSource, SourceError, WatchStream};
use kvdb_core::router::Replica;
use kvdb_core::{Epoch, MapVersion, NodeId, ShardId, ShardMap};

use super::*;

type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// A map source that never answers (these tests never refresh).
struct NeverSource;

impl ShardMapSource for NeverSource {
    fn fetch(&self, _: MapVersion) -> Answer<'_, Option<ShardMap>> {
        Box::pin(pending())
    }

    fn watch(&self, _: MapVersion) -> Answer<'_, WatchStream> {
        Box::pin(pending())
    }
}

fn executor() -> Executor {
    let cache = ShardMapCache::new(Arc::new(NeverSource), CacheConfig::default()).unwrap();
    Executor::new(cache, ExecutorConfig::default())
}

fn route(leader: Option<usize>) -> Route {
    let replicas: Vec<Replica> = (1..=3)
        .map(|n| Replica {
            node: NodeId(n),
            address: format!("127.0.0.1:{n}"),
        })
        .collect();
    Route {
        shard: ShardId(0),
        epoch: Epoch(1),
        leader: leader.map(|i| replicas[i].clone()),
        replicas,
    }
}

#[tokio::test]
async fn writes_go_to_the_leader_while_it_is_healthy() {
    let executor = executor();
    assert_eq!(
        executor.pick(&route(Some(0)), Access::Write).as_deref(),
        Some("127.0.0.1:1")
    );
    assert_eq!(
        executor.pick(&route(None), Access::StrongRead).as_deref(),
        Some("127.0.0.1:1")
    );
}

#[tokio::test]
async fn a_failed_leader_is_passed_over_for_a_replica_that_can_hint() {
    let executor = executor();
    executor.pool().link("127.0.0.1:1").unwrap();
    executor.pool().mark_failed("127.0.0.1:1");
    assert_eq!(
        executor.pick(&route(Some(0)), Access::Write).as_deref(),
        Some("127.0.0.1:2")
    );
    // With every replica failed, the leader is still worth a try.
    for n in 2..=3 {
        let address = format!("127.0.0.1:{n}");
        executor.pool().link(&address).unwrap();
        executor.pool().mark_failed(&address);
    }
    assert_eq!(
        executor.pick(&route(Some(0)), Access::Write).as_deref(),
        Some("127.0.0.1:1")
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_never_lands_costs_a_retry_only_its_patience() {
    let executor = executor();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    executor
        .refresh(Refresh::Throttled, executor.patience(), deadline)
        .await;
    assert_eq!(start.elapsed(), ExecutorConfig::DEFAULT_REFRESH_PATIENCE);
    // A forced refresh (the map is known wrong) waits up to the deadline.
    executor.refresh(Refresh::Forced, deadline, deadline).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}
