//! What travels between a client and a node's client listener: one postcard-encoded
//! [`Request`] or [`Response`] per length-prefixed frame (at most
//! [`rhizo_commit::wire::MAX_FRAME_LEN`] bytes), and the serializable form of the engine's
//! errors ([`WireError`]) that maps back to the same `TxnError` on the client.

use rhizo_algebra::{AlgebraError, AlgebraicValue, ColumnSpec, OpType, Schema, ValueType};
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{AlgebraicTransaction, CellKey, LocalCommitError};
use rhizo_txn::raft::{ProposalId, RaftError};
use rhizo_txn::{
    CommitOutcome, CoordinationFreeError, Finished, ReadAfter, ReadConsistency, TransactionMode,
    TxnError,
};
use serde::{Deserialize, Serialize};

use crate::{MemberInfo, MembershipChange, NetError, NodeStatus};

/// The client protocol's version; the node names it in its greeting.
pub const CLIENT_PROTOCOL_VERSION: u32 = 4;

/// One request. The variant order is the wire format: append, never reorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Commit one transaction (see `NodeHandle::commit`).
    Commit {
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    },
    /// Read one cell on the node.
    Read {
        table: String,
        row: String,
        column: String,
    },
    /// The node's status.
    Status,
    /// Declare a column (ordered through Raft on a cluster).
    DeclareColumn {
        table: String,
        column: String,
        spec: ColumnSpec,
    },
    /// The schema in force on the node.
    Schema,
    /// The cluster's members as the node has applied them.
    Members,
    /// Change the membership through Raft (answered once the node applied the change).
    ChangeMembers(MembershipChange),
    /// Read several cells from one state of the node (see `NodeHandle::read_cells`).
    ReadCells {
        consistency: ReadConsistency,
        keys: Vec<CellKey>,
    },
    /// `ReadCells` once the node holds the commits `after` names (see
    /// `NodeHandle::read_cells_after`).
    ReadCellsAfter {
        consistency: ReadConsistency,
        keys: Vec<CellKey>,
        after: ReadAfter,
    },
}

/// One response. The variant order is the wire format: append, never reorder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Response {
    /// The node's first frame on every connection.
    Ready { protocol_version: u32, node: NodeId },
    /// The transaction committed.
    Committed(CommitOutcome),
    /// The cell's value.
    Value(AlgebraicValue),
    /// The node's status.
    Status(Box<NodeStatus>),
    /// The column is declared.
    Declared,
    /// The schema.
    Schema(Schema),
    /// The request was refused; nothing it asked for changed.
    Refused(WireError),
    /// The cluster's members.
    Members(Vec<MemberInfo>),
    /// The membership change applied on the node.
    MembersChanged,
    /// The cells' values, in the order the request named them.
    Values(Vec<AlgebraicValue>),
}

