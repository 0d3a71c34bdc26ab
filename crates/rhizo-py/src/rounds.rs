//! `rhizo_sim::rounds`: the roadmap's round-based simulator surface (`PySimulatedCluster`,
//! `PySimulationBuilder`, `PySimulationConfig`, `PyNetworkCondition`, `PySimulationStats`,
//! `PySimulatedNode`), over replicas of the keyed schema on the simulated network.
//!
//! Node indices are unsigned integers; an index out of range raises `UnknownNodeError`, an
//! `IndexError`. Rhizo's own simulator classes (virtual time, schemas) live in `sim`.

use pyo3::prelude::*;
use rhizo_sim::rounds::{RoundCluster, RoundConfig, RoundNetwork, RoundScenario, RoundStats};

use crate::algebra::PyAlgebraicValue;
use crate::errors::PyResultExt;
use crate::keyed::{PyKeyedTransaction, PyKeyedUpdate};

/// How the simulated network carries messages; set it as a `PySimulationConfig`'s
/// `network_condition`.
#[pyclass(module = "_rhizo", name = "PyNetworkCondition", frozen)]
#[derive(Clone, Copy)]
pub(crate) struct PyNetworkCondition(RoundNetwork);

#[pymethods]
impl PyNetworkCondition {
    /// Every message takes a tenth of a round, in order.
    #[staticmethod]
    fn perfect() -> Self {
        Self(RoundNetwork::Perfect)
    }

    /// Latencies vary and half of the messages wait up to half a round more.
    #[staticmethod]
    fn reordered() -> Self {
        Self(RoundNetwork::Reordered)
    }

    /// Every message takes `rounds` rounds.
    #[staticmethod]
    fn delayed(rounds: u32) -> Self {
        Self(RoundNetwork::Delayed { rounds })
    }

    /// The first half of the nodes is cut off from the second half until `heal_partitions()`.
    #[staticmethod]
    fn partitioned() -> Self {
        Self(RoundNetwork::Partitioned)
    }

    fn __repr__(&self) -> String {
        match self.0 {
            RoundNetwork::Perfect => "NetworkCondition.Perfect".to_owned(),
            RoundNetwork::Reordered => "NetworkCondition.Reordered".to_owned(),
            RoundNetwork::Delayed { rounds } => format!("NetworkCondition.Delayed({rounds})"),
            RoundNetwork::Partitioned => "NetworkCondition.Partitioned".to_owned(),
        }
    }
}

/// Settings of a round-based cluster.
#[pyclass(module = "_rhizo", name = "PySimulationConfig")]
#[derive(Clone, Default)]
pub(crate) struct PySimulationConfig(RoundConfig);

#[pymethods]
impl PySimulationConfig {
    /// Defaults: 100 rounds per `propagate_all()`, in-order delivery, a perfect network, seed 0.
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The most rounds one `propagate_all()` runs.
    #[getter]
    fn max_rounds(&self) -> u64 {
        self.0.max_rounds
    }

    #[setter]
    fn set_max_rounds(&mut self, rounds: u64) {
        self.0.max_rounds = rounds;
    }

    /// Whether messages are delivered out of order.
    #[getter]
    fn randomize_order(&self) -> bool {
        self.0.randomize_order
    }

    #[setter]
    fn set_randomize_order(&mut self, enabled: bool) {
        self.0.randomize_order = enabled;
    }

    /// How the network carries messages.
    #[getter]
    fn network_condition(&self) -> PyNetworkCondition {
        PyNetworkCondition(self.0.network)
    }

    #[setter]
    fn set_network_condition(&mut self, condition: &PyNetworkCondition) {
        self.0.network = condition.0;
    }

    /// The seed every random choice of a run derives from.
    #[getter]
    fn seed(&self) -> u64 {
        self.0.seed
    }

    #[setter]
    fn set_seed(&mut self, seed: u64) {
        self.0.seed = seed;
    }

    fn __repr__(&self) -> String {
        format!(
            "SimulationConfig(max_rounds={}, randomize_order={})",
            self.0.max_rounds, self.0.randomize_order
        )
    }
}

/// A snapshot of a cluster's counters.
#[pyclass(module = "_rhizo", name = "PySimulationStats", frozen)]
pub(crate) struct PySimulationStats(RoundStats);

#[pymethods]
impl PySimulationStats {
    /// Messages sent (the digests and deltas of anti-entropy exchanges).
    #[getter]
    fn messages_sent(&self) -> u64 {
        self.0.messages_sent
    }

    /// Messages delivered.
    #[getter]
    fn messages_delivered(&self) -> u64 {
        self.0.messages_delivered
    }

    /// Messages lost to a partition.
    #[getter]
    fn messages_dropped(&self) -> u64 {
        self.0.messages_dropped
    }

    /// The round at which `propagate_all()` last found the cluster converged, or `None`.
    #[getter]
    fn rounds_to_converge(&self) -> Option<u64> {
        self.0.rounds_to_converge
    }

    /// Operations committed through the cluster.
    #[getter]
    fn operations_committed(&self) -> u64 {
        self.0.operations_committed
    }

    fn __repr__(&self) -> String {
        let converged = match self.0.rounds_to_converge {
            Some(round) => format!("Some({round})"),
            None => "None".to_owned(),
        };
        format!(
            "SimulationStats(sent={}, delivered={}, dropped={}, converged={converged}, ops={})",
            self.0.messages_sent,
            self.0.messages_delivered,
            self.0.messages_dropped,
            self.0.operations_committed
        )
    }
}

/// A view of one node: its id and index (from `PySimulatedCluster.get_node`).
#[pyclass(module = "_rhizo", name = "PySimulatedNode", frozen)]
pub(crate) struct PySimulatedNode {
    node_id: String,
    index: usize,
}

