//! The commands KvDB answers, with the arity and key positions Redis gives them: what
//! argument counting, `COMMAND` and `COMMAND COUNT` read.

/// What Redis's command table says about one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Argument count including the name; negative: at least that many.
    pub arity: i64,
    /// Redis's flags (`write`, `readonly`, `fast`, `noauth`, ...).
    pub flags: &'static [&'static str],
    /// Position of the first key (0: none).
    pub first_key: i64,
    /// Position of the last key (-1: the last argument).
    pub last_key: i64,
    /// Step between keys.
    pub step: i64,
}

impl Spec {
    const fn new(
        name: &'static str,
        arity: i64,
        flags: &'static [&'static str],
        keys: (i64, i64, i64),
    ) -> Spec {
        Spec {
            name,
            arity,
            flags,
            first_key: keys.0,
            last_key: keys.1,
            step: keys.2,
        }
    }

    /// Whether `argc` arguments (the name included) fit the arity.
    pub fn arity_fits(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Whether the command changes data (a read-only token may not run it).
    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// The keys among a request's arguments (the name first), by the key positions.
    pub fn keys<'a>(&self, argv: &'a [Vec<u8>]) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let argc = argv.len() as i64;
        let last = if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        let (first, step) = (self.first_key, self.step.max(1));
        // A command without keys has first_key 0: an empty range.
        let last = if first == 0 { 0 } else { last };
        (first.max(1)..=last)
            .step_by(step as usize)
            .filter_map(move |i| argv.get(i as usize).map(Vec::as_slice))
    }

    /// Whether it runs before authentication.
    pub fn is_no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }
}

const NONE: (i64, i64, i64) = (0, 0, 0);
const KEY: (i64, i64, i64) = (1, 1, 1);
const KEYS: (i64, i64, i64) = (1, -1, 1);

