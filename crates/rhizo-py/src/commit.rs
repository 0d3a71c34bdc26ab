//! `rhizo-commit`: operations on cells (table, row, column), transactions, versioned updates
//! and the local commit protocol over a schema — Rhizo's own classes (`AlgebraicOperation`, …).
//! The roadmap's classes of the same role (`PyAlgebraicOperation`, …) take flat keys and live in
//! `keyed`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use rhizo_commit::{
    AlgebraicOperation, AlgebraicTransaction, CellKey, LocalCommitProtocol, MergedState,
    VersionedUpdate, wire,
};

use crate::algebra::{OpTypeArg, PyAlgebraicValue, PyOpType, PySchema};
use crate::clock::{PyDot, PyNodeId, PyVectorClock};
use crate::convert::{Elements, NodeArg, ValueArg, value_to_py};
use crate::errors::{PyResultExt, key_tuple};
use rhizo_commit::Operations;

/// One operation: a kind applied with a value to the cell `table[row].column`.
#[pyclass(module = "_rhizo", name = "AlgebraicOperation", frozen)]
#[derive(Clone)]
pub(crate) struct PyCellOperation(pub(crate) AlgebraicOperation);

#[pymethods]
impl PyCellOperation {
    #[new]
    fn new(table: &str, row: &str, column: &str, op_type: OpTypeArg, value: ValueArg) -> Self {
        Self(AlgebraicOperation::new(
            CellKey::new(table, row, column),
            op_type.0,
            value.0,
        ))
    }

    /// The cell addressed, as `(table, row, column)`.
    #[getter]
    fn key(&self) -> (String, String, String) {
        key_tuple(&self.0.key)
    }

    /// The operation kind.
    #[getter]
    fn op_type(&self) -> PyOpType {
        self.0.op_type.into()
    }

    /// The operand.
    #[getter]
    fn value(&self) -> PyAlgebraicValue {
        PyAlgebraicValue(self.0.value.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "AlgebraicOperation({} {} {})",
            self.0.op_type, self.0.key, self.0.value
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// A transaction: operations that take effect together on every replica, all or none.
///
/// The builder methods mirror the Rust ones and return the transaction, so calls chain.
#[pyclass(module = "_rhizo", name = "AlgebraicTransaction")]
#[derive(Clone, Default)]
pub(crate) struct PyCellTransaction(pub(crate) AlgebraicTransaction);

#[pymethods]
impl PyCellTransaction {
    #[new]
    #[pyo3(signature = (operations = None, tag = None))]
    fn new(operations: Option<Vec<PyRef<'_, PyCellOperation>>>, tag: Option<u64>) -> Self {
        let mut tx: AlgebraicTransaction = operations
            .unwrap_or_default()
            .iter()
            .map(|op| op.0.clone())
            .collect();
        tx.metadata.tag = tag;
        Self(tx)
    }

    /// Appends an operation.
    fn push<'py>(mut slf: PyRefMut<'py, Self>, op: &PyCellOperation) -> PyRefMut<'py, Self> {
        slf.0.push(op.0.clone());
        slf
    }

    /// ADD `amount` to an additive column.
    fn increment<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        amount: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.increment(table, row, column, amount.0);
        slf
    }

    /// MULTIPLY a multiplicative column by `factor`.
    fn multiply<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        factor: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.multiply(table, row, column, factor.0);
        slf
    }

    /// Raise a MAX column to at least `value`.
    fn max<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.max(table, row, column, value.0);
        slf
    }

    /// Lower a MIN column to at most `value`.
    fn min<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.min(table, row, column, value.0);
        slf
    }

    /// Add one element (a `str`) or several (an iterable of `str`) to a set column.
    fn add_to_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        elements: Elements,
    ) -> PyRefMut<'py, Self> {
        slf.0.add_to_set(table, row, column, elements.0);
        slf
    }

    /// Remove elements from an observed-remove set column.
    fn remove_from_set<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        elements: Elements,
    ) -> PyRefMut<'py, Self> {
        slf.0.remove_from_set(table, row, column, elements.0);
        slf
    }

    /// Grow-only union with a set value.
    fn union<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        set: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.union(table, row, column, set.0);
        slf
    }

    /// Intersect a set column with a set value.
    fn intersect<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        set: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.intersect(table, row, column, set.0);
        slf
    }

    /// OVERWRITE a register: never commits locally (it needs coordination).
    fn put<'py>(
        mut slf: PyRefMut<'py, Self>,
        table: &str,
        row: &str,
        column: &str,
        value: ValueArg,
    ) -> PyRefMut<'py, Self> {
        slf.0.put(table, row, column, value.0);
        slf
    }

    /// The operations, in the order they were added.
    #[getter]
    fn operations(&self) -> Vec<PyCellOperation> {
        self.0
            .operations()
            .iter()
            .cloned()
            .map(PyCellOperation)
            .collect()
    }

    /// The application tag carried with the transaction.
    #[getter]
    fn tag(&self) -> Option<u64> {
        self.0.metadata.tag
    }

    #[setter]
    fn set_tag(&mut self, tag: Option<u64>) {
        self.0.metadata.tag = tag;
    }

    /// Whether the transaction has no operation.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __repr__(&self) -> String {
        format!("AlgebraicTransaction({} operations)", self.0.len())
    }

    fn __eq__(&self, other: PyRef<'_, Self>) -> bool {
        self.0 == other.0
    }
}

/// A committed transaction as it travels: its effects, the dot naming it, and its origin's clock.
#[pyclass(module = "_rhizo", name = "VersionedUpdate", frozen)]
#[derive(Clone)]
pub(crate) struct PyCellUpdate(pub(crate) VersionedUpdate);

