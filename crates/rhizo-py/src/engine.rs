//! `rhizo-txn`: the embedded engine, its transactions (a Python context manager) and a batch
//! commit for bulk loads.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyTuple, PyType};
use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction, CellKey, Operation, Operations};
use rhizo_sim::NodeRef;
use rhizo_txn::{
    CommitOutcome, CommitPath, Engine, EngineConfig, Finished, Submission, SyncPolicy,
    TransactionMode, TxnError, default_schema,
};

use crate::algebra::{MergeTypeArg, PySchema, ValueTypeArg};
use crate::clock::{PyDot, PyNodeId, PyVectorClock};
use crate::cluster::PyEngineCluster;
use crate::convert::{Elements, NodeArg, ValueArg, value_to_py};
use crate::errors::{Exc, PyResultExt, Raise, ToRaise};

// Column defaults below are written `"value"`, `rhizo_txn::DEFAULT_COLUMN`, as a literal so
// that the Python signature shows it (a constant renders as `...`).

/// The mode names Python accepts, in the order error messages list them.
const MODES: &str = "\"coordination_free\", \"coordinated\", \"auto\"";

/// A mode argument, by the name `rhizo_txn::TransactionMode` parses.
pub(crate) fn parse_mode(name: &str) -> PyResult<TransactionMode> {
    name.parse::<TransactionMode>().py()
}

impl ToRaise for TxnError {
    fn to_raise(self) -> Raise {
        use TxnError as E;
        let message = self.to_string();
        match self {
            E::EmptyTransaction => Raise::new(Exc::InvalidTransaction, "EmptyTransaction", message),
            E::TransactionFinished(_) => {
                Raise::new(Exc::TransactionFinished, "TransactionFinished", message)
            }
            E::InvalidOperations { errors } => {
                crate::errors::invalid_operations("InvalidOperations", message, errors)
            }
            E::NotAlgebraic { operations } => {
                crate::errors::requires_coordination("NotAlgebraic", message, operations)
            }
            E::Overflow { key, .. } => {
                Raise::new(Exc::ValueOverflow, "Overflow", message).with_key(&key)
            }
            E::ConditionFailed { key, .. } => {
                Raise::new(Exc::ConditionFailed, "ConditionFailed", message).with_key(&key)
            }
            E::UnknownMode { name } => Raise::new(
                Exc::UnknownMode,
                "UnknownMode",
                format!(
                    "unknown transaction mode {}; valid modes: {MODES}",
                    rhizo_clock::Quoted(&name)
                ),
            ),
            E::UnknownName { .. } => Raise::new(Exc::Config, "UnknownName", message),
            E::ReadConflict { key, .. } => {
                Raise::new(Exc::ReadConflict, "ReadConflict", message).with_key(&key)
            }
            E::BatchStopped {
                committed,
                failed_at,
                source,
            } => {
                let mut raise = source.to_raise().with_batch(committed, failed_at);
                raise.message = message;
                raise
            }
            E::Schema(source) => {
                let mut raise = source.to_raise();
                raise.kind = "Schema";
                raise
            }
            E::Config { .. } => Raise::new(Exc::Config, "Config", message),
            E::WrongNode { .. } => Raise::new(Exc::Config, "WrongNode", message),
            E::CoordinationFree(inner) => match *inner {
                rhizo_txn::CoordinationFreeError::NonAlgebraic { operations } => {
                    crate::errors::requires_coordination("NonAlgebraic", message, operations)
                }
                rhizo_txn::CoordinationFreeError::Replica(inner) => inner.to_raise(),
            },
            E::Io { .. } => Raise::new(Exc::Storage, "Io", message),
            E::Poisoned { .. } => Raise::new(Exc::Poisoned, "Poisoned", message),
            E::DirectoryLocked { .. } => {
                Raise::new(Exc::DirectoryLocked, "DirectoryLocked", message)
            }
            E::Corrupt { .. } => Raise::new(Exc::CorruptLog, "Corrupt", message),
            E::Recovery(_) => Raise::new(Exc::CorruptLog, "Recovery", message),
            // These come only from the Raft backend (a cluster of engines).
            E::NoLeader => Raise::new(Exc::Rhizo, "NoLeader", message),
            E::Undecided { .. } => Raise::new(Exc::Rhizo, "Undecided", message),
            E::Raft(_) => Raise::new(Exc::Rhizo, "Raft", message),
        }
    }
}

