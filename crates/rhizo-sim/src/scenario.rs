//! Ready-made runs of replica clusters, shared by tests, the criterion bench and `cargo xtask`:
//! [`throughput`] (commit on every node, then converge) and [`chaos`] (a seeded workload under
//! seeded faults, checked by every checker, then healed and required to converge).
//!
//! Nothing here reads a wall clock: callers time runs themselves. A **round** is one sync
//! interval: the period of every node's anti-entropy timer.

use std::fmt;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::checkers::{self, Violation};
use crate::network::up_to;
use crate::workload::{self, KeyDistribution, OpMix, PreparedRows, Workload, WorkloadOps};
use crate::{
    GossipStrategy, LatencyModel, ReplicaNode, SimError, SimulatedCluster, SimulationBuilder,
};

pub mod membership;
#[cfg(test)]
mod tests;

/// What to run in [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioSpec {
    /// Nodes.
    pub nodes: usize,
    /// Transactions committed on each node.
    pub ops_per_node: usize,
    /// The seed.
    pub seed: u64,
    /// Gossip strategy.
    pub gossip: GossipStrategy,
    /// Rows the transactions touch.
    pub keys: KeyDistribution,
    /// The transaction kinds.
    pub mix: OpMix,
    /// The anti-entropy period (one round).
    pub sync_interval: Duration,
    /// How transactions reach the replicas.
    pub commits: CommitPath,
}

/// How a scenario commits its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPath {
    /// [`Replica::commit`](rhizo_commit::Replica::commit): keys given by name, looked up per
    /// commit.
    Keys,
    /// [`Replica::commit_prepared`](rhizo_commit::Replica::commit_prepared) over cells each node
    /// prepares on first use ([`PreparedRows`]): a server bumping its hot counters.
    Prepared,
}

impl ScenarioSpec {
    /// `nodes` × `ops_per_node` counter increments over 100 uniformly chosen rows, committed
    /// through prepared cells, push-pull gossip with fanout 3, LAN latency, 10 ms rounds.
    pub fn new(nodes: usize, ops_per_node: usize, seed: u64) -> Self {
        Self {
            nodes,
            ops_per_node,
            seed,
            gossip: GossipStrategy::PushPull { fanout: 3 },
            keys: KeyDistribution::Uniform { keys: 100 },
            mix: OpMix::COUNTERS,
            sync_interval: Duration::from_millis(10),
            commits: CommitPath::Prepared,
        }
    }
}

/// Commits the workload's next transaction on `node`, by `path`; `prepared` holds each node's
/// prepared cells, and `drawn` is the list the operations are drawn into (kept across calls).
fn commit_next(
    cluster: &mut SimulatedCluster<ReplicaNode>,
    workload: &mut Workload,
    prepared: &mut [PreparedRows],
    drawn: &mut WorkloadOps,
    node: usize,
    path: CommitPath,
) -> Result<(), SimError> {
    match path {
        CommitPath::Keys => {
            let tx = workload.next_transaction(cluster.workload_rng());
            cluster.commit_on_node(node, tx)?;
        }
        CommitPath::Prepared => {
            workload.next_ops_into(cluster.workload_rng(), drawn);
            let ops = &*drawn;
            let rows = &mut prepared[node];
            let id = cluster.node_ids()[node];
            let refused = |source| SimError::Commit { node: id, source };
            // Each cell is prepared once; after that, no replica need be fetched.
            if !rows.has_all(ops) {
                rows.prepare(cluster.replica(node)?, workload, ops)
                    .map_err(refused)?;
            }
            let tx = rows.transaction(ops).map_err(refused)?;
            cluster.commit_prepared_on_node(node, tx, || workload.transaction(ops))?;
        }
    }
    Ok(())
}

/// What a [`run`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThroughputReport {
    /// Nodes.
    pub nodes: usize,
    /// Transactions committed (all acknowledged).
    pub ops: u64,
    /// Messages sent until every replica held every update.
    pub messages: u64,
    /// Bytes of those messages (wire encoding).
    pub bytes: u64,
    /// `messages / ops`.
    pub messages_per_op: f64,
    /// Rounds from the last write until every replica held every update.
    pub rounds_to_converge: u64,
    /// Virtual time from the last write until convergence.
    pub time_to_converge: Duration,
    /// Messages sent until the cluster fell silent (every replica idle, nothing in flight).
    pub messages_to_quiesce: u64,
    /// The most deltas that waited in one replica's buffer at once.
    pub peak_buffered: u64,
}