#[pymethods]
impl PyCellUpdate {
    /// Decodes an update from `to_bytes`' output.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        wire::decode_update(data).py().map(Self)
    }

    /// The update in the wire format (a versioned postcard envelope).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &wire::encode_update(&self.0))
    }

    /// The event naming this update.
    #[getter]
    fn dot(&self) -> PyDot {
        PyDot(self.0.dot)
    }

    /// The node that committed it.
    #[getter]
    fn origin(&self) -> PyNodeId {
        PyNodeId(self.0.origin())
    }

    /// The origin's clock just after the commit (its causal past and itself).
    #[getter]
    fn clock(&self) -> PyVectorClock {
        PyVectorClock(self.0.clock.clone())
    }

    /// The schema version it was validated against.
    #[getter]
    fn schema_version(&self) -> u64 {
        self.0.schema_version
    }

    /// The transaction's tag.
    #[getter]
    fn tag(&self) -> Option<u64> {
        self.0.metadata.tag
    }

    /// The cells it changes, in key order, with the kinds of its effects on each.
    fn effects(&self) -> Vec<((String, String, String), Vec<PyOpType>)> {
        self.0
            .effects
            .iter()
            .map(|e| {
                (
                    key_tuple(&e.key),
                    e.ops.iter().map(|op| op.op_type().into()).collect(),
                )
            })
            .collect()
    }

    /// Number of operations applied.
    fn op_count(&self) -> usize {
        self.0.op_count()
    }

    fn __repr__(&self) -> String {
        format!(
            "VersionedUpdate({}:{}, {} ops)",
            self.0.dot.node(),
            self.0.dot.counter(),
            self.0.op_count()
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }

    fn __hash__(&self) -> u64 {
        // Equal updates have equal dots; different updates under one dot are a broken history.
        crate::clock::hash_of(&self.0.dot)
    }
}

/// The state a set of updates produces: the oracle `merge_all` returns.
#[pyclass(module = "_rhizo", name = "PyMergedState", frozen)]
pub(crate) struct PyMergedState(pub(crate) MergedState);

#[pymethods]
impl PyMergedState {
    /// The value of one cell, or `None` if no update touched it.
    fn get<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.0.get(&CellKey::new(table, row, column)) {
            None => Ok(py.None().into_bound(py)),
            Some(value) => value_to_py(py, &value.py()?),
        }
    }

    /// `{(table, row, column): value}` for every cell touched.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (key, _) in self.0.cells() {
            if let Some(value) = self.0.get(key) {
                out.set_item(key_tuple(key), value_to_py(py, &value.py()?)?)?;
            }
        }
        Ok(out)
    }

    /// The union of the merged updates' clocks.
    #[getter]
    fn clock(&self) -> PyVectorClock {
        PyVectorClock(self.0.clock().clone())
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __contains__(&self, key: (String, String, String)) -> bool {
        self.0.get(&CellKey::new(&key.0, &key.1, &key.2)).is_some()
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }

    fn __repr__(&self) -> String {
        format!("PyMergedState({} cells)", self.0.len())
    }
}

/// The roadmap's local commit protocol: a node's clock and schema, and the rules that decide
/// whether a transaction may commit without coordination, stamp it, and merge updates.
#[pyclass(module = "_rhizo", name = "LocalCommitProtocol")]
pub(crate) struct PyCellCommitProtocol(LocalCommitProtocol);

#[pymethods]
impl PyCellCommitProtocol {
    #[new]
    fn new(node: NodeArg, schema: &PySchema) -> Self {
        Self(LocalCommitProtocol::new(node.0, schema.0.clone()))
    }

    /// This node.
    #[getter]
    fn node_id(&self) -> PyNodeId {
        PyNodeId(self.0.node())
    }

    /// The node's clock: its own commits and every update it has observed.
    #[getter]
    fn clock(&self) -> PyVectorClock {
        PyVectorClock(self.0.clock().clone())
    }

    /// The schema transactions are validated against.
    #[getter]
    fn schema(&self) -> PySchema {
        PySchema(self.0.schema().clone())
    }

    /// Raises why `tx` may not commit locally; returns `None` if it may.
    fn check(&self, tx: &PyCellTransaction) -> PyResult<()> {
        self.0.check(&tx.0).py()
    }

    /// Whether `tx` may commit without coordination.
    fn can_commit_locally(&self, tx: &PyCellTransaction) -> bool {
        self.0.can_commit_locally(&tx.0)
    }

    /// Commits `tx` locally: validates it, ticks the clock, returns the stamped update. On error
    /// nothing changes.
    fn commit_local(&mut self, tx: &PyCellTransaction) -> PyResult<PyCellUpdate> {
        self.0.commit_local(tx.0.clone()).py().map(PyCellUpdate)
    }

    /// Records that this node observed `update`: its next commits depend on it.
    fn observe(&mut self, update: &PyCellUpdate) {
        self.0.observe(&update.0);
    }

    /// The state two updates produce together (the same in either order).
    fn merge_updates(&self, a: &PyCellUpdate, b: &PyCellUpdate) -> PyResult<PyMergedState> {
        self.0.merge_updates(&a.0, &b.0).py().map(PyMergedState)
    }

    /// The state a collection of updates produces, whatever their order (duplicates count once).
    fn merge_all(&self, updates: Vec<PyRef<'_, PyCellUpdate>>) -> PyResult<PyMergedState> {
        self.0
            .merge_all(updates.iter().map(|u| &u.0))
            .py()
            .map(PyMergedState)
    }

    fn __repr__(&self) -> String {
        format!("LocalCommitProtocol({:?})", self.0.node().name().as_str())
    }
}
