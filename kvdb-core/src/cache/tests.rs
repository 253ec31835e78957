//! Cache tests: direct updates here, refreshes and the driver in the
//! submodules, all against the in-memory [`fake::FakeSource`].

mod driver;
mod fake;
mod refresh;

use std::sync::Arc;
use std::time::Duration;

use fake::{FakeSource, leader_delta, map_at};

use super::*;
use crate::ids::Slot;

/// How long any awaited condition may take (virtual time when paused).
const DEADLINE: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn test_config() -> CacheConfig {
    CacheConfig {
        poll_interval: Duration::from_secs(1),
        min_refresh_interval: Duration::from_millis(100),
        watch_retry_min: Duration::from_millis(100),
        watch_retry_max: Duration::from_secs(1),
    }
}

/// A cache with no driver over a fake source holding `map_at(version)`.
fn idle_cache(version: u64) -> (Arc<ShardMapCache>, Arc<FakeSource>) {
    let source = FakeSource::new(map_at(version));
    let cache = ShardMapCache::new(source.clone(), test_config()).unwrap();
    (cache, source)
}

#[test]
fn default_config_is_valid_and_bad_values_are_rejected() {
    let config = CacheConfig::default();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.poll_interval, DEFAULT_POLL_INTERVAL);
    assert_eq!(config.min_refresh_interval, DEFAULT_MIN_REFRESH_INTERVAL);

    let zero_poll = CacheConfig {
        poll_interval: Duration::ZERO,
        ..CacheConfig::default()
    };
    assert_eq!(zero_poll.validate(), Err(ConfigError::ZeroPollInterval));

    let inverted = CacheConfig {
        watch_retry_min: Duration::from_secs(10),
        watch_retry_max: Duration::from_secs(1),
        ..CacheConfig::default()
    };
    assert!(matches!(
        inverted.validate(),
        Err(ConfigError::WatchRetryRange { .. })
    ));
    let source = FakeSource::new(map_at(1));
    assert!(ShardMapCache::new(source, inverted).is_err());
}

#[test]
fn install_never_goes_back() {
    let (cache, _) = idle_cache(1);
    assert_eq!(cache.install(map_at(5)), Ok(MapVersion(5)));

    // --- equal and older versions are ignored
    for old in [5, 4, 1] {
        assert_eq!(
            cache.install(map_at(old)),
            Err(UpdateError::Stale {
                current: MapVersion(5),
                offered: MapVersion(old),
            })
        );
    }
    assert_eq!(cache.version(), MapVersion(5));
}

#[test]
fn install_rejects_an_invalid_map() {
    let (cache, _) = idle_cache(1);
    cache.install(map_at(1)).unwrap();
    let mut broken = map_at(2);
    broken.shards.get_mut(&ShardId(2)).unwrap().slot_start = Slot(9000);

    let result = cache.install(broken);

    assert!(matches!(result, Err(UpdateError::Invalid { .. })));
    assert_eq!(cache.current(), Arc::new(map_at(1)));
    assert_eq!(cache.stats().maps_rejected, 1);
}

#[test]
fn deltas_apply_in_order_and_report_stale_and_gap() {
    let (cache, _) = idle_cache(1);
    cache.install(map_at(1)).unwrap();

    assert_eq!(cache.apply_delta(&leader_delta(2, 2)), Ok(MapVersion(2)));
    assert_eq!(cache.apply_delta(&leader_delta(3, 3)), Ok(MapVersion(3)));
    assert_eq!(
        cache.apply_delta(&leader_delta(2, 1)),
        Err(UpdateError::Stale {
            current: MapVersion(3),
            offered: MapVersion(2),
        })
    );
    assert_eq!(
        cache.apply_delta(&leader_delta(5, 1)),
        Err(UpdateError::Gap {
            current: MapVersion(3),
            delta: MapVersion(5),
        })
    );

    let map = cache.current();
    assert_eq!(map.version, MapVersion(3));
    assert_eq!(map.shards[&ShardId(1)].leader, Some(NodeId(3)));
    assert_eq!(cache.stats().deltas_applied, 2);
}

#[test]
fn note_leader_replaces_the_leader_at_the_same_version() {
    let (cache, _) = idle_cache(1);
    cache.install(map_at(4)).unwrap();

    assert_eq!(
        cache.note_leader(ShardId(1), NodeId(3)),
        LeaderHint::Installed
    );

    let map = cache.current();
    assert_eq!(map.version, MapVersion(4));
    assert_eq!(map.shards[&ShardId(1)].leader, Some(NodeId(3)));
    assert_eq!(map.shards[&ShardId(2)], map_at(4).shards[&ShardId(2)]);
    assert_eq!(
        cache.note_leader(ShardId(1), NodeId(3)),
        LeaderHint::Unchanged
    );

    // --- the next map from the source supersedes the hint
    cache.apply_delta(&leader_delta(5, 2)).unwrap();
    assert_eq!(cache.current().shards[&ShardId(1)].leader, Some(NodeId(2)));
    assert_eq!(cache.stats().leader_hints, 1);
}

#[test]
fn router_is_published_with_its_map() {
    let (cache, _) = idle_cache(1);
    cache.install(map_at(1)).unwrap();
    cache.note_leader(ShardId(1), NodeId(2));

    let router = cache.router();
    assert!(Arc::ptr_eq(router.map(), &cache.current()));
    let route = router.route_shard(ShardId(1)).unwrap();
    assert_eq!(route.leader.as_ref().map(|r| r.node), Some(NodeId(2)));
}

#[test]
fn note_leader_ignores_unknown_shards_and_non_members() {
    let (cache, _) = idle_cache(1);
    cache.install(map_at(1)).unwrap();
    let before = cache.current();

    assert_eq!(
        cache.note_leader(ShardId(9), NodeId(1)),
        LeaderHint::UnknownShard
    );
    assert_eq!(
        cache.note_leader(ShardId(2), NodeId(3)),
        LeaderHint::NotMember
    );

    assert!(Arc::ptr_eq(&before, &cache.current()));
}

#[tokio::test(start_paused = true)]
async fn wait_for_version_returns_once_the_version_is_installed() {
    let (cache, _) = idle_cache(1);
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.wait_for_version(MapVersion(3)).await }
    });

    cache.install(map_at(2)).unwrap();
    cache.install(map_at(3)).unwrap();

    let map = within("version 3", waiter).await.unwrap();
    assert_eq!(map.version, MapVersion(3));
}
