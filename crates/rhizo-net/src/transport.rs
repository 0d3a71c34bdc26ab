//! Starting the transport, its handle, its inbound side, and the tasks behind them: one accept
//! loop, one dialler per peer and lane, one task per inbound connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use rhizo_clock::NodeId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::backoff::BackoffSchedule;
use crate::conn::{Delivery, Established, accept_handshake, dial_handshake};
use crate::conn::{ping_forever, read_messages, read_pings, write_queue};
use crate::socket::{Io, Listener, Network};
use crate::state::Shared;
use crate::tls::TlsContext;
use crate::{
    CloseReason, Lane, NetError, RefusalReason, Result, Security, TransportConfig, TransportStats,
};

/// What the transport hands to the caller, in arrival order per lane. Control-lane messages
/// and the peer events come first: see [`InboundReceiver::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A message from a peer, whole, in the order the peer sent it on that lane.
    Message {
        /// The sender (authenticated by its certificate under TLS).
        from: NodeId,
        /// The lane it came on.
        lane: Lane,
        /// The message's bytes, exactly as given to the peer's `send`.
        bytes: Bytes,
    },
    /// The control connection to a peer is up: control sends to it are queued from now on.
    PeerUp {
        /// The peer.
        peer: NodeId,
        /// The peer's incarnation.
        incarnation: u64,
        /// The peer restarted since the last `PeerUp`: it may have lost what it had not made
        /// durable; resynchronise with it by digest.
        restarted: bool,
    },
    /// The control connection to a peer is down: control sends to it fail until the next
    /// `PeerUp`.
    PeerDown {
        /// The peer.
        peer: NodeId,
    },
}

/// The receiving end of the transport. Two bounded channels, one per lane, read control first:
/// a caller that falls behind on bulk messages still sees Raft's messages at once, and a lane
/// whose channel is full stops reading from its peers (TCP then pushes back on them). Peer
/// events share the control channel, so a caller that stops reading altogether also holds up
/// reconnections (their `PeerUp` waits for room).
#[derive(Debug)]
pub struct InboundReceiver {
    control: mpsc::Receiver<Inbound>,
    bulk: mpsc::Receiver<Inbound>,
}

impl InboundReceiver {
    /// The next message or event, control lane first; `None` once the transport has shut down
    /// and everything received was taken.
    pub async fn recv(&mut self) -> Option<Inbound> {
        tokio::select! {
            biased;
            Some(inbound) = self.control.recv() => Some(inbound),
            Some(inbound) = self.bulk.recv() => Some(inbound),
            else => None,
        }
    }

    /// The next message or event if one is waiting, control lane first.
    pub fn try_recv(&mut self) -> Option<Inbound> {
        self.control
            .try_recv()
            .or_else(|_| self.bulk.try_recv())
            .ok()
    }
}

/// The two inbound channels' sending ends, held by the tasks only: when the last task ends,
/// the receiver sees the end.
#[derive(Clone)]
struct Channels {
    control: mpsc::Sender<Inbound>,
    bulk: mpsc::Sender<Inbound>,
}

impl Channels {
    fn lane(&self, lane: Lane) -> &mpsc::Sender<Inbound> {
        match lane {
            Lane::Control => &self.control,
            Lane::Bulk => &self.bulk,
        }
    }
}

/// Starts the diallers of a peer added at run time ([`TransportHandle::add_peer`]); holds the
/// transport's runtime weakly, so a handle outliving the transport starts nothing.
type Dialler = Box<dyn Fn(NodeId, String) + Send + Sync>;

/// What every task of one transport needs.
struct Runtime<N> {
    shared: Arc<Shared>,
    net: N,
    tls: Option<TlsContext>,
    channels: Channels,
}

/// The peer transport. See the crate documentation for the seam it offers.
#[derive(Debug)]
pub struct Transport;

impl Transport {
    /// Binds `config.listen` and starts the transport: it accepts the members' connections and
    /// dials every peer on both lanes, reconnecting with backoff for as long as it runs. Must be
    /// called within a tokio runtime.
    pub async fn start<N: Network>(
        config: TransportConfig,
        net: N,
    ) -> Result<(TransportHandle, InboundReceiver)> {
        config.validate()?;
        let listener = net
            .bind(&config.listen)
            .await
            .map_err(|source| NetError::Bind {
                address: config.listen.clone(),
                source,
            })?;
        Self::start_on(config, net, listener)
    }

