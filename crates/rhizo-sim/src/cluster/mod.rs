//! The event loop and the verbs that drive it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rhizo_clock::NodeId;

use crate::network::{Chance, NetConfig, up_to};
use crate::node::Directory;
use crate::stats::NodeStats;
use crate::time::micros;
use crate::trace::{TraceHash, TraceKind};
use crate::{NodeCtx, NodeRef, Result, SimError, SimStats, SimTime, SimulatedNode};

#[cfg(test)]
mod tests;

/// Makes a node: `None` for a fresh one, `Some(durable)` to recover one after a crash.
///
/// `Send`, so that a cluster whose nodes are `Send` can be handed to another thread (a Python
/// object may be dropped or used on any thread).
type Spawn<N> = Box<dyn FnMut(NodeId, Option<<N as SimulatedNode>::Durable>) -> N + Send>;

/// Marks a queue entry as a timer (`tag | incarnation << 32 | node`); otherwise it is a
/// wake-up (marked the same way by [`WAKE_TAG`]) or the index of an in-flight message.
const TIMER_TAG: u64 = 1 << 63;
/// Marks a queue entry as a wake-up a node asked for (`tag | incarnation << 32 | node`).
const WAKE_TAG: u64 = 1 << 62;
/// Incarnations are kept to 30 bits so they fit beside the tags.
const INCARNATION_MASK: u32 = 0x3fff_ffff;

/// Random streams derived from the one seed, so that, for example, a workload's choices do not
/// shift when the network draws more numbers.
const NETWORK_STREAM: u64 = 0;
const WORKLOAD_STREAM: u64 = 1;
const FIRST_NODE_STREAM: u64 = 2;

/// A message copy travelling between two nodes. The message is stored here once; the event
/// queue holds only this entry's index.
struct InFlight<M> {
    msg: Option<M>,
    from: u32,
    to: u32,
    /// Copies addressed to an earlier life of the receiver are dropped on arrival.
    to_incarnation: u32,
    bytes: u32,
}

struct NodeSlot<N: SimulatedNode> {
    /// `None` while crashed.
    node: Option<N>,
    /// Taken at the last crash; handed to the spawn function by `restart`.
    durable: Option<N::Durable>,
    incarnation: u32,
    /// The node's `is_idle` after its last callback (true while crashed).
    idle: bool,
    rng: ChaCha8Rng,
}

/// A set of [`SimulatedNode`]s on a seeded, simulated network, run in virtual time.
///
/// Events (message arrivals and timers) are kept in one queue ordered by (time, sequence
/// number), so events due at the same instant run in the order they were scheduled and a run is
/// a pure function of the seed, the settings and the verbs called.
pub struct SimulatedCluster<N: SimulatedNode> {
    seed: u64,
    config: NetConfig,
    directory: Directory,
    slots: Vec<NodeSlot<N>>,
    /// Behind a mutex only so that the cluster is `Sync` when its nodes are (a Python class
    /// must be) without asking the spawn function to be: it is called through `&mut self`, so
    /// the lock is never taken (`get_mut`).
    spawn: Mutex<Spawn<N>>,
    queue: BinaryHeap<Reverse<(u64, u64, u64)>>,
    next_seq: u64,
    now: u64,
    in_flight: Vec<InFlight<N::Message>>,
    free: Vec<u32>,
    in_flight_count: usize,
    /// Reused for every callback, so routing allocates nothing once it has grown.
    outbox: Vec<(u32, N::Message)>,
    /// Wake-ups asked for during the current callback (delays in microseconds).
    wakes: Vec<u64>,
    /// `blocked[from * nodes + to]`: links cut by a partition.
    blocked: Vec<bool>,
    blocked_links: usize,
    net_rng: ChaCha8Rng,
    workload_rng: ChaCha8Rng,
    trace: TraceHash,
    stats: SimStats,
    /// Running nodes that are not idle.
    busy: usize,
    history: N::History,
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Why [`SimulatedCluster::step_until`] stopped (when not for its event budget).
enum Stopped {
    /// The condition held.
    Done,
    /// No event is due by the deadline; `queued` says whether a later one is.
    NothingDue { queued: bool },
}

impl<N: SimulatedNode> SimulatedCluster<N> {
    pub(crate) fn new(nodes: usize, seed: u64, config: NetConfig, mut spawn: Spawn<N>) -> Self {
        let directory = Directory::numbered(nodes);
        let slots = (0..nodes)
            .map(|i| NodeSlot {
                node: Some(spawn(directory.id(i as u32), None)),
                durable: None,
                incarnation: 0,
                idle: true,
                rng: stream(seed, FIRST_NODE_STREAM + i as u64),
            })
            .collect();
        Self {
            seed,
            config,
            directory,
            slots,
            spawn: Mutex::new(spawn),
            queue: BinaryHeap::new(),
            next_seq: 0,
            now: 0,
            in_flight: Vec::new(),
            free: Vec::new(),
            in_flight_count: 0,
            outbox: Vec::new(),
            wakes: Vec::new(),
            blocked: vec![false; nodes * nodes],
            blocked_links: 0,
            net_rng: stream(seed, NETWORK_STREAM),
            workload_rng: stream(seed, WORKLOAD_STREAM),
            trace: TraceHash::new(seed),
            stats: SimStats {
                per_node: vec![NodeStats::default(); nodes],
                ..SimStats::default()
            },
            busy: 0,
            history: N::History::default(),
        }
    }

