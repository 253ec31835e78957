//! `kvdb admin ...`: the Admin HTTP API from the command line, as readable
//! tables or, with `--json`, the API's own JSON.

use std::process::ExitCode;
use std::time::Duration;

use kvdb_coordinator::admin::api::{
    NodeList, NodeSelector, OperationsView, ShardList, ShardSplitResponse, ShardView,
};
use kvdb_coordinator::admin::{AdminClient, AdminError};
use kvdb_coordinator::scheduler::OperationKind;
use kvdb_core::{Epoch, NodeStatus, ShardId, Slot};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{AdminArgs, AdminCommand, CoordinatorsAction, SchedulerAction};
use crate::cmd::kv::{EXIT_ERROR, EXIT_UNAVAILABLE};

/// How often `drain --wait` and `split --wait` check on the cluster.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub async fn run(args: AdminArgs) -> ExitCode {
    let client = match AdminClient::new(&args.admin) {
        Ok(c) => c,
        Err(e) => return fail(&args.admin, e.into()),
    };
    let client = match &args.token {
        Some(token) => client.with_token(token.clone()),
        None => client,
    };
    let client = match args.tls.client_tls() {
        Ok(None) => client,
        Ok(Some(tls)) => match client.with_tls(&tls) {
            Ok(c) => c,
            Err(e) => return fail(&args.admin, e.into()),
        },
        Err(e) => {
            eprintln!("kvdb admin: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if matches!(
        args.command,
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. }
    ) {
        return crate::cmd::backup::run(&client, args).await;
    }
    match execute(&client, args.command, args.json).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&args.admin, e),
    }
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Api(#[from] AdminError),
    #[error("{0}")]
    Usage(String),
}

async fn execute(client: &AdminClient, command: AdminCommand, json: bool) -> Result<(), Failure> {
    match command {
        AdminCommand::Nodes => show(json, &client.nodes().await?, print_nodes),
        AdminCommand::Shards => show(json, &client.shards().await?, print_shards),
        AdminCommand::Cluster => {
            let cluster = client.cluster().await?;
            if json {
                return show(true, &cluster, |_| {});
            }
            kvdb::outln!(
                "coordinator {} ({}), term {}, leader {}, ready {}",
                cluster.member_id,
                cluster.role,
                cluster.term,
                cluster
                    .leader
                    .id
                    .map_or("none".to_owned(), |id| id.to_string()),
                cluster.ready
            );
            kvdb::outln!(
                "map version {}, {} nodes, {} shards{}",
                cluster.map_version,
                cluster.node_count,
                cluster.shard_count,
                match (cluster.num_shards, cluster.replication_factor) {
                    (Some(n), Some(rf)) => format!(" (initialized: {n} shards, RF {rf})"),
                    _ => " (not initialized)".to_owned(),
                }
            );
            kvdb::outln!();
            print_shards(&client.shards().await?);
            Ok(())
        }
        AdminCommand::Register {
            name,
            address,
            zone,
        } => {
            let node = client.register_node(&name, &address, Some(&zone)).await?;
            show(json, &node, |n| {
                kvdb::outln!("registered {} as node {} at {}", n.name, n.id, n.address)
            })
        }
        AdminCommand::ShardInit {
            num_shards,
            replication_factor,
        } => {
            let r = client.init_shards(num_shards, replication_factor).await?;
            show(json, &r, |r| {
                kvdb::outln!(
                    "initialized {num_shards} shards at replication factor {replication_factor} (map version {})",
                    r.map_version
                )
            })
        }
        AdminCommand::SetStatus { node, status } => {
            let status = parse_status(&status)?;
            let r = client.set_node_status(&selector(&node), status).await?;
            show(json, &r, |r| {
                kvdb::outln!("ok (map version {})", r.map_version)
            })
        }
        AdminCommand::SetReplicas {
            shard,
            replicas,
            epoch,
        } => {
            let replicas = replicas.iter().map(|r| selector(r)).collect();
            let view = client
                .set_shard_replicas(ShardId(shard), replicas, epoch.map(Epoch))
                .await?;
            show(json, &view, |s| {
                print_shard_header();
                print_shard(s);
            })
        }
        AdminCommand::Drain {
            node,
            wait,
            timeout,
        } => drain(client, &node, wait, timeout, json).await,
        AdminCommand::Split {
            shard,
            at,
            epoch,
            wait,
            timeout,
        } => {
            let split = client
                .split_shard(ShardId(shard), at.map(Slot), epoch.map(Epoch))
                .await?;
            split_wait(client, split, wait, timeout, json).await
        }
        AdminCommand::Operations => show(json, &client.operations().await?, print_operations),
        AdminCommand::Coordinators { action } => {
            let members = match action.unwrap_or(CoordinatorsAction::List) {
                CoordinatorsAction::List => client.coordinators().await?,
                CoordinatorsAction::Add { id, address } => {
                    client.add_coordinator(id, &address).await?
                }
                CoordinatorsAction::Remove { id } => client.remove_coordinator(id).await?,
            };
            show(json, &members, |m| {
                kvdb::outln!("{:<4} {:<24} {:<24} LEADER", "ID", "GRPC", "ADMIN");
                for member in &m.members {
                    kvdb::outln!(
                        "{:<4} {:<24} {:<24} {}",
                        member.id,
                        member.grpc_address,
                        member.admin_address.as_deref().unwrap_or("-"),
                        if m.leader == Some(member.id) { "*" } else { "" }
                    );
                }
            })
        }
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            unreachable!("backup and restore need the nodes' credentials: see run()")
        }
        AdminCommand::Scheduler { action } => {
            let paused = action == SchedulerAction::Pause;
            let r = client.set_scheduler_paused(paused).await?;
            show(json, &r, |_| {
                kvdb::outln!("scheduler {}", if paused { "paused" } else { "resumed" })
            })
        }
        AdminCommand::TransferLeader { shard, node, epoch } => {
            let r = client
                .set_shard_leader(ShardId(shard), selector(&node), Epoch(epoch))
                .await?;
            show(json, &r, |r| {
                kvdb::outln!("ok (map version {})", r.map_version)
            })
        }
    }
}

