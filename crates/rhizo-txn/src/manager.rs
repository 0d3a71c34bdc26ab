//! The coordination-free manager: one node's replica, committing algebraic transactions locally
//! and merging peers' updates, with no I/O. The [`crate::Engine`] adds durability on top.

use rhizo_algebra::{OpType, Schema};
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{
    AlgebraicTransaction, CellKey, CommitReceipt, LocalCommitError, Message, Ready, Record,
    Replica, ReplicaConfig,
};

/// How a [`CoordinationFreeManager`] behaves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CoordinationFreeConfig {
    /// This node.
    pub(crate) node_id: NodeId,
    /// Every member of the cluster (this node included or not: it is added). Metadata is
    /// collected once every member has seen it.
    pub(crate) members: Vec<NodeId>,
    /// Tables and columns with their merge types.
    pub(crate) schema: Schema,
    /// Whether the replica hands out records to make durable (the engine needs them; a purely
    /// in-memory node that is never restarted does not).
    pub(crate) emit_records: bool,
    /// After this many records the replica emits a full snapshot record. The engine compacts
    /// its log itself, so it sets this to `usize::MAX`.
    pub(crate) snapshot_every: usize,
    /// How many early deltas wait for their causal base before the oldest is dropped.
    pub(crate) max_buffered_deltas: usize,
}

impl CoordinationFreeConfig {
    /// A manager for `node_id` under `schema`, alone in its cluster until members are added.
    pub(crate) fn new(node_id: NodeId, schema: Schema) -> Self {
        let defaults = ReplicaConfig::default();
        Self {
            node_id,
            members: vec![node_id],
            schema,
            emit_records: defaults.emit_records,
            snapshot_every: defaults.snapshot_every,
            max_buffered_deltas: defaults.max_buffered_deltas,
        }
    }

    /// The same configuration with these cluster members.
    #[must_use]
    pub(crate) fn with_members(mut self, members: impl IntoIterator<Item = NodeId>) -> Self {
        self.members = members.into_iter().collect();
        self
    }

    pub(crate) fn replica_config(&self) -> ReplicaConfig {
        ReplicaConfig {
            members: self.members.clone(),
            emit_records: self.emit_records,
            snapshot_every: self.snapshot_every,
            max_buffered_deltas: self.max_buffered_deltas,
        }
    }
}

/// What the coordination-free manager refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoordinationFreeError {
    /// The transaction holds operations that are not algebraic (or target a register column):
    /// they need a coordinated transaction. Nothing was applied.
    #[error("not algebraic, needs coordination: {}", rhizo_commit::OperationList(.operations))]
    NonAlgebraic {
        /// The offending cells and operation kinds.
        operations: Vec<(CellKey, OpType)>,
    },
    /// The replica refused the commit, read or message (see the inner error); nothing changed.
    #[error(transparent)]
    Replica(Box<LocalCommitError>),
}

impl From<LocalCommitError> for CoordinationFreeError {
    fn from(err: LocalCommitError) -> Self {
        Self::Replica(Box::new(err))
    }
}

/// One node's coordination-free transaction manager: commits algebraic transactions at once,
/// locally, and merges what peers send in any order (exactly once, causally, atomically).
///
/// A thin layer over [`rhizo_commit::Replica`] with the roadmap's vocabulary; it does no I/O.
/// Drive it like the replica: after each call, [`CoordinationFreeManager::take_ready`] and make
/// the records durable before sending the messages.
#[derive(Debug, Clone)]
pub(crate) struct CoordinationFreeManager {
    config: CoordinationFreeConfig,
    /// The Raft node drives the replica directly (its log order is the manager's business).
    pub(crate) replica: Replica,
}

impl CoordinationFreeManager {
    /// A fresh manager with no state.
    pub(crate) fn new(config: CoordinationFreeConfig) -> Self {
        let replica = Replica::new(
            config.node_id,
            config.schema.clone(),
            config.replica_config(),
        );
        Self { config, replica }
    }

    /// Rebuilds a manager from the records its replica emitted, in order.
    pub(crate) fn recover(
        config: CoordinationFreeConfig,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self, CoordinationFreeError> {
        let replica = Replica::recover(
            config.node_id,
            config.schema.clone(),
            config.replica_config(),
            records,
        )?;
        Ok(Self { config, replica })
    }

    /// A manager around a replica built elsewhere (the Raft node recovers its own).
    pub(crate) fn from_replica(config: CoordinationFreeConfig, replica: Replica) -> Self {
        Self { config, replica }
    }

    /// This node.
    pub(crate) fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The schema transactions are validated against.
    pub(crate) fn schema(&self) -> &Schema {
        self.replica.schema()
    }

    /// Installs a newer schema (columns are only ever added).
    pub(crate) fn set_schema(&mut self, schema: Schema) {
        self.config.schema = schema.clone();
        self.replica.set_schema(schema);
    }

    /// Commits `tx` locally, at once, without asking any other node. Refused whole (nothing
    /// applied, the clock not ticked) if any operation is not algebraic or not valid.
    pub(crate) fn commit_local(
        &mut self,
        tx: AlgebraicTransaction,
    ) -> Result<CommitReceipt, CoordinationFreeError> {
        self.replica.commit(tx).map_err(|err| match err {
            LocalCommitError::RequiresCoordination { operations } => {
                CoordinationFreeError::NonAlgebraic { operations }
            }
            other => CoordinationFreeError::from(other),
        })
    }

    /// Hands the manager a message from peer `from` (a remote update or an anti-entropy
    /// digest). A malformed message is refused whole.
    pub(crate) fn receive(
        &mut self,
        from: NodeId,
        message: Message,
    ) -> Result<(), CoordinationFreeError> {
        Ok(self.replica.step(from, message)?)
    }

    /// Starts an anti-entropy exchange with `peer` (a message appears in the next `Ready`).
    pub(crate) fn sync_with(&mut self, peer: NodeId) {
        self.replica.sync_with(peer);
    }

    /// Takes the records to persist, messages to send and commits to acknowledge.
    #[cfg(test)]
    pub(crate) fn take_ready(&mut self) -> Ready {
        self.replica.take_ready()
    }

    /// [`CoordinationFreeManager::take_ready`] into a `Ready` the caller keeps (appended).
    pub(crate) fn take_ready_into(&mut self, ready: &mut Ready) {
        self.replica.take_ready_into(ready);
    }

    /// The local value of one cell (its column's identity if never written).
    #[cfg(test)]
    pub(crate) fn read(
        &self,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<rhizo_algebra::AlgebraicValue, CoordinationFreeError> {
        Ok(self.replica.read(table, row, column)?)
    }

    /// The node's vector clock: its own commits and every update it has merged.
    pub(crate) fn clock(&self) -> &VectorClock {
        self.replica.clock()
    }

    /// How many distinct updates (local and remote) this node holds: the sum of its clock.
    #[cfg(test)]
    pub(crate) fn update_count(&self) -> u128 {
        self.replica.clock().sum()
    }

    /// How many transactions this node committed locally since it was created or recovered.
    #[cfg(test)]
    pub(crate) fn local_commit_count(&self) -> u64 {
        self.replica.stats().commits
    }

    /// Whether every member is known to hold everything this node holds.
    pub(crate) fn is_idle(&self) -> bool {
        self.replica.is_idle()
    }

    /// The underlying replica.
    pub(crate) fn replica(&self) -> &Replica {
        &self.replica
    }
}

#[cfg(test)]
mod tests;
