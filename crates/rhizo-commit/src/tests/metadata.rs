//! Metadata that must survive restarts and membership changes: the stale-delta filter after a
//! restart, tombstones collected while a member joins or is away, and garbage collection that
//! completes once writes stop.

use rhizo_algebra::AlgebraicValue;

use super::net::{Net, add, none, remove};
use super::{cluster, gossip_until_idle, incr, node, schema};
use crate::{Replica, ReplicaConfig};

fn members(ids: &[u32]) -> ReplicaConfig {
    ReplicaConfig {
        members: ids.iter().copied().map(node).collect(),
        ..ReplicaConfig::default()
    }
}

/// A replica collects a tombstone, makes that durable (a snapshot), crashes and restarts; a
/// delta sent to it before the crash, still carrying the removed element's add, arrives late.
/// The restarted replica must not take the element back.
#[test]
fn a_restarted_replica_does_not_take_back_a_collected_remove_from_a_late_delta() {
    let config = ReplicaConfig {
        snapshot_every: 1,
        ..ReplicaConfig::default()
    };
    let mut net = Net::uniform(3, config);
    net.commit(0, add("u", "x"));
    net.exchange(2, 0);
    net.commit(2, incr("k", 1));
    // n1 asks n2 for news; n2's answer (x live, and n2's increment) is held in the network.
    net.sync(1, 2);
    net.hop(1, 2);
    let late = net.hold(2, 1);
    net.exchange(1, 0);
    net.commit(0, remove("u", "x"));
    net.exchange(1, 0);
    // n2 learns the remove from n0 (its answer to n0 is lost), then reports its clock to n1
    // (n1's answer is lost): every member has seen the remove, none has n2's increment.
    net.sync(2, 0);
    net.hop(2, 0);
    net.hop(0, 2);
    net.wire.clear();
    net.sync(2, 1);
    net.hop(2, 1);
    net.wire.clear();
    net.exchange(1, 0);
    net.commit(1, incr("j", 1));
    assert_eq!(net.replica(1).tombstones(), 0, "n1 collected the tombstone");
    net.crash(1);
    net.restart(1);
    net.deliver(2, 1, late);
    assert_eq!(net.tags(1, "u"), none(), "the late delta brought x back");
    net.settle(3);
    assert!(net.converged());
    assert_eq!(net.tags(0, "u"), none());
}

/// A member joins while the others disagree about the membership: one that does not count it
/// yet collects a tombstone the newcomer still needs, then hands it its state.
#[test]
fn a_member_joining_while_views_differ_does_not_get_a_removed_element_back() {
    let mut net = Net::new(vec![
        members(&[0, 1]),
        members(&[0, 1]),
        members(&[0, 1, 2]),
    ]);
    net.commit(0, add("k", "x"));
    net.exchange(0, 1);
    // n2 joins: n0 counts it at once, n1 not yet. n2 catches up from n0 and holds x.
    net.replica_mut(0).add_member(node(2));
    net.exchange(2, 0);
    assert_eq!(net.tags(2, "k"), AlgebraicValue::string_set(["x"]));
    // n1 removes x; n0 and n1 exchange until n1, which does not count n2, collects it.
    net.commit(1, remove("k", "x"));
    for _ in 0..3 {
        net.exchange(1, 0);
        net.exchange(0, 1);
    }
    assert_eq!(net.replica(1).tombstones(), 0, "n1 collected the tombstone");
    net.exchange(2, 1);
    net.replica_mut(1).add_member(node(2));
    net.settle(4);
    assert_eq!(
        net.tags(2, "k"),
        none(),
        "the newcomer kept the removed element"
    );
    assert!(net.converged());
}

