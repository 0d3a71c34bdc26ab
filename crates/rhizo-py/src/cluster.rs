//! `rhizo-engine-sim`'s simulated cluster of engines, for notebook experiments.
//!
//! Durations cross the boundary as Python numbers of **milliseconds** of virtual time.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rhizo_engine_sim::cluster::{ClusterConfig, EngineCluster};
use rhizo_sim::NodeRef;
use rhizo_txn::{Backend, SyncPolicy, default_schema};

use crate::algebra::PySchema;
use crate::clock::PyNodeId;
use crate::convert::{NodeRefArg, millis, value_to_py};
use crate::engine::{PyTransaction, Target, parse_mode};
use crate::errors::PyResultExt;
use crate::sim::{PyReplicaSimulationBuilder, ms, stats_dict};

/// Engines on their own data directories over a simulated network, in virtual time and
/// reproducible from the builder's seed.
///
/// `backend` is `"single_node"` (coordination-free transactions only; they replicate by
/// anti-entropy) or `"raft"` (coordinated transactions are ordered by Raft consensus over the
/// simulated network). `root` keeps the nodes' directories (`root/n0`, …; reopening a root
/// recovers them); by default they live in a temporary directory removed with the cluster.
/// Nodes are named by index (`0`), `PyNodeId` or name (`"n0"`).
#[pyclass(module = "_rhizo", name = "PyEngineCluster", unsendable)]
pub(crate) struct PyEngineCluster(pub(crate) EngineCluster);

#[pymethods]
impl PyEngineCluster {
    #[new]
    #[pyo3(signature = (builder, schema = None, *, backend = "single_node", sync = "every_commit",
        root = None))]
    fn new(
        builder: &PyReplicaSimulationBuilder,
        schema: Option<&PySchema>,
        backend: &str,
        sync: &str,
        root: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut config = ClusterConfig::new(schema.map_or_else(default_schema, |s| s.0.clone()))
            .with_backend(Backend::named(backend).py()?)
            .with_sync(SyncPolicy::named(sync, 2, 256).py()?);
        config.root = root;
        EngineCluster::new(&builder.0, config).py().map(Self)
    }

    /// Node `node` (a `PyClusterNode`): its transactions, reads, crash and restart.
    fn node(slf: Bound<'_, Self>, node: NodeRefArg) -> PyResult<PyClusterNode> {
        slf.borrow().0.is_crashed(node.0).py()?;
        Ok(PyClusterNode {
            cluster: slf.unbind(),
            node: node.0,
        })
    }

    /// Starts a transaction on `node` (see `PyEngine.transaction`); committing it runs the
    /// simulation until it is decided (a coordinated one, on Raft, by the log).
    #[pyo3(signature = (node, mode = "coordinated"))]
    fn transaction(slf: Bound<'_, Self>, node: NodeRefArg, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        slf.borrow().0.is_crashed(node.0).py()?;
        Ok(PyTransaction::new(Target::Node(slf.unbind(), node.0), mode))
    }

    /// The value of one cell on `node` (`column` defaults to `"value"`).
    #[pyo3(signature = (node, table, row, column = "value"))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        node: NodeRefArg,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.0.read(node.0, table, row, column).py()?)
    }

    /// A digest of `node`'s replicated state: equal on nodes holding the same updates.
    fn fingerprint(&self, node: NodeRefArg) -> PyResult<u64> {
        Ok(self.0.engine(node.0).py()?.fingerprint())
    }

    /// The last coordinated log index `node` applied.
    fn last_sequence(&self, node: NodeRefArg) -> PyResult<u64> {
        Ok(self.0.engine(node.0).py()?.last_sequence())
    }

    /// The Raft leader's index (`None` on the single-node backend or during an election).
    #[getter]
    fn leader(&self) -> Option<usize> {
        self.0.leader()
    }

    /// Cuts the link between `a` and `b`, both ways.
    fn partition(&mut self, a: NodeRefArg, b: NodeRefArg) -> PyResult<()> {
        self.0.partition(a.0, b.0).py()
    }

    /// Cuts the link from `from_` to `to` only.
    fn partition_one_way(&mut self, from_: NodeRefArg, to: NodeRefArg) -> PyResult<()> {
        self.0.partition_one_way(from_.0, to.0).py()
    }

    /// Cuts every link of `node`.
    fn isolate(&mut self, node: NodeRefArg) -> PyResult<()> {
        self.0.isolate(node.0).py()
    }

    /// Restores every link.
    fn heal(&mut self) {
        self.0.heal();
    }

    /// Crashes `node`: only its data directory survives.
    fn crash(&mut self, node: NodeRefArg) -> PyResult<()> {
        self.0.crash(node.0).py()
    }

    /// Restarts a crashed `node`, reopening its engine from its data directory.
    fn restart(&mut self, node: NodeRefArg) -> PyResult<()> {
        self.0.restart(node.0).py()
    }

    /// Whether `node` is crashed.
    fn is_crashed(&self, node: NodeRefArg) -> PyResult<bool> {
        self.0.is_crashed(node.0).py()
    }

    /// Runs the next event; `False` if nothing is scheduled.
    fn step(&mut self) -> bool {
        self.0.step()
    }

    /// Runs `ms` milliseconds of virtual time.
    fn run_for(&mut self, ms: f64) -> PyResult<()> {
        self.0.run_for(millis(ms)?);
        Ok(())
    }

    /// Runs until nothing is in flight and every running engine is idle (under Raft: has
    /// applied what its leader committed), for at most `max_ms`; returns the virtual time (ms)
    /// when that held. Raises `DeadlineError` otherwise.
    fn run_until_quiescent(&mut self, max_ms: f64) -> PyResult<f64> {
        self.0.run_until_quiescent(millis(max_ms)?).py().map(ms)
    }

    /// Whether the cluster is settled as `run_until_quiescent` waits for.
    fn is_quiescent(&self) -> bool {
        self.0.is_quiescent()
    }

    /// Raises `ConvergenceError` unless every running engine holds the same state.
    fn verify_convergence(&self) -> PyResult<()> {
        self.0.verify_convergence().py()
    }

    /// The network's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.0.stats())
    }

    /// Errors nodes met while handling messages and timers (empty for a healthy run).
    fn faults(&self) -> Vec<(PyNodeId, String)> {
        self.0
            .faults()
            .into_iter()
            .map(|(id, fault)| (PyNodeId(id), fault))
            .collect()
    }

    /// The nodes, by index.
    #[getter]
    fn node_ids(&self) -> Vec<PyNodeId> {
        self.0.node_ids().iter().copied().map(PyNodeId).collect()
    }

    /// Virtual time since the start, in milliseconds.
    #[getter]
    fn now_ms(&self) -> f64 {
        ms(self.0.now())
    }

    /// The directory holding the nodes' data directories.
    #[getter]
    fn root(&self) -> PathBuf {
        self.0.root().to_path_buf()
    }

    fn __len__(&self) -> usize {
        self.0.node_ids().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "PyEngineCluster({} nodes, at {})",
            self.0.node_ids().len(),
            self.0.now()
        )
    }
}

