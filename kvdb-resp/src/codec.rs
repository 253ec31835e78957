//! Framing requests out of a connection's buffer.
//!
//! Requests arrive as RESP arrays of bulk strings (what every client library and `redis-cli`
//! send), decoded by `redis-protocol`; or as inline commands, a line of words, which is what a
//! person types into `telnet` or `nc`. Before the decoder sees an array, [`check_limits`]
//! reads the length headers that have arrived, so that an oversized array or bulk string is
//! refused at its header instead of being buffered first.
//!
//! Out of scope: quoting in inline commands (words are split on whitespace only).

use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};

use crate::command::Arg;
use crate::error::ProtocolError;

/// Longest inline command line, as in Redis.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// Size limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (a key or value).
    pub max_bulk_len: usize,
    /// Most arguments in one request.
    pub max_array_len: usize,
    /// Whether the connection is authenticated; before that, Redis's far smaller limits apply
    /// (16 KiB bulk strings, 10 arguments).
    pub authenticated: bool,
}

impl Limits {
    /// Largest bulk string before authentication, as in Redis.
    pub const UNAUTHENTICATED_BULK: usize = 16 * 1024;
    /// Most arguments before authentication, as in Redis.
    pub const UNAUTHENTICATED_ARRAY: usize = 10;
}

/// The first complete request in `buf` and the bytes it took, `None` while incomplete. An
/// empty argument list stands for a request to skip (an empty line, `*0`).
pub fn next_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Vec<Arg>, usize)>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => next_array(buf, limits),
        Some(_) => next_inline(buf),
    }
}

fn next_array(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<Arg>, usize)>, ProtocolError> {
    check_limits(buf, limits)?;
    let Some((frame, used)) = redis_protocol::resp2::decode::decode(buf)
        .map_err(|e| ProtocolError::Malformed(e.details().to_string()))?
    else {
        return Ok(None);
    };
    let items = match frame {
        OwnedFrame::Array(items) => items,
        OwnedFrame::Null => Vec::new(),
        _ => unreachable!("a frame that starts with '*' is an array"),
    };
    let argv = items
        .into_iter()
        .map(|item| match item {
            OwnedFrame::BulkString(bytes) => Ok(bytes),
            other => Err(ProtocolError::ExpectedBulk(other.kind().to_byte() as char)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((argv, used)))
}

fn next_inline(buf: &[u8]) -> Result<Option<(Vec<Arg>, usize)>, ProtocolError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE_BYTES {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    if end > MAX_INLINE_BYTES {
        return Err(ProtocolError::TooBigInline);
    }
    let argv = buf[..end]
        .split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Some((argv, end + 1)))
}

/// Checks the array header and every bulk-string header that has arrived against `limits`.
/// Only lengths are read here; the frame itself is decoded by `redis-protocol`.
pub fn check_limits(buf: &[u8], limits: &Limits) -> Result<(), ProtocolError> {
    let (max_array, max_bulk) = if limits.authenticated {
        (limits.max_array_len, limits.max_bulk_len)
    } else {
        (
            Limits::UNAUTHENTICATED_ARRAY.min(limits.max_array_len),
            Limits::UNAUTHENTICATED_BULK.min(limits.max_bulk_len),
        )
    };
    let Some((count, mut at)) = header(buf, 0) else {
        return Ok(());
    };
    let count = match count {
        Header::Len(n) if n <= max_array as i64 => n,
        Header::Len(n) if n < 0 => return Ok(()),
        Header::Len(_) if !limits.authenticated => {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    for _ in 0..count {
        let Some(&kind) = buf.get(at) else {
            return Ok(());
        };
        if kind != b'$' {
            // Not a bulk string: the decoder, or the check of the decoded frame, refuses it.
            return Ok(());
        }
        let Some((len, next)) = header(buf, at) else {
            return Ok(());
        };
        let len = match len {
            Header::Len(n) if (0..=max_bulk as i64).contains(&n) => n as usize,
            Header::Len(n) if n > 0 && !limits.authenticated => {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        at = next + len + 2;
    }
    Ok(())
}

enum Header {
    Len(i64),
    Malformed,
}

/// The length in the header line at `at` (`*N\r\n` or `$N\r\n`) and where the line ends;
/// `None` until the whole line has arrived.
fn header(buf: &[u8], at: usize) -> Option<(Header, usize)> {
    let line = buf.get(at + 1..)?;
    let end = line.iter().position(|&b| b == b'\r')?;
    line.get(end + 1)?;
    let len = std::str::from_utf8(&line[..end])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(Header::Malformed, Header::Len);
    Some((len, at + 1 + end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Limits = Limits {
        max_bulk_len: 1024,
        max_array_len: 100,
        authenticated: true,
    };

    fn args(words: &[&str]) -> Vec<Arg> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn arrays_decode_one_at_a_time() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let (argv, used) = next_request(buf, &OPEN).unwrap().unwrap();
        assert_eq!(argv, args(&["GET", "k"]));
        let (argv, rest) = next_request(&buf[used..], &OPEN).unwrap().unwrap();
        assert_eq!(argv, args(&["PING"]));
        assert_eq!(used + rest, buf.len());
    }

    #[test]
    fn incomplete_requests_wait_for_more() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for end in 0..buf.len() {
            assert_eq!(next_request(&buf[..end], &OPEN), Ok(None), "{end}");
        }
        assert_eq!(next_request(b"PING", &OPEN), Ok(None));
    }

    #[test]
    fn binary_values_pass_through() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\x00\r\n\xff\r\n";
        let (argv, _) = next_request(buf, &OPEN).unwrap().unwrap();
        assert_eq!(argv[2], b"\x00\r\n\xff".to_vec());
    }

    #[test]
    fn inline_commands_split_on_whitespace() {
        let (argv, used) = next_request(b"set  k v\r\nGET k\n", &OPEN)
            .unwrap()
            .unwrap();
        assert_eq!((argv, used), (args(&["set", "k", "v"]), 10));
        assert_eq!(next_request(b"\r\n", &OPEN), Ok(Some((vec![], 2))));
        let long = vec![b'a'; MAX_INLINE_BYTES + 1];
        assert_eq!(next_request(&long, &OPEN), Err(ProtocolError::TooBigInline));
    }

    #[test]
    fn oversized_headers_are_refused_before_the_body_arrives() {
        assert_eq!(
            next_request(b"*2\r\n$3\r\nSET\r\n$2000\r\n", &OPEN),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            next_request(b"*101\r\n", &OPEN),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            next_request(b"*1\r\n$x\r\n", &OPEN),
            Err(ProtocolError::InvalidBulkLength)
        );
        let guest = Limits {
            authenticated: false,
            ..OPEN
        };
        assert_eq!(
            next_request(b"*11\r\n", &guest),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        let big = Limits {
            max_bulk_len: 1 << 20,
            ..guest
        };
        assert_eq!(
            next_request(b"*1\r\n$20000\r\n", &big),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
    }

    #[test]
    fn array_elements_must_be_bulk_strings() {
        assert_eq!(
            next_request(b"*1\r\n:1\r\n", &OPEN),
            Err(ProtocolError::ExpectedBulk(':'))
        );
    }
}
