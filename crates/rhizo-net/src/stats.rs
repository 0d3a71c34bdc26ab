//! Counters the transport keeps, and the snapshot it hands out ([`TransportStats`]) for the
//! caller to export as metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rhizo_clock::NodeId;

use crate::{CloseReason, RefusalReason};

/// A snapshot of the transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportStats {
    /// Per peer, in id order.
    pub peers: BTreeMap<NodeId, PeerStats>,
    /// Handshake failures of inbound connections that named no member (or never named one).
    pub unattributed_handshake_failures: BTreeMap<RefusalReason, u64>,
    /// Established connections closed, by reason (both directions, all peers).
    pub connection_closes: BTreeMap<CloseReason, u64>,
}

/// One peer's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerStats {
    /// The control lane.
    pub control: LaneStats,
    /// The bulk lane.
    pub bulk: LaneStats,
    /// Outbound connections established to the peer (both lanes), reconnections included.
    pub connections: u64,
    /// Handshakes with this peer that failed, by reason (both directions).
    pub handshake_failures: BTreeMap<RefusalReason, u64>,
}

/// One lane's counters towards and from one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaneStats {
    /// Whether the outbound connection is up (a send would be queued).
    pub connected: bool,
    /// Messages written to the peer.
    pub messages_sent: u64,
    /// Frames written (pieces of messages, handshakes and pings).
    pub frames_sent: u64,
    /// Frame bytes written, length prefixes included.
    pub bytes_sent: u64,
    /// Messages received whole from the peer.
    pub messages_received: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Frame bytes received, length prefixes included.
    pub bytes_received: u64,
    /// Messages queued now.
    pub queued_messages: u64,
    /// Bytes queued now.
    pub queued_bytes: u64,
    /// The most bytes ever queued at once.
    pub peak_queued_bytes: u64,
    /// Sends refused because the peer was unreachable or the queue full (on the bulk lane,
    /// dropped messages that anti-entropy recovers).
    pub dropped: u64,
}

/// The live counters of one lane of one peer.
#[derive(Debug, Default)]
pub(crate) struct LaneCounters {
    pub(crate) messages_sent: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl LaneCounters {
    pub(crate) fn frame_sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(bytes as u64 + LENGTH_PREFIX, Ordering::Relaxed);
    }

    pub(crate) fn frame_received(&self, bytes: usize) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64 + LENGTH_PREFIX, Ordering::Relaxed);
    }
}

/// The length prefix of every frame.
pub(crate) const LENGTH_PREFIX: u64 = 4;

/// A counter per reason.
#[derive(Debug)]
pub(crate) struct ReasonCounts<R>(Mutex<BTreeMap<R, u64>>);

impl<R: Ord + Copy> ReasonCounts<R> {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    pub(crate) fn add(&self, reason: R) {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(reason).or_insert(0) += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<R, u64> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
