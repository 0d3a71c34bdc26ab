//! The `rhizo-commit` [`Replica`] as a simulated node, and the cluster verbs that drive it.
//!
//! The adapter follows the replica's driver contract and nothing more: after every call that
//! may produce output it takes the replica's `Ready`, appends the records to the node's durable
//! log, then sends the messages, then acknowledges the committed dots. A crash keeps exactly
//! that log; a restart is `Replica::recover` from it.

use std::collections::BTreeMap;
use std::time::Duration;

use rhizo_algebra::{AlgebraicValue, Schema};
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{
    AlgebraicTransaction, CellKey, CommitReceipt, LocalCommitError, Message, PreparedTransaction,
    Ready, Record, Replica, ReplicaConfig, ReplicaStats, VersionedUpdate,
};

use crate::history::History;
use crate::{
    GossipStrategy, NodeCtx, NodeRef, Result, SimError, SimTime, SimulatedCluster, SimulatedNode,
};

mod durable_log;
#[cfg(test)]
mod tests;

pub use durable_log::DurableLog;

/// One replica on the simulated network: the real [`Replica`] plus the durable log its driver
/// keeps.
///
/// **Gossip policy.** On each timer the node does nothing if it is idle (see
/// [`ReplicaNode::is_idle`](SimulatedNode::is_idle)). Otherwise it syncs with the peers its
/// replica believes lack something it holds ([`Replica::peers_behind`]): all of them under
/// `FullBroadcast`, `fanout` of them drawn from the node's seeded stream under `PushPull`.
/// Choosing among peers believed behind, rather than among all peers, spends no exchange on a
/// peer known to be up to date; the belief is always pessimistic (reported clocks only grow and
/// are durable at their sender), so no peer that lacks something is ever skipped for good.
#[derive(Debug)]
pub struct ReplicaNode {
    replica: Replica,
    /// The durable log: every record made durable since the last snapshot record (included),
    /// encoded.
    log: DurableLog,
    /// Problems the replica reported while being driven (a refused message, a failed recovery).
    /// A correct replica on this network reports none; checkers treat any as a violation.
    faults: Vec<String>,
    /// Whether acknowledged updates are handed to the history (off for benchmarks).
    recording: bool,
    /// The lists of the replica's output being carried out, kept so that they keep their
    /// capacity.
    ready: Ready,
    /// This round's exchanges still to start, the next last.
    pulls: Vec<NodeId>,
    /// The partner of the exchange started last, until its answer arrives.
    pulling: Option<NodeId>,
    /// When the exchange started last started.
    pull_started: SimTime,
    /// When the next of `pulls` starts even if the exchange in progress has not been answered.
    next_pull_at: SimTime,
    /// The longest an exchange may wait for its answer this round: the sync interval shared
    /// among the round's exchanges.
    pull_share: Duration,
    /// The slowest answer to an exchange this node has seen (`None` before the first).
    slowest_answer: Option<Duration>,
}

/// What a node's commit gives: the receipt and, when recording, the acknowledged update (boxed:
/// the result is moved through every layer of a simulated commit, and is usually `None`).
pub type NodeCommit =
    std::result::Result<(CommitReceipt, Option<Box<VersionedUpdate>>), LocalCommitError>;

impl ReplicaNode {
    /// A fresh replica node.
    pub fn new(id: NodeId, schema: Schema, config: ReplicaConfig) -> Self {
        Self::with_replica(Replica::new(id, schema, config), DurableLog::new())
    }

    fn with_replica(replica: Replica, log: DurableLog) -> Self {
        Self {
            replica,
            log,
            faults: Vec::new(),
            recording: true,
            ready: Ready::default(),
            pulls: Vec::new(),
            pulling: None,
            pull_started: SimTime::ZERO,
            next_pull_at: SimTime::ZERO,
            pull_share: Duration::ZERO,
            slowest_answer: None,
        }
    }

