//! A blocking Redis-protocol connection for tests: sends commands as RESP arrays of bulk
//! strings and reads replies as RESP2, or as RESP3 after `HELLO 3`. Run it off the async
//! runtime (`spawn_blocking`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use redis_protocol::resp2::types::{OwnedFrame as Frame2, Resp2Frame};
use redis_protocol::resp3::types::OwnedFrame as Frame3;

/// One connection, with what it has read but not decoded yet.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`; a reply that takes over 30 s fails the test.
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one command.
    pub fn send(&mut self, argv: &[&[u8]]) {
        let frame = Frame2::Array(
            argv.iter()
                .map(|a| Frame2::BulkString(a.to_vec()))
                .collect(),
        );
        let mut out = vec![0; frame.encode_len(false)];
        redis_protocol::resp2::encode::encode(&mut out, &frame, false).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// Sends one command and reads its reply as RESP2.
    pub fn call(&mut self, argv: &[&[u8]]) -> Frame2 {
        self.send(argv);
        self.read(|buf| redis_protocol::resp2::decode::decode(buf).unwrap())
    }

    /// The next reply, read as RESP3 after `HELLO 3` (`resp3`), else as RESP2 shown as the
    /// RESP3 frame of the same type (the RESP3 decoder reads RESP2's null `$-1` as a
    /// streamed string).
    pub fn reply(&mut self, resp3: bool) -> Frame3 {
        if resp3 {
            self.read(|buf| redis_protocol::resp3::decode::complete::decode(buf).unwrap())
        } else {
            resp2_as_resp3(self.read(|buf| redis_protocol::resp2::decode::decode(buf).unwrap()))
        }
    }

    fn read<F>(&mut self, decode: impl Fn(&[u8]) -> Option<(F, usize)>) -> F {
        loop {
            if let Some((frame, used)) = decode(&self.buf) {
                self.buf.drain(..used);
                return frame;
            }
            let mut chunk = [0; 4096];
            let n = self.stream.read(&mut chunk).expect("a reply in time");
            assert!(n > 0, "connection closed before a reply");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A RESP2 frame as the RESP3 frame of the same type.
pub fn resp2_as_resp3(frame: Frame2) -> Frame3 {
    let attributes = None;
    match frame {
        Frame2::SimpleString(data) => Frame3::SimpleString { data, attributes },
        Frame2::Error(data) => Frame3::SimpleError { data, attributes },
        Frame2::Integer(data) => Frame3::Number { data, attributes },
        Frame2::BulkString(data) => Frame3::BlobString { data, attributes },
        Frame2::Array(items) => Frame3::Array {
            data: items.into_iter().map(resp2_as_resp3).collect(),
            attributes,
        },
        Frame2::Null => Frame3::Null,
    }
}

/// The text of an error reply; panics on any other reply.
pub fn error_text(frame: Frame2) -> String {
    match frame {
        Frame2::Error(text) => text,
        other => panic!("not an error: {other:?}"),
    }
}

/// The bytes of a bulk string reply; panics on any other reply.
pub fn bulk(frame: Frame2) -> Vec<u8> {
    match frame {
        Frame2::BulkString(bytes) => bytes,
        other => panic!("not a bulk string: {other:?}"),
    }
}
