//! Coordinator members added and removed at run time under client load: the group grows from
//! 1 to 3 to 5 members (learners first), loses its first leader, and shrinks back to one,
//! while a smart client writes. Nodes and clients learn the members without a restart: after
//! the member they were started with is gone, the nodes still heartbeat to the new leader and
//! the client still follows map changes. Removing the last member, or a member whose removal
//! would leave fewer answering members than a majority, is refused and changes nothing.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{TestCluster, kvdb, wait_until};
use kvdb::coordinator::admin::AdminConfig;
use kvdb::coordinator::{Coordinator, CoordinatorConfig};
use kvdb::core::coordinator_client::CoordinatorClient;
use kvdb::core::coordinator_error::CoordinatorError;
use kvdb::core::{NodeStatus, ShardId};
use kvdb::servers::RunningCoordinator;
use kvdb_client::{Client, Kv};
use tokio::net::TcpListener;

/// A member started with `--join` on a free port.
async fn join(id: u64, data: &Path) -> (RunningCoordinator, String) {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = grpc.local_addr().unwrap();
    let mut config = CoordinatorConfig::new(id, address, data.join(format!("coordinator-{id}")));
    config.join = true;
    let running = RunningCoordinator::start(config, grpc, admin, AdminConfig::default())
        .await
        .expect("a joining member starts");
    (running, address.to_string())
}

fn voters(coordinator: &Coordinator) -> BTreeSet<u64> {
    coordinator.members().iter().map(|m| m.id).collect()
}

