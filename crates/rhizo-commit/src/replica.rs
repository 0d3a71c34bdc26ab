//! The replica: a pure state machine in the shape of raft-rs's `RawNode`.
//!
//! The caller commits transactions, hands it incoming messages, asks it to sync with a peer of
//! the caller's choice, and collects a [`Ready`]: records to make durable, then messages to send,
//! then commits it may acknowledge — in that order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, Schema};
use rhizo_clock::{Dot, LookupSlots, NodeId, VectorClock};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::cells::{CellId, CellStore};
use crate::index::{IndexImage, OriginIndex};
use crate::protocol::{CellEffect, CommitPath, Effects, OrderedUpdate, validate_transaction};
use crate::txn::TransactionMetadata;
use crate::{AlgebraicTransaction, CellKey, LocalCommitError, Result, VersionedUpdate};

mod delta_cells;
mod prepared;

pub(crate) use delta_cells::DeltaCells;
pub use prepared::{PreparedCell, PreparedTransaction};

/// Where a cell of a commit is: held under this id, or absent and to be inserted under this
/// hash (so that a key is hashed once per commit, whether the cell exists or not).
type Slot = std::result::Result<CellId, u64>;

/// The slots of one commit's cells, in effect order.
type Slots = SmallVec<[Slot; 4]>;

/// Local commits' cells are sealed into the index (and garbage collected) at the latest after
/// this many.
const OPEN_CELLS_LIMIT: usize = 4096;

/// How many cells a delta reads ahead before restricting them: enough misses in flight to
/// overlap their waits, few enough that the lists read stay in the first-level cache until
/// restricted.
const RESTRICT_READ_AHEAD: usize = 16;

/// How a replica behaves. The defaults suit a replica whose caller persists records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The members of the cluster, this replica included. Causal stability (and so metadata
    /// garbage collection) waits for every member. Change it with [`Replica::add_member`] and
    /// [`Replica::remove_member`].
    pub members: Vec<NodeId>,
    /// Whether the replica emits [`Record`]s. Turn off only for a purely in-memory replica that
    /// is never restarted (a crash then loses everything it had).
    pub emit_records: bool,
    /// After this many records, the replica emits a [`Record::Snapshot`] that supersedes every
    /// record before it, so a log of records stays proportional to the state.
    pub snapshot_every: usize,
    /// How many early deltas (whose base this replica has not reached yet) wait in the buffer;
    /// older ones are dropped, and anti-entropy sends their content again.
    pub max_buffered_deltas: usize,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            emit_records: true,
            snapshot_every: 4096,
            max_buffered_deltas: 64,
        }
    }
}

/// What the replica hands back to its caller; see [`Replica::take_ready`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Ready {
    /// Records to make durable, in order, before anything else in this `Ready` is acted on.
    pub records: Vec<Record>,
    /// Messages to send, each to one peer, once the records are durable.
    pub messages: Vec<(NodeId, Message)>,
    /// Local commits that may be acknowledged to their clients once the records are durable.
    pub committed: Vec<Dot>,
}

impl Ready {
    /// Empties the three lists, keeping their capacity (see [`Replica::take_ready_into`]).
    #[inline]
    pub fn clear(&mut self) {
        self.records.clear();
        self.messages.clear();
        self.committed.clear();
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.messages.is_empty() && self.committed.is_empty()
    }
}

/// What a successful local commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The dot that names the committed transaction everywhere.
    pub dot: Dot,
}

/// A message between replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// One half of a push-pull anti-entropy exchange.
    Sync(SyncMessage),
}

/// The sender's clock (a digest of everything it holds), optionally what the sender believes
/// the receiver lacks, and whether the sender wants the receiver to answer with what it lacks.
///
/// Built only by a [`Replica`] (or decoded, then checked by [`Replica::step`]): a delta's clock
/// is the message's clock, so its fields are read through accessors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncMessage {
    /// Everything the sender has delivered.
    pub(crate) clock: VectorClock,
    /// The sender's state beyond what it knew the receiver to hold.
    pub(crate) delta: Option<Delta>,
    /// Whether the receiver should answer with its own clock and what the sender lacks.
    pub(crate) reply_wanted: bool,
}

impl SyncMessage {
    /// Everything the sender has delivered.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// The sender's state beyond what it knew the receiver to hold, if it sent any.
    pub fn delta(&self) -> Option<&Delta> {
        self.delta.as_ref()
    }

    /// Whether the sender asks for what it lacks in return.
    pub fn reply_wanted(&self) -> bool {
        self.reply_wanted
    }
}

/// A batch of state, applied atomically: the full states of every cell changed by the updates
/// the sender holds beyond `base`, so one delta carries whole transactions — never part of one.
///
/// A replica applies a delta only if it holds `base` already; the union of two causally closed
/// sets of updates is causally closed, so delivery stays causal without tracking single updates.
///
/// Its fields carry invariants (cells strictly increasing by key, origin ranges indexing them,
/// a snapshot's base empty): a delta is built only by a replica, and one decoded from the wire
/// is checked whole by [`Replica::step`] before any of it is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// What the receiver must already hold. Empty for a snapshot.
    pub(crate) base: VectorClock,
    /// The sender's clock: after applying, the receiver holds at least this.
    pub(crate) clock: VectorClock,
    /// Whether this is a full snapshot (sent when the receiver is behind the sender's index).
    pub(crate) snapshot: bool,
    /// Full cell states, strictly increasing by key.
    pub(crate) cells: DeltaCells,
    /// For each origin with updates beyond `base`, which of `cells` those updates touched — so
    /// the receiver can forward them to others later. Omitted for snapshots.
    pub(crate) origins: Vec<OriginRange>,
    /// This delta's own encoding, once [`crate::wire::encoded_message_len_keeping`] has made it:
    /// not part of its value (never encoded, equal whatever it holds). Whatever changes the
    /// fields above after it is made must clear it.
    #[serde(skip)]
    pub(crate) encoded: crate::wire::KeptEncoding,
}

impl Delta {
    /// What the receiver must already hold (empty for a snapshot).
    pub fn base(&self) -> &VectorClock {
        &self.base
    }

    /// The sender's clock: after applying the delta, the receiver holds at least this.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Whether the delta is the sender's whole state (sent to a receiver too far behind for
    /// the sender's index to say what it lacks).
    pub fn is_snapshot(&self) -> bool {
        self.snapshot
    }

    /// The keys of the cells it carries, strictly increasing.
    pub fn keys(&self) -> &[CellKey] {
        self.cells.keys()
    }

    /// For each origin with updates beyond [`Delta::base`], which cells those updates touched.
    pub fn origins(&self) -> &[OriginRange] {
        &self.origins
    }
}

/// The cells an origin's updates in `(base[origin], hi]` touched, as indices into the delta's
/// cells ([`Delta::keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRange {
    /// The origin.
    pub(crate) origin: NodeId,
    /// The last of its updates covered.
    pub(crate) hi: u64,
    /// Indices into the delta's cells, strictly increasing.
    #[serde(with = "delta_cells::ascending_positions")]
    pub(crate) cells: Vec<u32>,
}

impl OriginRange {
    /// The origin whose updates these are.
    pub fn origin(&self) -> NodeId {
        self.origin
    }

    /// The last of its updates covered.
    pub fn hi(&self) -> u64 {
        self.hi
    }

    /// Indices into the delta's cells ([`Delta::keys`]), strictly increasing.
    pub fn cells(&self) -> &[u32] {
        &self.cells
    }
}

/// What a replica asks its caller to make durable. Replaying a replica's records in order with
/// [`Replica::recover`] rebuilds the replica that emitted them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A local commit.
    Commit(CommitRecord),
    /// A delta received from `from` and applied.
    Merge {
        /// The sender.
        from: NodeId,
        /// What was applied (boxed: deltas are few and large, commit records many and small,
        /// and every record is as large as the largest kind).
        delta: Box<Delta>,
    },
    /// A transaction applied at `index` of the consensus log.
    Ordered {
        /// Its log index.
        index: u64,
        /// What was applied.
        update: OrderedUpdate,
    },
    /// The whole replica; every earlier record may be discarded.
    Snapshot(Box<ReplicaSnapshot>),
}

/// A local commit as its replica records it: a [`VersionedUpdate`] without the clock.
///
/// The clock is not stored because replaying the records in order rebuilds it: a local commit's
/// clock is its replica's clock just before, with the replica's own entry ticked to `dot`.
/// Storing it would copy the whole clock (one entry per member) into every commit's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The event that names the commit; `dot.node()` is the replica that recorded it.
    pub dot: Dot,
    /// The schema version the commit was validated against.
    pub schema_version: u64,
    /// Effects grouped by cell, cells in key order.
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    pub effects: crate::protocol::Effects,
    /// The transaction's metadata.
    pub metadata: TransactionMetadata,
}

impl CommitRecord {
    /// The update this record describes, given the clock its replica had just after the
    /// commit (for example [`Replica::clock`] read before anything else reaches the replica).
    pub fn into_update(self, clock: VectorClock) -> VersionedUpdate {
        VersionedUpdate {
            dot: self.dot,
            clock,
            schema_version: self.schema_version,
            effects: self.effects,
            metadata: self.metadata,
        }
    }
}

/// What applying a log entry did.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderedOutcome {
    /// All effects took place under this dot of [`consensus_origin`].
    Applied(Dot),
    /// This replica already holds the entry (it arrived through anti-entropy first).
    AlreadyApplied,
    /// A compare-and-set condition did not hold (or a float left the finite range): no effect
    /// took place, on any replica, and the log position is consumed.
    Refused(LocalCommitError),
}

/// The origin that names updates ordered by the consensus log: the entry at log index `i` is the
/// dot `(consensus_origin(), i)` on every replica. Its "sequence" is the log's index, which may
/// skip numbers (entries that carry no transaction); a replica's clock entry for it still
/// describes a prefix — every entry up to it. Its name, `consensus-log`, is no replica's.
///
/// ```
/// assert_eq!(rhizo_commit::consensus_origin().to_string(), "consensus-log");
/// ```
pub fn consensus_origin() -> NodeId {
    NodeId::new(CONSENSUS_ORIGIN_NAME).expect("a valid node name")
}

/// The name of [`consensus_origin`]; no replica may use it.
pub(crate) const CONSENSUS_ORIGIN_NAME: &str = "consensus-log";

/// A replica's durable image, made by [`Replica::snapshot`] and read back by
/// [`Replica::recover`] (which checks it: cells strictly increasing by key, an index naming
/// cells it holds, the stable point within the clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSnapshot {
    /// Whose replica.
    pub(crate) id: NodeId,
    /// Everything delivered.
    pub(crate) clock: VectorClock,
    /// Every cell, strictly increasing by key.
    pub(crate) cells: Vec<(CellKey, CellState)>,
    /// The per-origin index of which cells recent updates touched.
    pub(crate) index: Vec<(NodeId, IndexImage)>,
    /// The causally stable point the cells' tombstones were collected against (at most
    /// `clock`): restored with them, so that a restarted replica never moves it back and keeps
    /// refusing the stale deltas it refused before.
    pub(crate) stable: VectorClock,
}

impl ReplicaSnapshot {
    /// Whose replica this is an image of.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Everything that replica had delivered.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Every cell with its state, strictly increasing by key.
    pub fn cells(&self) -> &[(CellKey, CellState)] {
        &self.cells
    }

    /// The causally stable point its tombstones were collected against.
    pub fn stable_clock(&self) -> &VectorClock {
        &self.stable
    }
}

