//! Raft nodes on the deterministic simulator, with closed-loop clients and fault schedules.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, CellKey, Operations, OrderedOutcome};
use rhizo_sim::{LatencyModel, NodeCtx, SimulatedCluster, SimulatedNode, SimulationBuilder};
use rhizo_txn::TransactionMode;
use rhizo_txn::raft::{
    ClientOutcome, MemRaftLog, ProposalId, RaftConfig, RaftError, RaftNode, RaftWire, Submitted,
};

pub mod bench;
mod checkers;

pub use checkers::{
    RaftHistory, RegisterOp, check_linearizable, check_no_lost_writes, check_no_split_brain,
};

const TABLE: &str = "kv";
const REGISTER: &str = "reg";
const COUNTER_TABLE: &str = "counters";
const COUNTER: &str = "value";
const COUNTER_ROW: &str = "shared";

/// The schema the simulated clients write: registers `kv.reg` (integers) and an additive
/// counter `counters.value`.
pub fn sim_schema() -> Schema {
    Schema::builder()
        .table(TABLE)
        .column(REGISTER, MergeType::Register, ValueType::Integer)
        .table(COUNTER_TABLE)
        .column(COUNTER, MergeType::Add, ValueType::Integer)
        .build()
        .expect("a valid schema")
}

/// What each node's client does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RaftWorkload {
    /// Random puts and linearizable reads of `registers` registers, coordinated and
    /// coordination-free increments of one counter, and mixed transactions (a put and an
    /// increment together), submitted in `Auto` mode: `ops` operations per client.
    Mixed {
        /// Operations per client.
        ops: u32,
        /// How many registers.
        registers: u32,
    },
    /// Back-to-back transactions of `ops_per_tx` increments in `mode`, until `commits`
    /// transactions have committed cluster-wide (for latency measurements).
    Commits {
        /// Increments per transaction.
        ops_per_tx: u32,
        /// The transaction mode.
        mode: TransactionMode,
    },
}

/// How a simulated Raft cluster is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftSimConfig {
    /// Cluster size.
    pub nodes: usize,
    /// Network latency.
    pub latency: LatencyModel,
    /// Extra uniform jitter on every message.
    pub jitter: Duration,
    /// Probability that a message is lost.
    pub loss_rate: f64,
    /// The Raft tick (the simulator's timer interval).
    pub tick: Duration,
    /// Raft settings (its `seed` is replaced by the simulation's).
    pub raft: RaftConfig,
    /// Replica anti-entropy every this many ticks.
    pub sync_every_ticks: u32,
    /// The clients' work.
    pub workload: RaftWorkload,
    /// Partitions and leader crashes during the run.
    pub faults: bool,
    /// How long clients run before the cluster is healed and checked.
    pub duration: Duration,
}

impl RaftSimConfig {
    /// Five nodes on a LAN, 1 ms ticks, mixed workload, with faults.
    pub fn lan_with_faults(ops: u32) -> Self {
        Self {
            nodes: 5,
            latency: LatencyModel::Lan,
            jitter: Duration::ZERO,
            loss_rate: 0.0,
            tick: Duration::from_millis(1),
            raft: RaftConfig {
                compact_after_entries: 16,
                proposal_timeout_ticks: 40,
                ..RaftConfig::default()
            },
            sync_every_ticks: 5,
            workload: RaftWorkload::Mixed { ops, registers: 2 },
            faults: true,
            duration: Duration::from_millis(400),
        }
    }
}

#[derive(Debug)]
enum Waiting {
    Write { op: Option<usize>, increment: i64 },
    Read { op: usize },
}

/// The client attached to one node.
#[derive(Debug, Default)]
struct Client {
    issued: u32,
    waiting: Option<(ProposalId, Waiting)>,
    /// Completed commits and their latencies (virtual µs), for the benchmark.
    latencies: Vec<u64>,
    started_at: u64,
}

