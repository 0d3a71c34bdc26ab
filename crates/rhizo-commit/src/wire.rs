//! The wire format: postcard bytes inside a versioned envelope.
//!
//! Decoding arbitrary bytes returns an error — never a panic — and the decoder never allocates
//! ahead of the bytes it has actually read for the collections this crate defines.

use std::sync::OnceLock;

use rhizo_clock::NodeId;
use serde::{Deserialize, Serialize};

use crate::{Delta, LocalCommitError, Message, Record, Result, VersionedUpdate};

mod size;

/// The format version this build writes and reads. Version 2: a commit record no longer
/// carries its clock ([`crate::CommitRecord`]). Version 3: an observed-remove set holds one tag
/// per element and origin (a state with two is refused), and a replica's snapshot carries its
/// causally stable clock ([`crate::ReplicaSnapshot::stable_clock`]). Version 4: a delta's cells
/// name their table and column, and their integer sums' entries their origin, by position in
/// dictionaries the delta carries once, and an origin's cell positions travel sorted, as gaps
/// (`docs/protocol.md`, "Anti-entropy messages").
pub const FORMAT_VERSION: u16 = 4;

/// The largest frame any of Rhizo's byte streams carries: a frame of a node's log, a frame on
/// the network. A record or message larger than this travels as several frames and is
/// reassembled, so no state is too large to log or send, and a reader never trusts a length
/// it has not read beyond one frame. Decoding itself has no size limit: it reads bytes already
/// in memory and never allocates ahead of them.
pub const MAX_FRAME_LEN: usize = 1 << 20;

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    version: u16,
    body: &'a T,
}

#[derive(Deserialize)]
struct Envelope<T> {
    // Checked before the envelope is decoded, so that a newer format is named as such.
    #[serde(rename = "version")]
    _version: u16,
    body: T,
}

fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(body, &mut out);
    out
}

/// `body` in its versioned envelope, appended to `out`.
fn encode_into<T: Serialize>(body: &T, out: &mut Vec<u8>) {
    let envelope = EnvelopeRef {
        version: FORMAT_VERSION,
        body,
    };
    postcard::serialize_with_flavor(&envelope, AppendTo(out))
        .expect("encoding to memory cannot fail");
}

/// Postcard's output appended to a vector. Most of what postcard writes is a few bytes at a
/// time (varints, tags, short names): those are pushed in place, where extending from a slice
/// calls into the C library's `memcpy` for every one of them.
struct AppendTo<'a>(&'a mut Vec<u8>);

