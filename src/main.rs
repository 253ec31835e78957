//! The `kvdb` binary: every KvDB role and tool behind one command.
//!
//! # Layout
//! - `cli`: flags and subcommands (clap, with `KVDB_*` environment fallbacks).
//! - `cmd::servers`: `coordinator`, `node`, `gateway`.
//! - `cmd::dev`: the single-process development cluster.
//! - `cmd::kv`: `get`, `put`, `del`, `cas`.
//! - `cmd::admin`: `admin ...` over the Admin HTTP API.
//! - `cmd::shell`: `completions` and `man`, generated from the clap definitions.
//! - `kvdb::bench`: the `bench` load generator (in the library, so other
//!   drivers reuse its method).

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

/// mimalloc: the servers allocate and free many small buffers per request (protobuf
/// messages, HTTP/2 frames, Raft entries) across threads, where it spends less time than
/// the system allocator; see docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.command, cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvdb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Dev(args) => cmd::dev::run(args).await,
        Command::Coordinator(args) => cmd::servers::coordinator(args).await,
        Command::Node(args) => cmd::servers::node(args).await,
        Command::Gateway(args) => cmd::servers::gateway(args).await,
        Command::Get(args) => cmd::kv::get(args).await,
        Command::Put(args) => cmd::kv::put(args).await,
        Command::Del(args) => cmd::kv::del(args).await,
        Command::Cas(args) => cmd::kv::cas(args).await,
        Command::Admin(args) => cmd::admin::run(args).await,
        Command::Bench(args) => kvdb::bench::run(args).await,
        Command::Completions { shell } => cmd::shell::completions(shell),
        Command::Man { dir } => cmd::shell::man(dir.as_deref()),
    }
}

/// Servers log at info by default; client commands only warn, so their
/// stdout and stderr stay script-friendly. `RUST_LOG` overrides both. Colour codes only reach
/// a terminal: a log file or a collector gets plain text, or JSON.
fn init_tracing(command: &Command, format: LogFormat) {
    let default = match command {
        Command::Dev(_) | Command::Coordinator(_) | Command::Node(_) | Command::Gateway(_) => {
            "info,openraft=error"
        }
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}