/// The running member that leads, once one does.
async fn leader(members: &[(u64, Option<RunningCoordinator>)]) -> Coordinator {
    wait_until("a coordinator leader", || {
        members
            .iter()
            .any(|(_, m)| m.as_ref().is_some_and(|m| m.coordinator.is_leader()))
    })
    .await;
    members
        .iter()
        .filter_map(|(_, m)| m.as_ref())
        .map(|m| m.coordinator.clone())
        .find(|c| c.is_leader())
        .expect("a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_grow_to_five_lose_the_leader_and_shrink_to_one_under_load() {
    let mut test = TestCluster::start(3).await;
    assert!(test.cluster.coordinator_running());
    let first = test.cluster.coordinator_address();
    let client: Client = test.cluster.client().await.unwrap();

    // --- a writer that records every acknowledged key
    let stop = Arc::new(AtomicBool::new(false));
    let (written, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        let (written, failed) = (written.clone(), failed.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("member-test-{n}");
                match client.put(key.as_bytes(), key.as_bytes()).await {
                    Ok(_) => {
                        acknowledged.push(key);
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            acknowledged
        })
    };

    // --- grow 1 -> 3 -> 5, each new member a learner first
    let mut members: Vec<(u64, Option<RunningCoordinator>)> = Vec::new();
    let mut addresses = vec![first.clone()];
    for id in 2..=5 {
        let (running, address) = join(id, test.dir.path()).await;
        let added = test.cluster.coordinator().add_member(id, &address).await;
        assert!(added.is_ok(), "adding member {id}: {added:?}");
        members.push((id, Some(running)));
        addresses.push(address);
    }
    assert_eq!(
        voters(test.cluster.coordinator()),
        BTreeSet::from([1, 2, 3, 4, 5])
    );
    // Adding a member again is a no-op; an address another member holds is refused.
    assert!(
        test.cluster
            .coordinator()
            .add_member(2, &addresses[1])
            .await
            .is_ok()
    );
    assert!(matches!(
        test.cluster
            .coordinator()
            .add_member(6, &addresses[2])
            .await,
        Err(CoordinatorError::InvalidArgument(_))
    ));

    // The operator's view: `kvdb admin coordinators` lists the five, the first leading.
    let admin = test.cluster.admin_address().to_string();
    let listed = kvdb(&["admin", "--admin", &admin, "--json", "coordinators"]).await;
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["leader"], 1, "{listed}");
    assert_eq!(
        listed["members"].as_array().map(Vec::len),
        Some(5),
        "{listed}"
    );

    // A client given only the first member learns all five.
    let fresh = CoordinatorClient::new(std::slice::from_ref(&first)).unwrap();
    wait_until("a client to learn every member", || {
        fresh.addresses().len() == 5
    })
    .await;
    let learned: BTreeSet<String> = fresh.addresses().into_iter().collect();
    assert_eq!(learned, addresses.iter().cloned().collect());
    // The nodes' and the writer's clients refresh on the same period, so they too have
    // asked since the last member was added.

    // --- the first member (the leader) goes away; the others elect one among them
    test.cluster.stop_coordinator().await;
    let new_leader = leader(&members).await;
    // Nodes heartbeat to the new leader: it sees every node alive.
    wait_until("the new leader to hear every node", || {
        let map = new_leader.map();
        map.nodes.len() == 3 && map.nodes.values().all(|n| n.status == NodeStatus::Alive)
    })
    .await;
    // The writer's map follows a change made at the new leader.
    let map = new_leader.map();
    let shard = map
        .shards
        .get(&ShardId(0))
        .or_else(|| map.shards.values().next())
        .unwrap();
    let other = shard
        .replicas
        .iter()
        .copied()
        .find(|r| Some(*r) != shard.leader)
        .unwrap();
    let version = new_leader
        .set_shard_leader(shard.id, shard.epoch, other)
        .await
        .expect("a leader transfer at the new leader");
    wait_until("the writer's client to see the new map", || {
        client.cache().current().version >= version
    })
    .await;

    // --- refusals: with 1 and 5 down, removing a live member would leave 2 of 4 answering
    let (_, five) = members.iter_mut().find(|(id, _)| *id == 5).unwrap();
    five.take().unwrap().shutdown().await;
    let new_leader = leader(&members).await;
    let live = [2, 3, 4]
        .into_iter()
        .find(|id| Some(*id) != new_leader.leader().id)
        .unwrap();
    let before = voters(&new_leader);
    let refused = new_leader.remove_member(live).await;
    assert!(
        matches!(refused, Err(CoordinatorError::MembershipRefused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        voters(&new_leader),
        before,
        "a refused removal changed the members"
    );

    // --- shrink: the dead members first, then down to one
    for id in [1, 5, 4, 3] {
        let removed = remove_when_acknowledged(&members, id).await;
        assert!(removed.is_ok(), "removing member {id}: {removed:?}");
        wait_until(&format!("member {id} to leave the membership"), || {
            members_of(&members, id)
        })
        .await;
        if let Some((_, running)) = members.iter_mut().find(|(m, _)| *m == id)
            && let Some(running) = running.take()
        {
            running.shutdown().await;
        }
    }
    let last = leader(&members).await;
    assert_eq!(voters(&last), BTreeSet::from([2]));
    let refused = last.remove_member(2).await;
    assert!(
        matches!(refused, Err(CoordinatorError::MembershipRefused { .. })),
        "{refused:?}"
    );

    // --- every acknowledged write is there
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged.len() > 10, "the writer made no progress");
    for key in &acknowledged {
        let value = client.get(key.as_bytes()).await.expect("read");
        assert_eq!(
            value.map(|v| v.value),
            Some(key.as_bytes().to_vec()),
            "acknowledged {key} is missing"
        );
    }
    println!(
        "{} writes acknowledged, {} failed during the membership changes",
        written.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    for (_, running) in members {
        if let Some(running) = running {
            running.shutdown().await;
        }
    }
    test.cluster.shutdown().await;
}

/// Removes member `id` at the leader once every running member names that leader. The
/// leader's check probes each member once, with a short deadline a loaded machine can miss,
/// and refuses without a majority of answers: so, as an operator would, retry a refusal for
/// a while.
async fn remove_when_acknowledged(
    members: &[(u64, Option<RunningCoordinator>)],
    id: u64,
) -> Result<Vec<kvdb::coordinator::MemberInfo>, CoordinatorError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let leader = leader(members).await;
        let leader_id = leader.leader().id;
        wait_until("every running member to name the leader", || {
            members
                .iter()
                .filter_map(|(_, m)| m.as_ref())
                .all(|m| m.coordinator.leader().id == leader_id)
        })
        .await;
        match leader.remove_member(id).await {
            Err(CoordinatorError::MembershipRefused { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

/// Whether no running member still lists `id` as a member.
fn members_of(members: &[(u64, Option<RunningCoordinator>)], id: u64) -> bool {
    members
        .iter()
        .filter_map(|(_, m)| m.as_ref())
        .filter(|m| m.coordinator.is_leader())
        .all(|m| !voters(&m.coordinator).contains(&id))
}
