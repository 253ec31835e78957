//! Command-line vocabulary shared by the `kvdb` binary and other programs
//! built on this library (the benchmark drivers): default addresses, the
//! consistency flag, duration parsing and a client's TLS flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Default gateway address (client API).
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:7379";
/// Default coordinator gRPC address.
pub const DEFAULT_COORDINATOR: &str = "127.0.0.1:7380";
/// Default coordinator Admin HTTP address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7381";
/// Default Redis protocol address of `kvdb dev`: next to Redis's own 6379, so that both can run.
pub const DEFAULT_DEV_RESP: &str = "127.0.0.1:6380";

/// `--consistency` of reads.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsistencyArg {
    /// Linearizable: the shard leader confirms its leadership first.
    Strong,
    /// Any replica's applied state; may be stale.
    Eventual,
}

/// Parses `250ms`, `5s`, `2m`, `1h`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration unit in {s:?} (use ms, s, m or h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }
}

/// How a client reaches TLS servers (see docs/security.md).
#[derive(Debug, Clone, Args)]
pub struct ClientTlsArgs {
    /// Speak TLS, trusting this PEM CA certificate for the servers.
    #[arg(long, global = true, env = "KVDB_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present (servers started with --tls-require-client-cert
    /// demand one). Needs --tls-key and --tls-ca.
    #[arg(long, global = true, env = "KVDB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "KVDB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// What a client presents: `token`, over TLS when --tls-ca is given.
    pub fn credentials(&self, token: Option<&str>) -> Result<kvdb_core::auth::Credentials, String> {
        let credentials =
            kvdb_core::auth::Credentials::bearer(token).map_err(|e| format!("--token: {e}"))?;
        Ok(credentials.with_tls(self.client_tls()?))
    }

    /// The client's TLS: `None` without --tls-ca.
    pub fn client_tls(&self) -> Result<Option<kvdb_core::tls::ClientTls>, String> {
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".to_owned()),
        };
        let tls = match &self.tls_ca {
            Some(ca) => Some(
                kvdb_core::tls::ClientTls::load(ca, identity).map_err(|e| format!("TLS: {e}"))?,
            ),
            None if identity.is_some() => {
                return Err("--tls-cert needs --tls-ca, the CA of the servers".to_owned());
            }
            None => None,
        };
        Ok(tls)
    }
}
