//! Command-line definitions. Every flag has a `KVDB_*` environment fallback
//! and a loopback default, so `kvdb dev` and the client commands need no flags.

use kvdb_core::incoming::ConnectionLimits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
pub use kvdb::args::{
    ConsistencyArg, DEFAULT_ADMIN, DEFAULT_COORDINATOR, DEFAULT_DEV_RESP, DEFAULT_GATEWAY,
    parse_duration,
};
use kvdb_coordinator::scheduler::SchedulerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "kvdb",
    version,
    about = "KvDB: a sharded, Raft-replicated, Redis-like key-value store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines on stderr look: text (coloured only on a terminal), or one JSON object
    /// per line for log collectors.
    #[arg(
        long,
        global = true,
        env = "KVDB_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole cluster in one process: coordinator, 3 nodes, gateway, Admin API.
    Dev(DevArgs),
    /// Run a coordinator (control plane + Admin HTTP API).
    Coordinator(CoordinatorArgs),
    /// Run a storage node.
    Node(NodeArgs),
    /// Run a gateway.
    Gateway(GatewayArgs),
    /// Read a key. Exit 1 with nothing on stdout when it is absent.
    Get(GetArgs),
    /// Write a key. Prints the new version.
    Put(PutArgs),
    /// Delete a key. Exit 1 when it was absent.
    Del(DelArgs),
    /// Compare-and-swap: write only if the key's version is EXPECTED_VERSION.
    Cas(CasArgs),
    /// Cluster administration through the Admin HTTP API.
    Admin(AdminArgs),
    /// Drive load at a running cluster and report throughput and latency.
    Bench(kvdb::bench::BenchArgs),
    /// Print a shell completion script, e.g. `kvdb completions bash > ~/.local/share/bash-completion/completions/kvdb`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (`kvdb man | man -l -`), or write one per subcommand with --dir.
    Man {
        /// Write kvdb.1, kvdb-admin.1, ... into this directory instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Data directory; reused on later starts.
    #[arg(long, env = "KVDB_DATA", default_value = ".kvdb/dev")]
    pub data: PathBuf,
    /// Gateway address.
    #[arg(long, env = "KVDB_GATEWAY_LISTEN", default_value = DEFAULT_GATEWAY)]
    pub gateway_listen: SocketAddr,
    /// The gateway's Redis protocol address (`redis-cli -p 6380`; see docs/redis.md).
    #[arg(long, env = "KVDB_RESP_LISTEN", default_value = DEFAULT_DEV_RESP)]
    pub resp_listen: SocketAddr,
    /// Let Redis clients run FLUSHDB and FLUSHALL, which delete every key; refused without it.
    #[arg(long, env = "KVDB_RESP_ALLOW_FLUSH")]
    pub resp_allow_flush: bool,
    /// Coordinator gRPC address.
    #[arg(long, env = "KVDB_COORDINATOR_LISTEN", default_value = DEFAULT_COORDINATOR)]
    pub coordinator_listen: SocketAddr,
    /// Admin HTTP address.
    #[arg(long, env = "KVDB_ADMIN_LISTEN", default_value = DEFAULT_ADMIN)]
    pub admin_listen: SocketAddr,
    /// First storage node port; nodes use this and the next two.
    #[arg(long, env = "KVDB_DEV_NODE_PORT", default_value_t = 7391)]
    pub node_port: u16,
    /// Also serve Redis Cluster mode on the nodes, from this port on (node N on this port +
    /// N), for `redis-cli -c` and cluster clients (see docs/redis.md). Off when unset.
    #[arg(long, env = "KVDB_DEV_CLUSTER_RESP_PORT")]
    pub cluster_resp_port: Option<u16>,
    /// Serve TLS everywhere, with mutual TLS between the cluster's processes, using a
    /// throwaway CA and certificate written to DATA/tls (client commands then need
    /// --tls-ca, --tls-cert and --tls-key; the banner prints them).
    #[arg(long, env = "KVDB_DEV_TLS", conflicts_with = "tls_cert")]
    pub tls: bool,
    /// Serve Prometheus metrics from this port on: the coordinator here, the gateway on the
    /// next port, node N on this port + 1 + N. Off (and requests not counted) when unset.
    #[arg(long, env = "KVDB_DEV_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// This member's id in the coordinator group.
    #[arg(long, env = "KVDB_COORDINATOR_ID", default_value_t = 1)]
    pub id: u64,
    /// gRPC address (coordinator service and Raft transport).
    #[arg(long, env = "KVDB_LISTEN", default_value = DEFAULT_COORDINATOR)]
    pub listen: SocketAddr,
    /// Admin HTTP address.
    #[arg(long, env = "KVDB_ADMIN_LISTEN", default_value = DEFAULT_ADMIN)]
    pub admin_listen: SocketAddr,
    /// Data directory (redb files).
    #[arg(long, env = "KVDB_DATA", default_value = ".kvdb/coordinator")]
    pub data: PathBuf,
    /// All members as ID=HOST:PORT, comma separated; omit for a single member.
    #[arg(long, env = "KVDB_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Start empty and wait to be added to a running group (`kvdb admin coordinators add ID
    /// ADDRESS` on its leader) instead of starting a group of one's own.
    #[arg(long, env = "KVDB_JOIN", conflicts_with = "peers")]
    pub join: bool,
    /// Bearer token required by every /admin route.
    #[arg(long, env = "KVDB_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Interval at which storage nodes are expected to heartbeat.
    #[arg(long, env = "KVDB_HEARTBEAT_INTERVAL", value_parser = parse_duration, default_value = "500ms")]
    pub heartbeat_interval: Duration,
    /// A node silent this long becomes suspect.
    #[arg(long, env = "KVDB_SUSPECT_AFTER", value_parser = parse_duration, default_value = "2s")]
    pub suspect_after: Duration,
    /// A node silent this long becomes dead.
    #[arg(long, env = "KVDB_DEAD_AFTER", value_parser = parse_duration, default_value = "6s")]
    pub dead_after: Duration,
    /// A node dead this long gets each of its replicas replaced on an alive node.
    #[arg(long, env = "KVDB_REPAIR_AFTER", value_parser = parse_duration, default_value = "30s")]
    pub repair_after: Duration,
    /// A replica move still running after this long gets its new replica placed elsewhere.
    #[arg(long, env = "KVDB_MOVE_TIMEOUT", value_parser = parse_duration, default_value = "10m")]
    pub move_timeout: Duration,
    /// Shards the scheduler may have moving at once, cluster-wide.
    #[arg(long, env = "KVDB_MAX_MOVES", default_value_t = SchedulerConfig::DEFAULT_MAX_MOVES as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_moves: u16,
    /// Leader transfers the scheduler may start per round (0: never balance leaders).
    #[arg(long, env = "KVDB_MAX_LEADER_TRANSFERS", default_value_t = SchedulerConfig::DEFAULT_MAX_LEADER_TRANSFERS as u16)]
    pub max_leader_transfers: u16,
    /// The scheduler splits a shard whose leader reports more keys than this (0: never).
    #[arg(long, env = "KVDB_SPLIT_KEYS", value_name = "N", default_value_t = SchedulerConfig::DEFAULT_SPLIT_KEYS.unwrap_or(0))]
    pub split_keys: u64,
    /// The scheduler splits a shard serving more reads and writes per second than this
    /// (0: never).
    #[arg(long, env = "KVDB_SPLIT_RATE", value_name = "R", default_value_t = SchedulerConfig::DEFAULT_SPLIT_RATE.unwrap_or(0.0))]
    pub split_rate: f64,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Unique node name, e.g. node-1.
    #[arg(long, env = "KVDB_NODE_NAME")]
    pub name: String,
    /// Data-plane address (KV service and Raft transport).
    #[arg(long, env = "KVDB_LISTEN")]
    pub listen: SocketAddr,
    /// Coordinator addresses, comma separated.
    #[arg(long, env = "KVDB_COORDINATORS", value_delimiter = ',', default_value = DEFAULT_COORDINATOR)]
    pub coordinators: Vec<String>,
    /// Data directory (redb files).
    #[arg(long, env = "KVDB_DATA")]
    pub data: PathBuf,
    /// Zone label.
    #[arg(long, env = "KVDB_ZONE", default_value = "default")]
    pub zone: String,
    /// Address other nodes and clients use to reach this node, when it
    /// differs from --listen (e.g. behind NAT).
    #[arg(long, env = "KVDB_ADVERTISE")]
    pub advertise: Option<String>,
    /// Serve Redis Cluster mode on this address: keys of the shards this node leads are
    /// answered, others redirected with MOVED (see docs/redis.md). Off when unset.
    #[arg(long, env = "KVDB_RESP_LISTEN")]
    pub resp_listen: Option<SocketAddr>,
    /// The address Redis clients are sent to for this node's listener (MOVED, CLUSTER
    /// SLOTS), when it differs from --resp-listen.
    #[arg(long, env = "KVDB_RESP_ADVERTISE", requires = "resp_listen")]
    pub resp_advertise: Option<String>,
    /// Close Redis protocol connections idle this long (e.g. 300s); 0 keeps them open.
    #[arg(long, env = "KVDB_RESP_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "0")]
    pub resp_idle_timeout: Duration,
    /// Largest accepted key in bytes.
    #[arg(long, env = "KVDB_MAX_KEY_BYTES", default_value_t = kvdb_node::config::DEFAULT_MAX_KEY_BYTES)]
    pub max_key_bytes: usize,
    /// Largest accepted value in bytes.
    #[arg(long, env = "KVDB_MAX_VALUE_BYTES", default_value_t = kvdb_node::config::DEFAULT_MAX_VALUE_BYTES)]
    pub max_value_bytes: usize,
    /// Give every shard's log append its own fsync instead of sharing one
    /// across shards (for measurement; slower).
    #[arg(long, env = "KVDB_NO_GROUP_COMMIT")]
    pub no_group_commit: bool,
    /// Memory for the node's page caches, in MiB: a quarter for the Raft log, the rest for
    /// the stored data.
    #[arg(long, env = "KVDB_CACHE_MIB", default_value_t = kvdb_node::config::DEFAULT_CACHE_BYTES / (1024 * 1024))]
    pub cache_mib: usize,
    /// A shard whose log grew by this many MiB since its last snapshot takes a new one and
    /// purges its log behind it; 0 compacts by entry count only.
    #[arg(long, env = "KVDB_SNAPSHOT_LOG_MIB", default_value_t = kvdb_node::config::DEFAULT_SNAPSHOT_LOG_BYTES >> 20)]
    pub snapshot_log_mib: u64,
    /// Refuse client writes (RESOURCE_EXHAUSTED) while the data directory's disk has less
    /// than this many MiB free, keeping room for Raft's own writes; 0 never refuses.
    #[arg(long, env = "KVDB_MIN_FREE_DISK_MIB", default_value_t = kvdb_node::disk::DEFAULT_MIN_FREE_DISK >> 20)]
    pub min_free_disk_mib: u64,
    /// Run a heartbeat round for every strong read instead of answering it
    /// under the shard leader's lease (for clocks that may drift apart fast).
    #[arg(long, env = "KVDB_NO_LEASE_READS")]
    pub no_lease_reads: bool,
    /// Keep shard leaderships whose majority answers slowly instead of handing them to a
    /// follower (see docs/operations.md).
    #[arg(long, env = "KVDB_NO_SLOW_LEADER_HAND_OVER")]
    pub no_slow_leader_hand_over: bool,
    /// Keep every shard's heartbeats and election timers running even while nothing happens
    /// in it, instead of quiescing shards idle for a second (see docs/performance.md).
    #[arg(long, env = "KVDB_NO_QUIESCE")]
    pub no_quiesce: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// How many connections and calls a server takes (see docs/security.md).
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Connections open at once; more are closed as soon as they are accepted. Keep it below
    /// the process's descriptor limit (ulimit -n).
    #[arg(long, env = "KVDB_MAX_CONNECTIONS", default_value_t = ConnectionLimits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// HTTP/2 streams (calls) open at once on one connection; no limit by default (HTTP/2
    /// flow control and the per-stream call limit bound what a connection holds).
    #[arg(long, env = "KVDB_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// How long a new connection may take to send its first bytes and finish its TLS
    /// handshake before it is closed.
    #[arg(long, env = "KVDB_HANDSHAKE_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub handshake_timeout: Duration,
}