fn closed() -> PyErr {
    Raise::new(Exc::Storage, "Closed", "the engine is closed").into_pyerr()
}

/// What a successful commit returns.
#[pyclass(module = "_rhizo", name = "PyCommitOutcome", frozen)]
#[derive(Clone, Copy)]
pub(crate) struct PyCommitOutcome(pub(crate) CommitOutcome);

#[pymethods]
impl PyCommitOutcome {
    /// The dot naming the algebraic part (`None` for register writes only).
    #[getter]
    fn dot(&self) -> Option<PyDot> {
        self.0.dot.map(PyDot)
    }

    /// The coordinated sequence number (coordinated transactions only).
    #[getter]
    fn sequence(&self) -> Option<u64> {
        self.0.sequence
    }

    /// Whether the commit was durable when `commit` returned.
    #[getter]
    fn durable(&self) -> bool {
        self.0.durable
    }

    /// The path the transaction took: `"local"` (coordination-free) or `"consensus"`.
    #[getter]
    fn path(&self) -> &'static str {
        match self.0.path {
            CommitPath::Local => "local",
            CommitPath::Consensus => "consensus",
        }
    }

    fn __repr__(&self) -> String {
        let dot = self.0.dot.map_or_else(
            || "None".to_owned(),
            |d| format!("{}:{}", d.node(), d.counter()),
        );
        format!(
            "PyCommitOutcome(dot={dot}, sequence={:?}, durable={}, path={:?})",
            self.0.sequence,
            self.0.durable,
            self.path()
        )
    }
}

/// One Rhizo node, embedded: opened on a data directory (or in memory with `path=None`).
///
/// `sync` is `"every_commit"` (the default: a commit that returned is durable), `"group"`
/// (group commit: `group_delay_ms`, `group_max_records`) or `"none"` (synced by `flush`).
///
/// The engine sits behind a mutex (a `PyEngine` may be shared between Python threads). The lock
/// is held only while Rust code runs: no Python code, and so no thread switch, happens under it.
#[pyclass(module = "_rhizo", name = "PyEngine", frozen)]
pub(crate) struct PyEngine {
    engine: Mutex<Option<Engine>>,
}

impl PyEngine {
    /// Runs `f` on the open engine; maps its error once the lock is released.
    fn with<R, E: ToRaise>(&self, f: impl FnOnce(&mut Engine) -> Result<R, E>) -> PyResult<R> {
        let result = {
            let mut guard = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(engine) = guard.as_mut() else {
                return Err(closed());
            };
            f(engine)
        };
        result.py()
    }