/// The most virtual time [`run`] waits for convergence and then for quiescence.
const RUN_BOUND: Duration = Duration::from_secs(600);

/// Commits `spec.ops_per_node` transactions on every node (node by node, all at virtual time
/// zero, each acknowledged before the next), then runs until every replica holds every update,
/// verifies bit-identical states, and runs on until the cluster is quiescent.
///
/// ```
/// use rhizo_sim::scenario::{run, ScenarioSpec};
/// let report = run(&ScenarioSpec::new(3, 20, 42)).unwrap();
/// assert_eq!(report.ops, 60);
/// assert!(report.rounds_to_converge >= 1);
/// // One seed reproduces a run exactly.
/// assert_eq!(run(&ScenarioSpec::new(3, 20, 42)).unwrap().messages, report.messages);
/// ```
pub fn run(spec: &ScenarioSpec) -> Result<ThroughputReport, SimError> {
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(spec.nodes)
        .seed(spec.seed)
        .latency(LatencyModel::Lan)
        .gossip(spec.gossip)
        .sync_interval(Some(spec.sync_interval));
    let mut cluster = builder.build_replicas(workload::schema())?;
    cluster.history_mut().set_recording(false);
    let mut workload = Workload::new(spec.keys, spec.mix);
    let mut prepared: Vec<PreparedRows> = (0..spec.nodes).map(|_| PreparedRows::new()).collect();
    let mut drawn = WorkloadOps::new();
    // Node by node: every commit happens at virtual time zero and none depends on another
    // node's, so the order is free; taking one node's commits together keeps that replica's
    // cells and log in cache, as each node's own processor would; round-robin over the nodes
    // would evict them at every commit.
    for node in 0..spec.nodes {
        for _ in 0..spec.ops_per_node {
            commit_next(
                &mut cluster,
                &mut workload,
                &mut prepared,
                &mut drawn,
                node,
                spec.commits,
            )?;
        }
    }
    let last_write = cluster.now();
    let converged = cluster.run_until_converged(RUN_BOUND, spec.sync_interval / 10)?;
    cluster.verify_convergence()?;
    let messages = cluster.stats().messages_sent;
    let bytes = cluster.stats().bytes_sent;
    let peak_buffered = cluster.replica_totals().peak_buffered;
    cluster.run_until_quiescent(RUN_BOUND)?;
    let ops = (spec.nodes * spec.ops_per_node) as u64;
    let time_to_converge = converged.saturating_since(last_write);
    Ok(ThroughputReport {
        nodes: spec.nodes,
        ops,
        messages,
        bytes,
        messages_per_op: messages as f64 / ops.max(1) as f64,
        rounds_to_converge: rounds(time_to_converge, spec.sync_interval),
        time_to_converge,
        messages_to_quiesce: cluster.stats().messages_sent,
        peak_buffered,
    })
}

/// [`run`] with [`ScenarioSpec::new`]: the bench's commit-then-converge scenario.
pub fn throughput(
    nodes: usize,
    ops_per_node: usize,
    seed: u64,
) -> Result<ThroughputReport, SimError> {
    run(&ScenarioSpec::new(nodes, ops_per_node, seed))
}

/// Whole rounds needed to cover `span` (a partial round counts).
pub fn rounds(span: Duration, round: Duration) -> u64 {
    let (span, round) = (span.as_micros(), round.as_micros().max(1));
    span.div_ceil(round) as u64
}

// ------------------------------------------------------------------------------------ chaos

/// The settings of one [`chaos`] run, all drawn from its seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosSettings {
    /// Nodes, 3–7.
    pub nodes: usize,
    /// Transactions attempted.
    pub ops: usize,
    /// Loss rate, 0–30 %.
    pub loss: f64,
    /// Duplication rate, 0–50 %.
    pub duplication: f64,
    /// Probability that a message waits longer, 0–50 %.
    pub reorder: f64,
    /// Latency model (LAN or uniform 1–10 ms).
    pub latency: LatencyModel,
    /// Full broadcast, or push-pull with fanout 1 or 2.
    pub gossip: GossipStrategy,
    /// Round length, 5–20 ms.
    pub sync_interval: Duration,
    /// Rows (uniform or hot).
    pub keys: KeyDistribution,
    /// One fault action (partition, one-way partition, isolation, heal, crash, restart) every
    /// this many transactions on average, 10–100.
    pub fault_every: u32,
    /// A read of every replica every this many transactions.
    pub observe_every: u32,
    /// Prepared cells on odd seeds, keys by name on even ones (the seed's parity, not a draw,
    /// so every seed keeps the settings it had before prepared cells joined the sweep).
    pub commits: CommitPath,
}