/// A Raft node on the simulator, with its client.
#[derive(Debug)]
pub struct RaftSimNode {
    node: RaftNode<MemRaftLog>,
    client: Client,
    history: Arc<Mutex<RaftHistory>>,
    workload: RaftWorkload,
    sync_every_ticks: u32,
    ticks: u32,
    /// Whether the workload may issue (turned off before the final checks).
    pub clients_on: bool,
    /// Failures the node hit (a checker reports them).
    pub errors: Vec<String>,
}

/// The history every node records into. The simulation runs on one thread at a time, so the
/// lock is never contended.
fn record(history: &Mutex<RaftHistory>) -> MutexGuard<'_, RaftHistory> {
    history.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RaftSimNode {
    /// The Raft node inside.
    pub fn raft(&self) -> &RaftNode<MemRaftLog> {
        &self.node
    }

    /// The latencies of this node's committed transactions, virtual µs.
    pub fn latencies(&self) -> &[u64] {
        &self.client.latencies
    }

    /// Whether this node's client has an operation in flight.
    pub fn client_busy(&self) -> bool {
        self.client.waiting.is_some()
    }

    fn counter_key() -> CellKey {
        CellKey::new(COUNTER_TABLE, COUNTER_ROW, COUNTER)
    }

    fn maybe_issue(&mut self, ctx: &mut NodeCtx<'_, RaftWire>) {
        if !self.clients_on || self.client.waiting.is_some() {
            return;
        }
        let now = ctx.now().as_micros();
        match self.workload {
            RaftWorkload::Mixed { ops, registers } => {
                if self.client.issued >= ops {
                    return;
                }
                let roll: u32 = ctx.rng().random_range(0..10);
                let register = format!("r{}", ctx.rng().random_range(0..registers.max(1)));
                let value =
                    i64::from(ctx.index() as u32) * 1_000_000 + i64::from(self.client.issued) + 1;
                self.client.issued += 1;
                match roll {
                    0..=2 => self.issue_read(register, now),
                    3..=5 => {
                        let mut tx = AlgebraicTransaction::new();
                        tx.put(TABLE, &register, REGISTER, value);
                        self.issue_write(
                            tx,
                            Some((register, value)),
                            0,
                            TransactionMode::Auto,
                            now,
                        );
                    }
                    6 => {
                        let mut tx = AlgebraicTransaction::new();
                        tx.put(TABLE, &register, REGISTER, value).increment(
                            COUNTER_TABLE,
                            COUNTER_ROW,
                            COUNTER,
                            1,
                        );
                        self.issue_write(
                            tx,
                            Some((register, value)),
                            1,
                            TransactionMode::Auto,
                            now,
                        );
                    }
                    7 => {
                        let mut tx = AlgebraicTransaction::new();
                        tx.increment(COUNTER_TABLE, COUNTER_ROW, COUNTER, 10);
                        self.issue_write(tx, None, 10, TransactionMode::Coordinated, now);
                    }
                    _ => {
                        let mut tx = AlgebraicTransaction::new();
                        tx.increment(COUNTER_TABLE, COUNTER_ROW, COUNTER, 100);
                        self.issue_write(tx, None, 100, TransactionMode::Auto, now);
                    }
                }
            }
            RaftWorkload::Commits { ops_per_tx, mode } => {
                let mut tx = AlgebraicTransaction::new();
                for i in 0..ops_per_tx {
                    tx.increment(COUNTER_TABLE, &format!("row{i}"), COUNTER, 1);
                }
                self.issue_write(tx, None, 0, mode, now);
            }
        }
    }

    fn issue_read(&mut self, register: String, now: u64) {
        match self
            .node
            .read(vec![CellKey::new(TABLE, &register, REGISTER)])
        {
            Ok(id) => {
                let op = self.record_op(RegisterOp {
                    key: register,
                    write: None,
                    read: None,
                    invoked: now,
                    completed: None,
                });
                self.client.waiting = Some((id, Waiting::Read { op }));
                self.client.started_at = now;
            }
            Err(RaftError::NoLeader) => {} // nothing proposed; the client retries later
            Err(other) => self.errors.push(format!("read refused: {other}")),
        }
    }

    fn issue_write(
        &mut self,
        tx: AlgebraicTransaction,
        register: Option<(String, i64)>,
        increment: i64,
        mode: TransactionMode,
        now: u64,
    ) {
        match self.node.submit(tx, mode) {
            Ok(Submitted::Local(_)) => {
                // Durable at the next drain, which runs before this callback returns.
                record(&self.history).counter_acknowledged += increment;
                self.client.latencies.push(0);
            }
            Ok(Submitted::Proposed(id)) => {
                let op = register.map(|(key, value)| {
                    self.record_op(RegisterOp {
                        key,
                        write: Some(value),
                        read: None,
                        invoked: now,
                        completed: None,
                    })
                });
                // Until an outcome arrives the increment is "unknown".
                record(&self.history).counter_unknown += increment;
                self.client.waiting = Some((id, Waiting::Write { op, increment }));
                self.client.started_at = now;
            }
            Err(RaftError::NoLeader) => {}
            Err(other) => self.errors.push(format!("write refused: {other}")),
        }
    }

    fn record_op(&mut self, op: RegisterOp) -> usize {
        let mut history = record(&self.history);
        history.ops.push(op);
        history.ops.len() - 1
    }

    fn complete(&mut self, outcome: ClientOutcome, now: u64) {
        let Some((id, _)) = &self.client.waiting else {
            return;
        };
        if *id != outcome.id() {
            return;
        }
        let (_, waiting) = self.client.waiting.take().expect("checked above");
        let mut history = record(&self.history);
        match (waiting, outcome) {
            (Waiting::Write { op, increment }, ClientOutcome::Committed { index, outcome, .. }) => {
                history.counter_unknown -= increment;
                match outcome {
                    // Acknowledged only what the log decided here: an entry the node did not
                    // apply itself has no known outcome, and a node must never report one.
                    OrderedOutcome::AlreadyApplied => {
                        self.errors.push(format!(
                            "entry {index} was answered without this node applying it"
                        ));
                    }
                    OrderedOutcome::Applied(_) => {
                        history.acknowledged.push(index);
                        history.counter_acknowledged += increment;
                        if let Some(op) = op {
                            history.ops[op].completed = Some(now);
                        }
                    }
                    OrderedOutcome::Refused(err) => {
                        self.errors
                            .push(format!("a put was refused at apply: {err}"));
                    }
                }
                self.client.latencies.push(now - self.client.started_at);
            }
            (Waiting::Read { op }, ClientOutcome::Read { values, .. }) => {
                let seen = match values.first() {
                    Some((_, Ok(AlgebraicValue::Null))) => None,
                    Some((_, Ok(AlgebraicValue::Integer(v)))) => Some(*v),
                    other => {
                        self.errors
                            .push(format!("unexpected read result {other:?}"));
                        return;
                    }
                };
                history.ops[op].read = Some(seen);
                history.ops[op].completed = Some(now);
            }
            // Unknown outcome: the op stays open (a write may still take effect).
            (_, ClientOutcome::Failed { .. }) => {}
            (waiting, outcome) => self
                .errors
                .push(format!("outcome {outcome:?} does not answer {waiting:?}")),
        }
    }

    fn after(&mut self, ctx: &mut NodeCtx<'_, RaftWire>) {
        // Up to a few rounds: a completion may start the next operation at once (closed loop).
        for _ in 0..4 {
            let output = match self.node.drain() {
                Ok(output) => output,
                Err(err) => {
                    self.errors.push(format!("drain failed: {err}"));
                    return;
                }
            };
            let id = self.node.id();
            {
                let mut history = record(&self.history);
                if self.node.is_leader() {
                    history.note_leader(self.node.term(), id);
                }
                for (index, term, data) in &output.applied {
                    history.note_applied(id, *index, *term, data);
                }
            }
            for (to, message) in output.messages {
                let _ = ctx.send(to, message);
            }
            let now = ctx.now().as_micros();
            let any = !output.outcomes.is_empty();
            for outcome in output.outcomes {
                self.complete(outcome, now);
            }
            if !any {
                break;
            }
            self.maybe_issue(ctx);
        }
    }
}

