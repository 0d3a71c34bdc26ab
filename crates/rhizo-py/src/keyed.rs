//! `rhizo_commit::keyed`: the roadmap's operations, transactions, versioned updates and local
//! commit protocol on flat string keys (`PyAlgebraicOperation`, `PyAlgebraicTransaction`,
//! `PyVersionedUpdate`, `PyLocalCommitProtocol`).
//!
//! These classes compare by identity, as the roadmap's did. Rhizo's own classes over cells and
//! schemas live in `commit`.

use pyo3::prelude::*;
use rhizo_commit::keyed::{KeyedOperation, KeyedTransaction, KeyedUpdate};

use crate::algebra::{PyAlgebraicValue, PyOpType, roadmap_text};
use crate::clock::{PyCausalOrder, PyNodeId, PyVectorClock, clock_text};
use crate::errors::PyResultExt;

/// One operation: a kind applied with a value to a key. Nothing is checked until a commit.
#[pyclass(module = "_rhizo", name = "PyAlgebraicOperation", frozen)]
#[derive(Clone)]
pub(crate) struct PyKeyedOperation(pub(crate) KeyedOperation);

#[pymethods]
impl PyKeyedOperation {
    #[new]
    fn new(key: String, op_type: PyOpType, value: &PyAlgebraicValue) -> Self {
        Self(KeyedOperation::new(key, op_type.into(), value.0.clone()))
    }

    /// The key written.
    #[getter]
    fn key(&self) -> &str {
        &self.0.key
    }

    /// The operation kind.
    #[getter]
    fn op_type(&self) -> PyOpType {
        self.0.op_type.into()
    }

    /// The operand (a copy).
    #[getter]
    fn value(&self) -> PyAlgebraicValue {
        PyAlgebraicValue(self.0.value.clone())
    }

    /// Whether the kind is conflict-free.
    fn is_algebraic(&self) -> bool {
        self.0.op_type.is_conflict_free()
    }

    fn __repr__(&self) -> String {
        format!(
            "AlgebraicOperation(key='{}', op={}, value={})",
            self.0.key,
            self.0.op_type,
            roadmap_text(&self.0.value)
        )
    }
}

/// Operations in order, and string metadata that stays with the transaction.
#[pyclass(module = "_rhizo", name = "PyAlgebraicTransaction")]
#[derive(Clone, Default)]
pub(crate) struct PyKeyedTransaction(pub(crate) KeyedTransaction);

#[pymethods]
impl PyKeyedTransaction {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Appends a copy of `op`.
    fn add_operation(&mut self, op: &PyKeyedOperation) {
        self.0.push(op.0.clone());
    }

    /// The number of operations.
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the transaction has no operation.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every operation is conflict-free (true when there is none).
    fn is_fully_algebraic(&self) -> bool {
        self.0.is_fully_algebraic()
    }

    /// Sets the metadata entry `key`.
    fn set_metadata(&mut self, key: String, value: String) {
        self.0.set_metadata(key, value);
    }

    /// The metadata entry `key`, or `None`.
    fn get_metadata(&self, key: &str) -> Option<String> {
        self.0.metadata(key).map(str::to_owned)
    }

    fn __repr__(&self) -> String {
        format!(
            "AlgebraicTransaction(ops={}, algebraic={})",
            self.0.len(),
            self.0.is_fully_algebraic()
        )
    }
}

/// Committed (or merged) operations with their clock.
#[pyclass(module = "_rhizo", name = "PyVersionedUpdate", frozen)]
pub(crate) struct PyKeyedUpdate(pub(crate) KeyedUpdate);

#[pymethods]
impl PyKeyedUpdate {
    /// The operations (copies): a commit's in transaction order, a merge's one per key.
    fn operations(&self) -> Vec<PyKeyedOperation> {
        self.0
            .operations()
            .iter()
            .cloned()
            .map(PyKeyedOperation)
            .collect()
    }

    /// The clock it carries (a copy).
    #[getter]
    fn clock(&self) -> PyVectorClock {
        PyVectorClock(self.0.clock().clone())
    }

    /// The committing node; `None` for a merge, which no node committed.
    #[getter]
    fn origin_node(&self) -> Option<PyNodeId> {
        self.0.origin_node().map(PyNodeId)
    }

    /// The committing node's name, or `merged:<origin>+<origin>…` for a merge.
    #[getter]
    fn origin(&self) -> &str {
        self.0.origin()
    }

    /// Always `None`: updates are identified by their contents.
    #[getter]
    fn update_id(&self) -> Option<String> {
        None
    }

    /// How this update's clock relates to `other`'s.
    fn compare(&self, other: &PyKeyedUpdate) -> PyCausalOrder {
        self.0.clock().compare(other.0.clock()).into()
    }

    /// Whether the two clocks are concurrent.
    fn is_concurrent_with(&self, other: &PyKeyedUpdate) -> bool {
        self.0.clock().concurrent(other.0.clock())
    }

    fn __repr__(&self) -> String {
        format!(
            "VersionedUpdate(origin='{}', ops={}, clock={})",
            self.0.origin(),
            self.0.operations().len(),
            clock_text(self.0.clock())
        )
    }
}

/// The roadmap's local commit protocol: static methods only.
#[pyclass(module = "_rhizo", name = "PyLocalCommitProtocol", frozen)]
pub(crate) struct PyKeyedCommitProtocol;

#[pymethods]
impl PyKeyedCommitProtocol {
    /// Whether `tx` is non-empty and fully algebraic.
    #[staticmethod]
    fn can_commit_locally(tx: &PyKeyedTransaction) -> bool {
        tx.0.can_commit_locally()
    }

    /// Commits `tx` on `node_id`: ticks `clock` in place and returns the update stamped with
    /// it. A refused transaction leaves `clock` unchanged.
    #[staticmethod]
    fn commit_local(
        tx: &PyKeyedTransaction,
        node_id: &PyNodeId,
        mut clock: PyRefMut<'_, PyVectorClock>,
    ) -> PyResult<PyKeyedUpdate> {
        KeyedUpdate::commit(&tx.0, node_id.0, &mut clock.0)
            .py()
            .map(PyKeyedUpdate)
    }

    /// The merge of two updates (each commit they hold counted once).
    #[staticmethod]
    fn merge_updates(update1: &PyKeyedUpdate, update2: &PyKeyedUpdate) -> PyResult<PyKeyedUpdate> {
        KeyedUpdate::merge([&update1.0, &update2.0])
            .py()
            .map(PyKeyedUpdate)
    }

    /// The merge of every update (one is returned as it is; none is refused).
    #[staticmethod]
    fn merge_all(updates: Vec<PyRef<'_, PyKeyedUpdate>>) -> PyResult<PyKeyedUpdate> {
        KeyedUpdate::merge(updates.iter().map(|u| &u.0))
            .py()
            .map(PyKeyedUpdate)
    }
}
