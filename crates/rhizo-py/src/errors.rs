//! The `RhizoError` hierarchy and the one-to-one map from the Rust error enums to it.
//!
//! Every variant of every Rust error enum maps to exactly one Python class (the table is the
//! `match` in each `impl ToPyErr` below, and `_rhizo.pyi` documents it). Every subclass but the
//! storage family is also a `ValueError`, as every error of the roadmap's original API was, so
//! its callers' handlers keep working; classes that have a more precise built-in counterpart
//! derive from it too (`TypeMismatchError` is a `TypeError`, `UnknownNodeError` an
//! `IndexError`…). Storage failures are `OSError`s only: a failed disk is not a bad argument,
//! and a handler for bad arguments must not swallow it.
//!
//! Each raised instance carries `kind`, the Rust variant's name; errors about a cell carry
//! `key`, a `(table, row, column)` tuple; a refused transaction carries `errors` or
//! `operations`; `retryable` says whether a new transaction doing the same work may succeed;
//! a stopped batch carries `committed` and `failed_at` (`None` on other errors).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use rhizo_algebra::AlgebraError;
use rhizo_clock::ClockError;
use rhizo_commit::{CellKey, LocalCommitError};
use rhizo_sim::SimError;

/// The Python exception classes, in creation order (a parent before its children).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Exc {
    Rhizo,
    InvalidNodeId,
    InvalidDot,
    ValueOverflow,
    Decode,
    Schema,
    UnknownCell,
    TypeMismatch,
    InvalidValue,
    InvalidOperation,
    RequiresCoordination,
    ConditionFailed,
    ReadConflict,
    InvalidTransaction,
    TransactionFinished,
    RemoteRejected,
    Storage,
    Poisoned,
    DirectoryLocked,
    CorruptLog,
    Config,
    UnknownMode,
    Simulation,
    SimulationConfig,
    UnknownNode,
    NodeState,
    Deadline,
    Convergence,
}

