//! One Rhizo node's Raft group member and the replica it drives.

use std::collections::BTreeMap;

use raft::eraftpb::{Entry, EntryType, Message as RaftMessage, Snapshot};
use raft::{INVALID_ID, ProgressState, RawNode, SnapshotStatus, StateRole};
use rhizo_algebra::{AlgebraicValue, Schema};
use rhizo_clock::{Dot, NodeId};
use rhizo_commit::{
    AlgebraicTransaction, CellKey, LocalCommitError, Message, OrderedOutcome, Record, Replica, wire,
};
use serde::{Deserialize, Serialize};

use super::RaftError;
use super::applied_writes::{AppliedWrites, DecodedSnapshot, SnapshotData};
use super::membership::{ChangeKind, MemberChange, Membership, raft_id_of};
use super::storage::{DurableRaftLog, RaftLogStore, RaftRecord, RecoveredRaft};
use crate::{CommitPath, CoordinationFreeConfig, CoordinationFreeManager, TransactionMode};

/// How a Raft node behaves. Times are in ticks (one tick per call of [`RaftNode::tick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// Base election timeout; each election waits a seeded random value in
    /// `[election_tick, 2 * election_tick)`.
    pub election_tick: usize,
    /// A leader sends heartbeats this often.
    pub heartbeat_tick: usize,
    /// A proposal without outcome after this many ticks is answered with
    /// [`RaftError::Timeout`].
    pub proposal_timeout_ticks: u32,
    /// Once this many applied entries follow the last snapshot, the node snapshots its replica
    /// and drops them from its log.
    pub compact_after_entries: u64,
    /// Seeds the node's election timeouts (mixed with its id and incarnation).
    pub seed: u64,
    /// Whether a leader steps down when it has not heard from a quorum for an election timeout
    /// (keeps a cut-off leader from believing it leads).
    pub check_quorum: bool,
    /// Whether candidates first check they could win (avoids term inflation by a node that
    /// rejoins after a partition).
    pub pre_vote: bool,
    /// Whether this node joins a running group: on a fresh log it starts as no member of the
    /// group (the other nodes given to [`RaftNode::open`] are its voters), so it neither votes
    /// nor campaigns, and peers refuse it until a change adding it commits; it then catches up
    /// from a snapshot. Ignored once the log holds a membership.
    pub join: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            election_tick: 10,
            heartbeat_tick: 2,
            proposal_timeout_ticks: 50,
            compact_after_entries: 1024,
            seed: 0,
            check_quorum: true,
            pre_vote: true,
            join: false,
        }
    }
}

/// Names a proposal: unique across the cluster and across restarts of its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// The proposing node.
    pub node: NodeId,
    /// The proposer's incarnation (bumped at every restart).
    pub incarnation: u64,
    /// The proposal's number within the incarnation.
    pub seq: u64,
}

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Command {
    /// A coordinated transaction: `update` is a `Record::Ordered` (index 0) carrying the
    /// validated update, since `rhizo_commit` exports no name for the update type itself.
    Write { id: ProposalId, update: Box<Record> },
    /// A linearizable read of these cells.
    Read { id: ProposalId, keys: Vec<CellKey> },
    /// A schema change, applied by every member at the same place in the log.
    Schema { id: ProposalId, schema: Box<Schema> },
    /// The first step of a draining removal: every member marks `node` retired at the same
    /// place in the log, and `node`, applying it, takes no more writes.
    Retire { id: ProposalId, node: NodeId },
}

/// A message between Raft nodes: Raft's own, or the replica's anti-entropy.
#[derive(Debug, Clone, PartialEq)]
pub enum RaftWire {
    /// A Raft protocol message.
    Raft(Box<RaftMessage>),
    /// A replica anti-entropy message (coordination-free commits spread this way).
    Replica(Box<Message>),
}

impl RaftWire {
    /// An estimate of the encoded size in bytes (header plus entry payloads).
    pub fn approx_bytes(&self) -> usize {
        match self {
            Self::Raft(m) => {
                48 + m
                    .entries
                    .iter()
                    .map(|e| 24 + e.data.len() + e.context.len())
                    .sum::<usize>()
                    + m.snapshot.as_ref().map_or(0, |s| 32 + s.data.len())
            }
            Self::Replica(m) => rhizo_commit::wire::encoded_message_len(m),
        }
    }
}

/// The tag byte of an encoded [`RaftWire::Replica`].
const WIRE_REPLICA: u8 = 0;
/// The tag byte of an encoded [`RaftWire::Raft`].
const WIRE_RAFT: u8 = 1;

impl RaftWire {
    /// Encodes the message for a byte transport: a tag byte, then the replica's wire format
    /// (`rhizo_commit::wire`) or Raft's protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Replica(message) => {
                let mut out = vec![WIRE_REPLICA];
                wire::encode_message_into(message, &mut out);
                out
            }
            Self::Raft(message) => {
                let mut out = vec![WIRE_RAFT];
                out.extend(
                    protobuf::Message::write_to_bytes(&**message)
                        .expect("encoding a Raft message to memory cannot fail"),
                );
                out
            }
        }
    }

    /// Decodes [`RaftWire::encode`]'s bytes; anything else is refused with
    /// [`LocalCommitError::Decode`], never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, LocalCommitError> {
        match bytes.split_first() {
            Some((&WIRE_REPLICA, body)) => Ok(Self::Replica(Box::new(wire::decode_message(body)?))),
            Some((&WIRE_RAFT, body)) => {
                let message: RaftMessage =
                    protobuf::Message::parse_from_bytes(body).map_err(|e| {
                        LocalCommitError::Decode {
                            reason: format!("raft message: {e}"),
                        }
                    })?;
                Ok(Self::Raft(Box::new(message)))
            }
            Some((tag, _)) => Err(LocalCommitError::Decode {
                reason: format!("unknown message tag {tag}"),
            }),
            None => Err(LocalCommitError::Decode {
                reason: "an empty message".to_owned(),
            }),
        }
    }
}

/// How a submitted transaction proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Committed on this node at once (coordination-free path), under this dot. Acknowledge
    /// it once the node's next [`RaftNode::drain`] has persisted its records.
    Local(Dot),
    /// Proposed to the log; the outcome comes later as a [`ClientOutcome`] with this id.
    Proposed(ProposalId),
}

impl Submitted {
    /// The path taken.
    pub fn path(&self) -> CommitPath {
        match self {
            Self::Local(_) => CommitPath::Local,
            Self::Proposed(_) => CommitPath::Consensus,
        }
    }
}

/// The answer to a proposal or read, delivered by the proposing node.
#[derive(Debug)]
pub enum ClientOutcome {
    /// The transaction was ordered at `index`; `outcome` says whether it took effect
    /// (`Refused` when a compare-and-set found another value: nothing changed, anywhere).
    Committed {
        /// The proposal.
        id: ProposalId,
        /// Its log index.
        index: u64,
        /// What applying it did.
        outcome: OrderedOutcome,
    },
    /// A linearizable read, served at log index `index`.
    Read {
        /// The proposal.
        id: ProposalId,
        /// Its log index.
        index: u64,
        /// Each cell's value, in the order asked.
        values: Vec<(CellKey, Result<AlgebraicValue, LocalCommitError>)>,
    },
    /// A schema change the log ordered at `index`; `version` is now in force.
    SchemaChanged {
        /// The proposal.
        id: ProposalId,
        /// Its log index.
        index: u64,
        /// The schema version in force after it.
        version: u64,
    },
    /// A membership change the log ordered at `index`; `members` is the group after it.
    MembershipChanged {
        /// The proposal.
        id: ProposalId,
        /// Its log index.
        index: u64,
        /// The group's members after it, sorted.
        members: Vec<NodeId>,
    },
    /// No outcome: see the error (a timeout means "unknown", not "failed").
    Failed {
        /// The proposal.
        id: ProposalId,
        /// Why.
        error: RaftError,
    },
}

