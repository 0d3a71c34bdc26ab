use std::fmt;

use rand_chacha::ChaCha8Rng;
use rhizo_clock::NodeId;

use crate::network::up_to;
use crate::{GossipStrategy, Result, SimError, SimTime};

/// A node the simulator can run: a state machine that reacts to messages and timers.
///
/// The shape follows raft-rs: the node does no I/O and never reads a clock. Everything it wants
/// to send goes through the [`NodeCtx`] it is handed; the simulator decides when (and whether)
/// each message arrives. A `rhizo-commit` replica adapter forwards `on_message` to
/// `Replica::step` and drains `take_ready` into `ctx.send`; a Raft adapter maps `on_timer` to
/// `tick`.
pub trait SimulatedNode {
    /// What nodes send each other. `Clone` is used only for duplication faults and
    /// [`NodeCtx::broadcast`]; the simulator otherwise moves each message once.
    type Message: Clone;
    /// What survives a crash: taken by [`durable`](Self::durable) when the node crashes and
    /// handed back to the spawn function on restart.
    type Durable;
    /// What the cluster records about this kind of node for checkers (acknowledged commits,
    /// reads), kept by the cluster so it outlives crashes. `()` when nothing is recorded.
    /// Reached through [`SimulatedCluster::history`](crate::SimulatedCluster::history).
    type History: Default;

    /// Runs once when the node is created at build time and again after each restart.
    fn on_start(&mut self, ctx: &mut NodeCtx<'_, Self::Message>) {
        let _ = ctx;
    }

    /// A message from `from` arrived.
    fn on_message(
        &mut self,
        from: NodeId,
        msg: Self::Message,
        ctx: &mut NodeCtx<'_, Self::Message>,
    );

    /// The periodic timer fired (every sync interval): an anti-entropy round or a Raft tick.
    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Self::Message>);

    /// A wake-up this node asked for with [`NodeCtx::wake_after`] is due (one call per
    /// request; none for a request made in an earlier life, before a crash).
    fn on_wake(&mut self, ctx: &mut NodeCtx<'_, Self::Message>) {
        let _ = ctx;
    }

    /// The node crashes now: nothing it has not made durable may survive, and nothing it does
    /// after this (its destructor included) may change what survives. Called just before
    /// [`durable`](Self::durable) takes what does; a node whose durable state lives outside it
    /// (files, say) cuts it off here.
    fn on_crash(&mut self) {}

    /// The state this node has made durable — exactly what a restarted node is rebuilt from.
    fn durable(&self) -> Self::Durable;

    /// Whether the node has nothing left it needs to tell anyone. The cluster is quiescent when
    /// no message is in flight and every running node is idle; a node that keeps sending on
    /// every timer forever (a Raft leader's heartbeats) should return `false`, and such
    /// clusters are driven with `run_for` / `run_until` instead.
    fn is_idle(&self) -> bool {
        true
    }

    /// The encoded size of a message in bytes (for a replica: its postcard encoding), used for
    /// byte counts in the stats and in the trace hash. Called once per message sent.
    fn message_bytes(msg: &Self::Message) -> usize;
}

/// A node named by its index in the cluster (`0..nodes`) or by its [`NodeId`].
///
/// Every cluster verb takes `impl Into<NodeRef>`, so `cluster.crash(2)` and
/// `cluster.crash(NodeId::numbered(2))` mean the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRef {
    /// The node's position, `0..nodes`.
    Index(usize),
    /// The node's id.
    Id(NodeId),
}

impl From<usize> for NodeRef {
    fn from(index: usize) -> Self {
        Self::Index(index)
    }
}