/// The convergence bound [`chaos`] requires once faults are healed: this many rounds.
pub const CHAOS_CONVERGENCE_ROUNDS: u64 = 60;

/// Mean virtual time between two transactions of a chaos run.
const CHAOS_MEAN_GAP_MICROS: u64 = 250;

impl ChaosSettings {
    /// The settings seed `seed` gives a run of `ops` transactions.
    pub fn draw(seed: u64, ops: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // A stream of its own: the cluster's streams (0, 1, 2+i) stay independent of it.
        rng.set_stream(u64::MAX);
        let percent = |rng: &mut ChaCha8Rng, max: u64| up_to(rng, max) as f64 / 100.0;
        let nodes = 3 + up_to(&mut rng, 4) as usize;
        let loss = percent(&mut rng, 30);
        let duplication = percent(&mut rng, 50);
        let reorder = percent(&mut rng, 50);
        let latency = if up_to(&mut rng, 1) == 0 {
            LatencyModel::Lan
        } else {
            LatencyModel::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(10),
            }
        };
        let gossip = match up_to(&mut rng, 2) {
            0 => GossipStrategy::FullBroadcast,
            f => GossipStrategy::PushPull { fanout: f as usize },
        };
        let sync_interval = Duration::from_millis(5 + up_to(&mut rng, 15));
        let rows = 2 + up_to(&mut rng, 30) as u32;
        let keys = if up_to(&mut rng, 1) == 0 {
            KeyDistribution::Uniform { keys: rows }
        } else {
            KeyDistribution::Hot {
                keys: rows,
                hot_percent: 50 + up_to(&mut rng, 40) as u32,
            }
        };
        let fault_every = 10 + up_to(&mut rng, 90) as u32;
        Self {
            nodes,
            ops,
            loss,
            duplication,
            reorder,
            latency,
            gossip,
            sync_interval,
            keys,
            fault_every,
            observe_every: 250,
            commits: if seed % 2 == 1 {
                CommitPath::Prepared
            } else {
                CommitPath::Keys
            },
        }
    }

    fn builder(&self, seed: u64) -> SimulationBuilder {
        let mut builder = SimulationBuilder::new();
        builder
            .nodes(self.nodes)
            .seed(seed)
            .latency(self.latency.clone())
            .loss_rate(self.loss)
            .duplication_rate(self.duplication)
            .reordering(self.reorder, Duration::from_millis(30))
            .gossip(self.gossip)
            .sync_interval(Some(self.sync_interval));
        builder
    }
}

/// What a [`chaos`] run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosReport {
    /// The drawn settings.
    pub settings: ChaosSettings,
    /// Transactions acknowledged.
    pub acknowledged: u64,
    /// Messages sent over the whole run.
    pub messages: u64,
    /// Bytes sent over the whole run.
    pub bytes: u64,
    /// Fault actions taken (partitions, heals, crashes, restarts).
    pub fault_actions: u64,
    /// Crashes.
    pub crashes: u64,
    /// Rounds from healing until every replica held every update.
    pub rounds_to_converge: u64,
    /// Virtual time from healing until convergence.
    pub time_to_converge: Duration,
    /// Virtual time from healing until quiescence.
    pub time_to_quiesce: Duration,
    /// The most deltas that waited in one replica's buffer at once (over replicas running at
    /// the end; a restart starts the count again).
    pub peak_buffered: u64,
    /// Reads recorded and checked.
    pub observations: usize,
    /// The run's trace hash (equal for equal seeds).
    pub trace_hash: u64,
}

/// Why a [`chaos`] run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ChaosFailure {
    /// A checker found a violation.
    Violation(Box<Violation>),
    /// The simulator refused a verb, or a valid transaction was refused.
    Sim(SimError),
    /// Healed, the cluster did not converge within the bound.
    NotConverged {
        /// The bound, in rounds.
        rounds: u64,
    },
}

