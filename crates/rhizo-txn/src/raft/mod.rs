//! The coordinated path over real consensus: one [`raft::RawNode`] per Rhizo node.
//!
//! A [`RaftNode`] couples a Raft group member with the node's [`rhizo_commit::Replica`]: a
//! coordinated transaction is validated with `Replica::prepare_ordered`, proposed to the Raft
//! log, and applied on every node in log order with `Replica::apply_ordered` — so a register
//! holds the same value at the same log index everywhere, and an algebraic effect ordered by
//! the log merges with coordination-free ones without being counted twice (it carries the dot
//! `(consensus_origin, index)` on every replica). Coordination-free commits go straight to the
//! replica and spread by its anti-entropy, which the node carries beside Raft's messages.
//!
//! - **Durability.** Every Raft output (hard state, entries, snapshots, and the replica records
//!   of applied entries) goes through [`DurableRaftLog::persist`] *before* any message of the
//!   same step leaves and before any client learns an outcome; a restarted node replays its
//!   records when it opens ([`RaftNode::open`]).
//! - **Proposals.** Any node accepts one; a follower's proposal is forwarded to the leader by
//!   `raft` itself. With no known leader the proposal is refused at once with
//!   [`RaftError::NoLeader`] ("retry"). The proposer answers its client when the entry is
//!   applied locally ([`ClientOutcome::Committed`], with the log index and the
//!   [`rhizo_commit::OrderedOutcome`]) or, after `proposal_timeout_ticks`, with
//!   [`RaftError::Timeout`] — the entry may still commit later, so the outcome is unknown.
//! - **At most once.** A write entry applies only if its proposal is newer than every write
//!   already applied from the same proposer ([`ProposalId`] order: incarnation, then number);
//!   otherwise it is skipped on every member alike — a forwarded proposal the network repeated
//!   is never counted twice, and one overtaken by its proposer's later proposal fails with
//!   [`RaftError::Overtaken`]. The newest applied write per proposer travels with snapshots
//!   and is rebuilt from the log on restart, so every member decides alike.
//! - **Linearizable reads go through the log.** A read is a log entry that changes nothing;
//!   the proposer answers with its replica's values when it applies that entry. Every write
//!   acknowledged before the read started sits at a smaller index, so it is visible. This
//!   costs a log round per read, like a write, but needs no clock or lease assumption and
//!   keeps one code path (read-index would save the disk write; a later optimisation).
//! - **Determinism.** `raft` draws election timeouts from the thread RNG whenever its term or
//!   role changes; the node overrides each draw at once from its own seeded stream, so a
//!   simulation replays exactly from its seed.

mod applied_writes;
mod file_log;
mod membership;
mod node;
mod storage;

pub use file_log::FileRaftLog;
pub use membership::{ChangeKind, Member, Membership, raft_id_of};
pub use node::{ClientOutcome, NodeOutput, ProposalId, RaftConfig, RaftNode, RaftWire, Submitted};
pub use storage::{DurableRaftLog, LogEntry, MemRaftLog, RaftRecord};

use rhizo_clock::NodeId;
use rhizo_commit::LocalCommitError;

/// What can go wrong on the Raft path.
///
/// Kept apart from [`crate::TxnError`] so that the engine's error (matched exhaustively by
/// bindings) does not change shape; the engine wraps it where it surfaces.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// No leader is known (an election is under way or this node is cut off). Nothing was
    /// proposed; retry after an election timeout.
    #[error("no Raft leader is known; nothing was proposed, retry after an election")]
    NoLeader,
    /// The transaction was refused before it was proposed (see the inner error); nothing
    /// changed anywhere.
    #[error("the transaction was refused: {0}")]
    Refused(Box<LocalCommitError>),
    /// No outcome within the proposal timeout: the entry may or may not commit.
    #[error(
        "no outcome after {ticks} ticks: the proposal may still commit; read to find out before retrying"
    )]
    Timeout {
        /// The timeout, in ticks.
        ticks: u32,
    },
    /// The entry was applied here through anti-entropy before this node applied it from the
    /// log, so whether its conditions held is not known here: read to find out before retrying.
    #[error(
        "log entry {index} reached this node through anti-entropy first; its outcome is not \
         known here: read to find out before retrying"
    )]
    OutcomeUnknown {
        /// The entry's index.
        index: u64,
    },
    /// The log ordered this proposal after a later one of the same proposer (a delayed or
    /// repeated forward): it was not applied, on any member, and never will be. Retry.
    #[error(
        "log entry {index} carried a proposal its proposer had already overtaken; it was not \
         applied anywhere: retry"
    )]
    Overtaken {
        /// The entry's index.
        index: u64,
    },
    /// The node crashed or restarted before the proposal's outcome was known.
    #[error("the node restarted before the proposal's outcome was known")]
    Interrupted,
    /// `raft` refused a call.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The durable Raft log refused a write or does not replay.
    #[error("raft storage: {reason}")]
    Storage {
        /// What is wrong.
        reason: String,
    },
    /// A committed entry does not decode: the log is damaged.
    #[error("log entry {index} does not decode: {reason}")]
    Corrupt {
        /// The entry's index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// A message named a node outside the cluster.
    #[error("{node} is not a member of this Raft group")]
    UnknownMember {
        /// The node.
        node: NodeId,
    },
    /// A membership change would add a node that is already a member (or promote a voter).
    #[error("{node} is already a member of this Raft group")]
    AlreadyMember {
        /// The node.
        node: NodeId,
    },
    /// A membership change would remove the group's last voter, which no Raft group survives.
    #[error("{node} is the last voter of this Raft group; it cannot be removed")]
    LastVoter {
        /// The node.
        node: NodeId,
    },
    /// Another membership change is in flight (Raft applies one at a time). Nothing was
    /// proposed; retry once it has applied.
    #[error("another membership change is in flight; nothing was proposed, retry")]
    MembershipPending,
    /// The leader was asked to remove itself: it hands leadership to `to` first. Nothing was
    /// proposed; retry (the new leader will propose it).
    #[error("this node leads; leadership is moving to {to}: nothing was proposed, retry")]
    LeaderTransfer {
        /// The voter leadership moves to.
        to: NodeId,
    },
    /// This node is retired by a draining removal: it takes no writes (coordinated or
    /// coordination-free), so that every commit it acknowledged reaches the other members
    /// before it leaves. Nothing was changed.
    /// Also this node once a removal (draining or forced) has applied here.
    #[error(
        "{node} is being removed, or was removed, from its cluster (retired): it takes no writes"
    )]
    Retired {
        /// This node.
        node: NodeId,
    },
    /// A draining removal of `node` was not answered in time: `node` is retired (or its
    /// retirement has not applied yet), but has not yet shown that every other member holds its
    /// commits (it is down, cut off, or slow).
    /// Retrying the removal is safe (it waits again); a force removal removes it at once and
    /// loses what only it holds.
    #[error(
        "{node} has not drained: its removal did not apply in time (it is retired or being \
         retired, and not every member holds its commits yet); retry the removal, or force it \
         if the node is gone for good"
    )]
    NotDrained {
        /// The node being removed.
        node: NodeId,
    },
    /// A message from a peer was refused by the replica.
    #[error("message from {from} refused: {source}")]
    Message {
        /// The sender.
        from: NodeId,
        /// Why.
        source: Box<LocalCommitError>,
    },
    /// The configuration is unusable.
    #[error("invalid Raft configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