/// Where a server serves its Prometheus metrics.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: bind it to an address
    /// only the monitoring network reaches). Off when unset.
    #[arg(long, env = "KVDB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ConnectionArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_concurrent_streams: self.max_concurrent_streams,
            handshake_timeout: self.handshake_timeout,
        }
    }
}

/// Who may call a server's gRPC services (see docs/security.md).
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The cluster's shared secret: every process of the cluster is given the same one, and
    /// presents it to the others. Setting it makes every gRPC call need a token.
    #[arg(long, env = "KVDB_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// A client token this server accepts, as ROLE=TOKEN (ROLE: read, read-write or admin);
    /// repeat, or separate with commas. Needs --cluster-token.
    #[arg(
        long = "client-token",
        env = "KVDB_CLIENT_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub client_tokens: Vec<String>,
    /// PEM certificate chain to serve TLS with, also presented as this process's client
    /// certificate to the others. Needs --tls-key and --tls-ca. Renewed files are picked up
    /// without a restart.
    #[arg(long, env = "KVDB_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KVDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate of the CA that signs the cluster's certificates: trusted for the
    /// servers this process calls and for the client certificates callers present.
    #[arg(long, env = "KVDB_TLS_CA", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// Refuse callers without a certificate signed by --tls-ca (mutual TLS).
    #[arg(long, env = "KVDB_TLS_REQUIRE_CLIENT_CERT", requires = "tls_cert")]
    pub tls_require_client_cert: bool,
}

