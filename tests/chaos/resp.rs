//! Logical clients that speak Redis to the gateway's RESP port, recorded for the same
//! linearizability check as the gRPC clients, on the same keys: `GET`, `SET` of unique
//! values, and an optimistic compare-and-set with `WATCH`/`GET`/`MULTI`/`SET`/`EXEC`. Redis
//! tells no versions, so a `GET` records the value it saw ([`Output::Value`]) and an
//! acknowledged write records that it applied ([`Output::Done`]); the checker places them by
//! value and by time.
//!
//! Each client also `INCR`s a counter key of its own set, counting the increments
//! acknowledged and those whose outcome it could not learn: at the end a counter must hold
//! at least the first and at most both, or an increment was lost or applied twice. The same
//! goes for the fields of one large hash ([`LARGE_HASH`]: values past 64 bytes keep it in
//! member rows from its first write), which the clients `HSET` new fields into and
//! `HINCRBY` a counter field of: every acknowledged field must be there with its value, and
//! nothing that was never sent.
//!
//! Outcomes are conservative: any error, timeout or closed connection during a write is
//! [`Outcome::Unknown`], and the connection is dropped (a fresh one carries no `WATCH` or
//! `MULTI` state). `EXEC` answering nil is a definite failure: the watched key changed, and
//! nothing was written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kvdb_testkit::{ClientId, Op, Outcome, Output, Recorder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame as Frame, Resp2Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::cluster::CALL_TIMEOUT;

/// Counter keys the Redis clients increment.
pub const COUNTERS: usize = 2;

/// The `i`th counter key.
pub fn counter_key(i: usize) -> Vec<u8> {
    format!("chaos-counter-{i}").into_bytes()
}

/// Field-value pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The hash the Redis clients add fields to.
pub const LARGE_HASH: &[u8] = b"chaos-large-hash";

/// The field of [`LARGE_HASH`] the Redis clients increment.
const HASH_COUNTER: &[u8] = b"counter";

/// What the Redis clients know about each counter.
#[derive(Debug, Default)]
pub struct Counters {
    /// Increments acknowledged, per counter.
    pub acknowledged: [AtomicU64; COUNTERS],
    /// Increments whose outcome is unknown, per counter.
    pub unknown: [AtomicU64; COUNTERS],
    /// Fields of [`LARGE_HASH`] whose `HSET` was acknowledged, and those whose outcome is
    /// unknown, with their values.
    pub hash_fields: std::sync::Mutex<(Pairs, Pairs)>,
    /// `HINCRBY`s of [`LARGE_HASH`]'s counter field: acknowledged, and unknown.
    pub hash_increments: [AtomicU64; 2],
}

