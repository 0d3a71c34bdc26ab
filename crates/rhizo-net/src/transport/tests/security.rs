//! The security properties, each its own test: certificates from another CA, certificates that
//! name another node, non-members, cluster and version mismatches, malformed frames, oversized
//! length prefixes and slow-loris connections.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhizo_clock::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{Pki, bind_all, config, eventually, receive_until, start};
use crate::conn::framed;
use crate::frame::{Frame, Hello, PROTOCOL_VERSION};
use crate::{CloseReason, Inbound, Lane, RefusalReason, Security, TransportHandle};

fn n(index: u32) -> NodeId {
    NodeId::numbered(index)
}

fn failures(handle: &TransportHandle, peer: NodeId, reason: RefusalReason) -> u64 {
    let stats = handle.stats();
    stats.peers.get(&peer).map_or(0, |peer| {
        peer.handshake_failures.get(&reason).copied().unwrap_or(0)
    })
}

fn unattributed(handle: &TransportHandle, reason: RefusalReason) -> u64 {
    handle
        .stats()
        .unattributed_handshake_failures
        .get(&reason)
        .copied()
        .unwrap_or(0)
}

fn closes(stats: &crate::TransportStats, reason: CloseReason) -> u64 {
    stats.connection_closes.get(&reason).copied().unwrap_or(0)
}

/// No `PeerUp` arrives for `peer` for a while.
async fn never_up(receiver: &mut crate::InboundReceiver, peer: NodeId) -> bool {
    let wait = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            match receiver.recv().await {
                Some(Inbound::PeerUp { peer: up, .. }) if up == peer => return,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    });
    wait.await.is_err()
}

/// A node whose certificate comes from another CA is refused in both directions, though it
/// claims a member's id and trusts the cluster's CA.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let cluster = Pki::new("cluster");
    let rogue_ca = Pki::new("rogue");
    let (members, mut listeners) = bind_all(&[n(0), n(1)]).await;
    let rogue_files = rogue_ca.files("n1", "n1-rogue", &cluster.ca_path());
    let (rogue, _rogue_rx) = start(
        config(n(1), &members, Security::Tls(rogue_files)),
        listeners.pop().unwrap(),
    );
    let (honest, mut honest_rx) = start(
        config(n(0), &members, cluster.node(n(0))),
        listeners.pop().unwrap(),
    );
    assert!(never_up(&mut honest_rx, n(1)).await);
    assert!(
        eventually(Duration::from_secs(5), || {
            failures(&honest, n(1), RefusalReason::UntrustedCertificate) > 0
                && unattributed(&honest, RefusalReason::UntrustedCertificate) > 0
        })
        .await,
        "{:?}",
        honest.stats()
    );
    assert!(!honest.is_connected(n(1), Lane::Control));
    assert!(
        failures(&rogue, n(0), RefusalReason::RejectedByPeer) > 0,
        "{:?}",
        rogue.stats()
    );
    honest.shutdown().await;
    rogue.shutdown().await;
}

/// A member that presents another member's (valid) certificate is refused: the listener sees
/// that the certificate does not name the id in the Hello, and the dialer that the listener's
/// certificate does not name the node it dialled. The impostor sees the reason.
#[tokio::test]
async fn a_certificate_naming_another_node_is_refused() {
    let pki = Pki::new("cluster");
    let (members, mut listeners) = bind_all(&[n(0), n(1), n(2)]).await;
    let stolen = pki.files("n1", "n1-copy", &pki.ca_path());
    let (impostor, _impostor_rx) = start(
        config(n(2), &members, Security::Tls(stolen)),
        listeners.pop().unwrap(),
    );
    let _n1_listener = listeners.pop().unwrap();
    let (honest, mut honest_rx) = start(
        config(n(0), &members, pki.node(n(0))),
        listeners.pop().unwrap(),
    );
    assert!(never_up(&mut honest_rx, n(2)).await);
    let reason = RefusalReason::CertificateNamesAnotherNode;
    assert!(
        eventually(Duration::from_secs(5), || failures(&honest, n(2), reason)
            >= 2)
        .await,
        "{:?}",
        honest.stats()
    );
    assert!(
        eventually(Duration::from_secs(5), || failures(&impostor, n(0), reason)
            > 0)
        .await,
        "the impostor is told why: {:?}",
        impostor.stats()
    );
    honest.shutdown().await;
    impostor.shutdown().await;
}

