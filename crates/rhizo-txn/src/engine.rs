//! The embedded node: schema, transactions in two modes, a durable log, replication hooks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rhizo_algebra::{
    AlgebraError, AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, Schema,
    ValueType,
};
use rhizo_clock::{Dot, NodeId, VectorClock};
use rhizo_commit::{
    AlgebraicTransaction, CellKey, LocalCommitError, OrderedOutcome, Record, Replica,
    consensus_origin, wire,
};

use crate::coordinated::{CoordinatedBackend, Decided, Proposal, RegisterWrite, SingleNode};
use crate::log::{self, Checkpoint, CoordinatedEntry, Entry, Marks, SharedLog};
use crate::raft::{
    ClientOutcome, FileRaftLog, ProposalId, RaftConfig, RaftError, RaftNode, RaftWire, Submitted,
};
use crate::storage::{FsStorage, MemStorage, Storage};
use crate::{
    CommitPath, CoordinationFreeConfig, CoordinationFreeError, CoordinationFreeManager, Finished,
    Result, TransactionMode, TxnError,
};

/// What engines exchange: Raft's messages and the replicas' anti-entropy, in one envelope
/// ([`RaftWire::encode`] / [`RaftWire::decode`] for byte transports).
pub type EngineMessage = RaftWire;

/// Which backend orders an engine's coordinated transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// This node's own log order (the default): serializable, for a node alone. In a cluster
    /// of several members it refuses coordinated transactions (only Raft orders them there);
    /// coordination-free ones replicate by anti-entropy as usual.
    #[default]
    SingleNode,
    /// A Raft group of every member ([`crate::raft`]): coordinated transactions are proposed
    /// to the log and applied on every node in log order.
    Raft(RaftConfig),
}

impl Backend {
    /// The backend called `name`: `"single_node"`, or `"raft"` (with [`RaftConfig::default`]).
    pub fn named(name: &str) -> Result<Self> {
        match name {
            "single_node" => Ok(Self::SingleNode),
            "raft" => Ok(Self::Raft(RaftConfig::default())),
            other => Err(TxnError::UnknownName {
                what: "backend",
                name: other.to_owned(),
                valid: "\"single_node\", \"raft\"",
            }),
        }
    }
}

/// The column the three-argument [`Transaction::increment`] addresses: `(table, row, "value")`.
pub const DEFAULT_COLUMN: &str = "value";

/// When the log is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `fdatasync` before every commit returns: a commit that returned is durable. The default,
    /// because an acknowledged commit must survive a crash.
    #[default]
    EveryCommit,
    /// Group commit: frames accumulate in memory and are written and synced together once
    /// `max_records` commits wait or the oldest has waited `max_delay_ms` (checked at each
    /// commit and by [`Engine::poll`]). A commit is durable only when [`Engine::is_durable`]
    /// says so; messages never leave before the records they depend on are durable.
    Group {
        /// The longest a commit waits for its sync, in milliseconds.
        max_delay_ms: u64,
        /// The most commits one sync covers.
        max_records: usize,
    },
    /// Frames are written at each commit (they survive a process crash) but synced only by
    /// [`Engine::flush`], compaction and [`Engine::close`]: a power loss may lose recent commits.
    None,
}

impl SyncPolicy {
    /// The policy called `name`: `"every_commit"`, `"group"` (with these group settings) or
    /// `"none"`.
    pub fn named(name: &str, max_delay_ms: u64, max_records: usize) -> Result<Self> {
        match name {
            "every_commit" => Ok(Self::EveryCommit),
            "group" => Ok(Self::Group {
                max_delay_ms,
                max_records,
            }),
            "none" => Ok(Self::None),
            other => Err(TxnError::UnknownName {
                what: "sync policy",
                name: other.to_owned(),
                valid: "\"every_commit\", \"group\", \"none\"",
            }),
        }
    }
}

/// How an [`Engine`] is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// This node's id; a data directory belongs to one node.
    pub node_id: NodeId,
    /// Every member of the cluster (this node is added if missing).
    pub members: Vec<NodeId>,
    /// When commits are made durable.
    pub sync: SyncPolicy,
    /// Columns declared at open: missing ones are added (a versioned, logged schema change);
    /// existing ones must match.
    pub schema: Schema,
    /// The log is compacted into a fresh segment once the records after its checkpoint exceed
    /// this many bytes (and the checkpoint's own size, so a large state is not rewritten at
    /// every commit).
    pub compact_after_bytes: u64,
    /// Early deltas that wait for their causal base (see `ReplicaConfig::max_buffered_deltas`).
    pub max_buffered_deltas: usize,
    /// Which backend orders coordinated transactions.
    pub backend: Backend,
    /// Whether a background thread syncs a waiting group commit once its `max_delay_ms` passed
    /// (the default). Without it, a waiting group is synced only by the next commit that fills
    /// it, `tick`, `poll`, `flush` or `take_messages` — for engines in virtual time (the
    /// simulator), whose runs must not depend on the wall clock.
    pub background_flush: bool,
}

impl EngineConfig {
    /// Node `node_id` alone, an empty schema, sync on every commit, compaction at 64 MiB.
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            members: vec![node_id],
            sync: SyncPolicy::default(),
            schema: Schema::new(),
            compact_after_bytes: 64 << 20,
            max_buffered_deltas: 64,
            backend: Backend::SingleNode,
            background_flush: true,
        }
    }

    /// Ordering coordinated transactions with Raft across every member.
    #[must_use]
    pub fn with_raft(mut self, raft: RaftConfig) -> Self {
        self.backend = Backend::Raft(raft);
        self
    }

    /// Every member, this node included, sorted and without repeats.
    pub fn all_members(&self) -> Vec<NodeId> {
        let mut members = self.members.clone();
        members.push(self.node_id);
        members.sort_unstable();
        members.dedup();
        members
    }

    /// With these cluster members.
    #[must_use]
    pub fn with_members(mut self, members: impl IntoIterator<Item = NodeId>) -> Self {
        self.members = members.into_iter().collect();
        self
    }

    /// With this sync policy.
    #[must_use]
    pub fn with_sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// With these columns declared at open.
    #[must_use]
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Compacting once a segment exceeds `bytes`.
    #[must_use]
    pub fn with_compaction_after(mut self, bytes: u64) -> Self {
        self.compact_after_bytes = bytes;
        self
    }
}