#[pymethods]
impl PySimulatedNode {
    /// The node's name.
    #[getter]
    fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The node's index in its cluster.
    #[getter]
    fn index(&self) -> usize {
        self.index
    }

    fn __repr__(&self) -> String {
        format!("SimulatedNode(id='{}', index={})", self.node_id, self.index)
    }
}

/// Replicas on a simulated network, driven in rounds. Nodes are named `n0`, `n1`, … It may be
/// used and dropped on any thread.
#[pyclass(module = "_rhizo", name = "PySimulatedCluster")]
pub(crate) struct PyRoundCluster(RoundCluster);

#[pymethods]
impl PyRoundCluster {
    /// `num_nodes` nodes under the default configuration.
    #[new]
    fn new(num_nodes: usize) -> PyResult<Self> {
        RoundCluster::new(num_nodes, &RoundConfig::default())
            .py()
            .map(Self)
    }

    /// `num_nodes` nodes under `config` (copied).
    #[staticmethod]
    fn with_config(num_nodes: usize, config: &PySimulationConfig) -> PyResult<Self> {
        RoundCluster::new(num_nodes, &config.0).py().map(Self)
    }

    /// The number of nodes.
    #[getter]
    fn num_nodes(&self) -> usize {
        self.0.node_count()
    }

    /// Rounds run so far.
    #[getter]
    fn round(&self) -> u64 {
        self.0.round()
    }

    /// A hash of everything that happened on the network: equal for equal runs.
    #[getter]
    fn trace_hash(&self) -> u64 {
        self.0.cluster().trace_hash()
    }

    /// Commits `tx` on node `node_index` now; returns the update.
    fn commit_on_node(
        &mut self,
        node_index: usize,
        tx: &PyKeyedTransaction,
    ) -> PyResult<PyKeyedUpdate> {
        self.0
            .commit_on_node(node_index, &tx.0)
            .py()
            .map(PyKeyedUpdate)
    }

    /// Runs one round.
    fn propagate_round(&mut self) {
        self.0.propagate_round();
    }

    /// Runs rounds until the cluster converges, at most `max_rounds` of them.
    fn propagate_all(&mut self) {
        self.0.propagate_all();
    }

    /// Cuts the link between two nodes, both ways.
    fn partition(&mut self, node_a: usize, node_b: usize) -> PyResult<()> {
        self.0.partition(node_a, node_b).py()
    }

    /// Restores every link.
    fn heal_partitions(&mut self) {
        self.0.heal_partitions();
    }

    /// Makes every node start an exchange with every other now.
    fn requeue_all_updates(&mut self) {
        self.0.requeue_all_updates();
    }

    /// Whether every node holds the same keys with the same values.
    fn verify_convergence(&self) -> bool {
        self.0.values_converged()
    }

    /// The value of `key` on node `node_index` (a copy), or `None` if the node does not hold it.
    fn get_node_state(&self, node_index: usize, key: &str) -> PyResult<Option<PyAlgebraicValue>> {
        match self.0.value(node_index, key).py()? {
            Some(read) => read.py().map(|value| Some(PyAlgebraicValue(value))),
            None => Ok(None),
        }
    }

    /// Every key any node holds.
    fn all_keys(&self) -> Vec<String> {
        self.0.keys()
    }

    /// A snapshot of the counters.
    fn get_stats(&self) -> PySimulationStats {
        PySimulationStats(self.0.stats())
    }

    /// One line per node with its keys, kinds and values.
    fn debug_state(&self) -> String {
        self.0.debug_state()
    }

    /// A view of node `node_index`.
    fn get_node(&self, node_index: usize) -> PyResult<PySimulatedNode> {
        let id = self.0.node_id(node_index).py()?;
        Ok(PySimulatedNode {
            node_id: id.to_string(),
            index: node_index,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "SimulatedCluster(nodes={}, round={}, converged={})",
            self.0.node_count(),
            self.0.round(),
            self.0.values_converged()
        )
    }
}

/// A one-shot scenario: settings and transactions, run by `run()`. Setters return `None`.
#[pyclass(module = "_rhizo", name = "PySimulationBuilder")]
pub(crate) struct PyRoundScenario(RoundScenario);

#[pymethods]
impl PyRoundScenario {
    /// A scenario of `num_nodes` nodes.
    #[new]
    fn new(num_nodes: usize) -> Self {
        Self(RoundScenario::new(num_nodes))
    }

    /// The most rounds `propagate_all()` runs.
    fn set_max_rounds(&mut self, rounds: u64) {
        self.0.config_mut().max_rounds = rounds;
    }

    /// Whether messages are delivered out of order.
    fn set_reordering(&mut self, enabled: bool) {
        self.0.config_mut().randomize_order = enabled;
    }

    /// How the network carries messages.
    fn set_network_condition(&mut self, condition: &PyNetworkCondition) {
        self.0.config_mut().network = condition.0;
    }

    /// Cuts the link between two nodes from the start.
    fn add_partition(&mut self, node_a: usize, node_b: usize) {
        self.0.config_mut().add_partition(node_a, node_b);
    }

    /// Queues a copy of `tx` to commit on node `node`.
    fn add_operation(&mut self, node: usize, tx: &PyKeyedTransaction) {
        self.0.add_transaction(node, tx.0.clone());
    }

    /// A fresh cluster with the queued transactions committed in order and propagated.
    fn run(&self) -> PyResult<PyRoundCluster> {
        self.0.run().py().map(PyRoundCluster)
    }

    fn __repr__(&self) -> String {
        format!(
            "SimulationBuilder(nodes={}, ops={}, max_rounds={})",
            self.0.node_count(),
            self.0.transaction_count(),
            self.0.config().max_rounds
        )
    }
}
