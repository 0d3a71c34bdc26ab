//! The fault proxy: one TCP listener per directed link A→B, forwarding to B's real peer
//! listener. A dials its peers, so A's config names this proxy as B's address; everything A
//! sends B (Raft, anti-entropy, and the replies B writes back on A's connections) crosses it.
//!
//! The proxy only moves bytes: TLS passes through untouched, and whatever it does to a link is
//! something a real network or a real peer can do to a TCP connection — hold bytes for a while
//! (delay), stop delivering them until it heals (blackhole: TCP would retransmit, so held bytes
//! are delivered, in order, once it heals), close a connection, reset it, refuse new ones
//! (partition). Each link is one direction: cutting A→B leaves B→A working, which is a one-way
//! partition (A's messages do not reach B; B's reach A).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{ChaosError, Result};

/// The most bytes read from a socket at once.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks in flight per direction of a connection (read, not yet written): bounds the memory a
/// delayed link holds while the sender's TCP window pushes back on it.
const CHUNKS_IN_FLIGHT: usize = 256;
/// How long the proxy waits for the real listener behind it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a link does to the bytes crossing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Bytes pass, each chunk delivered `delay` after it was read.
    Open {
        /// The added one-way latency.
        delay: Duration,
    },
    /// Connections are accepted and held: nothing is forwarded, either way, until the mode
    /// changes; then what was held is delivered in order.
    Blackhole,
    /// Every connection is reset, and new ones are reset on accept.
    Partitioned,
}

impl LinkMode {
    /// A link that forwards at once.
    pub const HEALED: LinkMode = LinkMode::Open {
        delay: Duration::ZERO,
    };
}

/// How a link's current connections are ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// An orderly close (FIN) both ways.
    Close,
    /// A reset (RST) both ways: unsent bytes are discarded.
    Reset,
}

#[derive(Clone, Copy, Debug)]
struct Control {
    mode: LinkMode,
    /// Bumped by every cut; a connection ends when it differs from the value it started with.
    cuts: u64,
    /// How the last cut ends connections.
    cut: Cut,
}

/// Counters of one link, for the run's report.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Bytes forwarded, both directions.
    pub bytes: AtomicU64,
}

/// One directed link's listener and its controls. Dropping it ends the link's connections.
pub struct LinkProxy {
    address: SocketAddr,
    control: watch::Sender<Control>,
    counters: Arc<LinkCounters>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for LinkProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkProxy")
            .field("address", &self.address)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl LinkProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `target`. Must be
    /// called within a tokio runtime.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| ChaosError::Socket {
                    address: "127.0.0.1:0".into(),
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| ChaosError::Socket {
            address: "127.0.0.1:0".into(),
            source,
        })?;
        let (control, _) = watch::channel(Control {
            mode: LinkMode::HEALED,
            cuts: 0,
            cut: Cut::Close,
        });
        let counters = Arc::new(LinkCounters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            control.clone(),
            Arc::clone(&counters),
        ));
        Ok(Self {
            address,
            control,
            counters,
            accept,
        })
    }

    /// The address the link's sender dials.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The link's mode now.
    pub fn mode(&self) -> LinkMode {
        self.control.borrow().mode
    }

    /// The link's counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// Sets the link's mode; a partition also resets every current connection.
    pub fn set_mode(&self, mode: LinkMode) {
        self.control.send_modify(|control| {
            control.mode = mode;
            if mode == LinkMode::Partitioned {
                control.cuts += 1;
                control.cut = Cut::Reset;
            }
        });
    }

    /// Ends every current connection of the link, as `how` says; new ones are accepted as the
    /// mode allows.
    pub fn cut(&self, how: Cut) {
        self.control.send_modify(|control| {
            control.cuts += 1;
            control.cut = how;
        });
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks see the sender go and end their connections.
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: watch::Sender<Control>,
    counters: Arc<LinkCounters>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: the dialer retries, so wait and accept again.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if control.borrow().mode == LinkMode::Partitioned {
            reset(stream);
            continue;
        }
        tokio::spawn(serve(
            stream,
            target,
            control.subscribe(),
            Arc::clone(&counters),
        ));
    }
}

