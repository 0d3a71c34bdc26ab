//! The seam for coordinated commits: a backend decides the order of coordinated transactions.
//!
//! [`SingleNode`] is this node's own log order, serializable because the engine applies one
//! transaction at a time; the engine applies what it decides with `Replica::apply_ordered`.
//! Under `Backend::Raft` the engine drives a [`crate::raft::RaftNode`] instead, which orders
//! transactions by its log and applies them the same way on every member.

use std::fmt;

use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicTransaction, CellKey};

use crate::Result;

/// One write to a register column.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterWrite {
    /// Overwrite the value.
    Put {
        /// The register.
        key: CellKey,
        /// The new value.
        value: AlgebraicValue,
    },
    /// Overwrite only if the value is `expected` (compared when the transaction is applied,
    /// in the coordinated order).
    CompareAndSet {
        /// The register.
        key: CellKey,
        /// The value required.
        expected: AlgebraicValue,
        /// The new value.
        new: AlgebraicValue,
    },
}

impl RegisterWrite {
    /// The register written.
    pub fn key(&self) -> &CellKey {
        match self {
            Self::Put { key, .. } | Self::CompareAndSet { key, .. } => key,
        }
    }

    /// The operation kind.
    pub fn op_type(&self) -> rhizo_algebra::OpType {
        match self {
            Self::Put { .. } => rhizo_algebra::OpType::GenericOverwrite,
            Self::CompareAndSet { .. } => rhizo_algebra::OpType::GenericConditional,
        }
    }
}

/// A coordinated transaction as proposed: register writes and algebraic operations that must
/// take effect together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proposal {
    /// Register writes, in the order the transaction made them.
    pub registers: Vec<RegisterWrite>,
    /// The algebraic operations (they also commute with coordination-free commits).
    pub algebraic: AlgebraicTransaction,
}

/// A proposal with its place in the coordinated order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// Position in the coordinated order: 1, 2, 3… never reused, also across restarts.
    pub sequence: u64,
    /// What was decided.
    pub proposal: Proposal,
}

/// Decides the order in which coordinated transactions apply.
pub trait CoordinatedBackend: fmt::Debug + Send {
    /// The backend's name, for messages and stats.
    fn name(&self) -> &'static str;

    /// Submits a proposal. The decision comes out of [`CoordinatedBackend::take_decided`] — at
    /// once for a single node, once a quorum agrees for Raft.
    fn propose(&mut self, proposal: Proposal) -> Result<()>;

    /// Decided proposals not yet applied, in order.
    fn take_decided(&mut self) -> Vec<Decided>;

    /// The last sequence number decided.
    fn last_sequence(&self) -> u64;

    /// Resets the backend after recovery: `sequence` is the last one the log holds.
    fn restore(&mut self, sequence: u64);

    /// Gives back sequence numbers decided but not applied (refused at apply time), when the
    /// backend may: a single node never made them visible anywhere.
    fn release(&mut self, sequence: u64);
}

/// The coordinated path until Raft lands: this node's log order.
#[derive(Debug, Default, Clone)]
pub struct SingleNode {
    last: u64,
    decided: Vec<Decided>,
}

impl SingleNode {
    /// A backend that has decided nothing.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CoordinatedBackend for SingleNode {
    fn name(&self) -> &'static str {
        "single-node"
    }

    fn propose(&mut self, proposal: Proposal) -> Result<()> {
        self.last += 1;
        self.decided.push(Decided {
            sequence: self.last,
            proposal,
        });
        Ok(())
    }

    fn take_decided(&mut self) -> Vec<Decided> {
        std::mem::take(&mut self.decided)
    }

    fn last_sequence(&self) -> u64 {
        self.last
    }

    fn restore(&mut self, sequence: u64) {
        self.last = sequence;
        self.decided.clear();
    }

    fn release(&mut self, sequence: u64) {
        if sequence == self.last {
            self.last -= 1;
        }
    }
}
