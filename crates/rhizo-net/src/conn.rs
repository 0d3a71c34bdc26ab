//! One established connection: length-delimited frames over a (TLS) stream, the handshake of
//! each side, and the loops that move frames once it is done.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use rhizo_clock::NodeId;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};
use tracing::warn;

use crate::frame::{Frame, Hello, PROTOCOL_VERSION, PieceKind, Reassembler, ReassemblyError};
use crate::frame::{hello_version, pieces};
use crate::socket::Io;
use crate::state::{LaneState, Shared};
use crate::stats::LaneCounters;
use crate::tls::{TlsContext, certificate_names, refusal_of, server_name};
use crate::{CloseReason, Inbound, Lane, RefusalReason};

type Stream = Box<dyn Io>;

/// The reading half of a connection: whole frames, at most `max_frame_bytes` each. A length
/// prefix claiming more is an error before anything is allocated for it.
pub(crate) type FrameReader = FramedRead<ReadHalf<Stream>, LengthDelimitedCodec>;
/// The writing half of a connection.
pub(crate) type FrameWriter = FramedWrite<WriteHalf<Stream>, LengthDelimitedCodec>;

/// Splits a stream into framed halves.
pub(crate) fn framed(stream: Stream, max_frame_bytes: usize) -> (FrameReader, FrameWriter) {
    let codec = LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec();
    let (read, write) = tokio::io::split(stream);
    (
        FramedRead::new(read, codec.clone()),
        FramedWrite::new(write, codec),
    )
}

/// A handshaken connection and what the peer said in its Hello.
pub(crate) struct Established {
    pub(crate) reader: FrameReader,
    pub(crate) writer: FrameWriter,
    pub(crate) hello: Hello,
}

/// Writes one frame (and flushes it).
async fn write_frame(writer: &mut FrameWriter, frame: &Frame<'_>) -> io::Result<usize> {
    let bytes = frame.encode().map_err(io::Error::other)?;
    let len = bytes.len();
    writer.send(bytes).await?;
    Ok(len)
}

/// Reads one frame block; `None` when the stream ended.
async fn read_block(reader: &mut FrameReader) -> Option<io::Result<BytesMut>> {
    reader.next().await
}

fn own_hello(shared: &Shared, lane: Lane) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: shared.config.cluster_id.clone(),
        node: shared.config.node,
        incarnation: shared.config.incarnation,
        lane,
        member_at: shared.member_at(),
    }
}

/// The dialer's side: TLS (checking the certificate names `peer`), our Hello, theirs.
pub(crate) async fn dial_handshake(
    shared: &Shared,
    tls: Option<&TlsContext>,
    stream: impl Io,
    peer: NodeId,
    lane: Lane,
) -> Result<Established, RefusalReason> {
    let stream: Stream = match tls {
        Some(tls) => {
            let name = server_name(peer).ok_or(RefusalReason::Tls)?;
            let stream = tls
                .connector
                .connect(name, stream)
                .await
                .map_err(|error| refusal_of(&error))?;
            Box::new(stream)
        }
        None => Box::new(stream),
    };
    let (mut reader, mut writer) = framed(stream, shared.config.max_frame_bytes);
    let peer_state = shared.peer(peer).ok_or(RefusalReason::NotAMember)?;
    let counters = &peer_state.lane(lane).counters;
    let sent = write_frame(&mut writer, &Frame::Hello(own_hello(shared, lane)))
        .await
        .map_err(|error| refusal_of(&error))?;
    counters.frame_sent(sent);
    let block = match read_block(&mut reader).await {
        Some(Ok(block)) => block,
        Some(Err(error)) => return Err(refusal_of(&error)),
        None => return Err(RefusalReason::RejectedByPeer),
    };
    counters.frame_received(block.len());
    match Frame::decode(&block) {
        Some(Frame::Hello(hello)) => {
            check_reply(shared, &hello, peer, lane)?;
            Ok(Established {
                reader,
                writer,
                hello,
            })
        }
        Some(Frame::Refuse { reason, detail }) => {
            warn!(%peer, %lane, ?reason, detail, "the peer refused our connection");
            Err(reason)
        }
        _ => Err(RefusalReason::MalformedHandshake),
    }
}

/// The listener's Hello must be this version and cluster, from the node we dialled.
fn check_reply(
    shared: &Shared,
    hello: &Hello,
    peer: NodeId,
    lane: Lane,
) -> Result<(), RefusalReason> {
    if hello.protocol_version != PROTOCOL_VERSION {
        warn!(%peer, version = hello.protocol_version, "the peer answered in another protocol version");
        return Err(RefusalReason::ProtocolVersion);
    }
    if hello.cluster_id != shared.config.cluster_id {
        warn!(%peer, cluster = hello.cluster_id, "the peer answered from another cluster");
        return Err(RefusalReason::ClusterId);
    }
    if hello.node != peer || hello.lane != lane {
        warn!(%peer, answered = %hello.node, "another node answered at the peer's address");
        return Err(RefusalReason::WrongPeer);
    }
    Ok(())
}