/// A schema with the two tables the roadmap's example writes: `counters.value` (integer ADD)
/// and `users.tags` (observed-remove string set), so that
/// `tx.increment("counters", "page_views", 1)` and
/// `tx.add_to_set("users", "user_123", "tags", "premium")` work as written.
pub fn roadmap_schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column(DEFAULT_COLUMN, MergeType::Add, ValueType::Integer)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .build()
        .expect("the roadmap schema is valid")
}

/// What a successful commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The dot naming the transaction's effects: this node's for a local commit,
    /// `(consensus-log, index)` for one ordered by the log.
    pub dot: Option<Dot>,
    /// The coordinated log index (consensus path only): the transaction's place in the
    /// single-node order or the Raft log. Never reused, also across restarts.
    pub sequence: Option<u64>,
    /// Whether the commit was durable when `commit` returned (always under
    /// [`SyncPolicy::EveryCommit`]; never for an in-memory engine).
    pub durable: bool,
    /// Which path the transaction took (with [`TransactionMode::Auto`], the engine's choice).
    pub path: CommitPath,
}

/// How a submitted transaction stands when `submit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// Decided: committed (durable per the sync policy).
    Committed(CommitOutcome),
    /// Proposed to the Raft log and not decided yet: the outcome comes from
    /// [`Engine::take_outcomes`] under this id.
    Proposed(ProposalId),
}

/// The transaction the ordered path validates: algebraic operations and register writes.
fn ordered_transaction(
    mut tx: AlgebraicTransaction,
    registers: &[RegisterWrite],
) -> AlgebraicTransaction {
    for write in registers {
        let key = write.key();
        match write {
            RegisterWrite::Put { value, .. } => {
                tx.put(key.table(), key.row(), key.column(), value.clone());
            }
            RegisterWrite::CompareAndSet { expected, new, .. } => {
                tx.compare_and_set(
                    key.table(),
                    key.row(),
                    key.column(),
                    expected.clone(),
                    new.clone(),
                );
            }
        }
    }
    tx
}

/// One node of Rhizo, embedded: open it on a data directory, run transactions, carry its
/// messages to peers.
///
/// # Addressing
/// A cell is `(table, row, column)`. Tables and columns are declared in the schema with a merge
/// type; rows are free-form keys (at most 1024 bytes) that exist as soon as they are written.
/// An unwritten cell reads as its column's identity (0 for sums, the empty set, `Null` for
/// MAX/MIN and registers). The three-argument [`Transaction::increment`] writes
/// [`DEFAULT_COLUMN`] (`"value"`).
///
/// # Durability
/// Every change goes to the node's log before it is acknowledged or any message depending on
/// it leaves (see `SyncPolicy`). Reopening the directory replays the log; a restarted node
/// never reuses a dot or a coordinated sequence number. One engine per directory at a time
/// (not enforced by a lock).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    core: Core,
    /// The single-node backend's order (unused under Raft).
    backend: Box<dyn CoordinatedBackend>,
    /// The single-node log (under Raft, the Raft node's [`FileRaftLog`] holds everything).
    log: Option<SharedLog>,
    outbox: Vec<(NodeId, EngineMessage)>,
    /// The replica's output of the current step, kept between steps so that its lists keep
    /// their capacity (a commit then allocates no `Ready`).
    ready: rhizo_commit::Ready,
    /// Outcomes of proposals answered after `commit` returned [`TxnError::Pending`].
    outcomes: Vec<(ProposalId, Result<CommitOutcome>)>,
    /// Set by a failed write of the Raft log (the single-node log keeps its own).
    poisoned: Option<String>,
}

/// The replica and what orders its coordinated transactions.
#[derive(Debug)]
enum Core {
    /// The replica alone; coordinated transactions in this node's order.
    Local(Box<CoordinationFreeManager>),
    /// A Raft group member driving the replica.
    Raft(Box<RaftNode<FileRaftLog>>),
}

