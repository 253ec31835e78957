//! A request's arguments parsed into a [`Command`]: a pure function, so every Redis error
//! text and option rule is unit-tested without a server.
//!
//! Argument counts are checked against the command table first (as Redis does, before
//! authentication); [`parse`] then checks options in Redis's order: syntax first, then
//! numbers, then what KvDB cannot do yet.

use kvdb_core::redis_numbers::parse_integer;

use crate::error::CommandError;
use crate::hash::{self, HashRead};
use crate::reply::Protocol;
use crate::table::{self, Spec};
use crate::update;
pub use crate::update::{Time, Update, UpdateOp, When};

/// An argument: binary-safe bytes.
pub type Arg = Vec<u8>;

/// When a `SET` expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// This many milliseconds from now (`EX`, `PX`, `SETEX`, `PSETEX`); always positive.
    In(u64),
    /// At this Unix time in milliseconds (`EXAT`, `PXAT`); always positive.
    At(u64),
}

/// What a `SET`-family command writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// The key.
    pub key: Arg,
    /// The value.
    pub value: Arg,
    /// When it expires; `None`: never.
    pub expiry: Option<Expiry>,
    /// Only if the key is absent (`NX`, `SETNX`).
    pub nx: bool,
    /// Only if the key is present (`XX`).
    pub xx: bool,
    /// Reply the value it replaced (`GET`, `GETSET`).
    pub get: bool,
    /// Keep the key's expiry (`KEEPTTL`).
    pub keepttl: bool,
}

impl Set {
    /// A plain `SET key value`.
    pub fn new(key: Arg, value: Arg) -> Set {
        Set {
            key,
            value,
            expiry: None,
            nx: false,
            xx: false,
            get: false,
            keepttl: false,
        }
    }

    /// Whether it needs the shard to read the key first (`XX`, `GET`, `KEEPTTL`).
    pub fn is_update(&self) -> bool {
        self.xx || self.get || self.keepttl
    }
}

/// The `CLIENT` subcommands KvDB answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// `CLIENT ID`.
    Id,
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT SETNAME name` (empty clears it).
    SetName(String),
}

/// The `COMMAND` subcommands KvDB answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspect {
    /// `COMMAND`: every command's table entry.
    All,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND DOCS [name...]`: an empty map; clients fall back to their own help.
    Docs,
    /// `COMMAND INFO name...`.
    Info(Vec<Arg>),
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Arg>),
    /// `ECHO message`.
    Echo(Arg),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        /// The version to switch to; `None` keeps the current one.
        protocol: Option<Protocol>,
        /// `AUTH user pass`.
        auth: Option<(Arg, Arg)>,
        /// `SETNAME name`.
        name: Option<String>,
    },
    /// `AUTH [user] password`; the user name is not checked (tokens have no users).
    Auth {
        /// The user, when given.
        user: Option<Arg>,
        /// The password: a client token.
        password: Arg,
    },
    /// `SELECT 0`, the only database.
    Select,
    /// `QUIT`.
    Quit,
    /// `CLIENT ...`.
    Client(Client),
    /// `COMMAND ...`.
    Command(Introspect),
    /// `INFO [section...]`, sections lower case.
    Info(Vec<String>),
    /// `CONFIG GET parameter...`, parameters lower case.
    ConfigGet(Vec<String>),
    /// `TIME`.
    Time,
    /// `GET key`.
    Get(Arg),
    /// `SET`, `SETEX`, `PSETEX`: replies `OK` (or null when `NX` fails).
    Set(Set),
    /// `SETNX key value`: replies 1 or 0.
    SetNx(Set),
    /// `MGET key...`.
    MGet(Vec<Arg>),
    /// `MSET key value...`.
    MSet(Vec<(Arg, Arg)>),
    /// `DEL key...` and `UNLINK key...`.
    Del(Vec<Arg>),
    /// `EXISTS key...`.
    Exists(Vec<Arg>),
    /// `TTL key` (`false`) or `PTTL key` (`true`).
    Ttl {
        /// The key.
        key: Arg,
        /// Milliseconds rather than seconds.
        millis: bool,
    },
    /// `TYPE key`.
    Type(Arg),
    /// A read-modify-write command (`INCR`, `APPEND`, `EXPIRE`, `SET ... GET`...).
    Update(Update),
    /// `GETRANGE key start end`.
    GetRange {
        /// The key.
        key: Arg,
        /// First index, negative from the end.
        start: i64,
        /// Last index, inclusive, negative from the end.
        end: i64,
    },
    /// `STRLEN key`.
    StrLen(Arg),
    /// `EXPIRETIME key` (`false`) or `PEXPIRETIME key` (`true`).
    ExpireTime {
        /// The key.
        key: Arg,
        /// Milliseconds rather than seconds.
        millis: bool,
    },
    /// `MSETNX key value...`: all or none, keys of one slot.
    MSetNx(Vec<(Arg, Arg)>),
    /// `RENAME key newkey` and `RENAMENX key newkey`, keys of one slot.
    Rename {
        /// The key renamed.
        from: Arg,
        /// Its new name.
        to: Arg,
        /// Only if `to` is absent (`RENAMENX`).
        nx: bool,
    },
    /// `MULTI`.
    Multi,
    /// `EXEC`.
    Exec,
    /// `DISCARD`.
    Discard,
    /// `WATCH key...`.
    Watch(Vec<Arg>),
    /// `UNWATCH`.
    Unwatch,
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
    Scan(Scan),
    /// `KEYS pattern`.
    Keys(Arg),
    /// `DBSIZE`.
    DbSize,
    /// `RANDOMKEY`.
    RandomKey,
    /// `FLUSHDB` or `FLUSHALL` (`[ASYNC | SYNC]`, both run the same way).
    Flush(&'static str),
    /// `CLUSTER ...`.
    Cluster(Cluster),
    /// `READONLY` (`true`) or `READWRITE` (`false`).
    ReadOnly(bool),
    /// `ASKING`.
    Asking,
    /// A hash read (`HGET`, `HGETALL`, `HSCAN`...); hash writes are updates.
    Hash {
        /// The hash's key.
        key: Arg,
        /// What to answer.
        read: HashRead,
    },
}