/// Why an inbound handshake failed, and the member it named if it named one.
pub(crate) struct InboundRefusal {
    pub(crate) peer: Option<NodeId>,
    pub(crate) reason: RefusalReason,
}

impl From<RefusalReason> for InboundRefusal {
    fn from(reason: RefusalReason) -> Self {
        Self { peer: None, reason }
    }
}

/// The listener's side: TLS (the client certificate must chain to the CA), their Hello (checked
/// against version, cluster, membership and certificate), ours.
pub(crate) async fn accept_handshake(
    shared: &Shared,
    tls: Option<&TlsContext>,
    stream: impl Io,
) -> Result<Established, InboundRefusal> {
    let (stream, certificate): (Stream, _) = match tls {
        Some(tls) => {
            let stream = tls
                .acceptor
                .accept(stream)
                .await
                .map_err(|error| refusal_of(&error))?;
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.clone().into_owned());
            (Box::new(stream), certificate)
        }
        None => (Box::new(stream), None),
    };
    let (mut reader, mut writer) = framed(stream, shared.config.max_frame_bytes);
    let block = match read_block(&mut reader).await {
        Some(Ok(block)) => block,
        Some(Err(error)) if tls.is_some() => return Err(refusal_of(&error).into()),
        _ => return Err(RefusalReason::MalformedHandshake.into()),
    };
    let hello = match Frame::decode(&block) {
        Some(Frame::Hello(hello)) => hello,
        _ => {
            let reason = match hello_version(&block) {
                Some(version) if version != PROTOCOL_VERSION => RefusalReason::ProtocolVersion,
                _ => RefusalReason::MalformedHandshake,
            };
            let detail = format!("expected a Hello of protocol version {PROTOCOL_VERSION}");
            refuse(&mut writer, reason, &detail).await;
            return Err(reason.into());
        }
    };
    if let Err((reason, detail)) = check_hello(shared, &hello, certificate.as_ref()) {
        warn!(peer = %hello.node, ?reason, detail, "refused an inbound connection");
        refuse(&mut writer, reason, &detail).await;
        let member = shared.is_peer(hello.node).then_some(hello.node);
        return Err(InboundRefusal {
            peer: member,
            reason,
        });
    }
    let reply = Frame::Hello(own_hello(shared, hello.lane));
    if let Err(error) = write_frame(&mut writer, &reply).await {
        return Err(InboundRefusal {
            peer: Some(hello.node),
            reason: refusal_of(&error),
        });
    }
    Ok(Established {
        reader,
        writer,
        hello,
    })
}

/// The checks of an inbound Hello, in order; the error says why, for the refusal frame.
fn check_hello(
    shared: &Shared,
    hello: &Hello,
    certificate: Option<&rustls_pki_types::CertificateDer<'static>>,
) -> Result<(), (RefusalReason, String)> {
    let config = &shared.config;
    if hello.protocol_version != PROTOCOL_VERSION {
        let detail = format!(
            "this node speaks protocol version {PROTOCOL_VERSION}, not {}",
            hello.protocol_version
        );
        return Err((RefusalReason::ProtocolVersion, detail));
    }
    if hello.cluster_id != config.cluster_id {
        let detail = format!("this node belongs to cluster {:?}", config.cluster_id);
        return Err((RefusalReason::ClusterId, detail));
    }
    if !shared.is_peer(hello.node) {
        if shared.removed_since(hello.node, hello.member_at) {
            let detail = format!(
                "{} was removed from the cluster after log index {}",
                hello.node, hello.member_at
            );
            return Err((RefusalReason::Removed, detail));
        }
        let detail = format!("{} is not a member of this node's cluster", hello.node);
        return Err((RefusalReason::NotAMember, detail));
    }
    if let Some(certificate) = certificate {
        if !certificate_names(certificate, hello.node) {
            let detail = format!("the certificate presented does not name {}", hello.node);
            return Err((RefusalReason::CertificateNamesAnotherNode, detail));
        }
    } else if shared.tls_required() {
        let detail = "no client certificate".to_owned();
        return Err((RefusalReason::UntrustedCertificate, detail));
    }
    Ok(())
}

/// Sends a refusal; the connection closes right after, so a failure to send changes nothing.
async fn refuse(writer: &mut FrameWriter, reason: RefusalReason, detail: &str) {
    let _ = write_frame(writer, &Frame::Refuse { reason, detail }).await;
}

/// Writes a ping whenever nothing else was written for `every`, until the writer fails.
pub(crate) async fn ping_forever(
    writer: &mut FrameWriter,
    counters: &LaneCounters,
    every: Duration,
) -> CloseReason {
    loop {
        tokio::time::sleep(every).await;
        match write_frame(writer, &Frame::Ping).await {
            Ok(len) => counters.frame_sent(len),
            Err(_) => return CloseReason::Io,
        }
    }
}

