//! The per-node durable log: segment files of checksummed frames.
//!
//! A segment is `MAGIC` followed by frames. A frame is a 20-byte header and a payload of at most
//! [`wire::MAX_FRAME_LEN`] bytes (one kind byte and a piece of a record's body):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | payload length (u32 LE, `1..=MAX_FRAME_LEN`) |
//! | 4..12 | the segment offset up to which the writer knew the file durable when it wrote the frame (u64 LE) |
//! | 12..16 | CRC-32 of the payload (u32 LE) |
//! | 16..20 | CRC-32 of the segment number, the frame's offset (both u64 LE) and bytes 0..16 |
//!
//! The header checksum binds a frame to its place: bytes of another segment, or of another place
//! in this one (a file system that exposes stale blocks after a crash), never verify. A record
//! whose body does not fit one frame is written as [`KIND_PART`] frames followed by one frame of
//! its own kind; its body is the concatenation of their pieces. So one size limit serves the
//! writer, the reader and the wire, and no state is too large to log.
//!
//! Every segment begins with the records that supersede everything before it (a checkpoint), so
//! only the newest segment is ever read; older ones are leftovers of a rotation and deleted. A new
//! segment is written as `*.tmp`, synced, read back and checked, then renamed into place, so a
//! segment that exists under its final name is complete from its first byte.
//!
//! **Recovery.** Reading stops at the first frame that cannot be complete or verified (or at a
//! record whose parts run out at the end of the file). What follows is a torn tail — bytes of
//! appends that were never made durable — and is cut off, unless a verified frame after it says
//! its writer had already made the damaged bytes durable: then the log is damaged, and recovery
//! refuses to guess ([`TxnError::Corrupt`]). A log cut this way is rewritten into a fresh segment
//! rather than appended to, so offsets are never reused and the cut bytes can never verify later.

use rhizo_algebra::Schema;
use rhizo_clock::NodeId;
use rhizo_commit::{Record, wire};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::raft::RaftRecord;
use crate::storage::{Storage, SyncHandle};
use crate::{Result, TxnError};

mod shared;

pub(crate) use shared::{Marks, SharedLog};

/// Identifies a Rhizo log segment, format version 2 (position-bound frames, parts, durable
/// offsets).
pub(crate) const MAGIC: [u8; 8] = *b"RHZLOG\x00\x02";
/// The magic of format version 1, named in the error a segment of it gets.
const MAGIC_V1: [u8; 8] = *b"RHZLOG\x00\x01";
const HEADER: usize = 20;
/// The largest frame payload (kind byte included); larger records are written in parts.
const MAX_PAYLOAD: usize = wire::MAX_FRAME_LEN;

/// A piece of the record whose last piece is the next frame of another kind.
const KIND_PART: u8 = 0;
const KIND_CHECKPOINT: u8 = 1;
const KIND_REPLICA: u8 = 2;
const KIND_COORDINATED: u8 = 3;
const KIND_SCHEMA: u8 = 4;
/// A [`RaftRecord`] (only in Raft segments, `raft-NNN.log`).
const KIND_RAFT: u8 = 5;
/// A Raft segment's owner and schema ([`RaftMeta`]).
const KIND_RAFT_META: u8 = 6;

/// The file-name prefix of the engine's own segments (none).
pub(crate) const ENGINE_PREFIX: &str = "";
/// The file-name prefix of Raft segments ([`crate::raft::FileRaftLog`]).
pub(crate) const RAFT_PREFIX: &str = "raft-";

/// Whom a Raft segment belongs to and the schema in force: written first in every Raft
/// segment and again at each schema change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RaftMeta {
    pub(crate) node: NodeId,
    pub(crate) schema: Schema,
}

/// The whole node at one point: what a segment starts from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) node: NodeId,
    pub(crate) schema: Schema,
    /// The last coordinated sequence number applied.
    pub(crate) sequence: u64,
    /// `wire::encode_record(Record::Snapshot(..))` of the replica.
    pub(crate) replica: Vec<u8>,
}

/// One coordinated transaction, atomically: the replica records of applying it in order
/// (registers included: they live in the replica).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CoordinatedEntry {
    pub(crate) sequence: u64,
    /// Each `wire::encode_record` of a replica record.
    pub(crate) replica: Vec<Vec<u8>>,
}

