//! The background driver: initial load, watching, gaps, polling fallback.

use super::*;

/// Spawns a cache over a fake source at `map_at(version)` and waits until
/// it has loaded that version and is watching.
async fn watching_cache(version: u64) -> (Arc<ShardMapCache>, Arc<FakeSource>, DriverHandle) {
    let source = FakeSource::new(map_at(version));
    let (cache, handle) = ShardMapCache::spawn(source.clone(), test_config()).unwrap();
    within("initial load", cache.wait_for_version(MapVersion(version))).await;
    wait_mode(&cache, Mode::Watching).await;
    (cache, source, handle)
}

async fn wait_mode(cache: &ShardMapCache, mode: Mode) {
    let mut modes = cache.watch_mode();
    within("mode", modes.wait_for(|m| *m == mode))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn loads_the_map_then_watches() {
    let (cache, source, _handle) = watching_cache(3).await;

    assert_eq!(*cache.current(), source.map());
    assert_eq!(source.fetches(), 1);
    assert_eq!(source.watches(), 1);
}

#[tokio::test(start_paused = true)]
async fn applies_streamed_deltas_in_order() {
    let (cache, source, _handle) = watching_cache(1).await;

    for (version, leader) in [(2, 2), (3, 3), (4, 1)] {
        source.commit(leader_delta(version, leader));
    }

    within("version 4", cache.wait_for_version(MapVersion(4))).await;
    assert_eq!(*cache.current(), source.map());
    assert_eq!(cache.stats().deltas_applied, 3);
    assert_eq!(source.fetches(), 1, "deltas need no fetch");
}

#[tokio::test(start_paused = true)]
async fn a_gap_in_the_stream_fetches_the_map() {
    let (cache, source, _handle) = watching_cache(1).await;

    // --- version 2 never reaches the stream; version 3 does
    source.commit_unannounced(leader_delta(2, 2));
    source.commit(leader_delta(3, 3));

    within("version 3", cache.wait_for_version(MapVersion(3))).await;
    assert_eq!(*cache.current(), source.map());
    assert_eq!(cache.stats().gaps, 1);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn old_snapshots_and_deltas_are_ignored() {
    let (cache, source, _handle) = watching_cache(5).await;

    // --- replayed history must not take the map back
    let mut old = map_at(2);
    old.shards.get_mut(&ShardId(1)).unwrap().leader = Some(NodeId(3));
    source.send(WatchEvent::Snapshot(old));
    source.send(WatchEvent::Delta(leader_delta(4, 2)));
    source.send(WatchEvent::Delta(leader_delta(5, 2)));
    source.commit(leader_delta(6, 3));

    within("version 6", cache.wait_for_version(MapVersion(6))).await;
    assert_eq!(*cache.current(), source.map());
    assert_eq!(cache.stats().stale_events, 3);
}

#[tokio::test(start_paused = true)]
async fn polls_while_the_watch_is_down_and_stops_when_it_returns() {
    let (cache, source, _handle) = watching_cache(1).await;

    tracing::info!("--- break the watch: the driver falls back to polling");
    source.break_watch();
    wait_mode(&cache, Mode::Polling).await;
    source.commit(leader_delta(2, 2));
    within("polled version 2", cache.wait_for_version(MapVersion(2))).await;
    assert!(source.fetches() >= 2);

    tracing::info!("--- restore the watch: back to watching");
    source.restore_watch();
    wait_mode(&cache, Mode::Watching).await;
    assert_eq!(cache.stats().watch_restarts, 1);

    tracing::info!("--- polling has stopped: changes arrive by stream only");
    let fetches = source.fetches();
    tokio::time::advance(test_config().poll_interval * 10).await;
    source.commit(leader_delta(3, 3));
    within("streamed version 3", cache.wait_for_version(MapVersion(3))).await;
    assert_eq!(source.fetches(), fetches);
    assert_eq!(cache.mode(), Mode::Watching);
}

#[tokio::test(start_paused = true)]
async fn a_failed_initial_fetch_is_retried() {
    let source = FakeSource::new(map_at(2));
    source.fail_fetches(true);
    source.break_watch();
    let (cache, _handle) = ShardMapCache::spawn(source.clone(), test_config()).unwrap();
    within("two failed polls", source.wait_fetches(2)).await;
    assert_eq!(cache.version(), MapVersion(0));

    source.fail_fetches(false);
    within("version 2", cache.wait_for_version(MapVersion(2))).await;
    assert_eq!(cache.mode(), Mode::Polling);
}

#[tokio::test(start_paused = true)]
async fn leader_hint_holds_until_the_source_says_otherwise() {
    let (cache, source, _handle) = watching_cache(1).await;

    assert_eq!(
        cache.note_leader(ShardId(1), NodeId(2)),
        LeaderHint::Installed
    );
    assert_eq!(cache.version(), MapVersion(1));

    source.commit(leader_delta(2, 3));
    within("version 2", cache.wait_for_version(MapVersion(2))).await;
    assert_eq!(cache.current().shards[&ShardId(1)].leader, Some(NodeId(3)));
}

#[tokio::test(start_paused = true)]
async fn driver_stops_on_shutdown_and_when_the_cache_is_dropped() {
    // --- explicit shutdown
    let (cache, _source, handle) = watching_cache(1).await;
    within("shutdown", handle.shutdown()).await.unwrap();
    assert_eq!(cache.mode(), Mode::Idle);

    // --- last reference dropped
    let (cache, _source, handle) = watching_cache(1).await;
    drop(cache);
    within("driver exit", handle.shutdown()).await.unwrap();
}