/// Marks `node` draining; with `wait`, polls until the scheduler has moved
/// every replica and leadership off it.
async fn drain(
    client: &AdminClient,
    node: &str,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> Result<(), Failure> {
    let node = selector(node);
    client.set_node_status(&node, NodeStatus::Draining).await?;
    let deadline = Instant::now() + timeout;
    let mut view = client.node(&node).await?;
    while wait && (view.replicas > 0 || view.leaders > 0) {
        if Instant::now() >= deadline {
            return Err(Failure::Usage(format!(
                "node {} still holds {} replicas and leads {} shards after {timeout:?}; \
                 see `kvdb admin operations`",
                view.name, view.replicas, view.leaders
            )));
        }
        tokio::time::sleep(WAIT_POLL).await;
        view = client.node(&node).await?;
    }
    show(json, &view, |n| {
        if n.replicas == 0 && n.leaders == 0 {
            kvdb::outln!("node {} is drained", n.name);
        } else {
            kvdb::outln!(
                "node {} is draining: {} replicas and {} leaderships to move \
                 (`kvdb admin operations` shows progress)",
                n.name,
                n.replicas,
                n.leaders
            );
        }
    })
}

/// Prints both halves of a split; with `wait`, first polls until the new
/// shard is stable (its group's first leader has reported).
async fn split_wait(
    client: &AdminClient,
    mut split: ShardSplitResponse,
    wait: bool,
    timeout: Duration,
    json: bool,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    while wait && split.child.state != "stable" {
        if Instant::now() >= deadline {
            return Err(Failure::Usage(format!(
                "shard {} is still {} after {timeout:?}: its replicas have not built its group \
                 or elected a leader yet; see `kvdb admin operations`",
                split.child.id, split.child.state
            )));
        }
        tokio::time::sleep(WAIT_POLL).await;
        split.child = client.shard(split.child.id).await?;
    }
    show(json, &split, |r| {
        let (p, c) = (&r.parent, &r.child);
        kvdb::outln!(
            "shard {} keeps slots {}-{}; new shard {} takes slots {}-{} (epoch {}, map version {})",
            p.id,
            p.slot_start,
            p.slot_end,
            c.id,
            c.slot_start,
            c.slot_end,
            c.epoch,
            r.version
        );
        match &c.leader {
            Some(leader) if c.state == "stable" => {
                kvdb::outln!("shard {} is stable, led by node {}", c.id, leader.id)
            }
            _ => kvdb::outln!(
                "shard {} is {} until its first leader reports (`--wait` waits for it)",
                c.id,
                c.state
            ),
        }
    })
}

fn selector(s: &str) -> NodeSelector {
    NodeSelector::Name(s.to_owned())
}

fn parse_status(s: &str) -> Result<NodeStatus, Failure> {
    match s.to_ascii_lowercase().as_str() {
        "alive" => Ok(NodeStatus::Alive),
        "suspect" => Ok(NodeStatus::Suspect),
        "dead" => Ok(NodeStatus::Dead),
        "draining" => Ok(NodeStatus::Draining),
        _ => Err(Failure::Usage(format!(
            "unknown status {s:?} (use alive, suspect, dead or draining)"
        ))),
    }
}

/// Prints `value` as JSON, or with `table`.
fn show<T: Serialize>(json: bool, value: &T, table: impl FnOnce(&T)) -> Result<(), Failure> {
    if json {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::Usage(format!("cannot print JSON: {e}")))?;
        kvdb::outln!("{text}");
    } else {
        table(value);
    }
    Ok(())
}

