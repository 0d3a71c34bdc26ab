//! Rhizo's embedded node: transactions in two modes over a durable, replicated engine.
//!
//! This crate is floor 5 of the workspace and the only one that does I/O (files under a data
//! directory). It builds on `rhizo-commit`'s pure [`rhizo_commit::Replica`]:
//!
//! - [`TransactionMode`]: `Coordinated` (the default: serializable) or `CoordinationFree`
//!   (algebraic operations only, committed locally at once).
//! - [`CoordinationFreeManager`]: one node's coordination-free replica, without I/O.
//! - [`Engine`]: a node opened on a directory — schema, a transaction builder, a checksummed
//!   segment log with a sync policy, crash recovery, compaction, and hooks that hand its
//!   messages to whatever carries them (the simulator in tests, a network later).
//! - [`Backend`]: who orders coordinated transactions — [`SingleNode`] (a node alone, the
//!   default) or Raft ([`raft::RaftNode`] over a [`raft::FileRaftLog`] in the same directory,
//!   for a cluster); messages of both kinds travel in one [`EngineMessage`] envelope.
//! - [`cluster::EngineCluster`]: engines on their own data directories over `rhizo-sim`'s
//!   simulated network, with partitions, crashes and restarts (tests, notebooks).
//!
//! ```
//! use rhizo_clock::NodeId;
//! use rhizo_txn::{Engine, EngineConfig, TransactionMode, roadmap_schema};
//! use rhizo_algebra::AlgebraicValue;
//!
//! let dir = std::env::temp_dir().join(format!("rhizo-txn-doc-{}", std::process::id()));
//! let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(roadmap_schema());
//! let mut engine = Engine::open(&dir, config.clone()).unwrap();
//!
//! let mut tx = engine.transaction(TransactionMode::CoordinationFree);
//! tx.increment("counters", "page_views", 1); // algebraic
//! tx.add_to_set("users", "user_123", "tags", "premium"); // algebraic
//! let outcome = tx.commit().unwrap();
//! assert!(outcome.durable);
//! drop(engine);
//!
//! // A restart recovers every acknowledged commit from the log.
//! let engine = Engine::open(&dir, config).unwrap();
//! assert_eq!(engine.read("counters", "page_views", "value").unwrap(), AlgebraicValue::Integer(1));
//! # drop(engine);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod batch;
pub mod cluster;
mod coordinated;
mod engine;
mod error;
mod log;
mod manager;
mod mode;
pub mod raft;
mod storage;

pub use batch::{BatchOp, BatchVerb};
pub use coordinated::{CoordinatedBackend, Decided, Proposal, RegisterWrite, SingleNode};
pub use engine::{
    Backend, CommitOutcome, DEFAULT_COLUMN, Engine, EngineConfig, EngineMessage, Submission,
    SyncPolicy, Transaction, roadmap_schema,
};
pub use error::{Finished, Result, TxnError};
pub use manager::{CoordinationFreeConfig, CoordinationFreeError, CoordinationFreeManager};
pub use mode::{CommitPath, TransactionMode};
pub use storage::{FsStorage, MemStorage, Storage};
