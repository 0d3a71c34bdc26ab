//! `rhizo-engine-sim`'s simulated cluster of engines, for notebook experiments.
//!
//! Durations cross the boundary as Python numbers of **milliseconds** of virtual time.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rhizo_engine_sim::cluster::{ClusterConfig, EngineCluster};
use rhizo_sim::{NodeRef, SimTime};
use rhizo_txn::{Backend, SyncPolicy, default_schema};

use crate::algebra::PySchema;
use crate::clock::PyNodeId;
use crate::convert::{NodeRefArg, millis, value_to_py};
use crate::engine::{PyTransaction, Target, parse_mode};
use crate::errors::PyResultExt;
use crate::sim::{PyReplicaSimulationBuilder, ms, run_interruptibly, stats_dict};

/// Events a long run processes between two looks for Ctrl-C. An engine's event may sync its
/// log, so this keeps the wait for an interrupt short even on a slow disk, while the cost of
/// looking (retaking the GIL) stays small against the events' own.
const EVENTS_PER_SIGNAL_CHECK: usize = 256;

/// Engines on their own data directories over a simulated network, in virtual time and
/// reproducible from the builder's seed.
///
/// `backend` is `"single_node"` (coordination-free transactions only; they replicate by
/// anti-entropy) or `"raft"` (coordinated transactions are ordered by Raft consensus over the
/// simulated network). `root` keeps the nodes' directories (`root/n0`, …; reopening a root
/// recovers them); by default they live in a temporary directory removed with the cluster.
/// Nodes are named by index (`0`), `PyNodeId` or name (`"n0"`).
///
/// It may be used and dropped on any thread. The cluster sits behind a mutex taken with the GIL
/// released (as `PyEngine` does), so other Python threads run while it commits, runs or syncs;
/// `run_for` and `run_until_quiescent` look for Ctrl-C between bounded chunks of events and
/// raise `KeyboardInterrupt`, leaving the cluster usable.
#[pyclass(module = "_rhizo", name = "PyEngineCluster", frozen)]
pub(crate) struct PyEngineCluster(Mutex<EngineCluster>);

impl PyEngineCluster {
    /// The cluster. A panic under the lock is a bug the cluster reports on its own terms (its
    /// engines refuse what they cannot do), so a poisoned lock is used.
    fn lock(&self) -> MutexGuard<'_, EngineCluster> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the cluster with the GIL released.
    pub(crate) fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut EngineCluster) -> R + Send,
    ) -> R {
        py.detach(|| f(&mut self.lock()))
    }

    /// Runs `chunk` on the cluster until it returns `Some`, with the GIL released during each
    /// chunk and a look for signals between chunks (a `KeyboardInterrupt` raises from here).
    fn run_chunks<R: Send>(
        &self,
        py: Python<'_>,
        mut chunk: impl FnMut(&mut EngineCluster) -> Option<R> + Send,
    ) -> PyResult<R> {
        run_interruptibly(py, || self.with(py, &mut chunk))
    }
}

