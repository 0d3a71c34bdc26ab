//! `rhizo-txn`: the embedded engine, its transactions (a Python context manager) and a batch
//! commit for bulk loads.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyTuple, PyType};
use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction, CellKey, Operation, Operations};
use rhizo_engine_sim::ClusterError;
use rhizo_sim::NodeRef;
use rhizo_txn::{
    CommitOutcome, CommitPath, Engine, EngineConfig, Finished, Submission, SyncPolicy,
    TransactionMode, TxnError, default_schema,
};

use crate::algebra::{MergeTypeArg, PySchema, ValueTypeArg};
use crate::clock::{PyDot, PyNodeId, PyVectorClock};
use crate::cluster::PyEngineCluster;
use crate::convert::{NodeArg, cell_elements, cell_value, value_to_py};
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
        let retryable = self.is_retryable();
        txn_raise(self).retryable(retryable)
    }
}

/// The class and attributes of an engine error (its `retryable` is set by the caller).
fn txn_raise(err: TxnError) -> Raise {
    use TxnError as E;
    let message = err.to_string();
    match err {
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
        E::DirectoryLocked { .. } => Raise::new(Exc::DirectoryLocked, "DirectoryLocked", message),
        E::Corrupt { .. } => Raise::new(Exc::CorruptLog, "Corrupt", message),
        E::Recovery(_) => Raise::new(Exc::CorruptLog, "Recovery", message),
        // These come only from the Raft backend (a cluster of engines).
        E::NoLeader => Raise::new(Exc::Rhizo, "NoLeader", message),
        E::Undecided { .. } => Raise::new(Exc::Rhizo, "Undecided", message),
        E::NotCaughtUp { .. } => Raise::new(Exc::Rhizo, "NotCaughtUp", message),
        E::Raft(inner) => raft_raise(*inner, message),
    }
}

