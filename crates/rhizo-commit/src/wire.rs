//! The wire format: postcard bytes inside a versioned envelope.
//!
//! Decoding arbitrary bytes returns an error — never a panic — and the decoder never allocates
//! ahead of the bytes it has actually read for the collections this crate defines.

use serde::{Deserialize, Serialize};

use crate::{LocalCommitError, Message, Record, Result, VersionedUpdate};

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
    encode(record)
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
    encode_into(record, out);
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