/// The serializable form of what a node can answer a request with instead of doing it: the
/// engine's input and outcome errors one for one, so the client rebuilds the very `TxnError`
/// an embedded caller would get ([`WireError::into_net`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireError {
    EmptyTransaction,
    TransactionFinished(Finished),
    InvalidOperations {
        errors: Vec<(CellKey, AlgebraError)>,
    },
    NotAlgebraic {
        operations: Vec<(CellKey, OpType)>,
    },
    Overflow {
        key: CellKey,
        value_type: ValueType,
    },
    ConditionFailed {
        key: CellKey,
        expected: String,
        found: String,
    },
    ReadConflict {
        key: CellKey,
        expected: String,
        found: String,
    },
    UnknownMode {
        name: String,
    },
    Schema(AlgebraError),
    Config {
        reason: String,
    },
    /// `TxnError::CoordinationFree(NonAlgebraic)`.
    NonAlgebraic {
        operations: Vec<(CellKey, OpType)>,
    },
    /// `TxnError::CoordinationFree(Replica(..))` of the replica's input errors.
    Replica(ReplicaRefusal),
    Poisoned {
        reason: String,
    },
    Corrupt {
        segment: String,
        offset: u64,
        reason: String,
    },
    NoLeader,
    Undecided {
        proposal: ProposalId,
    },
    RaftTimeout {
        ticks: u32,
    },
    RaftOutcomeUnknown {
        index: u64,
    },
    RaftInterrupted,
    RaftOvertaken {
        index: u64,
    },
    DirectoryLocked {
        dir: String,
    },
    WrongNode {
        expected: NodeId,
        found: NodeId,
    },
    /// The node is shutting down.
    ShutDown,
    /// The request did not decode, or was larger than a frame.
    MalformedRequest {
        reason: String,
    },
    /// A failure of the node itself that has no typed form on the wire (a storage error's
    /// `io::Error`, a Raft library error): its message.
    NodeFailure {
        reason: String,
    },
    /// A membership change named a node that is not a member.
    UnknownMember {
        node: NodeId,
    },
    /// A membership change would add a member again.
    AlreadyMember {
        node: NodeId,
    },
    /// A membership change would remove the last voter.
    LastVoter {
        node: NodeId,
    },
    /// Another membership change was in flight until the node's commit timeout.
    MembershipPending,
    /// The leader was asked to remove itself and hands leadership to `to` first.
    LeaderTransfer {
        to: NodeId,
    },
    /// A membership change removed the node: it takes no writes (`by` told it).
    Removed {
        by: NodeId,
    },
    /// The node is retired by a draining removal: it takes no writes.
    Retired {
        node: NodeId,
    },
    /// A draining removal of `node` did not finish within the node's commit timeout.
    NotDrained {
        node: NodeId,
    },
    /// The node did not come to hold the commits a read was to see in time.
    NotCaughtUp {
        missing: VectorClock,
    },
}

/// The replica's refusals a request can meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum ReplicaRefusal {
    Read {
        key: CellKey,
        source: AlgebraError,
    },
    UnknownCell {
        key: CellKey,
        source: AlgebraError,
    },
    RowKeyTooLong {
        key: CellKey,
        len: usize,
        max: usize,
    },
    TransactionTooLarge {
        len: usize,
        max: usize,
    },
    SchemaBehind {
        needed: u64,
        held: u64,
    },
}

impl ReplicaRefusal {
    fn of(err: &LocalCommitError) -> Option<Self> {
        Some(match err {
            LocalCommitError::Read { key, source } => Self::Read {
                key: (**key).clone(),
                source: (**source).clone(),
            },
            LocalCommitError::UnknownCell { key, source } => Self::UnknownCell {
                key: (**key).clone(),
                source: (**source).clone(),
            },
            LocalCommitError::RowKeyTooLong { key, len, max } => Self::RowKeyTooLong {
                key: (**key).clone(),
                len: *len,
                max: *max,
            },
            LocalCommitError::TransactionTooLarge { len, max } => Self::TransactionTooLarge {
                len: *len,
                max: *max,
            },
            LocalCommitError::SchemaBehind { needed, held } => Self::SchemaBehind {
                needed: *needed,
                held: *held,
            },
            _ => return None,
        })
    }

    fn into_commit_error(self) -> LocalCommitError {
        match self {
            Self::Read { key, source } => LocalCommitError::Read {
                key: Box::new(key),
                source: Box::new(source),
            },
            Self::UnknownCell { key, source } => LocalCommitError::UnknownCell {
                key: Box::new(key),
                source: Box::new(source),
            },
            Self::RowKeyTooLong { key, len, max } => LocalCommitError::RowKeyTooLong {
                key: Box::new(key),
                len,
                max,
            },
            Self::TransactionTooLarge { len, max } => {
                LocalCommitError::TransactionTooLarge { len, max }
            }
            Self::SchemaBehind { needed, held } => LocalCommitError::SchemaBehind { needed, held },
        }
    }
}