/// A `CLUSTER` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// `CLUSTER INFO`.
    Info,
    /// `CLUSTER SLOTS`.
    Slots,
    /// `CLUSTER SHARDS`.
    Shards,
    /// `CLUSTER NODES`.
    Nodes,
    /// `CLUSTER MYID`.
    MyId,
    /// `CLUSTER KEYSLOT key`.
    KeySlot(Arg),
}

/// A `SCAN` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The cursor a previous call answered (0: start).
    pub cursor: u64,
    /// Only keys matching this glob.
    pub pattern: Option<Arg>,
    /// About how many keys to examine.
    pub count: usize,
    /// Only keys of this type (`TYPE`), its name lower case; a name KvDB does not store
    /// matches nothing, as in Redis 7.0.
    pub type_name: Option<String>,
}

/// The table entry for `argv`'s command, with its argument count checked.
pub fn lookup(argv: &[Arg]) -> Result<&'static Spec, CommandError> {
    let name = argv.first().map(Vec::as_slice).unwrap_or_default();
    let spec = table::lookup(name).ok_or_else(|| unknown_command(argv))?;
    if !spec.arity_fits(argv.len()) {
        return Err(CommandError::WrongArity(spec.name.to_owned()));
    }
    Ok(spec)
}

/// Parses a request's arguments (the command name first).
pub fn parse(argv: Vec<Arg>) -> Result<Command, CommandError> {
    let spec = lookup(&argv)?;
    let mut args = argv.into_iter();
    args.next();
    let args: Vec<Arg> = args.collect();
    match spec.name {
        "ping" if args.len() > 1 => Err(CommandError::WrongArity("ping".into())),
        "ping" => Ok(Command::Ping(args.into_iter().next())),
        "echo" => Ok(Command::Echo(first(args))),
        "hello" => parse_hello(args),
        "auth" => {
            let mut args = args.into_iter();
            match (args.next(), args.next(), args.next()) {
                (Some(password), None, None) => Ok(Command::Auth {
                    user: None,
                    password,
                }),
                (Some(user), Some(password), None) => Ok(Command::Auth {
                    user: Some(user),
                    password,
                }),
                _ => Err(CommandError::Syntax),
            }
        }
        "select" => match integer(&args[0])? {
            0 => Ok(Command::Select),
            _ => Err(CommandError::DbIndexOutOfRange),
        },
        "quit" => Ok(Command::Quit),
        "client" => parse_client(args),
        "command" => parse_introspect(args),
        "cluster" => parse_cluster(args),
        "readonly" => Ok(Command::ReadOnly(true)),
        "readwrite" => Ok(Command::ReadOnly(false)),
        "asking" => Ok(Command::Asking),
        "info" => Ok(Command::Info(args.iter().map(|a| lower(a)).collect())),
        "config" => parse_config(args),
        "time" => Ok(Command::Time),
        "get" => Ok(Command::Get(first(args))),
        "set" => parse_set(args).map(|set| match set.is_update() {
            true => Command::Update(Update {
                key: set.key.clone(),
                op: UpdateOp::Set(set),
            }),
            false => Command::Set(set),
        }),
        "setnx" => {
            let [key, value] = pair(args);
            Ok(Command::SetNx(Set {
                nx: true,
                ..Set::new(key, value)
            }))
        }
        "setex" | "psetex" => parse_setex(spec.name, args).map(Command::Set),
        "mget" => Ok(Command::MGet(args)),
        "mset" => parse_pairs("mset", args).map(Command::MSet),
        "del" | "unlink" => Ok(Command::Del(args)),
        "exists" => Ok(Command::Exists(args)),
        "ttl" | "pttl" => Ok(Command::Ttl {
            key: first(args),
            millis: spec.name == "pttl",
        }),
        "type" => Ok(Command::Type(first(args))),
        "incr" | "decr" | "incrby" | "decrby" => {
            update::parse_incr(spec.name, args).map(Command::Update)
        }
        "incrbyfloat" | "append" | "getdel" | "persist" => {
            let [key, arg] = pair(args);
            let op = match spec.name {
                "incrbyfloat" => UpdateOp::IncrByFloat(arg),
                "append" => UpdateOp::Append(arg),
                "getdel" => UpdateOp::GetDel,
                _ => UpdateOp::Persist,
            };
            Ok(Command::Update(Update { key, op }))
        }
        "getset" => {
            let [key, value] = pair(args);
            let set = Set {
                get: true,
                ..Set::new(key.clone(), value)
            };
            Ok(Command::Update(Update {
                key,
                op: UpdateOp::Set(set),
            }))
        }
        "setrange" => update::parse_setrange(args).map(Command::Update),
        "getrange" => {
            let (start, end) = (integer(&args[1])?, integer(&args[2])?);
            Ok(Command::GetRange {
                key: first(args),
                start,
                end,
            })
        }
        "strlen" => Ok(Command::StrLen(first(args))),
        "getex" => match update::parse_getex(args.clone(), now_ms())? {
            Some(update) => Ok(Command::Update(update)),
            None => Ok(Command::Get(first(args))),
        },
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            update::parse_expire(spec.name, args, now_ms()).map(Command::Update)
        }
        "expiretime" | "pexpiretime" => Ok(Command::ExpireTime {
            key: first(args),
            millis: spec.name == "pexpiretime",
        }),
        "msetnx" => parse_pairs("msetnx", args).map(Command::MSetNx),
        "rename" | "renamenx" => {
            let [from, to] = pair(args);
            Ok(Command::Rename {
                from,
                to,
                nx: spec.name == "renamenx",
            })
        }
        "multi" => Ok(Command::Multi),
        "exec" => Ok(Command::Exec),
        "discard" => Ok(Command::Discard),
        "watch" => Ok(Command::Watch(args)),
        "unwatch" => Ok(Command::Unwatch),
        "scan" => parse_scan(args).map(Command::Scan),
        "keys" => Ok(Command::Keys(first(args))),
        "dbsize" => Ok(Command::DbSize),
        "randomkey" => Ok(Command::RandomKey),
        "flushdb" | "flushall" => match args.as_slice() {
            [] => Ok(Command::Flush(spec.name)),
            [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {
                Ok(Command::Flush(spec.name))
            }
            _ => Err(CommandError::Syntax),
        },
        "hset" | "hsetnx" | "hmset" | "hdel" | "hincrby" | "hincrbyfloat" => {
            hash::parse_write(spec.name, args).map(Command::Update)
        }
        "hget" | "hmget" | "hgetall" | "hexists" | "hlen" | "hkeys" | "hvals" | "hstrlen"
        | "hscan" | "hrandfield" => {
            hash::parse_read(spec.name, args).map(|(key, read)| Command::Hash { key, read })
        }
        other => unreachable!("command {other} is in the table but has no parser"),
    }
}