/// Every command KvDB knows, in Redis's words.
pub const COMMANDS: &[Spec] = &[
    Spec::new("ping", -1, &["fast", "sentinel"], NONE),
    Spec::new("echo", 2, &["fast"], NONE),
    Spec::new(
        "hello",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "sentinel",
            "allow_busy",
        ],
        NONE,
    ),
    Spec::new(
        "auth",
        -2,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "sentinel",
            "allow_busy",
        ],
        NONE,
    ),
    Spec::new("select", 2, &["loading", "stale", "fast"], NONE),
    Spec::new(
        "quit",
        -1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        NONE,
    ),
    Spec::new("client", -2, &["noscript", "loading", "stale"], NONE),
    Spec::new("command", -1, &["loading", "stale", "sentinel"], NONE),
    Spec::new("info", -1, &["loading", "stale", "sentinel"], NONE),
    Spec::new(
        "config",
        -2,
        &["admin", "noscript", "loading", "stale"],
        NONE,
    ),
    Spec::new("time", 1, &["loading", "stale", "fast"], NONE),
    Spec::new("cluster", -2, &[], NONE),
    Spec::new("readonly", 1, &["loading", "stale", "fast"], NONE),
    Spec::new("readwrite", 1, &["loading", "stale", "fast"], NONE),
    Spec::new("asking", 1, &["fast"], NONE),
    Spec::new("get", 2, &["readonly", "fast"], KEY),
    Spec::new("set", -3, &["write", "denyoom"], KEY),
    Spec::new("setnx", 3, &["write", "denyoom", "fast"], KEY),
    Spec::new("setex", 4, &["write", "denyoom"], KEY),
    Spec::new("psetex", 4, &["write", "denyoom"], KEY),
    Spec::new("mget", -2, &["readonly", "fast"], KEYS),
    Spec::new("mset", -3, &["write", "denyoom"], (1, -1, 2)),
    Spec::new("del", -2, &["write"], KEYS),
    Spec::new("unlink", -2, &["write", "fast"], KEYS),
    Spec::new("exists", -2, &["readonly", "fast"], KEYS),
    Spec::new("ttl", 2, &["readonly", "fast"], KEY),
    Spec::new("pttl", 2, &["readonly", "fast"], KEY),
    Spec::new("type", 2, &["readonly", "fast"], KEY),
    Spec::new("incr", 2, &["write", "denyoom", "fast"], KEY),
    Spec::new("decr", 2, &["write", "denyoom", "fast"], KEY),
    Spec::new("incrby", 3, &["write", "denyoom", "fast"], KEY),
    Spec::new("decrby", 3, &["write", "denyoom", "fast"], KEY),
    Spec::new("incrbyfloat", 3, &["write", "denyoom", "fast"], KEY),
    Spec::new("append", 3, &["write", "denyoom"], KEY),
    Spec::new("setrange", 4, &["write", "denyoom"], KEY),
    Spec::new("getrange", 4, &["readonly"], KEY),
    Spec::new("strlen", 2, &["readonly", "fast"], KEY),
    Spec::new("getset", 3, &["write", "denyoom", "fast"], KEY),
    Spec::new("getdel", 2, &["write", "fast"], KEY),
    Spec::new("getex", -2, &["write", "fast"], KEY),
    Spec::new("expire", -3, &["write", "fast"], KEY),
    Spec::new("pexpire", -3, &["write", "fast"], KEY),
    Spec::new("expireat", -3, &["write", "fast"], KEY),
    Spec::new("pexpireat", -3, &["write", "fast"], KEY),
    Spec::new("persist", 2, &["write", "fast"], KEY),
    Spec::new("expiretime", 2, &["readonly", "fast"], KEY),
    Spec::new("pexpiretime", 2, &["readonly", "fast"], KEY),
    Spec::new("msetnx", -3, &["write", "denyoom"], (1, -1, 2)),
    Spec::new("rename", 3, &["write"], (1, 2, 1)),
    Spec::new("renamenx", 3, &["write", "fast"], (1, 2, 1)),
    Spec::new("multi", 1, TRANSACTION, NONE),
    Spec::new(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NONE,
    ),
    Spec::new("discard", 1, TRANSACTION, NONE),
    Spec::new("watch", -2, TRANSACTION, KEYS),
    Spec::new("unwatch", 1, TRANSACTION, NONE),
    Spec::new("scan", -2, &["readonly"], NONE),
    Spec::new("keys", 2, &["readonly"], NONE),
    Spec::new("dbsize", 1, &["readonly", "fast"], NONE),
    Spec::new("randomkey", 1, &["readonly"], NONE),
    Spec::new("flushdb", -1, &["write"], NONE),
    Spec::new("flushall", -1, &["write"], NONE),
    Spec::new("hset", -4, &["write", "denyoom", "fast"], KEY),
    Spec::new("hsetnx", 4, &["write", "denyoom", "fast"], KEY),
    Spec::new("hmset", -4, &["write", "denyoom", "fast"], KEY),
    Spec::new("hget", 3, &["readonly", "fast"], KEY),
    Spec::new("hmget", -3, &["readonly", "fast"], KEY),
    Spec::new("hgetall", 2, &["readonly"], KEY),
    Spec::new("hdel", -3, &["write", "fast"], KEY),
    Spec::new("hexists", 3, &["readonly", "fast"], KEY),
    Spec::new("hlen", 2, &["readonly", "fast"], KEY),
    Spec::new("hkeys", 2, &["readonly"], KEY),
    Spec::new("hvals", 2, &["readonly"], KEY),
    Spec::new("hstrlen", 3, &["readonly", "fast"], KEY),
    Spec::new("hincrby", 4, &["write", "denyoom", "fast"], KEY),
    Spec::new("hincrbyfloat", 4, &["write", "denyoom", "fast"], KEY),
    Spec::new("hscan", -3, &["readonly"], KEY),
    Spec::new("hrandfield", -2, &["readonly"], KEY),
];

/// The flags of `MULTI`, `DISCARD`, `WATCH` and `UNWATCH`.
const TRANSACTION: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

/// The command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_any_case_and_arity_counts_the_name() {
        let set = lookup(b"SeT").unwrap();
        assert!(!set.arity_fits(2));
        assert!(set.arity_fits(3) && set.arity_fits(9));
        let get = lookup(b"get").unwrap();
        assert!(get.arity_fits(2) && !get.arity_fits(3));
        assert!(lookup(b"lpush").is_none());
    }

    #[test]
    fn keys_are_found_at_their_positions() {
        let argv = |words: &str| -> Vec<Vec<u8>> {
            words.split(' ').map(|w| w.as_bytes().to_vec()).collect()
        };
        let keys = |name: &str, words: &str| -> Vec<String> {
            let argv = argv(words);
            lookup(name.as_bytes())
                .unwrap()
                .keys(&argv)
                .map(|k| String::from_utf8(k.to_vec()).unwrap())
                .collect()
        };
        assert_eq!(keys("get", "get a"), ["a"]);
        assert_eq!(keys("set", "set a 1 ex 10"), ["a"]);
        assert_eq!(keys("mget", "mget a b c"), ["a", "b", "c"]);
        assert_eq!(keys("mset", "mset a 1 b 2"), ["a", "b"]);
        assert_eq!(keys("rename", "rename a b"), ["a", "b"]);
        assert!(keys("ping", "ping").is_empty());
        assert!(keys("scan", "scan 0 match *").is_empty());
    }
}
