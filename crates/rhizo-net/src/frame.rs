//! What travels on a connection: the frame enum, its encoding, and how a message is cut into
//! frames and put back together. `docs/protocol.md` is the written form of this module.

use std::fmt;

use bytes::{Bytes, BytesMut};
use rhizo_clock::NodeId;
use serde::{Deserialize, Serialize};

/// The one protocol version this crate speaks. A peer that speaks another is refused. Version 2:
/// the Hello carries `member_at` (so a removed member is told so), and the anti-entropy messages
/// inside the frames are of `rhizo_commit::wire` format 4 (deltas with a column dictionary),
/// neither of which a node of version 1 can read.
pub const PROTOCOL_VERSION: u32 = 2;

/// Bytes a frame adds around its payload: the variant tag (one byte) and the payload's length
/// (a varint of at most five bytes for a `u32`), rounded up. A payload of
/// `max_frame_bytes - FRAME_OVERHEAD` bytes always fits in one frame.
pub(crate) const FRAME_OVERHEAD: usize = 8;

/// The two traffic classes. Each has its own connection per peer, its own queue and its own
/// inbound channel, so bulk traffic never delays control traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Raft messages: small, latency-sensitive, never dropped silently.
    Control,
    /// Anti-entropy (digests, deltas, snapshots): large, dropped when a peer is slow and
    /// recovered by the next digest exchange.
    Bulk,
}

impl Lane {
    /// Both lanes, control first.
    pub const ALL: [Lane; 2] = [Lane::Control, Lane::Bulk];

    pub(crate) fn index(self) -> usize {
        match self {
            Lane::Control => 0,
            Lane::Bulk => 1,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lane::Control => "control",
            Lane::Bulk => "bulk",
        })
    }
}

/// Why a handshake failed. Sent to the peer in a `Refuse` frame when the connection can still
/// carry one (after TLS), counted in the stats on both sides, and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The peer speaks another protocol version.
    ProtocolVersion,
    /// The peer belongs to another cluster.
    ClusterId,
    /// The node id the peer claims is not in the membership (or is this node's own id).
    NotAMember,
    /// The peer's certificate is valid but names another node than the id it claims (or than
    /// the node the dialer meant to reach).
    CertificateNamesAnotherNode,
    /// The peer's certificate does not chain to the cluster's CA (or is otherwise invalid).
    UntrustedCertificate,
    /// The peer ended the TLS handshake with an alert: it refused our certificate.
    RejectedByPeer,
    /// Another TLS failure (no shared cipher suite, a plaintext peer, a protocol error).
    Tls,
    /// The listener answered with another node's Hello than the one dialled.
    WrongPeer,
    /// The first frame was not a Hello, did not decode, or the connection ended during the
    /// handshake.
    MalformedHandshake,
    /// The handshake did not complete within the handshake timeout.
    HandshakeTimeout,
    /// Too many inbound connections were already handshaking: closed at once.
    TooManyPendingHandshakes,
    /// The connection could not be opened (refused, unreachable, reset).
    Connect,
    /// The dialer is no longer a member: the listener's log removed it at or after the index
    /// where the dialer's own log last showed it a member (its Hello's `member_at`). The dialer
    /// takes this as word of its removal; a node the listener merely does not know yet is
    /// refused with [`RefusalReason::NotAMember`].
    Removed,
}

/// Why an established connection was closed; counted in the stats and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CloseReason {
    /// A frame did not decode, or came where the protocol does not allow it.
    MalformedFrame,
    /// A length prefix claimed more than the largest frame (nothing was allocated for it).
    OversizedFrame,
    /// The stream ended inside a frame.
    TruncatedFrame,
    /// The peer sent pieces of a message larger than the largest message.
    MessageTooLarge,
    /// Nothing arrived for the idle timeout.
    IdleTimeout,
    /// The peer closed the connection between frames.
    PeerClosed,
    /// A socket or TLS error.
    Io,
    /// The peer restarted (a newer incarnation dialled in), or a newer connection from the same
    /// peer and lane replaced this one.
    Replaced,
    /// This transport is shutting down.
    Shutdown,
    /// The peer is no longer a member (a membership change removed it).
    Removed,
}

/// The first frame each side sends on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// First field, and `Hello` is variant 0, so that any later version can still read it.
    pub(crate) protocol_version: u32,
    pub(crate) cluster_id: String,
    pub(crate) node: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) lane: Lane,
    /// The applied log index at which the sender's own log last showed it a member of the
    /// cluster; 0 when it has no such log (no Raft group) or never saw itself a member.
    pub(crate) member_at: u64,
}

/// A run of bytes written as one length-prefixed block and read back without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Payload<'a>(pub(crate) &'a [u8]);

impl Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Payload<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de [u8]>::deserialize(deserializer).map(Payload)
    }
}