    /// The node rebuilt from its durable log by [`Replica::recover`]. A log that does not
    /// decode, or that the replica refuses, leaves a fresh replica with the failure listed in
    /// [`faults`](Self::faults).
    pub fn recover(id: NodeId, schema: Schema, config: ReplicaConfig, log: DurableLog) -> Self {
        // Decoded whole before replaying: a replica must not be rebuilt from part of its log.
        let recovered = log
            .records()
            .collect::<Result<Vec<Record>>>()
            .map_err(|err| err.to_string())
            .and_then(|records| {
                Replica::recover(id, schema.clone(), config.clone(), records)
                    .map_err(|err| err.to_string())
            });
        match recovered {
            Ok(replica) => Self::with_replica(replica, log),
            Err(err) => {
                let mut node = Self::new(id, schema, config);
                node.faults.push(format!("recovery of {id} failed: {err}"));
                node
            }
        }
    }

    /// A spawn function for [`SimulationBuilder::build`](crate::SimulationBuilder::build):
    /// fresh replicas at build time, recovered ones after a crash.
    pub(crate) fn spawner(
        schema: Schema,
        config: ReplicaConfig,
    ) -> impl FnMut(NodeId, Option<DurableLog>) -> ReplicaNode + 'static {
        move |id, durable| match durable {
            None => ReplicaNode::new(id, schema.clone(), config.clone()),
            Some(log) => ReplicaNode::recover(id, schema.clone(), config.clone(), log),
        }
    }

    /// The replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The durable log as it stands.
    pub fn durable_log(&self) -> &DurableLog {
        &self.log
    }

    /// Problems reported while driving the replica (empty for a correct replica).
    pub fn faults(&self) -> &[String] {
        &self.faults
    }

    /// Whether acknowledged updates are copied out for the history.
    pub fn set_recording(&mut self, recording: bool) {
        self.recording = recording;
    }

    /// Commits `tx` on the replica and carries out its outputs. Returns the receipt and, when
    /// recording, the acknowledged update as it was made durable (boxed: the result is moved
    /// through every layer of a simulated commit, and is usually `None`).
    pub fn commit(
        &mut self,
        tx: AlgebraicTransaction,
        ctx: &mut NodeCtx<'_, Message>,
    ) -> NodeCommit {
        let receipt = self.replica.commit(tx)?;
        let acknowledged = self.drain(ctx);
        Ok((receipt, acknowledged))
    }

    /// [`commit`](Self::commit) of a transaction over prepared cells
    /// ([`Replica::commit_prepared`]).
    pub fn commit_prepared(
        &mut self,
        tx: PreparedTransaction<'_>,
        ctx: &mut NodeCtx<'_, Message>,
    ) -> NodeCommit {
        let receipt = self.replica.commit_prepared(tx)?;
        let acknowledged = self.drain(ctx);
        Ok((receipt, acknowledged))
    }

    /// Counts `member` among the replica's members ([`Replica::add_member`]) and carries out
    /// what that emits. Membership is the driver's configuration, not part of the durable log:
    /// a restarted node starts from its configured members, and whoever drives membership
    /// changes applies them again after a restart.
    pub fn add_member(&mut self, member: NodeId, ctx: &mut NodeCtx<'_, Message>) {
        self.replica.add_member(member);
        self.drain(ctx);
    }

    /// Stops counting `member` ([`Replica::remove_member`], which collects what the remaining
    /// members have seen) and carries out what that emits. See [`add_member`](Self::add_member)
    /// on restarts.
    pub fn remove_member(&mut self, member: NodeId, ctx: &mut NodeCtx<'_, Message>) {
        self.replica.remove_member(member);
        self.drain(ctx);
    }

    /// Starts an anti-entropy exchange with `peer` now (outside the timer) and sends it.
    pub fn sync_with(&mut self, peer: NodeId, ctx: &mut NodeCtx<'_, Message>) {
        self.replica.sync_with(peer);
        self.drain(ctx);
    }

    /// Carries out the replica's `Ready` in the contract's order: records made durable, then
    /// messages sent, then commits acknowledged. Returns the acknowledged update if recording
    /// (a commit acknowledges exactly one).
    fn drain(&mut self, ctx: &mut NodeCtx<'_, Message>) -> Option<Box<VersionedUpdate>> {
        let start = self.log.take_ready(&mut self.replica, &mut self.ready);
        let Ready {
            messages,
            committed,
            ..
        } = &mut self.ready;
        let mut acknowledged = None;
        if self.recording {
            for record in self.log.unsettled(start) {
                if let Record::Commit(update) = record
                    && committed.contains(&update.dot)
                {
                    // Drained straight after the commit: the replica's clock is the commit's.
                    let clock = self.replica.clock().clone();
                    acknowledged = Some(Box::new(update.clone().into_update(clock)));
                }
            }
        }
        self.log.settle(start);
        // A commit sends nothing: skip building (and dropping) a drain of an empty list.
        if !messages.is_empty() {
            for (to, msg) in messages.drain(..) {
                if let Err(err) = ctx.send(to, msg) {
                    self.faults.push(format!("send: {err}"));
                }
            }
        }
        committed.clear();
        acknowledged
    }
}

