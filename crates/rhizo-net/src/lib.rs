//! Rhizo's networked node: how the nodes of a static cluster reach each other, and how programs
//! reach a node.
//!
//! This crate is floor 6 of the workspace. Its transport carries opaque byte strings between the
//! members of a cluster — it does not know what an engine, a delta or a Raft message is — over
//! TCP with mutual TLS 1.3, on two lanes per peer, with bounded queues and reconnection. The node
//! loop that drives one `rhizo_txn::Engine` sits on top of it ([`Node`], [`NodeHandle`]); beside
//! it, the client listener and its client ([`Client`], [`AsyncClient`]), the node program's
//! config file ([`ConfigFile`], `docs/config.md`), metrics ([`metrics`], `docs/metrics.md`) and
//! certificates ([`pki`]). `docs/protocol.md` is the peer and client protocols, written down.
//!
//! # The seam to the node loop
//!
//! * [`Transport::start`]`(config, network)` binds, starts the tasks on the current tokio
//!   runtime and returns a [`TransportHandle`] and an [`InboundReceiver`].
//! * [`TransportHandle::send`]`(peer, lane, bytes)` queues a message and returns at once; the
//!   handle is `Clone + Send + Sync`, callable from any thread. It refuses (queues nothing) with
//!   [`NetError::PeerUnreachable`] when the lane's connection is down and
//!   [`NetError::QueueFull`] when the peer's queue is at its limit. For a control message the
//!   caller tells Raft the peer is unreachable ([`NetError::is_unreachable`]) and Raft's flow
//!   control throttles; a refused bulk message is dropped, counted, and recovered by the next
//!   digest exchange.
//! * [`InboundReceiver::recv`] yields [`Inbound::Message`]`{ from, lane, bytes }`, and
//!   [`Inbound::PeerUp`]`{ peer, incarnation, restarted }` / [`Inbound::PeerDown`] when the
//!   control connection to a peer comes up or goes down. `restarted` says the peer came back as
//!   a new incarnation: resynchronise with it by digest.
//! * [`TransportHandle::stats`] is a snapshot of per-peer, per-lane counters (frames, bytes,
//!   messages, queue depth, drops, connections, handshake failures by reason) for metrics.
//! * [`TransportHandle::shutdown`] closes every connection and waits for every task.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use rhizo_clock::NodeId;
//! use rhizo_net::{Inbound, Lane, Security, TlsFiles, TokioNetwork, Transport, TransportConfig};
//!
//! # async fn run() -> Result<(), rhizo_net::NetError> {
//! let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let members = BTreeMap::from([(a, "10.0.0.1:7000".to_owned()), (b, "10.0.0.2:7000".to_owned())]);
//! let tls = TlsFiles { ca_cert: "ca.pem".into(), node_cert: "a.crt".into(), node_key: "a.key".into() };
//! let config = TransportConfig::new(a, "0.0.0.0:7000", "prod", members, Security::Tls(tls));
//! let (handle, mut inbound) = Transport::start(config, TokioNetwork).await?;
//! while let Some(event) = inbound.recv().await {
//!     match event {
//!         Inbound::PeerUp { peer, .. } => { let _ = handle.send(peer, Lane::Control, b"hello".to_vec()); }
//!         Inbound::Message { from, lane, bytes } => { /* hand to the engine */ }
//!         Inbound::PeerDown { .. } => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! * **Identity.** Under [`Security::Tls`] a node is its certificate: a peer is accepted only
//!   with a certificate chaining to the cluster CA, whose DNS subject alternative name is the
//!   node id it claims, and an id in the membership. The dialer checks the listener's certificate
//!   names the node it dialled (the TLS server name); the listener checks the dialer's names the
//!   id of its Hello. [`Security::Insecure`] is plaintext and logs a warning at start.
//! * **Connections.** Each node dials each peer once per lane and writes only on the connections
//!   it dialled; it reads messages only from the connections it accepted. There is no tie to
//!   break between two nodes dialling each other, and each direction reconnects on its own.
//! * **Two lanes, two connections.** Control (Raft) and bulk (anti-entropy) each have their own
//!   connection, queue and inbound channel, rather than one connection with a strict-priority
//!   writer: a priority writer still puts a control frame behind the bulk bytes already in the
//!   socket buffers and TLS records (up to megabytes on a fast link), while separate connections
//!   share nothing but the wire, and the receiver drains control first
//!   ([`InboundReceiver::recv`]).
//! * **Order and duplicates.** A message leaves its queue only when its last frame has been
//!   flushed to the socket, so one cut short by a broken connection is sent again whole on the
//!   next connection, and the receiver, which drops unfinished messages, never sees it twice. A
//!   newer inbound connection from the same peer and lane replaces the older one before
//!   delivering, so messages reach the caller in the order they were queued.
//! * **Bounded memory.** Queues are bounded in messages and bytes per peer and lane; frames are
//!   at most `max_frame_bytes` (a longer length prefix closes the connection before anything is
//!   allocated for it); a message is reassembled from the bytes that actually arrive, up to
//!   `max_message_bytes`; inbound channels are bounded, and a full one stops reading (TCP pushes
//!   back on the sender).
//! * **Sockets.** Everything is generic over [`Network`]: [`TokioNetwork`] in production and, with
//!   the `turmoil` feature, `TurmoilNetwork` in deterministic simulation — the same code.
//!   Time is tokio's, reconnection jitter comes from a seeded generator, and every `select!` is
//!   `biased` (tokio otherwise polls its branches in a random order), so a simulated run is a
//!   function of its seed.

mod backoff;
mod client;
mod config;
mod config_file;
mod conn;
mod error;
mod frame;
pub mod metrics;
mod node;
pub mod pki;
mod socket;
mod state;
mod stats;
#[cfg(test)]
mod testkit;
mod tls;
mod transport;

pub use client::{
    AsyncClient, Client, ClientListenerConfig, ClientSecurity, ClientTls, OPERATION_SEPARATOR,
    protocol::CLIENT_PROTOCOL_VERSION, transaction_from_words,
};
pub use config::{Backoff, QueueLimits, Security, TlsFiles, TransportConfig};
pub use config_file::{
    ClientSection, ColumnSection, ConfigFile, EngineSection, MetricsSection, RaftSection,
    SyncSection, TlsSection, TransportSection,
};
pub use error::{NetError, Result};
pub use frame::{CloseReason, Lane, PROTOCOL_VERSION, RefusalReason};
pub use metrics::MetricsConfig;
pub use node::{
    MemberInfo, MembershipChange, Node, NodeConfig, NodeHandle, NodeStatus, NodeTransaction,
    RaftStatus,
};
#[cfg(feature = "turmoil")]
pub use socket::TurmoilNetwork;
pub use socket::{Io, Listener, Network, TokioNetwork};
pub use stats::{LaneStats, PeerStats, TransportStats};
pub use transport::{Inbound, InboundReceiver, Transport, TransportHandle};

/// The README's Rust examples, compiled and run as doctests so they cannot go stale (here,
/// the one crate that depends on every crate they use).
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