impl fmt::Display for ChaosFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosFailure::Violation(v) => write!(f, "{v}"),
            ChaosFailure::Sim(e) => write!(f, "{e}"),
            ChaosFailure::NotConverged { rounds } => {
                write!(f, "not converged {rounds} rounds after healing")
            }
        }
    }
}

impl From<SimError> for ChaosFailure {
    fn from(e: SimError) -> Self {
        ChaosFailure::Sim(e)
    }
}

impl From<Violation> for ChaosFailure {
    fn from(v: Violation) -> Self {
        ChaosFailure::Violation(Box::new(v))
    }
}

/// One seeded run under faults, in two phases.
///
/// **Safety phase**: `ops` transactions of every kind ([`OpMix::ALL`]) on random running nodes,
/// one every 0–0.5 ms of virtual time, while the seed's loss, duplication and reordering apply
/// and fault actions (two-way and one-way partitions, isolation, partial and full heals,
/// crashes, restarts) happen every [`ChaosSettings::fault_every`] transactions on average;
/// every replica is read every [`ChaosSettings::observe_every`] transactions.
///
/// **Liveness phase**: the network calms (no partition, loss, duplication or reordering) and
/// crashed nodes restart; every replica must then hold every update within
/// [`CHAOS_CONVERGENCE_ROUNDS`] rounds, and the cluster must fall silent within as many more.
/// Then every checker runs over the history and the final state.
///
/// ```
/// let report = rhizo_sim::scenario::chaos(5, 40).unwrap(); // every checker passed
/// assert_eq!(report.trace_hash, rhizo_sim::scenario::chaos(5, 40).unwrap().trace_hash);
/// ```
pub fn chaos(seed: u64, ops: usize) -> Result<ChaosReport, ChaosFailure> {
    chaos_with(seed, ChaosSettings::draw(seed, ops))
}

/// [`chaos`] with the given settings (for instance a seed's, with the other commit path).
pub fn chaos_with(seed: u64, settings: ChaosSettings) -> Result<ChaosReport, ChaosFailure> {
    run_chaos(seed, settings, None)
}

/// A [`chaos`] run, with membership changes when `membership` is given (see [`membership`]).
fn run_chaos(
    seed: u64,
    settings: ChaosSettings,
    mut membership: Option<&mut membership::Membership>,
) -> Result<ChaosReport, ChaosFailure> {
    let mut cluster = settings.builder(seed).build_replicas(workload::schema())?;
    if let Some(membership) = membership.as_deref_mut() {
        membership.start(&mut cluster)?;
    }
    let fault_actions = safety_phase(&mut cluster, &settings, membership.as_deref_mut())?;
    liveness_phase(cluster, settings, fault_actions, membership)
}

/// The safety phase of [`chaos`]: the workload under the seed's faults (and membership
/// changes). Returns how many fault actions were taken.
fn safety_phase(
    cluster: &mut SimulatedCluster<ReplicaNode>,
    settings: &ChaosSettings,
    mut membership: Option<&mut membership::Membership>,
) -> Result<u64, ChaosFailure> {
    let mut workload = Workload::new(settings.keys, OpMix::ALL);
    let mut prepared: Vec<PreparedRows> =
        (0..settings.nodes).map(|_| PreparedRows::new()).collect();
    let mut drawn = WorkloadOps::new();
    let mut fault_actions = 0;
    for op in 1..=settings.ops {
        let gap = up_to(cluster.workload_rng(), 2 * CHAOS_MEAN_GAP_MICROS);
        cluster.run_for(Duration::from_micros(gap));
        if let Some(membership) = membership.as_deref_mut() {
            membership.at_op(op, cluster)?;
        }
        if up_to(cluster.workload_rng(), u64::from(settings.fault_every) - 1) == 0 {
            fault_actions += 1;
            match membership.as_deref_mut() {
                None => fault_action(cluster, None)?,
                Some(membership) => {
                    let crashed = crashed_nodes(cluster);
                    fault_action(cluster, membership.held_down())?;
                    membership.after_restarts(cluster, &crashed)?;
                }
            }
        }
        let running: Vec<usize> = (0..settings.nodes)
            .filter(|&i| cluster.is_crashed(i) == Ok(false))
            .collect();
        let node = running[up_to(cluster.workload_rng(), running.len() as u64 - 1) as usize];
        commit_next(
            cluster,
            &mut workload,
            &mut prepared,
            &mut drawn,
            node,
            settings.commits,
        )?;
        if op % settings.observe_every as usize == 0 {
            cluster.observe();
        }
    }
    cluster.observe();
    Ok(fault_actions)
}