impl ReplicaNode {
    /// Starts the next of this round's push-pull exchanges, if any is left.
    ///
    /// A round's exchanges run one after another, not all at once: each starts when the one
    /// before is answered, or when that answer is overdue (lost, or a slow link): after twice
    /// the slowest answer this node has seen, and at most the sync interval shared among the
    /// round's exchanges.
    ///
    /// Started together, every partner would answer the same digest, so each would send much of
    /// what the others send too. Started in turn, each partner sends only what the ones before
    /// have not brought. (An answer that comes after its deadline is not timed: the node has
    /// moved on to the next exchange.)
    ///
    /// The deadline keeps a round's exchanges going when messages are lost: chained on answers
    /// alone, one lost message would end the round's exchanges, and with a fixed share of the
    /// interval per exchange, a lost answer would hold the next exchange back so long that
    /// convergence falls into the next round. Scaling the deadline by the slowest answer seen
    /// adapts it to the latency model instead.
    fn start_pull(&mut self, ctx: &mut NodeCtx<'_, Message>) {
        let Some(peer) = self.pulls.pop() else {
            return;
        };
        self.pulling = Some(peer);
        self.pull_started = ctx.now();
        self.replica.sync_with(peer);
        if !self.pulls.is_empty() {
            let patience = match self.slowest_answer {
                Some(slowest) => (slowest * 2).min(self.pull_share),
                None => self.pull_share,
            };
            self.next_pull_at = ctx.now().saturating_add(patience);
            ctx.wake_after(patience);
        }
    }
}

impl SimulatedNode for ReplicaNode {
    type Message = Message;
    type Durable = DurableLog;
    type History = History;

    fn on_message(&mut self, from: NodeId, msg: Message, ctx: &mut NodeCtx<'_, Message>) {
        if let Err(err) = self.replica.step(from, msg) {
            self.faults
                .push(format!("{} refused a message from {from}: {err}", ctx.id()));
        }
        if self.pulling == Some(from) {
            // The exchange in progress is answered: the next one starts from what it brought.
            let answer = ctx.now().saturating_since(self.pull_started);
            self.slowest_answer = self.slowest_answer.max(Some(answer));
            self.pulling = None;
            self.start_pull(ctx);
        }
        self.drain(ctx);
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Message>) {
        if self.is_idle() {
            return;
        }
        let mut partners: Vec<NodeId> = self.replica.peers_behind().collect();
        ctx.choose_among(&mut partners);
        if let GossipStrategy::FullBroadcast = ctx.gossip_strategy() {
            for peer in partners {
                self.replica.sync_with(peer);
            }
        } else {
            // One exchange after another (see `start_pull`); whatever the last round has not
            // started gives way to this one.
            let exchanges = u32::try_from(partners.len()).unwrap_or(u32::MAX).max(1);
            self.pull_share = ctx.sync_interval().unwrap_or_default() / exchanges;
            partners.reverse();
            self.pulls = partners;
            self.start_pull(ctx);
        }
        self.drain(ctx);
    }

