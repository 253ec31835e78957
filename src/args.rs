//! Command-line vocabulary shared by the `kvdb` binary and other programs
//! built on this library (the benchmark drivers): default addresses, the
//! consistency flag and duration parsing.

use std::time::Duration;

use clap::ValueEnum;

/// Default gateway address (client API).
pub const DEFAULT_GATEWAY: &str = "127.0.0.1:7379";
/// Default coordinator gRPC address.
pub const DEFAULT_COORDINATOR: &str = "127.0.0.1:7380";
/// Default coordinator Admin HTTP address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7381";

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
