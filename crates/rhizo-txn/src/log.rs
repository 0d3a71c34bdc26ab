//! The per-node durable log: segment files of checksummed frames.
//!
//! A segment is `MAGIC` followed by frames. A frame is a 12-byte header — payload length
//! (u32 LE), CRC-32 of the payload (u32 LE), CRC-32 of those 8 bytes (u32 LE) — and the payload:
//! one kind byte and its body. Every segment begins with a checkpoint frame (the whole node), so
//! only the newest segment is ever read; older ones are leftovers of a compaction and deleted.
//! A new segment is written as `*.tmp`, synced, and renamed into place, so a segment that
//! exists under its final name is complete from its first byte.

use rhizo_algebra::Schema;
use rhizo_clock::NodeId;
use rhizo_commit::{Record, wire};
use serde::{Deserialize, Serialize};

use crate::raft::RaftRecord;
use crate::storage::Storage;
use crate::{Result, TxnError};

/// Identifies a Rhizo log segment, format version 1.
pub(crate) const MAGIC: [u8; 8] = *b"RHZLOG\x00\x01";
const HEADER: usize = 12;
/// The largest frame payload the reader accepts (a checkpoint of a very large node).
const MAX_PAYLOAD: usize = wire::MAX_ENCODED_LEN;

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

/// A decoded frame.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Checkpoint(Box<Checkpoint>),
    Replica(Box<Record>),
    Coordinated(Box<CoordinatedEntry>),
    Schema(Box<Schema>),
    Raft(Box<RaftRecord>),
    RaftMeta(Box<RaftMeta>),
}

fn encode_body<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding to memory cannot fail")
}

/// Appends the frame of `kind` + `body` to `out`.
fn push_frame(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let len = u32::try_from(body.len() + 1).expect("a frame fits in u32");
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(body);
    let payload_crc = hasher.finalize();
    let mut header = [0u8; HEADER];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&header[0..8]);
    header[8..12].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.push(kind);
    out.extend_from_slice(body);
}

pub(crate) fn push_checkpoint(out: &mut Vec<u8>, checkpoint: &Checkpoint) {
    push_frame(out, KIND_CHECKPOINT, &encode_body(checkpoint));
}

pub(crate) fn push_replica(out: &mut Vec<u8>, record: &Record) {
    push_frame(out, KIND_REPLICA, &wire::encode_record(record));
}

pub(crate) fn push_coordinated(out: &mut Vec<u8>, entry: &CoordinatedEntry) {
    push_frame(out, KIND_COORDINATED, &encode_body(entry));
}

pub(crate) fn push_schema(out: &mut Vec<u8>, schema: &Schema) {
    push_frame(out, KIND_SCHEMA, &encode_body(schema));
}

pub(crate) fn push_raft(out: &mut Vec<u8>, record: &RaftRecord) {
    push_frame(out, KIND_RAFT, &encode_body(record));
}

pub(crate) fn push_raft_meta(out: &mut Vec<u8>, meta: &RaftMeta) {
    push_frame(out, KIND_RAFT_META, &encode_body(meta));
}

/// What reading a segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) entries: Vec<Entry>,
    /// Bytes of whole, valid frames (and the magic): the log is cut here.
    pub(crate) valid_len: usize,
    /// Where the first frame (the checkpoint) ends.
    pub(crate) first_frame_end: usize,
}