    fn on_wake(&mut self, ctx: &mut NodeCtx<'_, Message>) {
        // Only the wake-up of the exchange started last counts: an earlier one's exchange was
        // answered in time, and the next exchange has started already.
        if self.pulls.is_empty() || ctx.now() < self.next_pull_at {
            return;
        }
        // An idle node starts no exchange, as its timer would not: a cluster of idle nodes
        // with nothing in flight stays silent. (Only here: the timer has just checked, and an
        // answer is a message still being handled, so the cluster is not silent yet.)
        if self.is_idle() {
            self.pulls.clear();
            return;
        }
        self.start_pull(ctx);
        self.drain(ctx);
    }

    fn durable(&self) -> DurableLog {
        self.log.clone()
    }

    /// Idle when nothing waits in the buffer and the replica either holds nothing (so it has
    /// nothing to tell; peers that hold something reach it) or believes every member holds all
    /// it holds.
    fn is_idle(&self) -> bool {
        self.replica.buffered() == 0 && (self.replica.clock().is_empty() || self.replica.is_idle())
    }

    fn message_bytes(msg: &Message) -> usize {
        // Counted by encoding the delta once and keeping the bytes with it: the receiver logs
        // the delta it applies encoded, and copies them (`DurableLog`).
        rhizo_commit::wire::encoded_message_len_keeping(msg)
    }
}

/// A replica's visible state, as [`SimulatedCluster::get_node_state`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// The node.
    pub node: NodeId,
    /// Everything it has delivered.
    pub clock: VectorClock,
    /// Every cell it holds and its value, in key order.
    pub values: BTreeMap<CellKey, std::result::Result<AlgebraicValue, LocalCommitError>>,
    /// The FNV-1a hash of its canonical state.
    pub fingerprint: u64,
}

/// Replica counters summed (or maximised) over the running nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplicaTotals {
    /// The most deltas that ever waited in one replica's buffer at once.
    pub(crate) peak_buffered: u64,
    /// Deltas waiting in buffers now.
    pub(crate) buffered: u64,
    /// Deltas applied, summed.
    pub(crate) deltas_applied: u64,
    /// Deltas that held nothing new, summed.
    pub(crate) deltas_redundant: u64,
    /// Buffered deltas dropped because a buffer was full, summed.
    pub(crate) deltas_dropped: u64,
    /// Snapshots sent, summed.
    pub(crate) snapshots_sent: u64,
}

impl crate::SimulationBuilder {
    /// Builds a cluster of replica nodes under `schema`, every node a member of every
    /// replica's configuration (the default [`ReplicaConfig`] otherwise).
    ///
    /// ```
    /// # use rhizo_sim::SimulationBuilder;
    /// # use rhizo_sim::workload::schema;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations};
    /// # use std::time::Duration;
    /// let mut cluster = SimulationBuilder::new().nodes(3).seed(7).build_replicas(schema()).unwrap();
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "r0", "value", 1);
    /// cluster.commit_on_node(0, tx).unwrap(); // durable and acknowledged on node 0
    /// cluster.run_until_converged(Duration::from_secs(1), Duration::from_millis(10)).unwrap();
    /// cluster.verify_convergence().unwrap(); // every replica holds the same bytes
    /// ```
    pub fn build_replicas(&self, schema: Schema) -> Result<SimulatedCluster<ReplicaNode>> {
        self.build_replicas_with(schema, ReplicaConfig::default())
    }

    /// [`build_replicas`](Self::build_replicas) with a replica configuration; its `members`
    /// are replaced by the cluster's nodes.
    pub fn build_replicas_with(
        &self,
        schema: Schema,
        mut config: ReplicaConfig,
    ) -> Result<SimulatedCluster<ReplicaNode>> {
        config.members = (0..self.configured_nodes() as u32)
            .map(NodeId::numbered)
            .collect();
        self.build(ReplicaNode::spawner(schema, config))
    }
}

impl SimulatedCluster<ReplicaNode> {
    /// Commits `tx` on `node` now. Its records are made durable and it is acknowledged before
    /// this returns. Every attempt, and every acknowledged update, is recorded in the history.
    pub fn commit_on_node(
        &mut self,
        node: impl Into<NodeRef>,
        tx: AlgebraicTransaction,
    ) -> Result<CommitReceipt> {
        let attempt = self.history().is_recording().then(|| tx.clone());
        self.commit_recorded(node, attempt, |n, ctx| n.commit(tx, ctx))
    }

