//! The state shared by the handle and the transport's tasks: per peer and lane, the outbound
//! queue, whether the connection is up, the counters, and the inbound delivery slot.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use bytes::Bytes;
use rhizo_clock::NodeId;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::{LaneCounters, LaneStats, PeerStats, ReasonCounts, TransportStats};
use crate::{CloseReason, Lane, NetError, QueueLimits, RefusalReason, Result, TransportConfig};

/// Everything the tasks and the handles share.
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    /// The current peers: the configuration's, then as membership changes add and remove
    /// them ([`Shared::add_peer`], [`Shared::remove_peer`]). A node not here is refused at the
    /// handshake and sent nothing.
    peers: RwLock<BTreeMap<NodeId, Arc<PeerState>>>,
    pub(crate) unattributed_failures: ReasonCounts<RefusalReason>,
    pub(crate) closes: ReasonCounts<CloseReason>,
    pub(crate) shutdown: CancellationToken,
    /// Set when shutdown begins: sends are refused while the queues drain.
    pub(crate) closing: AtomicBool,
    pub(crate) tasks: TaskTracker,
    /// What the node's log last said of membership ([`Shared::publish_membership`]).
    membership: Mutex<MembershipView>,
}

/// The node's log's membership as the node last published it: what tells a member removed by
/// the log from a node not known yet, on either side of a handshake.
#[derive(Debug, Default)]
struct MembershipView {
    /// The applied log index `members` is the membership at; 0 before anything was published.
    applied: u64,
    /// The members at `applied` (this node included when it is one).
    members: BTreeSet<NodeId>,
    /// The last applied index at which this node saw itself among the members; 0 if never.
    member_at: u64,
    /// Who told this node it was removed: a peer that refused its handshake as `Removed`, or
    /// this node itself when its own log dropped it after showing it a member.
    removed_by: Option<NodeId>,
}

impl Shared {
    pub(crate) fn new(config: TransportConfig) -> Arc<Self> {
        let shutdown = CancellationToken::new();
        let peers = config
            .peers()
            .map(|(id, _)| (id, Arc::new(PeerState::new(&config, &shutdown))))
            .collect();
        Arc::new(Self {
            config,
            peers: RwLock::new(peers),
            unattributed_failures: ReasonCounts::new(),
            closes: ReasonCounts::new(),
            shutdown,
            closing: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            membership: Mutex::new(MembershipView::default()),
        })
    }

    fn membership(&self) -> MutexGuard<'_, MembershipView> {
        // Each update is whole between statements; a panic elsewhere cannot break it.
        self.membership
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the membership the node's log holds at `applied`. Must be read from the log in
    /// one piece (the members *at* that index), or a refusal as `Removed` could be unsound.
    pub(crate) fn publish_membership(&self, applied: u64, members: BTreeSet<NodeId>) {
        let own = self.config.node;
        let mut view = self.membership();
        if applied < view.applied {
            return;
        }
        if members.contains(&own) {
            view.member_at = applied;
        } else if view.member_at > 0 && view.removed_by.is_none() {
            view.removed_by = Some(own);
        }
        view.applied = applied;
        view.members = members;
    }

    /// The `member_at` of this node's Hello.
    pub(crate) fn member_at(&self) -> u64 {
        self.membership().member_at
    }

    /// Whether the log, as published, removed `node` after `member_at` — the index where
    /// `node`'s own log last showed it a member. Sound because both memberships are the same
    /// log's at their indices: a member at `member_at` that is not one at a later applied index
    /// was removed by a change committed between.
    pub(crate) fn removed_since(&self, node: NodeId, member_at: u64) -> bool {
        let view = self.membership();
        member_at > 0 && view.applied >= member_at && !view.members.contains(&node)
    }

    /// Who told this node it is no longer a member, if anyone has.
    pub(crate) fn removed_by(&self) -> Option<NodeId> {
        self.membership().removed_by
    }

    /// Whether peers must present certificates.
    pub(crate) fn tls_required(&self) -> bool {
        matches!(self.config.security, crate::Security::Tls(_))
    }

    /// The peers, read-locked (the lock is held only to look up or copy).
    fn peers(&self) -> RwLockReadGuard<'_, BTreeMap<NodeId, Arc<PeerState>>> {
        // The map is whole between statements; a panic elsewhere cannot break it.
        self.peers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The peer `node`, if it is one now.
    pub(crate) fn peer(&self, node: NodeId) -> Option<Arc<PeerState>> {
        self.peers().get(&node).cloned()
    }

