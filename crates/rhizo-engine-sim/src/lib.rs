//! Rhizo's engines on the simulated network: the harness of `rhizo-txn`, kept out of the
//! production crate.
//!
//! - [`cluster`]: real [`rhizo_txn::Engine`]s, each on its own data directory, as nodes of a
//!   `rhizo-sim` simulation — loss, partitions, and crashes that are power losses (only what an
//!   engine synced survives) — for tests, benchmarks and notebook experiments.
//! - [`raft`]: bare Raft members ([`rhizo_txn::raft::RaftNode`] over a memory log) on the
//!   simulator with a register workload, the checkers their histories must pass (no split
//!   brain, no lost acknowledged write, linearizable registers), and the latency bench driver.
//! - [`mixed`]: three Raft engines serving bank transfers, compare-and-sets and increments of
//!   both paths through power losses, partitions, snapshots and a schema change; [`checkers`]
//!   judge what their clients were told (acknowledged compare-and-sets took effect, refused
//!   ones did not; transfers are serializable and conserve the total).
//!
//! Everything here is deterministic from a seed: the simulator's time is virtual and the
//! engines it runs sync their group commits at their tick, not on a wall-clock timer.

pub mod checkers;
pub mod cluster;
mod error;
pub mod mixed;
mod power;
pub mod raft;
#[cfg(test)]
mod testkit;

pub use error::{ClusterError, Result};