fn print_nodes(list: &NodeList) {
    kvdb::outln!(
        "{:<4} {:<12} {:<22} {:<10} {:<9} {:<9} LEADERS",
        "ID",
        "NAME",
        "ADDRESS",
        "ZONE",
        "STATUS",
        "REPLICAS"
    );
    for n in &list.nodes {
        kvdb::outln!(
            "{:<4} {:<12} {:<22} {:<10} {:<9} {:<9} {}",
            n.id.0,
            n.name,
            n.address,
            n.zone,
            format!("{:?}", n.status).to_lowercase(),
            n.replicas,
            n.leaders
        );
    }
}

fn print_operations(ops: &OperationsView) {
    kvdb::outln!(
        "scheduler {}{}, map version {}",
        if ops.paused { "paused" } else { "running" },
        if ops.leader {
            ""
        } else {
            " (this member does not lead: recent operations are the leader's to show)"
        },
        ops.map_version
    );
    kvdb::outln!();
    kvdb::outln!("shards moving or splitting: {}", ops.moving.len());
    if !ops.moving.is_empty() {
        print_shard_header();
        for s in &ops.moving {
            print_shard(s);
        }
    }
    kvdb::outln!();
    kvdb::outln!("recent operations: {}", ops.recent.len());
    for op in &ops.recent {
        let what = match &op.operation.kind {
            OperationKind::MoveReplica { from, to, .. } => format!("move replica {from} -> {to}"),
            OperationKind::TransferLeader { from, to } => format!("transfer leader {from} -> {to}"),
            OperationKind::Split { at } => format!("split at slot {at}"),
        };
        kvdb::outln!(
            "{} shard {} epoch {}: {what} ({:?}){}",
            op.started_at_ms,
            op.operation.shard,
            op.operation.epoch.0,
            op.operation.reason,
            op.error
                .as_ref()
                .map_or(String::new(), |e| format!(": refused: {e}"))
        );
    }
}

fn print_shards(list: &ShardList) {
    print_shard_header();
    for s in &list.shards {
        print_shard(s);
    }
}

fn print_shard_header() {
    kvdb::outln!(
        "{:<6} {:<13} {:<6} {:<9} {:<8} {:<9} {:<9} REPLICAS",
        "SHARD",
        "SLOTS",
        "EPOCH",
        "STATE",
        "LEADER",
        "KEYS",
        "WRITES/S"
    );
}

fn print_shard(s: &ShardView) {
    let ids = |v: &[kvdb_coordinator::admin::api::NodeRef]| {
        v.iter()
            .map(|n| n.id.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut replicas = ids(&s.replicas);
    if !s.target.is_empty() {
        replicas = format!("{replicas} -> {}", ids(&s.target));
    }
    if let Some(from) = s.split_from {
        replicas = format!("{replicas} (split from shard {from})");
    }
    let keys = s.load.map_or("-".to_owned(), |l| l.keys.to_string());
    let writes = s
        .load
        .and_then(|l| l.writes_per_sec)
        .map_or("-".to_owned(), |w| format!("{w:.0}"));
    kvdb::outln!(
        "{:<6} {:<13} {:<6} {:<9} {:<8} {:<9} {:<9} {}",
        s.id.0,
        format!("{}-{}", s.slot_start, s.slot_end),
        s.epoch.0,
        s.state,
        s.leader
            .as_ref()
            .map_or("-".to_owned(), |l| l.id.0.to_string()),
        keys,
        writes,
        replicas
    );
}

fn fail(admin: &str, error: Failure) -> ExitCode {
    eprintln!("kvdb admin: {error}");
    let Failure::Api(error) = error else {
        return ExitCode::from(2);
    };
    match error {
        AdminError::Transport { .. } | AdminError::Timeout { .. } => {
            eprintln!("kvdb admin: is a coordinator's Admin API listening on {admin}?");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
        e if e.status().is_some_and(|s| s.as_u16() == 503) => ExitCode::from(EXIT_UNAVAILABLE),
        _ => ExitCode::from(EXIT_ERROR),
    }
}
