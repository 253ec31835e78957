//! Standard output of the client commands, and what happens when its reader goes away.
//!
//! Every `kvdb` role keeps SIGPIPE ignored, as Rust sets it: a server whose peer resets a
//! connection mid-write (h2 writes with `writev`, which cannot ask for `MSG_NOSIGNAL`) must
//! get `EPIPE` and carry on, not die without a log line. So a command piped into `head` is
//! not killed by the signal either; [`outln!`](crate::outln) ends it quietly instead when a
//! write to stdout finds the pipe closed, as Unix tools end.

use std::fmt;
use std::io::{self, Write};

/// Writes one line to stdout; exits quietly (status 0) if the reader has gone away.
pub fn line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(error) = written {
        if error.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("kvdb: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

/// `println!` for client commands: a closed stdout ends the command quietly (see
/// [`out`](crate::out)).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
