//! Real sockets on 127.0.0.1: three transports over real TLS, a message larger than a frame,
//! and a peer that stops reading.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rhizo_clock::NodeId;

use super::support::{Pki, bind_all, config, eventually, receive_until, start, wait_connected};
use crate::conn::framed;
use crate::frame::{Frame, Hello, PROTOCOL_VERSION};
use crate::{Inbound, Lane, NetError, Security};

/// Three nodes over mutual TLS: each reports the others up, and messages on both lanes arrive
/// in order — among them one of 1 MiB, 256 times the largest frame, which arrives whole.
#[tokio::test]
async fn three_nodes_over_tls_exchange_messages_and_a_large_one_arrives_whole() {
    let pki = Pki::new("cluster");
    let nodes = [
        NodeId::numbered(0),
        NodeId::numbered(1),
        NodeId::numbered(2),
    ];
    let (members, listeners) = bind_all(&nodes).await;
    let mut running = Vec::new();
    for (node, listener) in nodes.iter().zip(listeners) {
        let mut config = config(*node, &members, pki.node(*node));
        config.max_frame_bytes = 4096;
        running.push(start(config, listener));
    }
    for (handle, _) in &running {
        for peer in nodes.iter().filter(|peer| **peer != handle.node()) {
            assert!(
                wait_connected(handle, *peer).await,
                "{} -> {peer}",
                handle.node()
            );
        }
    }
    let large = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    // The handle is `Clone + Send + Sync` and `send` needs no runtime: send from plain threads.
    let senders: Vec<_> = running
        .iter()
        .map(|(handle, _)| {
            let (handle, large) = (handle.clone(), large.clone());
            std::thread::spawn(move || {
                for peer in nodes.iter().filter(|peer| **peer != handle.node()) {
                    for i in 0..20u8 {
                        handle.send(*peer, Lane::Control, vec![i]).unwrap();
                    }
                    handle.send(*peer, Lane::Bulk, large.clone()).unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    for (handle, receiver) in &mut running {
        let me = handle.node();
        let mut control: Vec<(NodeId, Vec<u8>)> = Vec::new();
        let mut bulk = Vec::new();
        let (done, _) = receive_until(receiver, |inbound| {
            if let Inbound::Message { from, lane, bytes } = inbound {
                match lane {
                    Lane::Control => control.push((*from, bytes.to_vec())),
                    Lane::Bulk => bulk.push((*from, bytes.clone())),
                }
            }
            control.len() == 40 && bulk.len() == 2
        })
        .await;
        assert!(
            done,
            "{me} received {} control, {} bulk",
            control.len(),
            bulk.len()
        );
        for peer in nodes.iter().filter(|peer| **peer != me) {
            let from_peer: Vec<u8> = control
                .iter()
                .filter(|(from, _)| from == peer)
                .flat_map(|(_, bytes)| bytes.clone())
                .collect();
            assert_eq!(from_peer, (0..20).collect::<Vec<u8>>(), "order from {peer}");
        }
        assert!(bulk.iter().all(|(_, bytes)| *bytes == large));
        let stats = handle.stats();
        for (peer, peer_stats) in &stats.peers {
            assert!(
                peer_stats.bulk.frames_received >= 256,
                "{me} <- {peer}: the large message came in pieces"
            );
            assert_eq!(peer_stats.control.messages_received, 20);
            assert!(peer_stats.handshake_failures.is_empty(), "{peer_stats:?}");
        }
    }
    for (handle, _) in &running {
        handle.shutdown().await;
        assert!(matches!(
            handle.send(nodes[1], Lane::Control, vec![1]),
            Err(NetError::ShutDown) | Err(NetError::UnknownPeer { .. })
        ));
    }
    for (_, receiver) in &mut running {
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while receiver.recv().await.is_some() {}
        })
        .await;
        assert!(drained.is_ok(), "the receiver ends after shutdown");
    }
}

/// A peer that completes the handshake and then never reads: the queue towards it stays within
/// its limits, bulk messages are dropped (and counted) and control sends are refused — never
/// silently dropped — while memory stays flat.
#[tokio::test]
async fn a_peer_that_stops_reading_keeps_the_queue_bounded() {
    let nodes = [NodeId::numbered(0), NodeId::numbered(1)];
    let (members, mut listeners) = bind_all(&nodes).await;
    let stalled_listener = listeners.pop().unwrap();
    let mut config = config(nodes[0], &members, Security::Insecure);
    config.idle_timeout = Duration::from_secs(60);
    config.bulk_queue.max_bytes = 256 << 10;
    config.bulk_queue.max_messages = 1000;
    config.control_queue.max_bytes = 64 << 10;
    let limits = (config.bulk_queue, config.control_queue);
    let (handle, _receiver) = start(config, listeners.pop().unwrap());

    // The stalled peer answers each Hello as n1, then holds its connections without reading.
    let stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        while held.len() < 2 {
            let Ok((stream, _)) = stalled_listener.accept().await else {
                break;
            };
            let (mut reader, mut writer) = framed(Box::new(stream), 64 << 10);
            let Some(Ok(block)) = reader.next().await else {
                continue;
            };
            let Some(Frame::Hello(theirs)) = Frame::decode(&block) else {
                continue;
            };
            let hello = Hello {
                protocol_version: PROTOCOL_VERSION,
                cluster_id: theirs.cluster_id.clone(),
                node: NodeId::numbered(1),
                incarnation: 1,
                lane: theirs.lane,
                member_at: 0,
            };
            let _ = writer.send(Frame::Hello(hello).encode().unwrap()).await;
            held.push((reader, writer));
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(held);
    });
    let peer = nodes[1];
    assert!(
        eventually(Duration::from_secs(10), || handle
            .is_connected(peer, Lane::Control)
            && handle.is_connected(peer, Lane::Bulk))
        .await
    );

    let chunk = Bytes::from(vec![7u8; 16 << 10]);
    let (mut bulk_refused, mut control_refused) = (0, 0);
    for round in 0..2000 {
        if let Err(error) = handle.send(peer, Lane::Bulk, chunk.clone()) {
            assert!(
                matches!(
                    error,
                    NetError::QueueFull {
                        lane: Lane::Bulk,
                        ..
                    }
                ),
                "{error}"
            );
            bulk_refused += 1;
        }
        if let Err(error) = handle.send(peer, Lane::Control, chunk.slice(..4096)) {
            assert!(error.is_unreachable(), "{error}");
            control_refused += 1;
        }
        if round % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let stats = handle.stats().peers[&peer].clone();
    assert!(
        bulk_refused > 1000 && control_refused > 1000,
        "{bulk_refused} {control_refused} {:?}",
        handle.stats()
    );
    assert_eq!(stats.bulk.dropped, bulk_refused);
    assert_eq!(stats.control.dropped, control_refused);
    assert!(
        stats.bulk.peak_queued_bytes <= limits.0.max_bytes as u64,
        "{stats:?}"
    );
    assert!(
        stats.control.peak_queued_bytes <= limits.1.max_bytes as u64,
        "{stats:?}"
    );
    assert!(
        stats.bulk.queued_bytes > 0,
        "the queue holds what the peer did not take"
    );
    handle.shutdown().await;
    stalled.abort();
}

/// A raw connection that has said Hello as `node` on `lane` with `incarnation`.
async fn raw_peer(
    address: &str,
    node: NodeId,
    lane: Lane,
    incarnation: u64,
) -> (crate::conn::FrameReader, crate::conn::FrameWriter) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = framed(Box::new(stream), 64 << 10);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "test-cluster".into(),
        node,
        incarnation,
        lane,
        member_at: 0,
    };
    writer
        .send(Frame::Hello(hello).encode().unwrap())
        .await
        .unwrap();
    let reply = reader.next().await.unwrap().unwrap();
    assert!(matches!(Frame::decode(&reply), Some(Frame::Hello(_))));
    (reader, writer)
}

async fn send_whole(writer: &mut crate::conn::FrameWriter, bytes: &[u8]) {
    let frame = Frame::Whole(crate::frame::Payload(bytes)).encode().unwrap();
    writer.send(frame).await.unwrap();
}

/// A newer connection from the same peer and lane takes over delivery: what the older one
/// sends afterwards is not delivered (so nothing arrives out of order), and a connection from an
/// older incarnation than one already seen is closed.
#[tokio::test]
async fn a_newer_connection_replaces_the_older_one() {
    let nodes = [NodeId::numbered(0), NodeId::numbered(1)];
    let (members, mut listeners) = bind_all(&nodes).await;
    let _peer_listener = listeners.pop().unwrap();
    let (handle, mut receiver) = start(
        config(nodes[0], &members, Security::Insecure),
        listeners.pop().unwrap(),
    );
    let address = members[&nodes[0]].clone();
    let messages = |receiver: &mut crate::InboundReceiver| {
        let mut got = Vec::new();
        while let Some(inbound) = receiver.try_recv() {
            if let Inbound::Message { bytes, .. } = inbound {
                got.push(bytes.to_vec());
            }
        }
        got
    };

    let (_old_reader, mut old) = raw_peer(&address, nodes[1], Lane::Bulk, 5).await;
    send_whole(&mut old, b"old-1").await;
    assert!(
        eventually(Duration::from_secs(5), || handle.stats().peers[&nodes[1]]
            .bulk
            .messages_received
            == 1)
        .await
    );
    let (_new_reader, mut new) = raw_peer(&address, nodes[1], Lane::Bulk, 5).await;
    send_whole(&mut new, b"new-1").await;
    assert!(
        eventually(Duration::from_secs(5), || handle.stats().peers[&nodes[1]]
            .bulk
            .messages_received
            == 2)
        .await
    );
    send_whole(&mut old, b"old-2").await;
    assert!(
        eventually(Duration::from_secs(5), || {
            handle
                .stats()
                .connection_closes
                .get(&crate::CloseReason::Replaced)
                == Some(&1)
        })
        .await
    );
    assert_eq!(
        messages(&mut receiver),
        [b"old-1".to_vec(), b"new-1".to_vec()]
    );

    // Incarnation 4 is older than 5, already seen: closed before it can deliver anything.
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = framed(Box::new(stream), 64 << 10);
    let stale = Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "test-cluster".into(),
        node: nodes[1],
        incarnation: 4,
        lane: Lane::Bulk,
        member_at: 0,
    };
    writer
        .send(Frame::Hello(stale).encode().unwrap())
        .await
        .unwrap();
    let _reply = reader.next().await;
    let _ = writer
        .send(
            Frame::Whole(crate::frame::Payload(b"stale"))
                .encode()
                .unwrap(),
        )
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = reader.next().await {}
    });
    assert!(closed.await.is_ok(), "the stale connection is closed");
    send_whole(&mut new, b"new-2").await;
    assert!(
        eventually(Duration::from_secs(5), || handle.stats().peers[&nodes[1]]
            .bulk
            .messages_received
            == 3)
        .await
    );
    assert_eq!(messages(&mut receiver), [b"new-2".to_vec()]);
    handle.shutdown().await;
}