    /// [`commit_on_node`](Self::commit_on_node) of a transaction over prepared cells. `attempt`
    /// gives the same transaction over keys, for the history; it is called only when recording.
    pub fn commit_prepared_on_node(
        &mut self,
        node: impl Into<NodeRef>,
        tx: PreparedTransaction<'_>,
        attempt: impl FnOnce() -> AlgebraicTransaction,
    ) -> Result<CommitReceipt> {
        let attempt = self.history().is_recording().then(attempt);
        self.commit_recorded(node, attempt, |n, ctx| n.commit_prepared(tx, ctx))
    }

    fn commit_recorded(
        &mut self,
        node: impl Into<NodeRef>,
        attempt: Option<AlgebraicTransaction>,
        commit: impl FnOnce(&mut ReplicaNode, &mut NodeCtx<'_, Message>) -> NodeCommit,
    ) -> Result<CommitReceipt> {
        let recording = attempt.is_some();
        let outcome = self.with_node(node, |n, ctx| {
            n.set_recording(recording);
            let at = ctx.now();
            (commit(n, ctx), ctx.id(), at)
        })?;
        let (result, id, at) = outcome;
        match result {
            Ok((receipt, update)) => {
                if let Some(tx) = attempt {
                    self.history_mut().record_attempt(at, id, tx, true);
                }
                if let Some(update) = update {
                    self.history_mut().record_acknowledged(at, id, *update);
                }
                Ok(receipt)
            }
            Err(source) => {
                if let Some(tx) = attempt {
                    self.history_mut().record_attempt(at, id, tx, false);
                }
                Err(SimError::Commit { node: id, source })
            }
        }
    }

    /// Makes `node` count `member` among its members ([`ReplicaNode::add_member`]); what it
    /// sends is routed now.
    pub fn add_member_on_node(
        &mut self,
        node: impl Into<NodeRef>,
        member: impl Into<NodeRef>,
    ) -> Result<()> {
        let member = self.node_id(member)?;
        self.with_node(node, |n, ctx| n.add_member(member, ctx))
    }

    /// Makes `node` stop counting `member` ([`ReplicaNode::remove_member`]); what it sends is
    /// routed now.
    pub fn remove_member_on_node(
        &mut self,
        node: impl Into<NodeRef>,
        member: impl Into<NodeRef>,
    ) -> Result<()> {
        let member = self.node_id(member)?;
        self.with_node(node, |n, ctx| n.remove_member(member, ctx))
    }

    /// A running node's replica.
    pub fn replica(&self, node: impl Into<NodeRef>) -> Result<&Replica> {
        self.node(node).map(ReplicaNode::replica)
    }

    /// A running node's clock, values and fingerprint.
    pub fn get_node_state(&self, node: impl Into<NodeRef>) -> Result<NodeState> {
        let replica = self.replica(node)?;
        Ok(NodeState {
            node: replica.id(),
            clock: replica.clock().clone(),
            values: replica.values(),
            fingerprint: replica.fingerprint(),
        })
    }

    /// Checks that every running replica holds bit-identical canonical state.
    pub fn verify_convergence(&self) -> Result<()> {
        crate::checkers::convergence::check(self).map_err(|violation| match violation {
            crate::checkers::convergence::ConvergenceViolation::Diverged {
                left, right, ..
            } => SimError::Diverged {
                left,
                right,
                detail: violation.to_string(),
            },
        })
    }

    /// Whether every running replica has delivered the same updates and none waits on a
    /// buffered delta: a cheap test (clocks only) that [`verify_convergence`](Self::verify_convergence)
    /// then confirms byte for byte.
    pub fn is_converged(&self) -> bool {
        let mut running = self.running_nodes().map(|(_, n)| n.replica());
        let Some(first) = running.next() else {
            return true;
        };
        first.buffered() == 0 && running.all(|r| r.buffered() == 0 && r.clock() == first.clock())
    }

    /// Runs until [`is_converged`](Self::is_converged) holds, checking every `resolution` of
    /// virtual time, for at most `max`. Returns the time at which it held (to that resolution).
    ///
    /// ```
    /// # use rhizo_sim::SimulationBuilder;
    /// # use rhizo_sim::workload::schema;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations};
    /// # use std::time::Duration;
    /// # use rhizo_algebra::AlgebraicValue;
    /// let mut cluster = SimulationBuilder::new().nodes(3).seed(1).build_replicas(schema()).unwrap();
    /// cluster.partition(0, 1).unwrap();
    /// cluster.partition(0, 2).unwrap();
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "r0", "value", 5);
    /// cluster.commit_on_node(0, tx).unwrap();
    /// cluster.run_for(Duration::from_millis(100));
    /// assert_eq!(cluster.replica(1).unwrap().read("counters", "r0", "value").unwrap(), AlgebraicValue::Integer(0));
    /// cluster.heal();
    /// cluster.run_until_converged(Duration::from_secs(1), Duration::from_millis(10)).unwrap();
    /// assert_eq!(cluster.replica(2).unwrap().read("counters", "r0", "value").unwrap(), AlgebraicValue::Integer(5));
    /// ```
    pub fn run_until_converged(&mut self, max: Duration, resolution: Duration) -> Result<SimTime> {
        let start = self.now();
        let resolution = resolution.max(Duration::from_micros(1));
        loop {
            if self.is_converged() {
                return Ok(self.now());
            }
            if self.now().saturating_since(start) >= max {
                return Err(SimError::DeadlineReached { at: self.now() });
            }
            self.run_for(resolution);
        }
    }

