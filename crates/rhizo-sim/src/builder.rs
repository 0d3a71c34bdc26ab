use std::time::Duration;

use rhizo_clock::NodeId;

use crate::cluster::SimulatedCluster;
use crate::network::{Chance, CompiledLatency, NetConfig};
use crate::time::micros;
use crate::{GossipStrategy, LatencyModel, NetworkCondition, Result, SimError, SimulatedNode};

/// The most nodes one simulation addresses (indices are `u32`, and the partition table is
/// `nodes²` bytes, so this keeps it at 1 MiB).
pub const MAX_NODES: usize = 1024;

/// Configures a simulation, then builds a [`SimulatedCluster`].
///
/// Setters take and return `&mut Self`; every value is checked by [`build`](Self::build), which
/// reports the first bad one as a typed error. Defaults: 3 nodes, seed 0, 1 ms constant latency,
/// no jitter, no faults, full-broadcast gossip, a 10 ms sync interval, batch size 64.
#[derive(Clone, Debug)]
pub struct SimulationBuilder {
    nodes: usize,
    seed: u64,
    latency: LatencyModel,
    jitter: Duration,
    loss_rate: f64,
    duplication_rate: f64,
    reorder_probability: f64,
    reorder_max: Duration,
    gossip: GossipStrategy,
    sync_interval: Option<Duration>,
    batch_size: usize,
    split_halves: bool,
}

impl Default for SimulationBuilder {
    fn default() -> Self {
        Self {
            nodes: 3,
            seed: 0,
            latency: LatencyModel::Constant(Duration::from_millis(1)),
            jitter: Duration::ZERO,
            loss_rate: 0.0,
            duplication_rate: 0.0,
            reorder_probability: 0.0,
            reorder_max: Duration::ZERO,
            gossip: GossipStrategy::FullBroadcast,
            sync_interval: Some(Duration::from_millis(10)),
            batch_size: 64,
            split_halves: false,
        }
    }
}

impl SimulationBuilder {
    /// A builder with the defaults listed on the type.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many nodes; they are named `n0`, `n1`, … ([`NodeId::numbered`]).
    pub fn nodes(&mut self, count: usize) -> &mut Self {
        self.nodes = count;
        self
    }

