//! A simulated node's durable log: small records as they are, large ones as the bytes a node
//! would write to disk.

use rhizo_commit::{Ready, Record, Replica, wire};

use crate::{Result, SimError};

/// Records per chunk of a [`DurableLog`]'s records kept as they are.
const HELD_CHUNK: usize = 256;

/// The room the open chunk must have left to take the next batch of records: a commit or a
/// message makes one or two, so a batch rarely outgrows it (and if one does, the chunk grows).
const HELD_CHUNK_ROOM: usize = 8;

/// Bytes per chunk of a [`DurableLog`]'s encoded records: large enough to hold many deltas,
/// small enough that the unused tail of the open chunk is negligible beside a node's state.
const BYTE_CHUNK: usize = 64 * 1024;

/// What a [`ReplicaNode`](crate::ReplicaNode) makes durable: every record since the last
/// snapshot record (included), in order.
///
/// A received delta's record ([`Record::Merge`]) and a snapshot are kept encoded by
/// [`wire::encode_record`]: between snapshots they are most of what a node keeps, and decoded,
/// a delta holds each cell as a replica does (key, state, a list of per-origin entries),
/// several times the bytes that encode it. A local commit's record (and a consensus-ordered
/// one) is kept as it is: it is small, one is made per commit, and encoding it (or even moving
/// it once more) would cost a good share of the commit itself. Decoding gives back exactly the
/// record encoded (the wire format round-trips), so a node restarted from this log replays the
/// same records as one restarted from the records themselves.
///
/// Both kinds are kept in chunks that are never moved once full, where one growing list would
/// copy everything durable at each doubling. An encoded record larger than a chunk gets one of
/// its own.
#[derive(Debug, Clone, Default)]
pub struct DurableLog {
    /// Full chunks of the records kept as they are.
    held: Vec<Vec<Record>>,
    /// How many records `held` holds.
    held_len: usize,
    /// The open chunk of records kept as they are; the replica's records are taken straight
    /// into it, so a commit's record is not moved again on its way to durability.
    open: Vec<Record>,
    /// The encoded records, in log order.
    encoded: Vec<Encoded>,
    /// Their bytes, in chunks.
    bytes: Vec<Vec<u8>>,
    /// Where a record whose size is not known beforehand is encoded before it is copied into
    /// `bytes` (kept for its capacity).
    scratch: Vec<u8>,
}

/// Where an encoded record sits: after the first `held_before` records kept as they are, and
/// at `start..end` of the byte chunk `chunk`.
#[derive(Debug, Clone, Copy)]
struct Encoded {
    held_before: usize,
    chunk: u32,
    start: u32,
    end: u32,
}

