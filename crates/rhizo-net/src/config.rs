//! The transport's configuration: plain structs, with defaults for everything that has a sensible
//! one. The file format comes with the node program.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rhizo_clock::NodeId;

use crate::frame::FRAME_OVERHEAD;
use crate::{Lane, NetError, Result};

/// Everything [`Transport::start`](crate::Transport::start) needs.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id. Under TLS it must be the subject alternative name (a DNS name) of
    /// `TlsFiles::node_cert`.
    pub node: NodeId,
    /// Increases every time this node starts (the caller keeps it, e.g. in its log). Peers
    /// compare it to tell a restart from a reconnection.
    pub incarnation: u64,
    /// The address to listen on, e.g. `0.0.0.0:7000` (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Nodes of another cluster are refused; at most [`TransportConfig::MAX_CLUSTER_ID_LEN`]
    /// bytes.
    pub cluster_id: String,
    /// The static membership: every node's id and the address peers dial to reach it. This
    /// node may be listed (its entry is not dialled). Only these nodes are accepted.
    pub members: BTreeMap<NodeId, String>,
    /// Mutual TLS, or plaintext for tests and trusted networks.
    pub security: Security,
    /// The largest frame, length prefix excluded. Larger messages are cut into frames of this
    /// size; a length prefix claiming more closes the connection.
    pub max_frame_bytes: usize,
    /// The largest message, on either side. It bounds what a peer can make this node buffer for
    /// one message, since pieces are only put together when the last one arrives.
    pub max_message_bytes: usize,
    /// Queue limits towards each peer on the control lane.
    pub control_queue: QueueLimits,
    /// Queue limits towards each peer on the bulk lane.
    pub bulk_queue: QueueLimits,
    /// Received messages (per lane) waiting for the caller before reading from peers pauses.
    pub inbound_capacity: usize,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// The time a new connection has to finish TCP, TLS and the Hello exchange.
    pub handshake_timeout: Duration,
    /// A connection on which nothing arrives for this long is closed (pings keep live ones).
    pub idle_timeout: Duration,
    /// Inbound connections allowed to be handshaking at once; more are closed at once.
    pub max_pending_handshakes: usize,
    /// How long `shutdown` lets queued messages be written before closing the connections.
    pub shutdown_grace: Duration,
}

/// How peers authenticate each other.
#[derive(Clone, Debug)]
pub enum Security {
    /// Mutual TLS 1.3 with certificates from the cluster's CA.
    Tls(TlsFiles),
    /// Plaintext, unauthenticated: anyone who can reach the port can claim any member's id.
    /// The transport logs a warning when it starts with this.
    Insecure,
}

/// PEM files of one node's TLS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The cluster CA's certificate(s): the only roots a peer's certificate may chain to.
    pub ca_cert: PathBuf,
    /// This node's certificate chain (leaf first); the leaf names this node's id as a DNS
    /// subject alternative name.
    pub node_cert: PathBuf,
    /// This node's private key (PKCS#8, PKCS#1 or SEC1).
    pub node_key: PathBuf,
}

/// The bounds of one peer's queue on one lane. A message is queued when both bounds still hold
/// after it, or when the queue is empty (so a message larger than `max_bytes` is still carried,
/// alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages queued at most.
    pub max_messages: usize,
    /// Bytes queued at most.
    pub max_bytes: usize,
}

impl QueueLimits {
    /// The control lane's default: Raft messages are small and Raft throttles itself.
    pub const CONTROL: QueueLimits = QueueLimits {
        max_messages: 4096,
        max_bytes: 16 << 20,
    };
    /// The bulk lane's default.
    pub const BULK: QueueLimits = QueueLimits {
        max_messages: 1024,
        max_bytes: 64 << 20,
    };
}