/// A Raft-path error by its own variant (membership changes raise these: a caller must tell
/// `NotDrained`, worth retrying, from `UnknownMember`, which no retry fixes).
fn raft_raise(err: rhizo_txn::raft::RaftError, message: String) -> Raise {
    use rhizo_txn::raft::RaftError as E;
    match err {
        E::Refused(inner) => inner.to_raise(),
        E::NoLeader => Raise::new(Exc::Rhizo, "NoLeader", message),
        E::Timeout { .. } => Raise::new(Exc::Rhizo, "Timeout", message),
        E::OutcomeUnknown { .. } => Raise::new(Exc::Rhizo, "OutcomeUnknown", message),
        E::Overtaken { .. } => Raise::new(Exc::Rhizo, "Overtaken", message),
        E::Interrupted => Raise::new(Exc::Rhizo, "Interrupted", message),
        E::Raft(_) => Raise::new(Exc::Rhizo, "Raft", message),
        E::Storage { .. } => Raise::new(Exc::Storage, "Storage", message),
        E::Corrupt { .. } => Raise::new(Exc::CorruptLog, "Corrupt", message),
        // A change naming the wrong node is a bad argument: a `ConfigError` (a `ValueError`).
        E::UnknownMember { node } => {
            Raise::new(Exc::Config, "UnknownMember", message).with_node(node)
        }
        E::AlreadyMember { node } => {
            Raise::new(Exc::Config, "AlreadyMember", message).with_node(node)
        }
        E::LastVoter { node } => Raise::new(Exc::Config, "LastVoter", message).with_node(node),
        E::MembershipPending => Raise::new(Exc::Rhizo, "MembershipPending", message),
        E::LeaderTransfer { to } => Raise::new(Exc::Rhizo, "LeaderTransfer", message).with_node(to),
        // A retired node takes no writes, as a removed one (`Removed`, a `StorageError`).
        E::Retired { node } => Raise::new(Exc::Storage, "Retired", message).with_node(node),
        E::NotDrained { node } => Raise::new(Exc::Rhizo, "NotDrained", message).with_node(node),
        E::Message { from, source } => {
            let mut raise = Raise::new(Exc::RemoteRejected, "Message", message).with_node(from);
            raise.key = source.to_raise().key;
            raise
        }
        E::Config { .. } => Raise::new(Exc::Config, "Config", message),
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

    /// In Python's notation: `PyCommitOutcome(dot=PyDot("n0", 1), sequence=None,
    /// durable=True, path='local')`.
    fn __repr__(&self) -> String {
        let dot = self.0.dot.map_or_else(
            || "None".to_owned(),
            |d| format!("PyDot({:?}, {})", d.node().name().as_str(), d.counter()),
        );
        let sequence = self
            .0
            .sequence
            .map_or_else(|| "None".to_owned(), |s| s.to_string());
        let durable = if self.0.durable { "True" } else { "False" };
        format!(
            "PyCommitOutcome(dot={dot}, sequence={sequence}, durable={durable}, path='{}')",
            self.path()
        )
    }
}

/// One Rhizo node, embedded: opened on a data directory (or in memory with `path=None`).
///
/// `sync` is `"every_commit"` (the default: a commit that returned is durable), `"group"`
/// (group commit: `group_delay_ms`, `group_max_records`) or `"none"` (synced by `flush`).
///
/// The engine sits behind a mutex (a `PyEngine` may be shared between Python threads). Every
/// call releases the GIL and then takes the lock, so that other Python threads run while the
/// engine waits on the disk (a commit's sync, a flush, a compaction, opening); the GIL is taken
/// back only once the lock is released. No Python code runs under the lock, and no thread ever
/// waits for the lock while holding the GIL, so the two locks cannot deadlock.
#[pyclass(module = "_rhizo", name = "PyEngine", frozen)]
pub(crate) struct PyEngine {
    engine: Mutex<Option<Engine>>,
}

impl PyEngine {
    /// The engine slot (`None` once closed). A panic under the lock cannot leave the engine
    /// half-changed in a way the engine itself would not report, so a poisoned lock is used.
    fn lock(&self) -> MutexGuard<'_, Option<Engine>> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the open engine with the GIL released; maps its error once the GIL is back.
    pub(crate) fn with<R: Send, E: ToRaise + Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Engine) -> Result<R, E> + Send,
    ) -> PyResult<R> {
        match py.detach(|| self.lock().as_mut().map(f)) {
            Some(result) => result.py(),
            None => Err(closed()),
        }
    }

    /// Like [`PyEngine::with`] for a call that cannot fail.
    fn get<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&Engine) -> R + Send) -> PyResult<R> {
        self.with(py, |engine| Ok::<R, TxnError>(f(engine)))
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (path = None, node_id = None, *, schema = None, members = None,
        sync = "every_commit", group_delay_ms = 2, group_max_records = 256))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
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
        // Opening reads and replays the log: other threads run meanwhile.
        let engine = py
            .detach(|| match path {
                Some(dir) => Engine::open(dir, config),
                None => Engine::in_memory(config),
            })
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
        slf.get().get(slf.py(), |_| ())?;
        Ok(PyTransaction::new(Target::Engine(slf.unbind()), mode))
    }

    /// The same transaction, for `async with`: its commit runs on a worker thread of the
    /// event loop's executor with the GIL released, so the loop keeps running while it waits.
    #[pyo3(signature = (mode = "coordinated"))]
    fn atransaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        Self::transaction(slf, mode)
    }

    /// Commits many operations in one call, `ops_per_transaction` to a transaction (each
    /// transaction atomic; `None`: all in one). Each operation is a tuple
    /// `(verb, table, row, column, value)` with verb `"increment"`, `"multiply"`, `"max"`,
    /// `"min"`, `"add_to_set"`, `"remove_from_set"`, `"union"`, `"intersect"` or `"put"`.
    /// Returns the number of transactions committed.
    ///
    /// Every operation is converted before anything commits (a bad tuple or value raises and
    /// commits nothing). A refused transaction stops the batch: its error carries `committed`
    /// (the transactions before it, which stay committed) and `failed_at` (the index of its
    /// first operation in `operations`). Every operation before `failed_at` was applied once
    /// and none from it on, so calling again with `operations[failed_at:]` (the refused part
    /// fixed) resumes exactly once — unless the error is an undecided outcome
    /// (`kind == "Undecided"`), whose transaction may still commit: read before resuming.
    #[pyo3(
        signature = (operations, mode = "coordination_free", ops_per_transaction = Some(1)),
        text_signature = "(self, /, operations, mode='coordination_free', ops_per_transaction=1)"
    )]
    fn commit_batch(
        &self,
        py: Python<'_>,
        operations: &Bound<'_, PyAny>,
        mode: &str,
        ops_per_transaction: Option<i64>,
    ) -> PyResult<usize> {
        let mode = parse_mode(mode)?;
        // Converted before the engine is locked: conversion may run Python code.
        let ops = operations
            .try_iter()?
            .map(|item| batch_op(&item?))
            .collect::<PyResult<Vec<AlgebraicOperation>>>()?;
        // A size below 1 becomes 0, which the engine refuses (ConfigError) before committing.
        let per_transaction =
            ops_per_transaction.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(0));
        self.with(py, |e| e.commit_batch(mode, ops, per_transaction))
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
        value_to_py(py, &self.with(py, |e| e.read(table, row, column))?)
    }

    /// Declares `table.column` (a durable, versioned schema change); returns the new version.
    fn declare_column(
        &self,
        py: Python<'_>,
        table: &str,
        column: &str,
        merge: MergeTypeArg,
        value_type: ValueTypeArg,
    ) -> PyResult<u64> {
        self.with(py, |e| {
            e.declare_column(table, column, merge.0, value_type.0)
                .map(|_| e.schema().version())
        })
    }

    /// The schema in force.
    #[getter]
    fn schema(&self, py: Python<'_>) -> PyResult<PySchema> {
        self.get(py, |e| PySchema(e.schema().clone()))
    }

    /// This node.
    #[getter]
    fn node_id(&self, py: Python<'_>) -> PyResult<PyNodeId> {
        self.get(py, |e| PyNodeId(e.node_id()))
    }

    /// This node's vector clock.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<PyVectorClock> {
        self.get(py, |e| PyVectorClock(e.clock().clone()))
    }

    /// The last coordinated sequence number applied.
    #[getter]
    fn last_sequence(&self, py: Python<'_>) -> PyResult<u64> {
        self.get(py, Engine::last_sequence)
    }

    /// A digest of the replicated state: equal on nodes holding the same updates.
    fn fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        self.get(py, Engine::fingerprint)
    }

    /// Whether `outcome`'s commit is durable now.
    fn is_durable(&self, py: Python<'_>, outcome: &PyCommitOutcome) -> PyResult<bool> {
        let outcome = outcome.0;
        self.get(py, move |e| e.is_durable(&outcome))
    }

    /// Makes everything committed durable now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Engine::flush)
    }

    /// Syncs a waiting group commit whose delay has passed.
    fn poll(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Engine::poll)
    }

    /// Rewrites the log as one checkpoint.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, Engine::compact)
    }

    /// Flushes and closes the engine; later calls raise `StorageError`. Closing twice is a
    /// no-op.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().take().map(Engine::close))
            .transpose()
            .py()
            .map(drop)
    }

    /// Whether the engine is closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().is_none())
    }

    /// Starts an anti-entropy exchange with `peer` (its message appears in `outgoing()`).
    fn sync_with(&self, py: Python<'_>, peer: NodeArg) -> PyResult<()> {
        let peer = peer.0;
        self.with(py, move |e| e.sync_with(peer))
    }

    /// Hands the engine an encoded message from `sender`.
    fn receive(&self, py: Python<'_>, sender: NodeArg, message: &[u8]) -> PyResult<()> {
        let sender = sender.0;
        self.with(py, move |e| e.receive_bytes(sender, message))
    }

    /// Encoded messages for peers, as `(peer, bytes)`, once what they depend on is durable.
    fn outgoing<'py>(&self, py: Python<'py>) -> PyResult<Vec<(PyNodeId, Bound<'py, PyBytes>)>> {
        Ok(self
            .with(py, Engine::outgoing)?
            .into_iter()
            .map(|(to, bytes)| (PyNodeId(to), PyBytes::new(py, &bytes)))
            .collect())
    }

    /// The members this node believes lack something it holds.
    fn peers_behind(&self, py: Python<'_>) -> PyResult<Vec<PyNodeId>> {
        self.get(py, |e| e.peers_behind().into_iter().map(PyNodeId).collect())
    }

    /// Whether every member holds everything this node holds and no message waits.
    fn is_idle(&self, py: Python<'_>) -> PyResult<bool> {
        self.get(py, Engine::is_idle)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        py.detach(|| match &*self.lock() {
            Some(engine) => format!("PyEngine(node_id={:?})", engine.node_id().name().as_str()),
            None => "PyEngine(closed)".to_owned(),
        })
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
    let value = tuple.get_item(4)?;
    let cell = CellKey::new(&table, &row, &column);
    let operand = if Operation::takes_elements(&verb) {
        cell_elements(&value, &cell)?
    } else {
        cell_value(&value, &cell)?
    };
    Ok(Operation::named(&verb, operand, None).py()?.on(cell))
}