/// One node of a `PyEngineCluster`.
#[pyclass(module = "_rhizo", name = "PyClusterNode", frozen)]
pub(crate) struct PyClusterNode {
    cluster: Py<PyEngineCluster>,
    node: NodeRef,
}

#[pymethods]
impl PyClusterNode {
    /// Starts a transaction on this node: a context manager that commits on normal exit (and
    /// runs the simulation until the commit is decided) and aborts on an exception.
    #[pyo3(signature = (mode = "coordinated"))]
    fn transaction(&self, py: Python<'_>, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        Ok(PyTransaction::new(
            Target::Node(self.cluster.clone_ref(py), self.node),
            mode,
        ))
    }

    /// The value of one cell on this node (`column` defaults to `"value"`).
    #[pyo3(signature = (table, row, column = "value"))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let value = self
            .cluster
            .borrow(py)
            .0
            .read(self.node, table, row, column)
            .py()?;
        value_to_py(py, &value)
    }

    /// A digest of this node's replicated state.
    fn fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self
            .cluster
            .borrow(py)
            .0
            .engine(self.node)
            .py()?
            .fingerprint())
    }

    /// Crashes this node: only its data directory survives.
    fn crash(&self, py: Python<'_>) -> PyResult<()> {
        self.cluster.borrow_mut(py).0.crash(self.node).py()
    }

    /// Restarts this node from its data directory.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        self.cluster.borrow_mut(py).0.restart(self.node).py()
    }

    /// Cuts every link of this node.
    fn isolate(&self, py: Python<'_>) -> PyResult<()> {
        self.cluster.borrow_mut(py).0.isolate(self.node).py()
    }

    /// Whether this node is crashed.
    #[getter]
    fn crashed(&self, py: Python<'_>) -> PyResult<bool> {
        self.cluster.borrow(py).0.is_crashed(self.node).py()
    }

    fn __repr__(&self) -> String {
        format!("PyClusterNode({})", self.node)
    }
}
