use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// The bound on every wait of these tests.
const PATIENCE: Duration = Duration::from_secs(10);

/// A server on 127.0.0.1 that writes back every byte it reads, until the end of the stream.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    address
}

/// Reads exactly `len` bytes, or fails the test after [`PATIENCE`].
async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf))
        .await
        .expect("the bytes did not arrive")
        .unwrap();
    buf
}

/// What reading from `stream` ends with once the proxy ended the connection.
async fn end_of(stream: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("the connection was not ended")
}

#[tokio::test]
async fn bytes_pass_unchanged_both_ways() {
    let proxy = LinkProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    let sent: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut read, mut write) = stream.split();
    let writing = async {
        write.write_all(&sent).await.unwrap();
    };
    let reading = async {
        let mut buf = vec![0; sent.len()];
        read.read_exact(&mut buf).await.unwrap();
        buf
    };
    let ((), echoed) = tokio::time::timeout(PATIENCE, async { tokio::join!(writing, reading) })
        .await
        .unwrap();
    assert!(echoed == sent, "the proxy changed the bytes");
    assert_eq!(proxy.counters().accepted.load(Ordering::Relaxed), 1);
    assert_eq!(
        proxy.counters().bytes.load(Ordering::Relaxed),
        2 * sent.len() as u64
    );
}

#[tokio::test]
async fn a_delayed_link_holds_each_direction_for_its_delay() {
    let proxy = LinkProxy::start(echo_server().await).await.unwrap();
    let delay = Duration::from_millis(150);
    proxy.set_mode(LinkMode::Open { delay });
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    let started = std::time::Instant::now();
    stream.write_all(b"ping").await.unwrap();
    assert_eq!(read_exactly(&mut stream, 4).await, b"ping");
    // Delayed on the way there and on the way back.
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_blackhole_forwards_nothing_until_healed_then_delivers_in_order() {
    let proxy = LinkProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    stream.write_all(b"one").await.unwrap();
    assert_eq!(read_exactly(&mut stream, 3).await, b"one");

    proxy.set_mode(LinkMode::Blackhole);
    stream.write_all(b"two").await.unwrap();
    stream.write_all(b"three").await.unwrap();
    let mut buf = [0u8; 8];
    let held = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(held.is_err(), "a blackholed link forwarded {held:?}");
    // A connection opened meanwhile is held too, not refused.
    let mut late = TcpStream::connect(proxy.address()).await.unwrap();
    late.write_all(b"late").await.unwrap();

    proxy.set_mode(LinkMode::HEALED);
    assert_eq!(read_exactly(&mut stream, 8).await, b"twothree");
    assert_eq!(read_exactly(&mut late, 4).await, b"late");
}

#[tokio::test]
async fn a_partition_resets_connections_and_refuses_new_ones_until_healed() {
    let proxy = LinkProxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    read_exactly(&mut stream, 1).await;

    proxy.set_mode(LinkMode::Partitioned);
    let ended = end_of(&mut stream).await;
    assert_eq!(
        ended.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset,
        "a partition must reset the connection"
    );
    let mut refused = TcpStream::connect(proxy.address()).await.unwrap();
    let _ = refused.write_all(b"y").await;
    assert!(
        !matches!(end_of(&mut refused).await, Ok(n) if n > 0),
        "a partitioned link forwarded"
    );

    proxy.set_mode(LinkMode::HEALED);
    let mut healed = TcpStream::connect(proxy.address()).await.unwrap();
    healed.write_all(b"z").await.unwrap();
    assert_eq!(read_exactly(&mut healed, 1).await, b"z");
}

#[tokio::test]
async fn a_cut_closes_or_resets_the_current_connections_only() {
    let proxy = LinkProxy::start(echo_server().await).await.unwrap();
    let mut closed = TcpStream::connect(proxy.address()).await.unwrap();
    closed.write_all(b"a").await.unwrap();
    read_exactly(&mut closed, 1).await;
    proxy.cut(Cut::Close);
    assert_eq!(end_of(&mut closed).await.unwrap(), 0, "a close is an EOF");

    let mut reset = TcpStream::connect(proxy.address()).await.unwrap();
    reset.write_all(b"b").await.unwrap();
    read_exactly(&mut reset, 1).await;
    proxy.cut(Cut::Reset);
    assert_eq!(
        end_of(&mut reset).await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );

    // The link itself still forwards.
    let mut next = TcpStream::connect(proxy.address()).await.unwrap();
    next.write_all(b"c").await.unwrap();
    assert_eq!(read_exactly(&mut next, 1).await, b"c");
}

#[tokio::test]
async fn a_link_to_a_node_that_is_down_is_refused() {
    let nothing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = nothing.local_addr().unwrap();
    drop(nothing);
    let proxy = LinkProxy::start(address).await.unwrap();
    let mut stream = TcpStream::connect(proxy.address()).await.unwrap();
    assert!(
        !matches!(end_of(&mut stream).await, Ok(n) if n > 0),
        "bytes from nowhere"
    );
}