/// `shutdown` writes what was queued before it closes: 100 bulk messages of 256 KiB queued just
/// before it all arrive, and sends after it are refused.
#[tokio::test]
async fn shutdown_writes_what_was_queued() {
    let nodes = [NodeId::numbered(0), NodeId::numbered(1)];
    let (members, mut listeners) = bind_all(&nodes).await;
    let (receiver_handle, mut receiver) = start(
        config(nodes[1], &members, Security::Insecure),
        listeners.pop().unwrap(),
    );
    let (sender, _sender_rx) = start(
        config(nodes[0], &members, Security::Insecure),
        listeners.pop().unwrap(),
    );
    assert!(wait_connected(&sender, nodes[1]).await);
    for i in 0..100u32 {
        let mut message = vec![0u8; 256 << 10];
        message[..4].copy_from_slice(&i.to_le_bytes());
        sender.send(nodes[1], Lane::Bulk, message).unwrap();
    }
    sender.shutdown().await;
    assert!(matches!(
        sender.send(nodes[1], Lane::Control, vec![0]),
        Err(NetError::ShutDown)
    ));
    let mut got = Vec::new();
    let (done, _) = receive_until(&mut receiver, |inbound| {
        if let Inbound::Message { bytes, .. } = inbound {
            got.push(u32::from_le_bytes(bytes[..4].try_into().unwrap()));
        }
        got.len() == 100
    })
    .await;
    assert!(done, "{} of 100 arrived", got.len());
    assert_eq!(got, (0..100).collect::<Vec<u32>>());
    receiver_handle.shutdown().await;
}