impl From<NodeId> for NodeRef {
    fn from(id: NodeId) -> Self {
        Self::Id(id)
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index(i) => write!(f, "#{i}"),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

/// Node ids by index, and a sorted index for looking an id up.
#[derive(Clone, Debug)]
pub(crate) struct Directory {
    ids: Vec<NodeId>,
    by_id: Vec<(NodeId, u32)>,
}

impl Directory {
    pub(crate) fn numbered(count: usize) -> Self {
        let ids: Vec<NodeId> = (0..count as u32).map(NodeId::numbered).collect();
        let mut by_id: Vec<(NodeId, u32)> = ids.iter().copied().zip(0..).collect();
        by_id.sort_unstable();
        Self { ids, by_id }
    }

    pub(crate) fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    #[inline]
    pub(crate) fn id(&self, index: u32) -> NodeId {
        self.ids[index as usize]
    }

    #[inline]
    pub(crate) fn index_of(&self, id: NodeId) -> Option<u32> {
        self.by_id
            .binary_search_by(|(n, _)| n.cmp(&id))
            .ok()
            .map(|i| self.by_id[i].1)
    }

    pub(crate) fn resolve(&self, node: NodeRef) -> Result<u32> {
        let found = match node {
            NodeRef::Index(i) => (i < self.ids.len()).then_some(i as u32),
            NodeRef::Id(id) => self.index_of(id),
        };
        found.ok_or_else(|| SimError::UnknownNode {
            node: node.to_string(),
        })
    }
}

/// What a node sees while it handles an event: who and when it is, the other nodes, a seeded
/// random stream of its own, and a way to send.
///
/// Sent messages are queued and routed through the simulated network as soon as the callback
/// returns.
pub struct NodeCtx<'a, M> {
    pub(crate) index: u32,
    pub(crate) now: SimTime,
    pub(crate) directory: &'a Directory,
    pub(crate) rng: &'a mut ChaCha8Rng,
    pub(crate) outbox: &'a mut Vec<(u32, M)>,
    /// Wake-ups asked for during this callback: delays in microseconds.
    pub(crate) wakes: &'a mut Vec<u64>,
    /// The period of the node's timer, in microseconds (`None` without timers).
    pub(crate) sync_interval: Option<u64>,
    pub(crate) gossip: GossipStrategy,
    pub(crate) batch_size: usize,
}

impl<M> NodeCtx<'_, M> {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.directory.id(self.index)
    }

    /// This node's index in the cluster.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Every node of the cluster, by index (including this one and crashed ones).
    pub fn node_ids(&self) -> &[NodeId] {
        self.directory.ids()
    }

    /// Every other node, in index order.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.index as usize;
        self.directory
            .ids()
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != me)
            .map(|(_, id)| *id)
    }

    /// This node's own seeded random stream (independent of the network's and of other nodes').
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// The most updates a node should pack into one message (see
    /// [`SimulationBuilder::batch_size`](crate::SimulationBuilder::batch_size)).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Sends `msg` to `to` (which may be this node itself).
    pub fn send(&mut self, to: NodeId, msg: M) -> Result<()> {
        let index = self
            .directory
            .index_of(to)
            .ok_or_else(|| SimError::UnknownNode {
                node: to.to_string(),
            })?;
        self.outbox.push((index, msg));
        Ok(())
    }

    /// Asks for one call of [`SimulatedNode::on_wake`] `delay` from now (at least a
    /// microsecond: virtual time advances in microseconds).
    pub fn wake_after(&mut self, delay: std::time::Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.wakes.push(micros.max(1));
    }

    /// The period of this node's timer (`None` when the cluster runs without timers).
    pub fn sync_interval(&self) -> Option<std::time::Duration> {
        self.sync_interval.map(std::time::Duration::from_micros)
    }

    /// The configured gossip strategy.
    pub fn gossip_strategy(&self) -> GossipStrategy {
        self.gossip
    }

    /// Picks this round's partners among `candidates` under the configured strategy: all of
    /// them for `FullBroadcast`; `fanout` of them drawn from this node's stream for `PushPull`
    /// (all, in the given order, when there are no more than `fanout`). `candidates` is
    /// reordered and cut to the chosen ones.
    pub fn choose_among(&mut self, candidates: &mut Vec<NodeId>) {
        let fanout = match self.gossip {
            GossipStrategy::FullBroadcast => return,
            GossipStrategy::PushPull { fanout } => fanout,
        };
        if candidates.len() <= fanout {
            return;
        }
        // A partial Fisher-Yates shuffle: the first `fanout` slots end up a uniform sample.
        for i in 0..fanout {
            let j = i + up_to(self.rng, (candidates.len() - 1 - i) as u64) as usize;
            candidates.swap(i, j);
        }
        candidates.truncate(fanout);
    }

    /// This round's gossip partners under the configured [`GossipStrategy`]: all peers for
    /// `FullBroadcast`; `fanout` distinct peers drawn from this node's stream for `PushPull`
    /// (all peers, in index order, when the fanout is not smaller than their number).
    pub fn gossip_peers(&mut self) -> Vec<NodeId> {
        let chosen = self.gossip_indices();
        chosen.into_iter().map(|i| self.directory.id(i)).collect()
    }

    fn gossip_indices(&mut self) -> Vec<u32> {
        let me = self.index;
        let nodes = self.directory.ids().len() as u32;
        let peers = nodes - 1;
        let fanout = match self.gossip {
            GossipStrategy::FullBroadcast => peers,
            GossipStrategy::PushPull { fanout } => {
                u32::try_from(fanout).unwrap_or(u32::MAX).min(peers)
            }
        };
        if fanout == peers {
            return (0..nodes).filter(|&i| i != me).collect();
        }
        // Rejection sampling: fanout < peers and gossip fanouts are small, so redraws are rare.
        let mut chosen: Vec<u32> = Vec::with_capacity(fanout as usize);
        while (chosen.len() as u32) < fanout {
            let r = up_to(self.rng, u64::from(peers - 1)) as u32;
            let candidate = if r >= me { r + 1 } else { r };
            if !chosen.contains(&candidate) {
                chosen.push(candidate);
            }
        }
        chosen
    }
}

impl<M: Clone> NodeCtx<'_, M> {
    /// Sends a copy of `msg` to every other node.
    pub fn broadcast(&mut self, msg: M) {
        let me = self.index;
        let nodes = self.directory.ids().len() as u32;
        self.outbox
            .extend((0..nodes).filter(|&i| i != me).map(|i| (i, msg.clone())));
    }

    /// Runs one gossip round: for each of this round's [`gossip_peers`](Self::gossip_peers),
    /// `make(peer)` builds the message to send it (or `None` to skip that peer).
    pub fn gossip(&mut self, mut make: impl FnMut(NodeId) -> Option<M>) {
        for index in self.gossip_indices() {
            if let Some(msg) = make(self.directory.id(index)) {
                self.outbox.push((index, msg));
            }
        }
    }
}
