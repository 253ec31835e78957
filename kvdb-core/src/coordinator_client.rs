//! [`CoordinatorClient`]: the gRPC client of the coordinator group, used by
//! storage nodes, smart clients and gateways.
//!
//! It is given every coordinator address and keeps one lazily connected
//! channel per address. Mutations go to the leader: the client remembers the
//! member that last took one, follows `NOT_LEADER` hints (the
//! [`LEADER_HINT`](crate::status::LEADER_HINT) trailer), and on a transport
//! failure tries the next member after a short, jittered backoff, for a
//! bounded number of attempts. Reads and watches go to any member (followers
//! serve them from their applied state), preferring the last one that answered.
//!
//! The client is also a [`ShardMapSource`](crate::cache::ShardMapSource), so a
//! [`ShardMapCache`](crate::cache::ShardMapCache) can follow the coordinators.
//!
//! The group's membership can change at run time (`kvdb admin coordinators add|remove`):
//! every [`MEMBER_REFRESH`] the client asks a member for the current members and tries them
//! after the addresses it was given, so it reaches the group after the members it started
//! with are gone, without a restart.

mod calls;
mod source;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use tonic::Status;
use tonic::transport::Endpoint;

use crate::auth::{AuthChannel, Credentials};
use crate::backoff::{Backoff, Jitter};
use crate::convert::ConvertError;
use crate::coordinator_error::CoordinatorError;
use crate::proto::v1::coordinator_client::CoordinatorClient as Grpc;
use crate::status::control;

/// The largest message the client accepts: a full map of a large cluster.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// How a [`CoordinatorClient`] connects and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorClientConfig {
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long one call may take (not applied to watch streams).
    pub request_timeout: Duration,
    /// How many members a call is tried at before giving up.
    pub max_attempts: u32,
    /// The first pause between attempts; doubled after each, with jitter.
    pub backoff_initial: Duration,
    /// The longest pause between attempts.
    pub backoff_max: Duration,
    /// What the caller presents: a member's cluster token, or a client's token.
    pub credentials: Credentials,
}

impl CoordinatorClientConfig {
    /// Default [`connect_timeout`](Self::connect_timeout).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default [`request_timeout`](Self::request_timeout).
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`max_attempts`](Self::max_attempts).
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
    /// Default [`backoff_initial`](Self::backoff_initial).
    pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
    /// Default [`backoff_max`](Self::backoff_max).
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1);

    /// Checks the settings can work: at least one attempt, positive timeouts, and a first
    /// pause no longer than the longest.
    pub fn validate(&self) -> Result<(), CoordinatorClientError> {
        let bad = |why| Err(CoordinatorClientError::BadConfig(why));
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("connect_timeout and request_timeout must be positive");
        }
        if self.backoff_initial > self.backoff_max {
            return bad("backoff_initial must not exceed backoff_max");
        }
        Ok(())
    }
}

impl Default for CoordinatorClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            backoff_initial: Self::DEFAULT_BACKOFF_INITIAL,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            credentials: Credentials::default(),
        }
    }
}

/// Why a coordinator call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorClientError {
    /// The client was given no coordinator address.
    #[error("no coordinator addresses given")]
    NoEndpoints,
    /// The client's settings cannot work.
    #[error("bad coordinator client settings: {0}")]
    BadConfig(&'static str),
    /// An address is not `host:port`.
    #[error("bad coordinator address {address:?}: {reason}")]
    BadAddress {
        /// The address as given (or as hinted by a coordinator).
        address: String,
        /// Why it does not parse as a URI.
        reason: String,
    },
    /// The coordinator answered and refused the call; retrying the same call
    /// will not help. `error` is what the coordinator said, as it said it.
    #[error("coordinator refused {call}: {error}")]
    Rejected {
        /// The call that was refused, e.g. `"init_shards"`.
        call: &'static str,
        /// The coordinator's typed refusal.
        error: CoordinatorError,
    },
    /// No member could take the call within the attempts allowed. Retryable.
    #[error("coordinator {call} unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// The call that could not be placed.
        call: &'static str,
        /// How many attempts were allowed (`max_attempts`).
        attempts: u32,
        /// The last attempt's address and failure, for logs.
        last: String,
    },
    /// The coordinator sent a record that does not decode.
    #[error("coordinator sent an invalid record: {0}")]
    Invalid(#[from] ConvertError),
}