/// The wall clock in Unix milliseconds: Redis checks that a relative expiry does not
/// overflow once added to it, before anything runs.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Redis's unknown-command text: the name and the first arguments, quoted, at most about
/// 128 bytes of them.
fn unknown_command(argv: &[Arg]) -> CommandError {
    let name = argv.first().map(|n| clip(n, 128)).unwrap_or_default();
    let mut args = String::new();
    for arg in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push_str(&format!("'{}' ", clip(arg, room)));
    }
    CommandError::UnknownCommand { name, args }
}

fn clip(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

fn first(args: Vec<Arg>) -> Arg {
    args.into_iter().next().unwrap_or_default()
}

fn pair(args: Vec<Arg>) -> [Arg; 2] {
    let mut args = args.into_iter();
    [
        args.next().unwrap_or_default(),
        args.next().unwrap_or_default(),
    ]
}

/// A 64-bit integer as Redis's `string2ll` reads one: an optional minus, digits, no leading
/// zeros, no plus, no spaces.
pub fn integer(arg: &[u8]) -> Result<i64, CommandError> {
    parse_integer(arg).ok_or(CommandError::NotInteger)
}

/// An expiry argument in `unit_ms` milliseconds, checked as Redis checks it: positive, and
/// not overflowing once in milliseconds.
fn expire_ms(arg: &[u8], unit_ms: i64, command: &'static str) -> Result<u64, CommandError> {
    let n = integer(arg)?;
    if n <= 0 || n > i64::MAX / unit_ms {
        return Err(CommandError::InvalidExpire(command));
    }
    Ok((n * unit_ms) as u64)
}

fn parse_set(args: Vec<Arg>) -> Result<Set, CommandError> {
    #[derive(PartialEq, Clone, Copy)]
    enum Unit {
        Ex,
        Px,
        ExAt,
        PxAt,
    }
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(Unit, &Arg)> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        let unit = match opt.as_slice() {
            b"EX" => Some(Unit::Ex),
            b"PX" => Some(Unit::Px),
            b"EXAT" => Some(Unit::ExAt),
            b"PXAT" => Some(Unit::PxAt),
            _ => None,
        };
        match (opt.as_slice(), unit) {
            (b"NX", _) if !xx => nx = true,
            (b"XX", _) if !nx => xx = true,
            (b"GET", _) => get = true,
            (b"KEEPTTL", _) if expire.is_none() => keepttl = true,
            // The same unit twice is allowed (the last wins); two units are not.
            (_, Some(unit))
                if !keepttl && expire.is_none_or(|(u, _)| u == unit) && next.is_some() =>
            {
                expire = next.map(|n| (unit, n));
                i += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let expiry = match expire {
        None => None,
        Some((Unit::Ex, n)) => Some(Expiry::In(expire_ms(n, 1000, "set")?)),
        Some((Unit::Px, n)) => Some(Expiry::In(expire_ms(n, 1, "set")?)),
        Some((Unit::ExAt, n)) => Some(Expiry::At(expire_ms(n, 1000, "set")?)),
        Some((Unit::PxAt, n)) => Some(Expiry::At(expire_ms(n, 1, "set")?)),
    };
    let [key, value] = pair(args);
    Ok(Set {
        expiry,
        nx,
        xx,
        get,
        keepttl,
        ..Set::new(key, value)
    })
}

fn parse_setex(command: &'static str, args: Vec<Arg>) -> Result<Set, CommandError> {
    let unit_ms = if command == "setex" { 1000 } else { 1 };
    let ms = expire_ms(&args[1], unit_ms, command)?;
    let mut args = args.into_iter();
    let key = args.next().unwrap_or_default();
    let value = args.nth(1).unwrap_or_default();
    Ok(Set {
        expiry: Some(Expiry::In(ms)),
        ..Set::new(key, value)
    })
}

/// `SCAN`'s cursor and options, checked in Redis's order: the cursor, then each option.
fn parse_scan(args: Vec<Arg>) -> Result<Scan, CommandError> {
    let mut args = args.into_iter();
    let cursor = args.next().unwrap_or_default();
    let cursor = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or(CommandError::InvalidCursor)?;
    let mut scan = Scan {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
    };
    while let Some(option) = args.next() {
        let value = args.next().ok_or(CommandError::Syntax)?;
        match lower(&option).as_str() {
            "match" => scan.pattern = Some(value),
            "count" => match integer(&value)? {
                n if n < 1 => return Err(CommandError::Syntax),
                n => scan.count = n as usize,
            },
            "type" => scan.type_name = Some(lower(&value)),
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(scan)
}

/// `MSET`'s and `MSETNX`'s key-value pairs, and `HSET`'s field-value pairs.
pub(crate) fn parse_pairs(name: &str, args: Vec<Arg>) -> Result<Vec<(Arg, Arg)>, CommandError> {
    if !args.len().is_multiple_of(2) {
        return Err(CommandError::WrongArity(name.into()));
    }
    let mut pairs = Vec::with_capacity(args.len() / 2);
    let mut args = args.into_iter();
    while let (Some(key), Some(value)) = (args.next(), args.next()) {
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn parse_hello(args: Vec<Arg>) -> Result<Command, CommandError> {
    let mut args = args.into_iter();
    let protocol = match args.next() {
        None => None,
        Some(v) => match integer(&v).map_err(|_| CommandError::ProtocolVersionNotInteger)? {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => return Err(CommandError::NoProto),
        },
    };
    let (mut auth, mut name) = (None, None);
    let args: Vec<Arg> = args.collect();
    let mut i = 0;
    while i < args.len() {
        let more = args.len() - i - 1;
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if more >= 2 => {
                auth = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 3;
            }
            b"SETNAME" if more >= 1 => {
                name = Some(client_name(&args[i + 1])?);
                i += 2;
            }
            _ => return Err(CommandError::HelloOption(clip(&args[i], 128))),
        }
    }
    Ok(Command::Hello {
        protocol,
        auth,
        name,
    })
}

/// A client name: visible ASCII only, as Redis requires.
fn client_name(arg: &[u8]) -> Result<String, CommandError> {
    if arg.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(String::from_utf8_lossy(arg).into_owned())
    } else {
        Err(CommandError::BadClientName)
    }
}

fn parse_client(args: Vec<Arg>) -> Result<Command, CommandError> {
    let sub = lower(&args[0]);
    let client = match (sub.as_str(), args.len()) {
        ("id", 1) => Client::Id,
        ("getname", 1) => Client::GetName,
        ("setname", 2) => Client::SetName(client_name(&args[1])?),
        ("id" | "getname" | "setname", _) => {
            return Err(CommandError::WrongArity(format!("client|{sub}")));
        }
        _ => return Err(unknown_subcommand(&args[0], "CLIENT")),
    };
    Ok(Command::Client(client))
}

fn parse_cluster(args: Vec<Arg>) -> Result<Command, CommandError> {
    let sub = lower(&args[0]);
    let cluster = match (sub.as_str(), args.len()) {
        ("info", 1) => Cluster::Info,
        ("slots", 1) => Cluster::Slots,
        ("shards", 1) => Cluster::Shards,
        ("nodes", 1) => Cluster::Nodes,
        ("myid", 1) => Cluster::MyId,
        ("keyslot", 2) => Cluster::KeySlot(args[1].clone()),
        ("info" | "slots" | "shards" | "nodes" | "myid" | "keyslot", _) => {
            return Err(CommandError::WrongArity(format!("cluster|{sub}")));
        }
        _ => return Err(unknown_subcommand(&args[0], "CLUSTER")),
    };
    Ok(Command::Cluster(cluster))
}

fn parse_introspect(args: Vec<Arg>) -> Result<Command, CommandError> {
    let Some(sub) = args.first() else {
        return Ok(Command::Command(Introspect::All));
    };
    let introspect = match lower(sub).as_str() {
        "count" if args.len() == 1 => Introspect::Count,
        "docs" => Introspect::Docs,
        "info" => Introspect::Info(args[1..].to_vec()),
        "count" => return Err(CommandError::WrongArity("command|count".into())),
        _ => return Err(unknown_subcommand(sub, "COMMAND")),
    };
    Ok(Command::Command(introspect))
}

fn parse_config(args: Vec<Arg>) -> Result<Command, CommandError> {
    match lower(&args[0]).as_str() {
        "get" if args.len() >= 2 => Ok(Command::ConfigGet(
            args[1..].iter().map(|a| lower(a)).collect(),
        )),
        "get" => Err(CommandError::WrongArity("config|get".into())),
        _ => Err(unknown_subcommand(&args[0], "CONFIG")),
    }
}

fn unknown_subcommand(sub: &[u8], command: &'static str) -> CommandError {
    CommandError::UnknownSubcommand {
        sub: clip(sub, 128),
        command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<Arg> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    fn err(line: &str) -> String {
        parse(argv(line)).unwrap_err().to_string()
    }

    #[test]
    fn unknown_commands_list_their_first_arguments_like_redis() {
        assert_eq!(
            err("foo a b"),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            parse(vec![b"foo".to_vec()]).unwrap_err().to_string(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        let long = format!("foo {}", "x".repeat(300));
        assert!(err(&long).len() < 200);
    }

    #[test]
    fn arity_is_checked_per_command() {
        assert_eq!(
            parse(vec![b"GET".to_vec()]).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err("ping a b"),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(
            err("mset a b c"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(err("auth a b c"), "ERR syntax error");
    }

    #[test]
    fn set_options_follow_redis_rules() {
        let set = |line: &str| match parse(argv(line)) {
            Ok(Command::Set(set)) => set,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(set("set k v").expiry, None);
        assert_eq!(set("set k v EX 2").expiry, Some(Expiry::In(2000)));
        assert_eq!(set("set k v px 5 nx").expiry, Some(Expiry::In(5)));
        assert!(set("set k v nx px 5").nx);
        assert_eq!(set("set k v exat 7").expiry, Some(Expiry::At(7000)));
        assert_eq!(set("set k v ex 1 ex 2").expiry, Some(Expiry::In(2000)));
        assert_eq!(err("set k v ex 1 px 2"), "ERR syntax error");
        assert_eq!(err("set k v nx xx"), "ERR syntax error");
        assert_eq!(err("set k v ex"), "ERR syntax error");
        assert_eq!(err("set k v keepttl ex 1"), "ERR syntax error");
        assert_eq!(err("set k v bogus"), "ERR syntax error");
        assert_eq!(
            err("set k v ex x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err("set k v ex 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("set k v px -1"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("set k v ex 9223372036854776"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err("set k v ex 01"),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn set_with_xx_get_or_keepttl_is_an_update() {
        let update = |line: &str| match parse(argv(line)) {
            Ok(Command::Update(Update {
                op: UpdateOp::Set(set),
                ..
            })) => set,
            other => panic!("{line}: {other:?}"),
        };
        assert!(update("set k v xx").xx);
        assert!(update("set k v nx get").get);
        assert!(update("set k v keepttl").keepttl);
        assert!(update("getset k v").get);
        assert_eq!(
            err("set k v xx ex 0"),
            "ERR invalid expire time in 'set' command"
        );
    }

    #[test]
    fn setex_and_setnx() {
        assert_eq!(
            err("setex k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            err("psetex k -5 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        let Ok(Command::Set(set)) = parse(argv("psetex k 5 v")) else {
            panic!()
        };
        assert_eq!(
            (set.key, set.value, set.expiry),
            (b"k".to_vec(), b"v".to_vec(), Some(Expiry::In(5)))
        );
        assert!(matches!(
            parse(argv("setnx k v")),
            Ok(Command::SetNx(Set { nx: true, .. }))
        ));
    }

    #[test]
    fn connection_commands() {
        assert_eq!(parse(argv("select 0")), Ok(Command::Select));
        assert_eq!(err("select 1"), "ERR DB index is out of range");
        assert_eq!(
            err("select x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err("hello 4"), "NOPROTO unsupported protocol version");
        assert_eq!(
            err("hello x"),
            "ERR Protocol version is not an integer or out of range"
        );
        assert_eq!(err("hello 3 foo"), "ERR Syntax error in HELLO option 'foo'");
        assert_eq!(
            parse(argv("HELLO 3 auth u p setname me")),
            Ok(Command::Hello {
                protocol: Some(Protocol::Resp3),
                auth: Some((b"u".to_vec(), b"p".to_vec())),
                name: Some("me".into()),
            })
        );
        assert_eq!(
            parse(argv("auth user pw")),
            Ok(Command::Auth {
                user: Some(b"user".to_vec()),
                password: b"pw".to_vec()
            })
        );
        assert_eq!(
            err("client setinfo x y"),
            "ERR unknown subcommand 'setinfo'. Try CLIENT HELP."
        );
        assert_eq!(
            parse(vec![
                b"client".to_vec(),
                b"setname".to_vec(),
                b"a b".to_vec()
            ])
            .unwrap_err()
            .to_string(),
            "ERR Client names cannot contain spaces, newlines or special characters."
        );
        assert_eq!(
            parse(argv("command count")),
            Ok(Command::Command(Introspect::Count))
        );
        assert_eq!(
            parse(argv("CONFIG GET Databases")),
            Ok(Command::ConfigGet(vec!["databases".into()]))
        );
    }
}