impl Counters {
    /// Each counter's acknowledged and unknown increments and what it holds, for the log.
    pub fn describe(&self, found: &[Option<u64>]) -> String {
        (0..COUNTERS)
            .map(|i| {
                format!(
                    "{} acknowledged + {} unknown -> {}",
                    self.acknowledged[i].load(Ordering::Relaxed),
                    self.unknown[i].load(Ordering::Relaxed),
                    found[i].unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What is wrong with `found` (the counters' final values, `None` when absent).
    pub fn check(&self, found: &[Option<u64>]) -> Vec<String> {
        (0..COUNTERS)
            .filter_map(|i| {
                let acked = self.acknowledged[i].load(Ordering::Relaxed);
                let unknown = self.unknown[i].load(Ordering::Relaxed);
                let value = found[i].unwrap_or(0);
                (value < acked || value > acked + unknown).then(|| {
                    format!(
                        "counter {}: {acked} INCRs acknowledged and {unknown} unknown, but it holds {value}",
                        String::from_utf8_lossy(&counter_key(i))
                    )
                })
            })
            .collect()
    }
}

impl Counters {
    /// The large hash's acknowledged and unknown writes and what it holds, for the log.
    pub fn describe_hash(&self, found: &[(Vec<u8>, Vec<u8>)]) -> String {
        let fields = self.hash_fields.lock().unwrap();
        format!(
            "{} fields acknowledged + {} unknown -> {} fields; {} HINCRBYs acknowledged + {} unknown",
            fields.0.len(),
            fields.1.len(),
            found.len(),
            self.hash_increments[0].load(Ordering::Relaxed),
            self.hash_increments[1].load(Ordering::Relaxed),
        )
    }

    /// What is wrong with `found`, the large hash's pairs at the end.
    pub fn check_hash(&self, found: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
        let fields = self.hash_fields.lock().unwrap();
        let (acked, unknown) = (&fields.0, &fields.1);
        let found: std::collections::HashMap<&[u8], &[u8]> = found
            .iter()
            .map(|(f, v)| (f.as_slice(), v.as_slice()))
            .collect();
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut wrong = Vec::new();
        for (field, value) in acked {
            if found.get(field.as_slice()) != Some(&value.as_slice()) {
                wrong.push(format!(
                    "large hash: acknowledged field {} is missing or changed",
                    show(field)
                ));
            }
        }
        for (field, value) in &found {
            if *field == HASH_COUNTER {
                continue;
            }
            let sent = acked
                .iter()
                .chain(unknown)
                .any(|(f, v)| f == field && v == value);
            if !sent {
                wrong.push(format!(
                    "large hash: field {} holds a value never sent",
                    show(field)
                ));
            }
        }
        let counted: u64 = found.get(HASH_COUNTER).map_or(0, |v| {
            show(v).parse().expect("the counter field holds an integer")
        });
        let acked = self.hash_increments[0].load(Ordering::Relaxed);
        let unknown = self.hash_increments[1].load(Ordering::Relaxed);
        if counted < acked || counted > acked + unknown {
            wrong.push(format!(
                "large hash: {acked} HINCRBYs acknowledged and {unknown} unknown, but its counter holds {counted}"
            ));
        }
        wrong
    }
}

/// One Redis connection, opened on demand and dropped after any failure.
struct Connection {
    address: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A call that did not get a reply: the connection is gone.
struct NoReply;

impl Connection {
    async fn call(&mut self, argv: &[&[u8]]) -> Result<Frame, NoReply> {
        let reply = tokio::time::timeout(CALL_TIMEOUT, self.exchange(argv)).await;
        match reply {
            Ok(Ok(frame)) => Ok(frame),
            _ => {
                self.stream = None;
                Err(NoReply)
            }
        }
    }

    async fn exchange(&mut self, argv: &[&[u8]]) -> std::io::Result<Frame> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.address).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        let frame = Frame::Array(argv.iter().map(|a| Frame::BulkString(a.to_vec())).collect());
        let mut out = vec![0; frame.encode_len(false)];
        encode(&mut out, &frame, false).map_err(std::io::Error::other)?;
        stream.write_all(&out).await?;
        loop {
            if let Some((frame, used)) = decode(&self.buf).map_err(std::io::Error::other)? {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let mut chunk = [0; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Drops the connection, and with it any `WATCH` or `MULTI` state.
    fn reset(&mut self) {
        self.stream = None;
    }
}

/// One recorded Redis client.
pub struct RespWorker {
    pub id: ClientId,
    connection: Connection,
    recorder: Recorder,
    rng: StdRng,
    keys: Vec<Vec<u8>>,
    counters: Arc<Counters>,
    written: u64,
}

impl RespWorker {
    /// A client of the RESP port at `address`, seeded with `seed`.
    pub fn new(
        id: ClientId,
        address: SocketAddr,
        recorder: Recorder,
        seed: u64,
        keys: Vec<Vec<u8>>,
        counters: Arc<Counters>,
    ) -> RespWorker {
        RespWorker {
            id,
            connection: Connection {
                address,
                stream: None,
                buf: Vec::new(),
            },
            recorder,
            rng: StdRng::seed_from_u64(seed),
            keys,
            counters,
            written: 0,
        }
    }

    /// Runs until `stop`, counting every call in `issued`.
    pub async fn run(mut self, stop: Arc<AtomicBool>, issued: Arc<AtomicU64>) {
        while !stop.load(Ordering::Relaxed) {
            let k = self.rng.random_range(0..self.keys.len());
            issued.fetch_add(1, Ordering::Relaxed);
            match self.rng.random_range(0..12) {
                0..4 => {
                    self.get(k).await;
                }
                4..7 => self.set(k).await,
                7..9 => self.watch_and_set(k).await,
                9 => self.incr(k % COUNTERS).await,
                10 => self.hash_set().await,
                _ => self.hash_incr().await,
            }
        }
    }

    async fn get(&mut self, k: usize) -> Option<Option<Vec<u8>>> {
        let key = self.keys[k].clone();
        let pending = self.recorder.invoke(self.id, key.clone(), Op::Read);
        let (outcome, seen) = match self.connection.call(&[b"GET", &key]).await {
            Ok(Frame::BulkString(value)) => (
                Outcome::Ok(Output::Value(Some(value.clone()))),
                Some(Some(value)),
            ),
            Ok(Frame::Null) => (Outcome::Ok(Output::Value(None)), Some(None)),
            _ => (Outcome::Fail, None),
        };
        pending.complete(outcome);
        seen
    }

    fn next_value(&mut self) -> Vec<u8> {
        self.written += 1;
        format!("{}-{}", self.id, self.written).into_bytes()
    }

    async fn set(&mut self, k: usize) {
        let key = self.keys[k].clone();
        let value = self.next_value();
        let pending = self
            .recorder
            .invoke(self.id, key.clone(), Op::Write(value.clone()));
        let outcome = match self.connection.call(&[b"SET", &key, &value]).await {
            Ok(Frame::SimpleString(ok)) if ok == b"OK" => Outcome::Ok(Output::Done),
            _ => {
                self.connection.reset();
                Outcome::Unknown
            }
        };
        pending.complete(outcome);
    }

    /// `WATCH k`, `GET k` (recorded as a read), then `MULTI`, `SET k new`, `EXEC`: the write
    /// applies only if nothing wrote `k` since the `WATCH`.
    async fn watch_and_set(&mut self, k: usize) {
        let key = self.keys[k].clone();
        let ok = |frame: &Result<Frame, NoReply>, want: &[u8]| matches!(frame, Ok(Frame::SimpleString(s)) if s == want);
        let watched = self.connection.call(&[b"WATCH", &key]).await;
        if !ok(&watched, b"OK") || self.get(k).await.is_none() {
            self.connection.reset();
            return;
        }
        let value = self.next_value();
        let multi = self.connection.call(&[b"MULTI"]).await;
        let queued = match multi {
            Ok(_) if ok(&multi, b"OK") => self.connection.call(&[b"SET", &key, &value]).await,
            other => other,
        };
        if !ok(&queued, b"QUEUED") {
            self.connection.reset();
            return;
        }
        let pending = self
            .recorder
            .invoke(self.id, key.clone(), Op::Write(value.clone()));
        let outcome = match self.connection.call(&[b"EXEC"]).await {
            Ok(Frame::Array(replies)) if replies == [Frame::SimpleString(b"OK".to_vec())] => {
                Outcome::Ok(Output::Done)
            }
            // The watched key changed: nothing was written.
            Ok(Frame::Null) => Outcome::Fail,
            _ => {
                self.connection.reset();
                Outcome::Unknown
            }
        };
        pending.complete(outcome);
    }

    /// `HSET` of a new field of [`LARGE_HASH`], with a value past Redis's small-hash limit.
    async fn hash_set(&mut self) {
        self.written += 1;
        let field = format!("{}-{}", self.id, self.written).into_bytes();
        let mut value = field.clone();
        value.resize(field.len() + 64, b'x');
        let reply = self
            .connection
            .call(&[b"HSET", LARGE_HASH, &field, &value])
            .await;
        let mut fields = self.counters.hash_fields.lock().unwrap();
        match reply {
            Ok(Frame::Integer(1)) => fields.0.push((field, value)),
            _ => {
                self.connection.reset();
                fields.1.push((field, value));
            }
        }
    }

    async fn hash_incr(&mut self) {
        let reply = self
            .connection
            .call(&[b"HINCRBY", LARGE_HASH, HASH_COUNTER, b"1"])
            .await;
        let counted = match reply {
            Ok(Frame::Integer(_)) => 0,
            _ => {
                self.connection.reset();
                1
            }
        };
        self.counters.hash_increments[counted].fetch_add(1, Ordering::Relaxed);
    }

    async fn incr(&mut self, c: usize) {
        let key = counter_key(c);
        match self.connection.call(&[b"INCR", &key]).await {
            Ok(Frame::Integer(_)) => {
                self.counters.acknowledged[c].fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.connection.reset();
                self.counters.unknown[c].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How long the final counter reads may take.
pub const COUNTER_READ_TIMEOUT: Duration = Duration::from_secs(30);
