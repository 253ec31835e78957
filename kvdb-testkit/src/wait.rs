//! Waiting for a condition with a deadline (tests never sleep a fixed time and hope), and
//! logging to a test's captured output.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long any condition may take before a test gives up on it: generous, because a
/// debug build on a busy 2-core machine is slow, and a passing test never waits it out.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Between two looks at a condition.
const POLL: Duration = Duration::from_millis(20);

/// Polls `ready` (cheap, in memory) until it holds; panics naming `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`], with `report` (say, every replica's Raft state) in the panic message:
/// a condition that never held is diagnosed from what the test saw, not re-run.
pub async fn wait_until_or_report(
    what: &str,
    mut ready: impl FnMut() -> bool,
    report: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", report());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`] with a condition that has to ask a server.
pub async fn wait_until_async<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Logs to the test's captured output, filtered by `RUST_LOG`; silent when it is unset.
/// Safe to call from every test.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let looks = AtomicU32::new(0);
        wait_until("the third look", || {
            looks.fetch_add(1, Ordering::Relaxed) >= 2
        })
        .await;
        assert_eq!(looks.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out waiting for never")]
    async fn panics_at_the_deadline() {
        wait_until_async("never", || async { false }).await;
    }
}