/// Reconnection delays: the n-th failed attempt in a row waits `initial · 2ⁿ`, at most `max`,
/// less a random fraction of at most `jitter` of it. The randomness is seeded, so a simulated
/// run reconnects at the same instants every time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The fraction (0 to 1) of each delay that is randomised away.
    pub jitter: f64,
    /// Seeds the jitter (mixed with the node, peer and lane, so links do not retry in step).
    pub seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            jitter: 0.5,
            seed: 0,
        }
    }
}

impl TransportConfig {
    /// The longest cluster id, in bytes.
    pub const MAX_CLUSTER_ID_LEN: usize = 64;
    /// The smallest `max_frame_bytes` allowed (a Hello or refusal must fit in one frame).
    pub const MIN_FRAME_BYTES: usize = 512;

    /// A configuration with every tunable at its default.
    pub fn new(
        node: NodeId,
        listen: impl Into<String>,
        cluster_id: impl Into<String>,
        members: BTreeMap<NodeId, String>,
        security: Security,
    ) -> Self {
        Self {
            node,
            incarnation: 0,
            listen: listen.into(),
            cluster_id: cluster_id.into(),
            members,
            security,
            max_frame_bytes: 64 << 10,
            max_message_bytes: 1 << 30,
            control_queue: QueueLimits::CONTROL,
            bulk_queue: QueueLimits::BULK,
            inbound_capacity: 1024,
            backoff: Backoff::default(),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            max_pending_handshakes: 64,
            shutdown_grace: Duration::from_secs(1),
        }
    }

    /// The queue limits of a lane.
    pub fn queue_limits(&self, lane: Lane) -> QueueLimits {
        match lane {
            Lane::Control => self.control_queue,
            Lane::Bulk => self.bulk_queue,
        }
    }

    /// The peers: every member but this node, in id order.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.members
            .iter()
            .filter(|(id, _)| **id != self.node)
            .map(|(id, address)| (*id, address.as_str()))
    }

    /// The largest payload of one frame.
    pub(crate) fn max_payload(&self) -> usize {
        self.max_frame_bytes - FRAME_OVERHEAD
    }

    /// Checks every setting; the error names the first one that cannot be used.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &'static str, reason: String| Err(NetError::InvalidConfig { field, reason });
        if self.cluster_id.len() > Self::MAX_CLUSTER_ID_LEN {
            return invalid(
                "cluster_id",
                format!("longer than {} bytes", Self::MAX_CLUSTER_ID_LEN),
            );
        }
        if self.max_frame_bytes < Self::MIN_FRAME_BYTES || self.max_frame_bytes > u32::MAX as usize
        {
            return invalid(
                "max_frame_bytes",
                format!("must be {} to 2^32 - 1", Self::MIN_FRAME_BYTES),
            );
        }
        if self.max_message_bytes == 0 {
            return invalid("max_message_bytes", "must be positive".into());
        }
        for (field, limits) in [
            ("control_queue", self.control_queue),
            ("bulk_queue", self.bulk_queue),
        ] {
            if limits.max_messages == 0 || limits.max_bytes == 0 {
                return invalid(field, "limits must be positive".into());
            }
        }
        if self.inbound_capacity == 0 || self.max_pending_handshakes == 0 {
            return invalid(
                "inbound_capacity / max_pending_handshakes",
                "must be positive".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.backoff.jitter)
            || self.backoff.initial.is_zero()
            || self.backoff.max < self.backoff.initial
        {
            return invalid(
                "backoff",
                "jitter in 0..=1 and 0 < initial <= max required".into(),
            );
        }
        if self.handshake_timeout.is_zero() || self.idle_timeout.is_zero() {
            return invalid(
                "handshake_timeout / idle_timeout",
                "must be positive".into(),
            );
        }
        if matches!(self.security, Security::Tls(_)) {
            for id in self.members.keys().chain([&self.node]) {
                let name = id.name();
                if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
                    return invalid(
                        "members",
                        format!("under TLS a node id must be a DNS name; {id} is not"),
                    );
                }
            }
        }
        Ok(())
    }
}
