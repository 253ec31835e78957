//! The Redis protocol front door, proven against Redis itself: one table of commands and
//! expected replies runs against a KvDB gateway's RESP listener (an in-process cluster) and
//! against a real `redis-server` started here, and every expectation must hold on both. Then
//! the real `redis-cli` and `redis-benchmark` run against the gateway.
//!
//! Needs `redis-server`, `redis-cli` and `redis-benchmark` on the PATH (`.ci/run` installs
//! them).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};

use redis_protocol::resp3::types::OwnedFrame as Frame;

use common::TestCluster;
use common::resp::Conn;

/// An expected reply. Values that differ between servers by nature (ids, versions, times)
/// are only checked for their type.
#[derive(Debug, Clone)]
enum E {
    Simple(&'static str),
    Error(&'static str),
    Int(i64),
    IntIn(i64, i64),
    AnyInt,
    Bulk(&'static [u8]),
    Nil,
    Array(Vec<E>),
    /// A RESP3 map with these pairs.
    Map(Vec<(E, E)>),
    /// A RESP3 map with exactly these keys; values not compared.
    MapKeys(&'static [&'static str]),
    /// A flat RESP2 array of `n` items.
    ArrayOf(usize),
    /// A RESP3 verbatim string starting with this text.
    Verbatim(&'static str),
    /// An array of these items in any order (`KEYS`, `SCAN`: servers list keys in their own
    /// order).
    Unordered(Vec<E>),
}

const OK: E = E::Simple("OK");

/// A command and the reply expected to it.
type Row = (&'static [&'static [u8]], E);

/// One table, run in order on one connection to each server: RESP2 first, then `HELLO 3`.
fn table() -> Vec<Row> {
    use E::*;
    let strings_and_keys: Vec<Row> = vec![
        (&[b"PING"], Simple("PONG")),
        (&[b"PING", b"hi"], Bulk(b"hi")),
        (&[b"ECHO", b"a b"], Bulk(b"a b")),
        (&[b"GET", b"missing"], Nil),
        (&[b"SET", b"k1", b"v1"], OK),
        (&[b"GET", b"k1"], Bulk(b"v1")),
        (&[b"SET", b"k1", b"v2", b"NX"], Nil),
        (&[b"GET", b"k1"], Bulk(b"v1")),
        (&[b"SETNX", b"k1", b"x"], Int(0)),
        (&[b"SETNX", b"k2", b"x"], Int(1)),
        (&[b"SET", b"bin\x00", b"\x00\r\n\xff"], OK),
        (&[b"GET", b"bin\x00"], Bulk(b"\x00\r\n\xff")),
        (&[b"SET", b"empty", b""], OK),
        (&[b"GET", b"empty"], Bulk(b"")),
        // Expiry edges.
        (
            &[b"SET", b"k3", b"v", b"EX", b"0"],
            Error("ERR invalid expire time in 'set' command"),
        ),
        (
            &[b"SET", b"k3", b"v", b"PX", b"-5"],
            Error("ERR invalid expire time in 'set' command"),
        ),
        (
            &[b"SET", b"k3", b"v", b"EX", b"abc"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"SET", b"k3", b"v", b"NX", b"XX"],
            Error("ERR syntax error"),
        ),
        (
            &[b"SET", b"k3", b"v", b"EX", b"1", b"PX", b"5"],
            Error("ERR syntax error"),
        ),
        (
            &[b"SETEX", b"k3", b"0", b"v"],
            Error("ERR invalid expire time in 'setex' command"),
        ),
        (
            &[b"PSETEX", b"k3", b"-1", b"v"],
            Error("ERR invalid expire time in 'psetex' command"),
        ),
        (&[b"EXISTS", b"k3"], Int(0)),
        (&[b"SET", b"t", b"v", b"EX", b"100"], OK),
        (&[b"TTL", b"t"], Int(100)),
        (&[b"PTTL", b"t"], IntIn(90_000, 100_000)),
        (&[b"SETEX", b"t2", b"50", b"v"], OK),
        (&[b"TTL", b"t2"], IntIn(49, 50)),
        (&[b"PSETEX", b"t3", b"60000", b"v"], OK),
        (&[b"PTTL", b"t3"], IntIn(50_000, 60_000)),
        (&[b"PTTL", b"k1"], Int(-1)),
        (&[b"TTL", b"k1"], Int(-1)),
        (&[b"TTL", b"nope"], Int(-2)),
        (&[b"PTTL", b"nope"], Int(-2)),
        // Multi-key commands.
        (&[b"EXISTS", b"k1", b"k1", b"nope"], Int(2)),
        (
            &[b"MGET", b"k1", b"nope", b"k2"],
            Array(vec![Bulk(b"v1"), Nil, Bulk(b"x")]),
        ),
        // A key named twice: the last value wins, as the operations on one key keep their order.
        (&[b"MSET", b"a", b"0", b"b", b"2", b"a", b"1"], OK),
        (
            &[b"MSET", b"a"],
            Error("ERR wrong number of arguments for 'mset' command"),
        ),
        (
            &[b"MSET", b"a", b"1", b"b"],
            Error("ERR wrong number of arguments for 'mset' command"),
        ),
        (
            &[b"MGET", b"a", b"b", b"a"],
            Array(vec![Bulk(b"1"), Bulk(b"2"), Bulk(b"1")]),
        ),
        (&[b"DEL", b"a", b"a", b"b", b"nope"], Int(2)),
        (&[b"UNLINK", b"k2"], Int(1)),
        (&[b"EXISTS", b"a", b"b", b"k2"], Int(0)),
        (&[b"TYPE", b"k1"], Simple("string")),
        (&[b"TYPE", b"nope"], Simple("none")),
        // Read-modify-write: counters.
        (&[b"INCR", b"c1"], Int(1)),
        (&[b"INCRBY", b"c1", b"10"], Int(11)),
        (&[b"DECR", b"c1"], Int(10)),
        (&[b"DECRBY", b"c1", b"3"], Int(7)),
        (&[b"GET", b"c1"], Bulk(b"7")),
        (
            &[b"INCRBY", b"c1", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"DECRBY", b"c1", b"-9223372036854775808"],
            Error("ERR decrement would overflow"),
        ),
        (&[b"SET", b"c2", b"9223372036854775807"], OK),
        (
            &[b"INCR", b"c2"],
            Error("ERR increment or decrement would overflow"),
        ),
        (
            &[b"INCR", b"k1"],
            Error("ERR value is not an integer or out of range"),
        ),
        (&[b"SET", b"c3", b"01"], OK),
        (
            &[b"INCR", b"c3"],
            Error("ERR value is not an integer or out of range"),
        ),
        (&[b"INCRBYFLOAT", b"f1", b"10.5"], Bulk(b"10.5")),
        (&[b"INCRBYFLOAT", b"f1", b"0.1"], Bulk(b"10.6")),
        (&[b"INCRBYFLOAT", b"f1", b"-0.6"], Bulk(b"10")),
        (&[b"INCRBYFLOAT", b"f2", b"5.0e3"], Bulk(b"5000")),
        (&[b"INCRBYFLOAT", b"c1", b"1.5"], Bulk(b"8.5")),
        // Redis adds in an 80-bit long double and prints 17 decimals: not f64's 0.30000000000000004.
        (&[b"SET", b"f3", b"0.1"], OK),
        (&[b"INCRBYFLOAT", b"f3", b"0.2"], Bulk(b"0.3")),
        (&[b"INCRBYFLOAT", b"f3", b"3"], Bulk(b"3.3")),
        (&[b"INCRBYFLOAT", b"f4", b"5.0e3"], Bulk(b"5000")),
        (
            &[b"INCRBYFLOAT", b"f4", b"1.23456789012345678"],
            Bulk(b"5001.23456789012345691"),
        ),
        (
            &[b"INCRBYFLOAT", b"f4", b"0.000000000000000001"],
            Bulk(b"5001.23456789012345691"),
        ),
        (
            &[b"INCRBYFLOAT", b"f4", b"1e5000"],
            Error("ERR value is not a valid float"),
        ),
        (
            &[b"INCRBYFLOAT", b"f1", b"abc"],
            Error("ERR value is not a valid float"),
        ),
        (
            &[b"INCRBYFLOAT", b"k1", b"1"],
            Error("ERR value is not a valid float"),
        ),
        (
            &[b"INCRBYFLOAT", b"f1", b"inf"],
            Error("ERR increment would produce NaN or Infinity"),
        ),
        (&[b"GET", b"f1"], Bulk(b"10")),
        // Read-modify-write: strings.
        (&[b"APPEND", b"a1", b"ab"], Int(2)),
        (&[b"APPEND", b"a1", b"cd"], Int(4)),
        (&[b"SETRANGE", b"a1", b"6", b"z"], Int(7)),
        (&[b"GET", b"a1"], Bulk(b"abcd\x00\x00z")),
        (&[b"SETRANGE", b"a1", b"0", b"AB"], Int(7)),
        (
            &[b"SETRANGE", b"a1", b"-1", b"x"],
            Error("ERR offset is out of range"),
        ),
        (
            &[b"SETRANGE", b"a1", b"536870912", b"x"],
            Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
        ),
        (&[b"SETRANGE", b"nope2", b"5", b""], Int(0)),
        (&[b"EXISTS", b"nope2"], Int(0)),
        (&[b"GETRANGE", b"a1", b"0", b"1"], Bulk(b"AB")),
        (&[b"GETRANGE", b"a1", b"-3", b"-1"], Bulk(b"\x00\x00z")),
        (&[b"GETRANGE", b"a1", b"5", b"2"], Bulk(b"")),
        (&[b"GETRANGE", b"a1", b"-1", b"-5"], Bulk(b"")),
        (&[b"GETRANGE", b"a1", b"3", b"100"], Bulk(b"d\x00\x00z")),
        (&[b"GETRANGE", b"nope", b"0", b"-1"], Bulk(b"")),
        (
            &[b"GETRANGE", b"a1", b"x", b"1"],
            Error("ERR value is not an integer or out of range"),
        ),
        (&[b"STRLEN", b"a1"], Int(7)),
        (&[b"STRLEN", b"nope"], Int(0)),
        (&[b"GETSET", b"a1", b"new"], Bulk(b"ABcd\x00\x00z")),
        (&[b"GETSET", b"g2", b"v"], Nil),
        (&[b"GETDEL", b"a1"], Bulk(b"new")),
        (&[b"GETDEL", b"a1"], Nil),
        (&[b"SET", b"k5", b"v", b"XX"], Nil),
        (&[b"SET", b"k5", b"v", b"GET"], Nil),
        (&[b"SET", b"k5", b"w", b"XX", b"GET"], Bulk(b"v")),
        (&[b"SET", b"k5", b"x", b"NX", b"GET"], Bulk(b"w")),
        (&[b"SET", b"k5", b"y", b"XX"], OK),
        (&[b"GET", b"k5"], Bulk(b"y")),
        // Expiry kept by INCR, APPEND and KEEPTTL, removed by a plain SET.
        (&[b"SET", b"e1", b"5", b"EX", b"100"], OK),
        (&[b"INCR", b"e1"], Int(6)),
        (&[b"TTL", b"e1"], IntIn(99, 100)),
        (&[b"APPEND", b"e1", b"0"], Int(2)),
        (&[b"TTL", b"e1"], IntIn(99, 100)),
        (&[b"SET", b"e1", b"y", b"KEEPTTL"], OK),
        (&[b"TTL", b"e1"], IntIn(99, 100)),
        (&[b"SET", b"e1", b"z"], OK),
        (&[b"TTL", b"e1"], Int(-1)),
        // EXPIRE conditions: a key without expiry never passes GT and always passes LT.
        (&[b"EXPIRE", b"e1", b"100", b"GT"], Int(0)),
        (&[b"EXPIRE", b"e1", b"100", b"XX"], Int(0)),
        (&[b"EXPIRE", b"e1", b"100", b"LT"], Int(1)),
        (&[b"TTL", b"e1"], IntIn(99, 100)),
        (&[b"EXPIRE", b"e1", b"200", b"NX"], Int(0)),
        (&[b"EXPIRE", b"e1", b"200", b"GT"], Int(1)),
        (&[b"TTL", b"e1"], IntIn(199, 200)),
        (&[b"EXPIRE", b"e1", b"50", b"GT"], Int(0)),
        (&[b"PEXPIRE", b"e1", b"50000", b"LT"], Int(1)),
        (&[b"PTTL", b"e1"], IntIn(49_000, 50_000)),
        // XX with LT: only a key with an expiry, and only sooner.
        (&[b"EXPIRE", b"e1", b"60", b"XX", b"LT"], Int(0)),
        (&[b"EXPIRE", b"e1", b"40", b"XX", b"LT"], Int(1)),
        (&[b"TTL", b"e1"], IntIn(39, 40)),
        (&[b"EXPIRE", b"e1", b"45", b"LT", b"XX"], Int(0)),
        (&[b"PERSIST", b"e1"], Int(1)),
        (&[b"EXPIRE", b"e1", b"60", b"XX", b"LT"], Int(0)),
        (&[b"TTL", b"e1"], Int(-1)),
        (&[b"PEXPIRE", b"e1", b"50000"], Int(1)),
        (&[b"PERSIST", b"e1"], Int(1)),
        (&[b"PERSIST", b"e1"], Int(0)),
        (&[b"TTL", b"e1"], Int(-1)),
        (&[b"PERSIST", b"nope"], Int(0)),
        (&[b"EXPIRE", b"nope", b"100"], Int(0)),
        (&[b"EXPIREAT", b"e1", b"4000000000"], Int(1)),
        (&[b"EXPIRETIME", b"e1"], Int(4_000_000_000)),
        (&[b"PEXPIRETIME", b"e1"], Int(4_000_000_000_000)),
        (&[b"EXPIRETIME", b"nope"], Int(-2)),
        (&[b"PEXPIRETIME", b"k1"], Int(-1)),
        // A time already past deletes the key.
        (&[b"EXPIRE", b"e1", b"-1"], Int(1)),
        (&[b"EXISTS", b"e1"], Int(0)),
        (&[b"SET", b"e2", b"v"], OK),
        (&[b"PEXPIREAT", b"e2", b"1"], Int(1)),
        (&[b"GET", b"e2"], Nil),
        (
            &[b"EXPIRE", b"k1", b"10", b"foo"],
            Error("ERR Unsupported option foo"),
        ),
        (
            &[b"EXPIRE", b"k1", b"10", b"NX", b"XX"],
            Error("ERR NX and XX, GT or LT options at the same time are not compatible"),
        ),
        (
            &[b"EXPIRE", b"k1", b"10", b"GT", b"LT"],
            Error("ERR GT and LT options at the same time are not compatible"),
        ),
        (
            &[b"EXPIRE", b"k1", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"EXPIRE", b"k1", b"9223372036854775807"],
            Error("ERR invalid expire time in 'expire' command"),
        ),
        (
            &[b"EXPIRE", b"k1"],
            Error("ERR wrong number of arguments for 'expire' command"),
        ),
        (&[b"TTL", b"k1"], Int(-1)),
        // GETEX.
        (&[b"SET", b"e3", b"v"], OK),
        (&[b"GETEX", b"e3", b"EX", b"100"], Bulk(b"v")),
        (&[b"TTL", b"e3"], IntIn(99, 100)),
        (&[b"GETEX", b"e3", b"PERSIST"], Bulk(b"v")),
        (&[b"TTL", b"e3"], Int(-1)),
        (&[b"GETEX", b"e3"], Bulk(b"v")),
        (
            &[b"GETEX", b"e3", b"PX", b"0"],
            Error("ERR invalid expire time in 'getex' command"),
        ),
        (
            &[b"GETEX", b"e3", b"EX", b"1", b"PX", b"2"],
            Error("ERR syntax error"),
        ),
        (&[b"GETEX", b"nope", b"EX", b"10"], Nil),
        (&[b"GETEX", b"e3", b"EXAT", b"1"], Bulk(b"v")),
        (&[b"EXISTS", b"e3"], Int(0)),
        // Transactions, over keys of one slot (KvDB refuses others with CROSSSLOT).
        (&[b"SET", b"{t}s", b"x"], OK),
        (&[b"MULTI"], OK),
        (&[b"SET", b"{t}a", b"1"], Simple("QUEUED")),
        (&[b"INCR", b"{t}a"], Simple("QUEUED")),
        (&[b"GET", b"{t}a"], Simple("QUEUED")),
        (&[b"PING"], Simple("QUEUED")),
        (&[b"INCR", b"{t}s"], Simple("QUEUED")),
        (&[b"MGET", b"{t}a", b"{t}none"], Simple("QUEUED")),
        (
            &[b"EXEC"],
            Array(vec![
                OK,
                Int(2),
                Bulk(b"2"),
                Simple("PONG"),
                Error("ERR value is not an integer or out of range"),
                Array(vec![Bulk(b"2"), Nil]),
            ]),
        ),
        (&[b"MULTI"], OK),
        (&[b"MULTI"], Error("ERR MULTI calls can not be nested")),
        (
            &[b"WATCH", b"{t}a"],
            Error("ERR WATCH inside MULTI is not allowed"),
        ),
        (&[b"EXEC"], Array(vec![])),
        (&[b"EXEC"], Error("ERR EXEC without MULTI")),
        (&[b"DISCARD"], Error("ERR DISCARD without MULTI")),
        (&[b"MULTI"], OK),
        (&[b"SET", b"{t}a", b"5"], Simple("QUEUED")),
        (&[b"DISCARD"], OK),
        (&[b"GET", b"{t}a"], Bulk(b"2")),
        (&[b"MULTI"], OK),
        (
            &[b"FOO"],
            Error("ERR unknown command 'FOO', with args beginning with: "),
        ),
        (&[b"SET", b"{t}a", b"9"], Simple("QUEUED")),
        (
            &[b"EXEC"],
            Error("EXECABORT Transaction discarded because of previous errors."),
        ),
        (&[b"MULTI"], OK),
        (
            &[b"SET", b"{t}a"],
            Error("ERR wrong number of arguments for 'set' command"),
        ),
        (
            &[b"EXEC"],
            Error("EXECABORT Transaction discarded because of previous errors."),
        ),
        (&[b"GET", b"{t}a"], Bulk(b"2")),
        // WATCH: a key written after it (by anyone, this client too) fails the EXEC.
        (&[b"WATCH", b"{t}a"], OK),
        (&[b"SET", b"{t}a", b"3"], OK),
        (&[b"MULTI"], OK),
        (&[b"SET", b"{t}a", b"4"], Simple("QUEUED")),
        (&[b"EXEC"], Nil),
        (&[b"GET", b"{t}a"], Bulk(b"3")),
        (&[b"WATCH", b"{t}a", b"{t}none"], OK),
        (&[b"MULTI"], OK),
        (&[b"SET", b"{t}a", b"4"], Simple("QUEUED")),
        (&[b"EXEC"], Array(vec![OK])),
        (&[b"WATCH", b"{t}a"], OK),
        (&[b"UNWATCH"], OK),
        (&[b"SET", b"{t}a", b"5"], OK),
        (&[b"MULTI"], OK),
        (&[b"GET", b"{t}a"], Simple("QUEUED")),
        (&[b"EXEC"], Array(vec![Bulk(b"5")])),
        (&[b"MULTI"], OK),
        (&[b"EXEC"], Array(vec![])),
        // MSETNX: all or nothing.
        (&[b"MSETNX", b"{m}a", b"1", b"{m}b", b"2"], Int(1)),
        (&[b"MSETNX", b"{m}a", b"9", b"{m}c", b"3"], Int(0)),
        (
            &[b"MGET", b"{m}a", b"{m}b", b"{m}c"],
            Array(vec![Bulk(b"1"), Bulk(b"2"), Nil]),
        ),
        (
            &[b"MSETNX", b"{m}a"],
            Error("ERR wrong number of arguments for 'msetnx' command"),
        ),
        (
            &[b"MSETNX", b"{m}x", b"1", b"{m}y"],
            Error("ERR wrong number of arguments for 'msetnx' command"),
        ),
        // RENAME keeps the value and its expiry.
        (&[b"RENAME", b"{r}none", b"{r}b"], Error("ERR no such key")),
        (&[b"SET", b"{r}a", b"v", b"EX", b"100"], OK),
        (&[b"RENAME", b"{r}a", b"{r}b"], OK),
        (&[b"EXISTS", b"{r}a"], Int(0)),
        (&[b"GET", b"{r}b"], Bulk(b"v")),
        (&[b"TTL", b"{r}b"], IntIn(99, 100)),
        (&[b"RENAMENX", b"{r}b", b"{r}b"], Int(0)),
        (&[b"RENAME", b"{r}b", b"{r}b"], OK),
        (&[b"SET", b"{r}c", b"w"], OK),
        (&[b"RENAMENX", b"{r}b", b"{r}c"], Int(0)),
        (&[b"RENAMENX", b"{r}b", b"{r}d"], Int(1)),
        (&[b"GET", b"{r}d"], Bulk(b"v")),
        (&[b"MULTI"], OK),
        (&[b"RENAME", b"{r}d", b"{r}e"], Simple("QUEUED")),
        (&[b"GET", b"{r}e"], Simple("QUEUED")),
        (&[b"EXEC"], Array(vec![OK, Bulk(b"v")])),
        // SCAN and KEYS list keys in each server's own order.
        (
            &[b"KEYS", b"{r}*"],
            Unordered(vec![Bulk(b"{r}c"), Bulk(b"{r}e")]),
        ),
        (&[b"KEYS", b"{r}[c-d]"], Array(vec![Bulk(b"{r}c")])),
        (&[b"KEYS", b"nothing-like-this*"], Array(vec![])),
        (
            &[b"SCAN", b"0", b"MATCH", b"{r}*", b"COUNT", b"1000"],
            Array(vec![
                Bulk(b"0"),
                Unordered(vec![Bulk(b"{r}c"), Bulk(b"{r}e")]),
            ]),
        ),
        (
            &[
                b"SCAN", b"0", b"MATCH", b"{r}*", b"COUNT", b"1000", b"TYPE", b"hash",
            ],
            Array(vec![Bulk(b"0"), Array(vec![])]),
        ),
        (&[b"SCAN", b"x"], Error("ERR invalid cursor")),
        (&[b"SCAN", b"0", b"COUNT", b"0"], Error("ERR syntax error")),
        (
            &[b"SCAN", b"0", b"COUNT", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (&[b"SCAN", b"0", b"MATCH"], Error("ERR syntax error")),
        (&[b"SCAN", b"0", b"FOO", b"1"], Error("ERR syntax error")),
        (
            &[b"KEYS"],
            Error("ERR wrong number of arguments for 'keys' command"),
        ),
        (
            &[b"DBSIZE", b"x"],
            Error("ERR wrong number of arguments for 'dbsize' command"),
        ),
        (&[b"DBSIZE"], AnyInt),
    ];
    let rest: Vec<Row> = vec![
        // Errors.
        (
            &[b"GET"],
            Error("ERR wrong number of arguments for 'get' command"),
        ),
        (
            &[b"get", b"a", b"b"],
            Error("ERR wrong number of arguments for 'get' command"),
        ),
        (
            &[b"PING", b"a", b"b"],
            Error("ERR wrong number of arguments for 'ping' command"),
        ),
        (
            &[b"FOO", b"a", b"b"],
            Error("ERR unknown command 'FOO', with args beginning with: 'a' 'b' "),
        ),
        (
            &[b"foo"],
            Error("ERR unknown command 'foo', with args beginning with: "),
        ),
        (&[b"SELECT", b"0"], OK),
        (&[b"SELECT", b"1"], Error("ERR DB index is out of range")),
        (
            &[b"SELECT", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"AUTH", b"pw"],
            Error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
        ),
        (&[b"AUTH", b"a", b"b", b"c"], Error("ERR syntax error")),
        // Connection commands and what clients probe.
        (&[b"CLIENT", b"GETNAME"], Nil),
        (&[b"CLIENT", b"SETNAME", b"me"], OK),
        (&[b"CLIENT", b"GETNAME"], Bulk(b"me")),
        (
            &[b"CLIENT", b"SETNAME", b"a b"],
            Error("ERR Client names cannot contain spaces, newlines or special characters."),
        ),
        (&[b"CLIENT", b"ID"], AnyInt),
        (
            &[b"CLIENT", b"setinfo", b"lib-name", b"x"],
            Error("ERR unknown subcommand 'setinfo'. Try CLIENT HELP."),
        ),
        (
            &[b"CONFIG", b"GET", b"databases"],
            Array(vec![Bulk(b"databases"), Bulk(b"1")]),
        ),
        (&[b"CONFIG", b"GET", b"no-such-parameter"], Array(vec![])),
        // A standalone server (the gateway) refuses cluster commands as Redis without
        // cluster support does; nodes serve them (tests/resp_cluster.rs).
        (
            &[b"CONFIG", b"GET", b"cluster-enabled"],
            Array(vec![Bulk(b"cluster-enabled"), Bulk(b"no")]),
        ),
        (
            &[b"CLUSTER", b"SLOTS"],
            Error("ERR This instance has cluster support disabled"),
        ),
        (
            &[b"CLUSTER", b"KEYSLOT", b"foo"],
            Error("ERR This instance has cluster support disabled"),
        ),
        (
            &[b"READONLY"],
            Error("ERR This instance has cluster support disabled"),
        ),
        (
            &[b"READWRITE"],
            Error("ERR This instance has cluster support disabled"),
        ),
        (
            &[b"ASKING"],
            Error("ERR This instance has cluster support disabled"),
        ),
        (
            &[b"CLUSTER"],
            Error("ERR wrong number of arguments for 'cluster' command"),
        ),
        (&[b"COMMAND", b"COUNT"], AnyInt),
        (
            &[b"HELLO", b"4"],
            Error("NOPROTO unsupported protocol version"),
        ),
        (
            &[b"HELLO", b"x"],
            Error("ERR Protocol version is not an integer or out of range"),
        ),
        (
            &[b"HELLO", b"3", b"foo"],
            Error("ERR Syntax error in HELLO option 'foo'"),
        ),
        (&[b"HELLO"], ArrayOf(14)),
        // RESP3 from here on.
        (
            &[b"HELLO", b"3"],
            MapKeys(&[
                "server", "version", "proto", "id", "mode", "role", "modules",
            ]),
        ),
        (&[b"PING"], Simple("PONG")),
        (&[b"GET", b"nope"], Nil),
        (&[b"GET", b"k1"], Bulk(b"v1")),
        (&[b"MGET", b"k1", b"nope"], Array(vec![Bulk(b"v1"), Nil])),
        (&[b"INCR", b"c9"], Int(1)),
        (&[b"INCRBYFLOAT", b"f2", b"1"], Bulk(b"5001")),
        (&[b"GETDEL", b"nope"], Nil),
        (&[b"SET", b"k5", b"z", b"GET"], Bulk(b"y")),
        (&[b"TTL", b"nope"], Int(-2)),
        (&[b"WATCH", b"{t}a"], OK),
        (&[b"SET", b"{t}a", b"6"], OK),
        (&[b"MULTI"], OK),
        (&[b"GET", b"{t}a"], Simple("QUEUED")),
        (&[b"EXEC"], Nil),
        (&[b"MULTI"], OK),
        (&[b"INCR", b"{t}a"], Simple("QUEUED")),
        (&[b"EXEC"], Array(vec![Int(7)])),
        (
            &[b"SET", b"k4", b"v", b"EX", b"0"],
            Error("ERR invalid expire time in 'set' command"),
        ),
        (
            &[b"CONFIG", b"GET", b"databases"],
            Map(vec![(Bulk(b"databases"), Bulk(b"1"))]),
        ),
        (&[b"CLIENT", b"GETNAME"], Bulk(b"me")),
        (&[b"INFO", b"server"], Verbatim("# Server")),
        // Hashes in RESP3: HGETALL answers a map (empty for a missing key), HRANDFIELD with
        // WITHVALUES an array of [field, value] pairs, HSCAN still a flat array.
        (&[b"HSET", b"h:3", b"a", b"1", b"b", b"2"], Int(2)),
        (
            &[b"HGETALL", b"h:3"],
            Map(vec![(Bulk(b"a"), Bulk(b"1")), (Bulk(b"b"), Bulk(b"2"))]),
        ),
        (&[b"HGETALL", b"h:none"], Map(vec![])),
        (
            &[b"HMGET", b"h:3", b"b", b"zz"],
            Array(vec![Bulk(b"2"), Nil]),
        ),
        (&[b"HRANDFIELD", b"h:none"], Nil),
        (&[b"HRANDFIELD", b"h:one"], Bulk(b"f")),
        (&[b"HRANDFIELD", b"h:one", b"1"], Array(vec![Bulk(b"f")])),
        (
            &[b"HRANDFIELD", b"h:one", b"5", b"WITHVALUES"],
            Array(vec![Array(vec![Bulk(b"f"), Bulk(b"v")])]),
        ),
        (
            &[b"HRANDFIELD", b"h:one", b"-2", b"WITHVALUES"],
            Array(vec![
                Array(vec![Bulk(b"f"), Bulk(b"v")]),
                Array(vec![Bulk(b"f"), Bulk(b"v")]),
            ]),
        ),
        (
            &[b"HRANDFIELD", b"h:none", b"2", b"WITHVALUES"],
            Array(vec![]),
        ),
        (
            &[b"HSCAN", b"h:3", b"0"],
            Array(vec![
                Bulk(b"0"),
                Array(vec![Bulk(b"a"), Bulk(b"1"), Bulk(b"b"), Bulk(b"2")]),
            ]),
        ),
        (&[b"HINCRBYFLOAT", b"h:3", b"a", b"0.5"], Bulk(b"1.5")),
        (&[b"HELLO", b"2"], ArrayOf(14)),
        (
            &[b"CONFIG", b"GET", b"databases"],
            Array(vec![Bulk(b"databases"), Bulk(b"1")]),
        ),
        (&[b"QUIT"], OK),
    ];
    strings_and_keys
        .into_iter()
        .chain(hash_rows())
        .chain(rest)
        .collect()
}

/// Hashes, in RESP2 (spliced into `table()` before its RESP3 part). Redis keeps a small
/// hash's fields in insertion order, so HGETALL, HKEYS, HVALS and HSCAN are compared in order.
fn hash_rows() -> Vec<Row> {
    use E::*;
    const WRONGTYPE: E =
        E::Error("WRONGTYPE Operation against a key holding the wrong kind of value");
    vec![
        // HSET answers how many fields are new; an overwritten field keeps its place.
        (&[b"HSET", b"h:1", b"a", b"1"], Int(1)),
        (&[b"HSET", b"h:1", b"b", b"2", b"c", b"3"], Int(2)),
        (&[b"HSET", b"h:1", b"a", b"9", b"d", b"4"], Int(1)),
        (&[b"HSET", b"h:1", b"b", b"2"], Int(0)),
        (&[b"HMSET", b"h:1", b"e", b"5", b"a", b"10"], OK),
        (&[b"TYPE", b"h:1"], Simple("hash")),
        (&[b"HLEN", b"h:1"], Int(5)),
        (
            &[b"HGETALL", b"h:1"],
            Array(vec![
                Bulk(b"a"),
                Bulk(b"10"),
                Bulk(b"b"),
                Bulk(b"2"),
                Bulk(b"c"),
                Bulk(b"3"),
                Bulk(b"d"),
                Bulk(b"4"),
                Bulk(b"e"),
                Bulk(b"5"),
            ]),
        ),
        (
            &[b"HKEYS", b"h:1"],
            Array(vec![
                Bulk(b"a"),
                Bulk(b"b"),
                Bulk(b"c"),
                Bulk(b"d"),
                Bulk(b"e"),
            ]),
        ),
        (
            &[b"HVALS", b"h:1"],
            Array(vec![
                Bulk(b"10"),
                Bulk(b"2"),
                Bulk(b"3"),
                Bulk(b"4"),
                Bulk(b"5"),
            ]),
        ),
        // Reads of fields, present or not, and of a missing key.
        (&[b"HGET", b"h:1", b"a"], Bulk(b"10")),
        (&[b"HGET", b"h:1", b"zz"], Nil),
        (&[b"HGET", b"h:none", b"a"], Nil),
        (
            &[b"HMGET", b"h:1", b"a", b"zz", b"e"],
            Array(vec![Bulk(b"10"), Nil, Bulk(b"5")]),
        ),
        (&[b"HMGET", b"h:none", b"a", b"b"], Array(vec![Nil, Nil])),
        (&[b"HEXISTS", b"h:1", b"c"], Int(1)),
        (&[b"HEXISTS", b"h:1", b"zz"], Int(0)),
        (&[b"HEXISTS", b"h:none", b"c"], Int(0)),
        (&[b"HSTRLEN", b"h:1", b"a"], Int(2)),
        (&[b"HSTRLEN", b"h:1", b"zz"], Int(0)),
        (&[b"HSTRLEN", b"h:none", b"a"], Int(0)),
        (&[b"HLEN", b"h:none"], Int(0)),
        (&[b"HGETALL", b"h:none"], Array(vec![])),
        (&[b"HKEYS", b"h:none"], Array(vec![])),
        (&[b"HVALS", b"h:none"], Array(vec![])),
        (&[b"TYPE", b"h:none"], Simple("none")),
        // HSETNX sets only a new field (creating the key if need be).
        (&[b"HSETNX", b"h:1", b"f", b"6"], Int(1)),
        (&[b"HSETNX", b"h:1", b"f", b"7"], Int(0)),
        (&[b"HGET", b"h:1", b"f"], Bulk(b"6")),
        (&[b"HSETNX", b"h:nx", b"f", b"1"], Int(1)),
        (&[b"TYPE", b"h:nx"], Simple("hash")),
        // HDEL counts the fields it removed; a field set again goes last; removing the last
        // field removes the key.
        (&[b"HDEL", b"h:1", b"b", b"zz", b"b"], Int(1)),
        (&[b"HDEL", b"h:none", b"a"], Int(0)),
        (&[b"HSET", b"h:1", b"b", b"20"], Int(1)),
        (
            &[b"HKEYS", b"h:1"],
            Array(vec![
                Bulk(b"a"),
                Bulk(b"c"),
                Bulk(b"d"),
                Bulk(b"e"),
                Bulk(b"f"),
                Bulk(b"b"),
            ]),
        ),
        (&[b"HDEL", b"h:1", b"a", b"c", b"d", b"e", b"f"], Int(5)),
        (&[b"EXISTS", b"h:1"], Int(1)),
        (&[b"HGETALL", b"h:1"], Array(vec![Bulk(b"b"), Bulk(b"20")])),
        (&[b"HDEL", b"h:1", b"b"], Int(1)),
        (&[b"EXISTS", b"h:1"], Int(0)),
        (&[b"TYPE", b"h:1"], Simple("none")),
        (&[b"HGETALL", b"h:1"], Array(vec![])),
        (&[b"HDEL", b"h:1", b"b"], Int(0)),
        // HINCRBY and HINCRBYFLOAT.
        (&[b"HINCRBY", b"h:n", b"i", b"5"], Int(5)),
        (&[b"HINCRBY", b"h:n", b"i", b"-7"], Int(-2)),
        (&[b"HGET", b"h:n", b"i"], Bulk(b"-2")),
        (
            &[b"HINCRBY", b"h:n", b"i", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"HINCRBY", b"h:n", b"i", b"1.5"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[
                b"HSET",
                b"h:n",
                b"s",
                b"abc",
                b"max",
                b"9223372036854775807",
                b"fl",
                b"10.5",
            ],
            Int(3),
        ),
        (
            &[b"HINCRBY", b"h:n", b"s", b"1"],
            Error("ERR hash value is not an integer"),
        ),
        (
            &[b"HINCRBY", b"h:n", b"fl", b"1"],
            Error("ERR hash value is not an integer"),
        ),
        (
            &[b"HINCRBY", b"h:n", b"max", b"1"],
            Error("ERR increment or decrement would overflow"),
        ),
        (
            &[b"HINCRBY", b"h:n", b"max", b"-1"],
            Int(9_223_372_036_854_775_806),
        ),
        (
            &[b"HINCRBY", b"h:n", b"min", b"-9223372036854775808"],
            Int(i64::MIN),
        ),
        (
            &[b"HINCRBY", b"h:n", b"min", b"-1"],
            Error("ERR increment or decrement would overflow"),
        ),
        (&[b"HINCRBYFLOAT", b"h:n", b"fl", b"0.1"], Bulk(b"10.6")),
        (&[b"HINCRBYFLOAT", b"h:n", b"fl", b"-0.6"], Bulk(b"10")),
        (&[b"HINCRBY", b"h:n", b"fl", b"1"], Int(11)),
        (&[b"HINCRBYFLOAT", b"h:n", b"i", b"1.5"], Bulk(b"-0.5")),
        (&[b"HINCRBYFLOAT", b"h:n", b"g", b"5.0e3"], Bulk(b"5000")),
        (
            &[b"HINCRBYFLOAT", b"h:n", b"s", b"1"],
            Error("ERR hash value is not a float"),
        ),
        (
            &[b"HINCRBYFLOAT", b"h:n", b"fl", b"abc"],
            Error("ERR value is not a valid float"),
        ),
        // Not INCRBYFLOAT's "increment would produce NaN or Infinity".
        (
            &[b"HINCRBYFLOAT", b"h:n", b"fl", b"inf"],
            Error("ERR value is NaN or Infinity"),
        ),
        (&[b"HGET", b"h:n", b"fl"], Bulk(b"11")),
        // HSCAN of a small hash: everything in one call, cursor 0.
        (
            &[b"HSET", b"h:s", b"a1", b"1", b"b1", b"2", b"a2", b"3"],
            Int(3),
        ),
        (
            &[b"HSCAN", b"h:s", b"0"],
            Array(vec![
                Bulk(b"0"),
                Array(vec![
                    Bulk(b"a1"),
                    Bulk(b"1"),
                    Bulk(b"b1"),
                    Bulk(b"2"),
                    Bulk(b"a2"),
                    Bulk(b"3"),
                ]),
            ]),
        ),
        (
            &[b"HSCAN", b"h:s", b"0", b"MATCH", b"a*"],
            Array(vec![
                Bulk(b"0"),
                Array(vec![Bulk(b"a1"), Bulk(b"1"), Bulk(b"a2"), Bulk(b"3")]),
            ]),
        ),
        (
            &[b"HSCAN", b"h:s", b"0", b"MATCH", b"zz*", b"COUNT", b"10"],
            Array(vec![Bulk(b"0"), Array(vec![])]),
        ),
        (
            &[b"HSCAN", b"h:none", b"0"],
            Array(vec![Bulk(b"0"), Array(vec![])]),
        ),
        (&[b"HSCAN", b"h:s", b"x"], Error("ERR invalid cursor")),
        // HRANDFIELD, in its deterministic forms: a negative count repeats fields.
        (&[b"HRANDFIELD", b"h:none"], Nil),
        (&[b"HRANDFIELD", b"h:none", b"3"], Array(vec![])),
        (&[b"HSET", b"h:one", b"f", b"v"], Int(1)),
        (&[b"HRANDFIELD", b"h:one"], Bulk(b"f")),
        (&[b"HRANDFIELD", b"h:one", b"0"], Array(vec![])),
        (&[b"HRANDFIELD", b"h:one", b"1"], Array(vec![Bulk(b"f")])),
        (&[b"HRANDFIELD", b"h:one", b"5"], Array(vec![Bulk(b"f")])),
        (
            &[b"HRANDFIELD", b"h:one", b"-3"],
            Array(vec![Bulk(b"f"), Bulk(b"f"), Bulk(b"f")]),
        ),
        (
            &[b"HRANDFIELD", b"h:one", b"5", b"WITHVALUES"],
            Array(vec![Bulk(b"f"), Bulk(b"v")]),
        ),
        (
            &[b"HRANDFIELD", b"h:one", b"-2", b"WITHVALUES"],
            Array(vec![Bulk(b"f"), Bulk(b"v"), Bulk(b"f"), Bulk(b"v")]),
        ),
        // WITHVALUES without a count is read as the count.
        (
            &[b"HRANDFIELD", b"h:one", b"WITHVALUES"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"HRANDFIELD", b"h:one", b"x"],
            Error("ERR value is not an integer or out of range"),
        ),
        (
            &[b"HRANDFIELD", b"h:one", b"1", b"foo"],
            Error("ERR syntax error"),
        ),
        // A hash is not a string, nor a string a hash; neither is changed by the refusal.
        (&[b"SET", b"h:str", b"v"], OK),
        (&[b"GET", b"h:one"], WRONGTYPE),
        (&[b"APPEND", b"h:one", b"x"], WRONGTYPE),
        (&[b"INCR", b"h:one"], WRONGTYPE),
        (&[b"STRLEN", b"h:one"], WRONGTYPE),
        (&[b"GETRANGE", b"h:one", b"0", b"-1"], WRONGTYPE),
        (&[b"GETDEL", b"h:one"], WRONGTYPE),
        (&[b"GETEX", b"h:one", b"EX", b"100"], WRONGTYPE),
        (&[b"GETEX", b"h:one"], WRONGTYPE),
        (&[b"TTL", b"h:one"], Int(-1)),
        // SCAN's TYPE tells hashes from strings.
        (
            &[
                b"SCAN",
                b"0",
                b"MATCH",
                b"h:[os][nt]*",
                b"COUNT",
                b"1000",
                b"TYPE",
                b"hash",
            ],
            Array(vec![Bulk(b"0"), Array(vec![Bulk(b"h:one")])]),
        ),
        (
            &[
                b"SCAN",
                b"0",
                b"MATCH",
                b"h:[os][nt]*",
                b"COUNT",
                b"1000",
                b"TYPE",
                b"string",
            ],
            Array(vec![Bulk(b"0"), Array(vec![Bulk(b"h:str")])]),
        ),
        (&[b"HGET", b"h:str", b"f"], WRONGTYPE),
        (&[b"HSET", b"h:str", b"f", b"v"], WRONGTYPE),
        (&[b"HLEN", b"h:str"], WRONGTYPE),
        (&[b"HGETALL", b"h:str"], WRONGTYPE),
        (&[b"HINCRBY", b"h:str", b"f", b"1"], WRONGTYPE),
        (&[b"HRANDFIELD", b"h:str"], WRONGTYPE),
        // HSCAN reads the key before its options.
        (&[b"HSCAN", b"h:str", b"0", b"COUNT", b"0"], WRONGTYPE),
        (
            &[b"HSCAN", b"h:none", b"0", b"COUNT", b"0"],
            Array(vec![Bulk(b"0"), Array(vec![])]),
        ),
        (
            &[b"HSCAN", b"h:one", b"0", b"COUNT", b"0"],
            Error("ERR syntax error"),
        ),
        (
            &[b"HSCAN", b"h:one", b"-1", b"MATCH", b"zz"],
            Array(vec![Bulk(b"0"), Array(vec![])]),
        ),
        (&[b"HGETALL", b"h:one"], Array(vec![Bulk(b"f"), Bulk(b"v")])),
        (&[b"GET", b"h:str"], Bulk(b"v")),
        (
            &[b"MGET", b"h:str", b"h:one", b"h:none"],
            Array(vec![Bulk(b"v"), Nil, Nil]),
        ),
        (&[b"EXISTS", b"h:one", b"h:str", b"h:none"], Int(2)),
        // SET replaces a hash, DEL removes one, EXPIRE and RENAME work on one.
        (&[b"HSET", b"h:t", b"f", b"v"], Int(1)),
        (&[b"SET", b"h:t", b"x"], OK),
        (&[b"TYPE", b"h:t"], Simple("string")),
        (&[b"GET", b"h:t"], Bulk(b"x")),
        (&[b"HSET", b"h:d", b"f", b"v"], Int(1)),
        (&[b"DEL", b"h:d"], Int(1)),
        (&[b"EXISTS", b"h:d"], Int(0)),
        (&[b"HSET", b"h:ex", b"f", b"v"], Int(1)),
        (&[b"EXPIRE", b"h:ex", b"100"], Int(1)),
        (&[b"TTL", b"h:ex"], IntIn(99, 100)),
        (&[b"HSET", b"h:ex", b"g", b"w"], Int(1)),
        (&[b"TTL", b"h:ex"], IntIn(99, 100)),
        (&[b"HSET", b"{h}r1", b"f", b"v"], Int(1)),
        (&[b"RENAME", b"{h}r1", b"{h}r2"], OK),
        (&[b"EXISTS", b"{h}r1"], Int(0)),
        (&[b"TYPE", b"{h}r2"], Simple("hash")),
        (&[b"HGET", b"{h}r2", b"f"], Bulk(b"v")),
        // Arity and syntax.
        (
            &[b"HSET", b"h:x", b"a"],
            Error("ERR wrong number of arguments for 'hset' command"),
        ),
        (
            &[b"HSET", b"h:x", b"a", b"1", b"b"],
            Error("ERR wrong number of arguments for 'hset' command"),
        ),
        (
            &[b"HMSET", b"h:x", b"a"],
            Error("ERR wrong number of arguments for 'hmset' command"),
        ),
        (
            &[b"HMSET", b"h:x", b"a", b"1", b"b"],
            Error("ERR wrong number of arguments for 'hmset' command"),
        ),
        (
            &[b"HGET", b"h:x"],
            Error("ERR wrong number of arguments for 'hget' command"),
        ),
        (
            &[b"HDEL", b"h:x"],
            Error("ERR wrong number of arguments for 'hdel' command"),
        ),
        (&[b"EXISTS", b"h:x"], Int(0)),
        // Hashes in a transaction, over keys of one slot.
        (&[b"MULTI"], OK),
        (&[b"HSET", b"{h}a", b"f", b"1"], Simple("QUEUED")),
        (&[b"HINCRBY", b"{h}a", b"f", b"2"], Simple("QUEUED")),
        (&[b"HGET", b"{h}a", b"f"], Simple("QUEUED")),
        (&[b"GET", b"{h}a"], Simple("QUEUED")),
        (&[b"HGETALL", b"{h}a"], Simple("QUEUED")),
        (
            &[b"EXEC"],
            Array(vec![
                Int(1),
                Int(3),
                Bulk(b"3"),
                WRONGTYPE,
                Array(vec![Bulk(b"f"), Bulk(b"3")]),
            ]),
        ),
    ]
}

fn matches(e: &E, f: &Frame) -> bool {
    match (e, f) {
        (E::Simple(s), Frame::SimpleString { data, .. }) => data == s.as_bytes(),
        (E::Error(s), Frame::SimpleError { data, .. }) => data == s,
        (E::Int(i), Frame::Number { data, .. }) => data == i,
        (E::IntIn(lo, hi), Frame::Number { data, .. }) => (lo..=hi).contains(&data),
        (E::AnyInt, Frame::Number { .. }) => true,
        (E::Bulk(b), Frame::BlobString { data, .. }) => data == b,
        (E::Nil, Frame::Null) => true,
        (E::Array(es), Frame::Array { data, .. }) => {
            es.len() == data.len() && es.iter().zip(data).all(|(e, f)| matches(e, f))
        }
        (E::ArrayOf(n), Frame::Array { data, .. }) => data.len() == *n,
        (E::Unordered(es), Frame::Array { data, .. }) => {
            es.len() == data.len() && es.iter().all(|e| data.iter().any(|f| matches(e, f)))
        }
        // The decoder does not keep a map's order, so neither is compared.
        (E::Map(pairs), Frame::Map { data, .. }) => {
            pairs.len() == data.len()
                && pairs.iter().all(|(ek, ev)| {
                    data.iter()
                        .any(|(fk, fv)| matches(ek, fk) && matches(ev, fv))
                })
        }
        (E::MapKeys(keys), Frame::Map { data, .. }) => {
            keys.len() == data.len()
                && keys
                    .iter()
                    .all(|k| data.keys().any(|f| matches(&E::Bulk(k.as_bytes()), f)))
        }
        (E::Verbatim(start), Frame::VerbatimString { data, .. }) => {
            data.starts_with(start.as_bytes())
        }
        _ => false,
    }
}

/// Runs the table against `addr`; returns every mismatch, described.
fn run_table(name: &str, addr: SocketAddr) -> Vec<String> {
    let mut conn = Conn::connect(addr);
    let mut failures = Vec::new();
    let mut resp3 = false;
    for (argv, expected) in table() {
        conn.send(argv);
        if argv[0] == b"HELLO" && argv.len() > 1 {
            resp3 = argv[1] == b"3";
        }
        let got = conn.reply(resp3);
        if !matches(&expected, &got) {
            let shown: Vec<_> = argv.iter().map(|a| String::from_utf8_lossy(a)).collect();
            failures.push(format!(
                "{name}: {shown:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    failures
}

/// A `redis-server` on a free loopback port, killed by pid when dropped (panics included).
struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--databases", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install redis-server)");
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let addr = server.addr;
        common::wait_until("redis-server to accept connections", || {
            TcpStream::connect(addr).is_ok()
        })
        .await;
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn kvdb_with_resp() -> (TestCluster, SocketAddr) {
    let test = TestCluster::start_with(1, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");
    (test, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvdb_answers_the_table_as_redis_does() {
    let redis = RedisServer::start().await;
    let (test, kvdb) = kvdb_with_resp().await;

    let redis_addr = redis.addr;
    let on_redis = tokio::task::spawn_blocking(move || run_table("redis", redis_addr))
        .await
        .unwrap();
    let on_kvdb = tokio::task::spawn_blocking(move || run_table("kvdb", kvdb))
        .await
        .unwrap();

    // The expectations are Redis's behaviour first, then KvDB's.
    assert!(
        on_redis.is_empty(),
        "the table is wrong about Redis:\n{}",
        on_redis.join("\n")
    );
    assert!(
        on_kvdb.is_empty(),
        "KvDB differs from Redis:\n{}",
        on_kvdb.join("\n")
    );
    test.stop().await;
}

/// One command of [`large_hash_script`], and how its reply is compared.
struct Step {
    argv: Vec<Vec<u8>>,
    compare: Compare,
}

/// What of a reply both servers must agree on.
#[derive(Clone, Copy)]
enum Compare {
    /// The whole reply.
    Exact,
    /// The items, in any order (a large hash lists in the server's own order).
    Unordered,
    /// The field-value pairs, in any order.
    Pairs,
    /// The type and the number of items (random picks, times).
    Shape,
}

fn step(compare: Compare, argv: &[&str]) -> Step {
    Step {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        compare,
    }
}

/// `HSET key` with fields `f000`.. and values `v0`.., past Redis's 512-field small-hash
/// limit.
fn hset_many(key: &str, n: usize) -> Step {
    let mut argv = vec![b"HSET".to_vec(), key.as_bytes().to_vec()];
    for i in 0..n {
        argv.push(format!("f{i:03}").into_bytes());
        argv.push(format!("v{i}").into_bytes());
    }
    Step {
        argv,
        compare: Compare::Exact,
    }
}

/// Hashes past Redis's small-hash limits, which KvDB keeps in member rows: every hash
/// command, key commands on them, and replacing one by a string and back.
fn large_hash_script() -> Vec<Step> {
    use Compare::*;
    let long = "x".repeat(65);
    vec![
        hset_many("{b}big", 600),
        step(Exact, &["HLEN", "{b}big"]),
        step(Exact, &["TYPE", "{b}big"]),
        step(Exact, &["HGET", "{b}big", "f150"]),
        step(Exact, &["HMGET", "{b}big", "f001", "nope", "f199"]),
        step(Exact, &["HEXISTS", "{b}big", "f010"]),
        step(Exact, &["HEXISTS", "{b}big", "nope"]),
        step(Exact, &["HSTRLEN", "{b}big", "f123"]),
        step(Exact, &["HSET", "{b}big", "f000", "new", "extra", "x"]),
        step(Exact, &["HSETNX", "{b}big", "f001", "y"]),
        step(Exact, &["HSETNX", "{b}big", "newnx", "z"]),
        step(Exact, &["HINCRBY", "{b}big", "ctr", "5"]),
        step(Exact, &["HINCRBY", "{b}big", "ctr", "-7"]),
        step(Exact, &["HINCRBYFLOAT", "{b}big", "fl", "1.5"]),
        step(Exact, &["HINCRBY", "{b}big", "f002", "1"]),
        step(Exact, &["HDEL", "{b}big", "f003", "f004", "nope"]),
        step(Exact, &["HLEN", "{b}big"]),
        step(Pairs, &["HGETALL", "{b}big"]),
        // The same reads inside a transaction, which reads the whole hash.
        step(Exact, &["MULTI"]),
        step(Exact, &["HLEN", "{b}big"]),
        step(Exact, &["HGET", "{b}big", "f150"]),
        step(Exact, &["HEXISTS", "{b}big", "f003"]),
        step(Exact, &["EXEC"]),
        step(Unordered, &["HKEYS", "{b}big"]),
        step(Unordered, &["HVALS", "{b}big"]),
        step(Shape, &["HRANDFIELD", "{b}big", "5"]),
        step(Shape, &["HRANDFIELD", "{b}big", "-700", "WITHVALUES"]),
        step(Exact, &["GET", "{b}big"]),
        step(Exact, &["INCR", "{b}big"]),
        step(Exact, &["EXPIRE", "{b}big", "100"]),
        step(Shape, &["TTL", "{b}big"]),
        step(Exact, &["PERSIST", "{b}big"]),
        step(Exact, &["TTL", "{b}big"]),
        step(Exact, &["RENAME", "{b}big", "{b}moved"]),
        step(Exact, &["EXISTS", "{b}big"]),
        step(Exact, &["HLEN", "{b}moved"]),
        step(Exact, &["HGET", "{b}moved", "f000"]),
        // A string over it, then a new, smaller hash: nothing of the old one shows.
        step(Exact, &["SET", "{b}moved", "str"]),
        step(Exact, &["GET", "{b}moved"]),
        step(Exact, &["DEL", "{b}moved"]),
        hset_many("{b}moved", 150),
        step(Exact, &["HLEN", "{b}moved"]),
        step(Exact, &["HGET", "{b}moved", "f199"]),
        step(Exact, &["DEL", "{b}moved"]),
        step(Exact, &["HLEN", "{b}moved"]),
        step(Exact, &["EXISTS", "{b}moved"]),
        // One value past 64 bytes moves a small hash too.
        step(Exact, &["HSET", "{b}long", "a", "1", "f", &long]),
        step(Exact, &["HGET", "{b}long", "f"]),
        step(Pairs, &["HGETALL", "{b}long"]),
        step(Exact, &["HDEL", "{b}long", "a", "f"]),
        step(Exact, &["EXISTS", "{b}long"]),
    ]
}

/// A reply as short text: bulk strings as their bytes, errors with `-`, arrays in brackets.
fn text(frame: &Frame) -> String {
    match frame {
        Frame::BlobString { data, .. } => String::from_utf8_lossy(data).into_owned(),
        Frame::SimpleString { data, .. } => format!("+{}", String::from_utf8_lossy(data)),
        Frame::SimpleError { data, .. } => format!("-{data}"),
        Frame::Number { data, .. } => format!(":{data}"),
        Frame::Null => "nil".into(),
        Frame::Array { data, .. } => {
            format!("[{}]", data.iter().map(text).collect::<Vec<_>>().join(" "))
        }
        other => format!("{other:?}"),
    }
}

/// What of `reply` [`Compare`] keeps, as text.
fn compared(compare: Compare, reply: &Frame) -> String {
    let items = |frame: &Frame| match frame {
        Frame::Array { data, .. } => data.iter().map(text).collect(),
        other => vec![text(other)],
    };
    match compare {
        Compare::Exact => text(reply),
        Compare::Unordered => {
            let mut items = items(reply);
            items.sort();
            items.join(" ")
        }
        Compare::Pairs => {
            let items = items(reply);
            let mut pairs: Vec<String> = items.chunks(2).map(|p| p.join("=")).collect();
            pairs.sort();
            pairs.join(" ")
        }
        Compare::Shape => match reply {
            Frame::Array { data, .. } => format!("array of {}", data.len()),
            Frame::Number { .. } => "a number".into(),
            other => text(other),
        },
    }
}

/// Runs `script` against `addr`: each command and what of its reply is compared.
fn run_script(addr: SocketAddr, script: &[Step]) -> Vec<(String, String)> {
    let mut conn = Conn::connect(addr);
    script
        .iter()
        .map(|step| {
            let argv: Vec<&[u8]> = step.argv.iter().map(Vec::as_slice).collect();
            conn.send(&argv);
            let shown: Vec<_> = argv
                .iter()
                .take(6)
                .map(|a| String::from_utf8_lossy(a))
                .collect();
            (shown.join(" "), compared(step.compare, &conn.reply(false)))
        })
        .collect()
}

/// Creates a hash of 600 fields, then lists it with `HSCAN key cursor` and `options` until
/// the cursor is 0: how many calls that took, and the pairs listed, sorted.
fn hscan_all(addr: SocketAddr, options: &[&str]) -> (usize, Vec<String>) {
    let mut conn = Conn::connect(addr);
    let create = hset_many("{s}scanned", 600);
    let argv: Vec<&[u8]> = create.argv.iter().map(Vec::as_slice).collect();
    conn.send(&argv);
    conn.reply(false);
    let (mut cursor, mut calls, mut pairs) = (b"0".to_vec(), 0, Vec::new());
    loop {
        let mut argv: Vec<&[u8]> = vec![b"HSCAN", b"{s}scanned", &cursor];
        argv.extend(options.iter().map(|o| o.as_bytes()));
        conn.send(&argv);
        calls += 1;
        let Frame::Array { data, .. } = conn.reply(false) else {
            panic!("HSCAN answers an array");
        };
        let [
            Frame::BlobString { data: next, .. },
            Frame::Array { data: page, .. },
        ] = &data[..]
        else {
            panic!("HSCAN answers a cursor and a page: {data:?}");
        };
        pairs.extend(
            page.chunks(2)
                .map(|p| format!("{}={}", text(&p[0]), text(&p[1]))),
        );
        if next == b"0" {
            break;
        }
        cursor = next.clone();
        assert!(calls < 1000, "HSCAN never ends");
    }
    pairs.sort();
    (calls, pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_hashes_answer_as_redis_does() {
    let redis = RedisServer::start().await;
    let (test, kvdb) = kvdb_with_resp().await;
    let redis_addr = redis.addr;
    let on_redis =
        tokio::task::spawn_blocking(move || run_script(redis_addr, &large_hash_script()))
            .await
            .unwrap();
    let on_kvdb = tokio::task::spawn_blocking(move || run_script(kvdb, &large_hash_script()))
        .await
        .unwrap();
    let differences: Vec<String> = on_redis
        .iter()
        .zip(&on_kvdb)
        .filter(|(redis, kvdb)| redis.1 != kvdb.1)
        .map(|(redis, kvdb)| {
            let short = |t: &str| t.chars().take(160).collect::<String>();
            format!(
                "{}: redis {}, kvdb {}",
                redis.0,
                short(&redis.1),
                short(&kvdb.1)
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "KvDB differs from Redis:\n{}",
        differences.join("\n")
    );
    // HSCAN pages through a large hash: every field once, whatever the page size.
    for options in [&["COUNT", "10"][..], &["COUNT", "7", "MATCH", "f1*"], &[]] {
        let (redis_calls, on_redis) =
            tokio::task::spawn_blocking(move || hscan_all(redis_addr, options))
                .await
                .unwrap();
        let (kvdb_calls, on_kvdb) = tokio::task::spawn_blocking(move || hscan_all(kvdb, options))
            .await
            .unwrap();
        assert_eq!(on_kvdb, on_redis, "HSCAN {options:?}");
        assert!(on_redis.len() >= 10, "{options:?}: {on_redis:?}");
        // Both servers answer a large hash in pages.
        assert!(
            kvdb_calls > 5 && redis_calls > 5,
            "{kvdb_calls} and {redis_calls} calls"
        );
    }
    // The script exercised errors and missing keys, not only successes.
    let errors = on_redis.iter().filter(|(_, r)| r.starts_with('-')).count();
    assert!(errors >= 3, "{on_redis:?}");
    test.stop().await;
}

/// Runs a program to completion off the runtime's threads.
async fn run(program: &'static str, args: Vec<String>, stdin: &'static str) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} on the PATH: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_and_redis_benchmark_work_against_the_gateway() {
    let (test, addr) = kvdb_with_resp().await;
    let port = addr.port().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-p".to_owned(), port.clone()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    };

    // --- one command per invocation
    let (ok, out) = run("redis-cli", cli(&["SET", "greeting", "hello"]), "").await;
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = run("redis-cli", cli(&["GET", "greeting"]), "").await;
    assert!(ok && out.trim() == "hello", "{out}");

    // --- a pipeline of commands on stdin
    let (ok, out) = run(
        "redis-cli",
        cli(&[]),
        "SET p1 one\nGET p1\nEXISTS p1 p1\nDEL p1\nGET p1\n",
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(ok, "{out}");
    assert_eq!(lines, ["OK", "one", "2", "1", ""], "{out}");

    // --- redis-benchmark, one request at a time and pipelined
    for pipeline in ["1", "16"] {
        let args = cli(&[
            "-t",
            "set,get,incr,mset,hset",
            "-n",
            "1000",
            "-P",
            pipeline,
            "-q",
        ]);
        let (ok, out) = run("redis-benchmark", args, "").await;
        assert!(ok, "-P {pipeline}: {out}");
        for test in ["SET: ", "GET: ", "INCR: ", "MSET (10 keys): ", "HSET: "] {
            assert!(out.contains(test), "-P {pipeline}: no {test:?} in {out}");
        }
        assert!(
            !out.contains("ERR") && !out.contains("WARNING"),
            "-P {pipeline}: {out}"
        );
    }

    test.stop().await;
}

/// With tokens on, a RESP connection does nothing before AUTH, a wrong token is refused, and
/// each token gets its role: a read token reads and may not write, a read-write one writes
/// (also when given to HELLO ... AUTH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_gate_the_redis_port() {
    let test = TestCluster::start_with(1, |config| {
        config.resp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.auth = kvdb::core::auth::AuthConfig {
            cluster_token: Some("cluster-secret-1".to_owned()),
            client_tokens: vec!["read=reader-1".to_owned(), "read-write=writer-1".to_owned()],
            tls: None,
        };
    })
    .await;
    let addr = test.cluster.resp_address().expect("a RESP listener");
    let seen = tokio::task::spawn_blocking(move || {
        let mut reader = Conn::connect(addr);
        let said = |conn: &mut Conn, argv: &[&[u8]]| {
            conn.send(argv);
            match conn.reply(false) {
                Frame::SimpleError { data, .. } => data.to_string(),
                Frame::SimpleString { data, .. } => String::from_utf8_lossy(&data).into_owned(),
                Frame::BlobString { data, .. } => String::from_utf8_lossy(&data).into_owned(),
                Frame::Null => "(nil)".to_owned(),
                other => format!("{other:?}"),
            }
        };
        let mut seen = vec![
            said(&mut reader, &[b"GET", b"k"]),
            said(&mut reader, &[b"AUTH", b"not-a-token"]),
            said(&mut reader, &[b"AUTH", b"reader-1"]),
            said(&mut reader, &[b"GET", b"k"]),
            said(&mut reader, &[b"SET", b"k", b"v"]),
        ];
        let mut writer = Conn::connect(addr);
        writer.send(&[b"HELLO", b"2", b"AUTH", b"default", b"writer-1"]);
        let _hello = writer.reply(false);
        seen.push(said(&mut writer, &[b"SET", b"k", b"v"]));
        seen.push(said(&mut reader, &[b"GET", b"k"]));
        seen
    })
    .await
    .unwrap();
    let starts = ["NOAUTH ", "WRONGPASS ", "OK", "(nil)", "NOPERM ", "OK", "v"];
    assert_eq!(seen.len(), starts.len(), "{seen:?}");
    for (got, start) in seen.iter().zip(starts) {
        assert!(
            got.starts_with(start),
            "expected {start:?}..., got {got:?} in {seen:?}"
        );
    }
}
