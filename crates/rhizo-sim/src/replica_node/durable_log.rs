//! A simulated node's durable log: small records as they are, large ones as the bytes a node
//! would write to disk.

use rhizo_commit::{Record, wire};

use crate::{Result, SimError};

/// Records per chunk of a [`DurableLog`]'s list of records.
const ENTRY_CHUNK: usize = 256;

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
/// one) is kept as it is: it is small, one is made per commit, and encoding it would cost
/// about as much as the commit itself. Decoding gives back exactly the record encoded (the
/// wire format round-trips), so a node restarted from this log replays the same records as one
/// restarted from the records themselves.
///
/// Both lists grow in chunks that are never moved once full, where one growing list would copy
/// everything durable at each doubling. An encoded record larger than a chunk gets one of its
/// own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurableLog {
    entries: Vec<Vec<Entry>>,
    bytes: Vec<Vec<u8>>,
    len: usize,
}

/// One record of a [`DurableLog`].
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// Kept as it is.
    Held(Record),
    /// Encoded, at `start..end` of the byte chunk `chunk`.
    Encoded { chunk: u32, start: u32, end: u32 },
}

impl DurableLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes its encoded records take (deltas applied and snapshots).
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.iter().map(Vec::len).sum()
    }

    /// Appends `record`: a delta applied or a snapshot encoded, anything else as it is.
    pub fn push(&mut self, record: Record) {
        let entry = match record {
            Record::Merge { .. } | Record::Snapshot(_) => self.encode(&record),
            Record::Commit(_) | Record::Ordered { .. } => Entry::Held(record),
        };
        let open = match self.entries.last_mut() {
            // A full chunk is left as it is and a new one opened: never grown, never moved.
            Some(open) if open.len() < open.capacity() => open,
            _ => {
                self.entries.push(Vec::with_capacity(ENTRY_CHUNK));
                self.entries.last_mut().expect("a chunk was just pushed")
            }
        };
        open.push(entry);
        self.len += 1;
    }

    /// Writes `record`'s bytes into the open byte chunk (or a new one) and says where.
    fn encode(&mut self, record: &Record) -> Entry {
        let expected = wire::encoded_record_len(record);
        let fits = self
            .bytes
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= expected);
        if !fits {
            self.bytes
                .push(Vec::with_capacity(expected.max(BYTE_CHUNK)));
        }
        let chunk = self.bytes.len() - 1;
        let bytes = &mut self.bytes[chunk];
        let start = bytes.len();
        wire::encode_record_into(record, bytes);
        debug_assert_eq!(
            bytes.len() - start,
            expected,
            "the counted length is the encoded one"
        );
        // Offsets within a chunk: no simulated node's record comes near 4 GiB.
        let offset = |at: usize| u32::try_from(at).expect("a chunk under 4 GiB");
        Entry::Encoded {
            chunk: offset(chunk),
            start: offset(start),
            end: offset(bytes.len()),
        }
    }

    /// Drops every record (a snapshot about to be appended supersedes them).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.len = 0;
    }

    /// The records, oldest first. An encoded record that does not decode (only a log changed
    /// outside this type could hold one) is an error, after which nothing more is read.
    pub fn records(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        let mut entries = self.entries.iter().flatten();
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let record = match entries.next()? {
                Entry::Held(record) => Ok(record.clone()),
                Entry::Encoded { chunk, start, end } => self.decode(*chunk, *start, *end),
            };
            failed = record.is_err();
            Some(record)
        })
    }

    fn decode(&self, chunk: u32, start: u32, end: u32) -> Result<Record> {
        let unreadable = |reason: String| SimError::DurableLog { reason };
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
