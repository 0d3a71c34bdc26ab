use std::io;

use rhizo_algebra::{AlgebraError, OpType, ValueType};
use rhizo_clock::{Bounded, NodeId, Quoted, VectorClock};
use rhizo_commit::{CellKey, LocalCommitError};

use crate::CoordinationFreeError;
use crate::raft::{ProposalId, RaftError};

/// Where a transaction stands once it can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Finished {
    /// `commit()` succeeded.
    Committed,
    /// `abort()` was called.
    Aborted,
    /// `commit()` failed: the error said why, and whether a new attempt may succeed
    /// ([`TxnError::is_retryable`]).
    Failed,
    /// It was closed holding no operation, so there was nothing to commit (a context manager
    /// whose block added nothing).
    Empty,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Committed => "committed",
            Self::Aborted => "aborted",
            Self::Failed => "failed",
            Self::Empty => "closed with nothing to commit",
        })
    }
}

/// Everything that can go wrong in the engine.
///
/// Errors about input (the first group) change nothing and leave the engine usable. Errors
/// about storage poison the engine: what reached the disk is unknown, so it refuses further
/// writes until it is reopened and recovers from its log.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A transaction with no operation.
    #[error("the transaction is empty")]
    EmptyTransaction,
    /// A transaction used after `commit()` or `abort()` (a failed commit included: the same
    /// transaction is never submitted twice, since a new one must read again).
    #[error("the transaction is already {0}; start a new one")]
    TransactionFinished(Finished),
    /// Operations refused by the schema: unknown table or column, wrong value type, NaN,
    /// an oversized set, an operation the column's merge type does not accept.
    #[error("invalid operations: {}", rhizo_commit::ErrorList(.errors))]
    InvalidOperations {
        /// Each offending cell with the reason.
        errors: Vec<(CellKey, AlgebraError)>,
    },
    /// A `CoordinationFree` transaction held operations that need coordination (register
    /// writes, or any operation on a register column). Nothing was applied.
    #[error(
        "a coordination-free transaction may hold only algebraic operations; these need \
         TransactionMode::Coordinated: {}", rhizo_commit::OperationList(.operations)
    )]
    NotAlgebraic {
        /// The offending cells and operation kinds.
        operations: Vec<(CellKey, OpType)>,
    },
    /// The commit would take a counter's value out of its type's range on this node.
    #[error("{key}: the result would overflow {value_type}")]
    Overflow {
        /// The cell.
        key: CellKey,
        /// The column's value type.
        value_type: ValueType,
    },
    /// A `compare_and_set` found another value. Nothing of the transaction was applied.
    #[error(
        "{key}: compare_and_set expected {} but found {}",
        Bounded(.expected),
        Bounded(.found)
    )]
    ConditionFailed {
        /// The register.
        key: CellKey,
        /// The value the transaction expected.
        expected: String,
        /// The value held.
        found: String,
    },
    /// An unknown transaction mode name.
    #[error(
        "unknown transaction mode {} (expected \"coordinated\", \"coordination_free\" or \"auto\")",
        Quoted(.name)
    )]
    UnknownMode {
        /// The name given.
        name: String,
    },
    /// A name (sync policy, backend, batch verb) that is not one of the valid ones.
    #[error("unknown {what} {}; valid names: {valid}", Quoted(.name))]
    UnknownName {
        /// What was being parsed.
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, for the message.
        valid: &'static str,
    },
    /// A schema change was refused (bad name, a column redefined with another merge type…).
    #[error("schema change refused: {0}")]
    Schema(AlgebraError),
    /// The engine's configuration is unusable.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The coordination-free manager refused something (a read of an unknown cell, a
    /// malformed message from a peer…).
    #[error(transparent)]
    CoordinationFree(Box<CoordinationFreeError>),
    /// A storage operation failed; the engine is poisoned until reopened.
    #[error("storage: {op} {name}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        name: String,
        /// The operating system's answer.
        source: io::Error,
    },
    /// An earlier storage failure left the log in an unknown state; reopen the engine.
    #[error("the engine is poisoned by an earlier storage failure ({reason}); reopen it")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
    },
    /// The log is damaged before its last record: recovery refuses to guess.
    #[error("log segment {segment} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: String,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log's records do not rebuild a replica.
    #[error("recovery failed: {0}")]
    Recovery(Box<LocalCommitError>),
    /// No Raft leader is known (an election is under way, or this node is cut off from a
    /// quorum). Nothing was proposed; retry after an election timeout.
    #[error("no Raft leader is known; nothing was proposed, retry after an election")]
    NoLeader,
    /// A read was to see commits this node does not hold yet (`missing`: per origin, the
    /// highest commit it lacks); nothing was read. They reach it by anti-entropy (or the log):
    /// retry shortly, or read where they were made.
    #[error("this node does not hold yet the commits the read must see: {missing}")]
    NotCaughtUp {
        /// Per origin, the highest commit the read must see and this node lacks.
        missing: VectorClock,
    },
    /// A transaction of a batch was proposed to a Raft group and is not decided yet (a batch
    /// commits only what is decided at once): its outcome comes from `Engine::take_outcomes`
    /// under this proposal id.
    #[error("the transaction was proposed to the Raft group and awaits its outcome ({proposal:?})")]
    Undecided {
        /// The proposal.
        proposal: ProposalId,
    },
    /// A batch stopped at a refused transaction: `committed` transactions before it stay
    /// committed; its first operation is operation `failed_at` of the batch, where a retry
    /// resumes to apply every operation exactly once.
    #[error(
        "the batch stopped after {committed} committed transactions, at the transaction \
         starting with operation {failed_at}: {source}"
    )]
    BatchStopped {
        /// Transactions committed before the refused one.
        committed: usize,
        /// The index (in the batch) of the refused transaction's first operation.
        failed_at: usize,
        /// Why it was refused.
        source: Box<TxnError>,
    },
    /// A register a coordinated transaction read held another value at the transaction's place
    /// in the log: it was written in between. Nothing was applied; read again and retry.
    #[error(
        "{key} was read as {} but holds {} at the transaction's place in the log: read again \
         and retry",
        Bounded(.expected),
        Bounded(.found)
    )]
    ReadConflict {
        /// The register.
        key: CellKey,
        /// The value the transaction read, displayed.
        expected: String,
        /// The value it held, displayed.
        found: String,
    },
    /// The Raft path failed (a timeout with an unknown outcome, a damaged or unwritable Raft
    /// log, a message from outside the group…).
    #[error(transparent)]
    Raft(Box<RaftError>),
    /// Another engine (in this process or another) owns the data directory; nothing was read
    /// or changed. One directory holds one node, opened by one engine at a time.
    #[error(
        "the data directory {dir} is in use by another engine (in this or another process); \
         close that one first"
    )]
    DirectoryLocked {
        /// The directory.
        dir: String,
    },
    /// The data directory belongs to another node.
    #[error("the data directory belongs to node {found}, not {expected}")]
    WrongNode {
        /// The node this engine was configured as.
        expected: NodeId,
        /// The node the log names.
        found: NodeId,
    },
}