/// The liveness phase of [`chaos`]: calm the network, restart every crashed node (and, with
/// membership changes, make every member count every other), require convergence and
/// quiescence within the bound, then run every checker (and, with membership changes, the
/// metadata checker: every view agrees by then).
fn liveness_phase(
    mut cluster: SimulatedCluster<ReplicaNode>,
    settings: ChaosSettings,
    fault_actions: u64,
    mut membership: Option<&mut membership::Membership>,
) -> Result<ChaosReport, ChaosFailure> {
    cluster.calm();
    for node in 0..settings.nodes {
        if cluster.is_crashed(node)? {
            cluster.restart(node)?;
            if let Some(membership) = membership.as_deref_mut() {
                membership.restored(&mut cluster, node)?;
            }
        }
    }
    if let Some(membership) = membership.as_deref_mut() {
        membership.count_everyone(&mut cluster)?;
    }
    let healed = cluster.now();
    let bound = settings.sync_interval * CHAOS_CONVERGENCE_ROUNDS as u32;
    let converged = cluster
        .run_until_converged(bound, settings.sync_interval / 4)
        .map_err(|_| ChaosFailure::NotConverged {
            rounds: CHAOS_CONVERGENCE_ROUNDS,
        })?;
    let peak_buffered = cluster.replica_totals().peak_buffered;
    let quiet = cluster.run_until_quiescent(bound)?;
    cluster.observe();
    checkers::check_all(&cluster)?;
    if let Some(membership) = membership {
        checkers::metadata::check(&cluster).map_err(Violation::from)?;
        membership.snapshots_sent = cluster.replica_totals().snapshots_sent;
    }
    let time_to_converge = converged.saturating_since(healed);
    Ok(ChaosReport {
        acknowledged: cluster.history().acknowledged().len() as u64,
        messages: cluster.stats().messages_sent,
        bytes: cluster.stats().bytes_sent,
        fault_actions,
        crashes: cluster.stats().crashes,
        rounds_to_converge: rounds(time_to_converge, settings.sync_interval),
        time_to_converge,
        time_to_quiesce: quiet.saturating_since(healed),
        peak_buffered,
        observations: cluster.history().observations().len(),
        trace_hash: cluster.trace_hash(),
        settings,
    })
}

/// The nodes crashed now, in index order.
fn crashed_nodes(cluster: &SimulatedCluster<ReplicaNode>) -> Vec<usize> {
    (0..cluster.node_count())
        .filter(|&i| cluster.is_crashed(i) == Ok(true))
        .collect()
}

/// One fault action drawn from the workload stream. A restart never picks `held_down` (a node
/// kept down on purpose); the draws are the same whatever it is.
fn fault_action(
    cluster: &mut SimulatedCluster<ReplicaNode>,
    held_down: Option<usize>,
) -> Result<(), SimError> {
    let nodes = cluster.node_count() as u64;
    let rng = cluster.workload_rng();
    let a = up_to(rng, nodes - 1) as usize;
    let b = (a + 1 + up_to(rng, nodes - 2) as usize) % nodes as usize;
    let action = up_to(rng, 13);
    let crashed = crashed_nodes(cluster);
    match action {
        0..=2 => cluster.partition(a, b),
        3 | 4 => cluster.partition_one_way(a, b),
        5 => cluster.isolate(a),
        6 | 7 => cluster.heal_link(a, b),
        8 => {
            cluster.heal();
            Ok(())
        }
        9 | 10 => {
            // Keep at least one node running, so the workload has somewhere to commit.
            if cluster.is_crashed(a)? || crashed.len() + 1 >= nodes as usize {
                Ok(())
            } else {
                cluster.crash(a)
            }
        }
        _ => match crashed.iter().find(|&&node| Some(node) != held_down) {
            Some(&node) => cluster.restart(node),
            None => Ok(()),
        },
    }
}
