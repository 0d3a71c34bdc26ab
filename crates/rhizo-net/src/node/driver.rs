//! The node's loop: inbound messages, the engine's tick and anti-entropy rounds in, then the
//! engine's messages out and its decided outcomes to their waiters.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rhizo_clock::NodeId;
use rhizo_txn::EngineMessage;
use tokio::time::{MissedTickBehavior, interval};
use tracing::{debug, warn};

use super::Shared;
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
}

/// Syncs with up to `fanout` of the peers this node believes behind, rotating through them
/// round by round so that each is reached.
fn anti_entropy(shared: &Shared, round: usize) {
    let mut engine = shared.engine();
    let behind = engine.peers_behind();
    if behind.is_empty() {
        return;
    }
    let start = round % behind.len();
    for i in 0..shared.config.fanout.min(behind.len()) {
        let peer = behind[(start + i) % behind.len()];
        if let Err(err) = engine.sync_with(peer) {
            warn!(node = %engine.node_id(), %peer, error = %err, "anti-entropy failed");
        }
    }
}

fn handle_events(shared: &Shared, batch: &mut Vec<Inbound>) {
    let mut engine = shared.engine();
    for event in batch.drain(..) {
        match event {
            Inbound::Message { from, bytes, .. } => {
                if let Err(err) = engine.receive_bytes(from, &bytes) {
                    debug!(node = %engine.node_id(), %from, error = %err, "message refused");
                }
            }
            // A peer that came (back) up resyncs by digest: it may have restarted with less.
            Inbound::PeerUp { peer, .. } => {
                if let Err(err) = engine.sync_with(peer) {
                    warn!(node = %engine.node_id(), %peer, error = %err, "resync failed");
                }
            }
            Inbound::PeerDown { peer } => engine.report_unreachable(peer),
        }
    }
}

/// Sends what the engine produced (after making its records durable) and hands decided
/// outcomes to their waiters. Messages are encoded outside the engine lock.
fn send_out(shared: &Shared) {
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
    let mut unreachable: Vec<NodeId> = Vec::new();
    for (to, message) in messages {
        let lane = match message {
            EngineMessage::Raft(_) => Lane::Control,
            EngineMessage::Replica(_) => Lane::Bulk,
        };
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
