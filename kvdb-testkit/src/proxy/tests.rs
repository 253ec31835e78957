//! The proxy in each fault mode, against a greeting echo server.

use std::time::Instant;

use tokio::sync::mpsc;
use tokio::time::timeout;

use super::*;

/// Long enough for anything that should happen on loopback.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long a read must stay silent to count as hanging.
const HANG: Duration = Duration::from_millis(200);

const GREETING: &[u8] = b"hello";

/// A server that greets each connection, then echoes it and reports every
/// chunk it receives.
async fn greeting_echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (received, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                stream.write_all(GREETING).await?;
                let mut buf = vec![0; 1024];
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    let _ = received.send(buf[..n].to_vec());
                    stream.write_all(&buf[..n]).await?;
                }
            });
        }
    });
    (addr, receiver)
}

/// A proxied connection that has read its greeting.
async fn connect(proxy: &FaultProxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(read_exact(&mut stream, GREETING.len()).await, GREETING);
    stream
}

async fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

/// Whether the connection was closed or reset within [`PATIENCE`].
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0; 16];
    matches!(
        timeout(PATIENCE, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

async fn start() -> (FaultProxy, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (upstream, received) = greeting_echo_server().await;
    (FaultProxy::start(upstream).await.unwrap(), received)
}

#[tokio::test]
async fn pass_forwards_both_ways() {
    let (proxy, mut received) = start().await;
    let mut stream = connect(&proxy).await;
    stream.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact(&mut stream, 4).await, b"ping");
    assert_eq!(received.recv().await.unwrap(), b"ping");
    assert_eq!(proxy.open_connections(), 1);
}

#[tokio::test]
async fn blackhole_hangs_open_connections_until_healed() {
    let (proxy, mut received) = start().await;
    let mut stream = connect(&proxy).await;

    // --- cut the link under an open connection
    proxy.set(Fault::Blackhole);
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    assert!(timeout(HANG, stream.read_exact(&mut buf)).await.is_err());
    assert!(received.try_recv().is_err());

    // --- heal: the held bytes are delivered, the stream is intact
    proxy.set(Fault::Pass);
    assert_eq!(read_exact(&mut stream, 4).await, b"ping");
}

#[tokio::test]
async fn blackhole_hangs_new_connections() {
    let (proxy, _received) = start().await;
    proxy.set(Fault::Blackhole);
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut buf = [0; 1];
    assert!(timeout(HANG, stream.read(&mut buf)).await.is_err());
}

#[tokio::test]
async fn drop_closes_open_connections_and_resets_new_ones() {
    let (proxy, _received) = start().await;
    let mut open = connect(&proxy).await;

    proxy.set(Fault::Drop);
    assert!(is_closed(&mut open).await);

    // A new connection may be accepted by the kernel, but is reset at once.
    if let Ok(mut fresh) = TcpStream::connect(proxy.addr()).await {
        assert!(is_closed(&mut fresh).await);
    }

    // --- heal: new connections work again
    proxy.set(Fault::Pass);
    let mut healed = connect(&proxy).await;
    healed.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact(&mut healed, 4).await, b"ping");
}

#[tokio::test]
async fn delay_adds_latency_in_each_direction() {
    let (proxy, _received) = start().await;
    let mut stream = connect(&proxy).await;
    let delay = Duration::from_millis(50);
    proxy.set(Fault::Delay(delay));

    let started = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    assert_eq!(read_exact(&mut stream, 4).await, b"ping");
    // One delay on the way up, one on the way back.
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
}

/// A delayed link adds latency, not a toll per chunk: chunks sent apart each arrive one delay
/// late, rather than queueing behind the delay of the chunk before.
#[tokio::test]
async fn delay_keeps_chunks_in_flight_together() {
    let (proxy, mut received) = start().await;
    let mut stream = connect(&proxy).await;
    let delay = Duration::from_millis(200);
    proxy.set(Fault::Delay(delay));

    let chunks = 20u8;
    let sender = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..chunks {
            sent.push(Instant::now());
            stream.write_all(&[i]).await.unwrap();
            // Far enough apart to be read as separate chunks.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (sent, stream)
    });
    let mut arrived = Vec::new();
    while arrived.len() < usize::from(chunks) {
        let chunk = timeout(PATIENCE, received.recv()).await.unwrap().unwrap();
        arrived.extend(chunk.into_iter().map(|byte| (byte, Instant::now())));
    }
    let (sent, _stream) = sender.await.unwrap();
    for (i, (byte, at)) in arrived.into_iter().enumerate() {
        assert_eq!(usize::from(byte), i, "order is kept");
        let late = at - sent[i];
        // Behind the previous chunk's delay it would be up to twice the delay late.
        assert!(
            late < delay * 3 / 2,
            "chunk {i} arrived {late:?} after it was sent"
        );
    }
}

#[tokio::test]
async fn cut_towards_the_client_still_delivers_requests() {
    let (proxy, mut received) = start().await;
    let mut stream = connect(&proxy).await;
    proxy.set(Fault::CutOneWay(Direction::ToClient));

    stream.write_all(b"ping").await.unwrap();
    let delivered = timeout(PATIENCE, received.recv()).await.unwrap();
    assert_eq!(delivered.unwrap(), b"ping");
    let mut buf = [0; 4];
    assert!(timeout(HANG, stream.read_exact(&mut buf)).await.is_err());
}

#[tokio::test]
async fn cut_towards_the_upstream_still_delivers_responses() {
    let (proxy, mut received) = start().await;
    proxy.set(Fault::CutOneWay(Direction::ToUpstream));

    // The greeting flows server to client; the request does not.
    let mut stream = connect(&proxy).await;
    stream.write_all(b"ping").await.unwrap();
    assert!(timeout(HANG, received.recv()).await.is_err());

    proxy.set(Fault::Pass);
    assert_eq!(read_exact(&mut stream, 4).await, b"ping");
}

#[tokio::test]
async fn stop_closes_everything() {
    let (proxy, _received) = start().await;
    let mut stream = connect(&proxy).await;
    proxy.stop();
    assert!(is_closed(&mut stream).await);
    assert_eq!(proxy.fault(), Fault::Pass);
}

#[tokio::test]
async fn unreachable_upstream_closes_the_client() {
    // Reserve a port, then free it so nothing listens there.
    let upstream = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(is_closed(&mut stream).await);
}