impl ClientOutcome {
    /// The proposal answered.
    pub fn id(&self) -> ProposalId {
        match self {
            Self::Committed { id, .. }
            | Self::Read { id, .. }
            | Self::SchemaChanged { id, .. }
            | Self::MembershipChanged { id, .. }
            | Self::Failed { id, .. } => *id,
        }
    }
}

/// What a node hands its driver after [`RaftNode::drain`]: everything in it is already durable.
#[derive(Debug, Default)]
pub struct NodeOutput {
    /// Messages to send.
    pub messages: Vec<(NodeId, RaftWire)>,
    /// Client outcomes to deliver.
    pub outcomes: Vec<ClientOutcome>,
    /// Entries applied in this drain, `(index, term, command bytes)` — for checkers.
    pub applied: Vec<(u64, u64, Vec<u8>)>,
}

/// How far behind the commit index a learner's log may be and still be promoted to voter: far
/// enough that a learner under steady load is promoted, near enough that the new voter does not
/// hold up commits while it fetches the rest.
const LEARNER_CATCH_UP_SLACK: u64 = 64;

/// The node's own stream of election timeouts: splitmix64 over the seed, so that a simulated
/// run replays exactly from its seed on every platform (and no thread RNG is involved).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n >= 1`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One node: a Raft group member and the replica its log drives.
pub struct RaftNode<L: DurableRaftLog> {
    id: NodeId,
    /// The group's members (the table's nodes), sorted.
    members: Vec<NodeId>,
    /// Who is a member, under which Raft id, and whether it votes: changed only by applied
    /// configuration entries, in log order.
    membership: Membership,
    /// Whether this node has been a member since it opened: once it has, its absence from the
    /// table means it was removed (a node that joins is absent until its addition applies).
    was_member: bool,
    /// Whether an applied addition asks for a snapshot now, so that the newcomer, whose log is
    /// empty, is sent the group's state (with its membership) rather than entries it could
    /// not place.
    compact_for_newcomer: bool,
    raw: RawNode<RaftLogStore>,
    manager: CoordinationFreeManager,
    log: L,
    config: RaftConfig,
    incarnation: u64,
    next_seq: u64,
    /// Proposals of this node awaiting their outcome, with the tick they time out at.
    pending: BTreeMap<ProposalId, u64>,
    /// Draining removals this node was asked for, by the proposal its caller waits on: the
    /// node each removes. Answered when that node's removal applies here (whoever proposed
    /// it), or with [`RaftError::NotDrained`] when the proposal times out.
    drain_waiters: BTreeMap<ProposalId, NodeId>,
    /// While this node is retired: the tick before which it does not propose its own removal
    /// again.
    own_removal_after: u64,
    /// Linearizable reads started since this node last asked the leader for a read index:
    /// the next request answers all of them (each began before it was sent).
    unasked_reads: Vec<ProposalId>,
    /// Read-index requests sent and not answered, by the id their context carries: the reads
    /// each answers.
    asked_reads: BTreeMap<ProposalId, Vec<ProposalId>>,
    /// Read-index reads the leader has answered, with the commit index each must see applied
    /// here before it is served (see [`RaftNode::read_index`]).
    confirmed_reads: Vec<(u64, ProposalId)>,
    ticks: u64,
    applied: u64,
    /// The newest write applied from each proposer (at most once; see `applied_writes`).
    applied_writes: AppliedWrites,
    rng: Jitter,
    seen_role: (u64, StateRole),
    /// As leader: the peers raft-rs holds in its snapshot state, with the tick each was first
    /// seen there (see [`RaftNode::unstick_snapshots`]).
    snapshot_since: BTreeMap<u64, u64>,
    out: NodeOutput,
    /// Messages that may leave before the log's sync (see [`RaftNode::take_messages_before_sync`]).
    early: Vec<(NodeId, RaftWire)>,
    /// Messages raft-rs holds back until the records of their ready are durable.
    awaiting: Vec<RaftMessage>,
    /// Whether records were written that must be durable before raft-rs counts their ready
    /// persisted and `awaiting` leaves (entries, snapshots, a new term or vote).
    unsynced: bool,
    /// The newest ready handled, and the newest reported persisted to raft-rs.
    staged_ready: u64,
    persisted_ready: u64,
}

impl<L: DurableRaftLog> std::fmt::Debug for RaftNode<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("term", &self.raw.raft.term)
            .field("role", &self.raw.raft.state)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The applied-writes table after recovery: the snapshot's, then every write entry after the
/// snapshot up to the applied index, admitted in log order exactly as when they were applied.
fn replay_applied_writes(recovered: &RecoveredRaft) -> Result<AppliedWrites, RaftError> {
    let mut table = recovered.applied_writes.clone();
    let applied = recovered
        .store
        .entries_ref()
        .iter()
        .take_while(|entry| entry.index <= recovered.applied);
    for entry in applied {
        if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
            continue;
        }
        let command: Command =
            postcard::from_bytes(&entry.data).map_err(|e| RaftError::Corrupt {
                index: entry.index,
                reason: e.to_string(),
            })?;
        if let Command::Write { id, .. } = command {
            table.admit(id);
        }
    }
    Ok(table)
}

/// Refuses timing settings `raft` cannot run with.
fn check_config(config: &RaftConfig) -> Result<(), RaftError> {
    if config.election_tick <= config.heartbeat_tick || config.heartbeat_tick == 0 {
        return Err(RaftError::Config {
            reason: "election_tick must exceed heartbeat_tick >= 1".to_owned(),
        });
    }
    if config.compact_after_entries == 0 || config.proposal_timeout_ticks == 0 {
        return Err(RaftError::Config {
            reason: "compact_after_entries and proposal_timeout_ticks must be >= 1".to_owned(),
        });
    }
    Ok(())
}

