//! What the server says about itself: the `HELLO` map, `INFO` text, `COMMAND` entries and the
//! `CONFIG GET` parameters clients probe. KvDB presents itself as Redis 7.0 in standalone
//! mode, the version whose commands and error texts it follows.

use std::sync::atomic::Ordering;

use crate::command::Arg;
use crate::reply::{Protocol, Reply};
use crate::server::Shared;
use crate::table::{COMMANDS, Spec, lookup};

/// The Redis version KvDB answers as: clients pick features by it.
pub const REDIS_VERSION: &str = "7.0.0";

/// `HELLO`'s description of the server, in Redis's field order.
pub fn hello(id: u64, protocol: Protocol) -> Reply {
    let field = |name: &str, value| (Reply::text(name), value);
    Reply::Map(vec![
        field("server", Reply::text("kvdb")),
        field("version", Reply::text(REDIS_VERSION)),
        field("proto", Reply::Integer(protocol.number())),
        field("id", Reply::Integer(id as i64)),
        field("mode", Reply::text("standalone")),
        field("role", Reply::text("master")),
        field("modules", Reply::Array(Vec::new())),
    ])
}

/// `INFO [section...]`: the server, clients and keyspace sections; all of them without a
/// section or with `all`, `default` or `everything`, none for an unknown one.
pub fn info_text(shared: &Shared, sections: &[String]) -> String {
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let wanted = |name: &str| all || sections.iter().any(|s| s == name);
    let mut text = String::new();
    if wanted("server") {
        text.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nkvdb_version:{}\r\nredis_mode:{}\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            mode(shared),
            std::process::id(),
            shared.port,
            shared.started.elapsed().as_secs(),
        ));
    }
    if wanted("clients") {
        text.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            shared.clients.load(Ordering::Relaxed)
        ));
    }
    if wanted("cluster") {
        let enabled = u8::from(shared.options.cluster_node.is_some());
        text.push_str(&format!("# Cluster\r\ncluster_enabled:{enabled}\r\n\r\n"));
    }
    if wanted("keyspace") {
        // Keys are spread over shards; counting them is not a cheap local read.
        text.push_str("# Keyspace\r\n");
    }
    text
}

fn mode(shared: &Shared) -> &'static str {
    match shared.options.cluster_node {
        Some(_) => "cluster",
        None => "standalone",
    }
}

/// `CONFIG GET`: the parameters clients and tools read, as this server has them. Patterns
/// match by name or `*`.
pub fn config_get(shared: &Shared, patterns: &[String]) -> Reply {
    let cluster = if shared.options.cluster_node.is_some() {
        "yes"
    } else {
        "no"
    };
    let parameters = [
        ("databases", "1"),
        ("save", ""),
        ("appendonly", "no"),
        ("maxmemory", "0"),
        ("cluster-enabled", cluster),
    ];
    let pairs = parameters
        .iter()
        .filter(|(name, _)| patterns.iter().any(|p| p == "*" || p == name))
        .map(|(name, value)| (Reply::text(*name), Reply::text(*value)))
        .collect();
    Reply::Map(pairs)
}

/// `COMMAND` (every command) or `COMMAND INFO name...` (null for unknown names).
pub fn command_table(names: Option<&[Arg]>) -> Reply {
    match names {
        None => Reply::Array(COMMANDS.iter().map(entry).collect()),
        Some(names) => Reply::Array(
            names
                .iter()
                .map(|name| lookup(name).map_or(Reply::Null, entry))
                .collect(),
        ),
    }
}

/// `COMMAND COUNT`.
pub fn command_count() -> i64 {
    COMMANDS.len() as i64
}

/// One command's entry, in Redis 7's ten-field form.
fn entry(spec: &Spec) -> Reply {
    let flags = spec
        .flags
        .iter()
        .map(|f| Reply::Simple((*f).to_owned()))
        .collect();
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity),
        Reply::Array(flags),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}