/// A node with a valid certificate that is not in the membership is refused, and told so.
#[tokio::test]
async fn a_node_outside_the_membership_is_refused() {
    let pki = Pki::new("cluster");
    let (mut members, mut listeners) = bind_all(&[n(0), n(9)]).await;
    let (outsider, _outsider_rx) = start(
        config(n(9), &members, pki.node(n(9))),
        listeners.pop().unwrap(),
    );
    members.remove(&n(9));
    let (honest, mut honest_rx) = start(
        config(n(0), &members, pki.node(n(0))),
        listeners.pop().unwrap(),
    );
    assert!(never_up(&mut honest_rx, n(9)).await);
    let reason = RefusalReason::NotAMember;
    assert!(
        eventually(Duration::from_secs(5), || unattributed(&honest, reason) > 0
            && failures(&outsider, n(0), reason) > 0)
        .await,
        "{:?} / {:?}",
        honest.stats(),
        outsider.stats()
    );
    assert!(honest.stats().peers.is_empty());
    honest.shutdown().await;
    outsider.shutdown().await;
}

/// Two nodes of different clusters refuse each other, and each sees the other's reason.
#[tokio::test]
async fn a_cluster_id_mismatch_is_refused_with_a_reason_the_other_side_sees() {
    let (members, mut listeners) = bind_all(&[n(0), n(1)]).await;
    let mut other = config(n(1), &members, Security::Insecure);
    other.cluster_id = "another-cluster".into();
    let (b, _b_rx) = start(other, listeners.pop().unwrap());
    let (a, mut a_rx) = start(
        config(n(0), &members, Security::Insecure),
        listeners.pop().unwrap(),
    );
    assert!(never_up(&mut a_rx, n(1)).await);
    let reason = RefusalReason::ClusterId;
    assert!(
        eventually(Duration::from_secs(5), || failures(&a, n(1), reason) >= 2
            && failures(&b, n(0), reason) >= 2)
        .await,
        "{:?} / {:?}",
        a.stats(),
        b.stats()
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Connects to `address` and sends `hello`; returns the answer frame's bytes.
async fn say_hello(address: &str, hello: &Frame<'_>) -> Option<BytesMut> {
    let stream = TcpStream::connect(address).await.ok()?;
    let (mut reader, mut writer) = framed(Box::new(stream), 64 << 10);
    writer.send(hello.encode().ok()?).await.ok()?;
    reader.next().await?.ok()
}

fn hello_from(node: NodeId, version: u32, lane: Lane) -> Hello {
    Hello {
        protocol_version: version,
        cluster_id: "test-cluster".into(),
        node,
        incarnation: 1,
        lane,
    }
}

/// A Hello of another protocol version is answered with a `ProtocolVersion` refusal — also
/// when the rest of that version's Hello cannot be read.
#[tokio::test]
async fn a_protocol_version_mismatch_is_refused_with_a_reason_the_other_side_sees() {
    let (members, mut listeners) = bind_all(&[n(0), n(1)]).await;
    let (node, _rx) = start(
        config(n(0), &members, Security::Insecure),
        listeners.remove(0),
    );
    let address = members[&n(0)].clone();
    let later = Frame::Hello(hello_from(n(1), PROTOCOL_VERSION + 1, Lane::Control));
    let answer = say_hello(&address, &later).await.expect("an answer");
    assert!(matches!(
        Frame::decode(&answer),
        Some(Frame::Refuse {
            reason: RefusalReason::ProtocolVersion,
            ..
        })
    ));
    // A later version's Hello with fields this version cannot read.
    let later = u8::try_from(PROTOCOL_VERSION + 1).unwrap();
    let stream = TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = framed(Box::new(stream), 64 << 10);
    writer
        .send(Bytes::copy_from_slice(&[0, later, 0xff, 0xff]))
        .await
        .unwrap();
    let answer = reader.next().await.unwrap().unwrap();
    assert!(matches!(
        Frame::decode(&answer),
        Some(Frame::Refuse {
            reason: RefusalReason::ProtocolVersion,
            ..
        })
    ));
    assert_eq!(failures(&node, n(1), RefusalReason::ProtocolVersion), 1);
    assert_eq!(unattributed(&node, RefusalReason::ProtocolVersion), 1);
    node.shutdown().await;
}

/// One hostile connection: garbage before or after a valid Hello, a truncated frame, or a
/// length prefix claiming 4 GiB. Returns once the node has closed the connection.
async fn hostile_connection(address: &str, rng: &mut ChaCha8Rng) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return false;
    };
    let kind = rng.random_range(0..4u8);
    let mut bytes = BytesMut::new();
    if kind != 0 {
        let hello = Frame::Hello(hello_from(n(1), PROTOCOL_VERSION, Lane::Bulk));
        let hello = hello.encode().unwrap();
        bytes.put_u32(hello.len() as u32);
        bytes.put_slice(&hello);
    }
    let garbage: Vec<u8> = (0..rng.random_range(1..40)).map(|_| rng.random()).collect();
    match kind {
        0 | 1 => {
            // A frame of random bytes (a tag and fields that do not decode, or a data frame
            // out of sequence), or random bytes where a frame should be.
            bytes.put_u32(garbage.len() as u32);
            bytes.put_slice(&garbage);
            bytes.put_slice(&[0xff; 8]);
        }
        2 => {
            // A frame cut short: the prefix promises more than ever comes.
            bytes.put_u32(garbage.len() as u32 + 100);
            bytes.put_slice(&garbage);
        }
        _ => {
            bytes.put_u32(u32::MAX);
            bytes.put_slice(&garbage);
        }
    }
    if stream.write_all(&bytes).await.is_err() {
        return true;
    }
    if kind == 2 {
        let _ = stream.shutdown().await;
    }
    // The node must close the connection: read until the end.
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    closed.await.is_ok()
}