/// The running asyncio event loop (a `RuntimeError` outside one, as asyncio raises).
fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("asyncio")?.call_method0("get_running_loop")
}

/// A future of the running loop already resolved to `value`.
fn resolved<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let future = running_loop(py)?.call_method0("create_future")?;
    future.call_method1("set_result", (value,))?;
    Ok(future)
}

/// What a `PyTransaction` commits to: an engine, or one node of a simulated cluster.
pub(crate) enum Target {
    Engine(Py<PyEngine>),
    Node(Py<PyEngineCluster>, NodeRef),
    /// A networked node in this process.
    Net(Py<crate::net::PyNode>),
    /// A running node, through its client listener.
    Remote(Py<crate::net::PyClient>),
}

/// A commit that failed: the error to raise, and whether a new attempt may succeed.
struct Refusal {
    error: PyErr,
    retryable: bool,
}

impl Refusal {
    fn of<E: ToRaise>(err: E, retryable: bool) -> Self {
        Self {
            error: err.to_raise().retryable(retryable).into_pyerr(),
            retryable,
        }
    }
}

impl Refusal {
    fn of_net(err: rhizo_net::NetError) -> Self {
        let retryable = crate::net::is_retryable(&err);
        Self::of(err, retryable)
    }
}

impl From<PyErr> for Refusal {
    fn from(error: PyErr) -> Self {
        Self {
            error,
            retryable: false,
        }
    }
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
                .with(py, |e| e.read_into(mode, tx, table, row, column)),
            Self::Node(cluster, node) => cluster
                .get()
                .with(py, |c| c.read_into(*node, mode, tx, table, row, column))
                .py(),
            Self::Net(node) => node.get().read_into(py, mode, tx, cell),
            Self::Remote(client) => client.get().read_into(py, mode, tx, cell),
        }
    }

    /// Commits `tx` with the GIL released (a commit may wait on the disk or, on a cluster, run
    /// the simulation until consensus decides).
    fn commit(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<CommitOutcome, Refusal> {
        match self {
            Self::Engine(engine) => {
                let submitted = py.detach(|| {
                    let mut guard = engine.get().lock();
                    let engine = guard.as_mut()?;
                    Some(match engine.submit(mode, tx) {
                        Ok(Submission::Committed(outcome)) => Ok(outcome),
                        // A Python engine is a single-node engine: it decides everything at once.
                        Ok(Submission::Pending(proposal)) => Err(TxnError::Undecided { proposal }),
                        Err(err) => Err(err),
                    })
                });
                match submitted {
                    Some(Ok(outcome)) => Ok(outcome),
                    Some(Err(err)) => {
                        let retryable = err.is_retryable();
                        Err(Refusal::of(err, retryable))
                    }
                    None => Err(closed().into()),
                }
            }
            Self::Node(cluster, node) => cluster
                .get()
                .with(py, |c| c.commit_tx(*node, mode, tx))
                .map_err(|err: ClusterError| {
                    let retryable = err.is_retryable();
                    Refusal::of(err, retryable)
                }),
            Self::Net(node) => node.get().commit(py, mode, tx)?.map_err(Refusal::of_net),
            Self::Remote(client) => client.get().commit(py, mode, tx)?.map_err(Refusal::of_net),
        }
    }
}

