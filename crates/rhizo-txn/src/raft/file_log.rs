//! The durable Raft log on disk: [`RaftRecord`]s as checksummed frames in the engine's segment
//! format, through the same [`Storage`] trait.
//!
//! Files are `raft-NNNNNNNNNNNNNNNNNNNN.log` beside the engine's own segments. A segment is the
//! log magic followed by frames of kind 5 (a postcard [`RaftRecord`]) and kind 6 (the owner and
//! schema, first in every segment and again at each schema change). Recovery is the engine
//! log's: a torn last frame is cut off, damage before it is [`TxnError::Corrupt`].
//!
//! A [`RaftRecord::Snapshot`] supersedes every record before it but the newest hard state and
//! incarnation, so persisting one starts a new segment (written aside, synced, renamed) holding
//! the owner, those two records, the snapshot and the rest of its batch; the old segment is
//! deleted. The log thus stays proportional to the state plus the entries after the snapshot.

use rhizo_algebra::Schema;
use rhizo_clock::NodeId;

use super::RaftError;
use super::storage::{DurableRaftLog, RaftRecord};
use crate::log::{Entry, LogWriter, RAFT_PREFIX, RaftMeta};
use crate::storage::Storage;
use crate::{Result, TxnError};

/// How many bytes of frames of replica records left for a group sync wait in memory before they
/// are written to the file. What waits is not acknowledged as durable (the log counts it dirty),
/// and a group sync writes it first, so a process crash loses only commits of the group waiting
/// for its sync, as [`crate::SyncPolicy::Group`] allows.
pub(crate) const REPLICA_WRITE_BATCH: usize = 64 * 1024;

/// What [`FileRaftLog::append`] does with a batch once its frames are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landing {
    /// Written and synced before `append` returns.
    Synced,
    /// Written to the file (survives a process crash, not a power loss).
    Written,
    /// Left in memory until a batch's worth waits or the next sync: a group commit's records.
    Batched,
}

/// A [`DurableRaftLog`] in a data directory. `persist` returns once its records are written
/// and (unless syncing was turned off) synced.
pub struct FileRaftLog {
    writer: LogWriter,
    sync: bool,
    /// Whether records of the replica alone (coordination-free commits, merges) are synced at
    /// once too, or may wait for the next sync (a group commit). Waiting, they also stay in
    /// memory until [`REPLICA_WRITE_BATCH`] bytes of frames wait or the log is synced: one
    /// `write` per batch rather than per commit or merge.
    sync_replica: bool,
    meta: Option<RaftMeta>,
    /// The newest hard state and incarnation: what a snapshot does not supersede.
    hard_state: Option<RaftRecord>,
    incarnation: Option<RaftRecord>,
    /// Set by a failed write: what reached the disk is unknown, so nothing more is written.
    poisoned: Option<String>,
}

impl std::fmt::Debug for FileRaftLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRaftLog")
            .field("writer", &self.writer)
            .field("sync", &self.sync)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// A [`FileRaftLog`] as opened: the log and what it held.
#[derive(Debug)]
pub(crate) struct OpenedRaftLog {
    /// The log, ready to append.
    pub(crate) log: FileRaftLog,
    /// The records to replay (`RaftNode::open`'s `records`), oldest first.
    pub(crate) records: Vec<RaftRecord>,
    /// The node the log belongs to and its schema, if an owner was recorded.
    pub(crate) owner: Option<(NodeId, Schema)>,
}

impl FileRaftLog {
    /// Opens the Raft log in directory `dir` (created if missing).
    #[cfg(test)]
    pub(crate) fn open_dir(dir: impl AsRef<std::path::Path>) -> Result<OpenedRaftLog> {
        let storage = crate::storage::FsStorage::open(dir.as_ref())?;
        Self::open(Box::new(storage))
    }

    /// Opens the Raft log in `storage`, or starts an empty one. A torn last frame is cut off;
    /// any other damage is [`TxnError::Corrupt`].
    pub(crate) fn open(storage: Box<dyn Storage>) -> Result<OpenedRaftLog> {
        let (mut writer, entries) = LogWriter::open_prefixed(storage, RAFT_PREFIX)?;
        let mut log_records = Vec::new();
        let mut meta: Option<RaftMeta> = None;
        let (mut hard_state, mut incarnation) = (None, None);
        match entries {
            None => writer.rotate(|_| {})?,
            Some(entries) => {
                for entry in entries {
                    match entry {
                        Entry::Raft(record) => {
                            match *record {
                                RaftRecord::HardState { .. } => {
                                    hard_state = Some((*record).clone())
                                }
                                RaftRecord::Incarnation(_) => incarnation = Some((*record).clone()),
                                // The owner record names the schema as of the segment's start;
                                // one the log ordered since must outlive the records that the
                                // next snapshot supersedes, as `remember` keeps it while open.
                                RaftRecord::Schema(ref schema) => {
                                    if let Some(meta) = meta.as_mut()
                                        && schema.version() > meta.schema.version()
                                    {
                                        meta.schema = (**schema).clone();
                                    }
                                }
                                _ => {}
                            }
                            log_records.push(*record);
                        }
                        Entry::RaftMeta(m) => meta = Some(*m),
                        other => {
                            return Err(TxnError::Corrupt {
                                segment: format!("{writer:?}"),
                                offset: 0,
                                reason: format!(
                                    "an engine record in a Raft segment: {}",
                                    other.describe()
                                ),
                            });
                        }
                    }
                }
            }
        }
        let owner = meta.as_ref().map(|m| (m.node, m.schema.clone()));
        Ok(OpenedRaftLog {
            log: Self {
                writer,
                sync: true,
                sync_replica: true,
                meta,
                hard_state,
                incarnation,
                poisoned: None,
            },
            records: log_records,
            owner,
        })
    }

