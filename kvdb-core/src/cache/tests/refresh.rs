//! Single-flight and throttled refreshes, without a driver.

use std::pin::pin;

use tokio::sync::watch;

use super::*;

#[tokio::test(start_paused = true)]
async fn concurrent_refreshes_share_one_fetch() {
    let source = FakeSource::new(map_at(3));
    // No throttle: only coalescing may keep the fetch count at one.
    let config = CacheConfig {
        min_refresh_interval: Duration::ZERO,
        ..test_config()
    };
    let cache = ShardMapCache::new(source.clone(), config).unwrap();
    source.hold_fetches();

    // --- 100 callers ask while the fetch is held in the air
    let entered = watch::Sender::new(0_usize);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let cache = cache.clone();
        let entered = entered.clone();
        tasks.spawn(async move {
            // On this single-threaded runtime the refresh joins its flight
            // in the same poll as this increment.
            entered.send_modify(|n| *n += 1);
            cache.refresh(Refresh::Throttled).await
        });
    }
    within("all callers", entered.subscribe().wait_for(|n| *n == 100))
        .await
        .unwrap();
    source.release_fetches();

    // --- all of them see the fetched version
    let results = within("refreshes", tasks.join_all()).await;
    assert!(results.iter().all(|r| *r == Ok(MapVersion(3))));
    assert_eq!(source.fetches(), 1);
    assert_eq!(cache.stats().maps_installed, 1);
}

#[tokio::test(start_paused = true)]
async fn throttled_refresh_inside_the_interval_does_not_fetch() {
    let (cache, source) = idle_cache(1);
    assert_eq!(cache.refresh(Refresh::Throttled).await, Ok(MapVersion(1)));
    source.commit(leader_delta(2, 2));

    // --- inside the interval: answered from the cache at once
    assert_eq!(cache.refresh(Refresh::Throttled).await, Ok(MapVersion(1)));
    assert_eq!(source.fetches(), 1);

    // --- after the interval: fetches again
    tokio::time::advance(test_config().min_refresh_interval).await;
    assert_eq!(cache.refresh(Refresh::Throttled).await, Ok(MapVersion(2)));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn forced_refresh_bypasses_the_throttle() {
    let (cache, source) = idle_cache(1);
    cache.refresh(Refresh::Throttled).await.unwrap();
    source.commit(leader_delta(2, 2));

    assert_eq!(cache.refresh(Refresh::Forced).await, Ok(MapVersion(2)));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn forced_refresh_does_not_settle_for_an_older_fetch() {
    let (cache, source) = idle_cache(1);
    source.hold_fetches();

    // --- a throttled fetch reads version 1 and is held in the air
    let mut throttled = pin!(cache.refresh(Refresh::Throttled));
    assert!(futures::poll!(throttled.as_mut()).is_pending());
    within("first fetch", source.wait_fetches(1)).await;

    // --- the map moves on, then a forced request arrives
    source.commit(leader_delta(2, 2));
    let mut forced = pin!(cache.refresh(Refresh::Forced));
    assert!(futures::poll!(forced.as_mut()).is_pending());
    source.release_fetches();

    // --- the throttled caller gets the old answer, the forced one a new fetch
    assert_eq!(within("throttled", throttled).await, Ok(MapVersion(1)));
    assert_eq!(within("forced", forced).await, Ok(MapVersion(2)));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn forced_refreshes_arriving_together_share_one_newer_fetch() {
    let (cache, source) = idle_cache(1);
    source.hold_fetches();
    let mut first = pin!(cache.refresh(Refresh::Forced));
    assert!(futures::poll!(first.as_mut()).is_pending());

    // --- ten forced requests wait out the first fetch, then share one
    let mut later = pin!(futures::future::join_all(
        (0..10).map(|_| cache.refresh(Refresh::Forced))
    ));
    assert!(futures::poll!(later.as_mut()).is_pending());
    source.release_fetches();

    assert_eq!(within("first", first).await, Ok(MapVersion(1)));
    let results = within("later", later).await;
    assert!(results.iter().all(|r| *r == Ok(MapVersion(1))));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_fetch_is_reported_and_changes_nothing() {
    let (cache, source) = idle_cache(2);
    source.fail_fetches(true);

    let result = cache.refresh(Refresh::Forced).await;

    assert!(matches!(result, Err(RefreshError::Source(_))));
    assert_eq!(cache.version(), MapVersion(0));
    assert_eq!(cache.stats().fetch_errors, 1);
}
