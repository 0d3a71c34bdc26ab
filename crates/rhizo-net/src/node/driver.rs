//! The node's loop: inbound messages, the engine's tick and anti-entropy rounds in, then the
//! engine's messages out and its decided outcomes to their waiters.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rhizo_clock::NodeId;
use rhizo_txn::{CoordinationFreeError, EngineMessage, TxnError};
use tokio::time::{MissedTickBehavior, interval};
use tracing::{debug, error, warn};

use super::Shared;
use crate::metrics::Direction;
use crate::{Inbound, InboundReceiver, Lane};

/// Inbound events handled under one hold of the engine lock (then the lock is released so
/// commits get their turn).
const EVENT_BATCH: usize = 256;

/// Runs until the node stops or the transport ends.
pub(crate) async fn run(shared: Arc<Shared>, mut inbound: InboundReceiver) {
    let mut tick = interval(shared.config.tick);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sync = interval(shared.config.sync_interval);
    sync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Without metrics the publishing tick never fires (an hour apart, and its branch is skipped).
    let publishing = shared.metrics.as_ref().map(|m| m.interval);
    let mut publish = interval(publishing.unwrap_or(std::time::Duration::from_secs(3600)));
    publish.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut round = 0usize;
    let mut batch = Vec::with_capacity(EVENT_BATCH);
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        // Biased: the periodic work first, so a flood of inbound messages cannot starve Raft's
        // clock or anti-entropy (the same order on every run, for simulated determinism).
        tokio::select! {
            biased;
            _ = tick.tick() => tick_engine(&shared),
            _ = sync.tick() => {
                anti_entropy(&shared, round);
                round = round.wrapping_add(1);
            }
            _ = publish.tick(), if publishing.is_some() => publish_metrics(&shared),
            () = shared.wake.notified() => {}
            event = inbound.recv() => {
                let Some(event) = event else { break };
                batch.push(event);
                while batch.len() < EVENT_BATCH {
                    match inbound.try_recv() {
                        Some(event) => batch.push(event),
                        None => break,
                    }
                }
                handle_events(&shared, &mut batch);
            }
        }
        send_out(&shared);
    }
    send_out(&shared);
}

fn tick_engine(shared: &Shared) {
    if let Err(err) = shared.engine().tick() {
        warn!(node = %shared.config.engine.node_id, error = %err, "engine tick failed");
    }
    follow_membership(shared);
}

/// Makes the transport's peers the Raft group's members (but this node): a member added by the
/// log is dialled and accepted, a removed one refused and cut off. The log's membership is the
/// same on every member at the same index, so every node changes its peers alike, each as soon
/// as it has applied the change. The membership is published to the transport with its index,
/// so that it tells a removed dialler from an unknown one; and once this node learns its own
/// removal (from its log, or from a peer's refusal) it drops every peer and takes no writes.
fn follow_membership(shared: &Shared) {
    let (applied, wanted): (u64, Vec<(NodeId, String)>) = {
        let engine = shared.engine();
        let Some(raft) = engine.raft() else { return };
        // Read under one hold of the lock: the members *at* the applied index.
        let members = raft.membership().iter();
        let wanted = members.map(|(node, member)| (node, member.address.clone()));
        (raft.applied(), wanted.collect())
    };
    let transport = &shared.transport;
    transport.publish_membership(applied, wanted.iter().map(|(node, _)| *node));
    if shared.removed.get().is_some() {
        return;
    }
    if let Some(by) = transport.removed_by() {
        leave(shared, by);
        return;
    }
    let own = shared.config.engine.node_id;
    let current = transport.peers();
    for (node, address) in &wanted {
        if *node == own || current.contains(node) {
            continue;
        }
        // A member of the static configuration has its address there, not in the log.
        let address = if address.is_empty() {
            shared.config.transport.members.get(node).cloned()
        } else {
            Some(address.clone())
        };
        match address {
            Some(address) => {
                transport.add_peer(*node, &address);
            }
            None => warn!(node = %own, member = %node, "a member without an address"),
        }
    }
    for peer in current {
        if !wanted.iter().any(|(node, _)| *node == peer) {
            transport.remove_peer(peer);
        }
    }
}

/// This node was removed from its cluster (`by` said so): from now on it refuses writes, since
/// no member would take them from it, and it stops dialling members that refuse it anyway. Its
/// state stays readable; the operator stops it.
fn leave(shared: &Shared, by: NodeId) {
    if shared.removed.set(by).is_err() {
        return;
    }
    let own = shared.config.engine.node_id;
    error!(
        node = %own, %by,
        "this node was removed from its cluster: it refuses writes from now on; stop it"
    );
    for peer in shared.transport.peers() {
        shared.transport.remove_peer(peer);
    }
}