/// A decoded record.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Checkpoint(Box<Checkpoint>),
    Replica(Box<Record>),
    Coordinated(Box<CoordinatedEntry>),
    Schema(Box<Schema>),
    Raft(Box<RaftRecord>),
    RaftMeta(Box<RaftMeta>),
}

impl Entry {
    /// What kind of record this is, for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Checkpoint(_) => "checkpoint",
            Self::Replica(_) => "replica record",
            Self::Coordinated(_) => "coordinated entry",
            Self::Schema(_) => "schema",
            Self::Raft(_) => "raft record",
            Self::RaftMeta(_) => "raft owner",
        }
    }

    /// The record's kind byte and body, as written.
    fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            Self::Checkpoint(c) => (KIND_CHECKPOINT, encode_body(&**c)),
            Self::Replica(r) => (KIND_REPLICA, wire::encode_record(r)),
            Self::Coordinated(c) => (KIND_COORDINATED, encode_body(&**c)),
            Self::Schema(s) => (KIND_SCHEMA, encode_body(&**s)),
            Self::Raft(r) => (KIND_RAFT, encode_body(&**r)),
            Self::RaftMeta(m) => (KIND_RAFT_META, encode_body(&**m)),
        }
    }
}

fn encode_body<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding to memory cannot fail")
}

fn header_crc(segment: u64, offset: u64, header: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment.to_le_bytes());
    hasher.update(&offset.to_le_bytes());
    hasher.update(&header[..16]);
    hasher.finalize()
}

/// Frames built for one place in one segment: each frame's checksum binds it to the offset it
/// will be written at, so frames are built where they go.
#[derive(Debug)]
pub(crate) struct Frames {
    segment: u64,
    /// The segment offset of `bytes[0]`.
    start: u64,
    /// The offset up to which the segment is known durable (recorded in every frame).
    durable: u64,
    bytes: Vec<u8>,
    /// Records framed (a record in parts counts once).
    records: usize,
    /// A record's body while it is encoded, kept from one record to the next so that encoding
    /// a commit's record allocates nothing.
    scratch: Vec<u8>,
}

impl Frames {
    fn new(segment: u64, start: u64, durable: u64) -> Self {
        Self {
            segment,
            start,
            durable,
            bytes: Vec::new(),
            records: 0,
            scratch: Vec::new(),
        }
    }

    fn push_piece(&mut self, kind: u8, piece: &[u8]) {
        let offset = self.start + self.bytes.len() as u64;
        let len = u32::try_from(piece.len() + 1).expect("a piece fits one frame");
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[kind]);
        hasher.update(piece);
        let mut header = [0u8; HEADER];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..12].copy_from_slice(&self.durable.to_le_bytes());
        header[12..16].copy_from_slice(&hasher.finalize().to_le_bytes());
        let crc = header_crc(self.segment, offset, &header);
        header[16..20].copy_from_slice(&crc.to_le_bytes());
        self.bytes.extend_from_slice(&header);
        self.bytes.push(kind);
        self.bytes.extend_from_slice(piece);
    }

    /// Frames one record: in parts when its body does not fit one frame.
    pub(crate) fn push(&mut self, kind: u8, body: &[u8]) {
        let room = MAX_PAYLOAD - 1;
        let mut rest = body;
        while rest.len() > room {
            let (piece, tail) = rest.split_at(room);
            self.push_piece(KIND_PART, piece);
            rest = tail;
        }
        self.push_piece(kind, rest);
        self.records += 1;
    }

    pub(crate) fn push_checkpoint(&mut self, checkpoint: &Checkpoint) {
        self.push(KIND_CHECKPOINT, &encode_body(checkpoint));
    }

    pub(crate) fn push_replica(&mut self, record: &Record) {
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        wire::encode_record_into(record, &mut body);
        self.push(KIND_REPLICA, &body);
        self.scratch = body;
    }

    pub(crate) fn push_coordinated(&mut self, entry: &CoordinatedEntry) {
        self.push(KIND_COORDINATED, &encode_body(entry));
    }

    pub(crate) fn push_schema(&mut self, schema: &Schema) {
        self.push(KIND_SCHEMA, &encode_body(schema));
    }

    pub(crate) fn push_raft(&mut self, record: &RaftRecord) {
        self.push(KIND_RAFT, &encode_body(record));
    }

    pub(crate) fn push_raft_meta(&mut self, meta: &RaftMeta) {
        self.push(KIND_RAFT_META, &encode_body(meta));
    }

    fn push_entry(&mut self, entry: &Entry) {
        let (kind, body) = entry.encode();
        self.push(kind, &body);
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// What reading a segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) entries: Vec<Entry>,
    /// Bytes of whole, valid records (and the magic): the log ends here.
    pub(crate) valid_len: usize,
    /// Where the first record (the checkpoint) ends.
    pub(crate) first_record_end: usize,
    /// Whether a torn tail followed `valid_len`.
    pub(crate) torn: bool,
}