/// Counters a replica keeps about itself (observability; not replicated, not durable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Local commits.
    pub commits: u64,
    /// Deltas applied.
    pub deltas_applied: u64,
    /// Deltas that arrived before their base and waited in the buffer.
    pub deltas_buffered: u64,
    /// Buffered deltas dropped because the buffer was full.
    pub deltas_dropped: u64,
    /// Deltas ignored because they were older than the causally stable point.
    pub deltas_stale: u64,
    /// Deltas that held nothing new.
    pub deltas_redundant: u64,
    /// Snapshots sent to peers behind the trimmed index.
    pub snapshots_sent: u64,
    /// The most deltas ever waiting in the buffer at once.
    pub peak_buffered: u64,
    /// Index entries discarded as causally stable.
    pub ranges_trimmed: u64,
}

/// One replica of the coordination-free store: cells, clock, anti-entropy and metadata GC.
///
/// Guarantees (see `docs/ARCHITECTURE.md` for the argument):
/// - **exactly-once**: each update takes effect once however often it arrives;
/// - **causal**: an update takes effect only with everything it depends on;
/// - **atomic visibility**: a read sees all of a transaction's effects or none;
/// - **convergence**: replicas that hold the same updates have equal canonical bytes;
/// - **recovery**: [`Replica::recover`] from the emitted records rebuilds this replica, and it
///   never reuses a dot.
#[derive(Debug, Clone)]
pub struct Replica {
    id: NodeId,
    /// Shared, never mutated in place: a [`PreparedCell`] validated against this very schema
    /// (the same allocation) needs no lookup to be trusted.
    schema: Arc<Schema>,
    /// Whose [`PreparedCell`] hints this replica may trust: fresh per replica value.
    identity: prepared::StoreIdentity,
    config: ReplicaConfig,
    clock: VectorClock,
    /// Where this replica's own entry was last found in `clock`: a hint, checked before use
    /// (every commit reads and advances that entry).
    own_entry: usize,
    cells: CellStore,
    index: BTreeMap<NodeId, OriginIndex>,
    /// Cells touched by local commits since the last sync; sealed into the index at the next sync.
    open_cells: OpenCells,
    /// The current members, this replica always among them (`remove_member` keeps it).
    members: BTreeSet<NodeId>,
    /// The latest clock each peer reported (reported clocks are durable, so they only grow).
    peer_clocks: BTreeMap<NodeId, VectorClock>,
    /// How many members (this replica aside) are not known to hold everything it holds: none
    /// reported, or reported a clock that does not dominate `clock`. Kept up to date wherever
    /// the clock, a reported clock or the members change, so that `is_idle`, which a driver
    /// asks after every step, looks at no clock (comparing every member's clock at every step
    /// grows with the cluster's size). Local commits update it when their cells
    /// are sealed; while cells are open, it may be short of them (and `is_idle` does not read
    /// it).
    members_behind: usize,
    /// The members (this replica aside) counted as holding everything it holds: the others
    /// are `members_behind`. Listed so that when the clock grows, only these are compared
    /// again (a member behind stays behind: its reported clock has not moved), not every
    /// member; no member twice.
    caught_up: Vec<NodeId>,
    stable: VectorClock,
    /// Observed-remove cells that hold tombstones, compacted when the stable point moves.
    tombstoned: BTreeSet<CellId>,
    /// A local commit that leaves this many open cells seals them and collects garbage:
    /// [`OPEN_CELLS_LIMIT`], or 0 once a replica with no peer has left a tombstone (nobody else
    /// must see its remove, so it goes at once). A bound the commit path compares with anyway,
    /// rather than a second test on every commit.
    seal_at: usize,
    buffer: VecDeque<(NodeId, Delta)>,
    /// While set, deltas that would take the consensus origin beyond it wait in the buffer (see
    /// [`Replica::limit_consensus`]).
    consensus_limit: Option<u64>,
    ready: Ready,
    records_since_snapshot: usize,
    stats: ReplicaStats,
    /// The list a batch of counter bumps is checked into, kept between commits so that a
    /// 100-add commit allocates nothing of its own (scratch: empty between calls).
    add_batch: Vec<(CellId, i64)>,
    /// The table a delta looks its receiver's counters up in, kept between deltas so that
    /// building one allocates nothing (scratch: its contents matter only within a call).
    lookup_slots: LookupSlots,
}

impl Replica {
    /// A fresh replica `id` with no state.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let a = NodeId::new("a").unwrap();
    /// let replica = Replica::new(a, schema, ReplicaConfig::default());
    /// assert_eq!(replica.id(), a);
    /// assert!(replica.clock().is_empty());
    /// assert_eq!(replica.members().collect::<Vec<_>>(), [a]); // a replica is always a member
    /// ```
    pub fn new(id: NodeId, schema: Schema, config: ReplicaConfig) -> Self {
        let mut members: BTreeSet<NodeId> = config.members.iter().copied().collect();
        members.insert(id);
        Self {
            id,
            schema: Arc::new(schema),
            identity: prepared::StoreIdentity::default(),
            config,
            clock: VectorClock::new(),
            own_entry: 0,
            cells: CellStore::default(),
            index: BTreeMap::new(),
            open_cells: OpenCells::default(),
            members_behind: members.len() - 1,
            caught_up: Vec::new(),
            members,
            peer_clocks: BTreeMap::new(),
            stable: VectorClock::new(),
            tombstoned: BTreeSet::new(),
            seal_at: OPEN_CELLS_LIMIT,
            buffer: VecDeque::new(),
            consensus_limit: None,
            ready: Ready::default(),
            records_since_snapshot: 0,
            stats: ReplicaStats::default(),
            add_batch: Vec::new(),
            lookup_slots: LookupSlots::default(),
        }
    }

    /// This replica's node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Everything this replica has delivered.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Replaces the schema by a newer version of it (columns only ever get added).
    pub fn set_schema(&mut self, schema: Schema) {
        self.schema = Arc::new(schema);
    }

    /// The members whose acknowledgement causal stability waits for.
    pub fn members(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.members.iter().copied()
    }

    /// The causally stable point: what every member had delivered, as far as this replica knew
    /// when it last computed it. Tombstones and index entries at or below it are collected. It
    /// never moves back, not over a restart and not when a member is added (a member that lacks
    /// part of it is sent a whole state).
    pub fn stable_clock(&self) -> &VectorClock {
        &self.stable
    }

    /// The latest clock `node` reported to this replica, if it is a member that has reported
    /// one. A removed member's report is dropped with it ([`Replica::remove_member`]).
    pub fn peer_clock(&self, node: NodeId) -> Option<&VectorClock> {
        self.peer_clocks.get(&node)
    }

    /// Counters about this replica.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// Deltas waiting for their base.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Number of cells held.
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Index entries not yet trimmed (metadata awaiting causal stability): one per (update,
    /// cell) filed for updates some member may still lack, counting a cell filed again by a
    /// later update of the same origin once per filing. Zero once every update is stable.
    pub fn indexed_ranges(&self) -> usize {
        self.index.values().map(OriginIndex::len).sum()
    }

    /// Observed-remove tombstones not yet compacted.
    pub fn tombstones(&self) -> usize {
        self.tombstoned
            .iter()
            .map(|&id| self.cells.state(id).tombstone_count())
            .sum()
    }

    /// Adds a member: from now on, causal stability waits for it too.
    ///
    /// The stable point does not move back for it: what was collected stays collected. A member
    /// that lacks updates at or below that point — one joining, one removed while away and
    /// added back, whether or not every member counts it yet — gets the whole state of a
    /// replica that collected them, and joins it by clocks, which removes what that state shows
    /// removed (`docs/proofs/edge_cases.md`).
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut replica = Replica::new(a, schema, ReplicaConfig::default());
    /// replica.add_member(b);
    /// assert_eq!(replica.members().collect::<Vec<_>>(), [a, b]);
    /// replica.remove_member(b);
    /// replica.remove_member(a); // a replica stays a member of its own cluster
    /// assert_eq!(replica.members().collect::<Vec<_>>(), [a]);
    /// ```
    pub fn add_member(&mut self, node: NodeId) {
        self.members.insert(node);
        self.count_members_behind();
        self.recompute_stable();
    }

    /// Removes a member: causal stability stops waiting for it, and what every remaining
    /// member has seen is collected. Its updates stay. Adding it back later is safe: it gets the
    /// whole state of a replica that collected what it lacks ([`Replica::add_member`]).
    pub fn remove_member(&mut self, node: NodeId) {
        if node != self.id {
            self.members.remove(&node);
            self.peer_clocks.remove(&node);
            self.count_members_behind();
            self.collect_garbage();
        }
    }

    // ---------------------------------------------------------------- local commits

    /// Commits `tx` locally, without coordination, and applies it atomically.
    ///
    /// On error nothing changes: no effect applied, the clock not ticked, no record emitted.
    /// On success the commit is visible to reads at once; it may be acknowledged to its client
    /// once the records of the next [`Replica::take_ready`] are durable.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let a = NodeId::new("a").unwrap();
    /// let mut replica = Replica::new(a, schema, ReplicaConfig::default());
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1)
    ///     .increment("counters", "misses", "value", 1);
    /// let receipt = replica.commit(tx).unwrap();
    /// assert_eq!(receipt.dot.counter(), 1);
    /// // Refused whole: nothing applied, the clock not ticked.
    /// let mut bad = AlgebraicTransaction::new();
    /// bad.increment("counters", "hits", "value", 1)
    ///     .max("counters", "hits", "value", 9); // MAX on an ADD column
    /// assert!(replica.commit(bad).is_err());
    /// assert_eq!(replica.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(1));
    /// assert_eq!(replica.clock().get(a), 1);
    /// ```
    pub fn commit(&mut self, tx: AlgebraicTransaction) -> Result<CommitReceipt> {
        let metadata = tx.metadata.clone();
        let ops = tx.into_local_operations()?;
        let cells = &self.cells;
        let mut observe = |key: &CellKey, spec: &ColumnSpec, value: &AlgebraicValue| {
            observed_remove(cells.get(key), spec, value)
        };
        let effects =
            validate_transaction(&self.schema, ops, Some(&mut observe), CommitPath::Local)?;
        if let [effect] = &effects[..]
            && let [op] = &effect.ops[..]
        {
            // The commonest commit: one operation on one cell.
            let slot = self.cells.locate(&effect.key);
            let (dot, _) = self.apply_one(
                &effect.key,
                slot,
                matches!(op, CellOp::OrRemove(_)),
                |state, dot| state.apply_in_range(op, dot),
                |r| r.new_cell(&effect.key),
            )?;
            return Ok(self.finish_local_commit(dot, || effects, metadata));
        }
        let slots = self.locate_all(&effects);
        self.commit_effects(effects, &slots, metadata)
    }