/// A transaction on a `PyEngine` (or on a node of a `PyEngineCluster`), built by its methods
/// and committed once.
///
/// As a context manager it commits on normal exit (raising the commit's error, if any) and
/// aborts on an exception (which then propagates); a block that added no operation commits
/// nothing and raises nothing (`state` is then `"empty"`). `outcome` holds the commit's result.
/// A failed commit leaves `state == "failed"`, and `retryable` says whether a new transaction
/// doing the same work may succeed; the failed one cannot be committed again.
#[pyclass(module = "_rhizo", name = "PyTransaction")]
pub(crate) struct PyTransaction {
    target: Target,
    mode: TransactionMode,
    tx: AlgebraicTransaction,
    finished: Option<Finished>,
    outcome: Option<CommitOutcome>,
    /// After a failed commit: whether a new attempt may succeed.
    retryable: bool,
}

impl PyTransaction {
    pub(crate) fn new(target: Target, mode: TransactionMode) -> Self {
        Self {
            target,
            mode,
            tx: AlgebraicTransaction::new(),
            finished: None,
            outcome: None,
            retryable: false,
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

    /// Adds `operation` on `table[row].column` to the open transaction.
    fn add(&mut self, cell: &CellKey, operation: Operation) -> PyResult<()> {
        self.open()?
            .tx
            .operation(cell.table(), cell.row(), cell.column(), operation);
        Ok(())
    }
}

/// Where a verb applies, and its operand converted for it (an integer out of range raises
/// `ValueOverflowError` naming the cell).
fn operand(
    table: &str,
    row: &str,
    column: &str,
    value: &Bound<'_, PyAny>,
    elements: bool,
) -> PyResult<(CellKey, AlgebraicValue)> {
    let cell = CellKey::new(table, row, column);
    let value = if elements {
        cell_elements(value, &cell)?
    } else {
        cell_value(value, &cell)?
    };
    Ok((cell, value))
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
        amount: &Bound<'py, PyAny>,
        column: &str,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, amount) = operand(table, row, column, amount, false)?;
        slf.add(&cell, Operation::Increment(amount))?;
        Ok(slf)
    }

