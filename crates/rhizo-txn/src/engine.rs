//! The embedded node: schema, transactions in two modes, a durable log, replication hooks.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rhizo_algebra::{
    AlgebraError, AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, Schema,
    ValueType,
};
use rhizo_clock::{Dot, NodeId, VectorClock};
use rhizo_commit::{AlgebraicTransaction, CellKey, LocalCommitError, Message, Record, wire};
use smallvec::SmallVec;

use crate::coordinated::{CoordinatedBackend, Decided, Proposal, RegisterWrite, SingleNode};
use crate::log::{self, Checkpoint, CoordinatedEntry, Entry, LogWriter};
use crate::storage::{FsStorage, MemStorage, Storage};
use crate::{
    CommitPath, CoordinationFreeConfig, CoordinationFreeError, CoordinationFreeManager, Finished,
    Result, TransactionMode, TxnError,
};

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
        }
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
    /// The dot naming the algebraic part (absent for a transaction of register writes only).
    pub dot: Option<Dot>,
    /// The coordinated sequence number (coordinated transactions only).
    pub sequence: Option<u64>,
    /// Whether the commit was durable when `commit` returned (always under
    /// [`SyncPolicy::EveryCommit`]; never for an in-memory engine).
    pub durable: bool,
    /// Which path the transaction took (with [`TransactionMode::Auto`], the engine's choice).
    pub path: CommitPath,
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
    manager: CoordinationFreeManager,
    registers: BTreeMap<CellKey, CellState>,
    backend: Box<dyn CoordinatedBackend>,
    log: Option<LogWriter>,
    outbox: Vec<(NodeId, Message)>,
    poisoned: Option<String>,
    /// Commits waiting for a group sync, and when the first of them arrived.
    group_waiting: usize,
    group_since: Option<Instant>,
    /// Own dot counter and coordinated sequence known durable.
    durable_counter: u64,
    durable_sequence: u64,
}

