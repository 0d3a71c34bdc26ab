//! The Raft log of one node: an in-memory mirror that implements [`raft::Storage`], and the
//! durable records it is rebuilt from.
//!
//! The durability boundary is the [`DurableRaftLog`] trait: a node hands it [`RaftRecord`]s and
//! acts on them (sends a message, acknowledges a client) only once `persist` has returned. A
//! restarted node replays the records with [`RecoveredRaft::replay`]; whatever `persist`
//! accepted survives, nothing else does.

use std::cell::Cell;

use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use rhizo_algebra::Schema;
use rhizo_commit::Record;
use serde::{Deserialize, Serialize};

use super::RaftError;
use super::applied_writes::{AppliedWrites, SnapshotData};
use super::membership::Membership;

/// One Raft log entry in its durable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its index in the log.
    pub index: u64,
    /// The term it was proposed in.
    pub term: u64,
    /// `0` normal, `1` configuration change, `2` configuration change v2.
    pub kind: u8,
    /// The command.
    pub data: Vec<u8>,
    /// Raft's context bytes.
    pub context: Vec<u8>,
}

impl LogEntry {
    fn from_raft(entry: &Entry) -> Self {
        Self {
            index: entry.index,
            term: entry.term,
            kind: match entry.get_entry_type() {
                EntryType::EntryNormal => 0,
                EntryType::EntryConfChange => 1,
                EntryType::EntryConfChangeV2 => 2,
            },
            data: entry.data.to_vec(),
            context: entry.context.to_vec(),
        }
    }

    fn to_raft(&self) -> Entry {
        let mut entry = Entry {
            index: self.index,
            term: self.term,
            ..Entry::default()
        };
        entry.set_entry_type(match self.kind {
            1 => EntryType::EntryConfChange,
            2 => EntryType::EntryConfChangeV2,
            _ => EntryType::EntryNormal,
        });
        entry.data = self.data.clone().into();
        entry.context = self.context.clone().into();
        entry
    }
}

/// What a Raft node makes durable, in order. Replaying a node's records rebuilds its Raft log,
/// hard state, snapshot and state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RaftRecord {
    /// The node's hard state (term, vote, commit index).
    HardState {
        /// Current term.
        term: u64,
        /// Whom this node voted for in `term` (0: nobody).
        vote: u64,
        /// Highest index known committed.
        commit: u64,
    },
    /// Entries appended; they replace any entries at or after the first one's index.
    Entries(Vec<LogEntry>),
    /// A snapshot of the state machine at `index`: every earlier entry and record is superseded.
    Snapshot {
        /// The last log index the snapshot covers.
        index: u64,
        /// That entry's term.
        term: u64,
        /// The voters at that point.
        voters: Vec<u64>,
        /// The replica's image (`wire::encode_record(Record::Snapshot(..))`).
        data: Vec<u8>,
    },
    /// A record of the node's replica (state-machine output).
    Replica(Box<Record>),
    /// Every committed entry up to this index has been applied to the replica.
    Applied(u64),
    /// The node restarted: its proposals now carry this incarnation, so that an old proposal
    /// id is never mistaken for a new one.
    Incarnation(u64),
    /// A schema change the log ordered, applied at this point.
    Schema(Box<Schema>),
    /// The group's membership after a configuration change applied at this point.
    Membership(Box<Membership>),
}

/// Where a Raft node's records go. `persist` returns once the records survive a crash.
///
/// Records are kept in the order given, across calls: whatever a crash keeps is a prefix of what
/// was written, so a durable record implies that every record written before it is durable.
pub trait DurableRaftLog: std::fmt::Debug {
    /// Makes `records` durable, in order.
    fn persist(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError>;

    /// Writes `records` after everything written before, without waiting for them to be
    /// durable: they are once [`DurableRaftLog::sync_written`] (or a later `persist`) returns.
    /// A log whose writes are durable at once keeps the default, `persist`.
    fn write_unsynced(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        self.persist(records)
    }

    /// Makes every record written so far durable.
    fn sync_written(&mut self) -> Result<(), RaftError> {
        Ok(())
    }
}

/// A [`DurableRaftLog`] in memory: "durable" for as long as the value lives. The simulator
/// clones it at a crash and replays it at restart. A snapshot record drops every record it
/// supersedes, so the log stays proportional to the state plus the entries after the snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemRaftLog {
    records: Vec<RaftRecord>,
}

impl MemRaftLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records, oldest first.
    pub fn records(&self) -> &[RaftRecord] {
        &self.records
    }
}

