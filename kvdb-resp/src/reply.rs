//! Replies as values, encoded for the connection's protocol version.
//!
//! Commands answer with a [`Reply`]; only the connection knows whether its client speaks RESP2
//! or RESP3 (after `HELLO 3`), so the encoding happens there, with `redis-protocol`'s encoders.
//! RESP3 types without a RESP2 form degrade the way Redis degrades them: a map becomes a flat
//! array of keys and values, a double a bulk string, a boolean an integer, null `$-1`.

use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::types::{
    FrameMap, OwnedFrame as Frame3, Resp3Frame, VerbatimStringFormat,
};

/// The protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, what every connection starts with.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` names it by.
    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A short status line, such as `OK`.
    Simple(String),
    /// An error; the text starts with its code (`ERR`, `WRONGPASS`, ...).
    Error(String),
    /// A signed integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Vec<u8>),
    /// No value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// No array: `*-1` in RESP2 (an `EXEC` whose watched keys changed), `_` in RESP3. Only
    /// as a whole reply, never inside another.
    NullArray,
    /// An ordered list of replies.
    Array(Vec<Reply>),
    /// Key-value pairs, in order; a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// Pairs that may repeat (`HRANDFIELD ... WITHVALUES`): an array of two-item arrays in
    /// RESP3, a flat array in RESP2.
    Pairs(Vec<(Reply, Reply)>),
    /// A floating-point number; a bulk string in RESP2.
    Double(f64),
    /// A boolean; the integer 1 or 0 in RESP2.
    Bool(bool),
    /// Text meant for people (`INFO`); a bulk string in RESP2, `=txt:` in RESP3.
    Verbatim(String),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".to_owned())
    }

    /// A bulk string of text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    /// Appends this reply, encoded for `protocol`, to `out`.
    pub fn encode(&self, protocol: Protocol, out: &mut Vec<u8>) {
        // The codec has no null array of RESP2; it is one fixed line.
        if let (Reply::NullArray, Protocol::Resp2) = (self, protocol) {
            out.extend_from_slice(b"*-1\r\n");
            return;
        }
        let start = out.len();
        let written = match protocol {
            Protocol::Resp2 => {
                let frame = self.to_resp2();
                out.resize(start + frame.encode_len(false), 0);
                redis_protocol::resp2::encode::encode(&mut out[start..], &frame, false)
            }
            Protocol::Resp3 => {
                let frame = self.to_resp3();
                out.resize(start + frame.encode_len(false), 0);
                redis_protocol::resp3::encode::complete::encode(&mut out[start..], &frame, false)
            }
        };
        // The buffer is sized by the encoder's own `encode_len`, so encoding cannot fail.
        let written = written.expect("a reply encodes into a buffer of its encoded length");
        out.truncate(start + written);
    }

    fn to_resp2(&self) -> Frame2 {
        match self {
            Reply::Simple(s) => Frame2::SimpleString(one_line(s).into_bytes()),
            Reply::Error(e) => Frame2::Error(one_line(e)),
            Reply::Integer(i) => Frame2::Integer(*i),
            Reply::Bulk(b) => Frame2::BulkString(b.clone()),
            Reply::Null | Reply::NullArray => Frame2::Null,
            Reply::Array(items) => Frame2::Array(items.iter().map(Reply::to_resp2).collect()),
            Reply::Map(pairs) | Reply::Pairs(pairs) => Frame2::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()])
                    .collect(),
            ),
            Reply::Double(d) => Frame2::BulkString(format_double(*d).into_bytes()),
            Reply::Bool(b) => Frame2::Integer(i64::from(*b)),
            Reply::Verbatim(text) => Frame2::BulkString(text.clone().into_bytes()),
        }
    }

    fn to_resp3(&self) -> Frame3 {
        match self {
            Reply::Simple(s) => Frame3::SimpleString {
                data: one_line(s).into_bytes(),
                attributes: None,
            },
            Reply::Error(e) => Frame3::SimpleError {
                data: one_line(e),
                attributes: None,
            },
            Reply::Integer(i) => Frame3::Number {
                data: *i,
                attributes: None,
            },
            Reply::Bulk(b) => Frame3::BlobString {
                data: b.clone(),
                attributes: None,
            },
            Reply::Null | Reply::NullArray => Frame3::Null,
            Reply::Array(items) => Frame3::Array {
                data: items.iter().map(Reply::to_resp3).collect(),
                attributes: None,
            },
            Reply::Pairs(pairs) => Frame3::Array {
                data: pairs
                    .iter()
                    .map(|(k, v)| Frame3::Array {
                        data: vec![k.to_resp3(), v.to_resp3()],
                        attributes: None,
                    })
                    .collect(),
                attributes: None,
            },
            Reply::Map(pairs) => {
                let mut data = FrameMap::with_capacity(pairs.len());
                for (k, v) in pairs {
                    data.insert(k.to_resp3(), v.to_resp3());
                }
                Frame3::Map {
                    data,
                    attributes: None,
                }
            }
            Reply::Double(d) => Frame3::Double {
                data: *d,
                attributes: None,
            },
            Reply::Bool(b) => Frame3::Boolean {
                data: *b,
                attributes: None,
            },
            Reply::Verbatim(text) => Frame3::VerbatimString {
                data: text.clone().into_bytes(),
                format: VerbatimStringFormat::Text,
                attributes: None,
            },
        }
    }
}

