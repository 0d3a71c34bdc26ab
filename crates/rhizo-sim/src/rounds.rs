//! The roadmap's round-based simulator surface, driven over the event loop.
//!
//! The project roadmap's first simulator moved updates in rounds: commit on a node, then
//! propagate round by round until every node holds the same values. [`RoundCluster`] offers
//! those verbs over a [`SimulatedCluster`] of [`ReplicaNode`]s holding the
//! [keyed](rhizo_commit::keyed) schema. A round starts with every node's anti-entropy timer
//! firing, in index order, then lets one [`ROUND`] of virtual time pass, in which a perfect
//! network completes the exchanges the timers started. The network, the replicas and their
//! gossip are the simulator's own: nothing is delivered here that the event loop did not
//! deliver.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::NodeId;
use rhizo_commit::LocalCommitError;
use rhizo_commit::keyed::{KeyedTransaction, KeyedUpdate, KeyedValue, keyed_schema, keyed_values};

use crate::{
    LatencyModel, ReplicaNode, Result, SimError, SimulatedCluster, SimulatedNode, SimulationBuilder,
};

/// The virtual time one round lasts.
pub const ROUND: Duration = Duration::from_millis(10);

/// The latency of one message on a perfect network: a tenth of a round, so that a sync
/// exchange (a digest, its answer and the delta it asks for) fits inside the round it starts in.
const HOP: Duration = Duration::from_millis(1);

/// How the network of a [`RoundCluster`] carries messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoundNetwork {
    /// Every message takes one hop, in order.
    #[default]
    Perfect,
    /// Latencies vary between one and four hops, and half of the messages wait up to half a
    /// round more, so messages overtake one another.
    Reordered,
    /// Every message takes this many rounds (at least one hop).
    Delayed {
        /// Rounds per message.
        rounds: u32,
    },
    /// The first half of the nodes is cut off from the second half from the start, until
    /// [`RoundCluster::heal_partitions`].
    Partitioned,
}

/// The settings of a [`RoundCluster`].
#[derive(Clone, Debug, PartialEq)]
pub struct RoundConfig {
    /// The most rounds [`RoundCluster::propagate_all`] runs per call.
    pub max_rounds: u64,
    /// Whether messages are delivered out of order (half of them wait up to half a round more).
    pub randomize_order: bool,
    /// How the network carries messages.
    pub network: RoundNetwork,
    /// The seed every random choice of the run derives from.
    pub seed: u64,
    /// Links cut from the start, both ways.
    partitions: Vec<(usize, usize)>,
}

impl Default for RoundConfig {
    fn default() -> Self {
        Self {
            max_rounds: 100,
            randomize_order: false,
            network: RoundNetwork::Perfect,
            seed: 0,
            partitions: Vec::new(),
        }
    }
}

impl RoundConfig {
    /// Cuts the link between nodes `a` and `b` from the start (checked when a cluster is built).
    pub fn add_partition(&mut self, a: usize, b: usize) {
        self.partitions.push((a, b));
    }

    /// The links cut from the start.
    pub fn partitions(&self) -> &[(usize, usize)] {
        &self.partitions
    }

    fn simulation(&self, nodes: usize) -> SimulationBuilder {
        let mut builder = SimulationBuilder::new();
        // No periodic timers: each round fires every node's timer at its start, so that nodes
        // act together, as the rounds of the roadmap's simulator did.
        builder
            .nodes(nodes)
            .seed(self.seed)
            .sync_interval(None)
            .latency(LatencyModel::Constant(HOP));
        match self.network {
            RoundNetwork::Perfect | RoundNetwork::Partitioned => {}
            RoundNetwork::Reordered => {
                builder
                    .latency(LatencyModel::Uniform {
                        min: HOP,
                        max: HOP * 4,
                    })
                    .reordering(0.5, ROUND / 2);
            }
            RoundNetwork::Delayed { rounds } => {
                builder.latency(LatencyModel::Constant((ROUND * rounds).max(HOP)));
            }
        }
        if self.randomize_order {
            builder.reordering(0.5, ROUND / 2);
        }
        builder
    }
}

