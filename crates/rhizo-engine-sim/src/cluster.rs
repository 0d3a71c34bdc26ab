//! A cluster of [`Engine`]s on `rhizo-sim`'s simulated network: real engines on real data
//! directories, with loss, partitions, crashes and restarts, in virtual time and reproducible
//! from one seed — for tests, and for notebook experiments through the Python bindings.
//!
//! Each node is an [`EngineNode`]: its messages are the engine's encoded bytes, its timer is the
//! engine's [`Engine::tick`] plus an anti-entropy round, and a crash is a power loss: what
//! survives is what its engine synced in its data directory, which a restart reopens (so nothing
//! acknowledged is lost, and nothing unsynced survives). Coordination-free
//! transactions commit on their node at once; on the Raft backend coordinated ones go through
//! the log and are decided as the simulation runs ([`EngineCluster::submit`] and
//! [`EngineCluster::take_outcome`], or [`EngineCluster::commit`], which runs the simulation
//! until the outcome arrives).
//!
//! ```
//! use rhizo_algebra::AlgebraicValue;
//! use rhizo_sim::SimulationBuilder;
//! use rhizo_commit::Operations;
//! use rhizo_engine_sim::cluster::{ClusterConfig, EngineCluster};
//! use rhizo_txn::{TransactionMode, default_schema};
//! use std::time::Duration;
//!
//! let mut builder = SimulationBuilder::new();
//! builder.nodes(3).seed(7);
//! let mut cluster = EngineCluster::new(&builder, ClusterConfig::new(default_schema())).unwrap();
//! cluster.partition(0, 1).unwrap();
//! cluster
//!     .commit(0, TransactionMode::CoordinationFree, |tx| {
//!         tx.increment("counters", "page_views", "value", 1);
//!     })
//!     .unwrap();
//! cluster.heal();
//! cluster.run_until_quiescent(Duration::from_secs(1)).unwrap();
//! cluster.verify_convergence().unwrap();
//! assert_eq!(
//!     cluster.read(1, "counters", "page_views", "value").unwrap(),
//!     AlgebraicValue::Integer(1)
//! );
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::AlgebraicTransaction;
use rhizo_sim::{
    MAX_NODES, NodeCtx, NodeRef, SimError, SimStats, SimTime, SimulatedCluster, SimulatedNode,
    SimulationBuilder,
};
use rhizo_txn::raft::{ProposalId, RaftConfig, RaftError};
use rhizo_txn::{
    Backend, CommitOutcome, Engine, EngineConfig, Submission, SyncPolicy, Transaction,
    TransactionMode, TxnError,
};

use crate::power::{PowerSwitch, PoweredStorage};
use crate::{ClusterError, Result};

#[cfg(test)]
mod chaos_tests;
#[cfg(test)]
mod raft_tests;
#[cfg(test)]
mod tests;

/// How an [`EngineCluster`] sets up its engines.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Columns every engine declares at open.
    pub schema: Schema,
    /// Who orders coordinated transactions. Under Raft, [`RaftConfig::seed`] is mixed with the
    /// simulation's seed, so that one seed replays a run and different seeds vary elections.
    pub backend: Backend,
    /// When each engine makes its commits durable.
    pub sync: SyncPolicy,
    /// The directory holding one data directory per node (named after the node). `None`: a
    /// temporary directory the cluster owns and deletes when dropped.
    pub root: Option<PathBuf>,
    /// A node runs an anti-entropy round with the peers it believes behind every this many
    /// timer ticks (at least 1). Under Raft the timer also drives elections and heartbeats,
    /// so a shorter sync interval with a larger value here keeps gossip from dominating.
    pub anti_entropy_every: u32,
    /// The most virtual time [`EngineCluster::commit`] runs the simulation for, waiting for a
    /// leader and for the outcome of a coordinated transaction.
    pub commit_timeout: Duration,
}

