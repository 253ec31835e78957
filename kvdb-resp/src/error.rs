//! Errors as Redis words them: command errors, protocol errors, and the one mapping from
//! [`KvError`] to a Redis error reply.
//!
//! Clients match on an error's first word (`ERR`, `NOAUTH`, `TRYAGAIN`...) and some on the
//! whole text, so every text here is Redis 7.0's, byte for byte, except where KvDB has a reason
//! Redis lacks (an option KvDB cannot honour yet, a cluster without a leader).

use kvdb_core::error::KvError;

use crate::reply::Reply;

/// A command the server refuses before or instead of running it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No such command.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (at most 128 bytes).
        name: String,
        /// The first arguments, each quoted and followed by a space, as Redis lists them.
        args: String,
    },
    /// No such subcommand of a container command (`CLIENT`, `CONFIG`, `COMMAND`).
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The subcommand as sent.
        sub: String,
        /// The container command, upper case.
        command: &'static str,
    },
    /// The argument count does not fit the command.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Options that do not parse, or do not go together.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that should be a 64-bit integer is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An expiry that is not positive, or overflows.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// An argument or stored value that should be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// `INCRBY`/`DECRBY` past the 64-bit range.
    #[error("ERR increment or decrement would overflow")]
    IncrementOverflow,
    /// `DECRBY` of the smallest 64-bit integer, whose negation does not exist.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// `INCRBYFLOAT` to a NaN or an infinity.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// `HINCRBYFLOAT` by an infinity.
    #[error("ERR value is NaN or Infinity")]
    NanOrInfinityValue,
    /// `HINCRBY` of a field whose value is not a 64-bit integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// `HINCRBYFLOAT` of a field whose value is not a float.
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// A hash write that would store a value longer than the node's value size limit.
    #[error("ERR hash exceeds the node's value size limit")]
    HashTooLarge,
    /// A command on a key holding another type of value.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A count past the range a command allows.
    #[error("ERR value is out of range")]
    ValueOutOfRange,
    /// `HRANDFIELD` with the smallest 64-bit count, whose magnitude does not exist.
    #[error(
        "ERR value is out of range, value must between -9223372036854775807 and \
         9223372036854775807"
    )]
    CountOutOfRange,
    /// `HRANDFIELD` with a negative count past KvDB's cap on the reply it builds.
    #[error("ERR HRANDFIELD with a negative count answers at most {0} fields in KvDB")]
    TooManyRepeats(i64),
    /// The shard found a stored value that does not decode: a server defect.
    #[error("ERR internal error: the stored value is corrupt")]
    CorruptValue,
    /// `SETRANGE` with a negative offset.
    #[error("ERR offset is out of range")]
    OffsetOutOfRange,
    /// A string past Redis's 512 MB, or past the node's value limit.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// An `EXPIRE` option Redis does not know.
    #[error("ERR Unsupported option {0}")]
    UnsupportedOption(String),
    /// `EXPIRE` with `NX` and another condition.
    #[error("ERR NX and XX, GT or LT options at the same time are not compatible")]
    NxAndCondition,
    /// `EXPIRE` with both `GT` and `LT`.
    #[error("ERR GT and LT options at the same time are not compatible")]
    GtAndLt,
    /// `SELECT` of a database other than 0: KvDB has one keyspace.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// `HELLO` with a version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// `HELLO` with a version that is not a number.
    #[error("ERR Protocol version is not an integer or out of range")]
    ProtocolVersionNotInteger,
    /// `HELLO` with an option it does not know.
    #[error("ERR Syntax error in HELLO option '{0}'")]
    HelloOption(String),
    /// `CLIENT SETNAME` with a space or a control character.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    BadClientName,
    /// A Redis option KvDB's state machine cannot honour yet; answering it as if it had would
    /// be a wrong result.
    #[error("ERR {option} option of '{command}' is not supported by KvDB yet")]
    Unsupported {
        /// The command, lower case.
        command: &'static str,
        /// The option, upper case.
        option: &'static str,
    },
    /// A command other than `AUTH`, `HELLO` or `QUIT` before authenticating.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// `HELLO 3` without `AUTH` on an unauthenticated connection.
    #[error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
         select the RESP protocol version at the same time"
    )]
    HelloNoAuth,
    /// `AUTH` with a password that is not one of the cluster's client tokens.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// `AUTH` on a server that requires no tokens.
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?"
    )]
    AuthNotConfigured,
    /// A `SCAN` cursor that is not a number this server gave out.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// `FLUSHDB`/`FLUSHALL` on a server that does not allow them.
    #[error(
        "ERR {0} is disabled on this KvDB gateway (start it with --resp-allow-flush to allow it)"
    )]
    FlushDisabled(String),
    /// A cluster command on a server in standalone mode (the gateway).
    #[error("ERR This instance has cluster support disabled")]
    ClusterDisabled,
    /// `RENAME` of an absent key.
    #[error("ERR no such key")]
    NoSuchKey,
    /// `MULTI` inside `MULTI`.
    #[error("ERR MULTI calls can not be nested")]
    NestedMulti,
    /// `EXEC` outside `MULTI`.
    #[error("ERR EXEC without MULTI")]
    ExecWithoutMulti,
    /// `DISCARD` outside `MULTI`.
    #[error("ERR DISCARD without MULTI")]
    DiscardWithoutMulti,
    /// `WATCH` inside `MULTI`.
    #[error("ERR WATCH inside MULTI is not allowed")]
    WatchInsideMulti,
    /// `EXEC` after a command of the transaction was refused when queued.
    #[error("EXECABORT Transaction discarded because of previous errors.")]
    ExecAbort,
    /// A command KvDB cannot run inside `MULTI` yet.
    #[error("ERR '{0}' inside MULTI is not supported by KvDB yet")]
    NotInMulti(&'static str),
    /// A write with a read-only token.
    #[error("NOPERM this user has no permissions to run the '{0}' command")]
    NoPermission(String),
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Reply {
        Reply::Error(e.to_string())
    }
}