/// A snapshot of a [`RoundCluster`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Messages the nodes sent (digests and deltas of anti-entropy exchanges).
    pub messages_sent: u64,
    /// Message copies delivered.
    pub messages_delivered: u64,
    /// Message copies lost to a partition, to loss or at a crashed node.
    pub messages_dropped: u64,
    /// The round at which [`RoundCluster::propagate_all`] last found the cluster converged.
    pub rounds_to_converge: Option<u64>,
    /// Operations committed through [`RoundCluster::commit_on_node`].
    pub operations_committed: u64,
}

/// Replicas of the keyed schema on a simulated network, driven in rounds.
pub struct RoundCluster {
    cluster: SimulatedCluster<ReplicaNode>,
    max_rounds: u64,
    round: u64,
    rounds_to_converge: Option<u64>,
    operations_committed: u64,
}

impl RoundCluster {
    /// `nodes` fresh replicas (named `n0`, `n1`, …) under `config`.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, OpType};
    /// use rhizo_commit::keyed::{KeyedOperation, KeyedTransaction};
    /// use rhizo_sim::rounds::{RoundCluster, RoundConfig};
    /// let mut cluster = RoundCluster::new(3, &RoundConfig::default()).unwrap();
    /// let mut tx = KeyedTransaction::new();
    /// tx.push(KeyedOperation::new("views", OpType::AbelianAdd, AlgebraicValue::Integer(1)));
    /// cluster.commit_on_node(0, &tx).unwrap();
    /// cluster.propagate_all();
    /// assert!(cluster.values_converged());
    /// ```
    pub fn new(nodes: usize, config: &RoundConfig) -> Result<Self> {
        let mut cluster = config
            .simulation(nodes)
            .build_replicas(keyed_schema().clone())?;
        // Nothing here checks a history: recording it would only grow with every commit.
        cluster.history_mut().set_recording(false);
        for &(a, b) in &config.partitions {
            cluster.partition(a, b)?;
        }
        if config.network == RoundNetwork::Partitioned {
            let half = nodes / 2;
            for a in 0..half {
                for b in half..nodes {
                    cluster.partition(a, b)?;
                }
            }
        }
        Ok(Self {
            cluster,
            max_rounds: config.max_rounds,
            round: 0,
            rounds_to_converge: None,
            operations_committed: 0,
        })
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.cluster.node_count()
    }

    /// Rounds run so far.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The id of node `node`.
    pub fn node_id(&self, node: usize) -> Result<NodeId> {
        self.cluster
            .node_ids()
            .get(node)
            .copied()
            .ok_or_else(|| SimError::UnknownNode {
                node: format!("#{node}"),
            })
    }

    /// The event-loop cluster underneath.
    pub fn cluster(&self) -> &SimulatedCluster<ReplicaNode> {
        &self.cluster
    }

    /// Commits `tx` on node `node` now and returns the update, stamped with the node's clock
    /// just after the commit. A refused commit leaves no trace.
    pub fn commit_on_node(&mut self, node: usize, tx: &KeyedTransaction) -> Result<KeyedUpdate> {
        let id = self.node_id(node)?;
        let cells = tx
            .to_cell_transaction()
            .map_err(|source| SimError::Commit { node: id, source })?;
        self.cluster.commit_on_node(node, cells)?;
        self.operations_committed += tx.len() as u64;
        let clock = self.cluster.replica(node)?.clock().clone();
        Ok(KeyedUpdate::committed(id, clock, tx.operations().to_vec()))
    }

    /// Runs one round: every node's anti-entropy timer fires (a node with nothing to tell stays
    /// silent), then a round of virtual time passes.
    pub fn propagate_round(&mut self) {
        for index in 0..self.cluster.node_count() {
            // Every node of a round cluster runs: none is ever crashed.
            let _ = self.cluster.with_node(index, SimulatedNode::on_timer);
        }
        self.cluster.run_for(ROUND);
        self.round += 1;
    }

    /// Runs rounds until one ends with every node holding the same updates and nothing in
    /// flight (then records the round in [`RoundStats::rounds_to_converge`]), or until
    /// `max_rounds` rounds have run in this call.
    pub fn propagate_all(&mut self) {
        for _ in 0..self.max_rounds {
            self.propagate_round();
            if self.cluster.in_flight() == 0 && self.cluster.is_converged() {
                self.rounds_to_converge = Some(self.round);
                return;
            }
        }
    }

    /// Cuts the link between nodes `a` and `b`, both ways.
    pub fn partition(&mut self, a: usize, b: usize) -> Result<()> {
        self.cluster.partition(a, b)
    }