    /// The one seed every random choice of the run derives from.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self
    }

    /// The latency model.
    pub fn latency(&mut self, model: LatencyModel) -> &mut Self {
        self.latency = model;
        self
    }

    /// Extra delay drawn uniformly from `0..=jitter` for every message copy.
    pub fn jitter(&mut self, jitter: Duration) -> &mut Self {
        self.jitter = jitter;
        self
    }

    /// The probability that a message is lost (decided when it is sent).
    pub fn loss_rate(&mut self, rate: f64) -> &mut Self {
        self.loss_rate = rate;
        self
    }

    /// The probability that a message that was not lost is delivered twice (each copy draws
    /// its own delay).
    pub fn duplication_rate(&mut self, rate: f64) -> &mut Self {
        self.duplication_rate = rate;
        self
    }

    /// With probability `probability`, a message copy waits a further delay drawn from
    /// `0..=max_extra`, so it can overtake or be overtaken by others on its link.
    pub fn reordering(&mut self, probability: f64, max_extra: Duration) -> &mut Self {
        self.reorder_probability = probability;
        self.reorder_max = max_extra;
        self
    }

    /// Whom [`NodeCtx::gossip_peers`](crate::NodeCtx::gossip_peers) offers a node each round.
    pub fn gossip(&mut self, strategy: GossipStrategy) -> &mut Self {
        self.gossip = strategy;
        self
    }

    /// How often each running node's [`SimulatedNode::on_timer`] fires (its anti-entropy round,
    /// or a Raft tick); `None` disables timers. Each node's first timer fires at a seeded
    /// random offset inside the first interval, so nodes do not act in lockstep.
    pub fn sync_interval(&mut self, interval: Option<Duration>) -> &mut Self {
        self.sync_interval = interval;
        self
    }

    /// The most updates a node should pack into one message. The simulator does not enforce
    /// it; it hands the value to nodes through [`NodeCtx::batch_size`](crate::NodeCtx::batch_size).
    pub fn batch_size(&mut self, size: usize) -> &mut Self {
        self.batch_size = size;
        self
    }

    /// Applies a named preset; see [`NetworkCondition`] for what each one sets.
    pub fn network_condition(&mut self, condition: NetworkCondition) -> &mut Self {
        let defaults = Self::default();
        self.latency = LatencyModel::Lan;
        self.jitter = defaults.jitter;
        self.loss_rate = defaults.loss_rate;
        self.duplication_rate = defaults.duplication_rate;
        self.reorder_probability = defaults.reorder_probability;
        self.reorder_max = defaults.reorder_max;
        self.split_halves = false;
        let ms = Duration::from_millis;
        match condition {
            NetworkCondition::Perfect => {
                self.latency = defaults.latency;
            }
            NetworkCondition::Reordered => {
                self.latency = LatencyModel::Uniform {
                    min: ms(1),
                    max: ms(10),
                };
                self.reordering(0.5, ms(50));
            }
            NetworkCondition::Delayed => {
                self.latency = LatencyModel::Regions(crate::RegionMatrix::sf_london_tokyo());
                self.jitter(ms(5));
            }
            NetworkCondition::Partitioned => self.split_halves = true,
            NetworkCondition::Lossy => {
                self.loss_rate(0.1);
            }
            NetworkCondition::Duplicating => {
                self.duplication_rate(0.2);
            }
            NetworkCondition::Chaos => {
                self.latency = LatencyModel::Uniform {
                    min: ms(1),
                    max: ms(20),
                };
                self.reordering(0.3, ms(50))
                    .loss_rate(0.1)
                    .duplication_rate(0.1);
            }
        }
        self
    }

    /// The configured seed.
    pub fn configured_seed(&self) -> u64 {
        self.seed
    }

    /// The configured number of nodes.
    pub fn configured_nodes(&self) -> usize {
        self.nodes
    }

    /// Checks every setting and builds the cluster.
    ///
    /// `spawn(id, durable)` makes a node: with `None` a fresh one (here, for every node in
    /// index order), with `Some(state)` one recovered from the durable state it had at its last
    /// crash (in [`SimulatedCluster::restart`]). Each node's
    /// [`on_start`](SimulatedNode::on_start) then runs at time zero, in index order. `spawn` is
    /// `Send` so that the cluster is `Send` whenever its nodes, messages, durable states and
    /// history are.
    pub fn build<N, F>(&self, spawn: F) -> Result<SimulatedCluster<N>>
    where
        N: SimulatedNode,
        F: FnMut(NodeId, Option<N::Durable>) -> N + Send + 'static,
    {
        if self.nodes == 0 {
            return Err(SimError::NoNodes);
        }
        if self.nodes > MAX_NODES {
            return Err(SimError::TooManyNodes {
                requested: self.nodes,
                max: MAX_NODES,
            });
        }
        if self.gossip == (GossipStrategy::PushPull { fanout: 0 }) {
            return Err(SimError::ZeroFanout);
        }
        if self.batch_size == 0 {
            return Err(SimError::ZeroBatchSize);
        }
        let sync_interval = match self.sync_interval.map(micros) {
            Some(0) => return Err(SimError::ZeroSyncInterval),
            other => other,
        };
        let region_names = match &self.latency {
            LatencyModel::Regions(m) => (0..m.region_count())
                .filter_map(|r| m.name(r).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let config = NetConfig {
            latency: CompiledLatency::new(&self.latency)?,
            jitter: micros(self.jitter),
            loss: Chance::new("loss rate", self.loss_rate)?,
            duplication: Chance::new("duplication rate", self.duplication_rate)?,
            reorder: Chance::new("reordering probability", self.reorder_probability)?,
            reorder_max: micros(self.reorder_max),
            gossip: self.gossip,
            sync_interval,
            batch_size: self.batch_size,
            region_names,
        };
        let mut cluster = SimulatedCluster::new(self.nodes, self.seed, config, Box::new(spawn));
        if self.split_halves {
            let half = self.nodes / 2;
            for a in 0..half {
                for b in half..self.nodes {
                    cluster.partition(a, b)?;
                }
            }
        }
        cluster.start_all();
        Ok(cluster)
    }
}