    /// The one-operation commit of either path, up to its record: takes the next dot, checks
    /// the range and applies the operation to the cell at `slot` in one pass (`apply`:
    /// [`CellState::apply_in_range`] or one of its shortcuts, which leave the cell as it was
    /// when they fail), storing a fresh cell (built by `fresh`) only once applied, and files the
    /// cell for the next delta. `removes` says whether the operation is an observed-remove, the
    /// only local operation that leaves tombstones.
    ///
    /// `apply` stays a call: inlining an integer add here (through a single call site or an
    /// always-inlined dispatch) makes this function's frame larger, and the one-operation
    /// commit pays for that frame whatever the operation.
    #[inline]
    fn apply_one(
        &mut self,
        key: &CellKey,
        slot: Slot,
        removes: bool,
        apply: impl FnOnce(&mut CellState, Dot) -> rhizo_algebra::Result<()>,
        fresh: impl FnOnce(&Self) -> Result<CellState>,
    ) -> Result<(Dot, CellId)> {
        let dot = self.next_dot()?;
        let refused = |source| invalid(key, source);
        let id = match slot {
            Ok(id) => {
                apply(self.cells.state_mut(id), dot).map_err(refused)?;
                id
            }
            Err(hash) => {
                let mut cell = fresh(self)?;
                apply(&mut cell, dot).map_err(refused)?;
                self.cells.insert_hashed(hash, key.clone(), cell)
            }
        };
        if removes && self.cells.state(id).tombstone_count() > 0 {
            self.note_tombstones(id);
        }
        self.open_cells.file(id);
        Ok((dot, id))
    }

    /// Where each effect's cell is.
    fn locate_all(&self, effects: &[CellEffect]) -> Slots {
        effects.iter().map(|e| self.cells.locate(&e.key)).collect()
    }

    /// Commits validated effects (cells in key order, each once) whose cells are at `slots`:
    /// the tail of [`Replica::commit`] and [`Replica::commit_prepared`] for all but
    /// one-operation transactions (`apply_one`).
    fn commit_effects(
        &mut self,
        effects: Effects,
        slots: &[Slot],
        metadata: TransactionMetadata,
    ) -> Result<CommitReceipt> {
        let dot = self.next_dot()?;
        let mut open = std::mem::take(&mut self.open_cells);
        let applied = self.apply_local(&effects, slots, dot, true, |id| open.file(id));
        self.open_cells = open;
        applied?;
        Ok(self.finish_local_commit(dot, || effects, metadata))
    }

    /// The dot the next local commit takes (nothing changes until it is applied).
    #[inline]
    fn next_dot(&mut self) -> Result<Dot> {
        let counter = self
            .clock
            .get_hinted(self.id, &mut self.own_entry)
            .checked_add(1)
            .ok_or(rhizo_clock::ClockError::CounterOverflow { node: self.id })?;
        Ok(Dot::new(self.id, counter)?)
    }

    /// Completes a local commit whose effects are applied (and whose cells are in
    /// `open_cells`): ticks the clock, emits the record (building the effects only then) and
    /// queues the acknowledgement. Always inlined: it has several callers, and LLVM's own
    /// heuristic then leaves it a call from the one-operation commit, the path that can least
    /// afford one.
    #[inline(always)]
    fn finish_local_commit(
        &mut self,
        dot: Dot,
        effects: impl FnOnce() -> Effects,
        metadata: TransactionMetadata,
    ) -> CommitReceipt {
        self.clock
            .set_hinted(self.id, dot.counter(), &mut self.own_entry);
        if self.open_cells.len() >= self.seal_at {
            // A replica that commits much between syncs (or has no peers) bounds this list.
            self.seal_open_cells();
            self.collect_garbage();
            self.seal_at = OPEN_CELLS_LIMIT;
        }
        self.stats.commits += 1;
        if self.config.emit_records {
            let record = CommitRecord {
                dot,
                schema_version: self.schema.version(),
                effects: effects(),
                metadata,
            };
            self.push_record(Record::Commit(record));
        }
        self.ready.committed.push(dot);
        CommitReceipt { dot }
    }

    /// Applies validated effects under `dot`, all or nothing, telling `touched` each cell's id;
    /// `slots` says where each effect's cell is ([`Replica::locate_all`]).
    /// With `check_range` (the committer, not a replay of its records), refuses effects that
    /// would take an exact integer counter out of `i64` as this replica reads it.
    fn apply_local(
        &mut self,
        effects: &[CellEffect],
        slots: &[Slot],
        dot: Dot,
        check_range: bool,
        touched: impl FnMut(CellId),
    ) -> Result<()> {
        debug_assert_eq!(effects.len(), slots.len());
        // Validation leaves two ways to fail: a float sum or product leaving the finite range,
        // and the range check. One cell is checked and applied at once, atomically; for several,
        // everything that can fail is checked or tried before anything is installed.
        if effects.len() == 1 {
            return self.install_effects(effects, slots, dot, check_range, touched);
        }
        let mut absent = 0;
        for (effect, slot) in effects.iter().zip(slots) {
            absent += usize::from(slot.is_err());
            // One look at the operations for both questions.
            let (mut integer, mut float) = (false, false);
            for op in &effect.ops {
                integer |= is_integer_op(op);
                float |= can_fail_on_apply(op);
            }
            integer &= check_range;
            if !integer && !float {
                continue;
            }
            let fresh;
            let cell = match slot {
                Ok(id) => self.cells.state(*id),
                Err(_) => {
                    fresh = self.new_cell(&effect.key)?;
                    &fresh
                }
            };
            let refused = |source| invalid(&effect.key, source);
            if integer {
                cell.check_integer_range(&effect.ops).map_err(refused)?;
            }
            if float {
                cell.clone().apply_all(&effect.ops, dot).map_err(refused)?;
            }
        }
        // Absent cells are built before anything is installed: a column missing from the
        // schema (a stale record) must refuse the whole commit, not half of it.
        let mut fresh: SmallVec<[CellState; 1]> = SmallVec::new();
        if absent > 0 {
            for (effect, slot) in effects.iter().zip(slots) {
                if slot.is_err() {
                    fresh.push(self.new_cell(&effect.key)?);
                }
            }
        }
        self.cells.reserve(fresh.len());
        let mut fresh = fresh.into_iter();
        let mut touched = touched;
        for (effect, slot) in effects.iter().zip(slots) {
            let id = match *slot {
                Ok(id) => {
                    apply_effect(self.cells.state_mut(id), effect, dot)?;
                    id
                }
                Err(hash) => {
                    let mut state = fresh.next().expect("one fresh cell per absent slot");
                    apply_effect(&mut state, effect, dot)?;
                    self.cells.insert_hashed(hash, effect.key.clone(), state)
                }
            };
            self.note_installed(id, effect, &mut touched);
        }
        Ok(())
    }

    /// Refuses effects that would take an exact integer counter out of `i64` on this replica.
    fn check_ranges(&self, effects: &[CellEffect]) -> Result<()> {
        for effect in effects.iter().filter(|e| e.ops.iter().any(is_integer_op)) {
            let checked = match self.cells.get(&effect.key) {
                Some(cell) => cell.check_integer_range(&effect.ops),
                None => self.new_cell(&effect.key)?.check_integer_range(&effect.ops),
            };
            checked.map_err(|source| invalid(&effect.key, source))?;
        }
        Ok(())
    }

    /// Applies effects already known to succeed (tried, or atomic by themselves), telling
    /// `touched` each cell's id. With `check_range`, each cell's range check comes first.
    fn install_effects(
        &mut self,
        effects: &[CellEffect],
        slots: &[Slot],
        dot: Dot,
        check_range: bool,
        mut touched: impl FnMut(CellId),
    ) -> Result<()> {
        for (effect, slot) in effects.iter().zip(slots) {
            let check = |cell: &CellState| match check_range {
                true => cell
                    .check_integer_range(&effect.ops)
                    .map_err(|source| invalid(&effect.key, source)),
                false => Ok(()),
            };
            let id = match *slot {
                // `apply_effect` leaves a cell as it was when it fails.
                Ok(id) => {
                    let cell = self.cells.state_mut(id);
                    check(cell)?;
                    apply_effect(cell, effect, dot)?;
                    id
                }
                // A fresh cell is stored only once its effects are applied: a refused one must
                // not be stored, not even empty, because stored cells are part of the state's
                // bytes.
                Err(hash) => {
                    let mut fresh = self.new_cell(&effect.key)?;
                    check(&fresh)?;
                    apply_effect(&mut fresh, effect, dot)?;
                    self.cells.insert_hashed(hash, effect.key.clone(), fresh)
                }
            };
            self.note_installed(id, effect, &mut touched);
        }
        Ok(())
    }

    /// Bookkeeping for a cell whose effects were just installed: tombstones to compact later,
    /// and `touched`. Always inlined: it runs once per cell of every multi-cell commit, and as
    /// a call its frame costs about as much as its work.
    #[inline(always)]
    fn note_installed(
        &mut self,
        id: CellId,
        effect: &CellEffect,
        touched: &mut impl FnMut(CellId),
    ) {
        // Of local operations only an observed-remove leaves tombstones (as in `apply_one`).
        if effect
            .ops
            .iter()
            .any(|op| matches!(op, CellOp::OrRemove(_)))
            && self.cells.state(id).tombstone_count() > 0
        {
            self.note_tombstones(id);
        }
        touched(id);
    }

    /// Files a cell that holds tombstones left by this replica's own update, to compact later:
    /// at the next local commit's end if the replica has no peer.
    fn note_tombstones(&mut self, id: CellId) {
        self.tombstoned.insert(id);
        if self.members.len() == 1 {
            self.seal_at = 0;
        }
    }

    fn new_cell(&self, key: &CellKey) -> Result<CellState> {
        new_cell(&self.schema, key)
    }
}

impl Replica {
    // ---------------------------------------------------------------- the consensus path

    /// Validates a transaction for the consensus path — algebraic operations on their columns,
    /// OVERWRITE and COMPARE-AND-SET on register columns — resolving observed-removes against
    /// this replica's view. Nothing changes; propose the result to the log.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, OrderedOutcome, Operations, Replica, ReplicaConfig};
    /// let schema = Schema::builder()
    ///     .table("accounts")
    ///     .column("owner", MergeType::Register, ValueType::Integer)
    ///     .build()
    ///     .unwrap();
    /// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// let mut claim = AlgebraicTransaction::new();
    /// claim.compare_and_set("accounts", "42", "owner", AlgebraicValue::Null, 7);
    /// let update = replica.prepare_ordered(claim).unwrap(); // validated; nothing changed yet
    /// // The consensus log decides its place; every replica applies entry 1 alike.
    /// assert!(matches!(replica.apply_ordered(1, &update).unwrap(), OrderedOutcome::Applied(_)));
    /// assert_eq!(replica.read("accounts", "42", "owner").unwrap(), AlgebraicValue::Integer(7));
    /// // The same claim at entry 2 finds the register taken: refused, on every replica.
    /// assert!(matches!(replica.apply_ordered(2, &update).unwrap(), OrderedOutcome::Refused(_)));
    /// ```
    pub fn prepare_ordered(&self, tx: AlgebraicTransaction) -> Result<OrderedUpdate> {
        let metadata = tx.metadata.clone();
        let (ops, reads) = tx.into_parts();
        self.check_reads(&reads)?;
        let cells = &self.cells;
        let mut observe = |key: &CellKey, spec: &ColumnSpec, value: &AlgebraicValue| {
            observed_remove(cells.get(key), spec, value)
        };
        let effects =
            validate_transaction(&self.schema, ops, Some(&mut observe), CommitPath::Ordered)?;
        // The proposer's check, as for a local commit: it does not propose what it could not
        // read back.
        self.check_ranges(&effects)?;
        Ok(OrderedUpdate {
            schema_version: self.schema.version(),
            effects,
            reads,
            metadata,
        })
    }