impl DurableRaftLog for MemRaftLog {
    fn persist(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        for record in records {
            if matches!(record, RaftRecord::Snapshot { .. }) {
                // Keep only what a snapshot does not supersede: the newest schema, hard state and
                // incarnation. The caller re-persists the entries after the snapshot.
                let hard_state = self
                    .records
                    .iter()
                    .rev()
                    .find(|r| matches!(r, RaftRecord::HardState { .. }))
                    .cloned();
                let incarnation = self
                    .records
                    .iter()
                    .rev()
                    .find(|r| matches!(r, RaftRecord::Incarnation(_)))
                    .cloned();
                let schema = self
                    .records
                    .iter()
                    .rev()
                    .find(|r| matches!(r, RaftRecord::Schema(_)))
                    .cloned();
                self.records.clear();
                self.records.extend(schema);
                self.records.extend(incarnation);
                self.records.extend(hard_state);
            }
            self.records.push(record);
        }
        Ok(())
    }
}

/// The in-memory Raft log of a node, read by `raft` through [`raft::Storage`].
///
/// A snapshot is sent to a follower only fresh: taken after the follower asked for it. An older
/// image may be older than what the follower knows every member has seen, and such an image
/// cannot be joined (garbage collection may have discarded the tombstones that cancel it). So
/// `raft`'s request for a snapshot is answered "temporarily unavailable" and noted; the node
/// takes a fresh one ([`RaftLogStore::take_snapshot_request`]) and `raft` asks again.
#[derive(Debug, Clone, Default)]
pub(crate) struct RaftLogStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// The latest snapshot (its metadata says which prefix of the log it replaces).
    snapshot: Snapshot,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// Whether `snapshot` was taken for a request and not sent yet.
    snapshot_fresh: Cell<bool>,
    /// Whether `raft` asked for a snapshot that was not fresh.
    snapshot_wanted: Cell<bool>,
}

impl RaftLogStore {
    /// A log for a cluster of `voters` that has never run: every node starts from the same
    /// empty state, so no bootstrap snapshot is needed.
    pub(crate) fn new(voters: Vec<u64>) -> Self {
        let mut store = Self::default();
        store.conf_state.voters = voters.clone();
        store.snapshot.mut_metadata().mut_conf_state().voters = voters;
        store
    }

    /// Sets the configuration a restart of `raft` starts from (after an applied change).
    pub(crate) fn set_conf_state(&mut self, conf_state: ConfState) {
        self.conf_state = conf_state;
    }

    /// The hard state.
    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The snapshot held (index 0 when none was taken).
    pub(crate) fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot.
    pub(crate) fn entries_ref(&self) -> &[Entry] {
        &self.entries
    }

    fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    fn last(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.get_metadata().index, |e| e.index)
    }

    /// Sets the hard state; returns its record.
    pub(crate) fn set_hard_state(&mut self, hs: HardState) -> RaftRecord {
        self.hard_state = hs;
        RaftRecord::HardState {
            term: self.hard_state.term,
            vote: self.hard_state.vote,
            commit: self.hard_state.commit,
        }
    }

    /// Appends entries, replacing any conflicting suffix; returns their record.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<RaftRecord, RaftError> {
        if let Some(first) = entries.first() {
            if first.index < self.first() || first.index > self.last() + 1 {
                return Err(RaftError::Storage {
                    reason: format!(
                        "append at {} outside the log ({}..={})",
                        first.index,
                        self.first(),
                        self.last() + 1
                    ),
                });
            }
            let keep = (first.index - self.first()) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
        Ok(RaftRecord::Entries(
            entries.iter().map(LogEntry::from_raft).collect(),
        ))
    }

    /// Installs a snapshot (one received from the leader, or this node's own): entries it
    /// covers are dropped, later ones kept if they agree with it. Returns the records to persist.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) -> Vec<RaftRecord> {
        let meta = snapshot.get_metadata();
        let (index, term) = (meta.index, meta.term);
        // The entries after the snapshot stay if the log agrees with it at its index — also when
        // that index is the snapshot already held (a second snapshot at the same point must not
        // drop the log after it).
        if self.term_of(index) == Some(term) {
            let drop = ((index + 1).saturating_sub(self.first()) as usize).min(self.entries.len());
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.conf_state = meta.get_conf_state().clone();
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        self.hard_state.term = self.hard_state.term.max(term);
        let voters = self.conf_state.voters.clone();
        let data = snapshot.data.to_vec();
        self.snapshot = snapshot;
        let mut records = vec![
            RaftRecord::Snapshot {
                index,
                term,
                voters,
                data,
            },
            RaftRecord::HardState {
                term: self.hard_state.term,
                vote: self.hard_state.vote,
                commit: self.hard_state.commit,
            },
        ];
        if !self.entries.is_empty() {
            records.push(RaftRecord::Entries(
                self.entries.iter().map(LogEntry::from_raft).collect(),
            ));
        }
        records
    }

    /// Whether `raft` asked for a snapshot since the last call (then take a fresh one and
    /// [`RaftLogStore::mark_fresh`] it).
    pub(crate) fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// Marks the snapshot held as taken for a pending request: `raft` may send it once.
    pub(crate) fn mark_fresh(&self) {
        self.snapshot_fresh.set(true);
    }

    /// The term of entry `index`, if the log holds it.
    pub(crate) fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.get_metadata().index {
            return Some(self.snapshot.get_metadata().term);
        }
        if index < self.first() || index > self.last() {
            return None;
        }
        Some(self.entries[(index - self.first()) as usize].term)
    }
}