/// Bulk traffic never delays control traffic: with the receiver's bulk channel full (its caller
/// not keeping up) and the bulk connection backed up behind it, control messages still arrive,
/// and `recv` hands them out before the waiting bulk messages.
#[tokio::test]
async fn a_backed_up_bulk_lane_does_not_delay_the_control_lane() {
    let nodes = [NodeId::numbered(0), NodeId::numbered(1)];
    let (members, mut listeners) = bind_all(&nodes).await;
    let mut receiving = config(nodes[1], &members, Security::Insecure);
    receiving.inbound_capacity = 16;
    let (receiver_handle, mut receiver) = start(receiving, listeners.pop().unwrap());
    let (sender, _sender_rx) = start(
        config(nodes[0], &members, Security::Insecure),
        listeners.pop().unwrap(),
    );
    assert!(wait_connected(&sender, nodes[1]).await);
    let bulk = Bytes::from(vec![9u8; 64 << 10]);
    for _ in 0..200 {
        let _ = sender.send(nodes[1], Lane::Bulk, bulk.clone());
    }
    let from_sender = |handle: &crate::TransportHandle| handle.stats().peers[&nodes[0]].clone();
    // The bulk lane is stuck: its channel holds 16 and the reader waits to hand over another.
    assert!(
        eventually(Duration::from_secs(5), || from_sender(&receiver_handle)
            .bulk
            .messages_received
            == 16)
        .await
    );
    for i in 0..10u8 {
        sender.send(nodes[1], Lane::Control, vec![i]).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || from_sender(&receiver_handle)
            .control
            .messages_received
            == 10)
        .await,
        "control messages wait behind bulk ones: {:?}",
        from_sender(&receiver_handle)
    );
    let mut first = Vec::new();
    while first.len() < 10 {
        match receiver.recv().await {
            Some(Inbound::Message { lane, bytes, .. }) => first.push((lane, bytes[0])),
            Some(_) => {}
            None => break,
        }
    }
    let expected: Vec<(Lane, u8)> = (0..10).map(|i| (Lane::Control, i)).collect();
    assert_eq!(first, expected);
    assert_eq!(from_sender(&receiver_handle).bulk.messages_received, 16);
    sender.shutdown().await;
    receiver_handle.shutdown().await;
}