/// A newcomer takes a whole state from a replica that collected a remove, then receives a
/// delta another member sent it before, still carrying the removed element's add. Its stable
/// point covers nothing yet (it has heard from nobody else), so only joining by clocks keeps
/// the element out: the newcomer's clock covers that add, which it no longer holds.
#[test]
fn a_late_delta_after_a_whole_state_does_not_bring_back_what_it_showed_removed() {
    let mut net = Net::new(vec![
        members(&[0, 1]),
        members(&[0, 1]),
        members(&[0, 1, 2]),
    ]);
    net.commit(0, add("k", "x"));
    net.exchange(0, 1);
    net.replica_mut(0).add_member(node(2));
    net.commit(0, incr("k", 1));
    // n2 asks n0; n0's answer (x live, and n0's increment) is held in the network.
    net.sync(2, 0);
    net.hop(2, 0);
    let late = net.hold(0, 2);
    // n1 removes x and collects it once n0 reports having the remove; n1 never gets n0's
    // increment (n0's answers carrying it are lost).
    net.commit(1, remove("k", "x"));
    net.sync(0, 1);
    net.hop(0, 1);
    net.hop(1, 0);
    net.wire.clear();
    net.sync(0, 1);
    net.hop(0, 1);
    net.wire.clear();
    assert_eq!(net.replica(1).tombstones(), 0, "n1 collected the tombstone");
    net.exchange(2, 1);
    assert_eq!(net.replica(1).stats().snapshots_sent, 1);
    assert!(net.replica(2).stable_clock().is_empty());
    net.deliver(0, 2, late);
    assert_eq!(net.tags(2, "k"), none(), "the late delta brought x back");
    net.replica_mut(1).add_member(node(2));
    net.settle(3);
    assert!(net.converged());
    assert_eq!(net.tags(0, "k"), none());
}

/// A member removed while it is down (so that collection can go on without it), then restarted
/// and re-added by everyone: it held an element the others removed and collected meanwhile.
#[test]
fn a_member_removed_while_down_and_re_added_converges() {
    let mut net = Net::uniform(3, ReplicaConfig::default());
    net.commit(0, add("u", "x"));
    net.settle(2);
    net.crash(2);
    for i in [0, 1] {
        net.replica_mut(i).remove_member(node(2));
    }
    net.commit(0, remove("u", "x"));
    net.settle(3);
    assert_eq!(net.replica(0).tombstones(), 0, "collected without n2");
    net.restart(2);
    assert_eq!(net.tags(2, "u"), AlgebraicValue::string_set(["x"]));
    for i in [0, 1] {
        net.replica_mut(i).add_member(node(2));
    }
    net.settle(4);
    assert_eq!(
        net.tags(2, "u"),
        none(),
        "the re-added member kept the removed element"
    );
    assert!(net.converged());
    net.commit(2, add("u", "y"));
    net.settle(2);
    assert_eq!(net.tags(0, "u"), AlgebraicValue::string_set(["y"]));
    assert!(net.converged());
}

/// A replica that restarts replays its own commits into open cells, outside the index; a
/// membership change then moves its stable point past them (alone among its members, it
/// collects at once) and a peer behind that point asks it for news. The peer must get a whole
/// state, not a delta of the touched cells, which no longer shows the collected remove.
/// (Found by the membership sweep of rhizo-sim, seed 5.)
#[test]
fn a_peer_behind_the_stable_point_of_a_recovered_replica_gets_a_whole_state() {
    let mut net = Net::uniform(2, ReplicaConfig::default());
    net.commit(1, add("u", "x"));
    net.settle(2);
    net.commit(0, remove("u", "x"));
    net.crash(0);
    net.restart(0);
    net.replica_mut(0).remove_member(node(1));
    assert_eq!(
        net.replica(0).tombstones(),
        0,
        "alone, n0 collected the tombstone"
    );
    net.replica_mut(0).add_member(node(1));
    assert_eq!(net.tags(1, "u"), AlgebraicValue::string_set(["x"]));
    net.settle(4);
    assert_eq!(net.tags(1, "u"), none(), "n1 kept the removed element");
    assert!(net.converged());
}

/// A replica with no peers needs nobody's acknowledgement: its tombstones go as soon as it
/// removes, and after a restart too, without any sync.
#[test]
fn a_lone_replica_collects_its_tombstones_without_syncing() {
    let mut net = Net::uniform(1, ReplicaConfig::default());
    for _ in 0..1_000 {
        net.commit(0, add("online", "u1"));
        net.commit(0, remove("online", "u1"));
    }
    assert_eq!(net.tags(0, "online"), none());
    assert_eq!(net.replica(0).tombstones(), 0);
    assert_eq!(net.replica(0).indexed_ranges(), 0);
    net.crash(0);
    net.restart(0);
    assert_eq!(
        net.replica(0).tombstones(),
        0,
        "replayed tombstones are collected"
    );
}