impl<L: DurableRaftLog> RaftNode<L> {
    /// Opens node `id` of the cluster `members` on its durable log `log`, whose `records`
    /// (empty for a fresh node) are replayed. Every node of a cluster must be given the same
    /// members and schema at its first start; from then on the membership is the log's (changed
    /// by [`RaftNode::propose_add_member`] / [`RaftNode::propose_remove_member`]), which wins
    /// over `members` at a restart. With [`RaftConfig::join`], `members` names the running
    /// group and `id`, and the node starts as no member of it.
    ///
    /// ```
    /// use rhizo_algebra::AlgebraicValue;
    /// use rhizo_clock::NodeId;
    /// use rhizo_commit::{AlgebraicTransaction, Operations};
    /// use rhizo_txn::default_schema;
    /// use rhizo_txn::raft::{ClientOutcome, MemRaftLog, RaftConfig, RaftNode};
    /// // A group of one: it elects itself, and a proposal commits at its next drain.
    /// let a = NodeId::new("a").unwrap();
    /// let mut node = RaftNode::open(a, &[a], default_schema(), RaftConfig::default(), MemRaftLog::new(), &[]).unwrap();
    /// while !node.is_leader() {
    ///     node.tick();
    ///     node.drain().unwrap();
    /// }
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// let id = node.propose(tx).unwrap();
    /// let output = node.drain().unwrap(); // records persisted, then outcomes handed out
    /// assert!(matches!(&output.outcomes[..], [ClientOutcome::Committed { id: done, .. }] if *done == id));
    /// assert_eq!(node.replica().read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(1));
    /// ```
    pub fn open(
        id: NodeId,
        members: &[NodeId],
        schema: Schema,
        config: RaftConfig,
        mut log: L,
        records: &[RaftRecord],
    ) -> Result<Self, RaftError> {
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        let Some(position) = members.iter().position(|m| *m == id) else {
            return Err(RaftError::UnknownMember { node: id });
        };
        check_config(&config)?;
        // A joining node's group is the others; it is added by a configuration change.
        let configured: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|m| !config.join || *m != id)
            .collect();
        let configured = Membership::voters(&configured)?;
        configured.check_id_free(id)?;
        let recovered = RecoveredRaft::replay(configured.conf_state().voters, records)?;
        // A member of the static configuration, or named by a membership the log holds, has
        // been a member: absent from the table now, it was removed (a joining node is named by
        // neither until its addition applies).
        let was_member = configured.get(id).is_some() || recovered.ever_members.contains(&id);
        // The log's membership wins over the configuration's: it is what the group agreed.
        let membership = recovered.membership.clone().unwrap_or(configured);
        let applied_writes = replay_applied_writes(&recovered)?;
        let incarnation = recovered.incarnation + 1;
        // The log's schema, if it ordered a newer one than the owner record names.
        let schema = match &recovered.schema {
            Some(logged) if logged.version() > schema.version() => logged.clone(),
            _ => schema,
        };
        let mut manager_config =
            CoordinationFreeConfig::new(id, schema.clone()).with_members(membership.nodes());
        manager_config.emit_records = true;
        // The node compacts through Raft snapshots; the replica never emits its own.
        manager_config.snapshot_every = usize::MAX;
        let replica_config = manager_config.replica_config();
        let replica = if recovered.replica.is_empty() {
            Replica::new(id, schema, replica_config)
        } else {
            let mut replica =
                Replica::recover(id, schema.clone(), replica_config, recovered.replica).map_err(
                    |e| RaftError::Storage {
                        reason: format!("replica records do not replay: {e}"),
                    },
                )?;
            replica.set_schema(schema);
            replica
        };
        let manager = CoordinationFreeManager::from_replica(manager_config, replica);
        let rng = Jitter(
            config.seed ^ (position as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ incarnation,
        );
        let raft_config = raft::Config {
            id: raft_id_of(id),
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied: recovered.applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let applied = recovered.applied;
        let raw = RawNode::new(&raft_config, recovered.store, &logger())?;
        log.persist(vec![RaftRecord::Incarnation(incarnation)])?;
        // No role seen yet: the first `note_role` replaces `raft`'s thread-RNG timeout.
        let seen_role = (u64::MAX, StateRole::Leader);
        let mut node = Self {
            id,
            members: membership.nodes(),
            was_member: was_member || membership.get(id).is_some(),
            membership,
            compact_for_newcomer: false,
            raw,
            manager,
            log,
            config,
            incarnation,
            next_seq: 0,
            pending: BTreeMap::new(),
            drain_waiters: BTreeMap::new(),
            own_removal_after: 0,
            unasked_reads: Vec::new(),
            asked_reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            ticks: 0,
            applied,
            applied_writes,
            rng,
            seen_role,
            snapshot_since: BTreeMap::new(),
            out: NodeOutput::default(),
            early: Vec::new(),
            awaiting: Vec::new(),
            unsynced: false,
            staged_ready: 0,
            persisted_ready: 0,
        };
        node.note_role();
        Ok(node)
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The group's members (voters and learners), sorted: those of the log's latest applied
    /// membership, else those [`RaftNode::open`] was given. A node that joins is not among them
    /// until the change adding it applies here; a removed node no longer is.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The group's membership: each member's Raft id, address and whether it votes.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The replica (reads here are local: causal, not linearizable; use [`RaftNode::read`]).
    pub fn replica(&self) -> &Replica {
        &self.manager.replica
    }

    /// The replica with the coordination-free manager's vocabulary.
    pub(crate) fn manager(&self) -> &CoordinationFreeManager {
        &self.manager
    }

    /// Installs a newer schema (columns are only ever added). Every node of the cluster must
    /// be given the same columns before transactions use them.
    pub fn set_schema(&mut self, schema: Schema) {
        self.manager.set_schema(schema);
    }

    /// The durable log, to change it between steps (e.g. record a schema).
    pub(crate) fn durable_log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// Snapshots the replica at the applied index now (it supersedes every earlier record),
    /// e.g. when coordination-free records, which no entry count covers, grew the log.
    pub fn compact(&mut self) -> Result<(), RaftError> {
        self.snapshot_at_applied()
    }

    /// The durable log.
    pub fn durable_log(&self) -> &L {
        &self.log
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Whether this node believes it leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.member_of(self.raw.raft.leader_id)
    }

    /// The last log index applied to the replica.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The highest index this node knows committed.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The index of the node's latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_ref().get_metadata().index
    }

    /// The durable hard state: `(term, vote, commit)`.
    pub fn hard_state(&self) -> (u64, u64, u64) {
        let hs = self.raw.store().hard_state();
        (hs.term, hs.vote, hs.commit)
    }

    /// The term and command bytes of log entry `index`, if the log still holds it (not
    /// compacted into a snapshot).
    pub fn log_entry(&self, index: u64) -> Option<(u64, Vec<u8>)> {
        let store = self.raw.store();
        let first = store.entries_ref().first()?.index;
        let entry = store
            .entries_ref()
            .get(usize::try_from(index.checked_sub(first)?).ok()?)?;
        Some((entry.term, entry.data.to_vec()))
    }

    /// Whether a [`RaftNode::drain`] has something to do: Raft holds a ready (proposals, received
    /// messages, elections), a staged ready waits for its sync, output waits to be handed out,
    /// or the replica has records or messages.
    pub fn has_work(&self) -> bool {
        self.raw.has_ready()
            || !self.unasked_reads.is_empty()
            || self.persisted_ready < self.staged_ready
            || self.unsynced
            || !self.awaiting.is_empty()
            || !self.early.is_empty()
            || !self.out.messages.is_empty()
            || !self.out.outcomes.is_empty()
            || self.manager.replica.has_ready()
    }

    /// Proposals waiting for an outcome.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn member_of(&self, raft_id: u64) -> Option<NodeId> {
        if raft_id == INVALID_ID {
            return None;
        }
        self.membership.node_of(raft_id)
    }

    fn raft_id(&self, node: NodeId) -> Result<u64, RaftError> {
        self.membership
            .get(node)
            .map(|m| m.raft_id)
            .ok_or(RaftError::UnknownMember { node })
    }

    // ------------------------------------------------------------------ clients

    /// Submits a transaction in `mode`: coordination-free commits apply locally at once;
    /// coordinated ones (and, in `Auto`, any transaction holding a non-algebraic operation or
    /// touching a register column) are proposed whole to the log. Refusals change nothing.
    pub fn submit(
        &mut self,
        tx: AlgebraicTransaction,
        mode: TransactionMode,
    ) -> Result<Submitted, RaftError> {
        let local = match mode {
            TransactionMode::CoordinationFree => true,
            TransactionMode::Coordinated => false,
            TransactionMode::Auto => self.is_all_algebraic(&tx),
        };
        if local {
            self.commit_local(tx).map(Submitted::Local)
        } else {
            self.propose(tx).map(Submitted::Proposed)
        }
    }

