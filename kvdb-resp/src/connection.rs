//! One client connection: read, frame every complete request, answer them in order, write all
//! the replies at once (pipelining), and close on `QUIT`, a protocol error, the idle timeout
//! or server shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::codec::{self, Limits};
use crate::error::ProtocolError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::session::Session;

/// Serves one connection until it ends; errors only end it.
pub async fn run(stream: TcpStream, shared: Arc<Shared>, id: u64, closed: watch::Receiver<bool>) {
    shared.clients.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = serve(stream, shared.clone(), id, closed).await {
        tracing::debug!(id, error = %e, "RESP connection ended");
    }
    shared.clients.fetch_sub(1, Ordering::Relaxed);
}

async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    id: u64,
    mut closed: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let options = shared.options.clone();
    let mut session = Session::new(shared, id);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::new();
    loop {
        let ended = answer(&mut session, &mut buf, &mut out, &options).await;
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if ended {
            return Ok(());
        }
        let read = async {
            if options.idle_timeout.is_zero() {
                Some(stream.read_buf(&mut buf).await)
            } else {
                tokio::time::timeout(options.idle_timeout, stream.read_buf(&mut buf))
                    .await
                    .ok()
            }
        };
        tokio::select! {
            read = read => match read {
                None => return Ok(()),
                Some(Ok(0)) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            },
            _ = closed.wait_for(|closed| *closed) => return Ok(()),
        }
    }
}

/// Answers every complete request in `buf` into `out`; whether the connection ends after
/// these replies are written.
async fn answer(
    session: &mut Session,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    options: &crate::RespOptions,
) -> bool {
    loop {
        let limits = Limits {
            max_bulk_len: options.max_bulk_len,
            max_array_len: options.max_array_len,
            authenticated: session.is_authenticated(),
        };
        match codec::next_request(buf, &limits) {
            Ok(Some((argv, used))) => {
                buf.advance(used);
                if argv.is_empty() {
                    continue;
                }
                let reply = session.handle(argv).await;
                reply.encode(session.protocol, out);
                if session.quit {
                    return true;
                }
            }
            Ok(None) => {
                let over =
                    !session.is_authenticated() && buf.len() > options.unauthenticated_buffer;
                if over {
                    refuse(ProtocolError::UnauthenticatedBuffer, session, out);
                }
                return over;
            }
            Err(e) => {
                refuse(e, session, out);
                return true;
            }
        }
    }
}

fn refuse(e: ProtocolError, session: &Session, out: &mut Vec<u8>) {
    tracing::debug!(id = session.id, error = %e, "RESP protocol error");
    Reply::Error(e.to_string()).encode(session.protocol, out);
}