impl SimulatedNode for RaftSimNode {
    type Message = RaftWire;
    type Durable = MemRaftLog;
    type History = ();

    fn on_start(&mut self, ctx: &mut NodeCtx<'_, RaftWire>) {
        self.after(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: RaftWire, ctx: &mut NodeCtx<'_, RaftWire>) {
        if let Err(err) = self.node.step(from, msg) {
            self.errors.push(format!("step from {from}: {err}"));
        }
        self.after(ctx);
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, RaftWire>) {
        self.node.tick();
        self.ticks += 1;
        if self.ticks.is_multiple_of(self.sync_every_ticks.max(1)) {
            let behind = self.node.peers_behind();
            for peer in behind {
                self.node.sync_with(peer);
            }
        }
        self.maybe_issue(ctx);
        self.after(ctx);
    }

    fn durable(&self) -> MemRaftLog {
        self.node.durable_log().clone()
    }

    fn is_idle(&self) -> bool {
        false // a leader heartbeats forever: drive with run_for / run_until
    }

    fn message_bytes(msg: &RaftWire) -> usize {
        msg.approx_bytes()
    }
}

/// A built simulation and the history its nodes record.
pub(crate) struct RaftSim {
    pub(crate) cluster: SimulatedCluster<RaftSimNode>,
    pub(crate) history: Arc<Mutex<RaftHistory>>,
}

pub(crate) fn build(config: &RaftSimConfig, seed: u64) -> Result<RaftSim, String> {
    let history = Arc::new(Mutex::new(RaftHistory::default()));
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(config.nodes)
        .seed(seed)
        .latency(config.latency.clone())
        .jitter(config.jitter)
        .loss_rate(config.loss_rate)
        .sync_interval(Some(config.tick));
    let members: Vec<NodeId> = (0..config.nodes as u32).map(NodeId::numbered).collect();
    let shared = Arc::clone(&history);
    let raft = RaftConfig {
        seed,
        ..config.raft.clone()
    };
    let workload = config.workload;
    let sync_every_ticks = config.sync_every_ticks;
    let cluster = builder
        .build(move |id, durable: Option<MemRaftLog>| {
            let log = durable.unwrap_or_default();
            let records = log.records().to_vec();
            let node = RaftNode::open(id, &members, sim_schema(), raft.clone(), log, &records)
                .expect("a simulated node opens from its own durable log");
            RaftSimNode {
                node,
                client: Client::default(),
                history: Arc::clone(&shared),
                workload,
                sync_every_ticks,
                ticks: 0,
                clients_on: true,
                errors: Vec::new(),
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(RaftSim { cluster, history })
}

fn leader_index(cluster: &SimulatedCluster<RaftSimNode>) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, id) in cluster.node_ids().iter().enumerate() {
        if cluster.is_crashed(*id).unwrap_or(true) {
            continue;
        }
        let node = cluster.node(i).ok()?;
        if node.node.is_leader() && best.is_none_or(|(term, _)| node.node.term() > term) {
            best = Some((node.node.term(), i));
        }
    }
    best.map(|(_, i)| i)
}

/// What one simulated run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftScenarioReport {
    /// Acknowledged coordinated writes.
    pub acknowledged: usize,
    /// Register operations recorded.
    pub register_ops: usize,
    /// Distinct terms that had a leader.
    pub terms_with_leader: usize,
    /// Crashes injected.
    pub crashes: u64,
    /// The highest snapshot index any node reached.
    pub max_snapshot_index: u64,
}

/// Runs the clients with faults, heals, catches up, reads every register once more through
/// the log, and checks the three invariants. `Err` says which one failed and how.
pub fn run_raft_scenario(config: &RaftSimConfig, seed: u64) -> Result<RaftScenarioReport, String> {
    let RaftSim {
        mut cluster,
        history,
    } = build(config, seed)?;
    let nodes = config.nodes;
    let phases = 8u32;
    let phase = config.duration / phases;
    let mut crashed: Vec<usize> = Vec::new();
    for _ in 0..phases {
        if config.faults {
            let roll: u32 = cluster.workload_rng().random_range(0..6);
            match roll {
                0 => {
                    if let Some(leader) = leader_index(&cluster) {
                        cluster.crash(leader).map_err(|e| e.to_string())?;
                        crashed.push(leader);
                    }
                }
                1 => {
                    if let Some(leader) = leader_index(&cluster) {
                        cluster.isolate(leader).map_err(|e| e.to_string())?;
                    }
                }
                2 => {
                    let a = cluster.workload_rng().random_range(0..nodes);
                    let b = (a + 1 + cluster.workload_rng().random_range(0..nodes - 1)) % nodes;
                    cluster.partition(a, b).map_err(|e| e.to_string())?;
                }
                3 => {
                    cluster.heal();
                    for node in crashed.drain(..) {
                        cluster.restart(node).map_err(|e| e.to_string())?;
                    }
                }
                _ => {}
            }
        }
        cluster.run_for(phase);
    }
    // Heal everything, stop issuing, and let the cluster settle.
    cluster.heal();
    for node in crashed.drain(..) {
        cluster.restart(node).map_err(|e| e.to_string())?;
    }
    for i in 0..nodes {
        cluster.node_mut(i).map_err(|e| e.to_string())?.clients_on = false;
    }
    let settle = Duration::from_millis(
        (config.tick.as_millis() as u64 * config.raft.election_tick as u64 * 20).max(200),
    );
    cluster
        .run_until(settle, |c| {
            leader_index(c).is_some_and(|l| {
                let commit = c.node(l).map(|n| n.node.commit_index()).unwrap_or(0);
                c.running_nodes().all(|(_, n)| {
                    !n.client_busy() && n.node.applied() >= commit && n.node.pending() == 0
                }) && c
                    .running_nodes()
                    .all(|(_, n)| n.node.peers_behind().is_empty())
            })
        })
        .map_err(|e| format!("the healed cluster did not settle: {e}"))?;
    // One more linearizable read of each register, from a random node.
    let registers = match config.workload {
        RaftWorkload::Mixed { registers, .. } => registers,
        RaftWorkload::Commits { .. } => 0,
    };
    for r in 0..registers {
        let reader = cluster.workload_rng().random_range(0..nodes);
        cluster
            .with_node(reader, |node, ctx| {
                node.issue_read(format!("r{r}"), ctx.now().as_micros());
                node.after(ctx);
            })
            .map_err(|e| e.to_string())?;
        cluster
            .run_until(settle, |c| c.running_nodes().all(|(_, n)| !n.client_busy()))
            .map_err(|e| format!("the final read did not complete: {e}"))?;
    }
    // Checks.
    for (id, node) in cluster.running_nodes() {
        if let Some(err) = node.errors.first() {
            return Err(format!("{id}: {err}"));
        }
    }
    let history = record(&history);
    check_no_split_brain(&history).map_err(|e| format!("split brain: {e}"))?;
    let applied: Vec<(NodeId, u64)> = cluster
        .running_nodes()
        .map(|(id, n)| (id, n.node.applied()))
        .collect();
    let counters: Vec<(NodeId, i64)> = cluster
        .running_nodes()
        .map(|(id, n)| {
            let value = n
                .node
                .replica()
                .read_key(&RaftSimNode::counter_key())
                .ok()
                .and_then(|v| v.as_integer())
                .unwrap_or(i64::MIN);
            (id, value)
        })
        .collect();
    check_no_lost_writes(&history, &applied, &counters).map_err(|e| format!("lost write: {e}"))?;
    check_linearizable(&history.ops, 400).map_err(|e| format!("not linearizable: {e}"))?;
    let fingerprints: BTreeMap<u64, NodeId> = cluster
        .running_nodes()
        .map(|(id, n)| (n.node.replica().fingerprint(), id))
        .collect();
    if fingerprints.len() > 1 {
        return Err(format!(
            "replicas diverged after settling: {fingerprints:?}"
        ));
    }
    Ok(RaftScenarioReport {
        acknowledged: history.acknowledged.len(),
        register_ops: history.ops.len(),
        terms_with_leader: history.leaders.len(),
        crashes: cluster.stats().crashes,
        max_snapshot_index: cluster
            .running_nodes()
            .map(|(_, n)| n.node.snapshot_index())
            .max()
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
