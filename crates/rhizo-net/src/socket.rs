//! The sockets the transport runs on. The transport is generic over [`Network`], so the same
//! code runs on tokio's TCP in production and on turmoil's simulated TCP in tests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream the transport can read and write: a TCP stream, or TLS over one.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Opens connections and listeners.
pub trait Network: Send + Sync + 'static {
    /// A connected stream.
    type Stream: Io;
    /// A bound listener.
    type Listener: Listener<Stream = Self::Stream>;

    /// Binds a listener to `address` (`host:port`).
    fn bind(&self, address: &str) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// Connects to `address` (`host:port`).
    fn connect(&self, address: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Accepts inbound connections.
pub trait Listener: Send + Sync + 'static {
    /// The accepted stream.
    type Stream: Io;

    /// Waits for the next inbound connection; returns it and the remote address.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// The bound address (with the actual port when port 0 was asked for).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Tokio's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNetwork;

impl Network for TokioNetwork {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, address: &str) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(address).await
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        // Raft messages are small and latency-bound: do not hold them back to fill a segment.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, remote) = tokio::net::TcpListener::accept(self).await?;
        stream.set_nodelay(true)?;
        Ok((stream, remote))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

/// Turmoil's simulated TCP: deterministic for a seed, with partitions, held links and crashes.
/// Host names given to `turmoil::Sim::host` resolve in addresses (`n1:7000`).
#[cfg(feature = "turmoil")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilNetwork;

#[cfg(feature = "turmoil")]
impl Network for TurmoilNetwork {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;

    async fn bind(&self, address: &str) -> io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(address).await
    }

    async fn connect(&self, address: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(address).await
    }
}

#[cfg(feature = "turmoil")]
impl Listener for turmoil::net::TcpListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)> {
        turmoil::net::TcpListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        turmoil::net::TcpListener::local_addr(self)
    }
}
