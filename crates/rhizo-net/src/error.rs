//! The crate's one error type.

use std::io;

use rhizo_clock::NodeId;

use crate::Lane;

/// What can go wrong in the transport and the node. Every variant leaves them as they were: a
/// refused send queues nothing, a refused configuration starts nothing, a refused transaction
/// changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration cannot be used; `field` names the setting.
    #[error("invalid transport configuration: {field}: {reason}")]
    InvalidConfig {
        /// The setting at fault.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A TLS file could not be read or does not hold what it should.
    #[error("TLS file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS library refused the certificates or key.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured listen address.
        address: String,
        /// The socket error.
        source: io::Error,
    },
    /// `send` named a node that is not a peer of this transport (not in the membership, or this
    /// node itself).
    #[error("{peer} is not a peer of this node")]
    UnknownPeer {
        /// The node named.
        peer: NodeId,
    },
    /// The lane's connection to the peer is down: nothing was queued. On the control lane the
    /// caller reports the peer unreachable to Raft; on the bulk lane anti-entropy recovers it.
    #[error("{peer} is unreachable on the {lane} lane")]
    PeerUnreachable {
        /// The peer.
        peer: NodeId,
        /// The lane.
        lane: Lane,
    },
    /// The peer's queue for the lane is at its limit (the peer is slow or stalled): nothing was
    /// queued. Treated like [`NetError::PeerUnreachable`] by the caller.
    #[error("the {lane} queue to {peer} is full")]
    QueueFull {
        /// The peer.
        peer: NodeId,
        /// The lane.
        lane: Lane,
    },
    /// The message is larger than the configured largest message.
    #[error("a message of {len} bytes is larger than the largest message ({max} bytes)")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// `TransportConfig::max_message_bytes`.
        max: usize,
    },
    /// The transport (or the node) has been shut down.
    #[error("the node is shut down")]
    ShutDown,
    /// A membership change removed this node from its cluster: it takes no more writes (no
    /// member would take them from it) and should be stopped. Its reads still answer, from what
    /// it held when it learned of its removal.
    #[error("this node was removed from its cluster (learned from {by}); it takes no writes")]
    Removed {
        /// The member whose log showed the removal (this node itself when its own log did).
        by: NodeId,
    },
    /// The node's engine refused (a transaction's typed error, a storage failure…): nothing of
    /// what was refused changed.
    #[error(transparent)]
    Engine(#[from] rhizo_txn::TxnError),
    /// The node's runtime could not be started.
    #[error("cannot start the node's runtime: {0}")]
    Runtime(io::Error),
    /// A configuration file could not be read or parsed: an unknown key, a missing required
    /// one, a value of the wrong type (the reason names the key and its line).
    #[error("configuration file{}: {reason}", .path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    ConfigFile {
        /// The file, when it was read from one.
        path: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The metrics endpoint could not be started (its address is taken, or this process
    /// already has a metrics recorder).
    #[error("cannot start the metrics endpoint: {reason}")]
    Metrics {
        /// Why.
        reason: String,
    },
    /// A client could not reach a node's client listener, or lost its connection: refused at
    /// connect, a TLS handshake the node refused (no certificate, another CA), a closed socket.
    /// A request in flight when the connection broke may or may not have been done.
    #[error("connection to {address}: {reason}")]
    Connection {
        /// The node's client address.
        address: String,
        /// What happened.
        reason: String,
    },
    /// The node could not read the request (it closes the connection after saying so).
    #[error("the node refused a malformed request: {reason}")]
    MalformedRequest {
        /// What the node's decoder said.
        reason: String,
    },
    /// The node's answer could not be read, or does not answer the request.
    #[error("malformed response from the node: {reason}")]
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The words of a command do not make a request (an unknown verb, a missing value, a value
    /// that is not of its column's type).
    #[error("{reason}")]
    Usage {
        /// What is wrong, for the user.
        reason: String,
    },
    /// The node failed the request for a reason of its own (a storage error, a Raft library
    /// error) that has no typed form on the wire: its message. What the request asked may or
    /// may not have been done only when the message says so.
    #[error("the node failed: {reason}")]
    NodeFailure {
        /// The node's error message.
        reason: String,
    },
}

impl NetError {
    /// Whether this send error means "the peer cannot be reached now" — what the caller tells
    /// Raft (`report_unreachable`) for a control message.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            NetError::PeerUnreachable { .. } | NetError::QueueFull { .. }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