/// (class, name, parent class, built-in bases after the parent, docstring)
const CLASSES: &[(Exc, &str, Exc, &[&str], &str)] = &[
    (
        Exc::Rhizo,
        "RhizoError",
        Exc::Rhizo,
        &[],
        "Base class of every error Rhizo raises.",
    ),
    (
        Exc::InvalidNodeId,
        "InvalidNodeIdError",
        Exc::Rhizo,
        &["ValueError"],
        "A node name that is empty, longer than 16 bytes or holds a NUL byte.",
    ),
    (
        Exc::InvalidDot,
        "InvalidDotError",
        Exc::Rhizo,
        &["ValueError"],
        "A dot whose counter is 0 (the first event of a node is 1).",
    ),
    (
        Exc::ValueOverflow,
        "ValueOverflowError",
        Exc::Rhizo,
        &["OverflowError", "ValueError"],
        "An exact result (a counter, a clock entry) that leaves its type's range.",
    ),
    (
        Exc::Decode,
        "DecodeError",
        Exc::Rhizo,
        &["ValueError"],
        "Bytes or entries that are not a valid encoding (or of an unsupported format version).",
    ),
    (
        Exc::Schema,
        "SchemaError",
        Exc::Rhizo,
        &["ValueError"],
        "A schema refused a name, a column definition or a change.",
    ),
    (
        Exc::UnknownCell,
        "UnknownCellError",
        Exc::Schema,
        &["LookupError"],
        "A table or column that the schema does not declare.",
    ),
    (
        Exc::TypeMismatch,
        "TypeMismatchError",
        Exc::Rhizo,
        &["TypeError", "ValueError"],
        "A value of the wrong type for its column or operation (also NaN, null where refused).",
    ),
    (
        Exc::InvalidValue,
        "InvalidValueError",
        Exc::Rhizo,
        &["ValueError"],
        "A value outside a column's limits: set size, element length, decimal scale or digits.",
    ),
    (
        Exc::InvalidOperation,
        "InvalidOperationError",
        Exc::Rhizo,
        &["ValueError"],
        "An operation the column's merge type does not accept, or that needs context it lacks.",
    ),
    (
        Exc::RequiresCoordination,
        "RequiresCoordinationError",
        Exc::Rhizo,
        &["ValueError"],
        "Operations that are not algebraic: they need a coordinated transaction.",
    ),
    (
        Exc::ConditionFailed,
        "ConditionFailedError",
        Exc::Rhizo,
        &["ValueError"],
        "A compare-and-set found another value; nothing was applied.",
    ),
    (
        Exc::ReadConflict,
        "ReadConflictError",
        Exc::Rhizo,
        &["ValueError"],
        "A register a coordinated transaction read was written before the transaction reached \
         its place in the log; nothing was applied: read again and retry.",
    ),
    (
        Exc::InvalidTransaction,
        "InvalidTransactionError",
        Exc::Rhizo,
        &["ValueError"],
        "A transaction that is empty, too large or has a row key too long.",
    ),
    (
        Exc::TransactionFinished,
        "TransactionFinishedError",
        Exc::InvalidTransaction,
        &[],
        "A transaction used after it was committed or aborted.",
    ),
    (
        Exc::RemoteRejected,
        "RemoteRejectedError",
        Exc::Rhizo,
        &["ValueError"],
        "A message from a peer that this replica refused whole.",
    ),
    (
        Exc::Storage,
        "StorageError",
        Exc::Rhizo,
        &["OSError"],
        "A storage operation failed.",
    ),
    (
        Exc::Poisoned,
        "PoisonedError",
        Exc::Storage,
        &[],
        "An earlier storage failure left the log in an unknown state: reopen the engine.",
    ),
    (
        Exc::DirectoryLocked,
        "DirectoryLockedError",
        Exc::Storage,
        &[],
        "Another engine, in this process or another, owns the data directory; nothing was read \
         or changed.",
    ),
    (
        Exc::CorruptLog,
        "CorruptLogError",
        Exc::Storage,
        &[],
        "Durable records that are damaged or do not rebuild the node.",
    ),
    (
        Exc::Config,
        "ConfigError",
        Exc::Rhizo,
        &["ValueError"],
        "An unusable configuration (or a data directory that belongs to another node).",
    ),
    (
        Exc::UnknownMode,
        "UnknownModeError",
        Exc::Rhizo,
        &["ValueError"],
        "A transaction mode name that is not one of the valid modes.",
    ),
    (
        Exc::Simulation,
        "SimulationError",
        Exc::Rhizo,
        &["ValueError"],
        "Base class of the simulator's errors.",
    ),
    (
        Exc::SimulationConfig,
        "SimulationConfigError",
        Exc::Simulation,
        &[],
        "A simulation setting out of range.",
    ),
    (
        Exc::UnknownNode,
        "UnknownNodeError",
        Exc::Simulation,
        &["IndexError"],
        "A node index or name that is not part of the cluster.",
    ),
    (
        Exc::NodeState,
        "NodeStateError",
        Exc::Simulation,
        &[],
        "A verb that needs a running node got a crashed one, or the reverse.",
    ),
    (
        Exc::Deadline,
        "DeadlineError",
        Exc::Simulation,
        &["TimeoutError"],
        "A run reached its virtual-time limit before its condition held.",
    ),
    (
        Exc::Convergence,
        "ConvergenceError",
        Exc::Simulation,
        &[],
        "Two running replicas hold different states.",
    ),
];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn create_types(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut types: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
    for (index, &(exc, name, parent, builtin, doc)) in CLASSES.iter().enumerate() {
        debug_assert_eq!(exc as usize, index);
        let first = if exc == Exc::Rhizo {
            builtins.getattr("Exception")?
        } else {
            types[parent as usize].bind(py).clone().into_any()
        };
        let mut bases = vec![first];
        for name in builtin {
            bases.push(builtins.getattr(*name)?);
        }
        let bases = PyTuple::new(py, bases)?;
        let dict = PyDict::new(py);
        dict.set_item("__module__", "rhizo")?;
        dict.set_item("__doc__", doc)?;
        let class = type_.call1((name, bases, dict))?;
        types.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(types)
}

/// Adds every exception class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let types = TYPES.get_or_try_init(py, || create_types(py))?;
    for (ty, &(_, name, ..)) in types.iter().zip(CLASSES) {
        m.add(name, ty.bind(py))?;
    }
    Ok(())
}