    /// Applies the log entry at `index` (entries must be applied in log order). Every replica
    /// reaches the same outcome for the same entry, so registers hold the same value at the
    /// same index everywhere; algebraic effects merge with coordination-free ones as usual. A
    /// refused entry (a condition that did not hold) consumes its index, as on every replica of
    /// a log.
    pub fn apply_ordered(&mut self, index: u64, update: &OrderedUpdate) -> Result<OrderedOutcome> {
        self.apply_at(index, update, true)
    }

    /// [`Replica::apply_ordered`] for an order only this replica sees (a node alone): a refused
    /// update leaves no trace at all — its index is not consumed, since nobody else holds it.
    pub fn apply_ordered_alone(
        &mut self,
        index: u64,
        update: &OrderedUpdate,
    ) -> Result<OrderedOutcome> {
        self.apply_at(index, update, false)
    }

    fn apply_at(
        &mut self,
        index: u64,
        update: &OrderedUpdate,
        consume_refused: bool,
    ) -> Result<OrderedOutcome> {
        let origin = consensus_origin();
        if index <= self.clock.get(origin) {
            return Ok(OrderedOutcome::AlreadyApplied);
        }
        if update.schema_version > self.schema.version() {
            // Not a refusal: every replica with the schema applies it, so neither may this one
            // skip it. It waits until this replica has the schema.
            return Err(LocalCommitError::SchemaBehind {
                needed: update.schema_version,
                held: self.schema.version(),
            });
        }
        let dot = Dot::new(origin, index)?;
        // Conditions are checked on copies first, so a failed one leaves no trace.
        let mut touched = Vec::with_capacity(update.effects.len());
        let checked = self
            .check_reads_hold(&update.reads)
            .and_then(|()| self.try_effects(&update.effects, dot));
        let outcome = match checked {
            Ok(()) => {
                let slots = self.locate_all(&update.effects);
                self.install_effects(&update.effects, &slots, dot, false, |id| touched.push(id))?;
                OrderedOutcome::Applied(dot)
            }
            Err(refusal) if consume_refused => OrderedOutcome::Refused(refusal),
            Err(refusal) => return Ok(OrderedOutcome::Refused(refusal)),
        };
        self.clock.set(origin, index);
        self.count_members_behind_after_growth();
        self.index.entry(origin).or_default().record(index, touched);
        if self.config.emit_records {
            self.push_record(Record::Ordered {
                index,
                update: update.clone(),
            });
        }
        self.collect_if_caught_up();
        Ok(outcome)
    }

    /// Refuses read checks that cannot be evaluated the same on every replica: each must name a
    /// register column (registers change only in log order) and a value it could hold.
    fn check_reads(&self, reads: &[(CellKey, AlgebraicValue)]) -> Result<()> {
        let mut errors = Vec::new();
        for (key, value) in reads {
            let checked = self
                .schema
                .column(key.table(), key.column())
                .and_then(|spec| {
                    if spec.merge() != rhizo_algebra::MergeType::Register {
                        return Err(rhizo_algebra::AlgebraError::OpNotAccepted {
                            merge: spec.merge(),
                            op: rhizo_algebra::OpType::GenericConditional,
                        });
                    }
                    if *value != AlgebraicValue::Null {
                        CellOp::new(spec, rhizo_algebra::OpType::GenericOverwrite, value)?;
                    }
                    Ok(())
                });
            if let Err(err) = checked {
                errors.push((key.clone(), err));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LocalCommitError::InvalidOperations { errors })
        }
    }