impl DurableLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.held_len + self.open.len() + self.encoded.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its encoded records take (deltas applied and snapshots).
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.iter().map(Vec::len).sum()
    }

    /// Appends `record`: a snapshot supersedes every record before it, and a delta applied or a
    /// snapshot is kept encoded.
    pub fn push(&mut self, record: Record) {
        self.make_room();
        let start = self.open.len();
        self.open.push(record);
        self.settle(start);
    }

    /// Takes `replica`'s output into `ready` ([`Replica::take_ready_into`]), its records
    /// straight into this log's open chunk; `ready.records` must be empty. Returns where those
    /// records start among [`DurableLog::unsettled`]'s; [`DurableLog::settle`] makes them part
    /// of the log.
    pub(crate) fn take_ready(&mut self, replica: &mut Replica, ready: &mut Ready) -> usize {
        debug_assert!(
            ready.records.is_empty(),
            "records are the log's, not the caller's"
        );
        self.make_room();
        let start = self.open.len();
        std::mem::swap(&mut ready.records, &mut self.open);
        replica.take_ready_into(ready);
        std::mem::swap(&mut ready.records, &mut self.open);
        start
    }

    /// The records from `start` of the open chunk, as [`DurableLog::take_ready`] took them.
    pub(crate) fn unsettled(&self, start: usize) -> &[Record] {
        &self.open[start..]
    }

    /// Makes the records from `start` of the open chunk part of the log: a snapshot among them
    /// supersedes every record before it, and deltas applied and snapshots are encoded.
    pub(crate) fn settle(&mut self, mut start: usize) {
        if let Some(at) = self.open[start..]
            .iter()
            .rposition(|record| matches!(record, Record::Snapshot(_)))
        {
            self.held.clear();
            self.held_len = 0;
            self.encoded.clear();
            self.bytes.clear();
            self.open.drain(..start + at);
            start = 0;
        }
        // Kept records close up over the encoded ones, in place; a commit's batch (nothing to
        // encode) moves nothing.
        let mut kept = start;
        for read in start..self.open.len() {
            if matches!(self.open[read], Record::Merge { .. } | Record::Snapshot(_)) {
                let held_before = self.held_len + kept;
                let at = self.encode(read);
                self.encoded.push(Encoded { held_before, ..at });
            } else {
                if read != kept {
                    self.open.swap(read, kept);
                }
                kept += 1;
            }
        }
        self.open.truncate(kept);
    }

    /// Opens a new chunk of records kept as they are when the open one lacks room.
    fn make_room(&mut self) {
        if self.open.capacity() - self.open.len() < HELD_CHUNK_ROOM {
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(HELD_CHUNK));
            if !full.is_empty() {
                self.held_len += full.len();
                self.held.push(full);
            }
        }
    }

    /// Writes the bytes of the open chunk's record `index` into the open byte chunk (or a new
    /// one) and says where (`held_before` left for the caller).
    fn encode(&mut self, index: usize) -> Encoded {
        let record = &self.open[index];
        // A delta sized for the wire kept its encoding, and says its length: it is written
        // straight into its chunk. Any other record is encoded once into the reused scratch
        // buffer, then copied where it fits: counting its bytes first, to choose the chunk
        // before writing, would walk the record twice. (Every delta going through the scratch
        // would leave each node a scratch buffer as large as the largest delta it received.)
        let kept_len = wire::kept_record_len(record);
        let len = match kept_len {
            Some(len) => len,
            None => {
                self.scratch.clear();
                wire::encode_record_into(record, &mut self.scratch);
                self.scratch.len()
            }
        };
        let fits = self
            .bytes
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= len);
        if !fits {
            self.bytes.push(Vec::with_capacity(len.max(BYTE_CHUNK)));
        }
        let chunk = self.bytes.len() - 1;
        let bytes = &mut self.bytes[chunk];
        let start = bytes.len();
        match kept_len {
            Some(_) => wire::encode_record_into(record, bytes),
            None => bytes.extend_from_slice(&self.scratch),
        }
        debug_assert_eq!(
            bytes.len() - start,
            len,
            "the length the record was sized at"
        );
        // Offsets within a chunk: no simulated node's record comes near 4 GiB.
        let offset = |at: usize| u32::try_from(at).expect("a chunk under 4 GiB");
        Encoded {
            held_before: 0,
            chunk: offset(chunk),
            start: offset(start),
            end: offset(bytes.len()),
        }
    }

    /// Drops every record.
    pub fn clear(&mut self) {
        self.held.clear();
        self.held_len = 0;
        self.open.clear();
        self.encoded.clear();
        self.bytes.clear();
    }

    /// The records, oldest first. An encoded record that does not decode (only a log changed
    /// outside this type could hold one) is an error, after which nothing more is read.
    pub fn records(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        let mut held = self.held.iter().flatten().chain(&self.open);
        let mut held_read = 0;
        let mut encoded = self.encoded.iter().peekable();
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let record = match encoded.next_if(|e| e.held_before == held_read) {
                Some(at) => self.decode(at),
                None => {
                    held_read += 1;
                    Ok(held.next()?.clone())
                }
            };
            failed = record.is_err();
            Some(record)
        })
    }

    fn decode(&self, at: &Encoded) -> Result<Record> {
        let unreadable = |reason: String| SimError::DurableLog { reason };
        let Encoded {
            chunk, start, end, ..
        } = *at;
        let bytes = self
            .bytes
            .get(chunk as usize)
            .and_then(|bytes| bytes.get(start as usize..end as usize))
            .ok_or_else(|| unreadable(format!("no bytes at {start}..{end} of chunk {chunk}")))?;
        wire::decode_record(bytes).map_err(|err| unreadable(err.to_string()))
    }
}

#[cfg(test)]
mod tests;