fn decode_payload(kind: u8, body: &[u8]) -> std::result::Result<Entry, String> {
    let postcard_err = |e: postcard::Error| e.to_string();
    Ok(match kind {
        KIND_CHECKPOINT => {
            Entry::Checkpoint(Box::new(postcard::from_bytes(body).map_err(postcard_err)?))
        }
        KIND_REPLICA => Entry::Replica(Box::new(
            wire::decode_record(body).map_err(|e| e.to_string())?,
        )),
        KIND_COORDINATED => {
            Entry::Coordinated(Box::new(postcard::from_bytes(body).map_err(postcard_err)?))
        }
        KIND_SCHEMA => Entry::Schema(Box::new(postcard::from_bytes(body).map_err(postcard_err)?)),
        KIND_RAFT => Entry::Raft(Box::new(postcard::from_bytes(body).map_err(postcard_err)?)),
        KIND_RAFT_META => {
            Entry::RaftMeta(Box::new(postcard::from_bytes(body).map_err(postcard_err)?))
        }
        other => return Err(format!("unknown frame kind {other}")),
    })
}

/// A frame that verifies at its place.
struct Frame {
    kind: u8,
    /// The piece of the record's body (payload without the kind byte), as a range of the segment.
    piece: std::ops::Range<usize>,
    end: usize,
    /// The offset the writer knew durable when it wrote the frame.
    durable: u64,
}

/// The frame at `pos` of segment `segment`, if it is complete and verifies there.
fn frame_at(bytes: &[u8], pos: usize, segment: u64) -> Option<Frame> {
    let header = bytes.get(pos..pos + HEADER)?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let len = word(0) as usize;
    // Cheap refusals first: the search for later frames calls this at every offset.
    if len == 0 || len > MAX_PAYLOAD || bytes.len() - pos - HEADER < len {
        return None;
    }
    if header_crc(segment, pos as u64, header) != word(16) {
        return None;
    }
    let payload = &bytes[pos + HEADER..pos + HEADER + len];
    if crc32fast::hash(payload) != word(12) {
        return None;
    }
    let durable = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
    Some(Frame {
        kind: payload[0],
        piece: pos + HEADER + 1..pos + HEADER + len,
        end: pos + HEADER + len,
        durable,
    })
}

/// Whether a frame after `from` verifies and says its writer knew the segment durable beyond
/// `cut`: then the bytes at `cut` were durable, and damage there is not a torn tail.
fn durable_beyond(bytes: &[u8], from: usize, cut: usize, segment: u64) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(HEADER - 1))
        .find(|&pos| frame_at(bytes, pos, segment).is_some_and(|frame| frame.durable > cut as u64))
}