impl TxnError {
    /// Whether the error is about the caller's input, leaving the engine unchanged and usable.
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            Self::Io { .. }
                | Self::Poisoned { .. }
                | Self::Corrupt { .. }
                | Self::Recovery(_)
                | Self::WrongNode { .. }
                | Self::DirectoryLocked { .. }
                | Self::NoLeader
                | Self::Undecided { .. }
                | Self::NotCaughtUp { .. }
                | Self::ReadConflict { .. }
                | Self::Raft(_)
        )
    }

    /// Whether a new transaction doing the same work may succeed where this one failed: the
    /// cause is transient (a read conflict, no leader yet) or the outcome is not known (the
    /// proposal is undecided, timed out or was interrupted: it may still commit, so read
    /// before trying again). `false` for everything the engine refused on its merits (the
    /// same input fails the same way) and for storage failures (reopen the engine first).
    ///
    /// ```
    /// use rhizo_txn::TxnError;
    /// assert!(TxnError::NoLeader.is_retryable());
    /// assert!(!TxnError::EmptyTransaction.is_retryable()); // the same input fails the same way
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::ReadConflict { .. }
            | Self::NoLeader
            | Self::Undecided { .. }
            | Self::NotCaughtUp { .. } => true,
            Self::Raft(err) => matches!(
                **err,
                RaftError::NoLeader
                    | RaftError::Timeout { .. }
                    | RaftError::OutcomeUnknown { .. }
                    | RaftError::Overtaken { .. }
                    | RaftError::Interrupted
                    | RaftError::MembershipPending
                    | RaftError::LeaderTransfer { .. }
                    | RaftError::NotDrained { .. }
            ),
            Self::BatchStopped { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// Maps a Raft-path failure to the engine's vocabulary.
    pub(crate) fn from_raft(err: RaftError) -> Self {
        match err {
            RaftError::NoLeader => Self::NoLeader,
            RaftError::Refused(inner) => Self::from_commit(*inner),
            other => Self::Raft(Box::new(other)),
        }
    }

    /// Maps a transaction the log ordered but that took no effect (a compare-and-set that
    /// found another value, a float leaving the finite range).
    pub(crate) fn from_refusal(err: LocalCommitError) -> Self {
        if let LocalCommitError::ReadConflict {
            key,
            expected,
            found,
        } = err
        {
            return Self::ReadConflict {
                key: *key,
                expected,
                found,
            };
        }
        if let LocalCommitError::InvalidOperations { errors } = &err
            && let [(key, AlgebraError::ConditionFailed { expected, found })] = errors.as_slice()
        {
            return Self::ConditionFailed {
                key: key.clone(),
                expected: expected.clone(),
                found: found.clone(),
            };
        }
        Self::from_commit(err)
    }

    /// Maps a refusal of the replica's commit to the engine's vocabulary.
    pub(crate) fn from_commit(err: LocalCommitError) -> Self {
        match err {
            LocalCommitError::EmptyTransaction => Self::EmptyTransaction,
            LocalCommitError::RequiresCoordination { operations } => {
                Self::NotAlgebraic { operations }
            }
            LocalCommitError::InvalidOperations { errors } => match errors.as_slice() {
                [(key, AlgebraError::Overflow { value_type })] => Self::Overflow {
                    key: key.clone(),
                    value_type: *value_type,
                },
                _ => Self::InvalidOperations { errors },
            },
            LocalCommitError::UnknownCell { key, source } => Self::InvalidOperations {
                errors: vec![(*key, *source)],
            },
            other => Self::from(CoordinationFreeError::from(other)),
        }
    }
}