impl AuthArgs {
    /// The servers' token and TLS settings.
    pub fn config(&self) -> kvdb_core::auth::AuthConfig {
        let tls = match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(kvdb_core::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
                require_client_cert: self.tls_require_client_cert,
            }),
            _ => None,
        };
        kvdb_core::auth::AuthConfig {
            cluster_token: self.cluster_token.clone(),
            client_tokens: self.client_tokens.clone(),
            tls,
        }
    }
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Client API address.
    #[arg(long, env = "KVDB_LISTEN", default_value = DEFAULT_GATEWAY)]
    pub listen: SocketAddr,
    /// Also serve the Redis protocol (RESP2/RESP3) on this address; off when unset
    /// (see docs/redis.md).
    #[arg(long, env = "KVDB_RESP_LISTEN")]
    pub resp_listen: Option<SocketAddr>,
    /// Close Redis protocol connections idle this long (e.g. 300s); 0 keeps them open.
    #[arg(long, env = "KVDB_RESP_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "0")]
    pub resp_idle_timeout: Duration,
    /// Let Redis clients run FLUSHDB and FLUSHALL, which delete every key of the cluster;
    /// refused without it.
    #[arg(long, env = "KVDB_RESP_ALLOW_FLUSH")]
    pub resp_allow_flush: bool,
    /// Coordinator addresses, comma separated.
    #[arg(long, env = "KVDB_COORDINATORS", value_delimiter = ',', default_value = DEFAULT_COORDINATOR)]
    pub coordinators: Vec<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// How a client command reaches the cluster.