/// Reads segment number `segment` (file `name`): its records up to the first frame that cannot
/// be complete or verified. See the module documentation for what follows it.
pub(crate) fn scan(name: &str, segment: u64, bytes: &[u8]) -> Result<Scan> {
    let corrupt = |offset: usize, reason: String| TxnError::Corrupt {
        segment: name.to_owned(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        let reason = if bytes.starts_with(&MAGIC_V1) {
            "a segment of log format 1; this build reads format 2 (open it with the release that \
             wrote it and export the data)"
        } else {
            "not a Rhizo log segment (bad magic)"
        };
        return Err(corrupt(0, reason.to_owned()));
    }
    let mut entries = Vec::new();
    let mut first_record_end = 0;
    let mut pos = MAGIC.len();
    // The record being assembled from parts: where it starts and its body so far.
    let mut parts: Option<(usize, Vec<u8>)> = None;
    while let Some(frame) = frame_at(bytes, pos, segment) {
        let piece = &bytes[frame.piece.clone()];
        if frame.kind == KIND_PART {
            parts
                .get_or_insert_with(|| (pos, Vec::new()))
                .1
                .extend_from_slice(piece);
            pos = frame.end;
            continue;
        }
        let (start, entry) = match parts.take() {
            Some((start, mut body)) => {
                body.extend_from_slice(piece);
                (start, decode_payload(frame.kind, &body))
            }
            None => (pos, decode_payload(frame.kind, piece)),
        };
        let entry =
            entry.map_err(|reason| corrupt(start, format!("undecodable record: {reason}")))?;
        entries.push(entry);
        if first_record_end == 0 {
            first_record_end = frame.end;
        }
        pos = frame.end;
    }
    let valid_len = parts.map_or(pos, |(start, _)| start);
    let torn = valid_len < bytes.len();
    if torn && let Some(at) = durable_beyond(bytes, pos, valid_len, segment) {
        return Err(corrupt(
            pos,
            format!(
                "a frame that cannot be read, followed at byte {at} by a frame written after \
                 the bytes at {valid_len} were durable"
            ),
        ));
    }
    Ok(Scan {
        entries,
        valid_len,
        first_record_end,
        torn,
    })
}

#[cfg(test)]
/// The file name of the engine's segment `number`.
pub(crate) fn segment_name(number: u64) -> String {
    prefixed_segment_name(ENGINE_PREFIX, number)
}

/// The file name of segment `number` of the log whose files start with `prefix`.
pub(crate) fn prefixed_segment_name(prefix: &str, number: u64) -> String {
    format!("{prefix}{number:020}.log")
}

#[cfg(test)]
fn parse_segment(name: &str) -> Option<u64> {
    parse_prefixed_segment(ENGINE_PREFIX, name)
}

/// The number of segment file `name` of the log whose files start with `prefix`.
pub(crate) fn parse_prefixed_segment(prefix: &str, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn io_err(op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> TxnError + use<> {
    let name = name.to_owned();
    move |source| TxnError::Io { op, name, source }
}

/// The segment being appended to, and frames not yet written or not yet synced.
pub(crate) struct LogWriter {
    storage: Box<dyn Storage>,
    /// The file-name prefix of this log's segments.
    prefix: &'static str,
    segment: u64,
    name: String,
    /// Bytes in the segment file, written or not.
    len: u64,
    /// Bytes of the segment known durable.
    durable_len: u64,
    /// Frames built but not yet handed to the file (they start at offset `len`).
    pending: Frames,
    /// Bytes of the segment's first record (its checkpoint).
    base_len: u64,
    /// The storage's [`SyncHandle`] for the segment numbered here, once asked for.
    handle: Option<(u64, Arc<dyn SyncHandle>)>,
}

impl OutsideSync {
    /// The segment's file name, for messages (built only then: the flusher that makes these
    /// syncs allocates nothing on its way).
    pub(crate) fn name(&self) -> String {
        prefixed_segment_name(self.prefix, self.segment)
    }
}

/// How the bytes written so far are to be made durable ([`LogWriter::plan_sync`]).
#[derive(Debug)]
pub(crate) enum SyncPlan {
    /// Every byte written is durable already.
    Done,
    /// The storage gives no [`SyncHandle`]: sync through [`LogWriter::sync`].
    Here,
    /// Sync through the handle, outside any lock, then report [`LogWriter::synced`].
    Outside(OutsideSync),
}

/// A sync to make outside the log's lock: the first `len` bytes of segment `segment`.
#[derive(Debug)]
pub(crate) struct OutsideSync {
    pub(crate) segment: u64,
    /// The file-name prefix of the segment's log.
    prefix: &'static str,
    pub(crate) len: u64,
    pub(crate) handle: Arc<dyn SyncHandle>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("storage", &self.storage.describe())
            .field("segment", &self.name)
            .field("len", &self.len)
            .finish()
    }
}

impl LogWriter {
    /// Opens the log in `storage`: the entries of its newest segment (cut at a torn tail), or
    /// `None` for an empty directory. Leftovers (temporary files, superseded segments) are
    /// deleted; a segment with a torn tail is rewritten into a fresh one.
    pub(crate) fn open(storage: Box<dyn Storage>) -> Result<(Self, Option<Vec<Entry>>)> {
        Self::open_prefixed(storage, ENGINE_PREFIX)
    }

    /// [`LogWriter::open`] for the log whose segment files start with `prefix`; files of other
    /// logs in the same directory are left alone.
    pub(crate) fn open_prefixed(
        mut storage: Box<dyn Storage>,
        prefix: &'static str,
    ) -> Result<(Self, Option<Vec<Entry>>)> {
        let names = storage.list().map_err(io_err("list", "directory"))?;
        let mut segments: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_prefixed_segment(prefix, n))
            .collect();
        segments.sort_unstable();
        let Some(&newest) = segments.last() else {
            Self::remove_leftovers(&mut *storage, prefix, &names, &[])?;
            let writer = Self {
                storage,
                prefix,
                segment: 0,
                name: String::new(),
                len: 0,
                durable_len: 0,
                pending: Frames::new(0, 0, 0),
                base_len: 0,
                handle: None,
            };
            return Ok((writer, None));
        };
        let name = prefixed_segment_name(prefix, newest);
        let bytes = storage.read(&name).map_err(io_err("read", &name))?;
        let scan = scan(&name, newest, &bytes)?;
        drop(bytes);
        Self::remove_leftovers(
            &mut *storage,
            prefix,
            &names,
            &segments[..segments.len() - 1],
        )?;
        let len = scan.valid_len as u64;
        let mut writer = Self {
            storage,
            prefix,
            segment: newest,
            name,
            len,
            durable_len: 0,
            pending: Frames::new(newest, len, 0),
            base_len: scan.first_record_end as u64,
            handle: None,
        };
        if scan.torn {
            // Never append after a cut: rewrite what is valid into a fresh segment.
            writer.rotate(|frames| {
                for entry in &scan.entries {
                    frames.push_entry(entry);
                }
            })?;
        } else {
            // What the previous owner wrote may still be only in the page cache: frames written
            // from now on say the segment is durable up to here, so make it so first.
            let name = writer.name.clone();
            writer.storage.sync(&name).map_err(io_err("sync", &name))?;
            writer.durable_len = len;
            writer.pending = Frames::new(newest, len, len);
        }
        Ok((writer, Some(scan.entries)))
    }

    /// Deletes temporary files of this log and its superseded segments `older`.
    fn remove_leftovers(
        storage: &mut dyn Storage,
        prefix: &str,
        names: &[String],
        older: &[u64],
    ) -> Result<()> {
        for name in names.iter().filter(|n| {
            n.strip_suffix(".tmp")
                .is_some_and(|s| parse_prefixed_segment(prefix, s).is_some())
        }) {
            storage.remove(name).map_err(io_err("remove", name))?;
        }
        for old in older {
            let old = prefixed_segment_name(prefix, *old);
            storage.remove(&old).map_err(io_err("remove", &old))?;
        }
        Ok(())
    }

    /// Frames are built here, then written by [`LogWriter::write_out`].
    pub(crate) fn frames(&mut self) -> &mut Frames {
        &mut self.pending
    }

    /// Bytes of frames built but not yet handed to the file.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether something is not yet durable.
    pub(crate) fn is_dirty(&self) -> bool {
        self.durable_len < self.len || !self.pending.is_empty()
    }

    /// Whether the records after the checkpoint outgrew both `threshold` and the checkpoint
    /// itself (so compaction costs amortized O(1) per byte logged, whatever the state's size).
    pub(crate) fn wants_compaction(&self, threshold: u64) -> bool {
        self.tail_len() > threshold.max(self.base_len)
    }

    /// Bytes in the segment beyond its first record (written, pending or not).
    pub(crate) fn tail_len(&self) -> u64 {
        (self.len + self.pending.len() as u64).saturating_sub(self.base_len)
    }

    /// Hands pending frames to the file (survives a process crash, not a power loss).
    pub(crate) fn write_out(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.storage
            .append(&self.name, &self.pending.bytes)
            .map_err(io_err("append", &self.name))?;
        self.len += self.pending.len() as u64;
        self.pending.bytes.clear();
        self.pending.start = self.len;
        self.pending.records = 0;
        Ok(())
    }

    /// Writes pending frames and makes the segment durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        if self.durable_len < self.len {
            self.storage
                .sync(&self.name)
                .map_err(io_err("sync", &self.name))?;
            self.durable_len = self.len;
            self.pending.durable = self.len;
        }
        Ok(())
    }

    /// Hands pending frames to the file and says how to make them durable: when the storage
    /// gives a [`SyncHandle`], the caller may sync through it without holding the writer, while
    /// appends go on; the handle covers the bytes written up to here.
    pub(crate) fn plan_sync(&mut self) -> Result<SyncPlan> {
        self.write_out()?;
        if self.durable_len >= self.len {
            return Ok(SyncPlan::Done);
        }
        let handle = match &self.handle {
            Some((segment, handle)) if *segment == self.segment => Arc::clone(handle),
            _ => {
                let handle = self
                    .storage
                    .sync_handle(&self.name)
                    .map_err(io_err("sync", &self.name))?;
                let Some(handle) = handle else {
                    return Ok(SyncPlan::Here);
                };
                self.handle = Some((self.segment, Arc::clone(&handle)));
                handle
            }
        };
        Ok(SyncPlan::Outside(OutsideSync {
            segment: self.segment,
            prefix: self.prefix,
            len: self.len,
            handle,
        }))
    }

    /// Records that a sync planned by [`LogWriter::plan_sync`] made its bytes durable. A sync of
    /// a segment rotated away since changes nothing: the rotation made everything durable.
    pub(crate) fn synced(&mut self, sync: &OutsideSync) {
        if sync.segment == self.segment && sync.len > self.durable_len {
            self.durable_len = sync.len;
            self.pending.durable = sync.len;
        }
    }

    /// Starts a new segment holding the records `fill` frames (which supersede everything
    /// before them, pending frames included), atomically, and deletes the older segments. They
    /// all count as the segment's base for [`LogWriter::wants_compaction`]: they are the state.
    ///
    /// The new segment is read back and checked before it replaces the old one: a segment this
    /// writer could not read again must never be the only copy.
    pub(crate) fn rotate(&mut self, fill: impl FnOnce(&mut Frames)) -> Result<()> {
        let next = self.segment + 1;
        let name = prefixed_segment_name(self.prefix, next);
        let tmp = format!("{name}.tmp");
        let start = MAGIC.len() as u64;
        let mut frames = Frames::new(next, start, start);
        fill(&mut frames);
        let mut bytes = MAGIC.to_vec();
        bytes.append(&mut frames.bytes);
        self.storage
            .write_new(&tmp, &bytes)
            .map_err(io_err("write", &tmp))?;
        self.storage.sync(&tmp).map_err(io_err("sync", &tmp))?;
        self.read_back(&tmp, next, bytes.len(), frames.records)?;
        self.storage
            .rename(&tmp, &name)
            .map_err(io_err("rename", &tmp))?;
        self.storage
            .sync_dir()
            .map_err(io_err("sync", "directory"))?;
        let old = std::mem::replace(&mut self.name, name);
        self.segment = next;
        self.len = bytes.len() as u64;
        self.durable_len = self.len;
        self.base_len = self.len;
        self.pending = Frames::new(next, self.len, self.len);
        if !old.is_empty() {
            // A crash before this removal leaves the old segment behind; the next open
            // deletes it, because the newest segment supersedes it.
            self.storage.remove(&old).map_err(io_err("remove", &old))?;
        }
        Ok(())
    }

    /// Reads a freshly written segment back: it must hold exactly `records` whole records in
    /// `len` bytes.
    fn read_back(&mut self, tmp: &str, segment: u64, len: usize, records: usize) -> Result<()> {
        let back = self.storage.read(tmp).map_err(io_err("read", tmp))?;
        let scan = scan(tmp, segment, &back)?;
        if back.len() != len || scan.valid_len != len || scan.entries.len() != records {
            return Err(TxnError::Corrupt {
                segment: tmp.to_owned(),
                offset: scan.valid_len as u64,
                reason: format!(
                    "a new segment read back as {} of {records} records in {} of {len} bytes",
                    scan.entries.len(),
                    back.len()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