impl From<CoordinationFreeError> for TxnError {
    fn from(err: CoordinationFreeError) -> Self {
        Self::CoordinationFree(Box::new(err))
    }
}

/// This crate's result type.
pub type Result<T, E = TxnError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use rhizo_clock::NodeId;

    use super::*;

    fn key() -> CellKey {
        CellKey::new("users", "u", "email")
    }

    #[test]
    fn only_transient_causes_and_unknown_outcomes_are_retryable() {
        let proposal = ProposalId {
            node: NodeId::numbered(0),
            incarnation: 1,
            seq: 2,
        };
        let retryable = [
            TxnError::ReadConflict {
                key: key(),
                expected: "1".into(),
                found: "2".into(),
            },
            TxnError::NoLeader,
            TxnError::Undecided { proposal },
            TxnError::NotCaughtUp {
                missing: rhizo_clock::VectorClock::new().with_node(NodeId::numbered(1), 4),
            },
            TxnError::Raft(Box::new(RaftError::Timeout { ticks: 3 })),
            TxnError::Raft(Box::new(RaftError::Interrupted)),
            TxnError::Raft(Box::new(RaftError::Overtaken { index: 7 })),
            TxnError::BatchStopped {
                committed: 4,
                failed_at: 9,
                source: Box::new(TxnError::NoLeader),
            },
        ];
        for err in &retryable {
            assert!(err.is_retryable(), "{err}");
        }
        let final_ = [
            TxnError::EmptyTransaction,
            TxnError::TransactionFinished(Finished::Failed),
            TxnError::InvalidOperations {
                errors: vec![(
                    key(),
                    AlgebraError::NonFiniteFloat {
                        bits: f64::NAN.to_bits(),
                    },
                )],
            },
            TxnError::Overflow {
                key: key(),
                value_type: ValueType::Integer,
            },
            TxnError::ConditionFailed {
                key: key(),
                expected: "1".into(),
                found: "2".into(),
            },
            TxnError::Poisoned {
                reason: "disk full".into(),
            },
            TxnError::Raft(Box::new(RaftError::Storage {
                reason: "disk full".into(),
            })),
            TxnError::BatchStopped {
                committed: 0,
                failed_at: 0,
                source: Box::new(TxnError::EmptyTransaction),
            },
        ];
        for err in &final_ {
            assert!(!err.is_retryable(), "{err}");
        }
    }

    #[test]
    fn a_finished_transaction_says_how_it_finished_and_what_to_do() {
        let cases = [
            (Finished::Committed, "committed"),
            (Finished::Aborted, "aborted"),
            (Finished::Failed, "failed"),
            (Finished::Empty, "closed with nothing to commit"),
        ];
        for (finished, said) in cases {
            assert_eq!(
                TxnError::TransactionFinished(finished).to_string(),
                format!("the transaction is already {said}; start a new one")
            );
        }
    }
}