/// 10,000 malformed, truncated or oversized frames, each on its own connection, before or after
/// a valid handshake: each connection is closed with a counted reason, nothing panics, and the
/// node still serves an honest peer afterwards.
#[tokio::test]
async fn ten_thousand_malformed_frames_close_their_connections() {
    let (members, mut listeners) = bind_all(&[n(0), n(1)]).await;
    let peer_listener = listeners.pop().unwrap();
    let mut node_config = config(n(0), &members, Security::Insecure);
    node_config.max_frame_bytes = 1024;
    node_config.handshake_timeout = Duration::from_secs(5);
    let (node, mut node_rx) = start(node_config, listeners.pop().unwrap());
    let address = members[&n(0)].clone();
    let mut rng = ChaCha8Rng::seed_from_u64(10_000);
    let mut seeds: Vec<u64> = (0..10_000).map(|_| rng.random()).collect();
    // Eight at a time, so that the run stays short.
    while !seeds.is_empty() {
        let batch: Vec<u64> = seeds.drain(..seeds.len().min(8)).collect();
        let tasks = batch.into_iter().map(|seed| {
            let address = address.clone();
            tokio::spawn(async move {
                hostile_connection(&address, &mut ChaCha8Rng::seed_from_u64(seed)).await
            })
        });
        for task in tasks {
            assert!(task.await.unwrap(), "a hostile connection was left open");
        }
    }
    // Every connection was refused or closed with a counted reason (the count follows the
    // close by a moment).
    let accounted = |stats: &crate::TransportStats| {
        let refused: u64 = stats.unattributed_handshake_failures.values().sum::<u64>()
            + stats.peers[&n(1)].handshake_failures.values().sum::<u64>();
        let closed: u64 = [
            CloseReason::MalformedFrame,
            CloseReason::OversizedFrame,
            CloseReason::TruncatedFrame,
            CloseReason::Replaced,
        ]
        .iter()
        .map(|reason| closes(stats, *reason))
        .sum();
        refused + closed
    };
    assert!(
        eventually(Duration::from_secs(5), || accounted(&node.stats())
            == 10_000)
        .await,
        "{:?}",
        node.stats()
    );
    let stats = node.stats();
    for reason in [
        CloseReason::MalformedFrame,
        CloseReason::OversizedFrame,
        CloseReason::TruncatedFrame,
    ] {
        assert!(closes(&stats, reason) > 1000, "{reason:?}: {stats:?}");
    }
    assert!(stats.unattributed_handshake_failures.values().sum::<u64>() > 1000);

    // The node still works: an honest n1 connects and its message arrives.
    let (peer, _peer_rx) = start(config(n(1), &members, Security::Insecure), peer_listener);
    assert!(
        eventually(Duration::from_secs(10), || peer
            .is_connected(n(0), Lane::Bulk))
        .await
    );
    peer.send(n(0), Lane::Bulk, vec![1, 2, 3]).unwrap();
    let (arrived, _) = receive_until(
        &mut node_rx,
        |inbound| matches!(inbound, Inbound::Message { bytes, .. } if bytes[..] == [1, 2, 3]),
    )
    .await;
    assert!(arrived);
    node.shutdown().await;
    peer.shutdown().await;
}