/// Simple strings and errors end at the first line break, so one cannot smuggle a second
/// reply into the stream; Redis replaces the breaks with spaces the same way.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A double as Redis prints it: `inf`, `-inf`, `nan`, or the shortest exact decimal.
fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else if d.is_nan() {
        "nan".to_owned()
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply, protocol: Protocol) -> String {
        let mut out = Vec::new();
        reply.encode(protocol, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars_encode_as_redis_sends_them() {
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            assert_eq!(encoded(&Reply::ok(), protocol), "+OK\r\n");
            assert_eq!(encoded(&Reply::Integer(-2), protocol), ":-2\r\n");
            assert_eq!(encoded(&Reply::text("hi"), protocol), "$2\r\nhi\r\n");
            assert_eq!(
                encoded(&Reply::Error("ERR syntax error".into()), protocol),
                "-ERR syntax error\r\n"
            );
        }
    }

    #[test]
    fn null_is_a_null_bulk_in_resp2_and_underscore_in_resp3() {
        assert_eq!(encoded(&Reply::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(encoded(&Reply::Null, Protocol::Resp3), "_\r\n");
        assert_eq!(encoded(&Reply::NullArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(encoded(&Reply::NullArray, Protocol::Resp3), "_\r\n");
    }

    #[test]
    fn maps_flatten_to_arrays_in_resp2_and_keep_their_order_in_resp3() {
        let map = Reply::Map(vec![
            (Reply::text("b"), Reply::Integer(1)),
            (Reply::text("a"), Reply::Array(vec![])),
        ]);
        assert_eq!(
            encoded(&map, Protocol::Resp2),
            "*4\r\n$1\r\nb\r\n:1\r\n$1\r\na\r\n*0\r\n"
        );
        assert_eq!(
            encoded(&map, Protocol::Resp3),
            "%2\r\n$1\r\nb\r\n:1\r\n$1\r\na\r\n*0\r\n"
        );
    }

    #[test]
    fn resp3_only_types_degrade_in_resp2() {
        assert_eq!(encoded(&Reply::Bool(true), Protocol::Resp2), ":1\r\n");
        assert_eq!(encoded(&Reply::Bool(false), Protocol::Resp3), "#f\r\n");
        assert_eq!(
            encoded(&Reply::Double(1.5), Protocol::Resp2),
            "$3\r\n1.5\r\n"
        );
        assert_eq!(encoded(&Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        let info = Reply::Verbatim("# Server".into());
        assert_eq!(encoded(&info, Protocol::Resp2), "$8\r\n# Server\r\n");
        assert_eq!(encoded(&info, Protocol::Resp3), "=12\r\ntxt:# Server\r\n");
    }

    #[test]
    fn line_breaks_cannot_end_an_error_early() {
        let reply = Reply::Error("ERR a\r\n+OK".into());
        assert_eq!(encoded(&reply, Protocol::Resp2), "-ERR a  +OK\r\n");
    }
}