/// Writes at most this long are pushed byte by byte; longer ones are copied as a slice.
const SHORT_WRITE: usize = 16;

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= SHORT_WRITE {
            self.0.reserve(data.len());
            for &byte in data {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    // Read the version first so that a newer format is named as such, not as garbage.
    let (version, _) =
        postcard::take_from_bytes::<u16>(bytes).map_err(|e| LocalCommitError::Decode {
            reason: e.to_string(),
        })?;
    if version != FORMAT_VERSION {
        return Err(LocalCommitError::UnsupportedFormat {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let (envelope, rest) =
        postcard::take_from_bytes::<Envelope<T>>(bytes).map_err(|e| LocalCommitError::Decode {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(LocalCommitError::Decode {
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(envelope.body)
}

/// Encodes a message between replicas.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
/// replica.sync_with(NodeId::new("b").unwrap());
/// let (_, message) = replica.take_ready().messages.pop().unwrap();
/// let bytes = wire::encode_message(&message);
/// assert_eq!(wire::encoded_message_len(&message), bytes.len());
/// assert_eq!(wire::decode_message(&bytes).unwrap(), message);
/// assert!(wire::decode_message(&bytes[..bytes.len() - 1]).is_err()); // a typed error, no panic
/// ```
pub fn encode_message(message: &Message) -> Vec<u8> {
    encode(message)
}

/// [`encode_message`]'s bytes, appended to `out`: a caller that puts its own bytes before the
/// message (a transport's tag) encodes into its buffer rather than copying a whole delta from a
/// second one.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
/// replica.sync_with(NodeId::new("b").unwrap());
/// let (_, message) = replica.take_ready().messages.pop().unwrap();
/// let mut out = vec![7];
/// wire::encode_message_into(&message, &mut out);
/// assert_eq!(out[0], 7);
/// assert_eq!(out[1..], wire::encode_message(&message)[..]);
/// ```
pub fn encode_message_into(message: &Message, out: &mut Vec<u8>) {
    encode_into(message, out);
}

/// Decodes a message between replicas.
pub fn decode_message(bytes: &[u8]) -> Result<Message> {
    decode(bytes)
}

/// The encoded size of a message, in bytes, counted without encoding it.
pub fn encoded_message_len(message: &Message) -> usize {
    size::postcard_len(&EnvelopeRef {
        version: FORMAT_VERSION,
        body: message,
    })
}

/// [`encoded_message_len`], found by encoding the message's delta (if any) once and keeping
/// those bytes with it: a receiver that records the delta it applies ([`Record::Merge`],
/// encoded by [`encode_record_into`]) then copies them rather than encoding the delta again.
/// For a sender that counts every message it sends and a receiver that logs every delta
/// encoded (a simulated node), one encoding where there were a count and an encoding.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
/// let mut on_a = Replica::new(a, schema.clone(), ReplicaConfig::default());
/// let mut on_b = Replica::new(b, schema, ReplicaConfig::default());
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "hits", "value", 1);
/// on_a.commit(tx).unwrap();
/// on_b.sync_with(a);
/// let (_, digest) = on_b.take_ready().messages.pop().unwrap();
/// on_a.step(b, digest).unwrap();
/// let (_, reply) = on_a.take_ready().messages.pop().unwrap();
/// assert_eq!(wire::encoded_message_len_keeping(&reply), wire::encode_message(&reply).len());
/// ```
pub fn encoded_message_len_keeping(message: &Message) -> usize {
    let Message::Sync(sync) = message;
    let Some(delta) = &sync.delta else {
        return encoded_message_len(message);
    };
    let delta_len = delta.encoded.bytes_of(delta).len();
    // The envelope's version, `Message::Sync`'s variant and the clock; then `Some`'s tag, the
    // delta, and `reply_wanted` (a byte): the order `SyncMessage` declares its fields in.
    size::postcard_len(&(FORMAT_VERSION, SYNC_VARIANT, &sync.clock)) + 1 + delta_len + 1
}

/// Postcard's index of [`Message::Sync`] (the first variant).
const SYNC_VARIANT: u32 = 0;

/// Postcard's index of [`Record::Merge`] (the second variant).
const MERGE_VARIANT: u32 = 1;

/// A delta's encoding, kept with it ([`encoded_message_len_keeping`]). Not part of the delta's
/// value: two deltas are equal whatever their kept encodings hold.
#[derive(Clone, Default)]
pub(crate) struct KeptEncoding(OnceLock<Box<[u8]>>);

impl KeptEncoding {
    /// `delta`'s encoding (the delta this is kept in), made now if not made yet.
    ///
    /// Written into this thread's scratch buffer, then copied once into an allocation of
    /// exactly its length: a vector grown by doubling as the encoder writes copies what it
    /// holds at every growth, and a buffer sized from a bound would allocate several times the
    /// bytes a delta encodes to (which also raises the allocator's threshold for serving
    /// large blocks from fresh mappings, so it keeps more memory).
    fn bytes_of(&self, delta: &Delta) -> &[u8] {
        self.0.get_or_init(|| {
            SCRATCH.with_borrow_mut(|scratch| {
                scratch.clear();
                postcard::serialize_with_flavor(delta, AppendTo(scratch))
                    .expect("encoding to memory cannot fail");
                let bytes: Box<[u8]> = scratch.as_slice().into();
                // Kept no larger than a frame: a delta that large is rare, and its buffer
                // would otherwise stay with the thread for good.
                if scratch.capacity() > MAX_FRAME_LEN {
                    *scratch = Vec::new();
                }
                bytes
            })
        })
    }
}

thread_local! {
    /// Where [`KeptEncoding::bytes_of`] writes an encoding before copying it out; reused, so
    /// it has grown to the deltas a thread encodes.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl PartialEq for KeptEncoding {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for KeptEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(bytes) => write!(f, "{} bytes kept", bytes.len()),
            None => f.write_str("none kept"),
        }
    }
}

/// The encoded size of a record, in bytes, counted without encoding it.
pub fn encoded_record_len(record: &Record) -> usize {
    size::postcard_len(&EnvelopeRef {
        version: FORMAT_VERSION,
        body: record,
    })
}

/// Encodes a durable record.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "hits", "value", 1);
/// replica.commit(tx).unwrap();
/// let record = replica.take_ready().records.pop().unwrap();
/// assert_eq!(wire::decode_record(&wire::encode_record(&record)).unwrap(), record);
/// ```
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record_into(record, &mut out);
    out
}

/// [`encode_record`]'s bytes, appended to `out`: a caller that encodes a record per commit (the
/// engine's log) reuses one buffer, where a fresh vector would grow and reallocate as the
/// encoder writes.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "hits", "value", 1);
/// replica.commit(tx).unwrap();
/// let record = replica.take_ready().records.pop().unwrap();
/// let mut out = b"kept".to_vec();
/// wire::encode_record_into(&record, &mut out);
/// assert_eq!(&out[..4], b"kept");
/// assert_eq!(out[4..], wire::encode_record(&record)[..]);
/// ```
pub fn encode_record_into(record: &Record, out: &mut Vec<u8>) {
    if let Some((header, kept)) = kept_merge(record) {
        postcard::serialize_with_flavor(&header, AppendTo(out))
            .expect("encoding to memory cannot fail");
        out.extend_from_slice(kept);
        return;
    }
    encode_into(record, out);
}

/// The start of a delta's record: the envelope's version, [`Record::Merge`]'s variant and the
/// sender.
type MergeHeader<'a> = (u16, u32, &'a NodeId);

/// A delta applied whose encoding was kept, as the two parts its record is written in: the
/// header, then the delta's own bytes (the order `Record::Merge` declares its fields in).
fn kept_merge(record: &Record) -> Option<(MergeHeader<'_>, &[u8])> {
    let Record::Merge { from, delta } = record else {
        return None;
    };
    Some((
        (FORMAT_VERSION, MERGE_VARIANT, from),
        delta.encoded.0.get()?,
    ))
}

/// The encoded size of `record` if it is a delta applied whose encoding was kept when it was
/// sized for the wire ([`encoded_message_len_keeping`]): known without walking the delta, so a
/// log can choose where the record goes before [`encode_record_into`] writes it there.
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::wire;
/// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
/// let mut on_a = Replica::new(a, schema.clone(), ReplicaConfig::default());
/// let mut on_b = Replica::new(b, schema, ReplicaConfig::default());
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "hits", "value", 1);
/// on_a.commit(tx).unwrap();
/// on_b.sync_with(a);
/// let (_, digest) = on_b.take_ready().messages.pop().unwrap();
/// on_a.step(b, digest).unwrap();
/// let (_, reply) = on_a.take_ready().messages.pop().unwrap();
/// wire::encoded_message_len_keeping(&reply); // the delta's encoding is kept from here on
/// on_b.step(a, reply).unwrap();
/// let merge = on_b.take_ready().records.pop().unwrap();
/// assert_eq!(wire::kept_record_len(&merge), Some(wire::encode_record(&merge).len()));
/// ```
pub fn kept_record_len(record: &Record) -> Option<usize> {
    let (header, kept) = kept_merge(record)?;
    Some(size::postcard_len(&header) + kept.len())
}

/// Decodes a durable record.
pub fn decode_record(bytes: &[u8]) -> Result<Record> {
    decode(bytes)
}

/// Encodes a versioned update (for shipping single updates, e.g. to a client).
///
/// ```
/// # use rhizo_algebra::{MergeType, Schema, ValueType};
/// # use rhizo_clock::NodeId;
/// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
/// # let schema = Schema::builder()
/// #     .table("counters")
/// #     .column("value", MergeType::Add, ValueType::Integer)
/// #     .build()
/// #     .unwrap();
/// use rhizo_commit::{wire, LocalCommitProtocol};
/// let mut protocol = LocalCommitProtocol::new(NodeId::new("a").unwrap(), schema);
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "hits", "value", 1);
/// let update = protocol.commit_local(tx).unwrap();
/// assert_eq!(wire::decode_update(&wire::encode_update(&update)).unwrap(), update);
/// ```
pub fn encode_update(update: &VersionedUpdate) -> Vec<u8> {
    encode(update)
}

/// Decodes a versioned update.
pub fn decode_update(bytes: &[u8]) -> Result<VersionedUpdate> {
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::{incr, node, schema};
    use crate::{Replica, ReplicaConfig};

    #[test]
    fn a_delta_with_its_encoding_kept_encodes_as_one_without() {
        let config = ReplicaConfig {
            members: vec![node(1), node(2)],
            ..ReplicaConfig::default()
        };
        let mut on_a = Replica::new(node(1), schema(), config.clone());
        let mut on_b = Replica::new(node(2), schema(), config);
        // Short rows, and one past what a key holds inline.
        for row in ["a", "b", "a-row-name-longer-than-twenty-four-bytes"] {
            on_a.commit(incr(row, 3)).unwrap();
        }
        on_a.take_ready();
        on_b.sync_with(node(1));
        let (_, digest) = on_b.take_ready().messages.pop().unwrap();
        on_a.step(node(2), digest).unwrap();
        let (_, reply) = on_a.take_ready().messages.pop().unwrap();
        let whole = encode_message(&reply);
        assert_eq!(encoded_message_len_keeping(&reply), whole.len());
        assert_eq!(encoded_message_len(&reply), whole.len());
        on_b.step(node(1), reply).unwrap();
        let merge = on_b
            .take_ready()
            .records
            .into_iter()
            .find(|record| matches!(record, Record::Merge { .. }))
            .expect("the delta applied is recorded");
        let Record::Merge { from, delta } = &merge else {
            unreachable!("found as a merge");
        };
        assert!(delta.encoded.0.get().is_some(), "the kept encoding travels");
        let mut plain = delta.clone();
        plain.encoded = KeptEncoding::default();
        let plain = Record::Merge {
            from: *from,
            delta: plain,
        };
        let kept = encode_record(&merge);
        assert_eq!(kept, encode_record(&plain));
        assert_eq!(decode_record(&kept).unwrap(), merge);
        let mut appended = vec![9];
        encode_record_into(&merge, &mut appended);
        assert_eq!(appended[1..], kept[..]);
    }

    proptest! {
        /// Appending through the vector flavor writes exactly postcard's own bytes after what
        /// the buffer held: short writes pushed in place and long ones copied alike.
        #[test]
        fn appended_bytes_are_postcards_after_the_prefix(
            prefix in prop::collection::vec(any::<u8>(), 0..40),
            text in ".{0,60}", blob in prop::collection::vec(any::<u8>(), 0..300),
            numbers in prop::collection::vec(any::<u64>(), 0..20), wide in any::<i128>(),
        ) {
            let body = (text.as_str(), &blob, &numbers, wide, Some(numbers.len()));
            let mut out = prefix.clone();
            encode_into(&body, &mut out);
            let expected = postcard::to_allocvec(&EnvelopeRef {
                version: FORMAT_VERSION,
                body: &body,
            })
            .expect("encodes");
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&out[prefix.len()..], &expected[..]);
        }
    }
}
