//! Rhizo's peer transport: how the nodes of a static cluster reach each other.
//!
//! TODO crate docs
mod backoff;
mod config;
mod conn;
mod error;
mod frame;
mod socket;
mod state;
mod stats;
mod tls;
mod transport;

pub use config::{Backoff, QueueLimits, Security, TlsFiles, TransportConfig};
pub use error::{NetError, Result};
pub use frame::{CloseReason, Lane, PROTOCOL_VERSION, RefusalReason};
#[cfg(feature = "turmoil")]
pub use socket::TurmoilNetwork;
pub use socket::{Io, Listener, Network, TokioNetwork};
pub use stats::{LaneStats, PeerStats, TransportStats};
pub use transport::{Inbound, InboundReceiver, Transport, TransportHandle};
