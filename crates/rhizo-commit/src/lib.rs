//! Rhizo's local commit protocol and replica: a transaction made only of algebraic operations
//! commits on one replica without coordination, and reaches every other replica exactly once,
//! in causal order, atomically, by delta anti-entropy.
//!
//! This crate is floor 3 of the workspace. It depends on `rhizo-clock` and `rhizo-algebra`,
//! does no I/O, reads no clock and uses no randomness. [`Replica`] is a pure state machine in the
//! shape of raft-rs's `RawNode`: the caller drives it and carries its [`Ready`] outputs.
//!
//! - [`LocalCommitProtocol`] is the roadmap's stateless protocol: `can_commit_locally`,
//!   `commit_local`, `merge_updates`, `merge_all`.
//! - [`Replica`] holds cells, commits locally, syncs with peers (push-pull digests and deltas),
//!   garbage-collects what every member has seen, and rebuilds itself from its records.
//! - [`PreparedCell`] and [`PreparedTransaction`] are the hot path's commit: a cell resolved
//!   once (schema and cell id), then committed to without building or hashing its key.
//! - [`wire`] encodes messages and records in a versioned postcard envelope.
//! - [`keyed`] is the roadmap's key-value surface (flat string keys, no schema) over the same
//!   rules: keyed operations write cells of one fixed schema, and merged updates count each
//!   commit once.
//!
//! ```
//! use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
//! use rhizo_clock::NodeId;
//! use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
//!
//! let schema = Schema::builder()
//!     .table("counters")
//!     .column("value", MergeType::Add, ValueType::Integer)
//!     .build()
//!     .unwrap();
//! let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let config = ReplicaConfig { members: vec![a, b], ..ReplicaConfig::default() };
//! let mut on_a = Replica::new(a, schema.clone(), config.clone());
//! let mut on_b = Replica::new(b, schema, config);
//!
//! let mut tx = AlgebraicTransaction::new();
//! tx.increment("counters", "page_views", "value", 1);
//! on_a.commit(tx.clone()).unwrap();
//! on_b.commit(tx).unwrap();
//!
//! // Carry messages until both are idle: push-pull anti-entropy.
//! for _ in 0..3 {
//!     on_a.sync_with(b);
//!     for (to, msg) in on_a.take_ready().messages { assert_eq!(to, b); on_b.step(a, msg).unwrap(); }
//!     for (to, msg) in on_b.take_ready().messages { assert_eq!(to, a); on_a.step(b, msg).unwrap(); }
//! }
//! assert_eq!(on_a.read("counters", "page_views", "value").unwrap(), AlgebraicValue::Integer(2));
//! assert_eq!(on_a.canonical_state(), on_b.canonical_state());
//! ```

mod cells;
mod error;
mod index;
mod key;
pub mod keyed;
mod protocol;
mod replica;
mod txn;
pub mod wire;

pub use error::{ErrorList, LocalCommitError, OperationList, Result};
pub use key::CellKey;
pub use protocol::{
    CellEffect, Effects, LocalCommitProtocol, MAX_OPS_PER_TRANSACTION, MAX_ROW_KEY_LEN,
    MergedState, OrderedUpdate, VersionedUpdate,
};
pub use replica::{
    CommitReceipt, CommitRecord, Delta, Message, OrderedOutcome, OriginRange, PreparedCell,
    PreparedTransaction, Ready, Record, Replica, ReplicaConfig, ReplicaSnapshot, ReplicaStats,
    SyncMessage, consensus_origin,
};
pub use txn::{
    AlgebraicOperation, AlgebraicTransaction, Elements, Operation, Operations, TransactionMetadata,
};

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