/// Writes the lane's queued messages in order, forever; pings when idle. Each message is flushed
/// before it leaves the queue (see `OutQueue::front`).
pub(crate) async fn write_queue(
    writer: &mut FrameWriter,
    lane: &LaneState,
    max_payload: usize,
    keepalive: Duration,
) -> CloseReason {
    loop {
        let Some(message) = lane.queue().front() else {
            tokio::select! {
                biased;
                _ = lane.ready.notified() => continue,
                _ = tokio::time::sleep(keepalive) => {
                    match write_frame(writer, &Frame::Ping).await {
                        Ok(len) => lane.counters.frame_sent(len),
                        Err(_) => return CloseReason::Io,
                    }
                    continue;
                }
            }
        };
        for piece in pieces(&message, max_payload) {
            let Ok(bytes) = piece.frame().encode() else {
                return CloseReason::Io;
            };
            let len = bytes.len();
            if writer.feed(bytes).await.is_err() {
                return CloseReason::Io;
            }
            lane.counters.frame_sent(len);
        }
        if SinkExt::<Bytes>::flush(writer).await.is_err() {
            return CloseReason::Io;
        }
        lane.queue().pop_written();
        lane.counters.messages_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// The reason a failed read closes a connection.
fn read_error(error: &io::Error) -> CloseReason {
    let oversized = error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
    if oversized {
        CloseReason::OversizedFrame
    } else if error.kind() == io::ErrorKind::Other {
        // The codec's only error of this kind: the stream ended inside a frame.
        CloseReason::TruncatedFrame
    } else {
        CloseReason::Io
    }
}

/// Reads frames until the connection ends: the dialer's side, where only pings may arrive.
pub(crate) async fn read_pings(
    reader: &mut FrameReader,
    counters: &LaneCounters,
    idle_timeout: Duration,
) -> CloseReason {
    loop {
        let block = match tokio::time::timeout(idle_timeout, read_block(reader)).await {
            Err(_) => return CloseReason::IdleTimeout,
            Ok(None) => return CloseReason::PeerClosed,
            Ok(Some(Err(error))) => return read_error(&error),
            Ok(Some(Ok(block))) => block,
        };
        counters.frame_received(block.len());
        if !matches!(Frame::decode(&block), Some(Frame::Ping)) {
            return CloseReason::MalformedFrame;
        }
    }
}

/// Where an inbound connection delivers its messages.
pub(crate) struct Delivery<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) from: NodeId,
    pub(crate) lane: Lane,
    /// This connection's turn in the lane's delivery slot.
    pub(crate) generation: u64,
    pub(crate) channel: &'a mpsc::Sender<Inbound>,
}

impl Delivery<'_> {
    async fn deliver(&self, state: &LaneState, bytes: Bytes) -> Result<(), CloseReason> {
        let slot = state.delivery.lock().await;
        if *slot != self.generation {
            return Err(CloseReason::Replaced);
        }
        let message = Inbound::Message {
            from: self.from,
            lane: self.lane,
            bytes,
        };
        self.channel
            .send(message)
            .await
            .map_err(|_| CloseReason::Shutdown)?;
        drop(slot);
        state
            .counters
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads frames until the connection ends, putting messages together and delivering them: the
/// listener's side.
pub(crate) async fn read_messages(reader: &mut FrameReader, delivery: Delivery<'_>) -> CloseReason {
    let config = &delivery.shared.config;
    let Some(peer_state) = delivery.shared.peer(delivery.from) else {
        return CloseReason::Removed;
    };
    let state = peer_state.lane(delivery.lane);
    let mut reassembler = Reassembler::new(config.max_message_bytes);
    loop {
        let block = match tokio::time::timeout(config.idle_timeout, read_block(reader)).await {
            Err(_) => return CloseReason::IdleTimeout,
            Ok(None) => return CloseReason::PeerClosed,
            Ok(Some(Err(error))) => return read_error(&error),
            Ok(Some(Ok(block))) => block.freeze(),
        };
        state.counters.frame_received(block.len());
        let (kind, payload) = match Frame::decode(&block) {
            Some(Frame::Ping) => continue,
            Some(Frame::Whole(payload)) => (PieceKind::Whole, payload.0),
            Some(Frame::Part(payload)) => (PieceKind::Part, payload.0),
            Some(Frame::Last(payload)) => (PieceKind::Last, payload.0),
            _ => return CloseReason::MalformedFrame,
        };
        let message = match reassembler.take(kind, payload, || block.slice_ref(payload)) {
            Ok(None) => continue,
            Ok(Some(message)) => message,
            Err(ReassemblyError::OutOfSequence) => return CloseReason::MalformedFrame,
            Err(ReassemblyError::TooLarge) => return CloseReason::MessageTooLarge,
        };
        if let Err(reason) = delivery.deliver(state, message).await {
            return reason;
        }
    }
}