    /// Whether `node` is a peer now.
    pub(crate) fn is_peer(&self, node: NodeId) -> bool {
        self.peers().contains_key(&node)
    }

    /// The peers now, in id order.
    pub(crate) fn peer_ids(&self) -> Vec<NodeId> {
        self.peers().keys().copied().collect()
    }

    /// Makes `node` a peer; its state if it was not one (the caller starts its diallers).
    pub(crate) fn add_peer(&self, node: NodeId) -> Option<Arc<PeerState>> {
        if node == self.config.node || self.closing.load(Ordering::Acquire) {
            return None;
        }
        let mut peers = self
            .peers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if peers.contains_key(&node) {
            return None;
        }
        let state = Arc::new(PeerState::new(&self.config, &self.shutdown));
        peers.insert(node, state.clone());
        Some(state)
    }

    /// Stops treating `node` as a peer: nothing more is sent to it, its handshakes are refused,
    /// and every task serving it (diallers, inbound connections) ends. Whether it was one.
    pub(crate) fn remove_peer(&self, node: NodeId) -> bool {
        let removed = self
            .peers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&node);
        match removed {
            Some(state) => {
                for lane in Lane::ALL {
                    state.lane(lane).connected.store(false, Ordering::Release);
                }
                state.removed.cancel();
                true
            }
            None => false,
        }
    }

    /// Counts a failed handshake under the peer when it is a member, else unattributed.
    pub(crate) fn handshake_failed(&self, peer: Option<NodeId>, reason: RefusalReason) {
        if let (RefusalReason::Removed, Some(peer)) = (reason, peer) {
            // Only a dialer names the peer with this reason: it came in the peer's `Refuse`,
            // over a connection whose certificate named that peer.
            self.membership().removed_by.get_or_insert(peer);
        }
        match peer.and_then(|peer| self.peer(peer)) {
            Some(state) => state.handshake_failures.add(reason),
            None => self.unattributed_failures.add(reason),
        }
    }

    /// Queues a message for a peer; never blocks.
    pub(crate) fn send(&self, peer: NodeId, lane: Lane, message: Bytes) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(NetError::ShutDown);
        }
        if message.len() > self.config.max_message_bytes {
            return Err(NetError::MessageTooLarge {
                len: message.len(),
                max: self.config.max_message_bytes,
            });
        }
        let peer_state = self.peer(peer).ok_or(NetError::UnknownPeer { peer })?;
        let state = peer_state.lane(lane);
        if !state.connected.load(Ordering::Acquire) {
            state.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(NetError::PeerUnreachable { peer, lane });
        }
        let mut queue = state.queue();
        if !queue.admits(message.len()) {
            drop(queue);
            state.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(NetError::QueueFull { peer, lane });
        }
        queue.push(message);
        drop(queue);
        state.ready.notify_one();
        Ok(())
    }

    /// Whether every lane whose connection is up has written all it queued.
    pub(crate) fn drained(&self) -> bool {
        self.peers().values().all(|peer| {
            Lane::ALL.iter().all(|lane| {
                let state = peer.lane(*lane);
                !state.connected.load(Ordering::Acquire) || state.queue().front().is_none()
            })
        })
    }

    pub(crate) fn stats(&self) -> TransportStats {
        let peers = self
            .peers()
            .iter()
            .map(|(id, state)| (*id, state.stats()))
            .collect();
        TransportStats {
            peers,
            unattributed_handshake_failures: self.unattributed_failures.snapshot(),
            connection_closes: self.closes.snapshot(),
        }
    }
}

/// One peer.
pub(crate) struct PeerState {
    lanes: [LaneState; 2],
    pub(crate) connections: AtomicU64,
    pub(crate) handshake_failures: ReasonCounts<RefusalReason>,
    /// The newest incarnation of the peer seen in any Hello; a connection to an older one is
    /// stale and is replaced.
    pub(crate) newest_incarnation: watch::Sender<u64>,
    /// The incarnation reported in the last `PeerUp`, to flag restarts.
    pub(crate) last_up: Mutex<Option<u64>>,
    /// Cancelled when the peer is removed (or the transport shuts down): its tasks end.
    pub(crate) removed: CancellationToken,
}

impl PeerState {
    fn new(config: &TransportConfig, shutdown: &CancellationToken) -> Self {
        let (incarnation, _) = watch::channel(0);
        Self {
            lanes: Lane::ALL.map(|lane| LaneState::new(config.queue_limits(lane))),
            connections: AtomicU64::new(0),
            handshake_failures: ReasonCounts::new(),
            newest_incarnation: incarnation,
            last_up: Mutex::new(None),
            removed: shutdown.child_token(),
        }
    }

