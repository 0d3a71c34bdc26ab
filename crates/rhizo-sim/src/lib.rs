//! A deterministic discrete-event network simulator for Rhizo nodes.
//!
//! This crate's one responsibility is to carry messages between nodes the way a bad network
//! would — late, out of order, twice, or not at all, across partitions, crashes and restarts —
//! in virtual time and reproducibly from one `u64` seed. It does not know what a node does:
//! anything implementing [`SimulatedNode`] runs on it (a `rhizo-commit` replica, a Raft node).
//!
//! On top of the network sit the pieces that put `rhizo-commit` to the test: [`ReplicaNode`]
//! drives the real `Replica` by its driver contract (durable log, recovery on restart, gossip
//! on the timer), with replica verbs on [`SimulatedCluster`] (`commit_on_node`,
//! `get_node_state`, `verify_convergence`, `run_until_converged`, `observe`); [`history`]
//! records what clients were told and what replicas showed; [`checkers`] judge it, one module
//! per invariant; [`workload`] generates seeded transactions; [`scenario`] holds the runs the
//! tests, the benches and `cargo xtask` share (throughput, the seeded chaos run); [`rounds`]
//! drives replicas of the roadmap's keyed schema in rounds, as the roadmap's simulator did.
//!
//! **Architecture invariant:** no I/O, no wall clock, no thread randomness and no hash-map
//! iteration order reach a result. Every random choice comes from a `ChaCha8Rng` stream derived
//! from the seed; events due at the same instant run in the order they were scheduled. The
//! [`seeds`] module is the only code that reads environment variables, and only tests call it.
//!
//! ```
//! use rhizo_clock::NodeId;
//! use rhizo_sim::{NodeCtx, SimulatedNode, SimulationBuilder};
//! use std::time::Duration;
//!
//! /// Remembers the largest number it has heard of and tells its gossip partners on change.
//! struct MaxNode { value: u64, unsent: bool }
//!
//! impl SimulatedNode for MaxNode {
//!     type Message = u64;
//!     type Durable = u64;
//!     type History = ();
//!     fn on_message(&mut self, _from: NodeId, v: u64, _ctx: &mut NodeCtx<'_, u64>) {
//!         if v > self.value { self.value = v; self.unsent = true; }
//!     }
//!     fn on_timer(&mut self, ctx: &mut NodeCtx<'_, u64>) {
//!         if std::mem::take(&mut self.unsent) { ctx.broadcast(self.value); }
//!     }
//!     fn durable(&self) -> u64 { self.value }
//!     fn is_idle(&self) -> bool { !self.unsent }
//!     fn message_bytes(_: &u64) -> usize { 8 }
//! }
//!
//! let mut cluster = SimulationBuilder::new()
//!     .nodes(5)
//!     .seed(42)
//!     .build(|_id, durable| MaxNode { value: durable.unwrap_or(0), unsent: false })
//!     .unwrap();
//! cluster.with_node(3, |node, _ctx| { node.value = 7; node.unsent = true; }).unwrap();
//! cluster.run_until_quiescent(Duration::from_secs(1)).unwrap();
//! cluster.verify_convergence_by(|node| node.value).unwrap();
//! assert_eq!(cluster.node(0).unwrap().value, 7);
//! ```

mod builder;
pub mod checkers;
mod cluster;
mod error;
pub mod history;
mod network;
mod node;
mod replica_node;
pub mod rounds;
pub mod scenario;
pub mod seeds;
mod stats;
#[cfg(test)]
mod testkit;
mod time;
mod trace;
pub mod workload;

pub use builder::{MAX_NODES, SimulationBuilder};
pub use cluster::SimulatedCluster;
pub use error::{Result, SimError};
pub use network::{GossipStrategy, LatencyModel, NetworkCondition, RegionMatrix};
pub use node::{NodeCtx, NodeRef, SimulatedNode};
pub use replica_node::{DurableLog, NodeCommit, NodeState, ReplicaNode};
pub use stats::{NodeStats, SimStats};
pub use time::SimTime;
