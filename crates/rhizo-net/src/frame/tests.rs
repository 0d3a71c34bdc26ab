use bytes::BufMut;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;

fn hello() -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "prod-eu".into(),
        node: NodeId::numbered(3),
        incarnation: 42,
        lane: Lane::Bulk,
        member_at: 17,
    }
}

/// The frames as bytes, as `docs/protocol.md` writes them: tag, then fields in postcard.
#[test]
fn frames_encode_as_the_protocol_document_says() {
    let ping = Frame::Ping.encode().unwrap();
    assert_eq!(&ping[..], &[5]);
    let whole = Frame::Whole(Payload(b"abc")).encode().unwrap();
    assert_eq!(&whole[..], &[2, 3, b'a', b'b', b'c']);
    let hello = Frame::Hello(hello()).encode().unwrap();
    let mut expected = vec![0, 2, 7];
    expected.extend_from_slice(b"prod-eu");
    expected.extend_from_slice(&[2, b'n', b'3', 42, 1, 17]);
    assert_eq!(&hello[..], &expected[..]);
    assert_eq!(hello_version(&hello), Some(PROTOCOL_VERSION));
    let refuse = Frame::Refuse {
        reason: RefusalReason::ClusterId,
        detail: "x",
    };
    assert_eq!(&refuse.encode().unwrap()[..], &[1, 1, 1, b'x']);
}

/// A Hello of a later version whose other fields this version cannot read still yields its
/// version, so the refusal says "version" rather than "garbage".
#[test]
fn a_later_hello_still_tells_its_version() {
    let block = [0u8, 3, 0xff, 0xff, 0xff];
    assert!(Frame::decode(&block).is_none());
    assert_eq!(hello_version(&block), Some(3));
    assert_eq!(hello_version(&[2, 0]), None);
}

/// Trailing bytes after a frame, an unknown tag and a truncated payload are all refused.
#[test]
fn malformed_blocks_do_not_decode() {
    assert!(Frame::decode(&[5, 0]).is_none());
    assert!(Frame::decode(&[6]).is_none());
    assert!(Frame::decode(&[2, 4, b'a']).is_none());
    assert!(Frame::decode(&[]).is_none());
    assert!(Frame::decode(&[1, 200, 0]).is_none());
}

/// A length prefix claiming 4 GiB is refused by the decoder before any buffer grows for it.
#[test]
fn an_oversized_length_prefix_allocates_nothing() {
    let mut codec = tokio_util::codec::LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(1024)
        .new_codec();
    let mut buffer = BytesMut::with_capacity(16);
    buffer.put_u32(u32::MAX);
    buffer.put_slice(&[0; 8]);
    let capacity = buffer.capacity();
    let error = codec.decode(&mut buffer).unwrap_err();
    assert!(
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>())
    );
    assert_eq!(buffer.capacity(), capacity);
}

fn reassemble(
    message: &Bytes,
    max_payload: usize,
    max_message: usize,
) -> Result<Bytes, ReassemblyError> {
    let mut reassembler = Reassembler::new(max_message);
    let mut out = None;
    for piece in pieces(message, max_payload) {
        let block = piece.frame().encode().unwrap();
        assert!(block.len() <= max_payload + FRAME_OVERHEAD);
        let frame = Frame::decode(&block).unwrap();
        let (kind, payload) = match frame {
            Frame::Whole(p) => (PieceKind::Whole, p.0),
            Frame::Part(p) => (PieceKind::Part, p.0),
            Frame::Last(p) => (PieceKind::Last, p.0),
            other => panic!("unexpected {other:?}"),
        };
        assert!(out.is_none(), "a message completed before its last piece");
        out = reassembler.take(kind, payload, || block.slice_ref(payload))?;
    }
    Ok(out.expect("the last piece completes the message"))
}

/// Pieces out of order are refused, and a message over the limit is refused as soon as its
/// pieces exceed it.
#[test]
fn reassembly_refuses_out_of_order_and_oversized_messages() {
    let mut reassembler = Reassembler::new(10);
    let whole = || Bytes::new();
    assert_eq!(
        reassembler.take(PieceKind::Last, b"x", whole),
        Err(ReassemblyError::OutOfSequence)
    );
    assert_eq!(reassembler.take(PieceKind::Part, b"12345", whole), Ok(None));
    assert_eq!(
        reassembler.take(PieceKind::Whole, b"x", whole),
        Err(ReassemblyError::OutOfSequence)
    );
    assert_eq!(
        reassembler.take(PieceKind::Part, b"123456", whole),
        Err(ReassemblyError::TooLarge)
    );
    let message = Bytes::from(vec![7u8; 11]);
    assert_eq!(reassemble(&message, 4, 10), Err(ReassemblyError::TooLarge));
}

proptest! {
    /// Every frame decodes to itself.
    #[test]
    fn frames_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), tag in 0u8..6, detail in "[a-z ]{0,40}") {
        let frame = match tag {
            0 => Frame::Hello(hello()),
            1 => Frame::Refuse { reason: RefusalReason::NotAMember, detail: &detail },
            2 => Frame::Whole(Payload(&payload)),
            3 => Frame::Part(Payload(&payload)),
            4 => Frame::Last(Payload(&payload)),
            _ => Frame::Ping,
        };
        let block = frame.encode().unwrap();
        prop_assert_eq!(Frame::decode(&block), Some(frame));
    }

    /// Any message cut into pieces of any size comes back whole, and takes as many frames as
    /// its length needs.
    #[test]
    fn pieces_reassemble_to_the_message(message in proptest::collection::vec(any::<u8>(), 0..2000), max_payload in 1usize..300) {
        let message = Bytes::from(message);
        let count = pieces(&message, max_payload).count();
        prop_assert_eq!(count, message.len().div_ceil(max_payload).max(1));
        prop_assert_eq!(reassemble(&message, max_payload, 2000).unwrap(), message);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_blocks_decode_or_fail_cleanly(block in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Frame::decode(&block);
        let _ = hello_version(&block);
    }
}