/// One frame. The variant order is the wire format: append, never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Frame<'a> {
    /// The handshake; see [`Hello`].
    Hello(Hello),
    /// The handshake failed; the sender closes the connection after it.
    Refuse {
        reason: RefusalReason,
        #[serde(borrow)]
        detail: &'a str,
    },
    /// A whole message.
    #[serde(borrow)]
    Whole(Payload<'a>),
    /// A piece of a message; more pieces follow on the same connection, and nothing else comes
    /// between them but pings.
    #[serde(borrow)]
    Part(Payload<'a>),
    /// The last piece of a message.
    #[serde(borrow)]
    Last(Payload<'a>),
    /// Keeps an idle connection alive (each side sends one when it has written nothing for a
    /// third of the idle timeout).
    Ping,
}

impl Frame<'_> {
    /// The frame's bytes, to be written behind a length prefix.
    pub(crate) fn encode(&self) -> Result<Bytes, postcard::Error> {
        postcard::to_allocvec(self).map(Bytes::from)
    }

    /// Reads a frame from one length-delimited block.
    pub(crate) fn decode(block: &[u8]) -> Option<Frame<'_>> {
        match postcard::take_from_bytes::<Frame<'_>>(block) {
            Ok((frame, [])) => Some(frame),
            _ => None,
        }
    }
}

/// Reads just the protocol version from a first frame that is not a Hello of this version, to
/// tell a version mismatch from garbage: every version's Hello starts with tag 0 and the version.
pub(crate) fn hello_version(block: &[u8]) -> Option<u32> {
    match postcard::take_from_bytes::<(u8, u32)>(block) {
        Ok(((0, version), _)) => Some(version),
        _ => None,
    }
}

/// Cuts a message into the payloads of its frames: one `Whole` if it fits, else `Part`s and a
/// `Last`, each at most `max_payload` bytes. The pieces share the message's buffer.
pub(crate) fn pieces(message: &Bytes, max_payload: usize) -> impl Iterator<Item = Piece> + '_ {
    let max_payload = max_payload.max(1);
    let count = message.len().div_ceil(max_payload).max(1);
    (0..count).map(move |i| {
        let start = i * max_payload;
        let end = (start + max_payload).min(message.len());
        let bytes = message.slice(start..end);
        let kind = match (count, i + 1 == count) {
            (1, _) => PieceKind::Whole,
            (_, true) => PieceKind::Last,
            (_, false) => PieceKind::Part,
        };
        Piece { kind, bytes }
    })
}

/// Which frame a piece travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceKind {
    Whole,
    Part,
    Last,
}

/// One frame's worth of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) kind: PieceKind,
    pub(crate) bytes: Bytes,
}

impl Piece {
    pub(crate) fn frame(&self) -> Frame<'_> {
        let payload = Payload(&self.bytes);
        match self.kind {
            PieceKind::Whole => Frame::Whole(payload),
            PieceKind::Part => Frame::Part(payload),
            PieceKind::Last => Frame::Last(payload),
        }
    }
}

/// Puts messages back together from their pieces. Its buffer grows with the bytes that
/// actually arrive — never from a length the peer claims — and is bounded by the largest
/// message.
#[derive(Debug)]
pub(crate) struct Reassembler {
    partial: BytesMut,
    in_message: bool,
    max_message_bytes: usize,
}

/// A piece that cannot be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReassemblyError {
    /// A `Whole` came while a chunked message was unfinished, or a `Last` with none started.
    OutOfSequence,
    /// The pieces add up to more than the largest message.
    TooLarge,
}

impl Reassembler {
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self {
            partial: BytesMut::new(),
            in_message: false,
            max_message_bytes,
        }
    }

    /// Takes one piece; returns the message when it is complete. `whole` is the `Whole` payload
    /// as a shared slice of the received block, handed on without copying.
    pub(crate) fn take(
        &mut self,
        kind: PieceKind,
        bytes: &[u8],
        whole: impl FnOnce() -> Bytes,
    ) -> Result<Option<Bytes>, ReassemblyError> {
        match kind {
            PieceKind::Whole if self.in_message => Err(ReassemblyError::OutOfSequence),
            PieceKind::Whole if bytes.len() > self.max_message_bytes => {
                Err(ReassemblyError::TooLarge)
            }
            PieceKind::Whole => Ok(Some(whole())),
            PieceKind::Last if !self.in_message => Err(ReassemblyError::OutOfSequence),
            PieceKind::Part | PieceKind::Last => {
                if self.partial.len() + bytes.len() > self.max_message_bytes {
                    return Err(ReassemblyError::TooLarge);
                }
                self.partial.extend_from_slice(bytes);
                self.in_message = kind == PieceKind::Part;
                if kind == PieceKind::Last {
                    Ok(Some(std::mem::take(&mut self.partial).freeze()))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