    /// Starts the transport on a listener bound beforehand (`config.listen` is then not used):
    /// a test can learn every node's port before any starts, and a supervisor can hand over
    /// an inherited socket. Must be called within a tokio runtime.
    pub fn start_on<N: Network>(
        config: TransportConfig,
        net: N,
        listener: N::Listener,
    ) -> Result<(TransportHandle, InboundReceiver)> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NetError::InvalidConfig {
                field: "runtime",
                reason: "Transport::start must be called within a tokio runtime".into(),
            });
        }
        let tls = match &config.security {
            Security::Tls(files) => Some(TlsContext::load(files)?),
            Security::Insecure => {
                warn!(
                    node = %config.node,
                    "rhizo-net starts without TLS (Security::Insecure): peers are not \
                     authenticated and traffic is not encrypted"
                );
                None
            }
        };
        let local_addr = listener.local_addr().map_err(|source| NetError::Bind {
            address: config.listen.clone(),
            source,
        })?;
        let (control_tx, control) = mpsc::channel(config.inbound_capacity);
        let (bulk_tx, bulk) = mpsc::channel(config.inbound_capacity);
        let peers: Vec<(NodeId, String)> = config
            .peers()
            .map(|(id, address)| (id, address.to_owned()))
            .collect();
        let shared = Shared::new(config);
        let runtime = Arc::new(Runtime {
            shared: shared.clone(),
            net,
            tls,
            channels: Channels {
                control: control_tx,
                bulk: bulk_tx,
            },
        });
        spawn(&shared, accept_loop(runtime.clone(), listener));
        for (peer, address) in peers {
            start_diallers(&runtime, peer, &address);
        }
        let weak = Arc::downgrade(&runtime);
        let dialler: Dialler = Box::new(move |peer, address| {
            if let Some(runtime) = weak.upgrade() {
                start_diallers(&runtime, peer, &address);
            }
        });
        let handle = TransportHandle {
            shared,
            local_addr,
            dialler: Arc::new(dialler),
        };
        Ok((handle, InboundReceiver { control, bulk }))
    }
}

/// The caller's side of a running transport: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct TransportHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    dialler: Arc<Dialler>,
}

impl std::fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("node", &self.shared.config.node)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl TransportHandle {
    /// Queues `message` for `peer` on `lane` and returns at once (it never waits on the
    /// network). Messages to one peer on one lane arrive in the order they were queued, each at
    /// most once. Refused — nothing queued — when the lane's connection is down
    /// ([`NetError::PeerUnreachable`]) or its queue is at its limit ([`NetError::QueueFull`]):
    /// on the control lane the caller reports the peer unreachable to Raft; on the bulk lane the
    /// message is dropped (counted in the stats) and anti-entropy recovers it.
    pub fn send(&self, peer: NodeId, lane: Lane, message: impl Into<Bytes>) -> Result<()> {
        self.shared.send(peer, lane, message.into())
    }

    /// Whether sends to `peer` on `lane` are queued now.
    pub fn is_connected(&self, peer: NodeId, lane: Lane) -> bool {
        self.shared
            .peer(peer)
            .is_some_and(|state| state.lane(lane).connected.load(Ordering::Acquire))
    }

    /// The peers now (every member but this node), in id order.
    pub fn peers(&self) -> Vec<NodeId> {
        self.shared.peer_ids()
    }

    /// Makes `peer`, listening at `address`, a peer from now on: its handshakes are accepted
    /// and it is dialled on both lanes, as a member of the configuration is. Whether it was
    /// not a peer already (adding a peer again, or this node, changes nothing).
    pub fn add_peer(&self, peer: NodeId, address: &str) -> bool {
        if self.shared.add_peer(peer).is_none() {
            return false;
        }
        (self.dialler)(peer, address.to_owned());
        info!(node = %self.shared.config.node, %peer, address, "peer added");
        true
    }

    /// Stops treating `peer` as a peer: sends to it are refused ([`NetError::UnknownPeer`]),
    /// its handshakes are refused as a non-member's, and its connections are closed. Whether it
    /// was a peer.
    pub fn remove_peer(&self, peer: NodeId) -> bool {
        let removed = self.shared.remove_peer(peer);
        if removed {
            info!(node = %self.shared.config.node, %peer, "peer removed");
        }
        removed
    }