/// The class object of `exc`.
pub(crate) fn class(py: Python<'_>, exc: Exc) -> PyResult<Bound<'_, PyType>> {
    let types = TYPES.get_or_try_init(py, || create_types(py))?;
    Ok(types[exc as usize].bind(py).clone())
}

/// A raised error under construction: its class, message, Rust variant and extra attributes.
pub(crate) struct Raise {
    exc: Exc,
    pub(crate) message: String,
    pub(crate) kind: &'static str,
    pub(crate) key: Option<CellKey>,
    node: Option<String>,
    errors: Vec<(CellKey, Raise)>,
    operations: Vec<(CellKey, &'static str)>,
    /// For a batch that stopped: transactions committed before, and where the refused one
    /// starts.
    batch: Option<(usize, usize)>,
    /// Whether a new transaction doing the same work may succeed.
    retryable: bool,
}

impl Raise {
    pub(crate) fn new(exc: Exc, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            exc,
            message: message.into(),
            kind,
            key: None,
            node: None,
            errors: Vec::new(),
            operations: Vec::new(),
            batch: None,
            retryable: false,
        }
    }

    /// Says whether a new transaction doing the same work may succeed (`retryable` on the
    /// exception; `False` unless set).
    pub(crate) fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// For a batch that stopped at this error: `committed` transactions before it, and the
    /// index of its first operation (`committed` and `failed_at` on the exception).
    pub(crate) fn with_batch(mut self, committed: usize, failed_at: usize) -> Self {
        self.batch = Some((committed, failed_at));
        self
    }

    pub(crate) fn with_key(mut self, key: &CellKey) -> Self {
        self.key = Some(key.clone());
        self
    }

    pub(crate) fn with_node(mut self, node: impl ToString) -> Self {
        self.node = Some(node.to_string());
        self
    }

    fn instance<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = class(py, self.exc)?.call1((self.message,))?;
        value.setattr("kind", self.kind)?;
        value.setattr("key", self.key.as_ref().map(key_tuple))?;
        value.setattr("node", self.node)?;
        let errors = PyList::empty(py);
        for (key, inner) in self.errors {
            errors.append((key_tuple(&key), inner.instance(py)?))?;
        }
        value.setattr("errors", errors)?;
        let operations = PyList::empty(py);
        for (key, op) in self.operations {
            operations.append((key_tuple(&key), op))?;
        }
        value.setattr("operations", operations)?;
        let (committed, failed_at) = self.batch.unzip();
        value.setattr("committed", committed)?;
        value.setattr("failed_at", failed_at)?;
        value.setattr("retryable", self.retryable)?;
        Ok(value)
    }

    /// The Python exception.
    pub(crate) fn into_pyerr(self) -> PyErr {
        Python::attach(|py| match self.instance(py) {
            Ok(value) => PyErr::from_value(value),
            Err(err) => err,
        })
    }
}

/// A cell key as Python sees it: `(table, row, column)`.
pub(crate) fn key_tuple(key: &CellKey) -> (String, String, String) {
    (
        key.table().to_string(),
        key.row().to_string(),
        key.column().to_string(),
    )
}

/// A Rust error that has its Python class.
pub(crate) trait ToRaise {
    fn to_raise(self) -> Raise;
}

/// `?`-friendly conversion of a Rust `Result` into a `PyResult`.
pub(crate) trait PyResultExt<T> {
    fn py(self) -> PyResult<T>;
}

impl<E: ToRaise> ToRaise for Box<E> {
    fn to_raise(self) -> Raise {
        (*self).to_raise()
    }
}

impl<T, E: ToRaise> PyResultExt<T> for Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| e.to_raise().into_pyerr())
    }
}

impl ToRaise for ClockError {
    fn to_raise(self) -> Raise {
        let message = self.to_string();
        let (exc, kind) = match &self {
            ClockError::EmptyNodeName => (Exc::InvalidNodeId, "EmptyNodeName"),
            ClockError::NodeNameTooLong { .. } => (Exc::InvalidNodeId, "NodeNameTooLong"),
            ClockError::NodeNameHasNul { .. } => (Exc::InvalidNodeId, "NodeNameHasNul"),
            ClockError::CounterOverflow { .. } => (Exc::ValueOverflow, "CounterOverflow"),
            ClockError::ZeroDot { .. } => (Exc::InvalidDot, "ZeroDot"),
            ClockError::NonCanonical { .. } => (Exc::Decode, "NonCanonical"),
        };
        let raise = Raise::new(exc, kind, message);
        match self {
            ClockError::CounterOverflow { node } | ClockError::ZeroDot { node } => {
                raise.with_node(node)
            }
            _ => raise,
        }
    }
}

