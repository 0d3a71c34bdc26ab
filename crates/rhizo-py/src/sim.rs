//! `rhizo-sim`: the deterministic network simulator with a cluster of replicas, in virtual time
//! — Rhizo's own classes (`SimulationBuilder`, `SimulatedCluster`). The roadmap's round-based
//! classes of the same names with a `Py` prefix live in `rounds`.
//!
//! Durations cross the boundary as Python numbers of **milliseconds** of virtual time.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use rhizo_sim::{
    GossipStrategy, LatencyModel, NetworkCondition, RegionMatrix, ReplicaNode, SimStats, SimTime,
    SimulatedCluster, SimulationBuilder,
};

use crate::algebra::PySchema;
use crate::clock::{PyDot, PyNodeId, PyVectorClock};
use crate::commit::PyCellTransaction;
use crate::convert::{NodeRefArg, millis, value_to_py};
use crate::errors::{PyResultExt, key_tuple};

/// The network's counters as a dict.
pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &SimStats) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("messages_sent", s.messages_sent)?;
    out.set_item("messages_delivered", s.messages_delivered)?;
    out.set_item("dropped_by_loss", s.dropped_by_loss)?;
    out.set_item("dropped_by_partition", s.dropped_by_partition)?;
    out.set_item("dropped_at_crashed_node", s.dropped_at_crashed_node)?;
    out.set_item("duplicated", s.duplicated)?;
    out.set_item("bytes_sent", s.bytes_sent)?;
    out.set_item("bytes_delivered", s.bytes_delivered)?;
    out.set_item("events_processed", s.events_processed)?;
    out.set_item("timer_fires", s.timer_fires)?;
    out.set_item("peak_in_flight", s.peak_in_flight)?;
    out.set_item("crashes", s.crashes)?;
    out.set_item("restarts", s.restarts)?;
    Ok(out)
}

pub(crate) fn ms(time: SimTime) -> f64 {
    time.as_micros() as f64 / 1000.0
}

/// Calls `chunk` until it returns `Some`, looking for signals between calls: a long run stays
/// interruptible by Ctrl-C (`KeyboardInterrupt` raises from here, between two chunks, so the
/// cluster is left between two events and usable).
pub(crate) fn run_interruptibly<R>(
    py: Python<'_>,
    mut chunk: impl FnMut() -> Option<R>,
) -> PyResult<R> {
    loop {
        if let Some(done) = chunk() {
            return Ok(done);
        }
        py.check_signals()?;
    }
}

/// Events a replica cluster's long run processes between two looks for Ctrl-C: replicas live
/// in memory, so a chunk is short, and the look (a call into the interpreter) costs little
/// against it.
const REPLICA_EVENTS_PER_SIGNAL_CHECK: usize = 4096;

/// Settings of a simulated cluster; every setter returns the builder, so calls chain.
#[pyclass(module = "_rhizo", name = "SimulationBuilder")]
pub(crate) struct PyReplicaSimulationBuilder(pub(crate) SimulationBuilder);

#[pymethods]
impl PyReplicaSimulationBuilder {
    /// Defaults: 3 nodes, seed 0, 1 ms constant latency, no faults, full broadcast, sync every
    /// 10 ms, batches of 64.
    #[new]
    fn new() -> Self {
        Self(SimulationBuilder::new())
    }