    /// Like [`PyEngine::with`] for a call that cannot fail.
    fn get<R>(&self, f: impl FnOnce(&Engine) -> R) -> PyResult<R> {
        self.with(|engine| Ok::<R, TxnError>(f(engine)))
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (path = None, node_id = None, *, schema = None, members = None,
        sync = "every_commit", group_delay_ms = 2, group_max_records = 256))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: Option<PathBuf>,
        node_id: Option<NodeArg>,
        schema: Option<&PySchema>,
        members: Option<Vec<NodeArg>>,
        sync: &str,
        group_delay_ms: u64,
        group_max_records: usize,
    ) -> PyResult<Self> {
        let node = node_id.map_or_else(|| rhizo_clock::NodeId::numbered(0), |n| n.0);
        let sync = SyncPolicy::named(sync, group_delay_ms, group_max_records).py()?;
        let mut config = EngineConfig::new(node)
            .with_sync(sync)
            .with_schema(schema.map_or_else(default_schema, |s| s.0.clone()));
        if let Some(members) = members {
            config = config.with_members(members.into_iter().map(|m| m.0));
        }
        let engine = match path {
            Some(dir) => Engine::open(dir, config),
            None => Engine::in_memory(config),
        }
        .py()?;
        Ok(Self {
            engine: Mutex::new(Some(engine)),
        })
    }

    /// Starts a transaction: `"coordination_free"` (algebraic operations only, committed
    /// locally at once), `"coordinated"` (serializable; the default) or `"auto"` (locally when
    /// every operation is algebraic, otherwise the whole transaction through the coordinated
    /// path; `outcome.path` says which). Use it as a context manager: it commits on normal exit
    /// and aborts on an exception.
    #[pyo3(signature = (mode = "coordinated"))]
    fn transaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        slf.get().get(|_| ())?;
        Ok(PyTransaction::new(Target::Engine(slf.unbind()), mode))
    }

    /// Commits many operations in one call, `ops_per_transaction` to a transaction (each
    /// transaction atomic; `None`: all in one). Each operation is a tuple
    /// `(verb, table, row, column, value)` with verb `"increment"`, `"multiply"`, `"max"`,
    /// `"min"`, `"add_to_set"`, `"remove_from_set"` or `"put"`. Stops at the first refused
    /// transaction and raises its error; the ones before it stay committed. Returns the number
    /// of transactions committed.
    #[pyo3(
        signature = (operations, mode = "coordination_free", ops_per_transaction = Some(1)),
        text_signature = "(self, /, operations, mode='coordination_free', ops_per_transaction=1)"
    )]
    fn commit_batch(
        &self,
        operations: &Bound<'_, PyAny>,
        mode: &str,
        ops_per_transaction: Option<usize>,
    ) -> PyResult<usize> {
        let mode = parse_mode(mode)?;
        // Converted before the engine is locked: conversion may run Python code.
        let ops = operations
            .try_iter()?
            .map(|item| batch_op(&item?))
            .collect::<PyResult<Vec<AlgebraicOperation>>>()?;
        self.with(|e| e.commit_batch(mode, ops, ops_per_transaction.unwrap_or(usize::MAX)))
    }

    /// Reads one cell locally (`column` defaults to `"value"`).
    #[pyo3(signature = (table, row, column = "value"))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.with(|e| e.read(table, row, column))?)
    }

    /// Declares `table.column` (a durable, versioned schema change); returns the new version.
    fn declare_column(
        &self,
        table: &str,
        column: &str,
        merge: MergeTypeArg,
        value_type: ValueTypeArg,
    ) -> PyResult<u64> {
        self.with(|e| {
            e.declare_column(table, column, merge.0, value_type.0)
                .map(|_| e.schema().version())
        })
    }

    /// The schema in force.
    #[getter]
    fn schema(&self) -> PyResult<PySchema> {
        self.get(|e| PySchema(e.schema().clone()))
    }

    /// This node.
    #[getter]
    fn node_id(&self) -> PyResult<PyNodeId> {
        self.get(|e| PyNodeId(e.node_id()))
    }

    /// This node's vector clock.
    #[getter]
    fn clock(&self) -> PyResult<PyVectorClock> {
        self.get(|e| PyVectorClock(e.clock().clone()))
    }

    /// The last coordinated sequence number applied.
    #[getter]
    fn last_sequence(&self) -> PyResult<u64> {
        self.get(Engine::last_sequence)
    }

    /// A digest of the replicated state: equal on nodes holding the same updates.
    fn fingerprint(&self) -> PyResult<u64> {
        self.get(Engine::fingerprint)
    }

    /// Whether `outcome`'s commit is durable now.
    fn is_durable(&self, outcome: &PyCommitOutcome) -> PyResult<bool> {
        self.get(|e| e.is_durable(&outcome.0))
    }

    /// Makes everything committed durable now.
    fn flush(&self) -> PyResult<()> {
        self.with(Engine::flush)
    }

    /// Syncs a waiting group commit whose delay has passed.
    fn poll(&self) -> PyResult<()> {
        self.with(Engine::poll)
    }

    /// Rewrites the log as one checkpoint.
    fn compact(&self) -> PyResult<()> {
        self.with(Engine::compact)
    }

    /// Flushes and closes the engine; later calls raise `StorageError`. Closing twice is a
    /// no-op.
    fn close(&self) -> PyResult<()> {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match engine {
            Some(engine) => engine.close().py(),
            None => Ok(()),
        }
    }

    /// Whether the engine is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Starts an anti-entropy exchange with `peer` (its message appears in `outgoing()`).
    fn sync_with(&self, peer: NodeArg) -> PyResult<()> {
        self.with(|e| e.sync_with(peer.0))
    }

    /// Hands the engine an encoded message from `sender`.
    fn receive(&self, sender: NodeArg, message: &[u8]) -> PyResult<()> {
        self.with(|e| e.receive_bytes(sender.0, message))
    }

    /// Encoded messages for peers, as `(peer, bytes)`, once what they depend on is durable.
    fn outgoing<'py>(&self, py: Python<'py>) -> PyResult<Vec<(PyNodeId, Bound<'py, PyBytes>)>> {
        Ok(self
            .with(Engine::outgoing)?
            .into_iter()
            .map(|(to, bytes)| (PyNodeId(to), PyBytes::new(py, &bytes)))
            .collect())
    }

    /// The members this node believes lack something it holds.
    fn peers_behind(&self) -> PyResult<Vec<PyNodeId>> {
        self.get(|e| e.peers_behind().into_iter().map(PyNodeId).collect())
    }

    /// Whether every member holds everything this node holds and no message waits.
    fn is_idle(&self) -> PyResult<bool> {
        self.get(Engine::is_idle)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match &*self.engine.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(engine) => format!("PyEngine(node_id={:?})", engine.node_id().name().as_str()),
            None => "PyEngine(closed)".to_owned(),
        }
    }
}

