//! [`Shutdown`]: the signal that stops a node's background tasks.
//!
//! One `watch` channel per node; every task holds a receiver and selects on
//! [`Shutdown::recv`] next to its work.

use tokio::sync::watch;

/// Listens for the node's shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A trigger and its first listener.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether shutdown has been signalled.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// The same signal, for ending call streams.
    pub fn closing(&self) -> kvdb_core::call_stream::Closing {
        kvdb_core::call_stream::Closing::on(self.0.clone())
    }

    /// Completes once shutdown is signalled (or its sender is gone).
    pub async fn recv(&mut self) {
        // An error means the sender was dropped, which is a shutdown too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