    /// ADD `amount` to an additive column.
    fn increment_column<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        amount: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, amount) = operand(table, row, column, amount, false)?;
        slf.add(&cell, Operation::Increment(amount))?;
        Ok(slf)
    }

    /// MULTIPLY a multiplicative column by `factor`.
    fn multiply<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        factor: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, factor) = operand(table, row, column, factor, false)?;
        slf.add(&cell, Operation::Multiply(factor))?;
        Ok(slf)
    }

    /// Raise a MAX column to at least `value`.
    fn max<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, value) = operand(table, row, column, value, false)?;
        slf.add(&cell, Operation::Max(value))?;
        Ok(slf)
    }

    /// Lower a MIN column to at most `value`.
    fn min<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, value) = operand(table, row, column, value, false)?;
        slf.add(&cell, Operation::Min(value))?;
        Ok(slf)
    }

    /// Add an element (or an iterable of elements; `str` or `int`) to a set column — tagged
    /// adds on an observed-remove set, a union on a grow-only one: the roadmap's
    /// `tx.add_to_set("users", "user_123", "tags", "premium")`.
    fn add_to_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        element: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, elements) = operand(table, row, column, element, true)?;
        slf.add(&cell, Operation::AddToSet(elements))?;
        Ok(slf)
    }

    /// Remove an element (or several) from an observed-remove set column: the adds of it this
    /// node has observed go; a concurrent add elsewhere survives.
    fn remove_from_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        element: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, elements) = operand(table, row, column, element, true)?;
        slf.add(&cell, Operation::RemoveFromSet(elements))?;
        Ok(slf)
    }

    /// Grow a UNION column (a grow-only set of `str` or `int`) by `elements`.
    fn union<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        elements: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, elements) = operand(table, row, column, elements, true)?;
        slf.add(&cell, Operation::Union(elements))?;
        Ok(slf)
    }

    /// Shrink an INTERSECT column (a set of `str` or `int`) to its intersection with
    /// `elements`. A cell never intersected reads `None` (the set of everything).
    fn intersect<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        elements: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, elements) = operand(table, row, column, elements, true)?;
        slf.add(&cell, Operation::Intersect(elements))?;
        Ok(slf)
    }

    /// Overwrite a register column (coordinated transactions only).
    fn put<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, value) = operand(table, row, column, value, false)?;
        slf.add(&cell, Operation::Put(value))?;
        Ok(slf)
    }

    /// Overwrite a register if it holds `expected` when the transaction applies (coordinated
    /// only); otherwise the whole transaction is refused with `ConditionFailedError`.
    fn compare_and_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        expected: &Bound<'py, PyAny>,
        new: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (cell, expected) = operand(table, row, column, expected, false)?;
        let new = cell_value(new, &cell)?;
        slf.add(&cell, Operation::CompareAndSet { expected, new })?;
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

    /// Commits: every operation takes effect, or none and the error says why. Once only: after
    /// a failed commit `state` is `"failed"` and `retryable` says whether a new transaction
    /// doing the same work may succeed.
    fn commit(&mut self, py: Python<'_>) -> PyResult<PyCommitOutcome> {
        self.open()?;
        let tx = std::mem::take(&mut self.tx);
        match self.target.commit(py, self.mode, tx) {
            Ok(outcome) => {
                self.finished = Some(Finished::Committed);
                self.outcome = Some(outcome);
                Ok(PyCommitOutcome(outcome))
            }
            Err(refusal) => {
                self.finished = Some(Finished::Failed);
                self.retryable = refusal.retryable;
                Err(refusal.error)
            }
        }
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

    /// `"open"`, `"committed"`, `"aborted"`, `"failed"` (the commit raised) or `"empty"` (a
    /// `with` block that added nothing: nothing was committed).
    #[getter]
    fn state(&self) -> &'static str {
        match self.finished {
            None => "open",
            Some(Finished::Committed) => "committed",
            Some(Finished::Aborted) => "aborted",
            Some(Finished::Failed) => "failed",
            Some(Finished::Empty) => "empty",
        }
    }

    /// After a failed commit, whether a new transaction doing the same work may succeed: a
    /// read conflict, no Raft leader yet, or an outcome not yet known (read first: that one
    /// may still commit). `False` when the input was refused and in every other state.
    #[getter]
    fn retryable(&self) -> bool {
        self.finished == Some(Finished::Failed) && self.retryable
    }

    fn __len__(&self) -> usize {
        self.tx.len()
    }

    /// Commits like `commit`, as an awaitable: the commit runs on the running event loop's
    /// default executor (the GIL released while it waits), so other tasks run meanwhile.
    fn acommit<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        running_loop(py)?.call_method1("run_in_executor", (py.None(), slf.getattr("commit")?))
    }

    /// `async with`: the transaction itself.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        resolved(slf.py(), slf.clone().into_any())
    }

    /// `async with`: as `__exit__`, the commit awaited on the loop's default executor (see
    /// `acommit`); an abort or an empty block finishes at once.
    #[pyo3(signature = (exc_type = None, _exc = None, _tb = None))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        exc_type: Option<&Bound<'py, PyType>>,
        _exc: Option<&Bound<'py, PyAny>>,
        _tb: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let commits = {
            let tx = slf.borrow();
            tx.finished.is_none() && exc_type.is_none() && !tx.tx.is_empty()
        };
        if commits {
            let exit = slf.getattr("__exit__")?;
            running_loop(py)?.call_method1("run_in_executor", (py.None(), exit))
        } else {
            let suppressed = slf.borrow_mut().__exit__(py, exc_type, None, None)?;
            resolved(
                py,
                pyo3::types::PyBool::new(py, suppressed)
                    .to_owned()
                    .into_any(),
            )
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Commits on normal exit; aborts (and lets the exception propagate) otherwise. A block
    /// that added no operation commits nothing and raises nothing (`state` becomes `"empty"`);
    /// a transaction already committed or aborted inside the block is left as it is.
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
        } else if self.tx.is_empty() {
            self.finished = Some(Finished::Empty);
        } else {
            self.commit(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "PyTransaction(mode='{}', {} operations, {})",
            self.mode.name(),
            self.__len__(),
            self.state()
        )
    }
}