/// One `(verb, table, row, column, value)` tuple of `commit_batch`: the operation named by
/// `rhizo_commit::Operation`'s verbs (set verbs take an element or an iterable of them).
fn batch_op(item: &Bound<'_, PyAny>) -> PyResult<AlgebraicOperation> {
    let tuple = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err("each batch operation is a tuple (verb, table, row, column, value)")
    })?;
    if tuple.len() != 5 {
        return Err(PyTypeError::new_err(format!(
            "each batch operation is a tuple (verb, table, row, column, value); got {} items",
            tuple.len()
        )));
    }
    let verb: PyBackedStr = tuple.get_borrowed_item(0)?.extract()?;
    let table: PyBackedStr = tuple.get_borrowed_item(1)?.extract()?;
    let row: PyBackedStr = tuple.get_borrowed_item(2)?.extract()?;
    let column: PyBackedStr = tuple.get_borrowed_item(3)?.extract()?;
    let value = tuple.get_borrowed_item(4)?;
    let operand = if Operation::takes_elements(&verb) {
        value.extract::<Elements>()?.0
    } else {
        value.extract::<ValueArg>()?.0
    };
    let operation = Operation::named(&verb, operand, None).py()?;
    Ok(operation.on(CellKey::new(&table, &row, &column)))
}

/// What a `PyTransaction` commits to: an engine, or one node of a simulated cluster.
pub(crate) enum Target {
    Engine(Py<PyEngine>),
    Node(Py<PyEngineCluster>, NodeRef),
}

impl Target {
    fn read(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        cell: (&str, &str, &str),
    ) -> PyResult<AlgebraicValue> {
        let (table, row, column) = cell;
        match self {
            Self::Engine(engine) => engine
                .get()
                .with(|e| e.read_into(mode, tx, table, row, column)),
            Self::Node(cluster, node) => cluster
                .borrow(py)
                .0
                .read_into(*node, mode, tx, table, row, column)
                .py(),
        }
    }

    fn commit(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> PyResult<CommitOutcome> {
        match self {
            Self::Engine(engine) => engine.get().with(|e| match e.submit(mode, tx)? {
                Submission::Committed(outcome) => Ok(outcome),
                // A Python engine is a single-node engine: it decides everything at once.
                Submission::Pending(proposal) => Err(TxnError::Undecided { proposal }),
            }),
            Self::Node(cluster, node) => cluster.borrow_mut(py).0.commit_tx(*node, mode, tx).py(),
        }
    }
}

/// A transaction on a `PyEngine` (or on a node of a `PyEngineCluster`), built by its methods
/// and committed once.
///
/// As a context manager it commits on normal exit (raising the commit's error, if any) and
/// aborts on an exception (which then propagates). `outcome` holds the commit's result.
#[pyclass(module = "_rhizo", name = "PyTransaction")]
pub(crate) struct PyTransaction {
    target: Target,
    mode: TransactionMode,
    tx: AlgebraicTransaction,
    finished: Option<Finished>,
    outcome: Option<CommitOutcome>,
}

impl PyTransaction {
    pub(crate) fn new(target: Target, mode: TransactionMode) -> Self {
        Self {
            target,
            mode,
            tx: AlgebraicTransaction::new(),
            finished: None,
            outcome: None,
        }
    }