    /// Tells the transport the membership this node's log holds at log index `applied` (read
    /// in one piece: the members at that index, this node included when it is one). From it the
    /// transport tells peers whether they were removed (a dialler the log dropped after the
    /// index where its own log last showed it a member is refused as
    /// [`RefusalReason::Removed`], others as [`RefusalReason::NotAMember`]), and this node
    /// learns its own removal ([`TransportHandle::removed_by`]). A node without a replicated
    /// log of membership never calls it, and is never told it was removed.
    pub fn publish_membership(&self, applied: u64, members: impl IntoIterator<Item = NodeId>) {
        self.shared
            .publish_membership(applied, members.into_iter().collect());
    }

    /// Who told this node it is no longer a member: a peer that refused its handshake as
    /// [`RefusalReason::Removed`], or this node itself, when its own log (as published) dropped
    /// it after showing it a member. `None` while it is one, or not one yet.
    pub fn removed_by(&self) -> Option<NodeId> {
        self.shared.removed_by()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats()
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.shared.config.node
    }

    /// The address the transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the transport: sends are refused from now on; what is queued on connections that
    /// are up is written for up to `shutdown_grace`; then every connection is closed, and every
    /// task has ended when this returns. Messages still queued then are not sent (a peer treats
    /// them as lost on a closed connection); the inbound receiver ends after what it holds.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let grace = self.shared.config.shutdown_grace;
        let drained = async {
            while !self.shared.drained() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(grace, drained).await;
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        for peer in self.shared.peer_ids() {
            if let Some(state) = self.shared.peer(peer) {
                for lane in Lane::ALL {
                    state.lane(lane).connected.store(false, Ordering::Release);
                }
            }
        }
    }
}

/// Starts the diallers of `peer` on both lanes; they end when it is removed.
fn start_diallers<N: Network>(runtime: &Arc<Runtime<N>>, peer: NodeId, address: &str) {
    let Some(state) = runtime.shared.peer(peer) else {
        return;
    };
    for lane in Lane::ALL {
        let dial = dial_loop(runtime.clone(), peer, address.to_owned(), lane);
        let removed = state.removed.clone();
        spawn(&runtime.shared, async move {
            tokio::select! {
                biased;
                _ = removed.cancelled() => {}
                _ = dial => {}
            }
        });
    }
}

/// Runs `task` until it ends or the transport shuts down.
fn spawn(shared: &Arc<Shared>, task: impl Future<Output = ()> + Send + 'static) {
    let shutdown = shared.shutdown.clone();
    shared.tasks.spawn(async move {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            _ = task => {}
        }
    });
}