/// Once writes stop, gossip between members that only syncs while one believes another is
/// behind (what a driver does) leaves no tombstone and no index entry on any replica: every
/// replica's stable point reaches its clock without another write.
#[test]
fn a_quiet_cluster_collects_every_tombstone_and_index_entry() {
    let mut replicas = cluster(5);
    for (i, replica) in replicas.iter_mut().enumerate() {
        replica.commit(add("u", &format!("e{i}"))).unwrap();
        replica.commit(incr("k", 1)).unwrap();
    }
    gossip_until_idle(&mut replicas);
    for (i, replica) in replicas.iter_mut().enumerate() {
        replica
            .commit(remove("u", &format!("e{}", (i + 1) % 5)))
            .unwrap();
    }
    gossip_until_idle(&mut replicas);
    for replica in &replicas {
        let id = replica.id();
        assert_eq!(replica.tombstones(), 0, "{id} keeps tombstones");
        assert_eq!(replica.indexed_ranges(), 0, "{id} keeps index entries");
        assert_eq!(
            replica.stable_clock(),
            replica.clock(),
            "{id}'s stable point"
        );
        assert_eq!(replica.canonical_state(), replicas[0].canonical_state());
        assert_eq!(replica.read("t", "u", "tags").unwrap(), none());
    }
}

/// The stable point is part of a replica's durable image: it never moves back over a restart.
#[test]
fn the_stable_point_survives_a_restart() {
    let config = ReplicaConfig {
        snapshot_every: 1,
        ..ReplicaConfig::default()
    };
    let mut net = Net::uniform(2, config);
    net.commit(0, add("u", "x"));
    net.commit(1, remove("u", "x"));
    net.settle(3);
    let stable = net.replica(0).stable_clock().clone();
    assert_eq!(&stable, net.replica(0).clock());
    net.commit(0, incr("k", 1));
    net.crash(0);
    net.restart(0);
    assert!(stable.dominated_by(net.replica(0).stable_clock()));
}

/// 2,000,000 re-adds of one element, then one remove (`adv3/p22_readd.py`, `p23_remove_cost.py`):
/// the replica's durable image is within twice that of a replica that added the element once
/// (it holds one tag, not one per add), and the remove names that one tag.
#[test]
fn two_million_re_adds_then_a_remove_keep_the_state_of_one_add() {
    const READDS: usize = 2_000_000;
    let config = ReplicaConfig {
        members: vec![node(0)],
        emit_records: false,
        ..ReplicaConfig::default()
    };
    let image = |replica: &Replica| {
        crate::wire::encoded_record_len(&crate::Record::Snapshot(Box::new(replica.snapshot())))
    };
    let mut once = Replica::new(node(0), schema(), config.clone());
    once.commit(add("u1", "premium")).unwrap();
    let mut readded = Replica::new(node(0), schema(), config);
    let cell = readded.prepare_cell("t", "u1", "tags").unwrap();
    let mut ready = crate::Ready::default();
    for _ in 0..READDS {
        let mut tx = crate::PreparedTransaction::new();
        tx.add_to_set(&cell, ["premium"]).unwrap();
        readded.commit_prepared(tx).unwrap();
        readded.take_ready_into(&mut ready);
        ready.clear();
    }
    assert!(
        image(&readded) <= 2 * image(&once),
        "{} vs {}",
        image(&readded),
        image(&once)
    );
    let resolved = readded.prepare_ordered(remove("u1", "premium")).unwrap();
    let [effect] = &resolved.effects[..] else {
        panic!("one cell removed from: {:?}", resolved.effects.len());
    };
    let [rhizo_algebra::CellOp::OrRemove(tags)] = &effect.ops[..] else {
        panic!("one remove: {:?}", effect.ops.len());
    };
    assert_eq!(tags.len(), 1, "the remove names one tag");
    readded.commit(remove("u1", "premium")).unwrap();
    once.commit(remove("u1", "premium")).unwrap();
    assert_eq!(readded.read("t", "u1", "tags").unwrap(), none());
    assert!(image(&readded) <= 2 * image(&once));
}
