//! The embedded node: one transaction type from the builder to the log, two paths (local and
//! ordered), one dispatch between the single-node and the Raft backend, a durable log, and the
//! hooks that hand its messages to whatever carries them.

use std::path::Path;
use std::time::Duration;

use rhizo_algebra::{AlgebraicValue, ColumnSpec, MergeType, Schema, ValueType};
use rhizo_clock::{Dot, NodeId, VectorClock};
use rhizo_commit::{
    AlgebraicTransaction, CellKey, LocalCommitError, OrderedOutcome, Record, Replica,
    consensus_origin, wire,
};

use crate::log::{self, Checkpoint, CoordinatedEntry, Entry, Marks, SharedLog};
use crate::raft::{
    ClientOutcome, FileRaftLog, ProposalId, RaftConfig, RaftError, RaftNode, RaftWire,
};
use crate::storage::{FsStorage, MemStorage, Storage};
use crate::{
    Backend, CommitPath, CoordinationFreeConfig, CoordinationFreeError, CoordinationFreeManager,
    EngineConfig, ReadAfter, Result, SyncPolicy, Transaction, TransactionMode, TxnError,
};

/// Under [`SyncPolicy::None`], the bytes of frames the log gathers before one `write` hands them
/// to the file: one system call per batch rather than per commit, while a process crash loses at
/// most this much of the newest commits (see [`SyncPolicy::None`]).
const NONE_WRITE_BATCH: usize = 64 * 1024;

/// What engines exchange: Raft's messages and the replicas' anti-entropy, in one envelope
/// ([`RaftWire::encode`] / [`RaftWire::decode`] for byte transports).
pub type EngineMessage = RaftWire;

/// What a decided commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitOutcome {
    /// The dot naming the transaction's effects: this node's for a local commit,
    /// `(consensus-log, index)` for one ordered by the log; `None` for a schema change.
    pub dot: Option<Dot>,
    /// The coordinated log index (consensus path only): the transaction's place in the
    /// single-node order or the Raft log. Never reused, also across restarts.
    pub sequence: Option<u64>,
    /// Whether the commit was durable when it was decided (always under
    /// [`SyncPolicy::EveryCommit`]; never for an engine without a log).
    pub durable: bool,
    /// Which path the transaction took (with [`TransactionMode::Auto`], the engine's choice).
    pub path: CommitPath,
}

/// How a submitted transaction (or schema change) stands when [`Engine::submit`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Submission {
    /// Decided and committed (durable per the sync policy).
    Committed(CommitOutcome),
    /// Proposed to a Raft group and not decided yet: its outcome comes from
    /// [`Engine::take_outcomes`] under this id, once the group decides it.
    Pending(ProposalId),
}

impl Submission {
    /// The outcome, if decided.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// let outcome = tx.commit().unwrap().committed().expect("a local commit is decided at once");
    /// assert!(outcome.dot.is_some());
    /// ```
    pub fn committed(self) -> Option<CommitOutcome> {
        match self {
            Self::Committed(outcome) => Some(outcome),
            Self::Pending(_) => None,
        }
    }
}

/// One node of Rhizo, embedded: open it on a data directory, run transactions, carry its
/// messages to peers.
///
/// # Addressing
/// A cell is `(table, row, column)`. Tables and columns are declared in the schema with a merge
/// type; rows are free-form keys (at most 1024 bytes) that exist as soon as they are written.
/// An unwritten cell reads as its column's identity (0 for sums, the empty set, `Null` for
/// MAX/MIN and registers).
///
/// # Deciding
/// [`Engine::submit`] decides at once every coordination-free transaction, and every
/// coordinated one on the single-node backend or a Raft group of one. A coordinated transaction
/// a Raft group of several members must decide is [`Submission::Pending`]: its outcome arrives
/// as the engine is driven (`tick`, `receive`) in [`Engine::take_outcomes`] — drivers such as
/// `rhizo-net`'s node wait for it.
///
/// # Durability
/// Every change goes to the node's log before it is acknowledged or any message depending on
/// it leaves (see [`SyncPolicy`]). Reopening the directory replays the log; a restarted node
/// never reuses a dot or a coordinated sequence number. One engine owns a directory at a time
/// (an OS lock; a second open is [`TxnError::DirectoryLocked`]).
///
/// ```
/// use rhizo_algebra::AlgebraicValue;
/// use rhizo_clock::NodeId;
/// use rhizo_commit::Operations;
/// use rhizo_txn::{Engine, EngineConfig, TransactionMode, default_schema};
///
/// let dir = std::env::temp_dir().join(format!("rhizo-engine-doc-{}", std::process::id()));
/// let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
/// let mut engine = Engine::open(&dir, config.clone()).unwrap();
/// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
/// tx.increment("counters", "page_views", "value", 1);
/// let outcome = tx.commit().unwrap().committed().unwrap();
/// assert!(outcome.durable);
/// drop(engine);
/// let engine = Engine::open(&dir, config).unwrap(); // recovered from the log
/// assert_eq!(engine.read("counters", "page_views", "value").unwrap(), AlgebraicValue::Integer(1));
/// # drop(engine);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    core: Core,
    outbox: Vec<(NodeId, EngineMessage)>,
    /// The replica's output of the current step, kept between steps so that its lists keep
    /// their capacity (a commit then allocates no `Ready`).
    ready: rhizo_commit::Ready,
    /// Outcomes of proposals decided after `submit` returned.
    outcomes: Vec<(ProposalId, Result<CommitOutcome>)>,
    /// Set by a failed write of the Raft log (the single-node log keeps its own).
    poisoned: Option<String>,
}