    /// [`run_until_converged`](Self::run_until_converged) up to the instant `until`, checking
    /// every `resolution` from the call, processing at most `max_events` events: `None` if the
    /// budget ran out first. Calling it again continues the same run: the events processed are
    /// those of an uninterrupted run, and convergence, which changes only when an event is
    /// processed, is checked again at once.
    pub fn run_until_converged_within(
        &mut self,
        until: SimTime,
        resolution: Duration,
        max_events: usize,
    ) -> Option<Result<SimTime>> {
        let resolution = resolution.max(Duration::from_micros(1));
        let first_event = self.stats().events_processed;
        loop {
            if self.is_converged() {
                return Some(Ok(self.now()));
            }
            if self.now() >= until {
                return Some(Err(SimError::DeadlineReached { at: self.now() }));
            }
            let spent = self.stats().events_processed - first_event;
            let left = usize::try_from(spent)
                .ok()
                .and_then(|spent| max_events.checked_sub(spent))?;
            let window_end = self.now().saturating_add(resolution);
            if !self.run_to(window_end, left) {
                return None;
            }
        }
    }

    /// Records every running replica's clock and values in the history (a read of the whole
    /// replica at this instant, for the checkers).
    pub fn observe(&mut self) {
        if !self.history().is_recording() {
            return;
        }
        let at = self.now();
        let reads: Vec<_> = self
            .running_nodes()
            .map(|(id, n)| (id, n.replica().clock().clone(), n.replica().values()))
            .collect();
        for (id, clock, values) in reads {
            self.history_mut().record_observation(at, id, clock, values);
        }
    }

    /// Replica counters over the running nodes.
    pub(crate) fn replica_totals(&self) -> ReplicaTotals {
        let mut totals = ReplicaTotals::default();
        for (_, node) in self.running_nodes() {
            let r = node.replica();
            let ReplicaStats {
                peak_buffered,
                deltas_applied,
                deltas_redundant,
                deltas_dropped,
                snapshots_sent,
                ..
            } = r.stats();
            totals.peak_buffered = totals.peak_buffered.max(peak_buffered);
            totals.buffered += r.buffered() as u64;
            totals.deltas_applied += deltas_applied;
            totals.deltas_redundant += deltas_redundant;
            totals.deltas_dropped += deltas_dropped;
            totals.snapshots_sent += snapshots_sent;
        }
        totals
    }

    /// Faults any running node reported, with the node.
    pub fn node_faults(&self) -> Vec<(NodeId, String)> {
        self.running_nodes()
            .flat_map(|(id, n)| n.faults().iter().map(move |f| (id, f.clone())))
            .collect()
    }
}