impl ClusterConfig {
    /// The single-node backend (coordination-free transactions only, in a cluster), sync on
    /// every commit, a temporary root, anti-entropy on every tick, a 10 s commit timeout.
    pub fn new(schema: Schema) -> Self {
        Self {
            schema,
            backend: Backend::SingleNode,
            sync: SyncPolicy::EveryCommit,
            root: None,
            anti_entropy_every: 1,
            commit_timeout: Duration::from_secs(10),
        }
    }

    /// With this backend.
    #[must_use]
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// With this sync policy.
    #[must_use]
    pub fn with_sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// With the nodes' data directories under `root`.
    #[must_use]
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }
}

/// What the nodes report to their cluster: kept outside the nodes, so it survives crashes.
#[derive(Debug, Default)]
struct Shared {
    /// Decided proposals, until the cluster's caller takes them.
    outcomes: BTreeMap<ProposalId, rhizo_txn::Result<CommitOutcome>>,
    /// Errors nodes met while handling events (no node panics on them).
    faults: Vec<(NodeId, String)>,
    /// Engines opened by the cluster for the simulator's next spawns: opening can fail, and a
    /// spawn function cannot, so the cluster opens first and the spawn only takes.
    opened: VecDeque<(Engine, PowerSwitch)>,
}

/// The reports of the nodes. The cluster runs its simulation on one thread at a time (it is
/// `Send`, so that a Python object holding it may move between threads), so the lock is never
/// contended.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The simulator's view of an engine: messages are the engine's encoded bytes, and what
/// survives a crash is what its engine made durable in its data directory (a crash is a power
/// loss: unsynced bytes are gone, and the dying engine writes nothing more).
#[derive(Debug)]
pub struct EngineNode {
    engine: Engine,
    power: PowerSwitch,
    dir: PathBuf,
    ticks: u32,
    anti_entropy_every: u32,
    shared: Arc<Mutex<Shared>>,
}

impl EngineNode {
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn fault(&self, what: &str, err: &TxnError) {
        let node = self.engine.node_id();
        lock(&self.shared)
            .faults
            .push((node, format!("{what}: {err}")));
    }

    /// Hands the engine's decided proposals to the cluster and its messages to the network.
    fn after(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        // Messages first: taking them drains the Raft node, which decides outcomes.
        let outgoing = self.engine.outgoing();
        let outcomes = self.engine.take_outcomes();
        lock(&self.shared).outcomes.extend(outcomes);
        match outgoing {
            Ok(messages) => {
                for (to, bytes) in messages {
                    // Only members are addressed, and every member is a simulated node.
                    let _ = ctx.send(to, bytes);
                }
            }
            Err(err) => self.fault("outgoing", &err),
        }
    }
}

impl SimulatedNode for EngineNode {
    type Message = Vec<u8>;
    type Durable = PathBuf;
    type History = ();

    fn on_start(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        self.after(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: Vec<u8>, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        if let Err(err) = self.engine.receive_bytes(from, &msg) {
            self.fault(&format!("receive from {from}"), &err);
        }
        self.after(ctx);
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        self.ticks = self.ticks.wrapping_add(1);
        if let Err(err) = self.engine.tick() {
            self.fault("tick", &err);
        }
        if self.ticks.is_multiple_of(self.anti_entropy_every.max(1)) {
            // Only peers believed behind: a cluster where everyone holds everything goes quiet.
            let behind = self.engine.peers_behind();
            for peer in ctx.gossip_peers() {
                if behind.contains(&peer)
                    && let Err(err) = self.engine.sync_with(peer)
                {
                    self.fault("anti-entropy", &err);
                }
            }
        }
        self.after(ctx);
    }

    fn on_crash(&mut self) {
        if let Err(err) = self.power.pull_plug() {
            self.fault("power loss", &err);
        }
    }

    fn durable(&self) -> PathBuf {
        self.dir.clone()
    }

    fn is_idle(&self) -> bool {
        // A Raft leader heartbeats forever: such clusters settle by `EngineCluster::settled`.
        self.engine.raft().is_none() && self.engine.is_idle()
    }

    fn message_bytes(msg: &Vec<u8>) -> usize {
        msg.len()
    }
}

/// Opens an engine on `dir` behind a power switch.
fn open_powered(dir: &Path, config: &EngineConfig) -> Result<(Engine, PowerSwitch)> {
    let (storage, power) = PoweredStorage::open(dir)?;
    let engine = Engine::open_with_storage(Box::new(storage), config.clone())?;
    Ok((engine, power))
}

/// The Raft leader of the highest term among running nodes, by index.
fn leader_of(sim: &SimulatedCluster<EngineNode>) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, _) in sim.node_ids().iter().enumerate() {
        let Some(raft) = sim.node(i).ok().and_then(|n| n.engine.raft()) else {
            continue;
        };
        if raft.is_leader() && best.is_none_or(|(term, _)| raft.term() > term) {
            best = Some((raft.term(), i));
        }
    }
    best.map(|(_, i)| i)
}