#[derive(Debug, Args)]
pub struct Target {
    /// Gateway address.
    #[arg(long, global = true, env = "KVDB_GATEWAY", default_value = DEFAULT_GATEWAY)]
    pub gateway: String,
    /// Route in-process through the coordinators instead of a gateway.
    #[arg(long, global = true)]
    pub smart: bool,
    /// Coordinator addresses for --smart, comma separated.
    #[arg(long, global = true, env = "KVDB_COORDINATORS", value_delimiter = ',', default_value = DEFAULT_COORDINATOR)]
    pub coordinators: Vec<String>,
    /// Deadline of the request, retries included (e.g. 5s, 300ms).
    #[arg(long, global = true, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// A token the cluster accepts (a client token, or the cluster token), sent as
    /// `authorization: Bearer TOKEN`.
    #[arg(long, global = true, env = "KVDB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: kvdb::args::ClientTlsArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub key: String,
    #[arg(long, value_enum, default_value = "strong")]
    pub consistency: ConsistencyArg,
    /// Print "VERSION<TAB>VALUE" instead of the value alone.
    #[arg(long)]
    pub with_version: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub key: String,
    pub value: String,
    /// Expire after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub ttl: Option<Duration>,
    /// Write only if the current version is N.
    #[arg(long, value_name = "N")]
    pub if_version: Option<u64>,
    /// Write only if the key is absent.
    #[arg(long, conflicts_with = "if_version")]
    pub if_not_exists: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    pub key: String,
    /// Delete only if the current version is N.
    #[arg(long, value_name = "N")]
    pub if_version: Option<u64>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct CasArgs {
    pub key: String,
    pub expected_version: u64,
    pub value: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API address of any coordinator.
    #[arg(long, global = true, env = "KVDB_ADMIN", default_value = DEFAULT_ADMIN)]
    pub admin: String,
    /// Bearer token for the Admin API.
    #[arg(long, global = true, env = "KVDB_ADMIN_TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub tls: kvdb::args::ClientTlsArgs,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `kvdb admin coordinators ...`.
#[derive(Debug, Subcommand)]
pub enum CoordinatorsAction {
    /// List the members (the default).
    List,
    /// Add a member started with --join: a learner until it holds the log, then a voter.
    Add {
        /// Its --id.
        id: u64,
        /// Its gRPC address (HOST:PORT), as the other members and clients reach it.
        address: String,
    },
    /// Remove a member; refused for the last one, or when the members left that answer
    /// would not be a majority.
    Remove {
        /// Its id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List nodes.
    Nodes,
    /// Register (or update) a node.
    Register {
        name: String,
        address: String,
        #[arg(long, default_value = "default")]
        zone: String,
    },
    /// Initialize the shard map.
    ShardInit {
        #[arg(long, default_value_t = 8)]
        num_shards: u32,
        #[arg(long, default_value_t = 3)]
        replication_factor: u32,
    },
    /// Show the cluster: coordinators, map version, shards.
    Cluster,
    /// List shards.
    Shards,
    /// Set a node's status (alive, suspect, dead, draining).
    SetStatus { node: String, status: String },
    /// Move a shard to a new replica set (node ids or names, comma separated).
    SetReplicas {
        shard: u64,
        #[arg(value_delimiter = ',')]
        replicas: Vec<String>,
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Ask a shard's leader to hand leadership to a node.
    TransferLeader {
        shard: u64,
        node: String,
        #[arg(long)]
        epoch: u64,
    },
    /// Move every replica and leadership off a node (status draining).
    Drain {
        node: String,
        /// Wait until the node holds no replica and leads no shard.
        #[arg(long)]
        wait: bool,
        /// How long --wait may take.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Split a shard in two: it keeps the slots below the split point, a new shard on the
    /// same replicas takes the rest.
    Split {
        shard: u64,
        /// The new shard's first slot (default: the middle of the shard's range).
        #[arg(long, value_name = "SLOT")]
        at: Option<u16>,
        /// Refuse the split if the shard's epoch is no longer this.
        #[arg(long)]
        epoch: Option<u64>,
        /// Wait until the new shard is stable (its first leader has reported).
        #[arg(long)]
        wait: bool,
        /// How long --wait may take.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Show what the scheduler is doing: moving and splitting shards, recent operations.
    Operations,
    /// List, add or remove coordinator members (run at the leader's Admin API to change).
    Coordinators {
        #[command(subcommand)]
        action: Option<CoordinatorsAction>,
    },
    /// Back up every shard into DIR (new or empty) while writes go on: one file per shard,
    /// each a consistent state of its shard, and a manifest (docs/operations.md, "Backup").
    Backup { dir: PathBuf },
    /// Restore a backup into this cluster, which must hold no key; any node and shard count.
    /// Checks the whole backup before writing anything.
    Restore {
        dir: PathBuf,
        /// Coordinator gRPC addresses of the cluster, for the client that writes the keys.
        #[arg(long, value_delimiter = ',', env = "KVDB_COORDINATORS", default_value = DEFAULT_COORDINATOR)]
        coordinators: Vec<String>,
    },
    /// Pause or resume the scheduler (repair, drain, balancing and splits).
    Scheduler {
        #[arg(value_enum)]
        action: SchedulerAction,
    },
}

/// `kvdb admin scheduler ACTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerAction {
    /// Start no new operation; moves already started finish.
    Pause,
    /// Start operations again.
    Resume,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
