//! Rhizo's embedded node: one replica, its durable log, and the path its coordinated
//! transactions take.
//!
//! This crate is floor 5 of the workspace and the only one that touches files (under a data
//! directory it owns). It builds on `rhizo-commit`'s pure [`rhizo_commit::Replica`]:
//!
//! - [`Engine`]: a node opened on a directory. One transaction type —
//!   [`rhizo_commit::AlgebraicTransaction`], built through the [`rhizo_commit::Operations`]
//!   verbs by [`Engine::transaction`] or by hand — is validated once and either committed
//!   locally or ordered ([`Engine::submit`]), then logged with a [`SyncPolicy`]; crash recovery,
//!   compaction, and hooks that hand its messages to whatever carries them.
//! - [`TransactionMode`]: `Coordinated` (the default: serializable), `CoordinationFree`
//!   (algebraic operations only, committed locally at once) or `Auto`.
//! - [`Backend`]: who orders coordinated transactions — the single-node order (a node alone,
//!   the default) or Raft ([`raft::RaftNode`] over a [`raft::FileRaftLog`] in the same
//!   directory, for a cluster); messages of both kinds travel in one [`EngineMessage`].
//!
//! ```
//! use rhizo_algebra::AlgebraicValue;
//! use rhizo_clock::NodeId;
//! use rhizo_commit::Operations;
//! use rhizo_txn::{Engine, EngineConfig, TransactionMode, default_schema};
//!
//! let dir = std::env::temp_dir().join(format!("rhizo-txn-doc-{}", std::process::id()));
//! let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
//! let mut engine = Engine::open(&dir, config.clone()).unwrap();
//!
//! let mut tx = engine.transaction(TransactionMode::CoordinationFree);
//! tx.increment("counters", "page_views", "value", 1) // algebraic
//!     .add_to_set("users", "user_123", "tags", "premium"); // algebraic
//! let outcome = tx.commit().unwrap().committed().unwrap(); // a local commit is decided at once
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
mod config;
mod engine;
mod error;
mod log;
mod manager;
mod mode;
pub mod raft;
mod read_after;
mod storage;
#[cfg(test)]
mod testkit;
mod transaction;

pub use config::{Backend, DEFAULT_COLUMN, EngineConfig, SyncPolicy, default_schema};
pub use engine::{CommitOutcome, Engine, EngineMessage, Submission};
pub use error::{Finished, Result, TxnError};
pub use manager::CoordinationFreeError;
pub(crate) use manager::{CoordinationFreeConfig, CoordinationFreeManager};
pub use mode::{CommitPath, ReadConsistency, TransactionMode};
pub use read_after::ReadAfter;
pub use storage::{FsStorage, MemStorage, Storage, SyncHandle};
pub use transaction::Transaction;