    /// Commits a coordination-free transaction on this node's replica at once. Acknowledge it
    /// once the next [`RaftNode::drain`] has persisted its records.
    pub fn commit_local(&mut self, tx: AlgebraicTransaction) -> Result<Dot, RaftError> {
        self.check_writable()?;
        self.manager
            .replica
            .commit(tx)
            .map(|receipt| receipt.dot)
            .map_err(|e| RaftError::Refused(Box::new(e)))
    }

    /// Whether this node is retired by a draining removal ([`RaftNode::propose_remove_member`]):
    /// it then refuses writes until it is removed, and after (the network layer refuses them
    /// once it is no member).
    pub fn is_retired(&self) -> bool {
        self.membership.is_retired(self.id)
    }

    /// Refuses writes on a retired node (its own commits must stop at a counter it knows, so
    /// that it can tell when every other member holds all of them) and on a removed one (no
    /// member would take them from it: acknowledged, they would be lost). Checked here, where
    /// the removal applies, so no write slips in before the layers above learn of it.
    fn check_writable(&self) -> Result<(), RaftError> {
        let removed = self.was_member && self.membership.get(self.id).is_none();
        if self.is_retired() || removed {
            return Err(RaftError::Retired { node: self.id });
        }
        Ok(())
    }

    fn is_all_algebraic(&self, tx: &AlgebraicTransaction) -> bool {
        let schema = self.manager.replica.schema();
        tx.operations().iter().all(|op| {
            op.op_type.is_conflict_free()
                && schema
                    .column(op.key.table(), op.key.column())
                    .is_ok_and(|spec| spec.merge().is_conflict_free())
        })
    }

    /// Proposes a coordinated transaction. It is validated here (refused whole with
    /// [`RaftError::Refused`] if invalid) and answered later by a [`ClientOutcome`].
    pub fn propose(&mut self, tx: AlgebraicTransaction) -> Result<ProposalId, RaftError> {
        self.check_writable()?;
        let update = self
            .manager
            .replica
            .prepare_ordered(tx)
            .map_err(|e| RaftError::Refused(Box::new(e)))?;
        let id = self.next_id();
        let update = Box::new(Record::Ordered { index: 0, update });
        self.propose_command(Command::Write { id, update })?;
        Ok(id)
    }

    /// Proposes a schema change: every member installs `schema` at the same place in the log,
    /// so no entry is applied under a schema one member has and another lacks. Answered by
    /// [`ClientOutcome::SchemaChanged`].
    pub(crate) fn propose_schema(&mut self, schema: Schema) -> Result<ProposalId, RaftError> {
        let id = self.next_id();
        self.propose_command(Command::Schema {
            id,
            schema: Box::new(schema),
        })?;
        Ok(id)
    }

    /// Starts a linearizable read of `keys` (through the log).
    pub fn read(&mut self, keys: Vec<CellKey>) -> Result<ProposalId, RaftError> {
        for key in &keys {
            self.manager
                .replica
                .schema()
                .column(key.table(), key.column())
                .map_err(|source| {
                    RaftError::Refused(Box::new(LocalCommitError::InvalidOperations {
                        errors: vec![(key.clone(), source)],
                    }))
                })?;
        }
        let id = self.next_id();
        self.propose_command(Command::Read { id, keys })?;
        Ok(id)
    }

