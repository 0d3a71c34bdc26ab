//! The harness behind `cargo xtask chaos`: real `rhizo agent` processes on 127.0.0.1 under real
//! faults. Every peer link crosses an in-process fault proxy ([`proxy`]); a nemesis drawn from
//! the seed ([`nemesis`]) kills, restarts, pauses and resumes agents and partitions, blackholes,
//! delays and cuts links; clients ([`workload`]) commit a mixed workload through each node's
//! client listener and record what they were told; after the final heal and a bounded settle,
//! the [`checkers`] compare every node with that record (see docs/chaos.md).

pub mod checkers;
pub mod cluster;
pub mod error;
pub mod nemesis;
pub mod options;
pub mod proxy;
pub mod run;
pub mod workload;

pub use error::{ChaosError, Result};