impl ToRaise for AlgebraError {
    fn to_raise(self) -> Raise {
        use AlgebraError as E;
        let (exc, kind) = match &self {
            E::UnknownTable { .. } => (Exc::UnknownCell, "UnknownTable"),
            E::UnknownColumn { .. } => (Exc::UnknownCell, "UnknownColumn"),
            E::UnknownName { .. } => (Exc::Schema, "UnknownName"),
            E::InvalidColumn { .. } => (Exc::Schema, "InvalidColumn"),
            E::InvalidName { .. } => (Exc::Schema, "InvalidName"),
            E::DuplicateColumn { .. } => (Exc::Schema, "DuplicateColumn"),
            E::ColumnRedefined { .. } => (Exc::Schema, "ColumnRedefined"),
            E::OpNotAccepted { .. } => (Exc::InvalidOperation, "OpNotAccepted"),
            E::NeedsContext { .. } => (Exc::InvalidOperation, "NeedsContext"),
            E::StateMismatch { .. } => (Exc::InvalidOperation, "StateMismatch"),
            E::UnsupportedType { .. } => (Exc::InvalidOperation, "UnsupportedType"),
            E::MixedKinds { .. } => (Exc::TypeMismatch, "MixedKinds"),
            E::TypeMismatch { .. } => (Exc::TypeMismatch, "TypeMismatch"),
            E::NullNotAllowed { .. } => (Exc::TypeMismatch, "NullNotAllowed"),
            E::NonFiniteFloat { .. } => (Exc::TypeMismatch, "NonFiniteFloat"),
            E::Conversion { .. } => (Exc::TypeMismatch, "Conversion"),
            E::SetTooLarge { .. } => (Exc::InvalidValue, "SetTooLarge"),
            E::ElementTooLong { .. } => (Exc::InvalidValue, "ElementTooLong"),
            E::DecimalScale { .. } => (Exc::InvalidValue, "DecimalScale"),
            E::DecimalPrecision { .. } => (Exc::InvalidValue, "DecimalPrecision"),
            E::InvalidDecimal { .. } => (Exc::InvalidValue, "InvalidDecimal"),
            E::InvalidLiteral { .. } => (Exc::InvalidValue, "InvalidLiteral"),
            E::Overflow { .. } => (Exc::ValueOverflow, "Overflow"),
            E::NotConflictFree { .. } => (Exc::RequiresCoordination, "NotConflictFree"),
            E::ConditionFailed { .. } => (Exc::ConditionFailed, "ConditionFailed"),
            E::NonCanonical { .. } => (Exc::Decode, "NonCanonical"),
        };
        Raise::new(exc, kind, self.to_string())
    }
}

/// A list of refused operations raises the class of the first one's reason (so that an unknown
/// column in a transaction is caught as `UnknownCellError`), with every reason in `errors`.
pub(crate) fn invalid_operations(
    kind: &'static str,
    message: String,
    errors: Vec<(CellKey, AlgebraError)>,
) -> Raise {
    let inner: Vec<(CellKey, Raise)> = errors
        .into_iter()
        .map(|(key, err)| {
            let raise = err.to_raise().with_key(&key);
            (key, raise)
        })
        .collect();
    let (exc, key) = match inner.first() {
        Some((key, first)) => (first.exc, Some(key.clone())),
        None => (Exc::InvalidOperation, None),
    };
    let mut raise = Raise::new(exc, kind, message);
    raise.key = key;
    raise.errors = inner;
    raise
}

pub(crate) fn requires_coordination(
    kind: &'static str,
    message: String,
    operations: Vec<(CellKey, rhizo_algebra::OpType)>,
) -> Raise {
    let mut raise = Raise::new(Exc::RequiresCoordination, kind, message);
    raise.key = operations.first().map(|(k, _)| k.clone());
    raise.operations = operations
        .into_iter()
        .map(|(k, op)| (k, op.name()))
        .collect();
    raise
}