    /// Starts a linearizable read by Raft's read index (Raft thesis §6.4), writing nothing to
    /// the log: the leader notes its commit index, confirms with a quorum's heartbeat answers
    /// that it is still the leader (and has committed an entry of its term), and sends the
    /// index back; the read is answered ([`ClientOutcome::Read`] with no values and that index)
    /// once this node has applied the log up to it. Every transaction acknowledged before this
    /// call was committed at or below that index. The reads started between two drains share
    /// one request (one heartbeat round), sent at the next drain. Refused with
    /// [`RaftError::NoLeader`] while no leader is known; a request the leader never answers (it
    /// lost leadership) times out as a proposal does, and may simply be retried.
    pub fn read_index(&mut self) -> Result<ProposalId, RaftError> {
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(RaftError::NoLeader);
        }
        let id = self.next_id();
        self.unasked_reads.push(id);
        self.pending.insert(
            id,
            self.ticks + u64::from(self.config.proposal_timeout_ticks),
        );
        self.limit_consensus()?;
        Ok(id)
    }

    /// Asks the leader for one read index on behalf of every read started since the last
    /// request (kept for later while no leader is known).
    fn ask_read_index(&mut self) {
        if self.unasked_reads.is_empty() || self.raw.raft.leader_id == INVALID_ID {
            return;
        }
        let reads = std::mem::take(&mut self.unasked_reads);
        let key = reads[0];
        let context = postcard::to_allocvec(&key).expect("encoding to a Vec cannot fail");
        self.raw.read_index(context);
        self.asked_reads.insert(key, reads);
    }

    /// Notes the read indexes the leader confirmed, then serves those this node has applied.
    fn note_read_states(&mut self, states: Vec<raft::ReadState>) {
        for state in states {
            // Only this node's own requests come back to it; a context that names no request
            // of its (or one whose reads all timed out) has nobody waiting.
            let Ok(key) = postcard::from_bytes::<ProposalId>(&state.request_ctx) else {
                continue;
            };
            for id in self.asked_reads.remove(&key).unwrap_or_default() {
                if self.pending.contains_key(&id) {
                    self.confirmed_reads.push((state.index, id));
                }
            }
        }
        self.serve_confirmed_reads();
    }

    /// Answers every confirmed read whose index this node has applied.
    fn serve_confirmed_reads(&mut self) {
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed_reads = waiting;
        for (index, id) in ready {
            if self.pending.remove(&id).is_some() {
                self.out.outcomes.push(ClientOutcome::Read {
                    id,
                    index,
                    values: Vec::new(),
                });
            }
        }
    }

    /// Proposes adding `node`, reachable at `address`, to the group. It joins as a learner
    /// (it receives the log but does not vote, so a newcomer far behind cannot stall commits);
    /// the leader promotes it to voter once it has caught up. Answered by
    /// [`ClientOutcome::MembershipChanged`] when the addition applies here. Refused at once,
    /// proposing nothing, if `node` is already a member ([`RaftError::AlreadyMember`]) or its
    /// Raft id is a member's ([`RaftError::Config`]).
    pub fn propose_add_member(
        &mut self,
        node: NodeId,
        address: String,
    ) -> Result<ProposalId, RaftError> {
        self.propose_member_change(ChangeKind::AddLearner, node, address)
    }

    /// Starts a draining removal of `node`, which loses none of the commits it acknowledged.
    ///
    /// First `node` is retired through the log (every member marks it at the same index, and
    /// the mark survives restarts and snapshots with the membership): applying it, `node`
    /// refuses writes ([`RaftError::Retired`]), so its own commits stop at a counter it knows.
    /// It stays a member, and anti-entropy carries those commits to the others; once the
    /// clocks its peers reported cover that counter, `node` proposes its own removal. The
    /// returned proposal is answered by [`ClientOutcome::MembershipChanged`] when the removal
    /// applies here, or by [`RaftError::NotDrained`] after the proposal timeout (counted
    /// again from the retirement). Asking again for a node already retired proposes nothing
    /// and waits again. Refused at once if `node` is not a member
    /// ([`RaftError::UnknownMember`]) or is the last voter ([`RaftError::LastVoter`]).
    /// [`RaftNode::propose_force_remove_member`] removes a node that is gone for good.
    pub fn propose_remove_member(&mut self, node: NodeId) -> Result<ProposalId, RaftError> {
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(RaftError::NoLeader);
        }
        self.membership.check_retire(node)?;
        let id = self.next_id();
        if self.membership.is_retired(node) {
            self.pending.insert(
                id,
                self.ticks + u64::from(self.config.proposal_timeout_ticks),
            );
        } else {
            self.propose_command(Command::Retire { id, node })?;
        }
        self.drain_waiters.insert(id, node);
        Ok(id)
    }

    /// Proposes removing `node` from the group at once, without waiting for it to drain: what
    /// only `node` held (coordination-free commits it acknowledged but had not yet sent) is
    /// lost with it. Meant for a node that is gone for good. Every member stops counting it at
    /// the same log index (Raft's quorum, the replica's causal stability, the peers it talks
    /// to). Refused at once if it is not a member ([`RaftError::UnknownMember`]) or is the
    /// last voter ([`RaftError::LastVoter`]); a leader asked to remove itself hands leadership
    /// to another voter first and answers [`RaftError::LeaderTransfer`] (retry).
    pub fn propose_force_remove_member(&mut self, node: NodeId) -> Result<ProposalId, RaftError> {
        if node == self.id && self.is_leader() {
            return match self.transfer_leadership() {
                Some(to) => Err(RaftError::LeaderTransfer { to }),
                None => Err(RaftError::LastVoter { node }),
            };
        }
        self.propose_member_change(ChangeKind::Remove, node, String::new())
    }

    /// Hands leadership to another voter; returns it, or `None` if there is none.
    fn transfer_leadership(&mut self) -> Option<NodeId> {
        let (to, raft_id) = self
            .membership
            .iter()
            .find(|(other, m)| *other != self.id && m.voter)
            .map(|(other, m)| (other, m.raft_id))?;
        self.raw.transfer_leader(raft_id);
        Some(to)
    }

    /// As a retired member, proposes its own removal once every other member's clock, as
    /// reported to this replica, covers this node's own counter: it takes no writes, so those
    /// members then hold every commit it acknowledged. A leader hands leadership on first
    /// (Raft's leader cannot remove itself here). Nobody waits for this proposal: the callers
    /// of the removal wait for the change to apply, whoever proposed it.
    fn propose_own_removal_once_drained(&mut self) {
        if !self.is_retired()
            || self.ticks < self.own_removal_after
            || self.raw.raft.leader_id == INVALID_ID
        {
            return;
        }
        let own = self.manager.replica.clock().get(self.id);
        let replica = &self.manager.replica;
        // A node that never committed anything has nothing to hand over.
        let drained = own == 0
            || self
                .membership
                .iter()
                .filter(|(node, _)| *node != self.id)
                .all(|(node, _)| {
                    replica
                        .peer_clock(node)
                        .is_some_and(|c| c.get(self.id) >= own)
                });
        if !drained {
            return;
        }
        if self.is_leader() {
            self.transfer_leadership();
            self.own_removal_after = self.ticks + self.config.election_tick as u64;
            return;
        }
        let change = MemberChange {
            id: self.next_id(),
            kind: ChangeKind::Remove,
            node: self.id,
            address: String::new(),
        };
        if self.membership.check(&change).is_ok() {
            let _ = self.propose_change(&change);
        }
        // Proposed again after an election timeout until it applies: a leader silently drops a
        // configuration change while another is pending (a newcomer's promotion, say), and a
        // repeat that commits after the removal is skipped alike on every member.
        self.own_removal_after = self.ticks + self.config.election_tick as u64;
    }

    /// Answers the callers waiting for draining removals of nodes that are no longer members
    /// (removed at log `index`).
    fn answer_drain_waiters(&mut self, index: u64) {
        let membership = &self.membership;
        let (done, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut self.drain_waiters)
                .into_iter()
                .partition(|(_, node)| membership.get(*node).is_none());
        self.drain_waiters = waiting;
        for id in done.into_keys() {
            if self.pending.remove(&id).is_some() {
                self.out.outcomes.push(ClientOutcome::MembershipChanged {
                    id,
                    index,
                    members: self.members.clone(),
                });
            }
        }
    }

    /// Applies the retirement of `node` ordered at log `index` (the record that makes it
    /// durable is returned if it changed the table). The proposer's caller keeps waiting, now
    /// for the removal, under a fresh timeout.
    fn apply_retire(&mut self, id: ProposalId, node: NodeId) -> Option<RaftRecord> {
        if self.membership.get(node).is_none() {
            // Removed meanwhile (forced, or drained by an earlier request): nothing to retire.
            if self.drain_waiters.remove(&id).is_some() && self.pending.remove(&id).is_some() {
                self.out.outcomes.push(ClientOutcome::Failed {
                    id,
                    error: RaftError::UnknownMember { node },
                });
            }
            return None;
        }
        if let Some(deadline) = self.pending.get_mut(&id) {
            *deadline = self.ticks + u64::from(self.config.proposal_timeout_ticks);
        }
        self.membership
            .retire(node)
            .then(|| RaftRecord::Membership(Box::new(self.membership.clone())))
    }

    fn propose_member_change(
        &mut self,
        kind: ChangeKind,
        node: NodeId,
        address: String,
    ) -> Result<ProposalId, RaftError> {
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(RaftError::NoLeader);
        }
        if self.is_leader() && self.raw.raft.has_pending_conf() {
            return Err(RaftError::MembershipPending);
        }
        let change = MemberChange {
            id: self.next_id(),
            kind,
            node,
            address,
        };
        self.membership.check(&change)?;
        self.propose_change(&change)?;
        self.pending.insert(
            change.id,
            self.ticks + u64::from(self.config.proposal_timeout_ticks),
        );
        self.note_role();
        Ok(change.id)
    }

    fn propose_change(&mut self, change: &MemberChange) -> Result<(), RaftError> {
        let (raft_change, context) = change.to_raft();
        match self.raw.propose_conf_change(context, raft_change) {
            Ok(()) => Ok(()),
            Err(raft::Error::ProposalDropped) => Err(RaftError::NoLeader),
            Err(other) => Err(other.into()),
        }
    }

    /// As leader, proposes making a learner a voter once it holds the log up to the commit
    /// index less [`LEARNER_CATCH_UP_SLACK`] (one change at a time, as Raft requires).
    fn promote_caught_up_learners(&mut self) {
        if !self.is_leader() || self.raw.raft.has_pending_conf() {
            return;
        }
        let committed = self.raw.raft.raft_log.committed;
        let caught_up = self.membership.iter().find(|(_, member)| {
            !member.voter
                && self.raw.raft.prs().get(member.raft_id).is_some_and(|p| {
                    // Replicating within the slack, or holding every committed entry in any
                    // state: on an idle log a learner fed a snapshot may stay probed (nothing
                    // new is appended to move it on), and it holds everything all the same.
                    (p.state == ProgressState::Replicate
                        && p.matched + LEARNER_CATCH_UP_SLACK >= committed)
                        || p.matched >= committed
                })
        });
        let Some((node, _)) = caught_up else {
            return;
        };
        let change = MemberChange {
            id: self.next_id(),
            kind: ChangeKind::Promote,
            node,
            address: String::new(),
        };
        // Nobody waits for it: a dropped promotion is proposed again at a later tick.
        let _ = self.propose_change(&change);
    }

    /// Applies the configuration entry at log `index` if the membership allows it (the same
    /// check on every member, so all take or skip it alike): Raft's configuration, the table,
    /// and the replica's members change together. Returns the record to persist, if any.
    fn apply_member_change(&mut self, entry: &Entry) -> Result<Option<RaftRecord>, RaftError> {
        let index = entry.index;
        let (raft_change, change) = MemberChange::decode(index, &entry.data, &entry.context)?;
        if let Err(error) = self.membership.check(&change) {
            if self.pending.remove(&change.id).is_some() {
                self.out.outcomes.push(ClientOutcome::Failed {
                    id: change.id,
                    error,
                });
            }
            return Ok(None);
        }
        self.raw.apply_conf_change(&raft_change)?;
        self.membership.apply(&change);
        self.members = self.membership.nodes();
        self.was_member |= self.membership.get(self.id).is_some();
        match change.kind {
            ChangeKind::AddLearner => {
                self.manager.replica.add_member(change.node);
                self.compact_for_newcomer = true;
            }
            ChangeKind::Promote => {}
            ChangeKind::Remove => {
                self.manager.replica.remove_member(change.node);
                self.answer_drain_waiters(index);
            }
        }
        self.raw
            .mut_store()
            .set_conf_state(self.membership.conf_state());
        if self.pending.remove(&change.id).is_some() {
            self.out.outcomes.push(ClientOutcome::MembershipChanged {
                id: change.id,
                index,
                members: self.members.clone(),
            });
        }
        Ok(Some(RaftRecord::Membership(Box::new(
            self.membership.clone(),
        ))))
    }

    /// Makes the replica count exactly the table's members (after a snapshot replaced the
    /// table): the same calls a member makes when it applies the changes one by one.
    fn align_replica_members(&mut self) {
        let counted: Vec<NodeId> = self.manager.replica.members().collect();
        for node in &counted {
            if self.membership.get(*node).is_none() {
                self.manager.replica.remove_member(*node);
            }
        }
        for node in self.membership.nodes() {
            if !counted.contains(&node) {
                self.manager.replica.add_member(node);
            }
        }
    }

    fn next_id(&mut self) -> ProposalId {
        self.next_seq += 1;
        ProposalId {
            node: self.id,
            incarnation: self.incarnation,
            seq: self.next_seq,
        }
    }

    fn propose_command(&mut self, command: Command) -> Result<(), RaftError> {
        if self.raw.raft.leader_id == INVALID_ID {
            return Err(RaftError::NoLeader);
        }
        let id = match &command {
            Command::Write { id, .. }
            | Command::Read { id, .. }
            | Command::Schema { id, .. }
            | Command::Retire { id, .. } => *id,
        };
        let data = postcard::to_allocvec(&command).expect("encoding to a Vec cannot fail");
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {}
            Err(raft::Error::ProposalDropped) => return Err(RaftError::NoLeader),
            Err(other) => return Err(other.into()),
        }
        self.pending.insert(
            id,
            self.ticks + u64::from(self.config.proposal_timeout_ticks),
        );
        self.note_role();
        self.limit_consensus()
    }

    /// While proposals of this node await their outcome, anti-entropy may not bring the replica
    /// news of the log beyond what this node applied: it must apply its own entries itself, in
    /// log order, to learn whether their conditions held.
    fn limit_consensus(&mut self) -> Result<(), RaftError> {
        let limit = (!self.pending.is_empty()).then(|| {
            let held = self
                .manager
                .replica
                .clock()
                .get(rhizo_commit::consensus_origin());
            held.max(self.applied)
        });
        self.manager
            .replica
            .limit_consensus(limit)
            .map_err(|e| RaftError::Message {
                from: self.id,
                source: Box::new(e),
            })
    }

    // ------------------------------------------------------------------ driving

    /// Advances logical time by one tick: elections, heartbeats, proposal timeouts.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.raw.tick();
        self.note_role();
        self.unstick_snapshots();
        self.promote_caught_up_learners();
        self.propose_own_removal_once_drained();
        let now = self.ticks;
        let expired: Vec<ProposalId> = self
            .pending
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        // A request whose reads all timed out is answered to nobody.
        let expired_now = |id: &ProposalId| self.pending.get(id).is_none_or(|d| *d <= now);
        self.asked_reads
            .retain(|_, reads| !reads.iter().all(expired_now));
        self.unasked_reads.retain(|id| !expired_now(id));
        for id in expired {
            self.pending.remove(&id);
            let error = match self.drain_waiters.remove(&id) {
                Some(node) => RaftError::NotDrained { node },
                None => RaftError::Timeout {
                    ticks: self.config.proposal_timeout_ticks,
                },
            };
            self.out.outcomes.push(ClientOutcome::Failed { id, error });
        }
        // Buffered deltas are applied at the next drain, whose errors are reported there.
        let _ = self.limit_consensus();
    }

    /// Reports the fate of snapshots sent to followers, as raft-rs expects its application to.
    ///
    /// A leader that sends a follower a snapshot pauses that follower until the application
    /// reports the snapshot finished or failed. On this network a snapshot or its acknowledgement
    /// can be lost, and raft-rs can also miss the acknowledgement's effect (a follower whose
    /// match index already reached the snapshot's does not leave the state); either way the
    /// follower was never sent another entry, and the cluster stalled with it behind (the Raft
    /// seed sweep found it). So a follower whose match index reached the snapshot is reported
    /// finished, and one left in that state for an election timeout is reported failed, which
    /// sends raft-rs back to probing it (and to a new snapshot if one is still needed).
    fn unstick_snapshots(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            self.snapshot_since.clear();
            return;
        }
        let now = self.ticks;
        let timeout = self.config.election_tick as u64;
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        let mut in_snapshot = BTreeMap::new();
        for (id, progress) in self.raw.raft.prs().iter() {
            if progress.state != ProgressState::Snapshot {
                continue;
            }
            let since = self.snapshot_since.get(id).copied().unwrap_or(now);
            if progress.matched >= progress.pending_snapshot {
                finished.push(*id);
            } else if now.saturating_sub(since) >= timeout {
                failed.push(*id);
            } else {
                in_snapshot.insert(*id, since);
            }
        }
        self.snapshot_since = in_snapshot;
        for id in finished {
            self.raw.report_snapshot(id, SnapshotStatus::Finish);
        }
        for id in failed {
            self.raw.report_snapshot(id, SnapshotStatus::Failure);
        }
    }

    /// Tells Raft a message to `peer` was not delivered: it stops streaming to the peer and
    /// probes it again (its flow control, as raft-rs expects its transport to report).
    pub fn report_unreachable(&mut self, peer: NodeId) {
        if let Ok(id) = self.raft_id(peer) {
            self.raw.report_unreachable(id);
        }
    }

    /// Queues a replica anti-entropy exchange with `peer`.
    pub fn sync_with(&mut self, peer: NodeId) {
        self.manager.replica.sync_with(peer);
    }

    /// The peers the replica believes lack something it holds.
    pub fn peers_behind(&self) -> Vec<NodeId> {
        self.manager.replica.peers_behind().collect()
    }

    /// Hands the node a message from `from`.
    pub fn step(&mut self, from: NodeId, message: RaftWire) -> Result<(), RaftError> {
        self.raft_id(from)?;
        match message {
            RaftWire::Raft(message) => {
                if self.is_stale_snapshot(&message) {
                    // Installing it could bring back what this replica's garbage collection
                    // removed: refused, the leader sends a fresh one (see `RaftLogStore`).
                    return Ok(());
                }
                match self.raw.step(*message) {
                    // A stale or misdirected message is not an error of this node.
                    Ok(()) | Err(raft::Error::StepPeerNotFound | raft::Error::StepLocalMsg) => {}
                    Err(raft::Error::ProposalDropped) => {}
                    Err(other) => return Err(other.into()),
                }
                self.note_role();
            }
            RaftWire::Replica(message) => {
                self.manager
                    .replica
                    .step(from, *message)
                    .map_err(|e| RaftError::Message {
                        from,
                        source: Box::new(e),
                    })?;
            }
        }
        Ok(())
    }

    /// Whether `message` carries a snapshot whose replica image is older than what this replica
    /// knows every member has seen.
    fn is_stale_snapshot(&self, message: &RaftMessage) -> bool {
        let Some(snapshot) = message.snapshot.as_ref() else {
            return false;
        };
        match SnapshotData::decode(&snapshot.data).map(|decoded| decoded.image) {
            Ok(Record::Snapshot(image)) => {
                image.id() != self.id && self.manager.replica.is_stale(image.clock())
            }
            // A snapshot that does not decode fails at install, with its reason.
            _ => false,
        }
    }

    /// Redraws the election timeout from the node's own stream when role or term changed.
    ///
    /// `raft` redraws it (from the thread RNG) exactly when it resets, which it does only on a
    /// change of term or role; overriding it right after each call keeps runs reproducible.
    fn note_role(&mut self) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now != self.seen_role {
            self.seen_role = now;
            let timeout = self.config.election_tick + self.rng.below(self.config.election_tick);
            self.raw.raft.set_randomized_election_timeout(timeout);
        }
    }

    /// Processes everything Raft and the replica have ready: persists it (through the durable
    /// log, before anything that depends on it leaves), applies committed entries, and returns
    /// the messages and outcomes — all of which may be acted on at once.
    pub fn drain(&mut self) -> Result<NodeOutput, RaftError> {
        self.stage()?;
        let early = std::mem::take(&mut self.early);
        self.out.messages.splice(0..0, early);
        self.complete()?;
        Ok(std::mem::take(&mut self.out))
    }

    /// Handles everything Raft has ready without waiting for the log's sync, and returns the
    /// messages that may leave before it: a leader's appends and heartbeats (Raft thesis
    /// §10.2.1 — the leader counts its own copy only once [`RaftNode::drain`] synced it, so an
    /// entry commits only when a quorum holds it durably). Everything else waits for the next
    /// [`RaftNode::drain`], which a caller must make next.
    pub fn take_messages_before_sync(&mut self) -> Result<Vec<(NodeId, RaftWire)>, RaftError> {
        self.stage()?;
        Ok(std::mem::take(&mut self.early))
    }

    /// Writes each ready's records (unsynced), applies its committed entries (all of them
    /// durable here already: raft-rs hands out only entries this node reported persisted), holds
    /// its messages that need the records durable, and passes it back to raft-rs as written but
    /// not persisted.
    fn stage(&mut self) -> Result<(), RaftError> {
        // Coordination-free commits and merges made since the last drain are persisted under
        // their own policy first: the records of applying entries below are not synced, and a
        // snapshot must not cover a record written after it.
        self.persist_replica_ready()?;
        self.ask_read_index();
        while self.raw.has_ready() {
            let mut ready = self.raw.ready();
            self.staged_ready = ready.number();
            let early = ready.take_messages();
            self.queue_raft_messages(early, true);
            let mut records = Vec::new();
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                records.extend(self.install_received_snapshot(snapshot)?);
                self.unsynced = true;
            }
            if !ready.entries().is_empty() {
                records.push(self.raw.mut_store().append(ready.entries())?);
                self.unsynced = true;
            }
            if let Some(hs) = ready.hs() {
                // A new term or vote must be durable before the messages that reveal it leave;
                // a commit index alone is learnt again from the leader (rule 6 of
                // docs/proofs/coordinated_path.md).
                let durable = self.raw.store().hard_state();
                self.unsynced |= hs.term != durable.term || hs.vote != durable.vote;
                records.push(self.raw.mut_store().set_hard_state(hs.clone()));
            }
            // After the entries and the commit index they depend on: a durable `Applied(i)`
            // implies both are durable (the log keeps a prefix), as recovery requires.
            let committed = ready.take_committed_entries();
            records.extend(self.apply_entries(committed)?);
            self.note_read_states(ready.take_read_states());
            self.awaiting.extend(ready.take_persisted_messages());
            // A schema the log ordered is synced as soon as it is applied: a member that forgot
            // one it had applied would refuse its peers' state in the new columns until it
            // applied the entry again (the mixed sweep's seed 47 finds it).
            // So is a membership (a retired member must still refuse writes after a restart).
            self.unsynced |= records
                .iter()
                .any(|r| matches!(r, RaftRecord::Schema(_) | RaftRecord::Membership(_)));
            self.log.write_unsynced(records)?;
            self.raw.advance_append_async(ready);
            self.note_role();
            if std::mem::take(&mut self.compact_for_newcomer) {
                self.snapshot_at_applied()?;
            }
            self.maybe_compact()?;
            self.limit_consensus()?;
        }
        Ok(())
    }

    /// Syncs what [`RaftNode::stage`] wrote, tells raft-rs it is persisted (only now does a
    /// leader count its own copy), releases the messages that waited for it, and handles what
    /// that made ready (commits, applies) until nothing is left; then the replica's own records
    /// (made durable) and messages.
    fn complete(&mut self) -> Result<(), RaftError> {
        loop {
            if self.unsynced {
                self.log.sync_written()?;
                self.unsynced = false;
            }
            if self.persisted_ready < self.staged_ready {
                self.persisted_ready = self.staged_ready;
                self.raw.on_persist_ready(self.persisted_ready);
            }
            // raft-rs accepts an applied index only up to what it knows persisted (a received
            // snapshot included), so the entries applied while staging are reported here.
            self.raw.advance_apply();
            let awaiting = std::mem::take(&mut self.awaiting);
            self.queue_raft_messages(awaiting, false);
            if !self.raw.has_ready() {
                break;
            }
            self.stage()?;
            let early = std::mem::take(&mut self.early);
            self.out.messages.extend(early);
        }
        self.persist_replica_ready()?;
        if self.raw.store().take_snapshot_request() {
            self.snapshot_at_applied()?;
            self.raw.store().mark_fresh();
        }
        Ok(())
    }

    /// The replica's own output (coordination-free commits, merges, anti-entropy): records
    /// persisted under the sync policy first, then its messages queued.
    fn persist_replica_ready(&mut self) -> Result<(), RaftError> {
        let ready = self.manager.replica.take_ready();
        if !ready.records.is_empty() {
            self.log.persist(replica_records(ready.records).collect())?;
        }
        for (to, message) in ready.messages {
            self.out
                .messages
                .push((to, RaftWire::Replica(Box::new(message))));
        }
        Ok(())
    }

    /// Queues Raft's messages: `early` ones may leave before the log's sync.
    fn queue_raft_messages(&mut self, messages: Vec<RaftMessage>, early: bool) {
        for message in messages {
            if let Some(to) = self.member_of(message.to) {
                let queue = if early {
                    &mut self.early
                } else {
                    &mut self.out.messages
                };
                queue.push((to, RaftWire::Raft(Box::new(message))));
            }
        }
    }

    /// Applies committed entries in order; returns the records to persist.
    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<RaftRecord>, RaftError> {
        let mut records = Vec::new();
        let mut last = None;
        for entry in entries {
            last = Some(entry.index);
            if entry.index <= self.applied {
                continue; // covered by a snapshot already installed
            }
            self.out
                .applied
                .push((entry.index, entry.term, entry.data.to_vec()));
            match entry.get_entry_type() {
                EntryType::EntryConfChangeV2 => {
                    records.extend(self.apply_member_change(&entry)?);
                    continue;
                }
                // Never proposed here (changes are `ConfChangeV2`); skipped alike everywhere.
                EntryType::EntryConfChange => continue,
                EntryType::EntryNormal if entry.data.is_empty() => continue, // a new leader's
                EntryType::EntryNormal => {}
            }
            let command: Command =
                postcard::from_bytes(&entry.data).map_err(|e| RaftError::Corrupt {
                    index: entry.index,
                    reason: e.to_string(),
                })?;
            match command {
                Command::Write { id, update } => self.apply_write(entry.index, id, *update)?,
                Command::Schema { id, schema } => {
                    if let Some(record) = self.apply_schema(entry.index, id, schema) {
                        records.push(record);
                    }
                }
                Command::Read { id, keys } => self.serve_read(entry.index, id, keys),
                Command::Retire { id, node } => records.extend(self.apply_retire(id, node)),
            }
        }
        records.extend(replica_records(self.manager.replica.take_ready().records));
        if let Some(last) = last {
            self.applied = self.applied.max(last);
            records.push(RaftRecord::Applied(self.applied));
        }
        Ok(records)
    }

    /// Applies the coordinated transaction at log `index` (a `Record::Ordered`) to the replica
    /// and, if this node proposed it, answers its client.
    fn apply_write(&mut self, index: u64, id: ProposalId, update: Record) -> Result<(), RaftError> {
        if !self.applied_writes.admit(id) {
            // A repeat or an overtaken proposal: skipped alike on every member.
            if self.pending.remove(&id).is_some() {
                self.out.outcomes.push(ClientOutcome::Failed {
                    id,
                    error: RaftError::Overtaken { index },
                });
            }
            return Ok(());
        }
        let Record::Ordered { update, .. } = update else {
            return Err(RaftError::Corrupt {
                index,
                reason: "a write entry without an ordered update".to_owned(),
            });
        };
        let outcome = self
            .manager
            .replica
            .apply_ordered(index, &update)
            .map_err(|e| match e {
                LocalCommitError::SchemaBehind { .. } => RaftError::Message {
                    from: self.id,
                    source: Box::new(e),
                },
                other => RaftError::Corrupt {
                    index,
                    reason: other.to_string(),
                },
            })?;
        if self.pending.remove(&id).is_some() {
            self.out.outcomes.push(match outcome {
                // Merged from a peer before this node applied it: whether its conditions held
                // is not known here (the consensus limit keeps this from happening while the
                // node waits for its proposals).
                OrderedOutcome::AlreadyApplied => ClientOutcome::Failed {
                    id,
                    error: RaftError::OutcomeUnknown { index },
                },
                outcome => ClientOutcome::Committed { id, index, outcome },
            });
        }
        Ok(())
    }

    /// Installs the schema ordered at log `index` if it is newer than the one in force (the
    /// record that makes it durable is returned), and answers its proposer.
    fn apply_schema(
        &mut self,
        index: u64,
        id: ProposalId,
        schema: Box<Schema>,
    ) -> Option<RaftRecord> {
        let mut record = None;
        if schema.version() > self.manager.schema().version() {
            self.manager.set_schema((*schema).clone());
            record = Some(RaftRecord::Schema(schema));
        }
        if self.pending.remove(&id).is_some() {
            self.out.outcomes.push(ClientOutcome::SchemaChanged {
                id,
                index,
                version: self.manager.schema().version(),
            });
        }
        record
    }

    /// Answers the linearizable read ordered at log `index`, if this node proposed it: the
    /// values as of every entry before it.
    fn serve_read(&mut self, index: u64, id: ProposalId, keys: Vec<CellKey>) {
        if self.pending.remove(&id).is_some() {
            let values = keys
                .into_iter()
                .map(|k| {
                    let v = self.manager.replica.read_key(&k);
                    (k, v)
                })
                .collect();
            self.out
                .outcomes
                .push(ClientOutcome::Read { id, index, values });
        }
    }

    /// A snapshot from the leader: merge its replica image into ours (coordination-free state
    /// held only here must survive), then keep our own image as the snapshot.
    fn install_received_snapshot(
        &mut self,
        snapshot: Snapshot,
    ) -> Result<Vec<RaftRecord>, RaftError> {
        let meta = snapshot.get_metadata().clone();
        let DecodedSnapshot {
            image,
            schema,
            applied_writes,
            membership,
        } = SnapshotData::decode(&snapshot.data).map_err(|reason| RaftError::Corrupt {
            index: meta.index,
            reason,
        })?;
        let Record::Snapshot(image) = image else {
            return Err(RaftError::Corrupt {
                index: meta.index,
                reason: "snapshot data is not a replica snapshot".to_owned(),
            });
        };
        // The log may have changed the schema in entries the snapshot replaces: install it
        // first (and log it), so the image's cells of a new column are accepted.
        let mut records = Vec::new();
        if schema.version() > self.manager.schema().version() {
            self.manager.set_schema(schema.clone());
            records.push(RaftRecord::Schema(Box::new(schema)));
        }
        let from = image.id();
        self.manager
            .replica
            .merge_snapshot(*image)
            .map_err(|e| RaftError::Message {
                from,
                source: Box::new(e),
            })?;
        self.membership = membership;
        self.members = self.membership.nodes();
        self.was_member |= self.membership.get(self.id).is_some();
        self.align_replica_members();
        self.answer_drain_waiters(meta.index);
        records.push(RaftRecord::Membership(Box::new(self.membership.clone())));
        records.extend(replica_records(self.manager.replica.take_ready().records));
        self.applied_writes.join(&applied_writes);
        let own = self.own_snapshot(meta.index, meta.term);
        records.extend(self.raw.mut_store().install_snapshot(own));
        self.applied = self.applied.max(meta.index);
        records.push(RaftRecord::Applied(self.applied));
        Ok(records)
    }

    /// This node's snapshot at `index`: the replica, schema, applied-writes table and
    /// membership as applied up to there (the caller snapshots only at its applied index).
    fn own_snapshot(&self, index: u64, term: u64) -> Snapshot {
        let data = SnapshotData {
            image: wire::encode_record(&Record::Snapshot(Box::new(
                self.manager.replica.snapshot(),
            ))),
            schema: self.manager.schema().clone(),
            applied_writes: self.applied_writes.clone(),
            membership: self.membership.clone(),
        };
        let conf_state = self.membership.conf_state();
        let mut snapshot = Snapshot {
            data: data.encode().into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        snapshot
    }

    /// Snapshots the replica at the applied index once enough entries follow the last one.
    fn maybe_compact(&mut self) -> Result<(), RaftError> {
        let store = self.raw.store();
        let snapshot_index = store.snapshot_ref().get_metadata().index;
        if self.applied < snapshot_index + self.config.compact_after_entries {
            return Ok(());
        }
        self.snapshot_at_applied()
    }

    fn snapshot_at_applied(&mut self) -> Result<(), RaftError> {
        let store = self.raw.store();
        let Some(term) = store.term_of(self.applied) else {
            return Ok(());
        };
        let snapshot = self.own_snapshot(self.applied, term);
        let mut records = self.raw.mut_store().install_snapshot(snapshot);
        records.push(RaftRecord::Applied(self.applied));
        self.log.persist(records)
    }
}

/// The replica's records, as records of the Raft node's log (which keeps both kinds in order).
fn replica_records(records: Vec<Record>) -> impl Iterator<Item = RaftRecord> {
    records
        .into_iter()
        .map(|r| RaftRecord::Replica(Box::new(r)))
}