impl Engine {
    /// Opens (or creates) the node stored in directory `dir`.
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self> {
        let dir = dir.as_ref();
        let storage = FsStorage::open(dir)?;
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine whose log lives in memory ([`MemStorage`]): durable only as long as the
    /// storage handle lives. For tests and examples.
    pub fn open_in_memory_log(storage: MemStorage, config: EngineConfig) -> Result<Self> {
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine with no log at all: nothing is persisted and a restart starts empty. The
    /// cheapest mode; every commit reports `durable: false`. (Under Raft the node still keeps
    /// its log, in memory: a member that forgot its vote or log could break consensus.)
    pub fn in_memory(config: EngineConfig) -> Result<Self> {
        if matches!(config.backend, Backend::Raft(_)) {
            return Self::open_with_storage(Box::new(MemStorage::new()), config);
        }
        let core = Self::local_core(&config, false, Schema::new(), None)?;
        let mut engine = Self::assemble(config, None, core)?;
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    /// Opens the node stored in `storage` (recovering from its log) or creates it.
    pub fn open_with_storage(mut storage: Box<dyn Storage>, config: EngineConfig) -> Result<Self> {
        Self::check_config(&config)?;
        let names = storage.list().map_err(|source| TxnError::Io {
            op: "list",
            name: storage.describe(),
            source,
        })?;
        let holds = |prefix| {
            names
                .iter()
                .any(|n| log::parse_prefixed_segment(prefix, n).is_some())
        };
        let raft = match &config.backend {
            Backend::Raft(raft) => Some(raft.clone()),
            Backend::SingleNode => None,
        };
        if raft.is_some() && holds(log::ENGINE_PREFIX) {
            return Err(TxnError::Config {
                reason: "the directory holds a single-node engine log; open it with \
                         Backend::SingleNode"
                    .to_owned(),
            });
        }
        if raft.is_none() && holds(log::RAFT_PREFIX) {
            return Err(TxnError::Config {
                reason: "the directory holds a Raft log; open it with Backend::Raft".to_owned(),
            });
        }
        if let Some(raft) = raft {
            return Self::open_raft(storage, config, raft);
        }
        let (writer, entries) = SharedLog::open(storage)?;
        let mut engine = match entries {
            None => {
                let core = Self::local_core(&config, true, Schema::new(), None)?;
                let mut engine = Self::assemble(config, Some(writer), core)?;
                engine.compact()?;
                engine
            }
            Some(entries) => Self::replay(config, writer, entries)?,
        };
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    fn check_config(config: &EngineConfig) -> Result<()> {
        if config.max_buffered_deltas == 0 {
            return Err(TxnError::Config {
                reason: "max_buffered_deltas must be at least 1".to_owned(),
            });
        }
        if let SyncPolicy::Group { max_records: 0, .. } = config.sync {
            return Err(TxnError::Config {
                reason: "a group commit needs max_records >= 1".to_owned(),
            });
        }
        Ok(())
    }

    /// A Raft member on its [`FileRaftLog`] in `storage`.
    fn open_raft(
        storage: Box<dyn Storage>,
        config: EngineConfig,
        raft: RaftConfig,
    ) -> Result<Self> {
        let opened = FileRaftLog::open(storage)?;
        let mut log = opened.log.with_sync(config.sync != SyncPolicy::None);
        let schema = match opened.owner {
            Some((node, schema)) => {
                if node != config.node_id {
                    return Err(TxnError::WrongNode {
                        expected: config.node_id,
                        found: node,
                    });
                }
                schema
            }
            None => {
                let schema = Schema::new();
                log.set_owner(config.node_id, &schema)
                    .map_err(TxnError::from_raft)?;
                schema
            }
        };
        let node = RaftNode::open(
            config.node_id,
            &config.all_members(),
            schema,
            raft,
            log,
            &opened.records,
        )
        .map_err(TxnError::from_raft)?;
        let mut engine = Self::assemble(config, None, Core::Raft(Box::new(node)))?;
        engine.pump()?;
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    fn local_core(
        config: &EngineConfig,
        logged: bool,
        schema: Schema,
        records: Option<Vec<Record>>,
    ) -> Result<Core> {
        let mut manager_config = CoordinationFreeConfig::new(config.node_id, schema)
            .with_members(config.members.iter().copied());
        manager_config.emit_records = logged;
        // The engine compacts its own log; the replica never needs to emit snapshots.
        manager_config.snapshot_every = usize::MAX;
        manager_config.max_buffered_deltas = config.max_buffered_deltas;
        let manager = match records {
            None => CoordinationFreeManager::new(manager_config),
            Some(records) => {
                CoordinationFreeManager::recover(manager_config, records).map_err(|e| match e {
                    CoordinationFreeError::Replica(inner) => TxnError::Recovery(inner),
                    other => TxnError::from(other),
                })?
            }
        };
        Ok(Core::Local(Box::new(manager)))
    }

    fn assemble(config: EngineConfig, log: Option<SharedLog>, core: Core) -> Result<Self> {
        Self::check_config(&config)?;
        let mut engine = Self {
            config,
            core,
            backend: Box::new(SingleNode::new()),
            log,
            outbox: Vec::new(),
            ready: rhizo_commit::Ready::default(),
            outcomes: Vec::new(),
            poisoned: None,
        };
        let sequence = engine.last_sequence();
        engine.backend.restore(sequence);
        let marks = engine.marks();
        let group = matches!(engine.config.sync, SyncPolicy::Group { .. });
        let background = engine.config.background_flush;
        if let Some(log) = &mut engine.log {
            log.restore(marks);
            if group && background {
                log.start_flusher()?;
            }
        }
        Ok(engine)
    }

    /// How far this node's history reaches: its own dot counter and the coordinated sequence.
    fn marks(&self) -> Marks {
        Marks {
            counter: self.clock().get(self.node_id()),
            sequence: self.last_sequence(),
        }
    }

    fn replay(config: EngineConfig, writer: SharedLog, entries: Vec<Entry>) -> Result<Self> {
        let segment = writer.describe();
        let corrupt = |reason: String| TxnError::Corrupt {
            segment: segment.clone(),
            offset: 0,
            reason,
        };
        let mut entries = entries.into_iter();
        let Some(Entry::Checkpoint(checkpoint)) = entries.next() else {
            return Err(corrupt(
                "the segment does not begin with a checkpoint".to_owned(),
            ));
        };
        let Checkpoint {
            node,
            mut schema,
            mut sequence,
            replica,
        } = *checkpoint;
        if node != config.node_id {
            return Err(TxnError::WrongNode {
                expected: config.node_id,
                found: node,
            });
        }
        let snapshot = wire::decode_record(&replica)
            .map_err(|e| corrupt(format!("checkpoint replica: {e}")))?;
        let mut records = vec![snapshot];
        for entry in entries {
            match entry {
                Entry::Checkpoint(_) => {
                    return Err(corrupt("a second checkpoint inside a segment".to_owned()));
                }
                Entry::Raft(_) | Entry::RaftMeta(_) => {
                    return Err(corrupt("a Raft frame inside an engine segment".to_owned()));
                }
                Entry::Replica(record) => records.push(*record),
                Entry::Coordinated(entry) => {
                    if entry.sequence != sequence + 1 {
                        return Err(corrupt(format!(
                            "coordinated sequence {} after {sequence}",
                            entry.sequence
                        )));
                    }
                    sequence = entry.sequence;
                    for bytes in &entry.replica {
                        records.push(
                            wire::decode_record(bytes)
                                .map_err(|e| corrupt(format!("coordinated record: {e}")))?,
                        );
                    }
                }
                Entry::Schema(next) => {
                    if next.version() <= schema.version() {
                        return Err(corrupt(format!(
                            "schema version {} after {}",
                            next.version(),
                            schema.version()
                        )));
                    }
                    schema = *next;
                }
            }
        }
        let core = Self::local_core(&config, true, schema, Some(records))?;
        let engine = Self::assemble(config, Some(writer), core)?;
        if engine.last_sequence() != sequence {
            return Err(corrupt(format!(
                "the replica holds coordinated index {} but the log {sequence}",
                engine.last_sequence()
            )));
        }
        Ok(engine)
    }

    fn declare_configured_columns(&mut self) -> Result<()> {
        let wanted: Vec<(String, String, ColumnSpec)> = self
            .config
            .schema
            .tables()
            .flat_map(|(t, table)| {
                table
                    .columns()
                    .map(move |(c, spec)| (t.to_owned(), c.to_owned(), *spec))
            })
            .collect();
        for (table, column, spec) in wanted {
            self.declare_column_spec(&table, &column, spec)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ schema

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        self.manager().schema()
    }

    /// Declares `table.column` with a merge and value type (default bounds). Re-declaring a
    /// column as it is changes nothing; changing its merge or value type is refused. Returns
    /// the schema version now in force. The change is durable when this returns. Under Raft,
    /// every member must be given the same columns before transactions use them.
    pub fn declare_column(
        &mut self,
        table: &str,
        column: &str,
        merge: MergeType,
        value_type: ValueType,
    ) -> Result<u64> {
        let spec = ColumnSpec::new(merge, value_type).map_err(TxnError::Schema)?;
        self.declare_column_spec(table, column, spec)
    }

    /// [`Engine::declare_column`] with an explicit spec (bounds on sets and elements).
    pub fn declare_column_spec(
        &mut self,
        table: &str,
        column: &str,
        spec: ColumnSpec,
    ) -> Result<u64> {
        self.check_usable()?;
        let next = self
            .schema()
            .with_column(table, column, spec)
            .map_err(TxnError::Schema)?;
        if next.version() == self.schema().version() {
            return Ok(next.version());
        }
        let version = next.version();
        let node_id = self.node_id();
        if let Core::Raft(node) = &mut self.core {
            let recorded = node
                .durable_log_mut()
                .set_owner(node_id, &next)
                .map_err(TxnError::from_raft);
            self.note_io(recorded)?;
        } else if let Some(log) = &self.log {
            log.append(self.marks(), |frames| frames.push_schema(&next))?;
            log.sync()?;
        }
        match &mut self.core {
            Core::Local(manager) => manager.set_schema(next),
            Core::Raft(node) => node.set_schema(next),
        }
        Ok(version)
    }

    // ------------------------------------------------------------------ transactions

    /// Starts a transaction. It borrows the engine until it is committed, aborted or dropped,
    /// so its reads see one consistent state: nothing else changes the engine meanwhile.
    pub fn transaction(&mut self, mode: TransactionMode) -> Transaction<'_> {
        Transaction {
            engine: self,
            mode,
            algebraic: AlgebraicTransaction::new(),
            registers: Vec::new(),
            finished: None,
        }
    }

    /// Commits a transaction built elsewhere (the [`Transaction`] builder calls this). Under
    /// Raft, a coordinated transaction that the cluster has not decided by the time this
    /// returns gives [`TxnError::Pending`]; its outcome comes later from
    /// [`Engine::take_outcomes`].
    pub fn commit_parts(
        &mut self,
        mode: TransactionMode,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<CommitOutcome> {
        match self.submit_parts(mode, algebraic, registers)? {
            Submission::Committed(outcome) => Ok(outcome),
            Submission::Proposed(proposal) => Err(TxnError::Pending { proposal }),
        }
    }

    /// Like [`Engine::commit_parts`], but a proposal still in flight is an `Ok`:
    /// [`Submission::Proposed`].
    pub fn submit_parts(
        &mut self,
        mode: TransactionMode,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<Submission> {
        self.check_usable()?;
        if algebraic.is_empty() && registers.is_empty() {
            return Err(TxnError::EmptyTransaction);
        }
        match mode {
            TransactionMode::CoordinationFree => self
                .commit_coordination_free(algebraic, registers)
                .map(Submission::Committed),
            TransactionMode::Coordinated => self.commit_coordinated(algebraic, registers),
            TransactionMode::Auto => {
                // Local only when every operation is algebraic on an algebraic column;
                // otherwise the whole transaction is ordered, so a mixed one stays atomic.
                let all_algebraic = registers.is_empty()
                    && algebraic.operations().iter().all(|op| {
                        op.op_type.is_conflict_free()
                            && self
                                .schema()
                                .column(op.key.table(), op.key.column())
                                .is_ok_and(|spec| spec.merge().is_conflict_free())
                    });
                if all_algebraic {
                    self.commit_coordination_free(algebraic, registers)
                        .map(Submission::Committed)
                } else {
                    self.commit_coordinated(algebraic, registers)
                }
            }
        }
    }

    fn commit_coordination_free(
        &mut self,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<CommitOutcome> {
        if !registers.is_empty() {
            return Err(TxnError::NotAlgebraic {
                operations: registers
                    .iter()
                    .map(|w| (w.key().clone(), w.op_type()))
                    .collect(),
            });
        }
        let dot = match &mut self.core {
            Core::Local(manager) => {
                manager
                    .commit_local(algebraic)
                    .map_err(|e| match e {
                        CoordinationFreeError::NonAlgebraic { operations } => {
                            TxnError::NotAlgebraic { operations }
                        }
                        CoordinationFreeError::Replica(inner) => TxnError::from_commit(*inner),
                    })?
                    .dot
            }
            Core::Raft(node) => match node.submit(algebraic, TransactionMode::CoordinationFree) {
                Ok(Submitted::Local(dot)) => dot,
                Ok(Submitted::Proposed(_)) => unreachable!("a coordination-free submit"),
                Err(RaftError::Refused(inner)) => {
                    return Err(match *inner {
                        LocalCommitError::RequiresCoordination { operations } => {
                            TxnError::NotAlgebraic { operations }
                        }
                        other => TxnError::from_commit(other),
                    });
                }
                Err(other) => return Err(TxnError::from_raft(other)),
            },
        };
        let durable = match self.core {
            Core::Local(_) => self.persist_commit(None)?,
            Core::Raft(_) => {
                self.pump()?;
                self.config.sync != SyncPolicy::None
            }
        };
        Ok(CommitOutcome {
            dot: Some(dot),
            sequence: None,
            durable,
            path: CommitPath::Local,
        })
    }

    fn commit_coordinated(
        &mut self,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<Submission> {
        if let Core::Raft(node) = &mut self.core {
            let tx = ordered_transaction(algebraic, &registers);
            let proposal = node.propose(tx).map_err(|e| match e {
                RaftError::Refused(inner) => TxnError::from_commit(*inner),
                other => TxnError::from_raft(other),
            })?;
            self.pump()?;
            if let Some(i) = self.outcomes.iter().position(|(id, _)| *id == proposal) {
                return self.outcomes.remove(i).1.map(Submission::Committed);
            }
            return Ok(Submission::Proposed(proposal));
        }
        let members = self.config.all_members().len();
        if members > 1 {
            return Err(TxnError::Config {
                reason: format!(
                    "a coordinated transaction in a cluster of {members} members needs the \
                     Raft backend (EngineConfig::with_raft); this engine runs the single-node \
                     backend, which orders only a node alone"
                ),
            });
        }
        // Checked before proposing, so that a refused transaction takes no sequence number;
        // in this node's order nothing can change the registers in between.
        self.check_conditions(&registers)?;
        let tx = ordered_transaction(algebraic.clone(), &registers);
        let update = self
            .manager()
            .replica()
            .prepare_ordered(tx)
            .map_err(TxnError::from_commit)?;
        self.backend.propose(Proposal {
            registers,
            algebraic,
        })?;
        let mut outcome = None;
        for decided in self.backend.take_decided() {
            let sequence = decided.sequence;
            match self.apply_decided(decided, &update) {
                Ok(applied) => outcome = Some(applied),
                Err(err) => {
                    self.backend.release(sequence);
                    return Err(err);
                }
            }
        }
        outcome
            .map(Submission::Committed)
            .ok_or_else(|| TxnError::Config {
                reason: format!(
                    "the {} backend decided nothing for a proposal",
                    self.backend.name()
                ),
            })
    }

    /// Applies one decided coordinated transaction through the replica's ordered path (all of
    /// it or nothing) and logs it as one frame.
    fn apply_decided(
        &mut self,
        decided: Decided,
        update: &rhizo_commit::OrderedUpdate,
    ) -> Result<CommitOutcome> {
        let Decided { sequence, .. } = decided;
        let Core::Local(manager) = &mut self.core else {
            unreachable!("only the single-node backend decides locally");
        };
        let outcome = manager
            .replica
            .apply_ordered(sequence, update)
            .map_err(TxnError::from_commit)?;
        let dot = match outcome {
            OrderedOutcome::Applied(dot) => dot,
            OrderedOutcome::AlreadyApplied => {
                return Err(TxnError::Config {
                    reason: format!("coordinated index {sequence} was already applied"),
                });
            }
            OrderedOutcome::Refused(refusal) => {
                // Only a float leaving the finite range gets here (conditions were checked):
                // the index is consumed, as on every replica of a log.
                self.persist_commit(Some(sequence))?;
                return Err(TxnError::from_refusal(refusal));
            }
        };
        let durable = self.persist_commit(Some(sequence))?;
        Ok(CommitOutcome {
            dot: Some(dot),
            sequence: Some(sequence),
            durable,
            path: CommitPath::Consensus,
        })
    }

    /// Refuses register writes whose compare-and-set would fail on the current values (or
    /// that are invalid for their columns), without changing anything.
    fn check_conditions(&self, writes: &[RegisterWrite]) -> Result<()> {
        let mut states: BTreeMap<CellKey, CellState> = BTreeMap::new();
        let mut errors = Vec::new();
        // A dot is required by the cell API but ignored by registers.
        let dot = Dot::new(self.node_id(), 1).expect("counter 1 is valid");
        for write in writes {
            let key = write.key();
            let spec = match self.schema().column(key.table(), key.column()) {
                Ok(spec) => *spec,
                Err(err) => {
                    errors.push((key.clone(), err));
                    continue;
                }
            };
            let op = match write {
                RegisterWrite::Put { value, .. } => {
                    CellOp::new(&spec, OpType::GenericOverwrite, value)
                }
                RegisterWrite::CompareAndSet { expected, new, .. } => {
                    CellOp::compare_and_set(&spec, expected, new)
                }
            };
            let op = match op {
                Ok(op) if spec.merge() == MergeType::Register => op,
                Ok(_) => {
                    errors.push((
                        key.clone(),
                        AlgebraError::OpNotAccepted {
                            merge: spec.merge(),
                            op: write.op_type(),
                        },
                    ));
                    continue;
                }
                Err(err) => {
                    errors.push((key.clone(), err));
                    continue;
                }
            };
            if !errors.is_empty() {
                continue;
            }
            if !states.contains_key(key) {
                let mut state = CellState::new(&spec);
                let current = self
                    .manager()
                    .replica()
                    .read_key(key)
                    .map_err(TxnError::from_commit)?;
                if current != AlgebraicValue::Null {
                    let seed = CellOp::new(&spec, OpType::GenericOverwrite, &current)
                        .and_then(|seed| state.apply(&seed, dot));
                    if let Err(err) = seed {
                        errors.push((key.clone(), err));
                        continue;
                    }
                }
                states.insert(key.clone(), state);
            }
            let state = states.get_mut(key).expect("inserted above");
            match state.apply(&op, dot) {
                Ok(()) => {}
                Err(AlgebraError::ConditionFailed { expected, found }) => {
                    return Err(TxnError::ConditionFailed {
                        key: key.clone(),
                        expected,
                        found,
                    });
                }
                Err(err) => errors.push((key.clone(), err)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TxnError::InvalidOperations { errors })
        }
    }

    // ------------------------------------------------------------------ durability

    /// Refuses everything once a storage failure left the log in an unknown state: a commit
    /// whose record failed must not be read, and nothing more may be written.
    fn check_usable(&self) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(TxnError::Poisoned {
                reason: reason.clone(),
            });
        }
        self.log.as_ref().map_or(Ok(()), SharedLog::check)
    }

    fn note_io<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.poisoned = Some(err.to_string());
        }
        result
    }

    /// The single-node replica's output: records for the log, messages for the outbox.
    /// Moves the replica's output into `self.ready` (emptied first), its messages on into the
    /// outbox.
    fn take_local_ready(&mut self) {
        self.ready.clear();
        let Core::Local(manager) = &mut self.core else {
            return;
        };
        manager.take_ready_into(&mut self.ready);
        if self.ready.messages.is_empty() {
            return;
        }
        self.outbox.extend(
            self.ready
                .messages
                .drain(..)
                .map(|(to, m)| (to, RaftWire::Replica(Box::new(m)))),
        );
    }

    /// Logs what the replica produced for a commit (as one coordinated frame for the
    /// coordinated index `coordinated`) and syncs per the policy. Returns whether the commit
    /// is durable.
    fn persist_commit(&mut self, coordinated: Option<u64>) -> Result<bool> {
        self.take_local_ready();
        let marks = self.marks();
        let (ready, Some(log)) = (&self.ready, &self.log) else {
            return Ok(false);
        };
        log.append(marks, |frames| match coordinated {
            Some(sequence) => {
                let entry = CoordinatedEntry {
                    sequence,
                    replica: ready.records.iter().map(wire::encode_record).collect(),
                };
                frames.push_coordinated(&entry);
            }
            None => {
                for record in &ready.records {
                    frames.push_replica(record);
                }
            }
        })?;
        let durable = match self.config.sync {
            SyncPolicy::EveryCommit => {
                log.sync()?;
                true
            }
            SyncPolicy::Group {
                max_delay_ms,
                max_records,
            } => log.join_group(max_records, Duration::from_millis(max_delay_ms))?,
            SyncPolicy::None => {
                log.write_out()?;
                false
            }
        };
        self.maybe_compact()?;
        Ok(durable)
    }

    /// Logs records produced by incoming messages. They are synced before any message leaves
    /// (see [`Engine::take_messages`]), which is when it matters: a peer learns this node's
    /// clock only from a message.
    fn persist_received(&mut self) -> Result<()> {
        self.take_local_ready();
        let marks = self.marks();
        let (ready, Some(log)) = (&self.ready, &self.log) else {
            return Ok(());
        };
        if ready.records.is_empty() {
            return Ok(());
        }
        log.append(marks, |frames| {
            for record in &ready.records {
                frames.push_replica(record);
            }
        })?;
        if !matches!(self.config.sync, SyncPolicy::Group { .. }) {
            log.write_out()?;
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if let Core::Raft(node) = &self.core {
            let tail = node.durable_log().tail_bytes();
            if tail > self.config.compact_after_bytes {
                return self.compact();
            }
            return Ok(());
        }
        if self
            .log
            .as_ref()
            .is_some_and(|log| log.wants_compaction(self.config.compact_after_bytes))
        {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the log as one checkpoint in a fresh segment (atomically: written aside,
    /// synced, renamed) and deletes the old one. Everything committed becomes durable.
    pub fn compact(&mut self) -> Result<()> {
        self.check_usable()?;
        if let Core::Raft(node) = &mut self.core {
            // A Raft snapshot at the applied index: the log restarts from it.
            let compacted = node.compact().map_err(TxnError::from_raft);
            self.note_io(compacted)?;
            return self.pump();
        }
        let Some(log) = &self.log else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            node: self.node_id(),
            schema: self.schema().clone(),
            sequence: self.last_sequence(),
            replica: wire::encode_record(&Record::Snapshot(Box::new(
                self.manager().replica().snapshot(),
            ))),
        };
        log.rotate(self.marks(), |frames| frames.push_checkpoint(&checkpoint))
    }

    /// Makes everything committed durable now.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        if let Core::Raft(node) = &mut self.core {
            let synced = node.durable_log_mut().sync().map_err(TxnError::from_raft);
            return self.note_io(synced);
        }
        match &self.log {
            Some(log) => log.sync(),
            None => Ok(()),
        }
    }

    /// Syncs a waiting group commit whose delay has passed. The engine's background flusher
    /// does this by itself; an engine without one (see [`EngineConfig::background_flush`])
    /// relies on this, [`Engine::tick`], the next commit or [`Engine::take_messages`].
    pub fn poll(&mut self) -> Result<()> {
        self.check_usable()?;
        match &self.log {
            Some(log) => log.flush_due_group(false),
            None => Ok(()),
        }
    }

    /// Whether a commit is durable (it survives a power loss).
    pub fn is_durable(&self, outcome: &CommitOutcome) -> bool {
        if let Core::Raft(node) = &self.core {
            // The Raft node persists everything before it answers, synced unless the policy
            // is `None`; then only a sync since makes it durable.
            return self.config.sync != SyncPolicy::None || !node.durable_log().is_dirty();
        }
        let Some(log) = &self.log else {
            return false;
        };
        let durable = log.durable();
        outcome
            .dot
            .is_none_or(|dot| dot.node() != self.node_id() || dot.counter() <= durable.counter)
            && outcome.sequence.is_none_or(|seq| seq <= durable.sequence)
    }

    /// Flushes and closes the engine.
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }

    // ------------------------------------------------------------------ reads

    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Reads one cell, locally: the value as of every update this node holds (causal: never an
    /// effect without its causes; atomic: all of a transaction's effects or none). Registers
    /// read as of the last log index this node applied. A poisoned engine refuses
    /// ([`TxnError::Poisoned`]): its memory may hold a commit whose record failed.
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        self.check_usable()?;
        self.schema()
            .column(table, column)
            .map_err(|source| TxnError::InvalidOperations {
                errors: vec![(CellKey::new(table, row, column), source)],
            })?;
        self.manager()
            .read(table, row, column)
            .map_err(|e| match e {
                CoordinationFreeError::Replica(inner) => match *inner {
                    LocalCommitError::Read { key, source }
                    | LocalCommitError::UnknownCell { key, source } => {
                        TxnError::InvalidOperations {
                            errors: vec![(*key, *source)],
                        }
                    }
                    other => TxnError::from(CoordinationFreeError::from(other)),
                },
                other => TxnError::from(other),
            })
    }

    /// This node's vector clock.
    pub fn clock(&self) -> &VectorClock {
        self.manager().clock()
    }

    /// The coordination-free manager (replica) inside — under Raft, the one the Raft node
    /// drives.
    pub fn manager(&self) -> &CoordinationFreeManager {
        match &self.core {
            Core::Local(manager) => manager,
            Core::Raft(node) => node.manager(),
        }
    }

    /// The replica inside.
    pub fn replica(&self) -> &Replica {
        self.manager().replica()
    }

    /// The Raft node, when the engine runs the Raft backend.
    pub fn raft(&self) -> Option<&RaftNode<FileRaftLog>> {
        match &self.core {
            Core::Local(_) => None,
            Core::Raft(node) => Some(node),
        }
    }

    /// The last coordinated log index applied on this node (0 if none): registers hold the
    /// values of the log up to it.
    pub fn last_sequence(&self) -> u64 {
        self.clock().get(consensus_origin())
    }

    /// A 64-bit digest of the node's replicated state (registers included): equal for nodes
    /// holding the same updates.
    pub fn fingerprint(&self) -> u64 {
        self.replica().fingerprint()
    }

    // ------------------------------------------------------------------ replication

    /// Advances the engine's logical time by one tick: Raft's elections, heartbeats and
    /// proposal timeouts (call it at a steady interval, e.g. every 10 ms); a waiting group
    /// commit is synced once its delay has passed.
    pub fn tick(&mut self) -> Result<()> {
        self.check_usable()?;
        if let Core::Raft(node) = &mut self.core {
            node.tick();
            return self.pump();
        }
        match &self.log {
            // Without a flusher, a tick is the engine's clock: a waiting group is due.
            Some(log) => log.flush_due_group(!self.config.background_flush),
            None => Ok(()),
        }
    }

    /// Drains the Raft node: its records are durable before this returns, so its messages go
    /// to the outbox and its answers to the outcomes.
    fn pump(&mut self) -> Result<()> {
        let Core::Raft(node) = &mut self.core else {
            return Ok(());
        };
        let drained = node.drain().map_err(TxnError::from_raft);
        let output = self.note_io(drained)?;
        self.outbox.extend(output.messages);
        let durable = self.config.sync != SyncPolicy::None;
        for outcome in output.outcomes {
            match outcome {
                ClientOutcome::Committed { id, index, outcome } => {
                    let result = match outcome {
                        OrderedOutcome::Applied(dot) => Ok(Some(dot)),
                        OrderedOutcome::AlreadyApplied => {
                            Ok(Dot::new(consensus_origin(), index).ok())
                        }
                        OrderedOutcome::Refused(refusal) => Err(TxnError::from_refusal(refusal)),
                    };
                    self.outcomes.push((
                        id,
                        result.map(|dot| CommitOutcome {
                            dot,
                            sequence: Some(index),
                            durable,
                            path: CommitPath::Consensus,
                        }),
                    ));
                }
                ClientOutcome::Read { .. } => {} // the engine proposes no log reads
                ClientOutcome::Failed { id, error } => {
                    self.outcomes.push((id, Err(TxnError::from_raft(error))));
                }
            }
        }
        self.maybe_compact()
    }

    /// Outcomes of coordinated transactions that `commit` reported as
    /// [`TxnError::Pending`], as the cluster decided them (or timed out: a
    /// [`RaftError::Timeout`] means the outcome is unknown).
    pub fn take_outcomes(&mut self) -> Vec<(ProposalId, Result<CommitOutcome>)> {
        std::mem::take(&mut self.outcomes)
    }

    /// Starts an anti-entropy exchange with `peer` (its message is in the next
    /// [`Engine::take_messages`]).
    pub fn sync_with(&mut self, peer: NodeId) -> Result<()> {
        self.check_usable()?;
        match &mut self.core {
            Core::Local(manager) => {
                manager.sync_with(peer);
                self.persist_received()
            }
            Core::Raft(node) => {
                node.sync_with(peer);
                self.pump()
            }
        }
    }

    /// Hands the engine a message from `from` (Raft's or a replica's). A malformed message is
    /// refused whole.
    pub fn receive(&mut self, from: NodeId, message: EngineMessage) -> Result<()> {
        self.check_usable()?;
        match &mut self.core {
            Core::Local(manager) => {
                let RaftWire::Replica(message) = message else {
                    return Err(TxnError::Config {
                        reason: format!(
                            "a Raft message from {from}, but this engine runs the single-node \
                             backend"
                        ),
                    });
                };
                let stepped = manager.receive(from, *message);
                self.persist_received()?;
                stepped.map_err(TxnError::from)
            }
            Core::Raft(node) => {
                let stepped = node.step(from, message);
                self.pump()?;
                stepped.map_err(|e| match e {
                    RaftError::Message { source, .. } => {
                        TxnError::from(CoordinationFreeError::from(*source))
                    }
                    other => TxnError::from_raft(other),
                })
            }
        }
    }

    /// [`Engine::receive`] of encoded bytes ([`RaftWire::encode`]).
    pub fn receive_bytes(&mut self, from: NodeId, bytes: &[u8]) -> Result<()> {
        let message =
            RaftWire::decode(bytes).map_err(|e| TxnError::from(CoordinationFreeError::from(e)))?;
        self.receive(from, message)
    }

    /// Messages for peers, once every record they depend on is durable (this syncs the log
    /// if needed, which also makes waiting group commits durable).
    pub fn take_messages(&mut self) -> Result<Vec<(NodeId, EngineMessage)>> {
        self.check_usable()?;
        if self.outbox.is_empty() {
            return Ok(Vec::new());
        }
        self.flush()?;
        Ok(std::mem::take(&mut self.outbox))
    }

    /// [`Engine::take_messages`], encoded for a byte transport.
    pub fn outgoing(&mut self) -> Result<Vec<(NodeId, Vec<u8>)>> {
        Ok(self
            .take_messages()?
            .into_iter()
            .map(|(to, msg)| (to, msg.encode()))
            .collect())
    }

    /// The members this node believes lack something it holds (or has not heard from): the
    /// peers worth an anti-entropy round.
    pub fn peers_behind(&self) -> Vec<NodeId> {
        self.replica().peers_behind().collect()
    }

    /// Whether every member is known to hold everything this node holds and no message waits
    /// (a Raft leader still heartbeats at every tick).
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
            && self.manager().is_idle()
            && self.raft().is_none_or(|node| node.pending() == 0)
    }
}

/// A transaction being built. Operations are checked at [`Transaction::commit`], which applies
/// all of them or none; any error leaves the engine unchanged and usable.
///
/// Reads see the engine's committed state (not this transaction's own pending writes); since
/// the transaction borrows the engine, that state cannot change while it is open.
#[derive(Debug)]
pub struct Transaction<'e> {
    engine: &'e mut Engine,
    mode: TransactionMode,
    algebraic: AlgebraicTransaction,
    registers: Vec<RegisterWrite>,
    finished: Option<Finished>,
}

impl Transaction<'_> {
    /// The transaction's mode.
    pub fn mode(&self) -> TransactionMode {
        self.mode
    }

    /// Operations added so far.
    pub fn len(&self) -> usize {
        self.algebraic.len() + self.registers.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn algebraic(&mut self) -> &mut AlgebraicTransaction {
        &mut self.algebraic
    }

    /// ADD `amount` to `(table, row, "value")` — the roadmap's
    /// `tx.increment("counters", "page_views", 1)`.
    pub fn increment(
        &mut self,
        table: &str,
        row: &str,
        amount: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.increment_column(table, row, DEFAULT_COLUMN, amount)
    }

    /// ADD `amount` to an additive column.
    pub fn increment_column(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        amount: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.algebraic().increment(table, row, column, amount);
        self
    }

    /// MULTIPLY a multiplicative column by `factor`.
    pub fn multiply(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        factor: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.algebraic().multiply(table, row, column, factor);
        self
    }

    /// Add one element to a set column (observed-remove or grow-only) — the roadmap's
    /// `tx.add_to_set("users", "user_123", "tags", "premium")`.
    pub fn add_to_set(&mut self, table: &str, row: &str, column: &str, element: &str) -> &mut Self {
        self.algebraic().add_to_set(table, row, column, [element]);
        self
    }

    /// Add several elements to a set column.
    pub fn add_all_to_set<S: Into<String>>(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        elements: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.algebraic().add_to_set(table, row, column, elements);
        self
    }

    /// Remove one element from an observed-remove set column: the adds of it this node has
    /// observed are removed; a concurrent add elsewhere survives (add wins).
    pub fn remove_from_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        element: &str,
    ) -> &mut Self {
        self.algebraic()
            .remove_from_set(table, row, column, [element]);
        self
    }

    /// Raise a MAX column to at least `value`.
    pub fn max(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.algebraic().max(table, row, column, value);
        self
    }

    /// Lower a MIN column to at most `value`.
    pub fn min(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.algebraic().min(table, row, column, value);
        self
    }

    /// Overwrite a register column (coordinated transactions only).
    pub fn put(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.registers.push(RegisterWrite::Put {
            key: CellKey::new(table, row, column),
            value: value.into(),
        });
        self
    }

    /// Overwrite a register column if it holds `expected` when the transaction applies
    /// (coordinated transactions only); otherwise the whole transaction is refused with
    /// [`TxnError::ConditionFailed`].
    pub fn compare_and_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        expected: impl Into<AlgebraicValue>,
        new: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.registers.push(RegisterWrite::CompareAndSet {
            key: CellKey::new(table, row, column),
            expected: expected.into(),
            new: new.into(),
        });
        self
    }

    /// Reads one cell as committed on this node.
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        if let Some(finished) = self.finished {
            return Err(TxnError::TransactionFinished(finished));
        }
        self.engine.read(table, row, column)
    }

    /// Commits: all operations take effect, or none (and the error says why). A transaction
    /// can be committed once; afterwards every call returns
    /// [`TxnError::TransactionFinished`].
    pub fn commit(&mut self) -> Result<CommitOutcome> {
        if let Some(finished) = self.finished {
            return Err(TxnError::TransactionFinished(finished));
        }
        self.finished = Some(Finished::Committed);
        let algebraic = std::mem::take(&mut self.algebraic);
        let registers = std::mem::take(&mut self.registers);
        self.engine.commit_parts(self.mode, algebraic, registers)
    }

    /// Like [`Transaction::commit`], but a coordinated transaction that the Raft cluster has
    /// not decided yet is an `Ok`: [`Submission::Proposed`] (its outcome comes from
    /// [`Engine::take_outcomes`]).
    pub fn submit(&mut self) -> Result<Submission> {
        if let Some(finished) = self.finished {
            return Err(TxnError::TransactionFinished(finished));
        }
        self.finished = Some(Finished::Committed);
        let algebraic = std::mem::take(&mut self.algebraic);
        let registers = std::mem::take(&mut self.registers);
        self.engine.submit_parts(self.mode, algebraic, registers)
    }

    /// Drops every operation; nothing is applied.
    pub fn abort(&mut self) -> Result<()> {
        if let Some(finished) = self.finished {
            return Err(TxnError::TransactionFinished(finished));
        }
        self.finished = Some(Finished::Aborted);
        self.algebraic = AlgebraicTransaction::new();
        self.registers.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