/// The replica and what orders its coordinated transactions: the one dispatch between the two
/// backends.
#[derive(Debug)]
enum Core {
    /// The replica alone; coordinated transactions in this node's order, logged in `log`
    /// (none: an engine without persistence).
    Single {
        manager: Box<CoordinationFreeManager>,
        log: Option<SharedLog>,
    },
    /// A Raft group member driving the replica; its [`FileRaftLog`] holds every record.
    Raft(Box<RaftNode<FileRaftLog>>),
}

impl Engine {
    /// Opens (or creates) the node stored in directory `dir`, which it owns until dropped.
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Self> {
        let storage = FsStorage::open(dir.as_ref())?;
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine whose log lives in memory ([`MemStorage`]): durable only as long as the
    /// storage handle lives. For tests and examples.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_txn::MemStorage;
    /// let storage = MemStorage::new();
    /// let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 2);
    /// tx.commit().unwrap();
    /// drop(engine);
    /// let engine = Engine::open_in_memory_log(storage, config).unwrap(); // recovers from the log
    /// assert_eq!(engine.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(2));
    /// ```
    pub fn open_in_memory_log(storage: MemStorage, config: EngineConfig) -> Result<Self> {
        Self::open_with_storage(Box::new(storage), config)
    }

    /// An engine with no log at all: nothing is persisted and a restart starts empty. The
    /// cheapest mode; every commit reports `durable: false`. (Under Raft the node still keeps
    /// its log, in memory: a member that forgot its vote or log could break consensus.)
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::Coordinated);
    /// tx.add_to_set("users", "u1", "tags", "vip");
    /// let outcome = tx.commit().unwrap().committed().unwrap();
    /// assert!(!outcome.durable); // no log at all
    /// ```
    pub fn in_memory(config: EngineConfig) -> Result<Self> {
        if matches!(config.backend, Backend::Raft(_)) {
            return Self::open_with_storage(Box::new(MemStorage::new()), config);
        }
        config.check()?;
        let manager = new_manager(&config, false, Schema::new(), None)?;
        let mut engine = Self::assemble(config, Core::single(manager, None))?;
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    /// Opens the node stored in `storage` (recovering from its log) or creates it.
    pub fn open_with_storage(mut storage: Box<dyn Storage>, config: EngineConfig) -> Result<Self> {
        config.check()?;
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
        let mismatch = match &config.backend {
            Backend::Raft(_) if holds(log::ENGINE_PREFIX) => Some("a single-node engine log"),
            Backend::SingleNode if holds(log::RAFT_PREFIX) => Some("a Raft log"),
            _ => None,
        };
        if let Some(found) = mismatch {
            return Err(TxnError::Config {
                reason: format!(
                    "the directory holds {found}; open it with the backend that wrote it"
                ),
            });
        }
        let mut engine = match config.backend.clone() {
            Backend::Raft(raft) => Self::open_raft(storage, config, raft)?,
            Backend::SingleNode => Self::open_single(storage, config)?,
        };
        engine.declare_configured_columns()?;
        Ok(engine)
    }

    /// A single-node engine on its log in `storage`: replayed, or started with a checkpoint.
    fn open_single(storage: Box<dyn Storage>, config: EngineConfig) -> Result<Self> {
        let (log, entries) = SharedLog::open(storage)?;
        match entries {
            None => {
                let manager = new_manager(&config, true, Schema::new(), None)?;
                let mut engine = Self::assemble(config, Core::single(manager, Some(log)))?;
                engine.compact()?;
                Ok(engine)
            }
            Some(entries) => {
                let (schema, sequence, records) = replay(&config, &log, entries)?;
                let manager = new_manager(&config, true, schema, Some(records))?;
                let engine = Self::assemble(config, Core::single(manager, Some(log)))?;
                if engine.last_sequence() != sequence {
                    return Err(corrupt(
                        &engine.log_description(),
                        format!(
                            "the replica holds coordinated index {} but the log {sequence}",
                            engine.last_sequence()
                        ),
                    ));
                }
                Ok(engine)
            }
        }
    }

    /// A Raft member on its [`FileRaftLog`] in `storage`.
    fn open_raft(
        storage: Box<dyn Storage>,
        config: EngineConfig,
        raft: RaftConfig,
    ) -> Result<Self> {
        let opened = FileRaftLog::open(storage)?;
        let mut log = opened
            .log
            .with_sync(config.sync != SyncPolicy::None)
            .with_replica_sync(config.sync == SyncPolicy::EveryCommit);
        let schema = match opened.owner {
            Some((node, _)) if node != config.node_id => {
                return Err(TxnError::WrongNode {
                    expected: config.node_id,
                    found: node,
                });
            }
            Some((_, schema)) => schema,
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
        let mut engine = Self::assemble(config, Core::Raft(Box::new(node)))?;
        engine.pump()?;
        Ok(engine)
    }

    fn assemble(config: EngineConfig, core: Core) -> Result<Self> {
        let mut engine = Self {
            config,
            core,
            outbox: Vec::new(),
            ready: rhizo_commit::Ready::default(),
            outcomes: Vec::new(),
            poisoned: None,
        };
        let marks = engine.marks();
        let group = matches!(engine.config.sync, SyncPolicy::Group { .. });
        let background = engine.config.background_flush;
        if let Core::Single { log: Some(log), .. } = &mut engine.core {
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

    fn log_description(&self) -> String {
        match &self.core {
            Core::Single { log: Some(log), .. } => log.describe(),
            Core::Single { log: None, .. } => "memory".to_owned(),
            Core::Raft(node) => format!("{:?}", node.durable_log()),
        }
    }

    /// Declares the configured columns locally (under Raft every member is configured alike).
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
            let next = self
                .schema()
                .with_column(&table, &column, spec)
                .map_err(TxnError::Schema)?;
            if next.version() != self.schema().version() {
                self.install_schema(next)?;
            }
        }
        Ok(())
    }

    /// Makes `next` durable as this node's schema and installs it.
    fn install_schema(&mut self, next: Schema) -> Result<()> {
        let marks = self.marks();
        let node_id = self.node_id();
        match &mut self.core {
            Core::Raft(node) => {
                let recorded = node
                    .durable_log_mut()
                    .set_owner(node_id, &next)
                    .map_err(TxnError::from_raft);
                self.note_io(recorded)?;
                if let Core::Raft(node) = &mut self.core {
                    node.set_schema(next);
                }
            }
            Core::Single { manager, log } => {
                if let Some(log) = log {
                    log.append(marks, |frames| frames.push_schema(&next))?;
                    log.sync()?;
                }
                manager.set_schema(next);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ schema

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        self.manager().schema()
    }

    /// Declares `table.column` with a merge and value type (default bounds). Re-declaring a
    /// column as it is changes nothing; changing its merge or value type is refused. On the
    /// single-node backend the change is durable when this returns; under Raft it is ordered
    /// through the log, so that every member installs it at the same place (and the outcome may
    /// be [`Submission::Pending`]).
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_algebra::{MergeType, ValueType};
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// engine.declare_column("pages", "peak", MergeType::Max, ValueType::Integer).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.max("pages", "home", "peak", 7);
    /// tx.commit().unwrap();
    /// assert_eq!(engine.read("pages", "home", "peak").unwrap(), AlgebraicValue::Integer(7));
    /// // A column keeps its merge type: replicas already hold states of it.
    /// assert!(engine.declare_column("pages", "peak", MergeType::Min, ValueType::Integer).is_err());
    /// ```
    pub fn declare_column(
        &mut self,
        table: &str,
        column: &str,
        merge: MergeType,
        value_type: ValueType,
    ) -> Result<Submission> {
        let spec = ColumnSpec::new(merge, value_type).map_err(TxnError::Schema)?;
        self.declare_column_spec(table, column, spec)
    }

    /// [`Engine::declare_column`] with an explicit spec (bounds on sets and elements).
    pub fn declare_column_spec(
        &mut self,
        table: &str,
        column: &str,
        spec: ColumnSpec,
    ) -> Result<Submission> {
        self.check_usable()?;
        let next = self
            .schema()
            .with_column(table, column, spec)
            .map_err(TxnError::Schema)?;
        let unchanged = next.version() == self.schema().version();
        if let Core::Raft(node) = &mut self.core
            && !unchanged
        {
            let id = node.propose_schema(next).map_err(TxnError::from_raft)?;
            self.pump()?;
            return self.decided(id);
        }
        if !unchanged {
            self.install_schema(next)?;
        }
        Ok(Submission::Committed(CommitOutcome {
            dot: None,
            sequence: None,
            durable: self.has_log(),
            path: CommitPath::Local,
        }))
    }

    /// Proposes adding `node`, which listens at `address`, to the Raft group: it joins as a
    /// learner, and the leader makes it a voter once it has caught up
    /// ([`RaftNode::propose_add_member`]). The submission is decided when the addition applies
    /// here. Refused, changing nothing, by an engine without the Raft backend.
    pub fn add_member(&mut self, node: NodeId, address: String) -> Result<Submission> {
        self.change_members(|raft| raft.propose_add_member(node, address))
    }

    /// Removes `node` from the Raft group without losing any commit it acknowledged
    /// ([`RaftNode::propose_remove_member`]): `node` is retired through the log and refuses
    /// writes from there, and is removed once every other member holds its commits. The
    /// submission is decided when the removal applies here; it fails with
    /// [`RaftError::NotDrained`] if that takes longer than the proposal timeout (retrying is
    /// safe: it waits again). Refused, changing nothing, by an engine without the Raft backend.
    pub fn remove_member(&mut self, node: NodeId) -> Result<Submission> {
        self.change_members(|raft| raft.propose_remove_member(node))
    }

    /// Removes `node` from the Raft group at once, without waiting for it to drain
    /// ([`RaftNode::propose_force_remove_member`]): for a node that is gone for good, whose
    /// coordination-free commits no other member holds yet are lost with it.
    pub fn force_remove_member(&mut self, node: NodeId) -> Result<Submission> {
        self.change_members(|raft| raft.propose_force_remove_member(node))
    }

    fn change_members(
        &mut self,
        propose: impl FnOnce(&mut RaftNode<FileRaftLog>) -> std::result::Result<ProposalId, RaftError>,
    ) -> Result<Submission> {
        self.check_usable()?;
        let Core::Raft(node) = &mut self.core else {
            return Err(TxnError::Config {
                reason: "membership changes go through Raft; this engine runs the single-node \
                         backend (EngineConfig::with_raft)"
                    .to_owned(),
            });
        };
        let id = propose(node).map_err(TxnError::from_raft)?;
        self.pump()?;
        self.decided(id)
    }

    fn has_log(&self) -> bool {
        matches!(self.core, Core::Raft(_) | Core::Single { log: Some(_), .. })
    }

    // ------------------------------------------------------------------ transactions

    /// Starts a transaction. It borrows the engine until it is committed or dropped, so its
    /// reads see one consistent state.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_algebra::{MergeType, ValueType};
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// engine.declare_column("accounts", "balance", MergeType::Register, ValueType::Integer).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::Coordinated);
    /// tx.put("accounts", "42", "balance", 100);
    /// tx.commit().unwrap();
    /// // A read-modify-write: the read joins the transaction's read set.
    /// let mut tx = engine.transaction(TransactionMode::Coordinated);
    /// let balance = tx.read("accounts", "42", "balance").unwrap().as_integer().unwrap();
    /// tx.put("accounts", "42", "balance", balance - 10);
    /// tx.commit().unwrap();
    /// assert_eq!(engine.read("accounts", "42", "balance").unwrap(), AlgebraicValue::Integer(90));
    /// ```
    pub fn transaction(&mut self, mode: TransactionMode) -> Transaction<'_> {
        Transaction::new(self, mode)
    }

    /// Commits `tx` in `mode`: all of it or nothing, validated once.
    ///
    /// A coordination-free transaction (or, in [`TransactionMode::Auto`], one whose every
    /// operation is algebraic on an algebraic column) commits on this node at once. Any other
    /// is ordered whole: on the single-node backend at once, in this node's order; under Raft,
    /// through the log — decided within the call for a group of one, otherwise
    /// [`Submission::Pending`].
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_commit::AlgebraicTransaction;
    /// use rhizo_txn::TxnError;
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// assert!(engine.submit(TransactionMode::Auto, tx).unwrap().committed().is_some());
    /// // A coordination-free transaction may not overwrite: refused whole, nothing changed.
    /// let mut put = AlgebraicTransaction::new();
    /// put.increment("counters", "hits", "value", 1).put("counters", "hits", "value", 5);
    /// assert!(matches!(engine.submit(TransactionMode::CoordinationFree, put), Err(TxnError::NotAlgebraic { .. })));
    /// assert_eq!(engine.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(1));
    /// ```
    pub fn submit(
        &mut self,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<Submission> {
        self.check_usable()?;
        if tx.is_empty() {
            return Err(TxnError::EmptyTransaction);
        }
        let local = match mode {
            TransactionMode::CoordinationFree => true,
            TransactionMode::Coordinated => false,
            TransactionMode::Auto => self.is_all_algebraic(&tx),
        };
        if local {
            self.commit_local(tx).map(Submission::Committed)
        } else {
            self.order(tx)
        }
    }

    /// Whether every operation of `tx` is algebraic on an algebraic column, and it reads
    /// nothing that the log must validate.
    fn is_all_algebraic(&self, tx: &AlgebraicTransaction) -> bool {
        tx.reads().is_empty()
            && tx.operations().iter().all(|op| {
                op.op_type.is_conflict_free()
                    && self
                        .schema()
                        .column(op.key.table(), op.key.column())
                        .is_ok_and(|spec| spec.merge().is_conflict_free())
            })
    }

    fn commit_local(&mut self, tx: AlgebraicTransaction) -> Result<CommitOutcome> {
        let dot = match &mut self.core {
            Core::Single { manager, .. } => {
                manager
                    .commit_local(tx)
                    .map_err(TxnError::from_manager)?
                    .dot
            }
            Core::Raft(node) => node.commit_local(tx).map_err(TxnError::from_raft)?,
        };
        let durable = match self.core {
            Core::Single { .. } => self.persist(None)?,
            Core::Raft(_) => {
                self.pump()?;
                self.config.sync == SyncPolicy::EveryCommit
            }
        };
        Ok(CommitOutcome {
            dot: Some(dot),
            sequence: None,
            durable,
            path: CommitPath::Local,
        })
    }

    /// The ordered path: validated once by the replica, then either applied at once in this
    /// node's order or proposed to the Raft log.
    fn order(&mut self, tx: AlgebraicTransaction) -> Result<Submission> {
        let manager = match &mut self.core {
            Core::Raft(node) => {
                let id = node.propose(tx).map_err(TxnError::from_raft)?;
                // A group of one decides at once. In a cluster the proposal waits for the next
                // drain (`take_messages`, `tick`), so that every proposal made meanwhile shares
                // its log append and sync: one fsync per batch rather than per proposal.
                if node.members().len() == 1 {
                    self.pump()?;
                    return self.decided(id);
                }
                return Ok(Submission::Pending(id));
            }
            Core::Single { manager, .. } => manager,
        };
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
        let replica = &mut manager.replica;
        let update = replica.prepare_ordered(tx).map_err(TxnError::from_commit)?;
        // This node's order: the next index after the last one its replica holds, so an index
        // is never handed out twice. A refused transaction leaves no trace, its index included.
        let index = replica.clock().get(consensus_origin()) + 1;
        let outcome = replica
            .apply_ordered_alone(index, &update)
            .map_err(TxnError::from_commit)?;
        if let OrderedOutcome::Refused(refusal) = outcome {
            return Err(TxnError::from_refusal(refusal));
        }
        let durable = self.persist(Some(index))?;
        match outcome {
            OrderedOutcome::Applied(dot) => Ok(Submission::Committed(CommitOutcome {
                dot: Some(dot),
                sequence: Some(index),
                durable,
                path: CommitPath::Consensus,
            })),
            OrderedOutcome::Refused(refusal) => Err(TxnError::from_refusal(refusal)),
            OrderedOutcome::AlreadyApplied => Err(TxnError::Config {
                reason: format!("coordinated index {index} was already applied"),
            }),
        }
    }

    /// The proposal's outcome if the Raft node decided it already (a group of one).
    fn decided(&mut self, id: ProposalId) -> Result<Submission> {
        match self.outcomes.iter().position(|(i, _)| *i == id) {
            Some(at) => self.outcomes.remove(at).1.map(Submission::Committed),
            None => Ok(Submission::Pending(id)),
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
        match &self.core {
            Core::Single { log: Some(log), .. } => log.check(),
            _ => Ok(()),
        }
    }

    fn note_io<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.poisoned = Some(err.to_string());
        }
        result
    }

    /// Moves the single-node replica's output into `self.ready` (emptied first), its messages
    /// on into the outbox.
    fn take_local_ready(&mut self) {
        self.ready.clear();
        let Core::Single { manager, .. } = &mut self.core else {
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

    /// Logs what the single-node replica produced for a commit (as one coordinated frame for
    /// the coordinated index `coordinated`) and syncs per the policy. Returns whether the commit
    /// is durable.
    fn persist(&mut self, coordinated: Option<u64>) -> Result<bool> {
        self.take_local_ready();
        let marks = self.marks();
        let (ready, Core::Single { log: Some(log), .. }) = (&self.ready, &self.core) else {
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
                log.write_out_batched(NONE_WRITE_BATCH)?;
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
        let (ready, Core::Single { log: Some(log), .. }) = (&self.ready, &self.core) else {
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
        match self.config.sync {
            SyncPolicy::EveryCommit => log.write_out()?,
            SyncPolicy::None => log.write_out_batched(NONE_WRITE_BATCH)?,
            SyncPolicy::Group { .. } => {}
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let wanted = match &self.core {
            Core::Raft(node) => node.durable_log().tail_bytes() > self.config.compact_after_bytes,
            Core::Single { log: Some(log), .. } => {
                log.wants_compaction(self.config.compact_after_bytes)
            }
            Core::Single { log: None, .. } => false,
        };
        if wanted { self.compact() } else { Ok(()) }
    }

    /// Rewrites the log as one checkpoint in a fresh segment (atomically: written aside,
    /// synced, read back, renamed) and deletes the old one. Everything committed becomes
    /// durable.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_txn::MemStorage;
    /// let storage = MemStorage::new();
    /// let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    /// for _ in 0..10 {
    ///     let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    ///     tx.increment("counters", "hits", "value", 1);
    ///     tx.commit().unwrap();
    /// }
    /// engine.compact().unwrap(); // one checkpoint instead of ten records
    /// engine.close().unwrap();
    /// let engine = Engine::open_in_memory_log(storage, config).unwrap();
    /// assert_eq!(engine.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(10));
    /// ```
    pub fn compact(&mut self) -> Result<()> {
        self.check_usable()?;
        let marks = self.marks();
        match &mut self.core {
            Core::Raft(node) => {
                // A Raft snapshot at the applied index: the log restarts from it.
                let compacted = node.compact().map_err(TxnError::from_raft);
                self.note_io(compacted)?;
                self.pump()
            }
            Core::Single { log: None, .. } => Ok(()),
            Core::Single {
                manager,
                log: Some(log),
            } => {
                let checkpoint = Checkpoint {
                    node: manager.node_id(),
                    schema: manager.schema().clone(),
                    sequence: marks.sequence,
                    replica: wire::encode_record(&Record::Snapshot(Box::new(
                        manager.replica().snapshot(),
                    ))),
                };
                log.rotate(marks, |frames| frames.push_checkpoint(&checkpoint))
            }
        }
    }

    /// Makes everything committed durable now.
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        match &mut self.core {
            Core::Raft(node) => {
                let synced = node.durable_log_mut().sync().map_err(TxnError::from_raft);
                self.note_io(synced)
            }
            Core::Single { log: Some(log), .. } => log.sync(),
            Core::Single { log: None, .. } => Ok(()),
        }
    }

    /// Syncs a waiting group commit whose delay has passed. The engine's background flusher
    /// does this by itself; an engine without one (see [`EngineConfig::background_flush`])
    /// relies on this, [`Engine::tick`], the next commit or [`Engine::take_messages`].
    pub fn poll(&mut self) -> Result<()> {
        self.check_usable()?;
        match &self.core {
            Core::Single { log: Some(log), .. } => log.flush_due_group(false),
            _ => Ok(()),
        }
    }

    /// Whether a commit is durable (it survives a power loss).
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_txn::{MemStorage, SyncPolicy};
    /// let group = SyncPolicy::Group { max_delay_ms: 60_000, max_records: 100 };
    /// let mut engine = Engine::open_in_memory_log(MemStorage::new(), config.with_sync(group)).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// let outcome = tx.commit().unwrap().committed().unwrap();
    /// assert!(!engine.is_durable(&outcome)); // waiting for its group
    /// engine.flush().unwrap();
    /// assert!(engine.is_durable(&outcome));
    /// ```
    pub fn is_durable(&self, outcome: &CommitOutcome) -> bool {
        let log = match &self.core {
            // The Raft node persists everything before it answers, synced at once under
            // `EveryCommit` (and for its own records under `Group`); otherwise a commit is durable
            // once the log was synced since.
            Core::Raft(node) => {
                return self.config.sync == SyncPolicy::EveryCommit
                    || !node.durable_log().is_dirty();
            }
            Core::Single { log: None, .. } => return false,
            Core::Single { log: Some(log), .. } => log,
        };
        let durable = log.durable();
        outcome
            .dot
            .is_none_or(|dot| dot.node() != self.node_id() || dot.counter() <= durable.counter)
            && outcome.sequence.is_none_or(|seq| seq <= durable.sequence)
    }

    /// Flushes and closes the engine, releasing its directory.
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
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// let engine = Engine::in_memory(config).unwrap();
    /// assert_eq!(engine.read("counters", "never", "value").unwrap(), AlgebraicValue::Integer(0));
    /// assert!(engine.read("no_such_table", "r", "value").is_err());
    /// ```
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        self.check_usable()?;
        self.schema()
            .column(table, column)
            .map_err(|source| TxnError::InvalidOperations {
                errors: vec![(CellKey::new(table, row, column), source)],
            })?;
        self.replica()
            .read(table, row, column)
            .map_err(|e| TxnError::from_manager(e.into()))
    }

    /// Reads one cell for transaction `tx` (in `mode`): in a coordinated transaction a
    /// register read joins `tx`'s read set, which the log validates (see [`Transaction`]).
    pub fn read_into(
        &self,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        let value = self.read(table, row, column)?;
        let register = self
            .schema()
            .column(table, column)
            .is_ok_and(|spec| spec.merge() == MergeType::Register);
        if mode == TransactionMode::Coordinated && register {
            tx.expect(table, row, column, value.clone());
        }
        Ok(value)
    }

    /// Reads several cells from one state of this node: all of them as of the same moment,
    /// so a transaction that wrote some of them is seen whole or not at all. Refused whole,
    /// reading nothing, if a cell names a table or column the schema lacks.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{CellKey, Operations};
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "a", "value", 1).increment("counters", "b", "value", 2);
    /// tx.commit().unwrap();
    /// let keys = [CellKey::new("counters", "a", "value"), CellKey::new("counters", "b", "value")];
    /// assert_eq!(
    ///     engine.read_cells(&keys).unwrap(),
    ///     [AlgebraicValue::Integer(1), AlgebraicValue::Integer(2)]
    /// );
    /// ```
    pub fn read_cells(&self, keys: &[CellKey]) -> Result<Vec<AlgebraicValue>> {
        self.check_usable()?;
        self.check_readable(keys)?;
        keys.iter()
            .map(|key| {
                self.replica()
                    .read_key(key)
                    .map_err(|e| TxnError::from_manager(e.into()))
            })
            .collect()
    }

    /// [`Engine::read_cells`] once this node holds every commit `after` names (made here or on
    /// any other node): read-your-writes, and monotonic reads, across nodes. Refused with
    /// [`TxnError::NotCaughtUp`] (retryable; nothing read) while it lacks some of them; it
    /// never waits — [`ReadAfter`] says why one clock comparison decides it.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{CellKey, Operations};
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, ReadAfter, TransactionMode, TxnError};
    /// let config = |name| EngineConfig::new(NodeId::new(name).unwrap()).with_schema(default_schema());
    /// let mut a = Engine::in_memory(config("a")).unwrap();
    /// let b = Engine::in_memory(config("b")).unwrap();
    /// let mut tx = a.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// let outcome = tx.commit().unwrap().committed().unwrap();
    /// let keys = [CellKey::new("counters", "hits", "value")];
    /// let after = ReadAfter::new().with(&outcome);
    /// assert_eq!(a.read_cells_after(&keys, &after).unwrap(), [AlgebraicValue::Integer(1)]);
    /// // `b` has not received the commit yet: the read is refused, not served stale.
    /// assert!(matches!(b.read_cells_after(&keys, &after), Err(TxnError::NotCaughtUp { .. })));
    /// ```
    pub fn read_cells_after(
        &self,
        keys: &[CellKey],
        after: &ReadAfter,
    ) -> Result<Vec<AlgebraicValue>> {
        self.check_usable()?;
        self.check_readable(keys)?;
        let missing = after.missing_from(self.clock());
        if !missing.is_empty() {
            return Err(TxnError::NotCaughtUp { missing });
        }
        self.read_cells(keys)
    }

    /// Starts a linearizable read of `keys` ([`ReadConsistency::Linearizable`]): once the
    /// returned submission is decided, [`Engine::read_cells`] on this engine sees every
    /// coordinated transaction acknowledged anywhere before this call.
    ///
    /// On a Raft group of several members the leader confirms its commit index with a quorum
    /// (Raft's read index: nothing is written to the log) and this member applies the log up
    /// to it ([`Submission::Pending`]; its outcome arrives in [`Engine::take_outcomes`] with
    /// no dot and that index as `sequence`, or as an error to retry — a read changes
    /// nothing). A node that orders every coordinated transaction itself (the single-node
    /// backend, a Raft group of one) acknowledges none it has not applied, so its state
    /// already holds them: decided at once. `keys` are checked first: a cell the schema lacks
    /// is refused and nothing is proposed.
    ///
    /// [`ReadConsistency::Linearizable`]: crate::ReadConsistency::Linearizable
    pub fn start_linearizable_read(&mut self, keys: &[CellKey]) -> Result<Submission> {
        self.check_usable()?;
        self.check_readable(keys)?;
        let decided_here = CommitOutcome {
            dot: None,
            sequence: Some(self.last_sequence()),
            durable: false,
            path: CommitPath::Consensus,
        };
        let Core::Raft(node) = &mut self.core else {
            return Ok(Submission::Committed(decided_here));
        };
        if node.members().len() == 1 {
            return Ok(Submission::Committed(decided_here));
        }
        // Raft's read index writes nothing to the log; the values are read from this node's
        // state once it has applied the log up to the index the leader confirmed.
        let id = node.read_index().map_err(TxnError::from_raft)?;
        Ok(Submission::Pending(id))
    }

    /// Refuses, naming every offending cell, a read of a table or column the schema lacks.
    fn check_readable(&self, keys: &[CellKey]) -> Result<()> {
        let errors: Vec<_> = keys
            .iter()
            .filter_map(|key| {
                self.schema()
                    .column(key.table(), key.column())
                    .err()
                    .map(|source| (key.clone(), source))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TxnError::InvalidOperations { errors })
        }
    }

    /// This node's vector clock.
    pub fn clock(&self) -> &VectorClock {
        self.manager().clock()
    }

    /// The coordination-free manager (replica) inside — under Raft, the one the Raft node
    /// drives.
    pub(crate) fn manager(&self) -> &CoordinationFreeManager {
        match &self.core {
            Core::Single { manager, .. } => manager,
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
            Core::Single { .. } => None,
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
    /// proposal timeouts (call it at a steady interval, e.g. every 10 ms); an engine without a
    /// background flusher syncs its waiting group commit; under [`SyncPolicy::None`] the frames
    /// the log buffers are written to the file.
    pub fn tick(&mut self) -> Result<()> {
        self.check_usable()?;
        match &mut self.core {
            Core::Raft(node) => {
                node.tick();
                self.pump()?;
                // A Raft member's group commit waits at most one tick.
                if let (SyncPolicy::Group { .. }, Core::Raft(node)) =
                    (self.config.sync, &mut self.core)
                    && node.durable_log().is_dirty()
                {
                    let synced = node.durable_log_mut().sync().map_err(TxnError::from_raft);
                    self.note_io(synced)?;
                }
                Ok(())
            }
            Core::Single { log: Some(log), .. } => match self.config.sync {
                // Buffered frames reach the file at least once a tick, so an application that
                // ticks bounds in time, too, what a process crash may lose.
                SyncPolicy::None => log.write_out(),
                _ => log.flush_due_group(!self.config.background_flush),
            },
            Core::Single { log: None, .. } => Ok(()),
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
            if let Some(answer) = client_answer(outcome, durable) {
                self.outcomes.push(answer);
            }
        }
        self.maybe_compact()
    }

    /// Outcomes of transactions and schema changes that [`Engine::submit`] left
    /// [`Submission::Pending`], as the cluster decided them (or timed out: a
    /// [`RaftError::Timeout`] means the outcome is unknown), and of linearizable reads
    /// [`Engine::start_linearizable_read`] left pending.
    pub fn take_outcomes(&mut self) -> Vec<(ProposalId, Result<CommitOutcome>)> {
        std::mem::take(&mut self.outcomes)
    }

    /// Starts an anti-entropy exchange with `peer` (its message is in the next
    /// [`Engine::take_messages`]).
    pub fn sync_with(&mut self, peer: NodeId) -> Result<()> {
        self.check_usable()?;
        match &mut self.core {
            Core::Single { manager, .. } => {
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
            Core::Single { manager, .. } => {
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
                // Drained at the next `take_messages` or `tick`: the messages received meanwhile
                // share one log append and sync (nothing leaves, no outcome is known, before it).
                let stepped = node.step(from, message);
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
    /// if needed, which also makes waiting group commits durable). On the Raft backend this
    /// first drains what proposals and received messages left ready.
    pub fn take_messages(&mut self) -> Result<Vec<(NodeId, EngineMessage)>> {
        self.check_usable()?;
        if self.raft_has_work() {
            self.pump()?;
        }
        if self.outbox.is_empty() {
            return Ok(Vec::new());
        }
        // Raft's messages leave the drain only once the records they depend on are synced; a
        // replica message carries the replica's clock, so everything it covers (records of
        // applied entries, which the drain need not sync, included) is synced first.
        let replica = self
            .outbox
            .iter()
            .any(|(_, m)| matches!(m, RaftWire::Replica(_)));
        if replica || !matches!(self.core, Core::Raft(_)) {
            self.flush()?;
        }
        Ok(std::mem::take(&mut self.outbox))
    }

    /// On the Raft backend, the messages that may leave before this node's log is synced: a
    /// leader's appends and heartbeats, which its peers persist while it syncs its own copy
    /// (the leader counts its copy only once synced). A driver sends them, then calls
    /// [`Engine::take_messages`] at once, which syncs and returns the rest. Empty on the
    /// single-node backend.
    pub fn take_messages_before_sync(&mut self) -> Result<Vec<(NodeId, EngineMessage)>> {
        self.check_usable()?;
        let Core::Raft(node) = &mut self.core else {
            return Ok(Vec::new());
        };
        let staged = node
            .take_messages_before_sync()
            .map_err(TxnError::from_raft);
        self.note_io(staged)
    }

    /// Whether messages wait for [`Engine::take_messages`] (a driver's cue to send).
    pub fn has_messages(&self) -> bool {
        !self.outbox.is_empty() || self.raft_has_work()
    }

    /// Whether the Raft node holds proposals or received messages not drained yet (the next
    /// [`Engine::take_messages`] drains them).
    fn raft_has_work(&self) -> bool {
        matches!(&self.core, Core::Raft(node) if node.has_work())
    }

    /// Tells the engine that a message to `peer` could not be sent (the peer is unreachable or
    /// its queue is full): Raft stops streaming to it and probes again later. A no-op on the
    /// single-node backend, whose anti-entropy recovers any lost message by itself.
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if let Core::Raft(node) = &mut self.core {
            node.report_unreachable(peer);
        }
    }

    /// [`Engine::take_messages`], encoded for a byte transport.
    ///
    /// ```
    /// use rhizo_algebra::AlgebraicValue;
    /// use rhizo_clock::NodeId;
    /// use rhizo_commit::Operations;
    /// use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let config = |me| EngineConfig::new(me).with_schema(default_schema()).with_members([a, b]);
    /// let (mut on_a, mut on_b) = (Engine::in_memory(config(a)).unwrap(), Engine::in_memory(config(b)).unwrap());
    /// let mut tx = on_a.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// tx.commit().unwrap();
    /// // Whatever carries bytes between the nodes: here, a loop.
    /// on_b.sync_with(a).unwrap();
    /// while on_a.has_messages() || on_b.has_messages() {
    ///     for (to, bytes) in on_b.outgoing().unwrap() { assert_eq!(to, a); on_a.receive_bytes(b, &bytes).unwrap(); }
    ///     for (to, bytes) in on_a.outgoing().unwrap() { assert_eq!(to, b); on_b.receive_bytes(a, &bytes).unwrap(); }
    /// }
    /// assert_eq!(on_b.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(1));
    /// assert_eq!(on_a.fingerprint(), on_b.fingerprint());
    /// ```
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
        !self.has_messages()
            && self.manager().is_idle()
            && self.raft().is_none_or(|node| node.pending() == 0)
    }
}

impl Core {
    fn single(manager: CoordinationFreeManager, log: Option<SharedLog>) -> Self {
        Self::Single {
            manager: Box::new(manager),
            log,
        }
    }
}

/// A client's answer from a Raft node's outcome.
fn client_answer(
    outcome: ClientOutcome,
    durable: bool,
) -> Option<(ProposalId, Result<CommitOutcome>)> {
    let decided = |index, dot| CommitOutcome {
        dot,
        sequence: Some(index),
        durable,
        path: CommitPath::Consensus,
    };
    Some(match outcome {
        ClientOutcome::Committed { id, index, outcome } => {
            let result = match outcome {
                OrderedOutcome::Applied(dot) => Ok(decided(index, Some(dot))),
                OrderedOutcome::Refused(refusal) => Err(TxnError::from_refusal(refusal)),
                // The Raft node reports an entry it did not apply itself as unknown; an
                // `AlreadyApplied` here would be acknowledged without knowing the outcome.
                OrderedOutcome::AlreadyApplied => {
                    Err(TxnError::from_raft(RaftError::OutcomeUnknown { index }))
                }
            };
            (id, result)
        }
        ClientOutcome::SchemaChanged { id, index, .. }
        | ClientOutcome::MembershipChanged { id, index, .. } => (id, Ok(decided(index, None))),
        ClientOutcome::Failed { id, error } => (id, Err(TxnError::from_raft(error))),
        // The engine's linearizable reads carry no keys: decided means "applied up to
        // `index`", and the values are read from the engine's state.
        ClientOutcome::Read { id, index, .. } => (id, Ok(decided(index, None))),
    })
}

/// The coordination-free manager of a single-node engine (or of its recovery from `records`).
fn new_manager(
    config: &EngineConfig,
    logged: bool,
    schema: Schema,
    records: Option<Vec<Record>>,
) -> Result<CoordinationFreeManager> {
    let mut manager_config = CoordinationFreeConfig::new(config.node_id, schema)
        .with_members(config.members.iter().copied());
    manager_config.emit_records = logged;
    // The engine compacts its own log; the replica never needs to emit snapshots.
    manager_config.snapshot_every = usize::MAX;
    manager_config.max_buffered_deltas = config.max_buffered_deltas;
    match records {
        None => Ok(CoordinationFreeManager::new(manager_config)),
        Some(records) => {
            CoordinationFreeManager::recover(manager_config, records).map_err(|e| match e {
                CoordinationFreeError::Replica(inner) => TxnError::Recovery(inner),
                other => TxnError::from(other),
            })
        }
    }
}

fn corrupt(segment: &str, reason: String) -> TxnError {
    TxnError::Corrupt {
        segment: segment.to_owned(),
        offset: 0,
        reason,
    }
}

/// The schema, coordinated sequence and replica records a single-node log holds.
fn replay(
    config: &EngineConfig,
    log: &SharedLog,
    entries: Vec<Entry>,
) -> Result<(Schema, u64, Vec<Record>)> {
    let segment = log.describe();
    let mut entries = entries.into_iter();
    let Some(Entry::Checkpoint(checkpoint)) = entries.next() else {
        return Err(corrupt(
            &segment,
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
        .map_err(|e| corrupt(&segment, format!("checkpoint replica: {e}")))?;
    let mut records = vec![snapshot];
    for entry in entries {
        match entry {
            Entry::Replica(record) => records.push(*record),
            Entry::Coordinated(entry) => {
                if entry.sequence != sequence + 1 {
                    return Err(corrupt(
                        &segment,
                        format!("coordinated sequence {} after {sequence}", entry.sequence),
                    ));
                }
                sequence = entry.sequence;
                for bytes in &entry.replica {
                    records.push(
                        wire::decode_record(bytes)
                            .map_err(|e| corrupt(&segment, format!("coordinated record: {e}")))?,
                    );
                }
            }
            Entry::Schema(next) => {
                if next.version() <= schema.version() {
                    return Err(corrupt(
                        &segment,
                        format!(
                            "schema version {} after {}",
                            next.version(),
                            schema.version()
                        ),
                    ));
                }
                schema = *next;
            }
            other => {
                return Err(corrupt(
                    &segment,
                    format!("a {} inside an engine segment", other.describe()),
                ));
            }
        }
    }
    Ok((schema, sequence, records))
}

impl TxnError {
    /// Maps a refusal of the coordination-free manager.
    pub(crate) fn from_manager(err: CoordinationFreeError) -> Self {
        match err {
            CoordinationFreeError::NonAlgebraic { operations } => Self::NotAlgebraic { operations },
            CoordinationFreeError::Replica(inner) => match *inner {
                LocalCommitError::Read { key, source } => Self::InvalidOperations {
                    errors: vec![(*key, *source)],
                },
                other => Self::from_commit(other),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