/// Accepts connections; each gets a task, but only `max_pending_handshakes` may be
/// handshaking at once, and each has the handshake timeout to finish.
async fn accept_loop<N: Network>(runtime: Arc<Runtime<N>>, listener: N::Listener) {
    let pending = Arc::new(Semaphore::new(runtime.shared.config.max_pending_handshakes));
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => match pending.clone().try_acquire_owned() {
                Ok(permit) => {
                    let task = inbound_connection(runtime.clone(), stream, permit);
                    spawn(&runtime.shared, task);
                }
                Err(_) => {
                    let reason = RefusalReason::TooManyPendingHandshakes;
                    runtime.shared.unattributed_failures.add(reason);
                    warn!(%remote, "closed an inbound connection: too many pending handshakes");
                }
            },
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait
                // a little rather than spin, and go on.
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// One inbound connection: handshake within the timeout, then deliver its messages.
async fn inbound_connection<N: Network>(
    runtime: Arc<Runtime<N>>,
    stream: impl Io,
    permit: OwnedSemaphorePermit,
) {
    let shared = &runtime.shared;
    let timeout = shared.config.handshake_timeout;
    let handshake = accept_handshake(shared, runtime.tls.as_ref(), stream);
    let outcome = tokio::time::timeout(timeout, handshake).await;
    drop(permit);
    let Established {
        mut reader,
        mut writer,
        hello,
    } = match outcome {
        Ok(Ok(established)) => established,
        Ok(Err(refusal)) => {
            shared.handshake_failed(refusal.peer, refusal.reason);
            warn!(peer = ?refusal.peer, reason = ?refusal.reason, "inbound handshake failed");
            return;
        }
        Err(_) => {
            shared.handshake_failed(None, RefusalReason::HandshakeTimeout);
            warn!("closed an inbound connection that did not finish its handshake in time");
            return;
        }
    };
    let (peer, lane) = (hello.node, hello.lane);
    let Some(peer_state) = shared.peer(peer) else {
        return;
    };
    if peer_state.saw_incarnation(hello.incarnation) {
        info!(%peer, incarnation = hello.incarnation, "peer incarnation");
    } else if hello.incarnation < *peer_state.newest_incarnation.borrow() {
        // A late connection from an incarnation that has since been replaced.
        close(shared, peer, lane, CloseReason::Replaced, "inbound");
        return;
    }
    let lane_state = peer_state.lane(lane);
    let generation = {
        let mut slot = lane_state.delivery.lock().await;
        *slot += 1;
        *slot
    };
    let delivery = Delivery {
        shared,
        from: peer,
        lane,
        generation,
        channel: runtime.channels.lane(lane),
    };
    let keepalive = shared.config.idle_timeout / 3;
    let reason = tokio::select! {
        biased;
        _ = peer_state.removed.cancelled() => CloseReason::Removed,
        reason = read_messages(&mut reader, delivery) => reason,
        reason = ping_forever(&mut writer, &lane_state.counters, keepalive) => reason,
    };
    close(shared, peer, lane, reason, "inbound");
}

/// Counts and logs the end of an established connection.
fn close(shared: &Shared, peer: NodeId, lane: Lane, reason: CloseReason, side: &'static str) {
    shared.closes.add(reason);
    match reason {
        CloseReason::MalformedFrame
        | CloseReason::OversizedFrame
        | CloseReason::TruncatedFrame
        | CloseReason::MessageTooLarge => {
            warn!(%peer, %lane, side, ?reason, "closed a connection: the peer broke the protocol");
        }
        _ => debug!(%peer, %lane, side, ?reason, "connection closed"),
    }
}

/// Keeps one outbound connection to `peer` on `lane`, redialling with backoff.
async fn dial_loop<N: Network>(
    runtime: Arc<Runtime<N>>,
    peer: NodeId,
    address: String,
    lane: Lane,
) {
    let shared = &runtime.shared;
    let config = &shared.config;
    let mut backoff = BackoffSchedule::new(config.backoff, config.node, peer, lane);
    loop {
        let attempt = async {
            let stream = runtime
                .net
                .connect(&address)
                .await
                .map_err(|_| RefusalReason::Connect)?;
            dial_handshake(shared, runtime.tls.as_ref(), stream, peer, lane).await
        };
        match tokio::time::timeout(config.handshake_timeout, attempt).await {
            Ok(Ok(established)) => {
                backoff.reset();
                run_outbound(&runtime, peer, lane, established).await;
            }
            Ok(Err(reason)) => {
                shared.handshake_failed(Some(peer), reason);
                if reason == RefusalReason::Connect {
                    debug!(%peer, %lane, "cannot connect");
                } else {
                    warn!(%peer, %lane, ?reason, "outbound handshake failed");
                }
            }
            Err(_) => {
                shared.handshake_failed(Some(peer), RefusalReason::HandshakeTimeout);
                warn!(%peer, %lane, "outbound handshake timed out");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Carries the lane's queue over one established outbound connection until it ends.
async fn run_outbound<N: Network>(
    runtime: &Runtime<N>,
    peer: NodeId,
    lane: Lane,
    established: Established,
) {
    let shared = &runtime.shared;
    let Some(peer_state) = shared.peer(peer) else {
        return;
    };
    let Established {
        mut reader,
        mut writer,
        hello,
    } = established;
    let incarnation = hello.incarnation;
    peer_state.saw_incarnation(incarnation);
    let mut newest = peer_state.newest_incarnation.subscribe();
    if *newest.borrow() > incarnation {
        return;
    }
    peer_state.connections.fetch_add(1, Ordering::Relaxed);
    let lane_state = peer_state.lane(lane);
    lane_state.connected.store(true, Ordering::Release);
    if lane == Lane::Control {
        let restarted = {
            let mut last_up = peer_state
                .last_up
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let restarted = last_up.is_some_and(|previous| incarnation > previous);
            *last_up = Some(incarnation);
            restarted
        };
        let up = Inbound::PeerUp {
            peer,
            incarnation,
            restarted,
        };
        let _ = runtime.channels.control.send(up).await;
    }
    let config = &shared.config;
    let reason = tokio::select! {
        biased;
        reason = write_queue(&mut writer, lane_state, config.max_payload(), config.idle_timeout / 3) => reason,
        reason = read_pings(&mut reader, &lane_state.counters, config.idle_timeout) => reason,
        _ = newest.wait_for(|newest| *newest > incarnation) => CloseReason::Replaced,
    };
    lane_state.connected.store(false, Ordering::Release);
    close(shared, peer, lane, reason, "outbound");
    if lane == Lane::Control {
        let _ = runtime
            .channels
            .control
            .send(Inbound::PeerDown { peer })
            .await;
    }
}

#[cfg(test)]
mod tests;