#[pymethods]
impl PyEngineCluster {
    #[new]
    #[pyo3(signature = (builder, schema = None, *, backend = "single_node", sync = "every_commit",
        root = None))]
    fn new(
        py: Python<'_>,
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
        let builder = builder.0.clone();
        // Opening the engines reads their data directories: other threads run meanwhile.
        py.detach(|| EngineCluster::new(&builder, config))
            .py()
            .map(|cluster| Self(Mutex::new(cluster)))
    }

    /// Node `node` (a `PyClusterNode`): its transactions, reads, crash and restart.
    fn node(slf: Bound<'_, Self>, node: NodeRefArg) -> PyResult<PyClusterNode> {
        let node = node.0;
        slf.get().with(slf.py(), |c| c.is_crashed(node)).py()?;
        Ok(PyClusterNode {
            cluster: slf.unbind(),
            node,
        })
    }

    /// Starts a transaction on `node` (see `PyEngine.transaction`); committing it runs the
    /// simulation until it is decided (a coordinated one, on Raft, by the log).
    #[pyo3(signature = (node, mode = "coordinated"))]
    fn transaction(slf: Bound<'_, Self>, node: NodeRefArg, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        let node = node.0;
        slf.get().with(slf.py(), |c| c.is_crashed(node)).py()?;
        Ok(PyTransaction::new(Target::Node(slf.unbind(), node), mode))
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
        let value = self.with(py, |c| c.read(node.0, table, row, column)).py()?;
        value_to_py(py, &value)
    }

    /// A digest of `node`'s replicated state: equal on nodes holding the same updates.
    fn fingerprint(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<u64> {
        self.with(py, |c| c.engine(node.0).map(|e| e.fingerprint()))
            .py()
    }

    /// The last coordinated log index `node` applied.
    fn last_sequence(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<u64> {
        self.with(py, |c| c.engine(node.0).map(|e| e.last_sequence()))
            .py()
    }

    /// The Raft leader's index (`None` on the single-node backend or during an election).
    #[getter]
    fn leader(&self, py: Python<'_>) -> Option<usize> {
        self.with(py, |c| c.leader())
    }

    /// Cuts the link between `a` and `b`, both ways.
    fn partition(&self, py: Python<'_>, a: NodeRefArg, b: NodeRefArg) -> PyResult<()> {
        self.with(py, |c| c.partition(a.0, b.0)).py()
    }

    /// Cuts the link from `from_` to `to` only.
    fn partition_one_way(&self, py: Python<'_>, from_: NodeRefArg, to: NodeRefArg) -> PyResult<()> {
        self.with(py, |c| c.partition_one_way(from_.0, to.0)).py()
    }

    /// Cuts every link of `node`.
    fn isolate(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<()> {
        self.with(py, |c| c.isolate(node.0)).py()
    }

    /// Restores every link.
    fn heal(&self, py: Python<'_>) {
        self.with(py, EngineCluster::heal);
    }

    /// Crashes `node`: only its data directory survives.
    fn crash(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<()> {
        self.with(py, |c| c.crash(node.0)).py()
    }

    /// Restarts a crashed `node`, reopening its engine from its data directory.
    fn restart(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<()> {
        self.with(py, |c| c.restart(node.0)).py()
    }

    /// Whether `node` is crashed.
    fn is_crashed(&self, py: Python<'_>, node: NodeRefArg) -> PyResult<bool> {
        self.with(py, |c| c.is_crashed(node.0)).py()
    }

    /// Runs the next event; `False` if nothing is scheduled.
    fn step(&self, py: Python<'_>) -> bool {
        self.with(py, EngineCluster::step)
    }

    /// Runs `ms` milliseconds of virtual time. Ctrl-C raises `KeyboardInterrupt` between
    /// chunks of events; the cluster is then where the run stopped, and usable.
    fn run_for(&self, py: Python<'_>, ms: f64) -> PyResult<()> {
        let span = millis(ms)?;
        let until = self.with(py, |c| c.now().saturating_add(span));
        self.run_chunks(py, |c| {
            c.run_to(until, EVENTS_PER_SIGNAL_CHECK).then_some(())
        })
    }

    /// Runs until nothing is in flight and every running engine is idle (under Raft: has
    /// applied what its leader committed), for at most `max_ms`; returns the virtual time (ms)
    /// when that held. Raises `DeadlineError` otherwise, and `KeyboardInterrupt` on Ctrl-C
    /// (the cluster stays usable).
    fn run_until_quiescent(&self, py: Python<'_>, max_ms: f64) -> PyResult<f64> {
        let span = millis(max_ms)?;
        let until: SimTime = self.with(py, |c| c.now().saturating_add(span));
        self.run_chunks(py, |c| {
            c.run_until_quiescent_within(until, EVENTS_PER_SIGNAL_CHECK)
        })?
        .py()
        .map(ms)
    }

    /// Whether the cluster is settled as `run_until_quiescent` waits for.
    fn is_quiescent(&self, py: Python<'_>) -> bool {
        self.with(py, |c| c.is_quiescent())
    }

    /// Raises `ConvergenceError` unless every running engine holds the same state.
    fn verify_convergence(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c| c.verify_convergence()).py()
    }

    /// The network's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.with(py, |c| c.stats().clone());
        stats_dict(py, &stats)
    }

    /// Errors nodes met while handling messages and timers (empty for a healthy run).
    fn faults(&self, py: Python<'_>) -> Vec<(PyNodeId, String)> {
        self.with(py, |c| c.faults())
            .into_iter()
            .map(|(id, fault)| (PyNodeId(id), fault))
            .collect()
    }

    /// The nodes, by index.
    #[getter]
    fn node_ids(&self, py: Python<'_>) -> Vec<PyNodeId> {
        self.with(py, |c| c.node_ids().to_vec())
            .into_iter()
            .map(PyNodeId)
            .collect()
    }

    /// Virtual time since the start, in milliseconds.
    #[getter]
    fn now_ms(&self, py: Python<'_>) -> f64 {
        ms(self.with(py, |c| c.now()))
    }

    /// The directory holding the nodes' data directories.
    #[getter]
    fn root(&self, py: Python<'_>) -> PathBuf {
        self.with(py, |c| c.root().to_path_buf())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.with(py, |c| c.node_ids().len())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        self.with(py, |c| {
            format!(
                "PyEngineCluster({} nodes, at {})",
                c.node_ids().len(),
                c.now()
            )
        })
    }
}

/// One node of a `PyEngineCluster`.
#[pyclass(module = "_rhizo", name = "PyClusterNode", frozen)]
pub(crate) struct PyClusterNode {
    cluster: Py<PyEngineCluster>,
    node: NodeRef,
}

impl PyClusterNode {
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut EngineCluster, NodeRef) -> R + Send,
    ) -> R {
        let node = self.node;
        self.cluster.get().with(py, |c| f(c, node))
    }
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
            .with(py, |c, node| c.read(node, table, row, column))
            .py()?;
        value_to_py(py, &value)
    }

    /// A digest of this node's replicated state.
    fn fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |c, node| c.engine(node).map(|e| e.fingerprint()))
            .py()
    }

    /// Crashes this node: only its data directory survives.
    fn crash(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c, node| c.crash(node)).py()
    }

    /// Restarts this node from its data directory.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c, node| c.restart(node)).py()
    }

    /// Cuts every link of this node.
    fn isolate(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c, node| c.isolate(node)).py()
    }

    /// Whether this node is crashed.
    #[getter]
    fn crashed(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |c, node| c.is_crashed(node)).py()
    }

    fn __repr__(&self) -> String {
        format!("PyClusterNode({})", self.node)
    }
}