    /// Restores every link.
    pub fn heal_partitions(&mut self) {
        self.cluster.heal();
    }

    /// Makes every node start an anti-entropy exchange with every other node now, rather than
    /// at its next timer.
    pub fn requeue_all_updates(&mut self) {
        let ids = self.cluster.node_ids().to_vec();
        for (index, &id) in ids.iter().enumerate() {
            // Every node of a round cluster runs: none is ever crashed.
            let _ = self.cluster.with_node(index, |node, ctx| {
                for &peer in ids.iter().filter(|&&peer| peer != id) {
                    node.sync_with(peer, ctx);
                }
            });
        }
    }

    /// Whether every node holds the same keys with the same values.
    pub fn values_converged(&self) -> bool {
        self.cluster
            .verify_convergence_by(|node| node.replica().values())
            .is_ok()
    }

    /// Every key node `node` holds, with its kind and value (or why it cannot be read).
    pub fn node_values(
        &self,
        node: usize,
    ) -> Result<BTreeMap<String, std::result::Result<KeyedValue, LocalCommitError>>> {
        Ok(keyed_values(self.cluster.replica(node)?.values()))
    }

    /// The value of `key` on node `node`: `None` if the node holds no such key.
    pub fn value(
        &self,
        node: usize,
        key: &str,
    ) -> Result<Option<std::result::Result<AlgebraicValue, LocalCommitError>>> {
        let mut values = self.node_values(node)?;
        Ok(values.remove(key).map(|read| read.map(|keyed| keyed.value)))
    }

    /// Every key any node holds, in order.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for (_, node) in self.cluster.running_nodes() {
            keys.extend(keyed_values(node.replica().values()).into_keys());
        }
        keys.into_iter().collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> RoundStats {
        let net = self.cluster.stats();
        RoundStats {
            messages_sent: net.messages_sent,
            messages_delivered: net.messages_delivered,
            messages_dropped: net.dropped_by_loss
                + net.dropped_by_partition
                + net.dropped_at_crashed_node,
            rounds_to_converge: self.rounds_to_converge,
            operations_committed: self.operations_committed,
        }
    }

    /// One line per node: `Node <index>: {<key>: (<KIND>, <value>), …}`. For reading, not for
    /// parsing.
    pub fn debug_state(&self) -> String {
        let mut out = String::new();
        for (index, (_, node)) in self.cluster.running_nodes().enumerate() {
            let entries: Vec<String> = keyed_values(node.replica().values())
                .into_iter()
                .map(|(key, read)| match read {
                    Ok(v) => format!("{key:?}: ({}, {})", v.op_type, v.value),
                    Err(err) => format!("{key:?}: ({err})"),
                })
                .collect();
            let _ = writeln!(out, "Node {index}: {{{}}}", entries.join(", "));
        }
        out
    }
}

/// A one-shot scenario: a configuration, transactions to commit in order, then
/// [`RoundCluster::propagate_all`].
#[derive(Clone, Debug, Default)]
pub struct RoundScenario {
    nodes: usize,
    config: RoundConfig,
    transactions: Vec<(usize, KeyedTransaction)>,
}

impl RoundScenario {
    /// A scenario of `nodes` nodes under the default configuration.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            ..Self::default()
        }
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The configuration clusters are built with.
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }

    /// The configuration, to change.
    pub fn config_mut(&mut self) -> &mut RoundConfig {
        &mut self.config
    }

    /// Queues `tx` to be committed on node `node` (a copy: later changes to the caller's
    /// transaction do not reach the scenario).
    pub fn add_transaction(&mut self, node: usize, tx: KeyedTransaction) {
        self.transactions.push((node, tx));
    }

    /// The number of transactions queued.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// A fresh cluster with the queued transactions committed in order and propagated. The
    /// first refused commit is returned as the error. The scenario does not change, so each
    /// run gives an independent cluster.
    pub fn run(&self) -> Result<RoundCluster> {
        let mut cluster = RoundCluster::new(self.nodes, &self.config)?;
        for (node, tx) in &self.transactions {
            cluster.commit_on_node(*node, tx)?;
        }
        cluster.propagate_all();
        Ok(cluster)
    }
}

#[cfg(test)]
mod tests;