fn decode_payload(payload: &[u8]) -> std::result::Result<Entry, String> {
    let (kind, body) = payload.split_first().ok_or("empty payload")?;
    let postcard_err = |e: postcard::Error| e.to_string();
    Ok(match *kind {
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

/// Reads a segment. A torn last frame (the file ends inside it, its checksum fails while it is
/// the last bytes of the file, or the rest of the file is zeros) ends the log there; any other
/// damage is an error, because frames after it may hold acknowledged commits.
pub(crate) fn scan(segment: &str, bytes: &[u8]) -> Result<Scan> {
    let corrupt = |offset: usize, reason: String| TxnError::Corrupt {
        segment: segment.to_owned(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a Rhizo log segment (bad magic)".to_owned()));
    }
    let mut entries = Vec::new();
    let mut first_frame_end = 0;
    let mut pos = MAGIC.len();
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < HEADER {
            break; // torn inside a header
        }
        let header = &rest[..HEADER];
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&header[0..8]) != word(8) {
            if rest.iter().all(|&b| b == 0) {
                break; // space the file system extended but never wrote
            }
            return Err(corrupt(pos, "frame header checksum mismatch".to_owned()));
        }
        let len = word(0) as usize;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(corrupt(pos, format!("frame length {len} out of range")));
        }
        let end = pos + HEADER + len;
        if end > bytes.len() {
            break; // torn inside a payload
        }
        let payload = &bytes[pos + HEADER..end];
        if crc32fast::hash(payload) != word(4) {
            if end == bytes.len() {
                break; // the last frame, torn: it was never acknowledged
            }
            return Err(corrupt(pos, "frame checksum mismatch".to_owned()));
        }
        let entry = decode_payload(payload)
            .map_err(|reason| corrupt(pos, format!("undecodable frame: {reason}")))?;
        entries.push(entry);
        if first_frame_end == 0 {
            first_frame_end = end;
        }
        pos = end;
    }
    Ok(Scan {
        entries,
        valid_len: pos,
        first_frame_end,
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
    /// Frames built but not yet handed to the file.
    pending: Vec<u8>,
    /// Whether the file holds bytes not yet synced.
    unsynced: bool,
    /// Bytes of the segment's magic and checkpoint.
    base_len: u64,
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
    /// deleted.
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
        for name in names.iter().filter(|n| {
            n.strip_suffix(".tmp")
                .is_some_and(|s| parse_prefixed_segment(prefix, s).is_some())
        }) {
            storage.remove(name).map_err(io_err("remove", name))?;
        }
        let Some(&newest) = segments.last() else {
            let writer = Self {
                storage,
                prefix,
                segment: 0,
                name: String::new(),
                len: 0,
                pending: Vec::new(),
                unsynced: false,
                base_len: 0,
            };
            return Ok((writer, None));
        };
        let name = prefixed_segment_name(prefix, newest);
        let bytes = storage.read(&name).map_err(io_err("read", &name))?;
        let scan = scan(&name, &bytes)?;
        if scan.valid_len < bytes.len() {
            storage
                .truncate(&name, scan.valid_len as u64)
                .map_err(io_err("truncate", &name))?;
            storage.sync(&name).map_err(io_err("sync", &name))?;
        }
        for old in &segments[..segments.len() - 1] {
            let old = prefixed_segment_name(prefix, *old);
            storage.remove(&old).map_err(io_err("remove", &old))?;
        }
        let writer = Self {
            storage,
            prefix,
            segment: newest,
            name,
            len: scan.valid_len as u64,
            pending: Vec::new(),
            unsynced: false,
            base_len: scan.first_frame_end as u64,
        };
        Ok((writer, Some(scan.entries)))
    }

    /// Frames are built here, then written by [`LogWriter::write_out`].
    pub(crate) fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Whether something is not yet durable.
    pub(crate) fn is_dirty(&self) -> bool {
        self.unsynced || !self.pending.is_empty()
    }

    /// Whether the frames after the checkpoint outgrew both `threshold` and the checkpoint
    /// itself (so compaction costs amortized O(1) per byte logged, whatever the state's size).
    pub(crate) fn wants_compaction(&self, threshold: u64) -> bool {
        let tail = (self.len + self.pending.len() as u64).saturating_sub(self.base_len);
        tail > threshold.max(self.base_len)
    }

    /// Hands pending frames to the file (survives a process crash, not a power loss).
    pub(crate) fn write_out(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.storage
            .append(&self.name, &self.pending)
            .map_err(io_err("append", &self.name))?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Writes pending frames and makes the segment durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        if self.unsynced {
            self.storage
                .sync(&self.name)
                .map_err(io_err("sync", &self.name))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Starts a new segment holding `checkpoint` (which supersedes everything before it,
    /// pending frames included), atomically, and deletes the older segments.
    pub(crate) fn rotate(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let mut frames = Vec::new();
        push_checkpoint(&mut frames, checkpoint);
        self.rotate_frames(&frames)
    }

    /// Bytes in the segment beyond its first frame (written, pending or not).
    pub(crate) fn tail_len(&self) -> u64 {
        (self.len + self.pending.len() as u64).saturating_sub(self.base_len)
    }

    /// Starts a new segment holding `frames` (which supersede everything before them),
    /// atomically, and deletes the older segments. The first frame counts as the segment's
    /// base for [`LogWriter::wants_compaction`].
    pub(crate) fn rotate_frames(&mut self, frames: &[u8]) -> Result<()> {
        let next = self.segment + 1;
        let name = prefixed_segment_name(self.prefix, next);
        let tmp = format!("{name}.tmp");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(frames);
        self.storage
            .write_new(&tmp, &bytes)
            .map_err(io_err("write", &tmp))?;
        self.storage.sync(&tmp).map_err(io_err("sync", &tmp))?;
        self.storage
            .rename(&tmp, &name)
            .map_err(io_err("rename", &tmp))?;
        self.storage
            .sync_dir()
            .map_err(io_err("sync", "directory"))?;
        let old = std::mem::replace(&mut self.name, name);
        self.segment = next;
        self.len = bytes.len() as u64;
        self.base_len = self.len;
        self.pending.clear();
        self.unsynced = false;
        if !old.is_empty() {
            // A crash before this removal leaves the old segment behind; the next open
            // deletes it, because the newest segment supersedes it.
            self.storage.remove(&old).map_err(io_err("remove", &old))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_with(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = MAGIC.to_vec();
        let mut ends = Vec::new();
        for body in records {
            push_frame(&mut bytes, KIND_SCHEMA, body);
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn frames_round_trip_and_names_parse() {
        let mut bytes = MAGIC.to_vec();
        push_schema(&mut bytes, &Schema::new());
        let scan = scan("s", &bytes).unwrap();
        assert_eq!(scan.valid_len, bytes.len());
        assert!(matches!(scan.entries.as_slice(), [Entry::Schema(s)] if **s == Schema::new()));
        assert_eq!(parse_segment(&segment_name(42)), Some(42));
        assert_eq!(parse_segment("00000000000000000042.log.tmp"), None);
        assert_eq!(parse_segment("42.log"), None);
    }

    #[test]
    fn zero_filled_tail_ends_the_log_but_garbage_does_not() {
        let (mut bytes, ends) = segment_with(&[b"x"]);
        bytes.extend_from_slice(&[0u8; 40]);
        // A frame with an undecodable body still fails loudly: its checksum is right.
        assert!(matches!(
            scan("s", &bytes),
            Err(TxnError::Corrupt { offset: 8, .. })
        ));
        let mut bytes = MAGIC.to_vec();
        push_schema(&mut bytes, &Schema::new());
        let valid = bytes.len();
        bytes.extend_from_slice(&[0u8; 40]);
        assert_eq!(scan("s", &bytes).unwrap().valid_len, valid);
        bytes[valid + 20] = 1;
        assert!(matches!(
            scan("s", &bytes),
            Err(TxnError::Corrupt { offset, .. }) if offset == valid as u64
        ));
        let _ = ends;
    }

    #[test]
    fn damage_before_the_last_frame_is_an_error() {
        let mut bytes = MAGIC.to_vec();
        push_schema(&mut bytes, &Schema::new());
        let first_end = bytes.len();
        push_schema(&mut bytes, &Schema::new());
        let mut damaged = bytes.clone();
        damaged[first_end - 1] ^= 0x10;
        assert!(matches!(
            scan("s", &damaged),
            Err(TxnError::Corrupt { offset: 8, .. })
        ));
        let mut torn_last = bytes.clone();
        let last = torn_last.len() - 1;
        torn_last[last] ^= 0x10;
        assert_eq!(scan("s", &torn_last).unwrap().valid_len, first_end);
    }
}
