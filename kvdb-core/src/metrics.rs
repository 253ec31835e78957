//! Prometheus metrics: one registry per server, the request metrics every data-plane server
//! keeps, and the HTTP endpoint that serves them.
//!
//! A registry belongs to a server value (a node, a gateway, a coordinator), never to the
//! process: KvDB is a library first, and a test or an application may run several servers in
//! one process. Figures that already live elsewhere (Raft state, log-writer counters, the
//! shard map) are read at scrape time by [`Collector`]s, so the hot path pays only for request
//! counts and latencies.
//!
//! Names follow Prometheus conventions: a `kvdb_` prefix, base units (seconds, bytes) in the
//! name, `_total` on counters. The text is OpenMetrics, which Prometheus reads natively.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// The Prometheus client crate itself, for servers that keep their own labelled series.
pub use prometheus_client as client;
pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
pub use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
pub use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::error::KvError;

/// Content type of the exposition [`encode`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry whose metric names all start with `kvdb_`.
pub fn registry() -> Registry {
    Registry::with_prefix("kvdb")
}

/// The exposition of `registry`, OpenMetrics text ending in `# EOF`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a collector that fails leaves the text cut short,
    // which a scraper reports, rather than taking the server down.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "a metrics collector failed; the exposition is incomplete");
    }
    out
}

/// Latency buckets: 50 µs to about 6.5 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// The label set of one request outcome.
type OutcomeLabels = [(&'static str, &'static str); 2];
/// The label set of one operation.
type OpLabels = [(&'static str, &'static str); 1];

/// Requests by operation and outcome, and their latency by operation: what a node or a
/// gateway served. Cheap to clone (the series are shared).
#[derive(Clone, Debug, Default)]
pub struct RequestMetrics(Option<RequestSeries>);