    pub(crate) fn lane(&self, lane: Lane) -> &LaneState {
        &self.lanes[lane.index()]
    }

    /// Records an incarnation seen in a Hello; true when it is newer than any before.
    pub(crate) fn saw_incarnation(&self, incarnation: u64) -> bool {
        self.newest_incarnation.send_if_modified(|newest| {
            let newer = incarnation > *newest;
            if newer {
                *newest = incarnation;
            }
            newer
        })
    }

    fn stats(&self) -> PeerStats {
        PeerStats {
            control: self.lane(Lane::Control).stats(),
            bulk: self.lane(Lane::Bulk).stats(),
            connections: self.connections.load(Ordering::Relaxed),
            handshake_failures: self.handshake_failures.snapshot(),
        }
    }
}

/// One lane of one peer.
pub(crate) struct LaneState {
    queue: Mutex<OutQueue>,
    /// Woken when a message is queued.
    pub(crate) ready: Notify,
    /// Whether the outbound connection is up; `send` refuses while it is not.
    pub(crate) connected: AtomicBool,
    pub(crate) counters: LaneCounters,
    /// Inbound delivery: the generation of the connection allowed to deliver. A newer
    /// connection from the same peer and lane takes over, and the older one may no longer
    /// deliver, so messages reach the caller in the order the peer queued them.
    pub(crate) delivery: tokio::sync::Mutex<u64>,
}

impl LaneState {
    fn new(limits: QueueLimits) -> Self {
        Self {
            queue: Mutex::new(OutQueue::new(limits)),
            ready: Notify::new(),
            connected: AtomicBool::new(false),
            counters: LaneCounters::default(),
            delivery: tokio::sync::Mutex::new(0),
        }
    }

    pub(crate) fn queue(&self) -> MutexGuard<'_, OutQueue> {
        // The queue's invariants hold between statements; a panic elsewhere cannot break them.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stats(&self) -> LaneStats {
        let (queued_messages, queued_bytes, peak_queued_bytes) = {
            let queue = self.queue();
            (queue.messages.len(), queue.bytes, queue.peak_bytes)
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LaneStats {
            connected: self.connected.load(Ordering::Relaxed),
            messages_sent: load(&self.counters.messages_sent),
            frames_sent: load(&self.counters.frames_sent),
            bytes_sent: load(&self.counters.bytes_sent),
            messages_received: load(&self.counters.messages_received),
            frames_received: load(&self.counters.frames_received),
            bytes_received: load(&self.counters.bytes_received),
            queued_messages: queued_messages as u64,
            queued_bytes: queued_bytes as u64,
            peak_queued_bytes: peak_queued_bytes as u64,
            dropped: load(&self.counters.dropped),
        }
    }
}

/// Messages waiting to be written to one peer on one lane, in order.
#[derive(Debug)]
pub(crate) struct OutQueue {
    messages: VecDeque<Bytes>,
    bytes: usize,
    peak_bytes: usize,
    limits: QueueLimits,
}

impl OutQueue {
    fn new(limits: QueueLimits) -> Self {
        Self {
            messages: VecDeque::new(),
            bytes: 0,
            peak_bytes: 0,
            limits,
        }
    }

    /// Whether a message of `len` bytes may join: both limits hold after it, or the queue is
    /// empty (a message larger than the byte limit travels alone).
    fn admits(&self, len: usize) -> bool {
        if self.messages.is_empty() {
            return true;
        }
        self.messages.len() < self.limits.max_messages
            && self.bytes.saturating_add(len) <= self.limits.max_bytes
    }

    fn push(&mut self, message: Bytes) {
        self.bytes += message.len();
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        self.messages.push_back(message);
    }

    /// The oldest message, left in the queue until [`OutQueue::pop_written`]: a message leaves
    /// the queue only once its last frame has been flushed to the socket, so one cut short by a
    /// broken connection is written again, whole, on the next one — and never twice, since the
    /// peer drops an unfinished message and a flushed one is never written again.
    pub(crate) fn front(&self) -> Option<Bytes> {
        self.messages.front().cloned()
    }

    pub(crate) fn pop_written(&mut self) {
        if let Some(message) = self.messages.pop_front() {
            self.bytes -= message.len();
        }
    }
}

#[cfg(test)]
mod tests;