    /// How many nodes (1 to 1024), named `n0`, `n1`, …
    fn nodes(mut slf: PyRefMut<'_, Self>, count: usize) -> PyRefMut<'_, Self> {
        slf.0.nodes(count);
        slf
    }

    /// The seed every random choice derives from.
    fn seed(mut slf: PyRefMut<'_, Self>, seed: u64) -> PyRefMut<'_, Self> {
        slf.0.seed(seed);
        slf
    }

    /// Every message takes exactly `ms` milliseconds.
    fn latency_constant(mut slf: PyRefMut<'_, Self>, ms: f64) -> PyResult<PyRefMut<'_, Self>> {
        slf.0.latency(LatencyModel::Constant(millis(ms)?));
        Ok(slf)
    }

    /// Each message draws a latency uniformly between `min_ms` and `max_ms`.
    fn latency_uniform(
        mut slf: PyRefMut<'_, Self>,
        min_ms: f64,
        max_ms: f64,
    ) -> PyResult<PyRefMut<'_, Self>> {
        slf.0.latency(LatencyModel::Uniform {
            min: millis(min_ms)?,
            max: millis(max_ms)?,
        });
        Ok(slf)
    }

    /// A data-centre LAN: uniform 0.1–0.5 ms.
    fn latency_lan(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.0.latency(LatencyModel::Lan);
        slf
    }

    /// San Francisco / London / Tokyo one-way latencies; node `i` is in region `i % 3`.
    fn latency_regions(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.0
            .latency(LatencyModel::Regions(RegionMatrix::sf_london_tokyo()));
        slf
    }

    /// Adds a uniform 0..`ms` milliseconds to every latency.
    fn jitter(mut slf: PyRefMut<'_, Self>, ms: f64) -> PyResult<PyRefMut<'_, Self>> {
        slf.0.jitter(millis(ms)?);
        Ok(slf)
    }

    /// The probability that a message is lost.
    fn loss_rate(mut slf: PyRefMut<'_, Self>, rate: f64) -> PyRefMut<'_, Self> {
        slf.0.loss_rate(rate);
        slf
    }

    /// The probability that a message is delivered twice.
    fn duplication_rate(mut slf: PyRefMut<'_, Self>, rate: f64) -> PyRefMut<'_, Self> {
        slf.0.duplication_rate(rate);
        slf
    }

    /// With `probability`, a message waits up to `max_extra_ms` more (so it may overtake others).
    fn reordering(
        mut slf: PyRefMut<'_, Self>,
        probability: f64,
        max_extra_ms: f64,
    ) -> PyResult<PyRefMut<'_, Self>> {
        slf.0.reordering(probability, millis(max_extra_ms)?);
        Ok(slf)
    }

    /// Every node syncs with every other on its timer.
    fn gossip_full_broadcast(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.0.gossip(GossipStrategy::FullBroadcast);
        slf
    }

    /// Every node syncs with `fanout` random peers on its timer.
    fn gossip_push_pull(mut slf: PyRefMut<'_, Self>, fanout: usize) -> PyRefMut<'_, Self> {
        slf.0.gossip(GossipStrategy::PushPull { fanout });
        slf
    }

    /// The anti-entropy timer period in milliseconds (`None`: no timers).
    #[pyo3(signature = (ms))]
    fn sync_interval(mut slf: PyRefMut<'_, Self>, ms: Option<f64>) -> PyResult<PyRefMut<'_, Self>> {
        let interval = ms.map(millis).transpose()?;
        slf.0.sync_interval(interval);
        Ok(slf)
    }

    /// The most updates per message.
    fn batch_size(mut slf: PyRefMut<'_, Self>, size: usize) -> PyRefMut<'_, Self> {
        slf.0.batch_size(size);
        slf
    }

    /// A named network preset: `"perfect"`, `"reordered"`, `"delayed"`, `"partitioned"`,
    /// `"lossy"`, `"duplicating"` or `"chaos"`.
    fn network_condition<'py>(
        mut slf: PyRefMut<'py, Self>,
        name: &str,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let condition = name.parse::<NetworkCondition>().py()?;
        slf.0.network_condition(condition);
        Ok(slf)
    }

    /// The seed configured.
    #[getter]
    fn configured_seed(&self) -> u64 {
        self.0.configured_seed()
    }

    /// The number of nodes configured.
    #[getter]
    fn configured_nodes(&self) -> usize {
        self.0.configured_nodes()
    }

    /// Builds a cluster of replicas under `schema`; every setting is checked here.
    fn build(&self, schema: &PySchema) -> PyResult<PyReplicaCluster> {
        self.0
            .build_replicas(schema.0.clone())
            .py()
            .map(PyReplicaCluster)
    }
}

/// A cluster of replicas on a simulated network, in virtual time, reproducible from its seed.
///
/// Nodes are named by index (`0`), `PyNodeId` or name (`"n0"`). It may be used and dropped on
/// any thread; long runs raise `KeyboardInterrupt` on Ctrl-C, leaving it usable.
#[pyclass(module = "_rhizo", name = "SimulatedCluster")]
pub(crate) struct PyReplicaCluster(SimulatedCluster<ReplicaNode>);

#[pymethods]
impl PyReplicaCluster {
    /// Commits `tx` on `node` now (durable and acknowledged before this returns); returns its dot.
    fn commit_on_node(&mut self, node: NodeRefArg, tx: &PyCellTransaction) -> PyResult<PyDot> {
        self.0
            .commit_on_node(node.0, tx.0.clone())
            .py()
            .map(|receipt| PyDot(receipt.dot))
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

    /// Restores the link between `a` and `b`.
    fn heal_link(&mut self, a: NodeRefArg, b: NodeRefArg) -> PyResult<()> {
        self.0.heal_link(a.0, b.0).py()
    }

    /// Restores every link.
    fn heal(&mut self) {
        self.0.heal();
    }

    /// Whether messages from `from_` to `to` are blocked.
    fn is_link_blocked(&self, from_: NodeRefArg, to: NodeRefArg) -> PyResult<bool> {
        self.0.is_link_blocked(from_.0, to.0).py()
    }

    /// Crashes `node`: it keeps only its durable log.
    fn crash(&mut self, node: NodeRefArg) -> PyResult<()> {
        self.0.crash(node.0).py()
    }

    /// Restarts a crashed `node` from its durable log.
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
    fn run_for(&mut self, py: Python<'_>, ms: f64) -> PyResult<()> {
        let until = self.0.now().saturating_add(millis(ms)?);
        let cluster = &mut self.0;
        run_interruptibly(py, || {
            cluster
                .run_to(until, REPLICA_EVENTS_PER_SIGNAL_CHECK)
                .then_some(())
        })
    }

    /// Runs until no message is in flight and every running node is idle, for at most `max_ms`;
    /// returns the virtual time (ms) when that held. Raises `DeadlineError` otherwise.
    fn run_until_quiescent(&mut self, py: Python<'_>, max_ms: f64) -> PyResult<f64> {
        let until = self.0.now().saturating_add(millis(max_ms)?);
        let cluster = &mut self.0;
        run_interruptibly(py, || {
            cluster.run_until_quiescent_within(until, REPLICA_EVENTS_PER_SIGNAL_CHECK)
        })?
        .py()
        .map(ms)
    }

    /// Runs until every running replica has delivered the same updates, checking every
    /// `resolution_ms`, for at most `max_ms`; returns the virtual time (ms) when that held.
    #[pyo3(signature = (max_ms, resolution_ms = 1.0))]
    fn run_until_converged(
        &mut self,
        py: Python<'_>,
        max_ms: f64,
        resolution_ms: f64,
    ) -> PyResult<f64> {
        let until = self.0.now().saturating_add(millis(max_ms)?);
        let resolution = millis(resolution_ms)?;
        let cluster = &mut self.0;
        run_interruptibly(py, || {
            cluster.run_until_converged_within(until, resolution, REPLICA_EVENTS_PER_SIGNAL_CHECK)
        })?
        .py()
        .map(ms)
    }

    /// Whether nothing is in flight and every running node is idle.
    fn is_quiescent(&self) -> bool {
        self.0.is_quiescent()
    }

    /// Whether every running replica has delivered the same updates (clocks only).
    fn is_converged(&self) -> bool {
        self.0.is_converged()
    }

    /// Raises `ConvergenceError` unless every running replica holds bit-identical state.
    fn verify_convergence(&self) -> PyResult<()> {
        self.0.verify_convergence().py()
    }

    /// The value of one cell on `node`.
    fn read<'py>(
        &self,
        py: Python<'py>,
        node: NodeRefArg,
        table: &str,
        row: &str,
        column: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let replica = self.0.replica(node.0).py()?;
        value_to_py(py, &replica.read(table, row, column).py()?)
    }

    /// The clock of `node`.
    fn clock(&self, node: NodeRefArg) -> PyResult<PyVectorClock> {
        let replica = self.0.replica(node.0).py()?;
        Ok(PyVectorClock(replica.clock().clone()))
    }

    /// `{"node", "clock", "values": {(table, row, column): value}, "fingerprint"}` of `node`.
    fn get_node_state<'py>(
        &self,
        py: Python<'py>,
        node: NodeRefArg,
    ) -> PyResult<Bound<'py, PyDict>> {
        let state = self.0.get_node_state(node.0).py()?;
        let values = PyDict::new(py);
        for (key, value) in state.values {
            values.set_item(key_tuple(&key), value_to_py(py, &value.py()?)?)?;
        }
        let out = PyDict::new(py);
        out.set_item("node", PyNodeId(state.node))?;
        out.set_item("clock", PyVectorClock(state.clock))?;
        out.set_item("values", values)?;
        out.set_item("fingerprint", state.fingerprint)?;
        Ok(out)
    }

    /// The network's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.0.stats())
    }

    /// Problems any running replica reported (empty for a correct run), as `(node, text)`.
    fn node_faults(&self) -> Vec<(PyNodeId, String)> {
        self.0
            .node_faults()
            .into_iter()
            .map(|(id, fault)| (PyNodeId(id), fault))
            .collect()
    }

    /// The nodes, by index.
    #[getter]
    fn node_ids(&self) -> Vec<PyNodeId> {
        self.0.node_ids().iter().copied().map(PyNodeId).collect()
    }

    /// The seed the cluster was built with.
    #[getter]
    fn seed(&self) -> u64 {
        self.0.seed()
    }

    /// Virtual time since the start, in milliseconds.
    #[getter]
    fn now_ms(&self) -> f64 {
        ms(self.0.now())
    }

    /// Messages in flight.
    #[getter]
    fn in_flight(&self) -> usize {
        self.0.in_flight()
    }

    /// A hash of everything that happened: equal for two runs of one seed and workload.
    #[getter]
    fn trace_hash(&self) -> u64 {
        self.0.trace_hash()
    }

    fn __len__(&self) -> usize {
        self.0.node_count()
    }

    fn __repr__(&self) -> String {
        format!(
            "SimulatedCluster({} nodes, seed {}, at {})",
            self.0.node_count(),
            self.0.seed(),
            self.0.now()
        )
    }
}
