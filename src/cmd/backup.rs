//! `kvdb admin backup DIR` and `kvdb admin restore DIR` (see [`kvdb::backup`]).

use std::process::ExitCode;

use kvdb::backup::{self, BackupError};
use kvdb_client::{Client, ExecutorConfig};
use kvdb_coordinator::admin::AdminClient;

use crate::cli::{AdminArgs, AdminCommand};
use crate::cmd::kv::{EXIT_ERROR, EXIT_UNAVAILABLE};

pub async fn run(admin: &AdminClient, args: AdminArgs) -> ExitCode {
    let credentials = match args.tls.credentials(args.token.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvdb admin: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let done = match args.command {
        AdminCommand::Backup { dir } => {
            backup::backup(admin, &credentials, &dir)
                .await
                .map(|manifest| {
                    let keys: u64 = manifest.shards.iter().map(|s| s.keys).sum();
                    println!(
                        "backed up {keys} keys of {} shards into {} ({} ms)",
                        manifest.shards.len(),
                        dir.display(),
                        manifest
                            .finished_at_ms
                            .saturating_sub(manifest.started_at_ms)
                    );
                })
        }
        AdminCommand::Restore { dir, coordinators } => {
            let config = ExecutorConfig {
                credentials: credentials.clone(),
                ..ExecutorConfig::default()
            };
            let client = match Client::connect_with(&coordinators, config).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("kvdb admin: the cluster at {}: {e}", coordinators.join(","));
                    return ExitCode::from(EXIT_UNAVAILABLE);
                }
            };
            backup::restore(&dir, admin, &credentials, &client)
                .await
                .map(|restored| {
                    println!(
                        "restored {} keys from {} ({} expired since the backup, skipped)",
                        restored.keys,
                        dir.display(),
                        restored.expired
                    );
                })
        }
        _ => unreachable!("only backup and restore come here"),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvdb admin: {e}");
            ExitCode::from(match e {
                BackupError::Admin(_) | BackupError::Export { .. } => EXIT_UNAVAILABLE,
                _ => EXIT_ERROR,
            })
        }
    }
}