/// Connections that never finish their handshake (silent, or trickling a byte at a time) are
/// closed after the handshake timeout; beyond the cap of pending handshakes they are closed at
/// once; and an honest peer gets in afterwards.
#[tokio::test]
async fn slow_loris_connections_do_not_hold_a_slot() {
    let (members, mut listeners) = bind_all(&[n(0), n(1)]).await;
    let peer_listener = listeners.pop().unwrap();
    let mut node_config = config(n(0), &members, Security::Insecure);
    node_config.max_pending_handshakes = 4;
    node_config.handshake_timeout = Duration::from_millis(300);
    let (node, _node_rx) = start(node_config, listeners.pop().unwrap());
    let address = members[&n(0)].clone();

    let started = tokio::time::Instant::now();
    let mut lorises = Vec::new();
    for i in 0..10 {
        let address = address.clone();
        lorises.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&address).await.unwrap();
            let mut buffer = [0u8; 16];
            // The tricklers announce a 256-byte frame and send it a byte every 50 ms.
            let mut trickle = [0u8, 0, 1, 0].into_iter().chain(std::iter::repeat(5));
            for _ in 0..100 {
                if i % 2 == 0 {
                    let _ = stream.write_all(&[trickle.next().unwrap_or(0)]).await;
                }
                let read =
                    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer));
                if let Ok(Ok(0) | Err(_)) = read.await {
                    return true;
                }
            }
            false
        }));
    }
    for loris in lorises {
        assert!(
            loris.await.unwrap(),
            "a slow-loris connection was held for 5 s"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = node.stats();
    let timeouts = unattributed(&node, RefusalReason::HandshakeTimeout);
    let turned_away = unattributed(&node, RefusalReason::TooManyPendingHandshakes);
    assert_eq!(timeouts + turned_away, 10, "{stats:?}");
    assert!(timeouts >= 4 && turned_away >= 1, "{stats:?}");

    let (peer, _peer_rx) = start(config(n(1), &members, Security::Insecure), peer_listener);
    assert!(
        eventually(Duration::from_secs(10), || peer
            .is_connected(n(0), Lane::Control))
        .await
    );
    node.shutdown().await;
    peer.shutdown().await;
}