    /// Whether `persist` syncs (the default) or only writes (survives a process crash, not a
    /// power loss).
    #[must_use]
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self.sync_replica = sync;
        self
    }

    /// Whether a batch holding only the replica's records (coordination-free commits and
    /// merges) is synced at once (the default) or left for the next sync — a group commit,
    /// whose frames wait in memory until the sync (or until [`REPLICA_WRITE_BATCH`] bytes wait).
    /// Raft's own records (hard state, entries, snapshots) are always synced before `persist`
    /// returns (unless syncing is off): Raft counts them as persisted from then on.
    #[must_use]
    pub(crate) fn with_replica_sync(mut self, sync_replica: bool) -> Self {
        self.sync_replica = sync_replica && self.sync;
        self
    }

    /// Records the owner and schema (durably, before this returns).
    pub(crate) fn set_owner(&mut self, node: NodeId, schema: &Schema) -> Result<(), RaftError> {
        self.check()?;
        let meta = RaftMeta {
            node,
            schema: schema.clone(),
        };
        self.writer.frames().push_raft_meta(&meta);
        self.meta = Some(meta);
        let synced = self.writer.sync();
        self.note(synced)
    }

    /// Makes everything written durable now (nothing to do when `persist` syncs).
    pub fn sync(&mut self) -> Result<(), RaftError> {
        self.check()?;
        let synced = self.writer.sync();
        self.note(synced)
    }

    /// Whether records were written that are not durable yet (only without syncing).
    pub(crate) fn is_dirty(&self) -> bool {
        self.writer.is_dirty()
    }

    /// Bytes appended since the segment began (since the last snapshot).
    pub(crate) fn tail_bytes(&self) -> u64 {
        self.writer.tail_len()
    }

    fn check(&self) -> Result<(), RaftError> {
        match &self.poisoned {
            Some(reason) => Err(RaftError::Storage {
                reason: format!("the log is poisoned by an earlier failure ({reason})"),
            }),
            None => Ok(()),
        }
    }

    fn note(&mut self, result: Result<()>) -> Result<(), RaftError> {
        result.map_err(|err| {
            let reason = err.to_string();
            self.poisoned = Some(reason.clone());
            RaftError::Storage { reason }
        })
    }
}

impl FileRaftLog {
    /// Keeps the newest hard state, incarnation and schema among `records`: what a snapshot
    /// does not supersede (the schema lives on in the owner record every segment begins with).
    fn remember(&mut self, records: &[RaftRecord]) {
        for record in records {
            match record {
                RaftRecord::HardState { .. } => self.hard_state = Some(record.clone()),
                RaftRecord::Incarnation(_) => self.incarnation = Some(record.clone()),
                RaftRecord::Schema(schema) => {
                    if let Some(meta) = &mut self.meta {
                        meta.schema = (**schema).clone();
                    }
                }
                _ => {}
            }
        }
    }
}

impl FileRaftLog {
    /// Appends `records` (a snapshot among them starts a new segment, synced) and syncs them
    /// when `sync` says so for a batch of this kind.
    fn append(
        &mut self,
        records: Vec<RaftRecord>,
        landing: impl FnOnce(&Self, &[RaftRecord]) -> Landing,
    ) -> Result<(), RaftError> {
        if records.is_empty() {
            return Ok(());
        }
        self.check()?;
        // A snapshot supersedes every record before it but the newest hard state and
        // incarnation (and the owner): the segment starts afresh from the last one.
        let snapshot_at = records
            .iter()
            .rposition(|r| matches!(r, RaftRecord::Snapshot { .. }));
        self.remember(&records[..snapshot_at.unwrap_or(records.len())]);
        let written = match snapshot_at {
            Some(first) => {
                // Batched records of the old segment reach its file first: the new segment
                // replaces the old one only once complete, and until then the old one must hold
                // everything logged before.
                let written = self.writer.write_out();
                self.note(written)?;
                let (meta, kept) = (&self.meta, [&self.incarnation, &self.hard_state]);
                let rotated = self.writer.rotate(|frames| {
                    if let Some(meta) = meta {
                        frames.push_raft_meta(meta);
                    }
                    for kept in kept.into_iter().flatten() {
                        frames.push_raft(kept);
                    }
                    for record in &records[first..] {
                        frames.push_raft(record);
                    }
                });
                self.remember(&records[first..]);
                rotated
            }
            None => {
                for record in &records {
                    self.writer.frames().push_raft(record);
                }
                match landing(self, &records) {
                    Landing::Synced => self.writer.sync(),
                    Landing::Written => self.writer.write_out(),
                    Landing::Batched if self.writer.pending_len() >= REPLICA_WRITE_BATCH => {
                        self.writer.write_out()
                    }
                    Landing::Batched => Ok(()),
                }
            }
        };
        self.note(written)
    }
}

impl DurableRaftLog for FileRaftLog {
    fn persist(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        self.append(records, |log, records| {
            let replica_only = records.iter().all(|r| matches!(r, RaftRecord::Replica(_)));
            match (log.sync, replica_only && !log.sync_replica) {
                (false, _) => Landing::Written,
                // A group commit: synced with the group, so written with it too.
                (true, true) => Landing::Batched,
                (true, false) => Landing::Synced,
            }
        })
    }

    fn write_unsynced(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        self.append(records, |_, _| Landing::Written)
    }

    fn sync_written(&mut self) -> Result<(), RaftError> {
        if self.sync { self.sync() } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests;