impl WireError {
    /// The wire form of what the node answered a request with.
    pub(crate) fn of(err: &NetError) -> Self {
        match err {
            NetError::Engine(txn) => Self::of_txn(txn),
            NetError::ShutDown => Self::ShutDown,
            NetError::Removed { by } => Self::Removed { by: *by },
            other => Self::NodeFailure {
                reason: other.to_string(),
            },
        }
    }

    fn of_txn(err: &TxnError) -> Self {
        let failure = || Self::NodeFailure {
            reason: err.to_string(),
        };
        match err {
            TxnError::EmptyTransaction => Self::EmptyTransaction,
            TxnError::TransactionFinished(how) => Self::TransactionFinished(*how),
            TxnError::InvalidOperations { errors } => Self::InvalidOperations {
                errors: errors.clone(),
            },
            TxnError::NotAlgebraic { operations } => Self::NotAlgebraic {
                operations: operations.clone(),
            },
            TxnError::Overflow { key, value_type } => Self::Overflow {
                key: key.clone(),
                value_type: *value_type,
            },
            TxnError::ConditionFailed {
                key,
                expected,
                found,
            } => Self::ConditionFailed {
                key: key.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            TxnError::ReadConflict {
                key,
                expected,
                found,
            } => Self::ReadConflict {
                key: key.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            TxnError::UnknownMode { name } => Self::UnknownMode { name: name.clone() },
            TxnError::Schema(source) => Self::Schema(source.clone()),
            TxnError::Config { reason } => Self::Config {
                reason: reason.clone(),
            },
            TxnError::CoordinationFree(inner) => match &**inner {
                CoordinationFreeError::NonAlgebraic { operations } => Self::NonAlgebraic {
                    operations: operations.clone(),
                },
                CoordinationFreeError::Replica(replica) => {
                    ReplicaRefusal::of(replica).map_or_else(failure, Self::Replica)
                }
            },
            TxnError::Poisoned { reason } => Self::Poisoned {
                reason: reason.clone(),
            },
            TxnError::Corrupt {
                segment,
                offset,
                reason,
            } => Self::Corrupt {
                segment: segment.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            TxnError::NoLeader => Self::NoLeader,
            TxnError::Undecided { proposal } => Self::Undecided {
                proposal: *proposal,
            },
            TxnError::NotCaughtUp { missing } => Self::NotCaughtUp {
                missing: missing.clone(),
            },
            TxnError::Raft(raft) => match &**raft {
                RaftError::NoLeader => Self::NoLeader,
                RaftError::Timeout { ticks } => Self::RaftTimeout { ticks: *ticks },
                RaftError::OutcomeUnknown { index } => Self::RaftOutcomeUnknown { index: *index },
                RaftError::Interrupted => Self::RaftInterrupted,
                RaftError::Overtaken { index } => Self::RaftOvertaken { index: *index },
                RaftError::UnknownMember { node } => Self::UnknownMember { node: *node },
                RaftError::AlreadyMember { node } => Self::AlreadyMember { node: *node },
                RaftError::LastVoter { node } => Self::LastVoter { node: *node },
                RaftError::MembershipPending => Self::MembershipPending,
                RaftError::LeaderTransfer { to } => Self::LeaderTransfer { to: *to },
                RaftError::Retired { node } => Self::Retired { node: *node },
                RaftError::NotDrained { node } => Self::NotDrained { node: *node },
                _ => failure(),
            },
            TxnError::DirectoryLocked { dir } => Self::DirectoryLocked { dir: dir.clone() },
            TxnError::WrongNode { expected, found } => Self::WrongNode {
                expected: *expected,
                found: *found,
            },
            TxnError::UnknownName { .. }
            | TxnError::Io { .. }
            | TxnError::Recovery(_)
            | TxnError::BatchStopped { .. } => failure(),
        }
    }

    /// The error the client returns: the same `TxnError` as the node met, when it has one.
    pub(crate) fn into_net(self) -> NetError {
        let txn = match self {
            Self::ShutDown => return NetError::ShutDown,
            Self::Removed { by } => return NetError::Removed { by },
            Self::MalformedRequest { reason } => return NetError::MalformedRequest { reason },
            Self::NodeFailure { reason } => return NetError::NodeFailure { reason },
            Self::EmptyTransaction => TxnError::EmptyTransaction,
            Self::TransactionFinished(how) => TxnError::TransactionFinished(how),
            Self::InvalidOperations { errors } => TxnError::InvalidOperations { errors },
            Self::NotAlgebraic { operations } => TxnError::NotAlgebraic { operations },
            Self::Overflow { key, value_type } => TxnError::Overflow { key, value_type },
            Self::ConditionFailed {
                key,
                expected,
                found,
            } => TxnError::ConditionFailed {
                key,
                expected,
                found,
            },
            Self::ReadConflict {
                key,
                expected,
                found,
            } => TxnError::ReadConflict {
                key,
                expected,
                found,
            },
            Self::UnknownMode { name } => TxnError::UnknownMode { name },
            Self::Schema(source) => TxnError::Schema(source),
            Self::Config { reason } => TxnError::Config { reason },
            Self::NonAlgebraic { operations } => {
                CoordinationFreeError::NonAlgebraic { operations }.into()
            }
            Self::Replica(refusal) => {
                CoordinationFreeError::from(refusal.into_commit_error()).into()
            }
            Self::Poisoned { reason } => TxnError::Poisoned { reason },
            Self::Corrupt {
                segment,
                offset,
                reason,
            } => TxnError::Corrupt {
                segment,
                offset,
                reason,
            },
            Self::NoLeader => TxnError::NoLeader,
            Self::Undecided { proposal } => TxnError::Undecided { proposal },
            Self::NotCaughtUp { missing } => TxnError::NotCaughtUp { missing },
            Self::RaftTimeout { ticks } => TxnError::Raft(Box::new(RaftError::Timeout { ticks })),
            Self::RaftOutcomeUnknown { index } => {
                TxnError::Raft(Box::new(RaftError::OutcomeUnknown { index }))
            }
            Self::RaftInterrupted => TxnError::Raft(Box::new(RaftError::Interrupted)),
            Self::RaftOvertaken { index } => {
                TxnError::Raft(Box::new(RaftError::Overtaken { index }))
            }
            Self::DirectoryLocked { dir } => TxnError::DirectoryLocked { dir },
            Self::WrongNode { expected, found } => TxnError::WrongNode { expected, found },
            Self::UnknownMember { node } => {
                TxnError::Raft(Box::new(RaftError::UnknownMember { node }))
            }
            Self::AlreadyMember { node } => {
                TxnError::Raft(Box::new(RaftError::AlreadyMember { node }))
            }
            Self::LastVoter { node } => TxnError::Raft(Box::new(RaftError::LastVoter { node })),
            Self::MembershipPending => TxnError::Raft(Box::new(RaftError::MembershipPending)),
            Self::LeaderTransfer { to } => {
                TxnError::Raft(Box::new(RaftError::LeaderTransfer { to }))
            }
            Self::Retired { node } => TxnError::Raft(Box::new(RaftError::Retired { node })),
            Self::NotDrained { node } => TxnError::Raft(Box::new(RaftError::NotDrained { node })),
        };
        NetError::Engine(txn)
    }
}

/// Encodes a frame's body.
pub(crate) fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(body)
}

/// Decodes a frame's body; bytes left over are an error.
pub(crate) fn decode<'a, T: Deserialize<'a>>(block: &'a [u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(block) {
        Ok((body, [])) => Ok(body),
        Ok((_, rest)) => Err(format!("{} bytes after the body", rest.len())),
        Err(err) => Err(err.to_string()),
    }
}