impl ToRaise for LocalCommitError {
    fn to_raise(self) -> Raise {
        use LocalCommitError as E;
        let message = self.to_string();
        match self {
            E::EmptyTransaction => Raise::new(Exc::InvalidTransaction, "EmptyTransaction", message),
            E::ConflictingKeyColumns { .. } => {
                Raise::new(Exc::InvalidOperation, "ConflictingKeyColumns", message)
            }
            E::RowKeyTooLong { key, .. } => {
                Raise::new(Exc::InvalidTransaction, "RowKeyTooLong", message).with_key(&key)
            }
            E::TransactionTooLarge { .. } => {
                Raise::new(Exc::InvalidTransaction, "TransactionTooLarge", message)
            }
            E::RequiresCoordination { operations } => {
                requires_coordination("RequiresCoordination", message, operations)
            }
            E::InvalidOperations { errors } => {
                invalid_operations("InvalidOperations", message, errors)
            }
            E::Clock(err) => err.to_raise(),
            E::Read { key, source } => {
                let exc = source.to_raise().exc;
                Raise::new(exc, "Read", message).with_key(&key)
            }
            E::UnknownCell { key, source } => {
                let exc = source.to_raise().exc;
                Raise::new(exc, "UnknownCell", message).with_key(&key)
            }
            E::StalePreparedCell { key } => {
                Raise::new(Exc::Schema, "StalePreparedCell", message).with_key(&key)
            }
            E::RemoteStateRejected { from, key, .. } => {
                Raise::new(Exc::RemoteRejected, "RemoteStateRejected", message)
                    .with_key(&key)
                    .with_node(from)
            }
            E::MalformedMessage { from, .. } => {
                Raise::new(Exc::RemoteRejected, "MalformedMessage", message).with_node(from)
            }
            E::Decode { .. } => Raise::new(Exc::Decode, "Decode", message),
            E::UnsupportedFormat { .. } => Raise::new(Exc::Decode, "UnsupportedFormat", message),
            E::Recovery { .. } => Raise::new(Exc::CorruptLog, "Recovery", message),
            E::ReadConflict { key, .. } => {
                Raise::new(Exc::ReadConflict, "ReadConflict", message).with_key(&key)
            }
            E::SchemaBehind { .. } => Raise::new(Exc::Schema, "SchemaBehind", message),
            E::UnknownVerb { .. } => Raise::new(Exc::Config, "UnknownVerb", message),
        }
    }
}

impl ToRaise for rhizo_engine_sim::ClusterError {
    fn to_raise(self) -> Raise {
        match self {
            Self::Txn(err) => err.to_raise(),
            Self::Simulation(err) => err.to_raise(),
        }
    }
}

impl ToRaise for SimError {
    fn to_raise(self) -> Raise {
        use SimError as E;
        let message = self.to_string();
        let (exc, kind) = match &self {
            E::NoNodes => (Exc::SimulationConfig, "NoNodes"),
            E::TooManyNodes { .. } => (Exc::SimulationConfig, "TooManyNodes"),
            E::InvalidRate { .. } => (Exc::SimulationConfig, "InvalidRate"),
            E::InvalidLatency { .. } => (Exc::SimulationConfig, "InvalidLatency"),
            E::InvalidRegionMatrix { .. } => (Exc::SimulationConfig, "InvalidRegionMatrix"),
            E::ZeroFanout => (Exc::SimulationConfig, "ZeroFanout"),
            E::ZeroBatchSize => (Exc::SimulationConfig, "ZeroBatchSize"),
            E::ZeroSyncInterval => (Exc::SimulationConfig, "ZeroSyncInterval"),
            E::UnknownCondition { .. } => (Exc::SimulationConfig, "UnknownCondition"),
            E::UnknownNode { .. } => (Exc::UnknownNode, "UnknownNode"),
            E::NodeCrashed { .. } => (Exc::NodeState, "NodeCrashed"),
            E::NodeNotCrashed { .. } => (Exc::NodeState, "NodeNotCrashed"),
            E::NotQuiescent { .. } => (Exc::Deadline, "NotQuiescent"),
            E::DeadlineReached { .. } => (Exc::Deadline, "DeadlineReached"),
            E::Diverged { .. } => (Exc::Convergence, "Diverged"),
            E::Commit { .. } => (Exc::Simulation, "Commit"),
            E::DurableLog { .. } => (Exc::Simulation, "DurableLog"),
        };
        match self {
            // A refused commit is the replica's error, raised as such, naming the node.
            E::Commit { node, source } => source.to_raise().with_node(node),
            E::UnknownNode { node } => Raise::new(exc, kind, message).with_node(node),
            E::NodeCrashed { node } | E::NodeNotCrashed { node } => {
                Raise::new(exc, kind, message).with_node(node)
            }
            E::Diverged { right, .. } => Raise::new(exc, kind, message).with_node(right),
            _ => Raise::new(exc, kind, message),
        }
    }
}