    pub(crate) fn start_all(&mut self) {
        for index in 0..self.slots.len() as u32 {
            self.start_node(index);
        }
    }

    /// Schedules a (re)started node's first timer and runs its `on_start`.
    fn start_node(&mut self, index: u32) {
        self.trace
            .event(self.now, TraceKind::Start, index, index, 0);
        if let Some(interval) = self.config.sync_interval {
            let phase = up_to(&mut self.net_rng, interval - 1);
            let incarnation = self.slots[index as usize].incarnation;
            self.push_event(self.now + phase, timer_payload(index, incarnation));
        }
        self.call(index, |node, ctx| node.on_start(ctx));
    }

    // ----- the event loop -------------------------------------------------------------------

    /// Processes the next event, advancing virtual time to it. Returns `false` if no event is
    /// queued (possible only without timers).
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, payload))) = self.queue.pop() else {
            return false;
        };
        self.now = at;
        self.stats.events_processed += 1;
        if payload & TIMER_TAG != 0 {
            self.fire_timer(payload as u32, (payload >> 32) as u32 & INCARNATION_MASK);
        } else if payload & WAKE_TAG != 0 {
            self.fire_wake(payload as u32, (payload >> 32) as u32 & INCARNATION_MASK);
        } else {
            self.deliver(payload as u32);
        }
        true
    }

    #[inline]
    fn push_event(&mut self, at: u64, payload: u64) {
        self.queue.push(Reverse((at, self.next_seq, payload)));
        self.next_seq += 1;
    }

    /// Runs a callback on a running node with a fresh context, then routes what it sent.
    /// Returns `None` if the node is crashed.
    #[inline]
    fn call<R>(
        &mut self,
        index: u32,
        f: impl FnOnce(&mut N, &mut NodeCtx<'_, N::Message>) -> R,
    ) -> Option<R> {
        let slot = &mut self.slots[index as usize];
        let node = slot.node.as_mut()?;
        let mut ctx = NodeCtx {
            index,
            now: SimTime::from_micros(self.now),
            directory: &self.directory,
            rng: &mut slot.rng,
            outbox: &mut self.outbox,
            wakes: &mut self.wakes,
            sync_interval: self.config.sync_interval,
            gossip: self.config.gossip,
            batch_size: self.config.batch_size,
        };
        let result = f(node, &mut ctx);
        let idle = node.is_idle();
        if idle != slot.idle {
            slot.idle = idle;
            if idle {
                self.busy -= 1;
            } else {
                self.busy += 1;
            }
        }
        self.flush(index);
        if !self.wakes.is_empty() {
            let incarnation = self.slots[index as usize].incarnation;
            let mut wakes = std::mem::take(&mut self.wakes);
            for delay in wakes.drain(..) {
                let at = self.now.saturating_add(delay);
                self.push_event(at, wake_payload(index, incarnation));
            }
            self.wakes = wakes;
        }
        Some(result)
    }

    fn flush(&mut self, from: u32) {
        if self.outbox.is_empty() {
            return;
        }
        let mut outbox = std::mem::take(&mut self.outbox);
        for (to, msg) in outbox.drain(..) {
            self.route(from, to, msg);
        }
        self.outbox = outbox;
    }

    /// Sends one message through the faults: partition, loss, duplication, delay.
    fn route(&mut self, from: u32, to: u32, msg: N::Message) {
        let bytes = u32::try_from(N::message_bytes(&msg)).unwrap_or(u32::MAX);
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += u64::from(bytes);
        let sender = &mut self.stats.per_node[from as usize];
        sender.sent += 1;
        sender.bytes_sent += u64::from(bytes);
        if self.is_blocked(from, to) {
            self.stats.dropped_by_partition += 1;
            self.trace
                .event(self.now, TraceKind::DropPartition, from, to, bytes);
            return;
        }
        if self.config.loss.hit(&mut self.net_rng) {
            self.stats.dropped_by_loss += 1;
            self.trace
                .event(self.now, TraceKind::DropLoss, from, to, bytes);
            return;
        }
        if self.config.duplication.hit(&mut self.net_rng) {
            self.stats.duplicated += 1;
            self.trace
                .event(self.now, TraceKind::Duplicate, from, to, bytes);
            self.schedule_delivery(from, to, msg.clone(), bytes);
        }
        self.schedule_delivery(from, to, msg, bytes);
    }

    fn schedule_delivery(&mut self, from: u32, to: u32, msg: N::Message, bytes: u32) {
        let delay = self.config.delay(&mut self.net_rng, from, to);
        let entry = InFlight {
            msg: Some(msg),
            from,
            to,
            to_incarnation: self.slots[to as usize].incarnation,
            bytes,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.in_flight[index as usize] = entry;
                index
            }
            None => {
                self.in_flight.push(entry);
                (self.in_flight.len() - 1) as u32
            }
        };
        self.in_flight_count += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight_count as u64);
        self.push_event(self.now.saturating_add(delay), u64::from(index));
    }

    fn deliver(&mut self, index: u32) {
        let entry = &mut self.in_flight[index as usize];
        let (msg, from, to, incarnation, bytes) = (
            entry.msg.take(),
            entry.from,
            entry.to,
            entry.to_incarnation,
            entry.bytes,
        );
        self.free.push(index);
        self.in_flight_count -= 1;
        // Each in-flight entry is scheduled exactly once, so the message is always there.
        let Some(msg) = msg else { return };
        let target = &self.slots[to as usize];
        if target.node.is_none() || target.incarnation != incarnation {
            self.stats.dropped_at_crashed_node += 1;
            self.trace
                .event(self.now, TraceKind::DropCrashed, from, to, bytes);
            return;
        }
        if self.is_blocked(from, to) {
            self.stats.dropped_by_partition += 1;
            self.trace
                .event(self.now, TraceKind::DropPartition, from, to, bytes);
            return;
        }
        self.stats.messages_delivered += 1;
        self.stats.bytes_delivered += u64::from(bytes);
        let receiver = &mut self.stats.per_node[to as usize];
        receiver.received += 1;
        receiver.bytes_received += u64::from(bytes);
        self.trace
            .event(self.now, TraceKind::Deliver, from, to, bytes);
        let from_id = self.directory.id(from);
        self.call(to, |node, ctx| node.on_message(from_id, msg, ctx));
    }

    fn fire_timer(&mut self, index: u32, incarnation: u32) {
        let slot = &self.slots[index as usize];
        if slot.node.is_none() || slot.incarnation != incarnation {
            return; // a timer of an earlier life: its chain ends here
        }
        self.stats.timer_fires += 1;
        self.trace
            .event(self.now, TraceKind::Timer, index, index, 0);
        self.call(index, |node, ctx| node.on_timer(ctx));
        if let Some(interval) = self.config.sync_interval {
            self.push_event(
                self.now.saturating_add(interval),
                timer_payload(index, incarnation),
            );
        }
    }

    fn fire_wake(&mut self, index: u32, incarnation: u32) {
        let slot = &self.slots[index as usize];
        if slot.node.is_none() || slot.incarnation != incarnation {
            return; // asked for by an earlier life
        }
        self.trace.event(self.now, TraceKind::Wake, index, index, 0);
        self.call(index, |node, ctx| node.on_wake(ctx));
    }

    #[inline]
    fn is_blocked(&self, from: u32, to: u32) -> bool {
        self.blocked_links != 0 && self.blocked[from as usize * self.slots.len() + to as usize]
    }

    // ----- running ---------------------------------------------------------------------------

    /// Processes every event due within the next `span` of virtual time, then sets the clock to
    /// the end of the span.
    pub fn run_for(&mut self, span: Duration) {
        let until = self.now().saturating_add(span);
        self.run_to(until, usize::MAX);
    }

    /// [`run_for`](Self::run_for) up to the instant `until`, processing at most `max_events`
    /// events. Returns `true` once every event due by `until` is processed (the clock then reads
    /// `until`, or stays where it is if that is later), `false` if the budget ran out first.
    ///
    /// Calling it again continues the same run: a run cut into budgets processes the same
    /// events in the same order as one uninterrupted run, so a caller may stop between budgets
    /// (to look for an interrupt, say) without changing what happens.
    pub fn run_to(&mut self, until: SimTime, max_events: usize) -> bool {
        let deadline = until.as_micros();
        let mut budget = max_events;
        loop {
            match self.queue.peek() {
                Some(&Reverse((at, _, _))) if at <= deadline => {
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    self.step();
                }
                _ => {
                    self.now = self.now.max(deadline);
                    return true;
                }
            }
        }
    }

    /// Processes events until `done(self)` holds (checked before each event — keep it cheap),
    /// for at most `max` of virtual time. Returns the time at which it held.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<SimTime> {
        let until = self.now().saturating_add(max);
        loop {
            if let Some(result) = self.run_until_within(until, usize::MAX, &mut done) {
                return result;
            }
        }
    }

    /// [`run_until`](Self::run_until) up to the instant `until`, processing at most
    /// `max_events` events: `None` if the budget ran out before `done` held or `until` passed.
    /// Calling it again continues the same run (see [`run_to`](Self::run_to)).
    pub fn run_until_within(
        &mut self,
        until: SimTime,
        max_events: usize,
        done: impl FnMut(&Self) -> bool,
    ) -> Option<Result<SimTime>> {
        let deadline = until.as_micros();
        match self.step_until(deadline, max_events, done)? {
            Stopped::Done => Some(Ok(self.now())),
            Stopped::NothingDue { .. } => {
                self.now = self.now.max(deadline);
                Some(Err(SimError::DeadlineReached { at: self.now() }))
            }
        }
    }

    /// Steps the events due by `deadline` (in microseconds) until `done` holds or none is due;
    /// `None` if `max_events` events ran first. The clock is left at the last event.
    fn step_until(
        &mut self,
        deadline: u64,
        max_events: usize,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Option<Stopped> {
        let mut budget = max_events;
        loop {
            if done(self) {
                return Some(Stopped::Done);
            }
            match self.queue.peek() {
                Some(&Reverse((at, _, _))) if at <= deadline => {
                    if budget == 0 {
                        return None;
                    }
                    budget -= 1;
                    self.step();
                }
                next => {
                    return Some(Stopped::NothingDue {
                        queued: next.is_some(),
                    });
                }
            }
        }
    }

    /// Processes events until no message is in flight and every running node
    /// [is idle](SimulatedNode::is_idle), for at most `max` of virtual time. Returns the time
    /// at which the cluster became quiescent.
    pub fn run_until_quiescent(&mut self, max: Duration) -> Result<SimTime> {
        let until = self.now().saturating_add(max);
        loop {
            if let Some(result) = self.run_until_quiescent_within(until, usize::MAX) {
                return result;
            }
        }
    }

    /// [`run_until_quiescent`](Self::run_until_quiescent) up to the instant `until`, processing
    /// at most `max_events` events: `None` if the budget ran out first. Calling it again
    /// continues the same run (see [`run_to`](Self::run_to)).
    pub fn run_until_quiescent_within(
        &mut self,
        until: SimTime,
        max_events: usize,
    ) -> Option<Result<SimTime>> {
        self.refresh_idle();
        let deadline = until.as_micros();
        match self.step_until(deadline, max_events, Self::is_quiescent)? {
            Stopped::Done => Some(Ok(self.now())),
            Stopped::NothingDue { queued } => {
                // With nothing queued, time would not help: report now.
                if queued {
                    self.now = self.now.max(deadline);
                }
                Some(Err(SimError::NotQuiescent {
                    at: self.now(),
                    in_flight: self.in_flight_count,
                    busy_nodes: self.busy,
                }))
            }
        }
    }

    /// Whether no message is in flight and every running node is idle (as of each node's last
    /// callback or `run_until_quiescent` call).
    pub fn is_quiescent(&self) -> bool {
        self.in_flight_count == 0 && self.busy == 0
    }

    /// Re-reads every running node's `is_idle` (a node changed through `node_mut` is not
    /// tracked otherwise).
    fn refresh_idle(&mut self) {
        self.busy = 0;
        for slot in &mut self.slots {
            slot.idle = slot.node.as_ref().is_none_or(N::is_idle);
            self.busy += usize::from(!slot.idle);
        }
    }

    // ----- faults ----------------------------------------------------------------------------

    fn set_link(&mut self, from: u32, to: u32, blocked: bool) {
        if from == to {
            return; // a node always reaches itself
        }
        let cell = &mut self.blocked[from as usize * self.slots.len() + to as usize];
        if *cell != blocked {
            *cell = blocked;
            if blocked {
                self.blocked_links += 1;
            } else {
                self.blocked_links -= 1;
            }
        }
    }

    /// Cuts the links between `a` and `b` in both directions, including for messages already in
    /// flight (they are dropped when due). Partitioning a node from itself does nothing.
    pub fn partition(&mut self, a: impl Into<NodeRef>, b: impl Into<NodeRef>) -> Result<()> {
        let (a, b) = (self.resolve(a)?, self.resolve(b)?);
        self.set_link(a, b, true);
        self.set_link(b, a, true);
        self.trace.event(self.now, TraceKind::Partition, a, b, 2);
        Ok(())
    }

    /// Cuts only the link from `from` to `to`: `to` still reaches `from`.
    pub fn partition_one_way(
        &mut self,
        from: impl Into<NodeRef>,
        to: impl Into<NodeRef>,
    ) -> Result<()> {
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        self.set_link(from, to, true);
        self.trace
            .event(self.now, TraceKind::Partition, from, to, 1);
        Ok(())
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        let node = self.resolve(node)?;
        for other in 0..self.slots.len() as u32 {
            self.set_link(node, other, true);
            self.set_link(other, node, true);
        }
        self.trace
            .event(self.now, TraceKind::Partition, node, node, 0);
        Ok(())
    }

    /// Restores the links between `a` and `b` in both directions.
    pub fn heal_link(&mut self, a: impl Into<NodeRef>, b: impl Into<NodeRef>) -> Result<()> {
        let (a, b) = (self.resolve(a)?, self.resolve(b)?);
        self.set_link(a, b, false);
        self.set_link(b, a, false);
        self.trace.event(self.now, TraceKind::Heal, a, b, 2);
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.fill(false);
        self.blocked_links = 0;
        self.trace.event(self.now, TraceKind::Heal, 0, 0, 0);
    }

    /// Changes the loss rate from now on (messages already in flight are not affected).
    pub fn set_loss_rate(&mut self, rate: f64) -> Result<()> {
        self.config.loss = Chance::new("loss rate", rate)?;
        self.trace.event(self.now, TraceKind::Settings, 0, 0, 1);
        Ok(())
    }

    /// Changes the duplication rate from now on.
    pub fn set_duplication_rate(&mut self, rate: f64) -> Result<()> {
        self.config.duplication = Chance::new("duplication rate", rate)?;
        self.trace.event(self.now, TraceKind::Settings, 0, 0, 2);
        Ok(())
    }

    /// Changes the reordering settings from now on (see
    /// [`SimulationBuilder::reordering`](crate::SimulationBuilder::reordering)).
    pub fn set_reordering(&mut self, probability: f64, max_extra: Duration) -> Result<()> {
        self.config.reorder = Chance::new("reordering probability", probability)?;
        self.config.reorder_max = micros(max_extra);
        self.trace.event(self.now, TraceKind::Settings, 0, 0, 3);
        Ok(())
    }

    /// Stops every network fault: heals all partitions and sets loss, duplication and
    /// reordering to zero. Crashed nodes stay crashed.
    pub fn calm(&mut self) {
        self.heal();
        self.config.loss = Chance::NEVER;
        self.config.duplication = Chance::NEVER;
        self.config.reorder = Chance::NEVER;
        self.trace.event(self.now, TraceKind::Settings, 0, 0, 0);
    }

    /// The interval between two timer fires of a node (`None` without timers).
    pub fn sync_interval(&self) -> Option<Duration> {
        self.config.sync_interval.map(Duration::from_micros)
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_link_blocked(
        &self,
        from: impl Into<NodeRef>,
        to: impl Into<NodeRef>,
    ) -> Result<bool> {
        Ok(self.is_blocked(self.resolve(from)?, self.resolve(to)?))
    }

    /// Stops `node`: its [`durable`](SimulatedNode::durable) state is kept, everything else is
    /// lost and its timer stops. Copies that arrive while it is crashed are dropped, and so are
    /// copies sent before the crash that arrive after a restart (they were addressed to the
    /// old life, like packets of a broken connection). Copies sent while it is down and due
    /// after the restart are delivered. Messages it already sent still arrive.
    ///
    /// ```
    /// # use rhizo_sim::SimulationBuilder;
    /// # use rhizo_sim::workload::schema;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations};
    /// # use std::time::Duration;
    /// # use rhizo_algebra::AlgebraicValue;
    /// let mut cluster = SimulationBuilder::new().nodes(2).seed(3).build_replicas(schema()).unwrap();
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "r0", "value", 1);
    /// cluster.commit_on_node(1, tx).unwrap();
    /// cluster.crash(1).unwrap(); // node 1 loses everything it had not made durable
    /// assert!(cluster.is_crashed(1).unwrap());
    /// cluster.restart(1).unwrap(); // ... and recovers what it had
    /// assert_eq!(cluster.replica(1).unwrap().read("counters", "r0", "value").unwrap(), AlgebraicValue::Integer(1));
    /// ```
    pub fn crash(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        let index = self.resolve(node)?;
        let id = self.directory.id(index);
        let slot = &mut self.slots[index as usize];
        let Some(mut node) = slot.node.take() else {
            return Err(SimError::NodeCrashed { node: id });
        };
        node.on_crash();
        slot.durable = Some(node.durable());
        slot.incarnation = slot.incarnation.wrapping_add(1) & INCARNATION_MASK;
        if !slot.idle {
            slot.idle = true;
            self.busy -= 1;
        }
        self.stats.crashes += 1;
        self.trace
            .event(self.now, TraceKind::Crash, index, index, 0);
        Ok(())
    }

    /// Brings a crashed node back, rebuilt by the spawn function from the durable state taken
    /// at its crash; its timer restarts and its `on_start` runs.
    pub fn restart(&mut self, node: impl Into<NodeRef>) -> Result<()> {
        let index = self.resolve(node)?;
        let id = self.directory.id(index);
        let slot = &mut self.slots[index as usize];
        if slot.node.is_some() {
            return Err(SimError::NodeNotCrashed { node: id });
        }
        let durable = slot.durable.take();
        let spawn = self.spawn.get_mut().unwrap_or_else(PoisonError::into_inner);
        slot.node = Some(spawn(id, durable));
        slot.idle = true;
        self.stats.restarts += 1;
        self.trace
            .event(self.now, TraceKind::Restart, index, index, 0);
        self.start_node(index);
        Ok(())
    }

    // ----- nodes -----------------------------------------------------------------------------

    fn resolve(&self, node: impl Into<NodeRef>) -> Result<u32> {
        self.directory.resolve(node.into())
    }

    /// The id of a node of this cluster, running or crashed.
    pub fn node_id(&self, node: impl Into<NodeRef>) -> Result<NodeId> {
        let index = self.resolve(node)?;
        Ok(self.directory.id(index))
    }

    /// Runs `f` on a running node with a context at the current time (for example to commit a
    /// transaction); what it sends is routed when `f` returns.
    pub fn with_node<R>(
        &mut self,
        node: impl Into<NodeRef>,
        f: impl FnOnce(&mut N, &mut NodeCtx<'_, N::Message>) -> R,
    ) -> Result<R> {
        let index = self.resolve(node)?;
        self.trace
            .event(self.now, TraceKind::External, index, index, 0);
        self.call(index, f).ok_or(SimError::NodeCrashed {
            node: self.directory.id(index),
        })
    }

    /// A running node.
    pub fn node(&self, node: impl Into<NodeRef>) -> Result<&N> {
        let index = self.resolve(node)?;
        self.slots[index as usize]
            .node
            .as_ref()
            .ok_or(SimError::NodeCrashed {
                node: self.directory.id(index),
            })
    }

    /// A running node, mutably. Nothing it would send can leave through this; use
    /// [`with_node`](Self::with_node) for that.
    pub fn node_mut(&mut self, node: impl Into<NodeRef>) -> Result<&mut N> {
        let index = self.resolve(node)?;
        let id = self.directory.id(index);
        self.slots[index as usize]
            .node
            .as_mut()
            .ok_or(SimError::NodeCrashed { node: id })
    }

    /// Running nodes with their ids, in index order.
    pub fn running_nodes(&self) -> impl Iterator<Item = (NodeId, &N)> + '_ {
        self.slots
            .iter()
            .zip(self.directory.ids())
            .filter_map(|(slot, id)| slot.node.as_ref().map(|n| (*id, n)))
    }

    /// What the cluster recorded for checkers (see [`SimulatedNode::History`]).
    pub fn history(&self) -> &N::History {
        &self.history
    }

    /// The recorded history, mutably (for layers that record their own events).
    pub fn history_mut(&mut self) -> &mut N::History {
        &mut self.history
    }

    /// Whether `node` is crashed.
    pub fn is_crashed(&self, node: impl Into<NodeRef>) -> Result<bool> {
        Ok(self.slots[self.resolve(node)? as usize].node.is_none())
    }

    /// The durable state a crashed node will restart from (`None` while it runs).
    pub fn durable_state(&self, node: impl Into<NodeRef>) -> Result<Option<&N::Durable>> {
        Ok(self.slots[self.resolve(node)? as usize].durable.as_ref())
    }

    /// Checks that every running node has the same `state(node)`; the first running node is the
    /// reference. Crashed nodes are skipped: they converge after their restart.
    pub fn verify_convergence_by<S: PartialEq + Debug>(
        &self,
        mut state: impl FnMut(&N) -> S,
    ) -> Result<()> {
        let mut running = self.running_nodes();
        let Some((left, first)) = running.next() else {
            return Ok(());
        };
        let reference = state(first);
        for (right, node) in running {
            let other = state(node);
            if other != reference {
                let mut detail = format!("{reference:?} != {other:?}");
                if detail.len() > 400 {
                    let cut = (0..=400)
                        .rev()
                        .find(|&i| detail.is_char_boundary(i))
                        .unwrap_or(0);
                    detail.truncate(cut);
                    detail.push('…');
                }
                return Err(SimError::Diverged {
                    left,
                    right,
                    detail,
                });
            }
        }
        Ok(())
    }

    // ----- observation -----------------------------------------------------------------------

    /// The seed this run derives every random choice from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        SimTime::from_micros(self.now)
    }

    /// Every node id, by index.
    pub fn node_ids(&self) -> &[NodeId] {
        self.directory.ids()
    }

    /// How many nodes the cluster has (running or crashed).
    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    /// The region a node is placed in by a region latency matrix (`None` for other models).
    pub fn region_of(&self, node: impl Into<NodeRef>) -> Result<Option<&str>> {
        let index = self.resolve(node)? as usize;
        let names = &self.config.region_names;
        Ok((!names.is_empty()).then(|| names[index % names.len()].as_str()))
    }

    /// Message copies currently travelling.
    pub fn in_flight(&self) -> usize {
        self.in_flight_count
    }

    /// The run's counters.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// A fingerprint of every event processed so far (time, kind, endpoints, bytes) and of every
    /// verb that changed the network or a node's life. Equal seeds, settings and verbs give
    /// equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// A random stream for the test's own choices (workloads), derived from the seed and
    /// independent of the network's and the nodes' streams.
    pub fn workload_rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.workload_rng
    }
}

fn timer_payload(index: u32, incarnation: u32) -> u64 {
    TIMER_TAG | u64::from(incarnation & INCARNATION_MASK) << 32 | u64::from(index)
}

fn wake_payload(index: u32, incarnation: u32) -> u64 {
    WAKE_TAG | u64::from(incarnation & INCARNATION_MASK) << 32 | u64::from(index)
}