impl Engine {
    /// Opens (or creates) the node stored in directory `dir`.
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self> {
        let dir = dir.as_ref();
        let storage = FsStorage::open(dir).map_err(|source| TxnError::Io {
            op: "open",
            name: dir.display().to_string(),
            source,
        })?;
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine whose log lives in memory ([`MemStorage`]): durable only as long as the
    /// storage handle lives. For tests and examples.
    pub fn open_in_memory_log(storage: MemStorage, config: EngineConfig) -> Result<Self> {
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine with no log at all: nothing is persisted and a restart starts empty. The
    /// cheapest mode; every commit reports `durable: false`.
    pub fn in_memory(config: EngineConfig) -> Result<Self> {
        let mut engine = Self::assemble(config, None, Schema::new(), BTreeMap::new(), 0, None)?;
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    /// Opens the node stored in `storage` (recovering from its log) or creates it.
    pub fn open_with_storage(storage: Box<dyn Storage>, config: EngineConfig) -> Result<Self> {
        let (writer, entries) = LogWriter::open(storage)?;
        let mut engine = match entries {
            None => {
                let mut engine = Self::assemble(
                    config,
                    Some(writer),
                    Schema::new(),
                    BTreeMap::new(),
                    0,
                    None,
                )?;
                engine.compact()?;
                engine
            }
            Some(entries) => Self::replay(config, writer, entries)?,
        };
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    fn assemble(
        config: EngineConfig,
        log: Option<LogWriter>,
        schema: Schema,
        registers: BTreeMap<CellKey, CellState>,
        sequence: u64,
        records: Option<Vec<Record>>,
    ) -> Result<Self> {
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
        let mut manager_config = CoordinationFreeConfig::new(config.node_id, schema)
            .with_members(config.members.iter().copied());
        manager_config.emit_records = log.is_some();
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
        let mut backend: Box<dyn CoordinatedBackend> = Box::new(SingleNode::new());
        backend.restore(sequence);
        let durable_counter = manager.clock().get(config.node_id);
        Ok(Self {
            config,
            manager,
            registers,
            backend,
            log,
            outbox: Vec::new(),
            poisoned: None,
            group_waiting: 0,
            group_since: None,
            durable_counter,
            durable_sequence: sequence,
        })
    }

    fn replay(config: EngineConfig, writer: LogWriter, entries: Vec<Entry>) -> Result<Self> {
        let corrupt = |reason: String| TxnError::Corrupt {
            segment: format!("{writer:?}"),
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
            registers,
            replica,
        } = *checkpoint;
        if node != config.node_id {
            return Err(TxnError::WrongNode {
                expected: config.node_id,
                found: node,
            });
        }
        let mut registers: BTreeMap<CellKey, CellState> = registers.into_iter().collect();
        let snapshot = wire::decode_record(&replica)
            .map_err(|e| corrupt(format!("checkpoint replica: {e}")))?;
        let mut records = vec![snapshot];
        for entry in entries {
            match entry {
                Entry::Checkpoint(_) => {
                    return Err(corrupt("a second checkpoint inside a segment".to_owned()));
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
                    registers.extend(entry.registers);
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
        Self::assemble(
            config,
            Some(writer),
            schema,
            registers,
            sequence,
            Some(records),
        )
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
        self.manager.schema()
    }

    /// Declares `table.column` with a merge and value type (default bounds). Re-declaring a
    /// column as it is changes nothing; changing its merge or value type is refused. Returns
    /// the schema version now in force. The change is durable when this returns.
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
        if let Some(log) = &mut self.log {
            log::push_schema(log.pending(), &next);
            let synced = log.sync();
            self.note_io(synced)?;
            self.mark_durable();
        }
        let version = next.version();
        self.manager.set_schema(next);
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

    /// Commits a transaction built elsewhere (the [`Transaction`] builder calls this).
    pub fn commit_parts(
        &mut self,
        mode: TransactionMode,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<CommitOutcome> {
        self.check_usable()?;
        if algebraic.is_empty() && registers.is_empty() {
            return Err(TxnError::EmptyTransaction);
        }
        match mode {
            TransactionMode::CoordinationFree => {
                self.commit_coordination_free(algebraic, registers)
            }
            TransactionMode::Coordinated => self.commit_coordinated(algebraic, registers),
            TransactionMode::Auto => {
                // Local only when every operation is algebraic on an algebraic column;
                // otherwise the whole transaction is ordered, so a mixed one stays atomic.
                let all_algebraic = registers.is_empty()
                    && algebraic.operations().iter().all(|op| {
                        op.op_type.is_conflict_free()
                            && self
                                .schema()
                                .column(&op.key.table, &op.key.column)
                                .is_ok_and(|spec| spec.merge().is_conflict_free())
                    });
                if all_algebraic {
                    self.commit_coordination_free(algebraic, registers)
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
        self.screen(&algebraic, true)?;
        let receipt = self.manager.commit_local(algebraic).map_err(|e| match e {
            CoordinationFreeError::NonAlgebraic { operations } => {
                TxnError::NotAlgebraic { operations }
            }
            CoordinationFreeError::Replica(inner) => TxnError::from_commit(*inner),
        })?;
        let durable = self.persist_commit(None)?;
        Ok(CommitOutcome {
            dot: Some(receipt.dot),
            sequence: None,
            durable,
            path: CommitPath::Local,
        })
    }

    fn commit_coordinated(
        &mut self,
        algebraic: AlgebraicTransaction,
        registers: Vec<RegisterWrite>,
    ) -> Result<CommitOutcome> {
        // Checked before proposing, so that a refused transaction takes no sequence number;
        // `apply_decided` checks again, as it must under a backend whose order is not ours.
        self.register_effects(&registers)?;
        self.screen(&algebraic, false)?;
        self.backend.propose(Proposal {
            registers,
            algebraic,
        })?;
        let mut outcome = None;
        for decided in self.backend.take_decided() {
            let sequence = decided.sequence;
            match self.apply_decided(decided) {
                Ok(applied) => outcome = Some(applied),
                Err(err) => {
                    self.backend.release(sequence);
                    return Err(err);
                }
            }
        }
        outcome.ok_or_else(|| TxnError::Config {
            reason: format!(
                "the {} backend decided nothing for a proposal",
                self.backend.name()
            ),
        })
    }

    /// Applies one decided coordinated transaction, atomically: register states computed on
    /// copies, the algebraic part committed by the replica (which refuses it whole or applies
    /// it whole), then the registers installed and everything logged in one frame.
    fn apply_decided(&mut self, decided: Decided) -> Result<CommitOutcome> {
        let Decided { sequence, proposal } = decided;
        let new_registers = self.register_effects(&proposal.registers)?;
        let dot = if proposal.algebraic.is_empty() {
            None
        } else {
            let receipt = self
                .manager
                .commit_local(proposal.algebraic)
                .map_err(|e| match e {
                    CoordinationFreeError::NonAlgebraic { operations } => {
                        TxnError::NotAlgebraic { operations }
                    }
                    CoordinationFreeError::Replica(inner) => TxnError::from_commit(*inner),
                })?;
            Some(receipt.dot)
        };
        self.registers.extend(new_registers.iter().cloned());
        let durable = self.persist_commit(Some((sequence, new_registers)))?;
        Ok(CommitOutcome {
            dot,
            sequence: Some(sequence),
            durable,
            path: CommitPath::Consensus,
        })
    }

    /// The states the registers would reach, or why the writes are refused.
    fn register_effects(&self, writes: &[RegisterWrite]) -> Result<Vec<(CellKey, CellState)>> {
        let mut states: BTreeMap<CellKey, CellState> = BTreeMap::new();
        let mut errors = Vec::new();
        // Register cells are written in consensus order only; a dot is required by the cell API
        // but ignored by registers.
        let dot = Dot::new(self.node_id(), 1).expect("counter 1 is valid");
        for write in writes {
            let key = write.key();
            let spec = match self.schema().column(&key.table, &key.column) {
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
            let state = states.entry(key.clone()).or_insert_with(|| {
                self.registers
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| CellState::new(&spec))
            });
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
            Ok(states.into_iter().collect())
        } else {
            Err(TxnError::InvalidOperations { errors })
        }
    }

    /// One pass over a transaction's algebraic operations, before the replica sees them:
    /// refuses operations on register columns (when `refuse_registers`) and commits that would
    /// take an exact integer counter out of `i64` on this node. The replica validates the rest.
    fn screen(&self, tx: &AlgebraicTransaction, refuse_registers: bool) -> Result<()> {
        let mut counters: SmallVec<[(&CellKey, i128, OpType); 4]> = SmallVec::new();
        let mut refused: Vec<(CellKey, OpType)> = Vec::new();
        for op in tx.operations() {
            let Ok(spec) = self.schema().column(&op.key.table, &op.key.column) else {
                continue;
            };
            if spec.merge() == MergeType::Register {
                if refuse_registers {
                    refused.push((op.key.clone(), op.op_type));
                }
                continue;
            }
            let (Some(amount), ValueType::Integer) = (op.value.as_integer(), spec.value_type())
            else {
                continue;
            };
            match (spec.merge(), op.op_type) {
                (MergeType::Add, OpType::AbelianAdd)
                | (MergeType::Multiply, OpType::AbelianMultiply) => {
                    counters.push((&op.key, i128::from(amount), op.op_type));
                }
                _ => {}
            }
        }
        if !refused.is_empty() {
            return Err(TxnError::NotAlgebraic {
                operations: refused,
            });
        }
        // Effects on one cell combine; a cell's column has one merge type, so one op kind.
        counters.sort_by(|a, b| a.0.cmp(b.0));
        let mut i = 0;
        while i < counters.len() {
            let (key, mut combined, op_type) = counters[i];
            i += 1;
            while i < counters.len() && counters[i].0 == key {
                combined = match op_type {
                    OpType::AbelianAdd => combined.saturating_add(counters[i].1),
                    _ => combined.saturating_mul(counters[i].1),
                }
                // Keep the accumulator bounded; anything this large overflows anyway.
                .clamp(-(1i128 << 100), 1i128 << 100);
                i += 1;
            }
            let Ok(current) = self.manager.replica().read_key(key) else {
                continue; // already out of range through remote updates: reads report it
            };
            let Some(current) = current.as_integer() else {
                continue;
            };
            let result = match op_type {
                OpType::AbelianAdd => i128::from(current) + combined,
                _ => i128::from(current).saturating_mul(combined),
            };
            if i64::try_from(result).is_err() {
                return Err(TxnError::Overflow {
                    key: key.clone(),
                    value_type: ValueType::Integer,
                });
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ durability

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(TxnError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn note_io<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.poisoned = Some(err.to_string());
        }
        result
    }

    fn mark_durable(&mut self) {
        self.durable_counter = self.manager.clock().get(self.node_id());
        self.durable_sequence = self.backend.last_sequence();
        self.group_waiting = 0;
        self.group_since = None;
    }

    /// Logs what the replica produced for a commit (as one coordinated frame if `coordinated`)
    /// and syncs per the policy. Returns whether the commit is durable.
    fn persist_commit(
        &mut self,
        coordinated: Option<(u64, Vec<(CellKey, CellState)>)>,
    ) -> Result<bool> {
        let ready = self.manager.take_ready();
        self.outbox.extend(ready.messages);
        let Some(log) = &mut self.log else {
            return Ok(false);
        };
        match coordinated {
            Some((sequence, registers)) => {
                let entry = CoordinatedEntry {
                    sequence,
                    registers,
                    replica: ready.records.iter().map(wire::encode_record).collect(),
                };
                log::push_coordinated(log.pending(), &entry);
            }
            None => {
                for record in &ready.records {
                    log::push_replica(log.pending(), record);
                }
            }
        }
        let durable = match self.config.sync {
            SyncPolicy::EveryCommit => {
                let synced = log.sync();
                self.note_io(synced)?;
                true
            }
            SyncPolicy::Group {
                max_delay_ms,
                max_records,
            } => {
                self.group_waiting += 1;
                let since = *self.group_since.get_or_insert_with(Instant::now);
                if self.group_waiting >= max_records
                    || since.elapsed() >= Duration::from_millis(max_delay_ms)
                {
                    let synced = log.sync();
                    self.note_io(synced)?;
                    true
                } else {
                    false
                }
            }
            SyncPolicy::None => {
                let written = log.write_out();
                self.note_io(written)?;
                false
            }
        };
        if durable {
            self.mark_durable();
        }
        self.maybe_compact()?;
        Ok(durable)
    }

    /// Logs records produced by incoming messages. They are synced before any message leaves
    /// (see [`Engine::take_messages`]), which is when it matters: a peer learns this node's
    /// clock only from a message.
    fn persist_received(&mut self) -> Result<()> {
        let ready = self.manager.take_ready();
        self.outbox.extend(ready.messages);
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        for record in &ready.records {
            log::push_replica(log.pending(), record);
        }
        if !matches!(self.config.sync, SyncPolicy::Group { .. }) {
            let written = log.write_out();
            self.note_io(written)?;
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<()> {
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
        let checkpoint = Checkpoint {
            node: self.node_id(),
            schema: self.schema().clone(),
            sequence: self.backend.last_sequence(),
            registers: self
                .registers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            replica: wire::encode_record(&Record::Snapshot(Box::new(
                self.manager.replica().snapshot(),
            ))),
        };
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let rotated = log.rotate(&checkpoint);
        self.note_io(rotated)?;
        self.mark_durable();
        Ok(())
    }

    /// Makes everything committed durable now.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        if let Some(log) = &mut self.log {
            if log.is_dirty() {
                let synced = log.sync();
                self.note_io(synced)?;
            }
        }
        self.mark_durable();
        Ok(())
    }

    /// Syncs a waiting group commit whose delay has passed. Call it from an idle loop (or
    /// rely on the next commit or [`Engine::take_messages`]).
    pub fn poll(&mut self) -> Result<()> {
        if let (SyncPolicy::Group { max_delay_ms, .. }, Some(since)) =
            (self.config.sync, self.group_since)
        {
            if since.elapsed() >= Duration::from_millis(max_delay_ms) {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Whether a commit is durable (it survives a crash).
    pub fn is_durable(&self, outcome: &CommitOutcome) -> bool {
        self.log.is_some()
            && outcome
                .dot
                .is_none_or(|dot| dot.counter() <= self.durable_counter)
            && outcome
                .sequence
                .is_none_or(|seq| seq <= self.durable_sequence)
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
    /// effect without its causes; atomic: all of a transaction's effects or none).
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        let spec =
            self.schema()
                .column(table, column)
                .map_err(|source| TxnError::InvalidOperations {
                    errors: vec![(CellKey::new(table, row, column), source)],
                })?;
        if spec.merge() == MergeType::Register {
            let key = CellKey::new(table, row, column);
            return match self.registers.get(&key) {
                Some(state) => state.value().map_err(|source| TxnError::InvalidOperations {
                    errors: vec![(key, source)],
                }),
                None => Ok(AlgebraicValue::Null),
            };
        }
        self.manager.read(table, row, column).map_err(|e| match e {
            CoordinationFreeError::Replica(inner) => match *inner {
                LocalCommitError::Read { key, source }
                | LocalCommitError::UnknownCell { key, source } => TxnError::InvalidOperations {
                    errors: vec![(*key, *source)],
                },
                other => TxnError::from(CoordinationFreeError::from(other)),
            },
            other => TxnError::from(other),
        })
    }

    /// This node's vector clock.
    pub fn clock(&self) -> &VectorClock {
        self.manager.clock()
    }

    /// The coordination-free manager (replica) inside.
    pub fn manager(&self) -> &CoordinationFreeManager {
        &self.manager
    }

    /// The last coordinated sequence number applied.
    pub fn last_sequence(&self) -> u64 {
        self.backend.last_sequence()
    }

    /// A 64-bit digest of the node's replicated state and its registers: equal for nodes
    /// holding the same updates and register values.
    pub fn fingerprint(&self) -> u64 {
        let registers = postcard::to_allocvec(&self.registers).expect("encoding cannot fail");
        let mut hash = self.manager.replica().fingerprint();
        for byte in registers {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }

    // ------------------------------------------------------------------ replication

    /// Starts an anti-entropy exchange with `peer` (its message is in the next
    /// [`Engine::take_messages`]).
    pub fn sync_with(&mut self, peer: NodeId) -> Result<()> {
        self.check_usable()?;
        self.manager.sync_with(peer);
        self.persist_received()
    }

    /// Hands the engine a message from `from`. A malformed message is refused whole.
    pub fn receive(&mut self, from: NodeId, message: Message) -> Result<()> {
        self.check_usable()?;
        let stepped = self.manager.receive(from, message);
        self.persist_received()?;
        stepped.map_err(TxnError::from)
    }

    /// [`Engine::receive`] of encoded bytes (`rhizo_commit::wire`).
    pub fn receive_bytes(&mut self, from: NodeId, bytes: &[u8]) -> Result<()> {
        let message = wire::decode_message(bytes)
            .map_err(|e| TxnError::from(CoordinationFreeError::from(e)))?;
        self.receive(from, message)
    }

    /// Messages for peers, once every record they depend on is durable (this syncs the log
    /// if needed, which also makes waiting group commits durable).
    pub fn take_messages(&mut self) -> Result<Vec<(NodeId, Message)>> {
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
            .map(|(to, msg)| (to, wire::encode_message(&msg)))
            .collect())
    }

    /// The members this node believes lack something it holds (or has not heard from): the
    /// peers worth an anti-entropy round.
    pub fn peers_behind(&self) -> Vec<NodeId> {
        self.manager.replica().peers_behind().collect()
    }

    /// Whether every member is known to hold everything this node holds and no message waits.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.manager.is_idle()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort, like a buffered writer: frames still in memory reach the file. A process
        // that dies without dropping loses only what its sync policy allowed.
        if self.poisoned.is_none() {
            if let Some(log) = &mut self.log {
                let _ = log.sync();
            }
        }
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