    fn open(&mut self) -> PyResult<&mut Self> {
        match self.finished {
            Some(finished) => Err(TxnError::TransactionFinished(finished)
                .to_raise()
                .into_pyerr()),
            None => Ok(self),
        }
    }
}

#[pymethods]
impl PyTransaction {
    /// ADD `amount` to `table[row].column` (`column` defaults to `"value"`): the roadmap's
    /// `tx.increment("counters", "page_views", 1)`.
    #[pyo3(signature = (table, row, amount, *, column = "value"))]
    fn increment<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        amount: ValueArg,
        column: &str,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.increment(table, row, column, amount.0);
        Ok(slf)
    }

    /// ADD `amount` to an additive column.
    fn increment_column<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        amount: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.increment(table, row, column, amount.0);
        Ok(slf)
    }

    /// MULTIPLY a multiplicative column by `factor`.
    fn multiply<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        factor: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.multiply(table, row, column, factor.0);
        Ok(slf)
    }

    /// Raise a MAX column to at least `value`.
    fn max<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.max(table, row, column, value.0);
        Ok(slf)
    }

    /// Lower a MIN column to at most `value`.
    fn min<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.min(table, row, column, value.0);
        Ok(slf)
    }

    /// Add an element (or an iterable of elements) to a set column: the roadmap's
    /// `tx.add_to_set("users", "user_123", "tags", "premium")`.
    fn add_to_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        element: Elements,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.add_to_set(table, row, column, element.0);
        Ok(slf)
    }

    /// Remove an element (or several) from an observed-remove set column: the adds of it this
    /// node has observed go; a concurrent add elsewhere survives.
    fn remove_from_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        element: Elements,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?
            .tx
            .remove_from_set(table, row, column, element.0);
        Ok(slf)
    }

    /// Overwrite a register column (coordinated transactions only).
    fn put<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?.tx.put(table, row, column, value.0);
        Ok(slf)
    }

    /// Overwrite a register if it holds `expected` when the transaction applies (coordinated
    /// only); otherwise the whole transaction is refused with `ConditionFailedError`.
    fn compare_and_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        expected: ValueArg,
        new: ValueArg,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.open()?
            .tx
            .compare_and_set(table, row, column, expected.0, new.0);
        Ok(slf)
    }

    /// Reads one cell as committed on this node (not this transaction's pending writes).
    #[pyo3(signature = (table, row, column = "value"))]
    fn read<'py>(
        &mut self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.open()?;
        let value = self
            .target
            .read(py, self.mode, &mut self.tx, (table, row, column))?;
        value_to_py(py, &value)
    }

    /// Commits: every operation takes effect, or none and the error says why. Once only.
    fn commit(&mut self, py: Python<'_>) -> PyResult<PyCommitOutcome> {
        self.open()?;
        self.finished = Some(Finished::Committed);
        let tx = std::mem::take(&mut self.tx);
        let outcome = self.target.commit(py, self.mode, tx)?;
        self.outcome = Some(outcome);
        Ok(PyCommitOutcome(outcome))
    }

    /// Drops every operation; nothing is applied.
    fn abort(&mut self) -> PyResult<()> {
        self.open()?;
        self.finished = Some(Finished::Aborted);
        self.tx = AlgebraicTransaction::new();
        Ok(())
    }

    /// `"coordination_free"`, `"coordinated"` or `"auto"`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.mode.name()
    }

    /// The commit's outcome, once committed.
    #[getter]
    fn outcome(&self) -> Option<PyCommitOutcome> {
        self.outcome.map(PyCommitOutcome)
    }

    /// `"open"`, `"committed"` or `"aborted"`.
    #[getter]
    fn state(&self) -> &'static str {
        match self.finished {
            None => "open",
            Some(Finished::Committed) => "committed",
            Some(Finished::Aborted) => "aborted",
        }
    }

    fn __len__(&self) -> usize {
        self.tx.len()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Commits on normal exit; aborts (and lets the exception propagate) otherwise. A
    /// transaction already committed or aborted inside the block is left as it is.
    #[pyo3(signature = (exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.finished.is_some() {
            return Ok(false);
        }
        if exc_type.is_some() {
            self.abort()?;
        } else {
            self.commit(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "PyTransaction(mode={:?}, {} operations, {})",
            self.mode.name(),
            self.__len__(),
            self.state()
        )
    }
}