/// Whether nothing is in flight and every running engine is idle and, under Raft, has applied
/// everything its leader committed.
fn settled(sim: &SimulatedCluster<EngineNode>) -> bool {
    let raft = sim.running_nodes().any(|(_, n)| n.engine.raft().is_some());
    let commit = match leader_of(sim) {
        Some(l) => sim
            .node(l)
            .ok()
            .and_then(|n| n.engine.raft())
            .map_or(0, |r| r.commit_index()),
        None if raft => return false,
        None => 0,
    };
    sim.in_flight() == 0
        && sim.running_nodes().all(|(_, n)| {
            n.engine.is_idle() && n.engine.raft().is_none_or(|r| r.applied() >= commit)
        })
}

/// A simulated cluster of engines, each on its own data directory.
///
/// Nodes are named by index or [`NodeId`] (`n0`, `n1`, …), as in [`SimulatedCluster`].
pub struct EngineCluster {
    // Declared before `_temp` so that the engines close before their directories go.
    sim: SimulatedCluster<EngineNode>,
    shared: Arc<Mutex<Shared>>,
    /// Each node's engine configuration, for reopening it at a restart.
    configs: Vec<EngineConfig>,
    /// Proposals submitted through the cluster whose outcome has not arrived.
    pending: BTreeSet<ProposalId>,
    commit_timeout: Duration,
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl EngineCluster {
    /// Builds the simulation `builder` describes with one engine per node, opened (or
    /// recovered, under a given root) on `root/<node>`.
    pub fn new(builder: &SimulationBuilder, config: ClusterConfig) -> Result<Self> {
        let count = builder.configured_nodes();
        // Checked before any engine is opened (the builder checks again).
        if count == 0 {
            return Err(SimError::NoNodes.into());
        }
        if count > MAX_NODES {
            return Err(SimError::TooManyNodes {
                requested: count,
                max: MAX_NODES,
            }
            .into());
        }
        let (root, temp) = match config.root {
            Some(root) => (root, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("rhizo-cluster-")
                    .tempdir()
                    .map_err(|source| TxnError::Io {
                        op: "create a temporary directory",
                        name: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let ids: Vec<NodeId> = (0..count as u32).map(NodeId::numbered).collect();
        let backend = match config.backend {
            Backend::Raft(raft) => Backend::Raft(RaftConfig {
                seed: raft.seed ^ builder.configured_seed(),
                ..raft
            }),
            single => single,
        };
        let configs: Vec<EngineConfig> = ids
            .iter()
            .map(|&id| EngineConfig {
                backend: backend.clone(),
                // Virtual time: a waiting group commit is synced at the engine's next tick.
                background_flush: false,
                ..EngineConfig::new(id)
                    .with_schema(config.schema.clone())
                    .with_members(ids.iter().copied())
                    .with_sync(config.sync)
            })
            .collect();
        let shared = Arc::new(Mutex::new(Shared::default()));
        for config in &configs {
            let opened = open_powered(&root.join(config.node_id.to_string()), config)?;
            lock(&shared).opened.push_back(opened);
        }
        let spawn_shared = Arc::clone(&shared);
        let spawn_root = root.clone();
        let anti_entropy_every = config.anti_entropy_every;
        let built = builder.build(move |id: NodeId, durable: Option<PathBuf>| {
            let (engine, power) = lock(&spawn_shared)
                .opened
                .pop_front()
                .expect("the cluster opens every engine before the simulator spawns its node");
            EngineNode {
                engine,
                power,
                dir: durable.unwrap_or_else(|| spawn_root.join(id.to_string())),
                ticks: 0,
                anti_entropy_every,
                shared: Arc::clone(&spawn_shared),
            }
        });
        let sim = match built {
            Ok(sim) => sim,
            Err(err) => {
                lock(&shared).opened.clear();
                return Err(err.into());
            }
        };
        Ok(Self {
            sim,
            shared,
            configs,
            pending: BTreeSet::new(),
            commit_timeout: config.commit_timeout,
            root,
            _temp: temp,
        })
    }

    fn index(&self, node: impl Into<NodeRef>) -> Result<usize> {
        let node = node.into();
        let ids = self.sim.node_ids();
        let found = match node {
            NodeRef::Index(i) => (i < ids.len()).then_some(i),
            NodeRef::Id(id) => ids.iter().position(|n| *n == id),
        };
        found.ok_or_else(|| {
            SimError::UnknownNode {
                node: node.to_string(),
            }
            .into()
        })
    }

    // ------------------------------------------------------------------ transactions

    /// Submits a transaction on `node`, built by `build`: a coordination-free one commits at
    /// once; a coordinated one on Raft is proposed ([`Submission::Pending`]) and decided as
    /// the simulation runs (see [`EngineCluster::take_outcome`]).
    pub fn submit(
        &mut self,
        node: impl Into<NodeRef>,
        mode: TransactionMode,
        build: impl FnOnce(&mut Transaction<'_>),
    ) -> Result<Submission> {
        self.submit_with(node.into(), |engine| {
            let mut tx = engine.transaction(mode);
            build(&mut tx);
            tx.commit()
        })
    }

    /// [`EngineCluster::submit`] of a transaction built elsewhere.
    pub fn submit_tx(
        &mut self,
        node: impl Into<NodeRef>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<Submission> {
        self.submit_with(node.into(), |engine| engine.submit(mode, tx))
    }

    fn submit_with(
        &mut self,
        node: NodeRef,
        submit: impl FnOnce(&mut Engine) -> rhizo_txn::Result<Submission>,
    ) -> Result<Submission> {
        let submitted = self.sim.with_node(node, |n, ctx| {
            let submitted = submit(&mut n.engine);
            n.after(ctx);
            submitted
        })??;
        if let Submission::Pending(id) = submitted {
            self.pending.insert(id);
        }
        Ok(submitted)
    }

    /// Declares `table.column` on `node` ([`Engine::declare_column`]): under Raft the change is
    /// ordered by the log, and decided as the simulation runs like a coordinated transaction.
    pub fn declare_column(
        &mut self,
        node: impl Into<NodeRef>,
        table: &str,
        column: &str,
        merge: MergeType,
        value_type: ValueType,
    ) -> Result<Submission> {
        self.submit_with(node.into(), |engine| {
            engine.declare_column(table, column, merge, value_type)
        })
    }

    /// Commits a transaction on `node`, built by `build`, running the simulation until it is
    /// decided: at once for a coordination-free one; for a coordinated one on Raft, once the
    /// log decides it (while no leader is known it retries every timer tick). Gives up after
    /// the configured commit timeout of virtual time with [`TxnError::NoLeader`] or
    /// [`TxnError::Undecided`] (the outcome may still arrive: [`EngineCluster::take_outcome`]).
    pub fn commit(
        &mut self,
        node: impl Into<NodeRef>,
        mode: TransactionMode,
        mut build: impl FnMut(&mut Transaction<'_>),
    ) -> Result<CommitOutcome> {
        self.commit_with(node.into(), |engine| {
            let mut tx = engine.transaction(mode);
            build(&mut tx);
            tx.commit()
        })
    }

    /// [`EngineCluster::commit`] of a transaction built elsewhere.
    pub fn commit_tx(
        &mut self,
        node: impl Into<NodeRef>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<CommitOutcome> {
        self.commit_with(node.into(), |engine| engine.submit(mode, tx.clone()))
    }

    fn commit_with(
        &mut self,
        node: NodeRef,
        mut submit: impl FnMut(&mut Engine) -> rhizo_txn::Result<Submission>,
    ) -> Result<CommitOutcome> {
        let deadline = self.sim.now().saturating_add(self.commit_timeout);
        loop {
            match self.submit_with(node, &mut submit) {
                Ok(Submission::Committed(outcome)) => return Ok(outcome),
                Ok(Submission::Pending(id)) => {
                    let shared = Arc::clone(&self.shared);
                    let left = deadline.saturating_since(self.sim.now());
                    // A deadline leaves the proposal pending: reported below.
                    let _ = self
                        .sim
                        .run_until(left, |_| lock(&shared).outcomes.contains_key(&id));
                    let outcome = self
                        .take_outcome(id)
                        .unwrap_or(Err(TxnError::Undecided { proposal: id }));
                    return Ok(outcome?);
                }
                // Nothing was proposed: wait a tick for an election, then try again.
                Err(ClusterError::Txn(TxnError::NoLeader)) if self.sim.now() < deadline => {
                    let Some(tick) = self.sim.sync_interval() else {
                        return Err(TxnError::NoLeader.into());
                    };
                    self.sim.run_for(tick);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The outcome of a proposal submitted through the cluster, once decided (then forgotten).
    /// A proposal whose node crashed before its outcome arrived is answered with
    /// [`RaftError::Interrupted`]: it may or may not have committed.
    pub fn take_outcome(&mut self, id: ProposalId) -> Option<rhizo_txn::Result<CommitOutcome>> {
        let outcome = lock(&self.shared).outcomes.remove(&id)?;
        self.pending.remove(&id);
        Some(outcome)
    }

    /// Every decided outcome not taken yet.
    pub fn take_outcomes(&mut self) -> Vec<(ProposalId, rhizo_txn::Result<CommitOutcome>)> {
        let outcomes = std::mem::take(&mut lock(&self.shared).outcomes);
        for id in outcomes.keys() {
            self.pending.remove(id);
        }
        outcomes.into_iter().collect()
    }

    /// Reads one cell on `node`.
    pub fn read(
        &self,
        node: impl Into<NodeRef>,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        Ok(self.engine(node)?.read(table, row, column)?)
    }

    /// Reads one cell on `node` for transaction `tx` ([`Engine::read_into`]: a coordinated
    /// transaction's register reads join its read set).
    pub fn read_into(
        &self,
        node: impl Into<NodeRef>,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        Ok(self.engine(node)?.read_into(mode, tx, table, row, column)?)
    }

    /// The engine of a running node.
    pub fn engine(&self, node: impl Into<NodeRef>) -> Result<&Engine> {
        Ok(&self.sim.node(node)?.engine)
    }

    /// The Raft leader (of the highest term) among running nodes, by index.
    pub fn leader(&self) -> Option<usize> {
        leader_of(&self.sim)
    }

    // ------------------------------------------------------------------ faults

    /// Cuts the link between `a` and `b`, both ways.
    pub fn partition(&mut self, a: impl Into<NodeRef>, b: impl Into<NodeRef>) -> Result<()> {
        Ok(self.sim.partition(a, b)?)
    }

    /// Cuts the link from `from` to `to` only.
    pub fn partition_one_way(
        &mut self,
        from: impl Into<NodeRef>,
        to: impl Into<NodeRef>,
    ) -> Result<()> {
        Ok(self.sim.partition_one_way(from, to)?)
    }

    /// Cuts every link of `node`.
    pub fn isolate(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        Ok(self.sim.isolate(node)?)
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.sim.heal();
    }

    /// Crashes `node` as a power loss: only what its engine made durable survives in its data
    /// directory. Its proposals still waiting for an outcome are answered with
    /// [`RaftError::Interrupted`].
    pub fn crash(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        let index = self.index(node)?;
        self.sim.crash(index)?;
        let id = self.sim.node_ids()[index];
        let lost: Vec<ProposalId> = self
            .pending
            .iter()
            .filter(|p| p.node == id)
            .copied()
            .collect();
        let mut shared = lock(&self.shared);
        for proposal in lost {
            self.pending.remove(&proposal);
            shared
                .outcomes
                .entry(proposal)
                .or_insert_with(|| Err(TxnError::Raft(Box::new(RaftError::Interrupted))));
        }
        Ok(())
    }

    /// Restarts a crashed `node`: its engine is reopened from its data directory (recovering
    /// every durable commit) and rejoins the cluster.
    pub fn restart(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        let index = self.index(node)?;
        let id = self.sim.node_ids()[index];
        let Some(dir) = self.sim.durable_state(index)?.cloned() else {
            return Err(SimError::NodeNotCrashed { node: id }.into());
        };
        let opened = open_powered(&dir, &self.configs[index])?;
        lock(&self.shared).opened.push_back(opened);
        let restarted = self.sim.restart(index);
        lock(&self.shared).opened.clear();
        Ok(restarted?)
    }

    /// Whether `node` is crashed.
    pub fn is_crashed(&self, node: impl Into<NodeRef>) -> Result<bool> {
        Ok(self.sim.is_crashed(node)?)
    }

    // ------------------------------------------------------------------ running

    /// Runs the next event; `false` if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        self.sim.step()
    }

    /// Runs `span` of virtual time.
    pub fn run_for(&mut self, span: Duration) {
        self.sim.run_for(span);
    }

    /// [`EngineCluster::run_for`] up to the instant `until`, processing at most `max_events`
    /// events: `true` once `until` is reached, `false` if the budget ran out first. A run cut
    /// into budgets is the uninterrupted run (see [`SimulatedCluster::run_to`]), so a caller
    /// can look for an interrupt between budgets.
    pub fn run_to(&mut self, until: SimTime, max_events: usize) -> bool {
        self.sim.run_to(until, max_events)
    }

    /// Runs until nothing is in flight and every running engine is idle (under Raft: has
    /// applied everything its leader committed), for at most `max`. Returns the time when that
    /// held. Crashed or cut-off members keep the others busy: restart and heal first.
    pub fn run_until_quiescent(&mut self, max: Duration) -> Result<SimTime> {
        Ok(self.sim.run_until(max, settled)?)
    }

    /// [`EngineCluster::run_until_quiescent`] up to the instant `until`, processing at most
    /// `max_events` events: `None` if the budget ran out first (calling it again continues the
    /// same run).
    pub fn run_until_quiescent_within(
        &mut self,
        until: SimTime,
        max_events: usize,
    ) -> Option<Result<SimTime>> {
        let result = self.sim.run_until_within(until, max_events, settled)?;
        Some(result.map_err(ClusterError::from))
    }

    /// Whether the cluster is settled as [`EngineCluster::run_until_quiescent`] waits for.
    pub fn is_quiescent(&self) -> bool {
        settled(&self.sim)
    }

    /// Checks that every running engine holds the same replicated state (equal fingerprints).
    pub fn verify_convergence(&self) -> Result<()> {
        Ok(self.sim.verify_convergence_by(|n| n.engine.fingerprint())?)
    }

    // ------------------------------------------------------------------ observation

    /// The network's counters.
    pub fn stats(&self) -> &SimStats {
        self.sim.stats()
    }

    /// Errors nodes met while handling messages and timers (empty for a healthy run), as
    /// `(node, text)`.
    pub fn faults(&self) -> Vec<(NodeId, String)> {
        lock(&self.shared).faults.clone()
    }

    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        self.sim.now()
    }

    /// Every node, by index.
    pub fn node_ids(&self) -> &[NodeId] {
        self.sim.node_ids()
    }

    /// The directory holding the nodes' data directories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The simulation underneath (trace hash, seed, link state…).
    pub fn simulation(&self) -> &SimulatedCluster<EngineNode> {
        &self.sim
    }

    /// The simulation underneath, mutably (a workload's random stream, loss-rate changes…).
    pub fn simulation_mut(&mut self) -> &mut SimulatedCluster<EngineNode> {
        &mut self.sim
    }
}