/// Syncs with up to `fanout` of the peers this node believes behind, rotating through them
/// round by round so that each is reached.
fn anti_entropy(shared: &Shared, round: usize) {
    if shared.removed.get().is_some() {
        return;
    }
    let mut engine = shared.engine();
    let behind = engine.peers_behind();
    if behind.is_empty() {
        return;
    }
    let start = round % behind.len();
    for i in 0..shared.config.fanout.min(behind.len()) {
        let peer = behind[(start + i) % behind.len()];
        if let Some(metrics) = &shared.metrics {
            metrics.round_started();
        }
        if let Err(err) = engine.sync_with(peer) {
            warn!(node = %engine.node_id(), %peer, error = %err, "anti-entropy failed");
        }
    }
}

/// Copies the node's status into the metrics recorder.
fn publish_metrics(shared: &Shared) {
    if let Some(metrics) = &shared.metrics {
        let status = super::NodeHandle::status_of(shared);
        metrics.publish(&status);
    }
}

/// An inbound event with its message decoded (outside the engine lock).
enum Decoded {
    Message(NodeId, rhizo_txn::Result<EngineMessage>),
    PeerUp(NodeId),
    PeerDown(NodeId),
}

fn handle_events(shared: &Shared, batch: &mut Vec<Inbound>) {
    let started = shared.metrics.as_ref().map(|_| std::time::Instant::now());
    let decoded: Vec<Decoded> = batch
        .drain(..)
        .map(|event| match event {
            Inbound::Message { from, bytes, .. } => {
                let message = EngineMessage::decode(&bytes)
                    .map_err(|e| TxnError::from(CoordinationFreeError::from(e)));
                Decoded::Message(from, message)
            }
            Inbound::PeerUp { peer, .. } => Decoded::PeerUp(peer),
            Inbound::PeerDown { peer } => Decoded::PeerDown(peer),
        })
        .collect();
    let mut engine = shared.engine();
    for event in decoded {
        match event {
            Decoded::Message(from, message) => {
                if let (Some(metrics), Ok(message)) = (&shared.metrics, &message) {
                    metrics.exchanged(Direction::Received, message);
                }
                if let Err(err) = message.and_then(|message| engine.receive(from, message)) {
                    debug!(node = %engine.node_id(), %from, error = %err, "message refused");
                }
            }
            // A peer that came (back) up resyncs by digest: it may have restarted with less.
            Decoded::PeerUp(peer) => {
                if let Err(err) = engine.sync_with(peer) {
                    warn!(node = %engine.node_id(), %peer, error = %err, "resync failed");
                }
            }
            Decoded::PeerDown(peer) => engine.report_unreachable(peer),
        }
    }
    drop(engine);
    if let (Some(metrics), Some(started)) = (&shared.metrics, started) {
        metrics.applied(started.elapsed());
    }
}

/// Sends what the engine produced (after making its records durable) and hands decided
/// outcomes to their waiters. Messages are encoded outside the engine lock.
fn send_out(shared: &Shared) {
    // A leader's appends leave first, so the followers persist them while it syncs its own
    // copy; the lock is released between, so that commits arriving meanwhile join this sync.
    let early = match shared.engine().take_messages_before_sync() {
        Ok(messages) => messages,
        Err(err) => {
            warn!(node = %shared.config.engine.node_id, error = %err, "messages withheld");
            Vec::new()
        }
    };
    send(shared, early);
    let (messages, outcomes) = {
        let mut engine = shared.engine();
        let messages = match engine.take_messages() {
            Ok(messages) => messages,
            Err(err) => {
                warn!(node = %engine.node_id(), error = %err, "messages withheld");
                Vec::new()
            }
        };
        (messages, engine.take_outcomes())
    };
    if !outcomes.is_empty() {
        let mut waiters = shared.waiters();
        for (id, outcome) in outcomes {
            if let Some(waiter) = waiters.remove(&id) {
                waiter.send(outcome);
            }
        }
    }
    send(shared, messages);
}

/// Encodes and sends `messages`; reports peers Raft could not reach.
fn send(shared: &Shared, messages: Vec<(NodeId, EngineMessage)>) {
    let mut unreachable: Vec<NodeId> = Vec::new();
    for (to, message) in messages {
        let lane = match message {
            EngineMessage::Raft(_) => Lane::Control,
            EngineMessage::Replica(_) => Lane::Bulk,
        };
        if let Some(metrics) = &shared.metrics {
            metrics.exchanged(Direction::Sent, &message);
        }
        let sent = shared.transport.send(to, lane, message.encode());
        if let Err(err) = sent
            && lane == Lane::Control
            && err.is_unreachable()
            && !unreachable.contains(&to)
        {
            unreachable.push(to);
        }
    }
    if !unreachable.is_empty() {
        let mut engine = shared.engine();
        for peer in unreachable {
            engine.report_unreachable(peer);
        }
    }
}