#[derive(Clone, Debug)]
struct RequestSeries {
    requests: Family<OutcomeLabels, Counter>,
    seconds: Family<OpLabels, Histogram, fn() -> Histogram>,
    /// The hot series, looked up once: each operation's `ok` counter and its latency.
    common: Arc<[(&'static str, Counter, Histogram)]>,
}

/// The operations every data-plane server answers, whose series are created up front.
pub const OPS: [&str; 3] = ["get", "put", "delete"];

impl RequestMetrics {
    /// Records nothing: for a server whose metrics nobody scrapes, which then pays nothing
    /// per request.
    pub fn off() -> Self {
        Self(None)
    }

    /// Registers `kvdb_<scope>_requests_total{op,outcome}` and
    /// `kvdb_<scope>_request_duration_seconds{op}` in `registry`.
    pub fn register(registry: &mut Registry, scope: &str) -> Self {
        let requests: Family<OutcomeLabels, Counter> = Family::default();
        let seconds: Family<OpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let common = OPS
            .map(|op| {
                let ok = requests
                    .get_or_create(&[("op", op), ("outcome", "ok")])
                    .clone();
                let latency = seconds.get_or_create(&[("op", op)]).clone();
                (op, ok, latency)
            })
            .into();
        let series = RequestSeries {
            requests,
            seconds,
            common,
        };
        registry.register(
            format!("{scope}_requests"),
            "Requests served, by operation and outcome (ok, or the error kind)",
            series.requests.clone(),
        );
        registry.register_with_unit(
            format!("{scope}_request_duration"),
            "Time from receiving a request to answering it, by operation",
            Unit::Seconds,
            series.seconds.clone(),
        );
        Self(Some(series))
    }

    /// Counts one `op` that started at `started` and ended with `outcome`.
    pub fn record<T>(&self, op: &'static str, started: Instant, outcome: &Result<T, KvError>) {
        let Some(series) = &self.0 else { return };
        let seconds = started.elapsed().as_secs_f64();
        let common = series.common.iter().find(|(name, _, _)| *name == op);
        match (common, outcome) {
            (Some((_, ok, latency)), Ok(_)) => {
                ok.inc();
                latency.observe(seconds);
            }
            (_, outcome) => {
                let outcome = match outcome {
                    Ok(_) => "ok",
                    Err(e) => outcome_label(e),
                };
                series
                    .requests
                    .get_or_create(&[("op", op), ("outcome", outcome)])
                    .inc();
                series.seconds.get_or_create(&[("op", op)]).observe(seconds);
            }
        }
    }

    /// Runs `request` and counts it as `op`.
    pub async fn measure<T>(
        &self,
        op: &'static str,
        request: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        if self.0.is_none() {
            return request.await;
        }
        let started = Instant::now();
        let outcome = request.await;
        self.record(op, started, &outcome);
        outcome
    }
}

/// Attempts that failed and were retried, by the error that made the client retry (a
/// `not_leader` hint followed, a `shard_moved` refresh, an `unavailable` node backed off
/// from): the routing work behind the requests a gateway or a smart client served. An
/// application installs one in its client's `ExecutorConfig::retries`.
#[derive(Clone, Debug)]
pub struct RetryMetrics(Family<OpLabels, Counter>);

impl RetryMetrics {
    /// Registers `kvdb_<scope>_retries_total{reason}` in `registry`.
    pub fn register(registry: &mut Registry, scope: &str) -> Self {
        let retries: Family<OpLabels, Counter> = Family::default();
        // The reasons a client retries for, present from the start at 0: a series that
        // appears only once something goes wrong is hard to alert on.
        for reason in ["not_leader", "shard_moved", "stale_epoch", "unavailable"] {
            drop(retries.get_or_create(&[("reason", reason)]));
        }
        registry.register(
            format!("{scope}_retries"),
            "Attempts retried, by the error that made the client retry",
            retries.clone(),
        );
        Self(retries)
    }

    /// Counts one retry after `error`.
    pub fn record(&self, error: &KvError) {
        self.0
            .get_or_create(&[("reason", outcome_label(error))])
            .inc();
    }
}

/// The `outcome` label of a failed request: its error kind, in snake case.
pub fn outcome_label(error: &KvError) -> &'static str {
    use crate::error::RoutingError;
    match error {
        KvError::Routing(RoutingError::NotLeader { .. }) => "not_leader",
        KvError::Routing(RoutingError::ShardMoved { .. }) => "shard_moved",
        KvError::Routing(RoutingError::StaleEpoch { .. }) => "stale_epoch",
        KvError::InvalidArgument(_) => "invalid_argument",
        KvError::Unavailable(_) => "unavailable",
        KvError::DeadlineExceeded => "deadline_exceeded",
        KvError::NoShardMap => "no_shard_map",
        KvError::Internal(_) => "internal",
        KvError::PermissionDenied(_) => "permission_denied",
        KvError::ResourceExhausted(_) => "resource_exhausted",
    }
}

/// Writes one gauge or counter family of a [`Collector`]: `name` (already carrying its unit
/// and, for a counter, without `_total`), with one sample per `(labels, value)`.
pub fn encode_family<L, M>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
    M: EncodeMetric,
{
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let metric_type = first.metric_type();
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Serves `GET /metrics` (the exposition of `registry`) over HTTP/1.1 on `listener` until
/// `shutdown` completes. Every other path is 404. Scrapes are plain HTTP: bind the listener
/// to an address only the monitoring network reaches.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics endpoint: accept failed");
                    continue;
                }
            },
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &registry)) }
            });
            let served = http1::Builder::new()
                .header_read_timeout(std::time::Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics endpoint: connection ended");
            }
        });
    }
}

fn respond<B>(request: &http::Request<B>, registry: &Registry) -> http::Response<String> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => (http::StatusCode::OK, CONTENT_TYPE, encode(registry)),
        (_, "/metrics") => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is served here\n".to_owned(),
        ),
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "metrics are served at /metrics\n".to_owned(),
        ),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests;