impl CoordinatorClientError {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// What one failed attempt tells the retry loop.
enum Failure {
    /// Try again, at this address if given.
    Retry { hint: Option<String>, why: String },
    /// Stop: the answer is final.
    Final(CoordinatorClientError),
}

fn classify(call: &'static str, status: Status) -> Failure {
    let why = format!("{:?}: {}", status.code(), status.message());
    match control::from_status(&status) {
        CoordinatorError::NotLeader { leader_grpc, .. } => Failure::Retry {
            hint: leader_grpc,
            why,
        },
        CoordinatorError::Unavailable(_) => Failure::Retry { hint: None, why },
        error => Failure::Final(CoordinatorClientError::Rejected { call, error }),
    }
}

/// A client of the coordinator group. Cheap to clone; clones share channels
/// and the remembered leader.
#[derive(Debug, Clone)]
pub struct CoordinatorClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: CoordinatorClientConfig,
    /// The configured addresses, in order: always tried first.
    seeds: Vec<String>,
    /// The seeds, then the members the group last reported that are not seeds.
    addresses: RwLock<Arc<Vec<String>>>,
    channels: Mutex<HashMap<String, AuthChannel>>,
    /// Index into `addresses` of the member that last took a mutation.
    leader: AtomicUsize,
    /// Index into `addresses` of the member that last answered a read.
    reader: AtomicUsize,
}

impl CoordinatorClient {
    /// A client of the coordinators at `addresses` (`host:port` each), with
    /// default settings. No I/O happens until the first call.
    pub fn new(addresses: &[String]) -> Result<Self, CoordinatorClientError> {
        Self::with_config(addresses, CoordinatorClientConfig::default())
    }

    /// A client with explicit settings.
    pub fn with_config(
        addresses: &[String],
        config: CoordinatorClientConfig,
    ) -> Result<Self, CoordinatorClientError> {
        if addresses.is_empty() {
            return Err(CoordinatorClientError::NoEndpoints);
        }
        config.validate()?;
        let client = Self {
            inner: Arc::new(Inner {
                config,
                seeds: addresses.to_vec(),
                addresses: RwLock::new(Arc::new(addresses.to_vec())),
                channels: Mutex::default(),
                leader: AtomicUsize::new(0),
                reader: AtomicUsize::new(0),
            }),
        };
        for address in addresses {
            client.channel(address)?;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(follow_members(Arc::downgrade(&client.inner)));
        }
        Ok(client)
    }

    /// The addresses calls try: the configured ones, then the other members the group
    /// reported.
    pub fn addresses(&self) -> Vec<String> {
        self.current().as_ref().clone()
    }

    fn current(&self) -> Arc<Vec<String>> {
        self.inner
            .addresses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the group's current `members` as the addresses to try after the seeds.
    fn learn(&self, members: &[String]) {
        let mut next = self.inner.seeds.clone();
        next.extend(
            members
                .iter()
                .filter(|m| !m.is_empty() && !self.inner.seeds.contains(m) && dialable(m))
                .cloned(),
        );
        let mut addresses = self
            .inner
            .addresses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if **addresses != next {
            tracing::debug!(?next, "coordinator members changed");
            *addresses = Arc::new(next);
        }
    }

    /// The lazily connected channel to `address`.
    fn channel(&self, address: &str) -> Result<AuthChannel, CoordinatorClientError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let bad = |reason: String| CoordinatorClientError::BadAddress {
            address: address.to_owned(),
            reason,
        };
        let endpoint = self
            .inner
            .config
            .credentials
            .endpoint(address)
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(self.inner.config.connect_timeout);
        let channel = self.inner.config.credentials.on(endpoint.connect_lazy());
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    fn grpc(&self, address: &str) -> Result<Grpc<AuthChannel>, CoordinatorClientError> {
        Ok(Grpc::new(self.channel(address)?).max_decoding_message_size(MAX_MESSAGE_SIZE))
    }

    /// A request with the call timeout.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.inner.config.request_timeout);
        request
    }