    /// Whether every register read still holds the value read.
    fn check_reads_hold(&self, reads: &[(CellKey, AlgebraicValue)]) -> Result<()> {
        for (key, expected) in reads {
            let found = self.read_key(key)?;
            if found != *expected {
                return Err(LocalCommitError::ReadConflict {
                    key: Box::new(key.clone()),
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Applies `effects` to copies of their cells, reporting the first that fails.
    fn try_effects<'a>(
        &self,
        effects: impl IntoIterator<Item = &'a CellEffect>,
        dot: Dot,
    ) -> Result<()> {
        for effect in effects {
            let mut trial = match self.cells.get(&effect.key) {
                Some(cell) => cell.clone(),
                None => self.new_cell(&effect.key)?,
            };
            trial
                .apply_all(&effect.ops, dot)
                .map_err(|source| invalid(&effect.key, source))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- reads

    /// The value of one cell as this replica sees it: the identity of its column if nothing
    /// was written (0 for sums, the empty set for sets, `Null` for MAX/MIN).
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// // Never written: the column's identity.
    /// assert_eq!(replica.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(0));
    /// assert!(replica.read("counters", "hits", "nope").is_err());
    /// ```
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        self.read_key(&CellKey::new(table, row, column))
    }

    /// [`Replica::read`] by key.
    pub fn read_key(&self, key: &CellKey) -> Result<AlgebraicValue> {
        let value = match self.cells.get(key) {
            Some(cell) => cell.value(),
            None => self.new_cell(key)?.value(),
        };
        value.map_err(|source| LocalCommitError::Read {
            key: Box::new(key.clone()),
            source: Box::new(source),
        })
    }

    /// Every cell held and its value, in key order.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::CellKey;
    /// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 3);
    /// replica.commit(tx).unwrap();
    /// let values = replica.values();
    /// assert_eq!(values[&CellKey::new("counters", "hits", "value")], Ok(AlgebraicValue::Integer(3)));
    /// ```
    pub fn values(&self) -> BTreeMap<CellKey, Result<AlgebraicValue>> {
        self.cells
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    c.value().map_err(|source| LocalCommitError::Read {
                        key: Box::new(k.clone()),
                        source: Box::new(source),
                    }),
                )
            })
            .collect()
    }

    /// The replica's state in canonical bytes: its clock and every cell in key order, with
    /// observed-remove tombstones compacted against its own clock (tombstones are bookkeeping
    /// whose presence depends on when garbage collection ran, not on which updates are held).
    /// Replicas holding the same updates return equal bytes.
    pub fn canonical_state(&self) -> Vec<u8> {
        let mut cells: Vec<(&CellKey, std::borrow::Cow<'_, CellState>)> = self
            .cells
            .iter()
            .map(|(k, c)| {
                if c.tombstone_count() > 0 {
                    let mut compacted = c.clone();
                    compacted.compact(&self.clock);
                    (k, std::borrow::Cow::Owned(compacted))
                } else {
                    (k, std::borrow::Cow::Borrowed(c))
                }
            })
            .collect();
        cells.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let cells: Vec<(&CellKey, &CellState)> =
            cells.iter().map(|(k, c)| (*k, c.as_ref())).collect();
        postcard::to_allocvec(&(&self.clock, cells)).expect("encoding to memory cannot fail")
    }

    /// Whether this replica's [`canonical_state`](Self::canonical_state) equals `other`'s,
    /// decided without encoding either: the same answer as comparing the bytes, because a
    /// canonical state's encoding is a function of its value and cell states compare bit for
    /// bit (floats by their bits, never by IEEE equality). A convergence check encodes one
    /// replica and compares the others with this.
    pub fn same_canonical_state(&self, other: &Replica) -> bool {
        if self.clock != other.clock || self.cells.len() != other.cells.len() {
            return false;
        }
        // Keys are unique in both stores and the counts match: a match for every cell of this
        // replica is a bijection. The keys of a batch are looked up in a loop of their own, so
        // the look-ups' waits on memory overlap (as in `plan_joins`).
        const BATCH: usize = 256;
        let len = self.cells.len();
        let mut found: Vec<Option<CellId>> = Vec::with_capacity(BATCH.min(len));
        for start in (0..len).step_by(BATCH) {
            let batch = start as CellId..(start + BATCH).min(len) as CellId;
            found.clear();
            found.extend(batch.clone().map(|id| other.cells.find(self.cells.key(id))));
            let same = batch.zip(&found).all(|(id, &theirs)| {
                let Some(theirs) = theirs else {
                    return false;
                };
                let (mine, theirs) = (self.cells.state(id), other.cells.state(theirs));
                if mine.tombstone_count() == 0 && theirs.tombstone_count() == 0 {
                    return mine == theirs;
                }
                // Tombstones are compacted against the (equal) clocks, as in the canonical
                // state.
                let (mut mine, mut theirs) = (mine.clone(), theirs.clone());
                mine.compact(&self.clock);
                theirs.compact(&other.clock);
                mine == theirs
            });
            if !same {
                return false;
            }
        }
        true
    }

    /// A 64-bit FNV-1a hash of [`Replica::canonical_state`], for cheap comparisons.
    pub fn fingerprint(&self) -> u64 {
        fnv1a(&self.canonical_state())
    }

    // ---------------------------------------------------------------- anti-entropy

    /// Starts an anti-entropy exchange with `peer`: sends this replica's clock, a digest of
    /// everything it holds, and asks for what it lacks.
    ///
    /// An exchange is at most three messages: this digest; the peer's reply with what this
    /// replica lacks (and, if this replica holds something the peer lacks, a request for it);
    /// then this replica's answer with exactly that. Every delta is computed against the clock
    /// its receiver sent in the message being answered, never against an older report, so a
    /// delta repeats only what reached its receiver by another path in the meantime.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::Message;
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut replica = Replica::new(a, schema, ReplicaConfig::default());
    /// replica.sync_with(b);
    /// let ready = replica.take_ready();
    /// let (to, Message::Sync(digest)) = &ready.messages[0];
    /// assert_eq!(*to, b);
    /// assert!(digest.delta().is_none() && digest.reply_wanted()); // a digest asking for news
    /// ```
    pub fn sync_with(&mut self, peer: NodeId) {
        if peer == self.id {
            return;
        }
        self.seal_open_cells();
        self.collect_garbage();
        let message = SyncMessage {
            clock: self.clock.clone(),
            delta: None,
            reply_wanted: true,
        };
        self.ready.messages.push((peer, Message::Sync(message)));
    }

    /// Whether, as far as this replica knows, every member holds everything it holds (so a
    /// sync would carry nothing new) and no delta waits in the buffer.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let config = ReplicaConfig { members: vec![a, b], ..ReplicaConfig::default() };
    /// let mut on_a = Replica::new(a, schema.clone(), config.clone());
    /// let mut on_b = Replica::new(b, schema, config);
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// on_a.commit(tx).unwrap();
    /// assert!(!on_a.is_idle()); // b is not known to hold the commit
    /// assert_eq!(on_a.peers_behind().collect::<Vec<_>>(), [b]);
    /// // The first exchange brings b the commit; the second tells a that b has it.
    /// for _ in 0..2 {
    ///     on_a.sync_with(b);
    ///     while on_a.has_ready() || on_b.has_ready() {
    ///         for (_, msg) in on_a.take_ready().messages { on_b.step(a, msg).unwrap(); }
    ///         for (_, msg) in on_b.take_ready().messages { on_a.step(b, msg).unwrap(); }
    ///     }
    /// }
    /// assert!(on_a.is_idle() && on_b.is_idle());
    /// ```
    pub fn is_idle(&self) -> bool {
        // Cells not yet sealed hold commits no delta has carried yet, so no peer holds them:
        // the answer right after a local commit, without looking at any peer's clock.
        // (`members` always holds this replica: more than one member means a peer.)
        if !self.open_cells.is_empty() && self.members.len() > 1 {
            return false;
        }
        debug_assert_eq!(self.members_behind, self.peers_behind().count());
        self.buffer.is_empty() && self.members_behind == 0
    }

    /// Counts `members_behind` afresh (after the members or the stored clock changed).
    fn count_members_behind(&mut self) {
        let mut caught_up = std::mem::take(&mut self.caught_up);
        caught_up.clear();
        let (id, clock, peer_clocks) = (self.id, &self.clock, &self.peer_clocks);
        caught_up.extend(self.members.iter().copied().filter(|m| {
            *m != id
                && peer_clocks
                    .get(m)
                    .is_some_and(|known| clock.dominated_by(known))
        }));
        self.caught_up = caught_up;
        self.members_behind = self.members.len() - 1 - self.caught_up.len();
    }

    /// [`Replica::count_members_behind`] after this replica's clock grew and nothing else did:
    /// only the members counted caught up are compared again. While news spreads, a replica
    /// applies a delta at almost every step, and a full count compared every member's clock
    /// with its own each time.
    fn count_members_behind_after_growth(&mut self) {
        let (clock, peer_clocks) = (&self.clock, &self.peer_clocks);
        self.caught_up.retain(|peer| {
            peer_clocks
                .get(peer)
                .is_some_and(|known| clock.dominated_by(known))
        });
        self.members_behind = self.members.len() - 1 - self.caught_up.len();
    }

    /// The members this replica believes lack something it holds (or has never heard from).
    pub fn peers_behind(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().copied().filter(move |m| {
            *m != self.id
                && !self
                    .peer_clocks
                    .get(m)
                    .is_some_and(|known| self.clock.dominated_by(known))
        })
    }

    /// Hands the replica a message from `from`.
    ///
    /// A delta that is malformed or does not fit this replica's schema is refused whole with an
    /// error, and nothing of it is applied; the replica stays usable.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let config = ReplicaConfig { members: vec![a, b], ..ReplicaConfig::default() };
    /// let (mut on_a, mut on_b) = (Replica::new(a, schema.clone(), config.clone()), Replica::new(b, schema, config));
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// on_a.commit(tx).unwrap();
    /// on_b.sync_with(a); // b's digest ...
    /// for (_, msg) in on_b.take_ready().messages { on_a.step(b, msg).unwrap(); } // ... a answers with what b lacks
    /// for (_, msg) in on_a.take_ready().messages { on_b.step(a, msg).unwrap(); }
    /// assert_eq!(on_b.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(1));
    /// assert!(on_b.same_canonical_state(&on_a));
    /// ```
    pub fn step(&mut self, from: NodeId, message: Message) -> Result<()> {
        if from == self.id {
            return Err(LocalCommitError::MalformedMessage {
                from,
                reason: "a replica cannot message itself",
            });
        }
        let Message::Sync(sync) = message;
        if let Some(delta) = &sync.delta {
            check_delta_shape(from, delta)?;
            if !sync.clock.dominated_by(&delta.clock) || !delta.clock.dominated_by(&sync.clock) {
                return Err(LocalCommitError::MalformedMessage {
                    from,
                    reason: "delta clock differs from sender clock",
                });
            }
        }
        // Reported clocks are durable at the sender and only grow; merge to ignore reordering.
        let was_behind = !self
            .peer_clocks
            .get(&from)
            .is_some_and(|known| self.clock.dominated_by(known));
        let reported = self.peer_clocks.entry(from).or_default();
        reported.merge(&sync.clock);
        if was_behind && self.clock.dominated_by(reported) && self.members.contains(&from) {
            // While cells are open, a count may have left it listed already (the count is then
            // short of the members behind; see `collect_if_caught_up`).
            if !self.caught_up.contains(&from) {
                self.caught_up.push(from);
            }
            self.members_behind = self.members.len() - 1 - self.caught_up.len();
        }
        let bare_digest = sync.delta.is_none();
        if let Some(delta) = sync.delta {
            self.receive_delta(from, delta)?;
        }
        if sync.reply_wanted {
            self.seal_open_cells();
            let known = self.peer_clocks.get(&from).cloned().unwrap_or_default();
            let delta = self.delta_since(&known);
            // Answering a bare digest (an exchange's first message), ask for what the sender
            // holds and this replica lacks; answering anything else, ask for nothing, so that an
            // exchange ends after at most three messages.
            let reply_wanted = bare_digest && !sync.clock.dominated_by(&self.clock);
            let message = SyncMessage {
                clock: self.clock.clone(),
                delta,
                reply_wanted,
            };
            self.ready.messages.push((from, Message::Sync(message)));
        }
        // A report or a delta may have made every member hold everything: once writes stop,
        // the last report of an exchange is what completes collection, not a later sync.
        self.collect_if_caught_up();
        Ok(())
    }

    /// Joins another replica's durable image into this one, as that replica's whole state sent
    /// by anti-entropy would be (a snapshot delta): what only this replica holds stays, and its
    /// clock covers the image's afterwards. The image is checked as any delta is; an image of
    /// this replica itself changes nothing.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// use rhizo_clock::NodeId;
    /// use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    ///
    /// let schema = Schema::builder()
    ///     .table("counters")
    ///     .column("value", MergeType::Add, ValueType::Integer)
    ///     .build()
    ///     .unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let config = ReplicaConfig { members: vec![a, b], ..ReplicaConfig::default() };
    /// let mut on_a = Replica::new(a, schema.clone(), config.clone());
    /// let mut on_b = Replica::new(b, schema, config);
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 2);
    /// on_a.commit(tx.clone()).unwrap();
    /// on_b.commit(tx).unwrap();
    /// on_b.merge_snapshot(on_a.snapshot()).unwrap();
    /// assert_eq!(on_b.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(4));
    /// ```
    pub fn merge_snapshot(&mut self, image: ReplicaSnapshot) -> Result<()> {
        if image.id == self.id {
            return Ok(());
        }
        let message = Message::Sync(SyncMessage {
            clock: image.clock.clone(),
            delta: Some(Delta {
                base: VectorClock::new(),
                clock: image.clock,
                snapshot: true,
                cells: image.cells.into_iter().collect(),
                origins: Vec::new(),
                encoded: Default::default(),
            }),
            reply_wanted: false,
        });
        self.step(image.id, message)
    }

    /// Whether a delta or snapshot whose clock is `clock` would be ignored as older than what
    /// every member has seen (garbage collection may have discarded the tombstones that cancel
    /// its stale tags).
    pub fn is_stale(&self, clock: &VectorClock) -> bool {
        !self.stable.dominated_by(clock)
    }

    /// Holds back anti-entropy's news of the consensus log beyond `limit` (`None`: no limit).
    ///
    /// A replica learns log entries two ways: applied in log order (`apply_ordered`), and merged
    /// from a peer's delta. A Raft member that awaits the outcome of its own proposals must apply
    /// them itself, in log order — a condition decided elsewhere and merged here leaves no trace
    /// of whether it held. While a limit is set, a delta whose clock passes it waits in the
    /// buffer (like an early delta) until the limit is raised or lifted.
    pub fn limit_consensus(&mut self, limit: Option<u64>) -> Result<()> {
        let raised = match (self.consensus_limit, limit) {
            (Some(old), Some(new)) => new > old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.consensus_limit = limit;
        if raised {
            self.drain_buffer()?;
        }
        Ok(())
    }

    /// Whether this replica may apply `delta` now: it holds the delta's base and the delta
    /// stays within the consensus limit.
    fn deliverable(&self, delta: &Delta) -> bool {
        delta.base.dominated_by(&self.clock)
            && self
                .consensus_limit
                .is_none_or(|limit| delta.clock.get(consensus_origin()) <= limit)
    }

    fn receive_delta(&mut self, from: NodeId, delta: Delta) -> Result<()> {
        if !self.deliverable(&delta) {
            // Early: wait until this replica holds the delta's base.
            self.stats.deltas_buffered += 1;
            if self.buffer.len() >= self.config.max_buffered_deltas {
                self.buffer.pop_front();
                self.stats.deltas_dropped += 1;
            }
            self.buffer.push_back((from, delta));
            self.stats.peak_buffered = self.stats.peak_buffered.max(self.buffer.len() as u64);
            return Ok(());
        }
        self.apply_delta(from, delta, true)?;
        self.drain_buffer()
    }

    fn drain_buffer(&mut self) -> Result<()> {
        loop {
            let Some(pos) = self.buffer.iter().position(|(_, d)| self.deliverable(d)) else {
                return Ok(());
            };
            let (from, delta) = self.buffer.remove(pos).expect("position is in range");
            // A buffered delta was checked on arrival; one that no longer fits the schema is
            // dropped rather than blocking the ones behind it.
            let _ = self.apply_delta(from, delta, true);
        }
    }

    /// Applies a delta whose base this replica holds: all cells or none.
    fn apply_delta(&mut self, from: NodeId, mut delta: Delta, record: bool) -> Result<()> {
        if delta.clock.dominated_by(&self.clock) {
            self.stats.deltas_redundant += 1;
            return Ok(());
        }
        if !self.stable.dominated_by(&delta.clock) {
            // Older than what every member has seen: its sender lacked updates this replica may
            // have collected the tombstones of. Joining by clocks (below) would skip its stale
            // tags anyway; refusing it skips the work. Its news will come again.
            self.stats.deltas_stale += 1;
            return Ok(());
        }
        let plan = self.plan_joins(from, &delta)?;
        let ids = self.install_joins(plan, &mut delta, record);
        for range in &delta.origins {
            if range.origin == self.id || range.hi <= self.clock.get(range.origin) {
                continue;
            }
            let cells = range.cells.iter().map(|&i| ids[i as usize]);
            self.index
                .entry(range.origin)
                .or_default()
                .record(range.hi, cells);
        }
        if delta.snapshot {
            // A snapshot carries no per-origin index: this replica cannot tell a peer which cells
            // those updates touched, so a peer that far behind gets a snapshot from it too.
            for (origin, counter) in delta.clock.iter() {
                if counter > self.clock.get(origin) {
                    self.index.entry(origin).or_default().trim(counter);
                }
            }
        }
        self.clock.merge(&delta.clock);
        self.count_members_behind_after_growth();
        self.stats.deltas_applied += 1;
        if record && self.config.emit_records {
            self.push_record(Record::Merge {
                from,
                delta: Box::new(delta),
            });
        }
        Ok(())
    }

    /// Phase 1 of [`Replica::apply_delta`]: checks every cell, refusing the delta whole on any
    /// mismatch, and says how each joins (and how many are new). A state that merges
    /// infallibly into its cell is merged in place in phase 2; any other is joined into a copy
    /// here (the only way to learn whether its merge succeeds).
    fn plan_joins(&self, from: NodeId, delta: &Delta) -> Result<JoinPlan> {
        let mut joins: Vec<Join> = Vec::with_capacity(delta.cells.len());
        let mut computed: Vec<CellState> = Vec::new();
        // Cells arrive in key order, so new cells of one column come in runs: the column's
        // spec is looked up, and its empty cell built, once per run rather than once per cell.
        let mut column: Option<(&CellKey, CellState)> = None;
        let mut new_cells = 0;
        // Every key looked up first, in a loop of its own: a look-up mostly waits on memory (the
        // hash table, then the key it points at), and look-ups with nothing between them
        // overlap their waits, where a loop that also merges waits on each in turn.
        let located: Vec<std::result::Result<CellId, u64>> = delta
            .cells
            .keys()
            .iter()
            .map(|key| self.cells.locate(key))
            .collect();
        for ((key, incoming), located) in delta.cells.iter().zip(located) {
            let rejected = |source| LocalCommitError::RemoteStateRejected {
                from,
                key: Box::new(key.clone()),
                source: Box::new(source),
            };
            let join = match located {
                Ok(id) if self.cells.state(id).merges_listed_infallibly(incoming) => {
                    Join::InPlace(id)
                }
                Ok(id) => {
                    let mut cell = self.cells.state(id).clone();
                    cell.merge_listed(incoming).map_err(rejected)?;
                    computed.push(cell);
                    Join::Replace(id)
                }
                Err(hash) => {
                    let empty = match &column {
                        Some((last, empty)) if last.same_column(key) => empty,
                        _ => {
                            let spec = self
                                .schema
                                .column(key.table(), key.column())
                                .map_err(rejected)?;
                            &column.insert((key, CellState::new(spec))).1
                        }
                    };
                    new_cells += 1;
                    if empty.merges_listed_infallibly(incoming) {
                        Join::Adopt(hash)
                    } else {
                        let mut cell = empty.clone();
                        cell.merge_listed(incoming).map_err(rejected)?;
                        computed.push(cell);
                        Join::New(hash)
                    }
                }
            };
            joins.push(join);
        }
        Ok(JoinPlan {
            joins,
            computed,
            new_cells,
        })
    }

    /// Phase 2 of [`Replica::apply_delta`]: installs the joins `plan_joins` chose (nothing here
    /// can fail). Returns the id of each of the delta's cells, in order. With `record` (and
    /// records on), the delta is kept for the record, so states are copied out of it rather
    /// than moved.
    fn install_joins(&mut self, plan: JoinPlan, delta: &mut Delta, record: bool) -> Vec<CellId> {
        let JoinPlan {
            joins,
            computed,
            new_cells,
        } = plan;
        let mut computed = computed.into_iter();
        self.cells.reserve(new_cells);
        let expected_origins = self.expected_origins(&delta.clock, self.cells.len() + new_cells);
        // Each in-place cell's list read first, in a loop of its own, as `plan_joins` locates
        // keys: a merge mostly waits on the miss on its cell's list, and reads with nothing
        // between them overlap their waits, where the merges below would wait on each in turn.
        let ahead = joins.iter().fold(0u64, |ahead, join| match join {
            Join::InPlace(id) => ahead ^ self.cells.state(*id).read_ahead(),
            _ => ahead,
        });
        std::hint::black_box(ahead);
        let mut ids: Vec<CellId> = Vec::with_capacity(joins.len());
        // Unless the delta is kept for the record, states held whole move into the new cells
        // (an integer sum's entries are copied out of the delta's shared buffer either way).
        let keep = record && self.config.emit_records;
        if !keep {
            // States are moved out below: an encoding kept with the delta no longer is its own.
            delta.encoded = Default::default();
        }
        for (i, join) in joins.into_iter().enumerate() {
            let id = match join {
                Join::Adopt(hash) => {
                    let key = delta.cells.keys()[i].clone();
                    let state = if keep {
                        delta.cells.get(i).map(|(_, state)| state.to_state())
                    } else {
                        delta.cells.take_state(i)
                    };
                    let state = state.expect("a join per cell");
                    self.cells.insert_hashed(hash, key, state)
                }
                Join::InPlace(id) => {
                    let (_, incoming) = delta.cells.get(i).expect("a join per cell");
                    let cell = self.cells.state_mut(id);
                    // Joined by clocks: what this replica's clock covers it holds already (or
                    // removed, its tombstone perhaps collected), and a whole state shows by its
                    // clock what its sender removed and collected.
                    if delta.snapshot {
                        cell.retract_collected_listed(incoming, &delta.clock);
                    }
                    let merged = cell.merge_listed_beyond(incoming, &self.clock, expected_origins);
                    debug_assert!(merged.is_ok(), "merges_infallibly promised success");
                    id
                }
                Join::Replace(id) => {
                    *self.cells.state_mut(id) = computed.next().expect("a state per such join");
                    id
                }
                Join::New(hash) => {
                    let key = delta.cells.keys()[i].clone();
                    let cell = computed.next().expect("a state per such join");
                    self.cells.insert_hashed(hash, key, cell)
                }
            };
            if self.cells.state(id).tombstone_count() > 0 {
                self.tombstoned.insert(id);
            }
            ids.push(id);
        }
        ids
    }

    /// How many origins a cell that a delta with `clock` grows is expected to come to hold, once
    /// the replica holds `cells` cells: the room its per-origin list makes when it must grow.
    ///
    /// A counter every member bumps comes to hold an entry per member: its list makes room for
    /// the members at once (at most four times the origins it then holds), instead of doubling
    /// as news of them spreads. The delta's clock counts only for a replica given no members:
    /// clocks learn of origins as fast as the cells do, so the clock alone would not say more
    /// than the cell's own growth. But a cell cannot come to hold more origins than it has
    /// updates, and over a wide key space each cell sees few: the updates this replica and the
    /// delta know of, shared among the cells it will hold, bound the expectation, so that a
    /// hundred members writing a hundred thousand counters do not reserve a hundred entries
    /// in each for the ten it gets.
    fn expected_origins(&self, clock: &VectorClock, cells: usize) -> usize {
        let members = self.members.len().max(clock.node_count());
        let mut known = self.clock.clone();
        known.merge(clock);
        let updates: u64 = known.iter().map(|(_, counter)| counter).sum();
        let per_cell = updates / cells.max(1) as u64;
        members.min(usize::try_from(per_cell).unwrap_or(usize::MAX).max(1))
    }

    /// Moves the cells touched by local commits since the last sync into the index.
    fn seal_open_cells(&mut self) {
        if self.open_cells.is_empty() {
            return;
        }
        let keys = self.open_cells.take();
        let hi = self.clock.get(self.id);
        self.index.entry(self.id).or_default().record(hi, keys);
        // The local commits the sealed cells hold have moved the clock since the count was
        // last kept. Counted here, not at each commit: until the seal, `is_idle` answers from
        // the open cells, and the commit path stays as short as it was. (Not simply "every
        // member": a replica recovered from its records reopens cells whose commits its peers
        // may already hold.)
        self.count_members_behind_after_growth();
    }

    /// Everything this replica holds beyond `known`, or `None` if it holds nothing more.
    fn delta_since(&mut self, known: &VectorClock) -> Option<Delta> {
        if self.clock.dominated_by(known) {
            return None;
        }
        // A peer missing updates this replica no longer indexes gets everything.
        let behind_index = self.clock.iter().any(|(origin, counter)| {
            let seen = known.get(origin);
            seen < counter
                && self
                    .index
                    .get(&origin)
                    .is_none_or(|i| seen < i.trimmed_upto())
        });
        // A peer that lacks updates at or below the stable point may lack removes whose
        // tombstones were collected: a delta would not carry them, so it gets a whole state
        // (joined by clocks, which retracts what it shows removed). The index alone does not
        // say so: cells replayed at recovery stay open, outside the index, while the stable
        // point passes them (a member not counted yet, or removed and added back, is behind
        // it).
        let behind_stable = !self.stable.dominated_by(known);
        if behind_index || behind_stable {
            self.stats.snapshots_sent += 1;
            return Some(self.snapshot_delta());
        }
        // Only what the receiver holds of this replica's history matters as a precondition.
        let base = known.meet(&self.clock);
        // Cells touched by the updates `known` lacks, origin by origin: one buffer for all
        // origins (a slice each), so it grows a few times per delta, not a few times per origin.
        let mut touched: Vec<CellId> = Vec::new();
        let mut per_origin: Vec<(NodeId, u64, std::ops::Range<usize>)> = Vec::new();
        for (origin, counter) in self.clock.iter() {
            let seen = known.get(origin);
            if seen >= counter {
                continue;
            }
            if let Some(index) = self.index.get(&origin) {
                let start = touched.len();
                // A cell may come once per update that touched it: deduplicated below.
                touched.extend(index.touched_since(seen));
                per_origin.push((origin, counter, start..touched.len()));
            }
        }
        // Each cell listed once, in key order; origins name cells by position in that list.
        let mut position = Positions::for_delta(touched.len(), self.cells.len());
        let mut all: Vec<CellId> = Vec::with_capacity(touched.len());
        for &id in &touched {
            if position.first_sight(id) {
                all.push(id);
            }
        }
        self.cells.refresh_ranks();
        self.cells.sort_by_key(&mut all);
        for (i, id) in all.iter().enumerate() {
            position.set(*id, i as u32);
        }
        // An origin's positions are sorted so that the wire carries each as its small distance
        // from the one before (`delta_cells::ascending_positions`), and listed once each (the
        // index lists a cell once per update that touched it).
        let origins = per_origin
            .into_iter()
            .map(|(origin, hi, range)| {
                let mut cells: Vec<u32> =
                    touched[range].iter().map(|id| position.get(*id)).collect();
                cells.sort_unstable();
                cells.dedup();
                OriginRange { origin, hi, cells }
            })
            .collect();
        // Each cell carries only what a replica holding `base` may lack: every origin of every
        // cell is looked up in `base`, through one table for the whole delta.
        let mut cells = DeltaCells::with_capacity(all.len());
        let known = base.lookup_in(&mut self.lookup_slots);
        // A few cells at a time, each one's list read first in a loop of its own (as
        // `install_joins` does): restricting mostly waits on the miss on a cell's list, and
        // reads with nothing between them overlap their waits.
        for group in all.chunks(RESTRICT_READ_AHEAD) {
            let ahead = group
                .iter()
                .fold(0u64, |ahead, id| ahead ^ self.cells.state(*id).read_ahead());
            std::hint::black_box(ahead);
            for &id in group {
                cells.push_restricted(self.cells.key(id).clone(), self.cells.state(id), &known);
            }
        }
        cells.shrink_to_fit();
        Some(Delta {
            base,
            clock: self.clock.clone(),
            snapshot: false,
            cells,
            origins,
            encoded: Default::default(),
        })
    }

    fn snapshot_delta(&self) -> Delta {
        let ids = self.cells.ids_by_key();
        let mut cells = DeltaCells::with_capacity(ids.len());
        for id in ids {
            cells.push_cloned(self.cells.key(id).clone(), self.cells.state(id));
        }
        Delta {
            base: VectorClock::new(),
            clock: self.clock.clone(),
            snapshot: true,
            cells,
            origins: Vec::new(),
            encoded: Default::default(),
        }
    }

    fn sorted_cells(&self) -> Vec<(CellKey, CellState)> {
        self.cells
            .ids_by_key()
            .into_iter()
            .map(|id| (self.cells.key(id).clone(), self.cells.state(id).clone()))
            .collect()
    }

    // ---------------------------------------------------------------- metadata GC

    fn recompute_stable(&mut self) {
        let mut stable = self.clock.clone();
        for member in &self.members {
            if *member == self.id {
                continue;
            }
            match self.peer_clocks.get(member) {
                Some(clock) => stable.meet_assign(clock),
                None => {
                    stable = VectorClock::new();
                    break;
                }
            }
        }
        // The stable point never moves back, not even for a member added (or added back)
        // behind it: what was collected stays collected, and such a member is sent a whole
        // state instead (see `add_member`).
        self.stable.merge(&stable);
    }

    /// Collects garbage if every member is known to hold everything this replica holds: the
    /// stable point is then its clock. Cheap when not (a counter is read).
    fn collect_if_caught_up(&mut self) {
        // While cells are open `members_behind` may be short of their commits (only a replica
        // with no peer needs no seal to know); `collect_garbage` computes the true meet anyway.
        let caught_up =
            self.members_behind == 0 && (self.open_cells.is_empty() || self.members.len() == 1);
        if caught_up && self.stable != self.clock {
            self.collect_garbage();
        }
    }

    /// Discards what every member has seen: index ranges and observed-remove tombstones.
    fn collect_garbage(&mut self) {
        let before = self.stable.clone();
        self.recompute_stable();
        if self.stable == before {
            return;
        }
        for (origin, index) in &mut self.index {
            self.stats.ranges_trimmed += index.trim(self.stable.get(*origin)) as u64;
        }
        let stable = &self.stable;
        let cells = &mut self.cells;
        self.tombstoned.retain(|&id| {
            let cell = cells.state_mut(id);
            cell.compact(stable);
            cell.tombstone_count() > 0
        });
    }

    // ---------------------------------------------------------------- durability

    /// Takes what the replica produced since the last call. Make `records` durable first, then
    /// send `messages` and acknowledge `committed`.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::Record;
    /// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// let receipt = replica.commit(tx).unwrap();
    /// let ready = replica.take_ready();
    /// assert!(matches!(ready.records[..], [Record::Commit(_)])); // make durable first,
    /// assert!(ready.messages.is_empty()); // then send,
    /// assert_eq!(ready.committed, [receipt.dot]); // then acknowledge
    /// assert!(replica.take_ready().is_empty());
    /// ```
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    /// [`Replica::take_ready`] into a `Ready` the caller keeps: appends what the replica produced
    /// to `out`. A caller that clears `out` after acting on it, and passes it again, drives the
    /// replica without allocating a `Ready` per step.
    ///
    /// Hidden: the engine, the simulator's node and the benches call it from other crates (so it
    /// cannot be `pub(crate)`); it is [`Replica::take_ready`] without the allocations, and a
    /// user's driver calls `take_ready`.
    #[doc(hidden)]
    #[inline(always)]
    pub fn take_ready_into(&mut self, out: &mut Ready) {
        // Called once per commit by the engine: the common case (one dot, no message, a record
        // or none) must cost a few moves, not `append`'s out-of-line copies of empty lists, and
        // no call (always inlined).
        // An empty list of the caller's with no more room than ours trades places with it (both
        // keep their capacity); otherwise ours is appended, into room the caller may have made.
        fn hand_over<T>(ours: &mut Vec<T>, out: &mut Vec<T>) {
            if ours.is_empty() {
                return;
            }
            if out.is_empty() && out.capacity() <= ours.capacity() {
                std::mem::swap(ours, out);
            } else {
                out.append(ours);
            }
        }
        hand_over(&mut self.ready.records, &mut out.records);
        hand_over(&mut self.ready.messages, &mut out.messages);
        hand_over(&mut self.ready.committed, &mut out.committed);
    }

    /// Whether [`Replica::take_ready`] has anything.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    fn push_record(&mut self, record: Record) {
        self.ready.records.push(record);
        self.records_since_snapshot += 1;
        if self.records_since_snapshot >= self.config.snapshot_every.max(1) {
            self.seal_open_cells();
            // Ranked, the cells are placed in key order rather than compared.
            self.cells.refresh_ranks();
            let snapshot = self.snapshot();
            self.ready
                .records
                .push(Record::Snapshot(Box::new(snapshot)));
            self.records_since_snapshot = 0;
        }
    }

    /// The replica's durable image.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::Record;
    /// let a = NodeId::new("a").unwrap();
    /// let mut replica = Replica::new(a, schema.clone(), ReplicaConfig::default());
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 5);
    /// replica.commit(tx).unwrap();
    /// let image = replica.snapshot();
    /// assert_eq!((image.id(), image.cells().len()), (a, 1));
    /// let restored = Replica::recover(a, schema, ReplicaConfig::default(), [Record::Snapshot(Box::new(image))]).unwrap();
    /// assert!(restored.same_canonical_state(&replica));
    /// ```
    pub fn snapshot(&self) -> ReplicaSnapshot {
        let mut own_sealed = None;
        if !self.open_cells.is_empty() {
            let mut own = self.index.get(&self.id).cloned().unwrap_or_default();
            own.record(self.clock.get(self.id), self.open_cells.iter());
            own_sealed = Some(own);
        }
        let mut index: Vec<(NodeId, IndexImage)> = self
            .index
            .iter()
            .filter(|(n, _)| own_sealed.is_none() || **n != self.id)
            .map(|(n, i)| (*n, i.image(&self.cells)))
            .collect();
        if let Some(own) = own_sealed {
            index.push((self.id, own.image(&self.cells)));
            index.sort_unstable_by_key(|(n, _)| *n);
        }
        ReplicaSnapshot {
            id: self.id,
            clock: self.clock.clone(),
            cells: self.sorted_cells(),
            index,
            stable: self.stable.clone(),
        }
    }

    /// Rebuilds replica `id` from the records it emitted, in order. The result holds exactly
    /// what those records hold, so it never reuses a dot it had made durable.
    ///
    /// Replaying emits nothing: the recovered replica's first [`Ready`] holds nothing it read
    /// from `records` (they are durable already; a driver that appended them again would log an
    /// old snapshot after newer records). Its snapshot cadence goes on from the records after
    /// the last snapshot in `records`, as if it had never stopped.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// let a = NodeId::new("a").unwrap();
    /// let mut replica = Replica::new(a, schema.clone(), ReplicaConfig::default());
    /// let mut log = Vec::new();
    /// for _ in 0..3 {
    ///     let mut tx = AlgebraicTransaction::new();
    ///     tx.increment("counters", "hits", "value", 1);
    ///     replica.commit(tx).unwrap();
    ///     log.extend(replica.take_ready().records); // what a driver made durable
    /// }
    /// let mut restarted = Replica::recover(a, schema, ReplicaConfig::default(), log).unwrap();
    /// assert_eq!(restarted.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(3));
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// assert_eq!(restarted.commit(tx).unwrap().dot.counter(), 4); // no dot reused
    /// ```
    pub fn recover(
        id: NodeId,
        schema: Schema,
        config: ReplicaConfig,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Self> {
        let mut replica = Replica::new(id, schema, config);
        let emit_records = std::mem::replace(&mut replica.config.emit_records, false);
        let mut since_snapshot = 0;
        for (index, record) in records.into_iter().enumerate() {
            since_snapshot = match record {
                Record::Snapshot(_) => 0,
                _ => since_snapshot + 1,
            };
            replica.replay(index, record)?;
        }
        replica.config.emit_records = emit_records;
        replica.records_since_snapshot = since_snapshot;
        debug_assert!(replica.ready.is_empty(), "replaying emits nothing");
        replica.collect_if_caught_up();
        Ok(replica)
    }

    /// Applies the record at `index` of a replica's log, as [`Replica::recover`] replays it.
    fn replay(&mut self, index: usize, record: Record) -> Result<()> {
        let id = self.id;
        let fail = |reason: String| LocalCommitError::Recovery { index, reason };
        match record {
            Record::Snapshot(snapshot) => {
                if snapshot.id != id {
                    return Err(fail(format!("snapshot of node {}, not {id}", snapshot.id)));
                }
                self.load_snapshot(*snapshot)
                    .map_err(|e| fail(e.to_string()))?;
            }
            Record::Commit(update) => {
                if update.dot.node() != id {
                    return Err(fail(format!(
                        "commit of node {}, not {id}",
                        update.dot.node()
                    )));
                }
                // The record holds no clock: everything the commit depended on is in the
                // records before it, so it must be exactly the replica's next own event.
                if Some(update.dot.counter()) != self.clock.get(id).checked_add(1) {
                    return Err(fail(format!(
                        "commit {} does not follow clock {}",
                        update.dot, self.clock
                    )));
                }
                let mut open = std::mem::take(&mut self.open_cells);
                let slots = self.locate_all(&update.effects);
                let applied = self.apply_local(&update.effects, &slots, update.dot, false, |id| {
                    open.file(id)
                });
                self.open_cells = open;
                applied.map_err(|e| fail(e.to_string()))?;
                self.clock.set(id, update.dot.counter());
                self.stats.commits += 1;
            }
            Record::Ordered {
                index: log_index,
                update,
            } => {
                self.apply_ordered(log_index, &update)
                    .map_err(|e| fail(e.to_string()))?;
            }
            Record::Merge { from, delta } => {
                check_delta_shape(from, &delta).map_err(|e| fail(e.to_string()))?;
                if !delta.base.dominated_by(&self.clock) {
                    return Err(fail(format!(
                        "merge from {from} needs clock {}",
                        delta.base
                    )));
                }
                // The stable point restored from the last snapshot is at most what it was when
                // the delta was applied, so the stale-delta filter lets it through.
                self.apply_delta(from, *delta, false)
                    .map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn load_snapshot(&mut self, snapshot: ReplicaSnapshot) -> Result<()> {
        if !snapshot.cells.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(LocalCommitError::MalformedMessage {
                from: snapshot.id,
                reason: "snapshot cells not sorted",
            });
        }
        if !snapshot.stable.dominated_by(&snapshot.clock) {
            return Err(LocalCommitError::MalformedMessage {
                from: snapshot.id,
                reason: "snapshot stable point is ahead of its clock",
            });
        }
        let mut cells = CellStore::default();
        let mut tombstoned = BTreeSet::new();
        for (key, state) in snapshot.cells {
            let mut cell = self.new_cell(&key)?;
            cell.merge(&state)
                .map_err(|source| LocalCommitError::RemoteStateRejected {
                    from: snapshot.id,
                    key: Box::new(key.clone()),
                    source: Box::new(source),
                })?;
            let has_tombstones = cell.tombstone_count() > 0;
            let id = cells.insert_new(key, cell);
            if has_tombstones {
                tombstoned.insert(id);
            }
        }
        let mut index = BTreeMap::new();
        for (origin, image) in snapshot.index {
            let rebuilt = OriginIndex::from_image(image, &cells).ok_or(
                LocalCommitError::MalformedMessage {
                    from: snapshot.id,
                    reason: "snapshot index is out of order or names a cell it does not hold",
                },
            )?;
            index.insert(origin, rebuilt);
        }
        self.cells = cells;
        // Ids now name other cells: hints handed out before must not be trusted.
        self.identity = prepared::StoreIdentity::default();
        self.tombstoned = tombstoned;
        self.clock = snapshot.clock;
        // The snapshot supersedes everything before it, the stable point included.
        self.stable = snapshot.stable;
        self.count_members_behind();
        self.index = index;
        self.open_cells.clear();
        Ok(())
    }
}

/// How [`Replica::apply_delta`] joins a delta's cells, planned before any is installed.
struct JoinPlan {
    /// A join per cell, in the delta's order.
    joins: Vec<Join>,
    /// The states computed ahead for the [`Join::Replace`] and [`Join::New`] joins, in the
    /// same order: kept beside the joins so that a join is 16 bytes, not a state's width (the
    /// common joins, adopting a new counter or merging one in place, carry none), and a delta
    /// of thousands of cells plans into a quarter of the fresh memory.
    computed: Vec<CellState>,
    /// How many cells the replica did not hold.
    new_cells: usize,
}

/// How one cell of a delta joins the replica's state.
enum Join {
    /// Merge in place: the merge cannot fail.
    InPlace(CellId),
    /// Replace the cell by the next of the plan's computed states: this join, already computed
    /// on a copy.
    Replace(CellId),
    /// A cell the replica did not hold (its key hashes to the `u64`), with the next of the
    /// plan's computed states: the incoming one merged into an empty cell, which may fail.
    New(u64),
    /// A cell the replica did not hold (its key hashes to the `u64`), whose state is the
    /// incoming one: an empty cell is the identity of every merge that cannot fail (the identity
    /// law, tested in `rhizo-algebra`'s laws).
    Adopt(u64),
}

// What keeping the computed states in `JoinPlan` is for: a join no wider than a hash and its tag.
const _: () = assert!(std::mem::size_of::<Join>() == 16);

/// A delta's cells by id, mapped to their positions in the delta's cell list.
///
/// Ids are dense, so when a delta carries a fair share of the replica's cells a flat array
/// indexed by id is both smaller and several times faster than a hash map; a small delta from a
/// large replica keeps the map, so its cost stays proportional to the delta.
enum Positions {
    Dense(Vec<u32>),
    Sparse(HashMap<CellId, u32, FixedState>),
}

impl Positions {
    const UNSEEN: u32 = u32::MAX;

    fn for_delta(touched: usize, cells: usize) -> Self {
        if cells <= touched.saturating_mul(8) {
            Positions::Dense(vec![Self::UNSEEN; cells])
        } else {
            Positions::Sparse(HashMap::with_capacity_and_hasher(
                touched,
                FixedState::default(),
            ))
        }
    }

    /// Whether `id` is seen for the first time (it is then marked seen).
    #[inline]
    fn first_sight(&mut self, id: CellId) -> bool {
        match self {
            Positions::Dense(slots) => {
                let slot = &mut slots[id as usize];
                let first = *slot == Self::UNSEEN;
                *slot = 0;
                first
            }
            Positions::Sparse(map) => map.insert(id, 0).is_none(),
        }
    }

    #[inline]
    fn set(&mut self, id: CellId, position: u32) {
        match self {
            Positions::Dense(slots) => slots[id as usize] = position,
            Positions::Sparse(map) => {
                map.insert(id, position);
            }
        }
    }

    #[inline]
    fn get(&self, id: CellId) -> u32 {
        match self {
            Positions::Dense(slots) => slots[id as usize],
            Positions::Sparse(map) => map[&id],
        }
    }
}

/// A fresh cell for `key`, of its column's merge type.
fn new_cell(schema: &Schema, key: &CellKey) -> Result<CellState> {
    let spec = schema.column(key.table(), key.column()).map_err(|source| {
        LocalCommitError::UnknownCell {
            key: Box::new(key.clone()),
            source: Box::new(source),
        }
    })?;
    Ok(CellState::new(spec))
}

/// The observed-remove of `value` by a replica whose cell is `cell`: the adds of those elements
/// it holds (none if it has no such cell yet).
fn observed_remove(
    cell: Option<&CellState>,
    spec: &ColumnSpec,
    value: &AlgebraicValue,
) -> rhizo_algebra::Result<CellOp> {
    match cell {
        Some(cell) => cell.remove_op(spec, value),
        None => CellState::new(spec).remove_op(spec, value),
    }
}

fn is_integer_op(op: &CellOp) -> bool {
    matches!(op, CellOp::AddInt(_) | CellOp::MulInt(_))
}

fn can_fail_on_apply(op: &CellOp) -> bool {
    matches!(op, CellOp::AddFloat(_) | CellOp::MulFloat(_))
}

/// The cells touched by local commits since the last seal, each listed once: a replica that
/// commits to the same cells again and again (a hot counter, a 100-cell transaction) files each
/// once per sync, not once per commit (sealing duplicates into the index would cost a search
/// per operation of every commit).
#[derive(Debug, Clone, Default)]
struct OpenCells {
    ids: Vec<CellId>,
    /// Bit `id` is set exactly when `id` is in `ids`.
    listed: Vec<u64>,
}

impl OpenCells {
    #[inline]
    fn file(&mut self, id: CellId) {
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        match self.listed.get_mut(word) {
            Some(listed) if *listed & bit != 0 => {}
            Some(listed) => {
                *listed |= bit;
                self.ids.push(id);
            }
            None => self.file_beyond(id),
        }
    }

    /// [`OpenCells::file`] of a cell beyond the bits held so far.
    #[cold]
    #[inline(never)]
    fn file_beyond(&mut self, id: CellId) {
        self.listed.resize(id as usize / 64 + 1, 0);
        self.file(id);
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = CellId> + '_ {
        self.ids.iter().copied()
    }

    /// The cells listed, in the order first filed; the list is left empty.
    fn take(&mut self) -> Vec<CellId> {
        for &id in &self.ids {
            self.listed[id as usize / 64] &= !(1u64 << (id % 64));
        }
        std::mem::take(&mut self.ids)
    }

    fn clear(&mut self) {
        self.take();
    }
}

/// Applies one cell's effects to `cell`, one operation through `apply`'s fast paths. On error
/// the cell is as it was.
#[inline]
fn apply_effect(cell: &mut CellState, effect: &CellEffect, dot: Dot) -> Result<()> {
    let applied = match &effect.ops[..] {
        [op] => cell.apply(op, dot),
        ops => cell.apply_all(ops, dot),
    };
    applied.map_err(|source| invalid(&effect.key, source))
}

fn invalid(key: &CellKey, source: rhizo_algebra::AlgebraError) -> LocalCommitError {
    LocalCommitError::InvalidOperations {
        errors: vec![(key.clone(), source)],
    }
}

/// Structural checks of a delta that need no state: canonical cell order, ranges in bounds.
fn check_delta_shape(from: NodeId, delta: &Delta) -> Result<()> {
    let malformed = |reason| Err(LocalCommitError::MalformedMessage { from, reason });
    if !delta.cells.keys().windows(2).all(|w| w[0] < w[1]) {
        return malformed("delta cells are not strictly increasing");
    }
    if !delta.base.dominated_by(&delta.clock) {
        return malformed("delta base is ahead of its clock");
    }
    if delta.snapshot && !delta.base.is_empty() {
        return malformed("a snapshot has an empty base");
    }
    for range in &delta.origins {
        if range.hi > delta.clock.get(range.origin) {
            return malformed("origin range beyond the delta's clock");
        }
        if range.cells.iter().any(|&i| i as usize >= delta.cells.len()) {
            return malformed("origin range names a cell the delta does not hold");
        }
        if !range.cells.windows(2).all(|w| w[0] < w[1]) {
            return malformed("origin range positions are not strictly increasing");
        }
    }
    Ok(())
}

/// FNV-1a, 64-bit: a tiny stable hash for fingerprints (not for adversarial input).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl TransactionMetadata {
    /// Metadata with an application tag.
    pub fn tagged(tag: u64) -> Self {
        Self { tag: Some(tag) }
    }
}

#[cfg(test)]
mod open_cells_tests {
    use super::OpenCells;

    #[test]
    fn each_cell_is_listed_once_until_taken() {
        let mut open = OpenCells::default();
        for id in [3, 70, 3, 3, 0, 70, 129] {
            open.file(id);
        }
        assert_eq!(open.len(), 4);
        assert_eq!(open.iter().collect::<Vec<_>>(), [3, 70, 0, 129]);
        assert_eq!(open.take(), [3, 70, 0, 129]);
        assert!(open.is_empty());
        // Taking unlisted them: filing again lists them again.
        open.file(70);
        open.file(3);
        open.file(70);
        assert_eq!(open.take(), [70, 3]);
        open.file(5);
        open.clear();
        assert!(open.is_empty());
        open.file(5);
        assert_eq!(open.iter().collect::<Vec<_>>(), [5]);
    }
}

#[cfg(test)]
mod expected_origins_tests {
    use rhizo_clock::VectorClock;

    use super::{Replica, ReplicaConfig};
    use crate::testkit::{node, schema};

    /// A cell expects every member only when the known updates are many per cell: over a
    /// key space wider than the updates, a cell that must grow expects the few it can get.
    #[test]
    fn a_cell_expects_no_more_origins_than_updates_per_cell() {
        let members: Vec<_> = (0..100).map(node).collect();
        let config = ReplicaConfig {
            members: members.clone(),
            ..ReplicaConfig::default()
        };
        let replica = Replica::new(node(0), schema(), config);
        let mut clock = VectorClock::new();
        for &member in &members {
            clock.set(member, 10);
        }
        // 1,000 updates known.
        assert_eq!(replica.expected_origins(&clock, 100_000), 1);
        assert_eq!(replica.expected_origins(&clock, 100), 10);
        assert_eq!(replica.expected_origins(&clock, 10), 100);
        assert_eq!(
            replica.expected_origins(&clock, 1),
            100,
            "never beyond the members"
        );
        assert_eq!(replica.expected_origins(&VectorClock::new(), 0), 1);
    }
}

#[cfg(test)]
mod members_behind_tests {
    use proptest::prelude::*;

    use super::{Message, Replica, ReplicaConfig};
    use crate::testkit::{incr, node, schema};

    /// One step of a schedule among a few replicas.
    #[derive(Debug, Clone)]
    enum Step {
        Commit { on: usize, row: u8 },
        Sync { from: usize, to: usize },
        Deliver { pick: usize },
        Drop { pick: usize },
    }

    fn step(replicas: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0..replicas, 0..6u8).prop_map(|(on, row)| Step::Commit { on, row }),
            1 => (0..replicas, 0..replicas).prop_map(|(from, to)| Step::Sync { from, to }),
            3 => any::<usize>().prop_map(|pick| Step::Deliver { pick }),
            1 => any::<usize>().prop_map(|pick| Step::Drop { pick }),
        ]
    }

    /// Each replica's count of members behind is the members whose reported clocks do not
    /// dominate its own, whenever no local commit waits unsealed (the count is kept as clocks
    /// grow and peers report, not recounted).
    fn check_counts(replicas: &[Replica]) -> Result<(), TestCaseError> {
        for replica in replicas {
            if replica.open_cells.is_empty() {
                prop_assert_eq!(replica.members_behind, replica.peers_behind().count());
                prop_assert!(
                    replica
                        .caught_up
                        .iter()
                        .all(|m| replica.members.contains(m))
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Law: under any schedule of commits, exchanges, deliveries in any order and losses,
        /// the count of members behind equals a full count.
        #[test]
        fn the_count_of_members_behind_is_a_full_count(
            steps in proptest::collection::vec(step(4), 1..120),
        ) {
            let ids: Vec<_> = (0..4).map(node).collect();
            let config = ReplicaConfig { members: ids.clone(), ..ReplicaConfig::default() };
            let mut replicas: Vec<Replica> =
                ids.iter().map(|&id| Replica::new(id, schema(), config.clone())).collect();
            let mut in_flight: Vec<(usize, usize, Message)> = Vec::new();
            for step in steps {
                match step {
                    Step::Commit { on, row } => {
                        replicas[on].commit(incr(&format!("r{row}"), 1)).unwrap();
                    }
                    Step::Sync { from, to } => replicas[from].sync_with(ids[to]),
                    Step::Deliver { pick } if !in_flight.is_empty() => {
                        let (from, to, message) = in_flight.remove(pick % in_flight.len());
                        replicas[to].step(ids[from], message).unwrap();
                    }
                    Step::Drop { pick } if !in_flight.is_empty() => {
                        in_flight.remove(pick % in_flight.len());
                    }
                    Step::Deliver { .. } | Step::Drop { .. } => {}
                }
                for (from, replica) in replicas.iter_mut().enumerate() {
                    for (to, message) in replica.take_ready().messages {
                        let to = ids.iter().position(|id| *id == to).unwrap();
                        in_flight.push((from, to, message));
                    }
                }
                check_counts(&replicas)?;
            }
        }
    }
}