impl raft::Storage for RaftLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let max_size = max_size.into();
        let mut out = Vec::with_capacity(hi - lo);
        let mut size = 0u64;
        for entry in &self.entries[lo..hi] {
            let entry_size = (entry.data.len() + entry.context.len() + 16) as u64;
            // raft expects at least one entry even when it alone exceeds the limit.
            if !out.is_empty() && max_size.is_some_and(|max| size + entry_size > max) {
                break;
            }
            size += entry_size;
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snapshot.get_metadata().index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index
            || self.snapshot.get_metadata().index == 0
            || !self.snapshot_fresh.replace(false)
        {
            // The node takes a fresh snapshot at its next drain; raft asks again later.
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

/// A node's state as replayed from its durable records.
#[derive(Debug, Default)]
pub(crate) struct RecoveredRaft {
    /// The Raft log.
    pub(crate) store: RaftLogStore,
    /// The replica's records (starting with its snapshot, if one was taken).
    pub(crate) replica: Vec<Record>,
    /// The last entry applied to the replica.
    pub(crate) applied: u64,
    /// The last incarnation recorded.
    pub(crate) incarnation: u64,
    /// The newest schema the log ordered, if it ordered one.
    pub(crate) schema: Option<Schema>,
    /// The newest write applied from each proposer, as of the snapshot.
    pub(crate) applied_writes: AppliedWrites,
    /// The membership the log last set (by a snapshot or an applied change), if it set one.
    pub(crate) membership: Option<Membership>,
    /// Every node any membership the log still holds named: a node absent from the last one
    /// but named here was removed (not yet added would name it nowhere).
    pub(crate) ever_members: std::collections::BTreeSet<rhizo_clock::NodeId>,
}

impl RecoveredRaft {
    /// Replays `records` over a fresh log for `voters`.
    pub(crate) fn replay(voters: Vec<u64>, records: &[RaftRecord]) -> Result<Self, RaftError> {
        let mut out = Self {
            store: RaftLogStore::new(voters),
            ..Self::default()
        };
        for record in records {
            match record {
                RaftRecord::HardState { term, vote, commit } => {
                    out.store.hard_state = HardState {
                        term: *term,
                        vote: *vote,
                        commit: *commit,
                        ..HardState::default()
                    };
                }
                RaftRecord::Entries(entries) => {
                    let entries: Vec<Entry> = entries.iter().map(LogEntry::to_raft).collect();
                    out.store.append(&entries)?;
                }
                RaftRecord::Snapshot {
                    index, term, data, ..
                } => {
                    let mut snapshot = Snapshot {
                        data: data.clone().into(),
                        ..Snapshot::default()
                    };
                    let meta = snapshot.mut_metadata();
                    meta.index = *index;
                    meta.term = *term;
                    let decoded = SnapshotData::decode(data)
                        .map_err(|reason| RaftError::Storage { reason })?;
                    // The payload's membership names learners too, which `voters` does not.
                    meta.set_conf_state(decoded.membership.conf_state());
                    let hard_state = out.store.hard_state.clone();
                    out.store.install_snapshot(snapshot);
                    // The hard state recorded after the snapshot wins; keep the newest so far.
                    out.store.hard_state.vote = hard_state.vote;
                    out.ever_members.extend(decoded.membership.nodes());
                    out.membership = Some(decoded.membership);
                    out.replica = vec![decoded.image];
                    out.applied_writes = decoded.applied_writes;
                    if out
                        .schema
                        .as_ref()
                        .is_none_or(|s| s.version() < decoded.schema.version())
                    {
                        out.schema = Some(decoded.schema);
                    }
                    out.applied = *index;
                }
                RaftRecord::Replica(record) => out.replica.push((**record).clone()),
                RaftRecord::Applied(index) => out.applied = *index,
                RaftRecord::Incarnation(n) => out.incarnation = *n,
                RaftRecord::Schema(schema) => out.schema = Some((**schema).clone()),
                RaftRecord::Membership(membership) => {
                    out.ever_members.extend(membership.nodes());
                    out.store.conf_state = membership.conf_state();
                    out.membership = Some((**membership).clone());
                }
            }
        }
        if out.applied > out.store.hard_state.commit {
            return Err(RaftError::Storage {
                reason: format!(
                    "applied {} beyond the durable commit index {}",
                    out.applied, out.store.hard_state.commit
                ),
            });
        }
        Ok(out)
    }
}