    /// Runs `attempt` at the leader (`to_leader`) or any member, retrying as
    /// the module docs describe.
    async fn call<T, F, Fut>(
        &self,
        call: &'static str,
        to_leader: bool,
        attempt: F,
    ) -> Result<T, CoordinatorClientError>
    where
        F: Fn(Grpc<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let addresses = self.current();
        let preferred = if to_leader {
            &self.inner.leader
        } else {
            &self.inner.reader
        };
        let mut index = preferred.load(Ordering::Relaxed) % addresses.len();
        let mut hint: Option<String> = None;
        let config = &self.inner.config;
        let backoff = Backoff::new(config.backoff_initial, config.backoff_max, Jitter::Half);
        let mut pauses = 0;
        let mut last = String::new();
        for round in 0..self.inner.config.max_attempts {
            if round > 0 && hint.is_none() {
                tokio::time::sleep(backoff.delay(pauses)).await;
                pauses += 1;
            }
            let address = hint.take().unwrap_or_else(|| addresses[index].clone());
            match attempt(self.grpc(&address)?).await {
                Ok(value) => {
                    if let Some(i) = addresses.iter().position(|a| *a == address) {
                        preferred.store(i, Ordering::Relaxed);
                    }
                    return Ok(value);
                }
                Err(status) => match classify(call, status) {
                    Failure::Final(error) => return Err(error),
                    Failure::Retry { hint: next, why } => {
                        tracing::debug!(call, %address, %why, "coordinator call failed");
                        last = format!("{address}: {why}");
                        // A hint that cannot be dialed is no better than none.
                        hint = next.filter(|h| *h != address && dialable(h));
                        if hint.is_none() {
                            index = (index + 1) % addresses.len();
                        }
                    }
                },
            }
        }
        Err(CoordinatorClientError::Unavailable {
            call,
            attempts: self.inner.config.max_attempts,
            last,
        })
    }
}

/// How often a client asks the group for its members.
pub const MEMBER_REFRESH: Duration = Duration::from_secs(2);

/// Keeps the client's member list current while the client lives.
async fn follow_members(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(MEMBER_REFRESH).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        // `leader()` learns the members from the reply; a failure waits for the next round.
        let _ = CoordinatorClient { inner }.leader().await;
    }
}

/// The endpoint of a member's `host:port`.
fn endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{address}"))
}

/// Whether `address` (`host:port`) makes a valid endpoint.
fn dialable(address: &str) -> bool {
    endpoint(address).is_ok()
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn not_leader_with_a_hint_retries_there() {
        let status = Status::from(CoordinatorError::NotLeader {
            leader_id: Some(2),
            leader_grpc: Some("10.0.0.2:7000".into()),
            leader_admin: None,
        });
        match classify("init_shards", status) {
            Failure::Retry { hint, .. } => assert_eq!(hint.as_deref(), Some("10.0.0.2:7000")),
            Failure::Final(e) => panic!("{e}"),
        }
    }

    #[test]
    fn transport_failures_retry_and_refusals_are_final() {
        let retry = classify("heartbeat", Status::unavailable("connection refused"));
        assert!(matches!(retry, Failure::Retry { hint: None, .. }));
        let conflict = Status::from(CoordinatorError::AlreadyInitialized {
            num_shards: 4,
            replication_factor: 3,
        });
        match classify("init_shards", conflict) {
            Failure::Final(CoordinatorClientError::Rejected { error, .. }) => {
                assert_eq!(error.code(), "CONFLICT");
                assert_eq!(error.grpc_code(), Code::FailedPrecondition);
            }
            _ => panic!("a conflict is final"),
        }
    }

    #[test]
    fn only_dialable_hints_are_followed() {
        assert!(dialable("10.0.0.2:7000"));
        assert!(dialable("coordinator-2.internal:7000"));
        assert!(!dialable("not a uri"));
        assert!(!dialable(""));
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let addresses = ["127.0.0.1:7000".to_string()];
        let config = CoordinatorClientConfig {
            max_attempts: 0,
            ..CoordinatorClientConfig::default()
        };
        let refused = CoordinatorClient::with_config(&addresses, config);
        assert!(matches!(refused, Err(CoordinatorClientError::BadConfig(_))));
        let config = CoordinatorClientConfig {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(1),
            ..CoordinatorClientConfig::default()
        };
        assert!(config.validate().is_err());
        CoordinatorClientConfig::default().validate().unwrap();
    }

    #[test]
    fn construction_checks_addresses() {
        assert!(matches!(
            CoordinatorClient::new(&[]),
            Err(CoordinatorClientError::NoEndpoints)
        ));
        let bad = CoordinatorClient::new(&["not a uri".to_string()]);
        assert!(matches!(
            bad,
            Err(CoordinatorClientError::BadAddress { .. })
        ));
    }
}