/// A request that cannot be framed. The server answers it and closes the connection, as Redis
/// does, because nothing after it can be trusted to start a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A bulk string longer than the limit, or a malformed length.
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// An array longer than the limit, or a malformed length.
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk string over the small limit that applies before `AUTH`.
    #[error("ERR Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// An array over the small limit that applies before `AUTH`.
    #[error("ERR Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// An inline command line without its end in the first 64 KiB.
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    /// An array element that is not a bulk string.
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// More unanswered bytes than an unauthenticated connection may send.
    #[error("ERR Protocol error: unauthenticated request too large")]
    UnauthenticatedBuffer,
    /// Anything else the decoder refused.
    #[error("ERR Protocol error: {0}")]
    Malformed(String),
}

/// The Redis error reply for a failed KvDB request: the one place the two vocabularies meet.
///
/// - Routing trouble, unavailability, no shard map and timeouts are `TRYAGAIN`: Redis Cluster
///   clients retry on it, and so may anyone else, since writes are deduplicated.
/// - Invalid arguments (a key or value over the node's limit) are `ERR`, not retryable.
/// - A token that may not write is `NOPERM`, as Redis ACLs answer.
/// - A node out of disk is `OOM`, Redis's word for refusing writes for want of a resource.
pub fn kv_error_reply(error: &KvError) -> Reply {
    let text = match error {
        KvError::Routing(_) | KvError::Unavailable(_) | KvError::NoShardMap => {
            format!("TRYAGAIN {error}")
        }
        KvError::DeadlineExceeded => {
            "TRYAGAIN deadline exceeded before the cluster answered".into()
        }
        // A refusal already in Redis's words keeps them.
        KvError::InvalidArgument(why) if why == kvdb_core::slot::CROSS_SLOT => why.clone(),
        KvError::InvalidArgument(why) => format!("ERR {why}"),
        KvError::PermissionDenied(why) => format!("NOPERM {why}"),
        KvError::ResourceExhausted(why) => format!("OOM {why}"),
        other => format!("ERR {other}"),
    };
    Reply::Error(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvdb_core::error::RoutingError;

    fn text(reply: Reply) -> String {
        match reply {
            Reply::Error(e) => e,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn retryable_cluster_errors_are_tryagain() {
        let not_leader = KvError::Routing(RoutingError::NotLeader {
            shard: kvdb_core::ShardId(1),
            leader: None,
        });
        for e in [
            not_leader,
            KvError::Unavailable("no leader".into()),
            KvError::NoShardMap,
            KvError::DeadlineExceeded,
        ] {
            assert!(text(kv_error_reply(&e)).starts_with("TRYAGAIN "), "{e:?}");
        }
    }

    #[test]
    fn refusals_keep_their_reason() {
        let big = KvError::InvalidArgument("value of 2000000 bytes exceeds 1048576".into());
        assert_eq!(
            text(kv_error_reply(&big)),
            "ERR value of 2000000 bytes exceeds 1048576"
        );
        let denied = KvError::PermissionDenied("a read token may not write".into());
        assert!(text(kv_error_reply(&denied)).starts_with("NOPERM "));
        let full = KvError::ResourceExhausted("disk".into());
        assert!(text(kv_error_reply(&full)).starts_with("OOM "));
    }

    #[test]
    fn command_errors_read_as_redis_7_0() {
        assert_eq!(
            CommandError::WrongArity("get".into()).to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            CommandError::InvalidExpire("set").to_string(),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            CommandError::UnknownSubcommand {
                sub: "setinfo".into(),
                command: "CLIENT"
            }
            .to_string(),
            "ERR unknown subcommand 'setinfo'. Try CLIENT HELP."
        );
    }
}