/// Drops `stream` with a reset rather than a close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Waits until the link forwards and returns its delay; `None` once the connection begun at
/// `cuts` is cut (or the proxy is gone).
async fn until_open(control: &mut watch::Receiver<Control>, cuts: u64) -> Option<Duration> {
    loop {
        let now = *control.borrow_and_update();
        if now.cuts != cuts {
            return None;
        }
        match now.mode {
            LinkMode::Open { delay } => return Some(delay),
            LinkMode::Partitioned => return None,
            LinkMode::Blackhole => {}
        }
        if control.changed().await.is_err() {
            return None;
        }
    }
}

/// Waits until the connection begun at `cuts` is cut, and says how.
async fn until_cut(mut control: watch::Receiver<Control>, cuts: u64) -> Cut {
    loop {
        let now = *control.borrow_and_update();
        if now.cuts != cuts {
            return now.cut;
        }
        if control.changed().await.is_err() {
            return Cut::Close;
        }
    }
}

/// One accepted connection: connects onward once the link forwards, then pumps both ways until
/// both sides closed, a socket failed, or the link cut it.
async fn serve(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut control: watch::Receiver<Control>,
    counters: Arc<LinkCounters>,
) {
    let cuts = control.borrow().cuts;
    // A blackholed link holds the connection before anything reaches the target, as a lost SYN
    // would.
    if until_open(&mut control, cuts).await.is_none() {
        reset(inbound);
        return;
    }
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await;
    let Ok(Ok(mut outbound)) = connected else {
        // Nothing listens behind the link (the node is down): refused, as the node would be.
        reset(inbound);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let ended = {
        let (in_read, in_write) = inbound.split();
        let (out_read, out_write) = outbound.split();
        let (forth_tx, forth_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (back_tx, back_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let pumps = async {
            tokio::try_join!(
                read_side(in_read, forth_tx, control.clone(), cuts),
                write_side(forth_rx, out_write, control.clone(), cuts, &counters),
                read_side(out_read, back_tx, control.clone(), cuts),
                write_side(back_rx, in_write, control.clone(), cuts, &counters),
            )
        };
        tokio::select! {
            _ = pumps => None,
            cut = until_cut(control.clone(), cuts) => Some(cut),
        }
    };
    // The pumps may have stopped on the cut before the select saw it.
    let now = *control.borrow();
    let ended = ended.or((now.cuts != cuts).then_some(now.cut));
    if ended == Some(Cut::Reset) {
        reset(inbound);
        reset(outbound);
    }
}

/// A chunk read from one side, and when it may be written to the other.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

fn cut_error() -> io::Error {
    io::Error::other("the link was cut")
}

/// Reads one side into the channel, stamping each chunk with its due time; the end of the
/// stream closes the channel.
async fn read_side(
    mut from: impl tokio::io::AsyncRead + Unpin,
    to: mpsc::Sender<Chunk>,
    mut control: watch::Receiver<Control>,
    cuts: u64,
) -> io::Result<()> {
    loop {
        // Not reading while blackholed lets TCP push back on the sender, as a stalled path does.
        until_open(&mut control, cuts).await.ok_or_else(cut_error)?;
        let mut bytes = vec![0; CHUNK_BYTES];
        let read = from.read(&mut bytes).await?;
        if read == 0 {
            return Ok(());
        }
        bytes.truncate(read);
        let delay = until_open(&mut control, cuts).await.ok_or_else(cut_error)?;
        let chunk = Chunk {
            due: Instant::now() + delay,
            bytes,
        };
        if to.send(chunk).await.is_err() {
            return Ok(());
        }
    }
}

/// Writes the channel's chunks to the other side, each no earlier than its due time and never
/// while blackholed; the channel's end is a close of the write side.
async fn write_side(
    mut from: mpsc::Receiver<Chunk>,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut control: watch::Receiver<Control>,
    cuts: u64,
    counters: &LinkCounters,
) -> io::Result<()> {
    while let Some(chunk) = from.recv().await {
        tokio::time::sleep_until(chunk.due).await;
        until_open(&mut control, cuts).await.ok_or_else(cut_error)?;
        to.write_all(&chunk.bytes).await?;
        counters
            .bytes
            .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
    }
    to.shutdown().await
}

#[cfg(test)]
mod tests;
