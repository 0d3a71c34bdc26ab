use std::collections::BTreeMap;

use proptest::prelude::*;
use rhizo_algebra::{AlgebraError, AlgebraicValue, OpType};
use rhizo_clock::{Dot, NodeId, VectorClock};

use crate::testkit::{incr, node, schema};
use crate::wire::{
    decode_message, decode_record, encode_message, encode_record, encoded_message_len,
    encoded_record_len,
};
use crate::*;

mod metadata;
mod net;
mod recovery;

fn cluster(n: u32) -> Vec<Replica> {
    let members: Vec<NodeId> = (0..n).map(node).collect();
    let config = ReplicaConfig {
        members: members.clone(),
        ..ReplicaConfig::default()
    };
    members
        .iter()
        .map(|&id| Replica::new(id, schema(), config.clone()))
        .collect()
}

/// Carries every message between replicas, in order, and lets everyone sync with everyone
/// until all are idle. Returns the number of messages carried.
fn settle(replicas: &mut [Replica]) -> usize {
    let mut discarded = vec![Vec::new(); replicas.len()];
    settle_logged(replicas, &mut discarded)
}

/// [`settle`], appending each replica's records to its log.
fn settle_logged(replicas: &mut [Replica], logs: &mut [Vec<Record>]) -> usize {
    let mut carried = 0;
    for _round in 0..10 {
        let ids: Vec<NodeId> = replicas.iter().map(Replica::id).collect();
        for replica in replicas.iter_mut() {
            for &peer in &ids {
                replica.sync_with(peer);
            }
        }
        carried += carry(replicas, logs);
        if replicas.iter().all(Replica::is_idle) {
            return carried;
        }
    }
    panic!("replicas did not become idle in 10 rounds");
}

/// Gossip as a driver does once writes stop: a replica that is not idle syncs with the members
/// it believes lack something, until every replica is idle. Returns the messages carried.
fn gossip_until_idle(replicas: &mut [Replica]) -> usize {
    let mut discarded = vec![Vec::new(); replicas.len()];
    let mut carried = 0;
    for _round in 0..10 {
        if replicas.iter().all(Replica::is_idle) {
            return carried;
        }
        for replica in replicas.iter_mut().filter(|r| !r.is_idle()) {
            let behind: Vec<NodeId> = replica.peers_behind().collect();
            for peer in behind {
                replica.sync_with(peer);
            }
        }
        carried += carry(replicas, &mut discarded);
    }
    panic!("replicas did not become idle in 10 rounds");
}

/// Carries every message between replicas, answers included, until none is left, appending
/// each replica's records to its log first. Returns the messages carried.
fn carry(replicas: &mut [Replica], logs: &mut [Vec<Record>]) -> usize {
    let mut carried = 0;
    loop {
        let mut in_flight = Vec::new();
        for (r, log) in replicas.iter_mut().zip(logs.iter_mut()) {
            let from = r.id();
            let ready = r.take_ready();
            log.extend(ready.records);
            in_flight.extend(ready.messages.into_iter().map(|(to, m)| (from, to, m)));
        }
        if in_flight.is_empty() {
            return carried;
        }
        for (from, to, message) in in_flight {
            carried += 1;
            let target = replicas.iter_mut().find(|r| r.id() == to).unwrap();
            target.step(from, message).unwrap();
        }
    }
}

/// Idleness follows every change that can make a member lack something or catch up: a local
/// commit, a peer's report, a delta, a member added and removed.
#[test]
fn idleness_follows_commits_reports_deltas_and_members() {
    let mut replicas = cluster(3);
    assert!(!replicas[0].is_idle(), "no member has reported yet");
    settle(&mut replicas);
    assert!(replicas.iter().all(Replica::is_idle));
    replicas[0].commit(incr("a", 1)).unwrap();
    assert!(!replicas[0].is_idle(), "a fresh commit no member holds");
    // Sealed by a sync, the commit still reaches nobody until answered.
    replicas[0].sync_with(node(1));
    assert!(!replicas[0].is_idle());
    settle(&mut replicas);
    assert!(replicas.iter().all(Replica::is_idle));
    // A member that has reported nothing is behind; removing it leaves none behind.
    replicas[0].add_member(node(7));
    assert!(!replicas[0].is_idle());
    replicas[0].remove_member(node(7));
    assert!(replicas[0].is_idle());
    // A delta from one member: the receiver now holds what the third member lacks.
    replicas[1].commit(incr("b", 2)).unwrap();
    replicas[1].sync_with(node(0));
    // The exchange between nodes 0 and 1 alone, carried to its end.
    loop {
        let mut carried = false;
        for (from, to) in [(1, 0), (0, 1)] {
            for (addressee, message) in replicas[from].take_ready().messages {
                assert_eq!(addressee, node(to as u32));
                replicas[to].step(node(from as u32), message).unwrap();
                carried = true;
            }
        }
        if !carried {
            break;
        }
    }
    assert_eq!(
        replicas[0].read("t", "b", "sum").unwrap(),
        AlgebraicValue::Integer(2)
    );
    assert!(
        !replicas[0].is_idle(),
        "node 2 lacks the delta node 0 applied"
    );
    settle(&mut replicas);
    assert!(replicas.iter().all(Replica::is_idle));
}

// ------------------------------------------------------------------ the roadmap's tests

#[test]
fn test_algebraic_tx_can_commit_locally() {
    let protocol = LocalCommitProtocol::new(node(0), schema());
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "r", "sum", 5)
        .max("t", "r", "hi", 9)
        .add_to_set("t", "r", "tags", ["x"]);
    assert!(protocol.can_commit_locally(&tx));
    assert_eq!(protocol.check(&tx), Ok(()));
}

#[test]
fn test_non_algebraic_tx_cannot_commit_locally() {
    let mut protocol = LocalCommitProtocol::new(node(0), schema());
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "r", "sum", 5)
        .put("t", "r", "name", AlgebraicValue::string_set(["bob"]));
    assert!(!protocol.can_commit_locally(&tx));
    let err = protocol.commit_local(tx).unwrap_err();
    assert_eq!(
        err,
        LocalCommitError::RequiresCoordination {
            operations: vec![(CellKey::new("t", "r", "name"), OpType::GenericOverwrite)]
        }
    );
    assert!(
        protocol.clock().is_empty(),
        "a refused commit must not tick the clock"
    );
}

#[test]
fn test_merge_two_local_commits() {
    let mut a = LocalCommitProtocol::new(node(0), schema());
    let mut b = LocalCommitProtocol::new(node(1), schema());
    let ua = a.commit_local(incr("r", 3)).unwrap();
    let ub = b.commit_local(incr("r", 4)).unwrap();
    assert!(ua.clock.concurrent(&ub.clock));
    let merged = a.merge_updates(&ua, &ub).unwrap();
    assert_eq!(
        merged.get(&CellKey::new("t", "r", "sum")).unwrap().unwrap(),
        AlgebraicValue::Integer(7)
    );
    assert_eq!(
        merged.clock(),
        &VectorClock::new()
            .with_node(node(0), 1)
            .with_node(node(1), 1)
    );
}

#[test]
fn test_merge_is_commutative() {
    let mut a = LocalCommitProtocol::new(node(0), schema());
    let mut b = LocalCommitProtocol::new(node(1), schema());
    let mut fa = AlgebraicTransaction::new();
    fa.increment("t", "r", "fsum", 1e16)
        .min("t", "r", "lo", -0.0);
    let mut fb = AlgebraicTransaction::new();
    fb.increment("t", "r", "fsum", 1.0).min("t", "r", "lo", 0.0);
    let ua = a.commit_local(fa).unwrap();
    let ub = b.commit_local(fb).unwrap();
    let ab = a.merge_updates(&ua, &ub).unwrap();
    let ba = a.merge_updates(&ub, &ua).unwrap();
    assert_eq!(
        postcard::to_allocvec(&ab).unwrap(),
        postcard::to_allocvec(&ba).unwrap()
    );
}

#[test]
fn test_merge_is_associative() {
    let mut ps: Vec<LocalCommitProtocol> = (0..3)
        .map(|i| LocalCommitProtocol::new(node(i), schema()))
        .collect();
    let updates: Vec<VersionedUpdate> = ps
        .iter_mut()
        .zip([1e16, 1.0, -1e16])
        .map(|(p, x)| {
            let mut tx = AlgebraicTransaction::new();
            tx.increment("t", "r", "fsum", x);
            p.commit_local(tx).unwrap()
        })
        .collect();
    // (a ∪ b) ∪ c and a ∪ (b ∪ c), through every order of presentation.
    let reference = postcard::to_allocvec(&ps[0].merge_all(&updates).unwrap()).unwrap();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let shuffled: Vec<&VersionedUpdate> = order.iter().map(|&i| &updates[i]).collect();
        let merged = ps[0].merge_all(shuffled).unwrap();
        assert_eq!(postcard::to_allocvec(&merged).unwrap(), reference);
    }
}

#[test]
fn take_ready_into_hands_out_what_take_ready_would() {
    let mut by_value = cluster(2);
    let mut into = by_value.clone();
    let mut kept = Ready::default();
    for round in 0..3 {
        for replicas in [&mut by_value, &mut into] {
            replicas[0].commit(incr("r", round)).unwrap();
            replicas[0].sync_with(node(1));
        }
        into[0].take_ready_into(&mut kept);
        assert_eq!(kept, by_value[0].take_ready());
        assert!(!into[0].has_ready());
        kept.clear();
        assert!(kept.is_empty());
    }
}

// ------------------------------------------------------------------ refusals leave no trace

#[test]
fn a_commit_that_would_take_a_counter_out_of_i64_is_refused_and_changes_nothing() {
    let mut replica = cluster(1).pop().unwrap();
    replica.commit(incr("full", i64::MAX)).unwrap();
    replica.take_ready();
    let before = replica.canonical_state();
    let overflow = |err: LocalCommitError, row: &str| match err {
        LocalCommitError::InvalidOperations { errors } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].0, CellKey::new("t", row, "sum"));
            assert!(matches!(errors[0].1, AlgebraError::Overflow { .. }));
        }
        other => panic!("expected an overflow, got {other:?}"),
    };
    // One cell, already near the top.
    overflow(replica.commit(incr("full", 1)).unwrap_err(), "full");
    // A fresh cell, pushed past the top within the transaction: not even created.
    let mut fresh = incr("fresh", i64::MAX);
    fresh.increment("t", "fresh", "sum", 1);
    overflow(replica.commit(fresh).unwrap_err(), "fresh");
    // Several cells, the overflowing one last: none of them changes.
    let mut several = incr("other", 5);
    several.increment("t", "full", "sum", 1);
    overflow(replica.commit(several).unwrap_err(), "full");
    assert_eq!(replica.canonical_state(), before);
    assert!(!replica.has_ready());
    // Back into range within one transaction is fine: only the result counts.
    let mut there_and_back = incr("full", 1);
    there_and_back.increment("t", "full", "sum", -1);
    replica.commit(there_and_back).unwrap();
}

#[test]
fn refused_transactions_change_nothing() {
    let mut replica = cluster(1).pop().unwrap();
    replica.commit(incr("r", 1)).unwrap();
    replica.take_ready();
    let before = replica.canonical_state();

    assert_eq!(
        replica.commit(AlgebraicTransaction::new()),
        Err(LocalCommitError::EmptyTransaction)
    );

    let mut unknown = incr("r", 1);
    unknown
        .increment("nope", "r", "sum", 1)
        .increment("t", "r", "nope", 1);
    match replica.commit(unknown) {
        Err(LocalCommitError::InvalidOperations { errors }) => {
            assert_eq!(errors.len(), 2);
            assert!(matches!(errors[0].1, AlgebraError::UnknownTable { .. }));
            assert!(matches!(errors[1].1, AlgebraError::UnknownColumn { .. }));
        }
        other => panic!("expected unknown table and column, got {other:?}"),
    }

    let mut nan = incr("r", 1);
    nan.increment("t", "r", "fsum", f64::NAN);
    assert!(matches!(
        replica.commit(nan),
        Err(LocalCommitError::InvalidOperations { errors }) if matches!(errors[0].1, AlgebraError::NonFiniteFloat { .. })
    ));

    let mut wrong_type = incr("r", 1);
    wrong_type.increment("t", "r", "sum", 1.5);
    assert!(matches!(
        replica.commit(wrong_type),
        Err(LocalCommitError::InvalidOperations { errors }) if matches!(errors[0].1, AlgebraError::TypeMismatch { .. })
    ));

    let mut wrong_kind = incr("r", 1);
    wrong_kind.max("t", "r", "sum", 3);
    assert!(matches!(
        replica.commit(wrong_kind),
        Err(LocalCommitError::InvalidOperations { errors }) if matches!(errors[0].1, AlgebraError::OpNotAccepted { .. })
    ));

    let long_row = "x".repeat(MAX_ROW_KEY_LEN + 1);
    assert!(matches!(
        replica.commit(incr(&long_row, 1)),
        Err(LocalCommitError::RowKeyTooLong { .. })
    ));

    // A float sum leaving the finite range fails on apply; the other cell must not change.
    let mut overflow = AlgebraicTransaction::new();
    overflow.increment("t", "r", "fsum", 1.5e308);
    replica.commit(overflow).unwrap();
    replica.take_ready();
    let before_overflow = replica.canonical_state();
    let mut overflow = incr("r", 1);
    overflow.increment("t", "r", "fsum", 1.5e308);
    assert!(replica.commit(overflow).is_err());
    assert_eq!(replica.canonical_state(), before_overflow);
    assert!(!replica.has_ready(), "a refused commit emits nothing");
    assert_ne!(before, before_overflow);

    // The same on a cell the replica does not hold yet, alone or beside another new cell: the
    // refused cell must not be stored, not even empty (stored cells are part of the bytes).
    let mut fresh_overflow = AlgebraicTransaction::new();
    fresh_overflow
        .increment("t", "new", "fsum", 1.5e308)
        .increment("t", "new", "fsum", 1.5e308);
    assert!(replica.commit(fresh_overflow.clone()).is_err());
    assert_eq!(replica.canonical_state(), before_overflow);
    fresh_overflow.increment("t", "other", "sum", 1);
    assert!(replica.commit(fresh_overflow).is_err());
    assert_eq!(replica.canonical_state(), before_overflow);
    assert!(!replica.has_ready(), "a refused commit emits nothing");
}

#[test]
fn reading_an_integer_sum_beyond_i64_is_an_error_on_every_replica() {
    let mut replicas = cluster(2);
    replicas[0].commit(incr("r", i64::MAX)).unwrap();
    replicas[1].commit(incr("r", 1)).unwrap();
    settle(&mut replicas);
    for r in &replicas {
        assert!(matches!(
            r.read("t", "r", "sum"),
            Err(LocalCommitError::Read { source, .. }) if matches!(*source, AlgebraError::Overflow { .. })
        ));
    }
    // Bringing the total back into range makes it readable again, everywhere.
    replicas[1].commit(incr("r", -5)).unwrap();
    settle(&mut replicas);
    for r in &replicas {
        assert_eq!(
            r.read("t", "r", "sum").unwrap(),
            AlgebraicValue::Integer(i64::MAX - 4)
        );
    }
}

// ------------------------------------------------------------------ replica behaviour

#[test]
fn two_replicas_converge_and_messages_carry_keys_not_operations() {
    let mut replicas = cluster(2);
    for i in 0..1000 {
        replicas[0].commit(incr("hot", 1)).unwrap();
        replicas[1]
            .commit(incr(if i % 2 == 0 { "hot" } else { "cold" }, 2))
            .unwrap();
    }
    replicas[0].sync_with(node(1));
    let ready = replicas[0].take_ready();
    assert_eq!(ready.records.len(), 1000, "one record per commit");
    let (_, message) = &ready.messages[0];
    let bytes = encode_message(message).len();
    assert!(bytes < 200, "a first sync is a digest only: {bytes} bytes");
    replicas[1].step(node(0), message.clone()).unwrap();
    let reply = replicas[1].take_ready().messages.pop().unwrap().1;
    let Message::Sync(SyncMessage {
        delta: Some(delta), ..
    }) = &reply
    else {
        panic!("reply holds a delta")
    };
    assert_eq!(
        delta.cells.len(),
        2,
        "1000 commits on two keys travel as two cells"
    );
    replicas[0].step(node(1), reply).unwrap();
    settle(&mut replicas);
    assert_eq!(replicas[0].canonical_state(), replicas[1].canonical_state());
    assert_eq!(
        replicas[0].read("t", "hot", "sum").unwrap(),
        AlgebraicValue::Integer(1000 + 1000)
    );
    assert_eq!(
        replicas[0].read("t", "cold", "sum").unwrap(),
        AlgebraicValue::Integer(1000)
    );
}

#[test]
fn duplicated_and_reordered_deltas_take_effect_once() {
    let mut replicas = cluster(2);
    replicas[0].commit(incr("r", 5)).unwrap();
    replicas[1].sync_with(node(0));
    let request = replicas[1].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(1), request.clone()).unwrap();
    let reply = replicas[0].take_ready().messages.pop().unwrap().1;
    for _ in 0..3 {
        replicas[1].step(node(0), reply.clone()).unwrap();
    }
    assert_eq!(
        replicas[1].read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(5)
    );
    assert_eq!(replicas[1].stats().deltas_applied, 1);
    assert_eq!(replicas[1].stats().deltas_redundant, 2);
}

/// The index files a cell once per update that touched it; a delta still names each cell once
/// per origin.
#[test]
fn a_cell_touched_by_several_updates_is_named_once_per_origin() {
    let mut replicas = cluster(3);
    for keys in [&["x"][..], &["x", "y"], &["y", "x"]] {
        for key in keys {
            replicas[0].commit(incr(key, 1)).unwrap();
        }
        // Each sync seals the cells touched since the last one into the index.
        replicas[0].sync_with(node(1));
        replicas[0].take_ready();
    }
    assert_eq!(replicas[0].indexed_ranges(), 5, "x three times, y twice");
    replicas[2].sync_with(node(0));
    let request = replicas[2].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(2), request).unwrap();
    let reply = replicas[0].take_ready().messages.pop().unwrap().1;
    let Message::Sync(SyncMessage {
        delta: Some(delta), ..
    }) = &reply
    else {
        panic!("reply holds a delta")
    };
    assert!(!delta.snapshot);
    assert_eq!(delta.cells.len(), 2);
    let origins: Vec<(NodeId, u64, Vec<u32>)> = delta
        .origins
        .iter()
        .map(|r| (r.origin, r.hi, r.cells.clone()))
        .collect();
    assert_eq!(origins, [(node(0), 5, vec![0, 1])]);
    replicas[2].step(node(0), reply).unwrap();
    assert_eq!(
        replicas[2].read("t", "x", "sum").unwrap(),
        AlgebraicValue::Integer(3)
    );
}

#[test]
fn an_early_delta_waits_for_its_base() {
    let mut replicas = cluster(3);
    // n0 commits; n1 learns it; n1 commits on top. n2 then gets n1's delta relative to a base
    // that includes n0's commit, which n2 lacks: it must wait, then apply once n0's arrives.
    replicas[0].commit(incr("r", 1)).unwrap();
    replicas[1].sync_with(node(0));
    let req = replicas[1].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(1), req).unwrap();
    let reply = replicas[0].take_ready().messages.pop().unwrap().1;
    replicas[1].step(node(0), reply).unwrap();
    replicas[1].commit(incr("r", 10)).unwrap();
    replicas[1].take_ready();

    let base = VectorClock::new().with_node(node(0), 1);
    // n1 pushes to n2 believing (from a digest) that n2 holds n0's commit; it does not.
    replicas[1]
        .step(
            node(2),
            Message::Sync(SyncMessage {
                clock: base,
                delta: None,
                reply_wanted: true,
            }),
        )
        .unwrap();
    let (to, pushed) = replicas[1].take_ready().messages.pop().unwrap();
    assert_eq!(to, node(2));
    replicas[2].step(node(1), pushed).unwrap();
    assert_eq!(
        replicas[2].buffered(),
        1,
        "n1's delta needs n0's commit first"
    );
    assert_eq!(
        replicas[2].read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(0),
        "nothing visible early"
    );
    replicas[2].take_ready();
    replicas[2].sync_with(node(0));
    let req = replicas[2].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(2), req).unwrap();
    let reply = replicas[0].take_ready().messages.pop().unwrap().1;
    replicas[2].step(node(0), reply).unwrap();
    assert_eq!(replicas[2].buffered(), 0);
    assert_eq!(
        replicas[2].read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(11)
    );
}

#[test]
fn observed_remove_deletes_only_what_it_saw() {
    let mut replicas = cluster(2);
    let mut add = AlgebraicTransaction::new();
    add.add_to_set("t", "u", "tags", ["premium"]);
    replicas[0].commit(add.clone()).unwrap();
    settle(&mut replicas);
    // n1 removes the tag it saw while n0 concurrently adds it again: the new add wins.
    let mut remove = AlgebraicTransaction::new();
    remove.remove_from_set("t", "u", "tags", ["premium"]);
    replicas[1].commit(remove).unwrap();
    replicas[0].commit(add).unwrap();
    settle(&mut replicas);
    for r in &replicas {
        assert_eq!(
            r.read("t", "u", "tags").unwrap(),
            AlgebraicValue::string_set(["premium"])
        );
    }
    // A remove that observed both adds deletes the element everywhere, and GC later drops
    // the tombstones once both replicas have seen the remove.
    let mut remove = AlgebraicTransaction::new();
    remove.remove_from_set("t", "u", "tags", ["premium"]);
    replicas[1].commit(remove).unwrap();
    settle(&mut replicas);
    settle(&mut replicas);
    for r in &replicas {
        assert_eq!(
            r.read("t", "u", "tags").unwrap(),
            AlgebraicValue::string_set(Vec::<String>::new())
        );
        assert_eq!(r.tombstones(), 0, "stable tombstones are collected");
        assert_eq!(r.indexed_ranges(), 0, "stable index ranges are collected");
    }
    assert_eq!(replicas[0].canonical_state(), replicas[1].canonical_state());
}

#[test]
fn garbage_collection_waits_for_every_member_and_a_late_member_gets_a_snapshot() {
    let mut replicas = cluster(2);
    for i in 0..10 {
        replicas[i % 2].commit(incr("r", 1)).unwrap();
    }
    settle(&mut replicas);
    settle(&mut replicas);
    assert_eq!(replicas[0].indexed_ranges(), 0);
    // A third member joins late: it is behind the trimmed index, so it gets everything at once.
    let joiner_id = node(2);
    for r in replicas.iter_mut() {
        r.add_member(joiner_id);
    }
    let members = vec![node(0), node(1), joiner_id];
    let config = ReplicaConfig {
        members,
        ..ReplicaConfig::default()
    };
    replicas.push(Replica::new(joiner_id, schema(), config));
    replicas[0].commit(incr("r", 1)).unwrap();
    settle(&mut replicas);
    assert_eq!(
        replicas[2].read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(11)
    );
    assert!(replicas.iter().any(|r| r.stats().snapshots_sent > 0));
    assert_eq!(replicas[0].canonical_state(), replicas[2].canonical_state());
    // Removing the member lets GC proceed without it.
    replicas.pop();
    for r in replicas.iter_mut() {
        r.remove_member(joiner_id);
    }
    replicas[1].commit(incr("r", 1)).unwrap();
    settle(&mut replicas);
    settle(&mut replicas);
    assert_eq!(replicas[0].indexed_ranges(), 0);
}

#[test]
fn a_delta_that_does_not_fit_the_schema_is_refused_whole() {
    let mut replicas = cluster(2);
    let mut tx = incr("r", 1);
    tx.add_to_set("t", "r", "tags", ["a"]);
    replicas[0].commit(tx).unwrap();
    replicas[1].sync_with(node(0));
    let req = replicas[1].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(1), req).unwrap();
    let Message::Sync(mut reply) = replicas[0].take_ready().messages.pop().unwrap().1;
    // Swap the two cells' states: each now disagrees with its column.
    let delta = reply.delta.as_mut().unwrap();
    let cells: Vec<_> = std::mem::take(&mut delta.cells).into_cells().collect();
    let [(first, a), (second, b)] = <[_; 2]>::try_from(cells).expect("two cells");
    delta.cells = [(first, b), (second, a)].into_iter().collect();
    let before = replicas[1].canonical_state();
    let err = replicas[1].step(node(0), Message::Sync(reply)).unwrap_err();
    assert!(
        matches!(err, LocalCommitError::RemoteStateRejected { .. }),
        "{err:?}"
    );
    assert_eq!(replicas[1].canonical_state(), before);
    // Still usable.
    settle(&mut replicas);
    assert_eq!(
        replicas[1].read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(1)
    );
}

#[test]
fn recovery_rebuilds_the_replica_and_never_reuses_a_dot() {
    let mut replicas = cluster(2);
    let config = ReplicaConfig {
        members: vec![node(0), node(1)],
        snapshot_every: 7,
        ..ReplicaConfig::default()
    };
    replicas[0] = Replica::new(node(0), schema(), config.clone());
    let mut logs: Vec<Vec<Record>> = vec![Vec::new(), Vec::new()];
    for i in 0..20 {
        let mut tx = incr("r", i);
        tx.add_to_set("t", "r", "tags", [format!("t{i}")]);
        replicas[0].commit(tx).unwrap();
        replicas[1].commit(incr("s", 1)).unwrap();
        if i % 5 == 0 {
            settle_logged(&mut replicas, &mut logs);
        }
    }
    settle_logged(&mut replicas, &mut logs);
    let log = logs[0].clone();
    // Keep only what the last snapshot supersedes nothing of, as a log compactor would.
    let last_snapshot = log
        .iter()
        .rposition(|r| matches!(r, Record::Snapshot(_)))
        .unwrap();
    let compacted: Vec<Record> = log[last_snapshot..].to_vec();
    for records in [log.clone(), compacted] {
        let bytes: Vec<Vec<u8>> = records.iter().map(encode_record).collect();
        let decoded = bytes.iter().map(|b| decode_record(b).unwrap());
        let mut recovered = Replica::recover(node(0), schema(), config.clone(), decoded).unwrap();
        assert_eq!(recovered.canonical_state(), replicas[0].canonical_state());
        let receipt = recovered.commit(incr("r", 1)).unwrap();
        assert_eq!(
            receipt.dot,
            Dot::new(node(0), 21).unwrap(),
            "the next dot follows the last durable one"
        );
    }
    // A commit record holds no clock: one whose dot does not follow the replica's last own
    // event (an earlier commit record is missing) is refused where it stands.
    let gap = log
        .windows(2)
        .position(|w| matches!(w, [Record::Commit(_), Record::Commit(_)]))
        .expect("two commits recorded back to back");
    let mut holed = log.clone();
    holed.remove(gap);
    let err = Replica::recover(node(0), schema(), config.clone(), holed).unwrap_err();
    assert!(
        matches!(err, LocalCommitError::Recovery { index, .. } if index == gap),
        "{err:?}"
    );
    // Records of another node are refused.
    let err = Replica::recover(node(1), schema(), config, log).unwrap_err();
    assert!(
        matches!(err, LocalCommitError::Recovery { index: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn decoding_rejects_other_versions_and_trailing_bytes() {
    let message = Message::Sync(SyncMessage {
        clock: VectorClock::new(),
        delta: None,
        reply_wanted: true,
    });
    let mut bytes = encode_message(&message);
    assert_eq!(decode_message(&bytes).unwrap(), message);
    assert_eq!(crate::wire::encoded_message_len(&message), bytes.len());
    bytes.push(0);
    assert!(matches!(
        decode_message(&bytes),
        Err(LocalCommitError::Decode { .. })
    ));
    let version = crate::wire::FORMAT_VERSION;
    assert!(version < 0x80, "the version is one varint byte");
    for other in [version - 1, version + 1] {
        let mut bytes = encode_message(&message);
        bytes[0] = other as u8;
        assert_eq!(
            decode_message(&bytes),
            Err(LocalCommitError::UnsupportedFormat {
                found: other,
                supported: version
            })
        );
    }
    // A length prefix promising 2^32 cells with nothing behind it fails cleanly.
    let huge = [
        version as u8,
        0,
        0,
        1,
        0,
        0,
        0,
        0xff,
        0xff,
        0xff,
        0xff,
        0x0f,
    ];
    assert!(matches!(
        decode_message(&huge),
        Err(LocalCommitError::Decode { .. })
    ));
}

// ------------------------------------------------------------------ property tests

#[derive(Debug, Clone)]
enum Action {
    Commit {
        node: usize,
        ops: Vec<(u8, u8, i64)>,
    },
    Sync {
        node: usize,
        peer: usize,
    },
    Deliver {
        pick: usize,
    },
    Duplicate {
        pick: usize,
    },
    Drop {
        pick: usize,
    },
    Restart {
        node: usize,
    },
}

fn arb_action(nodes: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..nodes, prop::collection::vec((0u8..6, 0u8..3, -50i64..50), 1..4))
            .prop_map(|(node, ops)| Action::Commit { node, ops }),
        3 => (0..nodes, 0..nodes).prop_map(|(node, peer)| Action::Sync { node, peer }),
        5 => any::<usize>().prop_map(|pick| Action::Deliver { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Duplicate { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Drop { pick }),
        1 => (0..nodes).prop_map(|node| Action::Restart { node }),
    ]
}

fn build_tx(ops: &[(u8, u8, i64)]) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    for &(kind, row, x) in ops {
        let row = format!("r{row}");
        match kind {
            // A paired write: the atomic-visibility invariant is pair.a == pair.b.
            0 => tx
                .increment("t", "pair", "sum", x)
                .increment("t", "pair2", "sum", x),
            1 => tx.increment(
                "t",
                &row,
                "fsum",
                [1e16, 1.0, -1e16, 0.1, -0.0][x.unsigned_abs() as usize % 5],
            ),
            2 => tx.max("t", &row, "hi", x),
            3 => tx.add_to_set("t", &row, "tags", [format!("e{}", x.rem_euclid(4))]),
            4 => tx.remove_from_set("t", &row, "tags", [format!("e{}", x.rem_euclid(4))]),
            _ => tx.union("t", &row, "seen", AlgebraicValue::int_set([x])),
        };
    }
    tx
}

fn assert_pair_atomic(r: &Replica) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        r.read("t", "pair", "sum").unwrap(),
        r.read("t", "pair2", "sum").unwrap(),
        "fractured read on {}",
        r.id()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random transactions on 2–7 replicas, delivered in random order with duplicates, drops
    /// and restarts from durable records; then anti-entropy alone must bring every replica to
    /// the same bytes, equal to the sequential oracle of every acknowledged commit. Every
    /// delivered message and every replayed record goes through the wire format (deltas with
    /// their column dictionary) and must come back equal.
    #[test]
    fn prop_random_delivery_converges_to_the_oracle(
        nodes in 2usize..8,
        actions in prop::collection::vec(arb_action(7), 1..120),
    ) {
        let mut replicas = cluster(nodes as u32);
        let mut logs: Vec<Vec<Record>> = vec![Vec::new(); nodes];
        let mut acknowledged: Vec<VersionedUpdate> = Vec::new();
        let mut in_flight: Vec<(NodeId, NodeId, Message)> = Vec::new();
        for action in actions {
            match action {
                Action::Commit { node, ops } => {
                    let _ = replicas[node % nodes].commit(build_tx(&ops));
                }
                Action::Sync { node, peer } => replicas[node % nodes].sync_with(node_id(peer % nodes)),
                Action::Deliver { pick } | Action::Duplicate { pick } | Action::Drop { pick } if in_flight.is_empty() => {
                    let _ = pick;
                }
                Action::Deliver { pick } => {
                    let (from, to, message) = in_flight.remove(pick % in_flight.len());
                    let target = to.to_string()[1..].parse::<usize>().unwrap();
                    // Delivered as a peer receives it: encoded, then decoded from the bytes.
                    let decoded = decode_message(&encode_message(&message)).unwrap();
                    prop_assert_eq!(&decoded, &message);
                    // Every other delivery hands over the message itself, as a simulated
                    // network does: its delta keeps the encoding its count made, and the
                    // receiver's record is written from those bytes.
                    let received = if pick % 2 == 0 { decoded } else { message };
                    replicas[target].step(from, received).unwrap();
                }
                Action::Duplicate { pick } => {
                    let copy = in_flight[pick % in_flight.len()].clone();
                    in_flight.push(copy);
                }
                Action::Drop { pick } => {
                    in_flight.remove(pick % in_flight.len());
                }
                Action::Restart { node } => {
                    let node = node % nodes;
                    let before = replicas[node].canonical_state();
                    let config = ReplicaConfig { members: (0..nodes as u32).map(NodeId::numbered).collect(), ..ReplicaConfig::default() };
                    // Recovered from the log's bytes, as a restarted node reads them.
                    let log: Vec<Record> = logs[node].iter().map(|r| decode_record(&encode_record(r)).unwrap()).collect();
                    prop_assert_eq!(&log, &logs[node]);
                    replicas[node] = Replica::recover(node_id(node), schema(), config, log).unwrap();
                    prop_assert_eq!(replicas[node].canonical_state(), before, "recovery changed the state");
                }
            }
            // The driver's duty: make records durable, then send messages, then acknowledge.
            for (i, r) in replicas.iter_mut().enumerate() {
                let ready = r.take_ready();
                for record in &ready.records {
                    if let Record::Commit(update) = record {
                        // Taken straight after the commit: the clock is the commit's.
                        acknowledged.push(update.clone().into_update(r.clock().clone()));
                    }
                }
                for record in &ready.records {
                    // A delta applied may carry the encoding its sender's count kept (below):
                    // its record is then written from those bytes, and must be the same.
                    let bytes = encode_record(record);
                    prop_assert_eq!(encoded_record_len(record), bytes.len());
                    prop_assert_eq!(&decode_record(&bytes).expect("decodes"), record);
                }
                logs[i].extend(ready.records);
                for (_, message) in &ready.messages {
                    prop_assert_eq!(encoded_message_len(message), encode_message(message).len());
                    prop_assert_eq!(
                        crate::wire::encoded_message_len_keeping(message),
                        encode_message(message).len()
                    );
                }
                let from = r.id();
                in_flight.extend(ready.messages.into_iter().map(|(to, m)| (from, to, m)));
                assert_pair_atomic(r)?;
            }
            // Comparing canonical states without encoding them gives the bytes' answer, equal
            // or not, at every step.
            let reference = replicas[0].canonical_state();
            for r in &replicas[1..] {
                let same_bytes = r.canonical_state() == reference;
                prop_assert_eq!(replicas[0].same_canonical_state(r), same_bytes);
                prop_assert_eq!(r.same_canonical_state(&replicas[0]), same_bytes);
            }
        }
        // Writes stop: quiet gossip alone brings every replica to the same bytes and completes
        // garbage collection (every member has seen everything, so nothing is kept for it).
        let _ = carry(&mut replicas, &mut logs);
        gossip_until_idle(&mut replicas);
        let reference = replicas[0].canonical_state();
        for r in &replicas {
            prop_assert_eq!(r.tombstones(), 0, "tombstones on {}", r.id());
            prop_assert_eq!(r.indexed_ranges(), 0, "index entries on {}", r.id());
            prop_assert_eq!(r.stable_clock(), r.clock(), "stable point of {}", r.id());
            prop_assert_eq!(&r.canonical_state(), &reference, "replica {} differs", r.id());
            prop_assert!(replicas[0].same_canonical_state(r));
            assert_pair_atomic(r)?;
        }
        let oracle = LocalCommitProtocol::new(node(0), schema()).merge_all(&acknowledged).unwrap();
        let values = replicas[0].values();
        prop_assert_eq!(values.len(), oracle.len());
        for (key, _) in oracle.cells() {
            let expected = oracle.get(key).unwrap().map_err(|e| e.to_string());
            let actual = values[key].clone().map_err(|e| e.to_string());
            prop_assert_eq!(actual, expected, "cell {}", key);
        }
        prop_assert_eq!(replicas[0].clock(), oracle.clock());
    }

    /// Random bytes never panic the decoder.
    #[test]
    fn prop_decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_message(&bytes);
        let _ = decode_record(&bytes);
    }
}

fn node_id(i: usize) -> NodeId {
    NodeId::numbered(i as u32)
}

fn valid_messages() -> Vec<Vec<u8>> {
    let mut replicas = cluster(2);
    let mut tx = build_tx(&[(0, 0, 3), (1, 1, 1), (2, 2, 7), (3, 0, 1), (5, 1, 2)]);
    tx.min("t", "r", "lo", 2.5);
    replicas[0].commit(tx).unwrap();
    replicas[1].sync_with(node(0));
    let req = replicas[1].take_ready().messages.pop().unwrap().1;
    replicas[0].step(node(1), req.clone()).unwrap();
    let reply = replicas[0].take_ready().messages.pop().unwrap().1;
    let records: Vec<Vec<u8>> = replicas[0]
        .take_ready()
        .records
        .iter()
        .map(encode_record)
        .collect();
    let mut out = vec![encode_message(&req), encode_message(&reply)];
    out.extend(records);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Mutated valid messages never panic the decoder, and a mutated message that still decodes
    /// is either applied or refused with an error — never a panic.
    #[test]
    fn prop_decoding_mutated_bytes_never_panics(
        which in 0usize..3,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let corpus = valid_messages();
        let mut bytes = corpus[which % corpus.len()].clone();
        for (pos, byte) in flips {
            let len = bytes.len();
            bytes[pos % len] = byte;
        }
        if let Ok(message) = decode_message(&bytes) {
            // Whatever values decoding produced, sizing agrees with encoding.
            prop_assert_eq!(encoded_message_len(&message), encode_message(&message).len());
            let mut replica = cluster(2).remove(1);
            let _ = replica.step(node(0), message);
        }
        if let Ok(record) = decode_record(&bytes) {
            prop_assert_eq!(encoded_record_len(&record), encode_record(&record).len());
        }
    }
}

#[test]
fn values_are_in_key_order() {
    let mut replica = cluster(1).pop().unwrap();
    for row in ["b", "a", "c"] {
        replica.commit(incr(row, 1)).unwrap();
    }
    let keys: Vec<String> = replica
        .values()
        .keys()
        .map(|k| k.row().to_string())
        .collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let _: BTreeMap<_, _> = replica.values();
}

// ------------------------------------------------------------------ the consensus path

fn string(value: &str) -> AlgebraicValue {
    AlgebraicValue::string_set([value])
}

#[test]
fn ordered_updates_apply_in_log_order_and_mix_with_local_adds() {
    let mut replicas = cluster(2);
    // A mixed transaction: an ADD and a register write, ordered by the log at index 3.
    let mut mixed = AlgebraicTransaction::new();
    mixed
        .increment("t", "r", "sum", 10)
        .put("t", "r", "name", string("ann"));
    let update = replicas[0].prepare_ordered(mixed).unwrap();
    // Coordination-free ADDs on the same counter, concurrently, on both replicas.
    replicas[0].commit(incr("r", 1)).unwrap();
    replicas[1].commit(incr("r", 2)).unwrap();
    let dot = Dot::new(consensus_origin(), 3).unwrap();
    assert_eq!(
        replicas[0].apply_ordered(3, &update).unwrap(),
        OrderedOutcome::Applied(dot)
    );
    // n1 hears of the entry by anti-entropy before its own log catches up...
    settle(&mut replicas);
    assert_eq!(
        replicas[1].apply_ordered(3, &update).unwrap(),
        OrderedOutcome::AlreadyApplied
    );
    for r in &replicas {
        assert_eq!(
            r.read("t", "r", "sum").unwrap(),
            AlgebraicValue::Integer(13),
            "counted once"
        );
        assert_eq!(r.read("t", "r", "name").unwrap(), string("ann"));
    }
    // A compare-and-set whose condition fails is refused the same way everywhere, no effect.
    let mut cas = AlgebraicTransaction::new();
    cas.increment("t", "r", "sum", 100).compare_and_set(
        "t",
        "r",
        "name",
        string("bob"),
        string("cy"),
    );
    let cas = replicas[1].prepare_ordered(cas).unwrap();
    for r in replicas.iter_mut() {
        assert!(matches!(
            r.apply_ordered(5, &cas).unwrap(),
            OrderedOutcome::Refused(_)
        ));
        assert_eq!(
            r.read("t", "r", "sum").unwrap(),
            AlgebraicValue::Integer(13)
        );
        assert_eq!(
            r.clock().get(consensus_origin()),
            5,
            "the log position is consumed"
        );
    }
    let mut cas = AlgebraicTransaction::new();
    cas.compare_and_set("t", "r", "name", string("ann"), string("cy"));
    let cas = replicas[1].prepare_ordered(cas).unwrap();
    for r in replicas.iter_mut() {
        assert!(matches!(
            r.apply_ordered(6, &cas).unwrap(),
            OrderedOutcome::Applied(_)
        ));
        assert_eq!(r.read("t", "r", "name").unwrap(), string("cy"));
    }
    settle(&mut replicas);
    assert_eq!(replicas[0].canonical_state(), replicas[1].canonical_state());
}

#[test]
fn the_consensus_path_refuses_mixing_kinds_on_a_column() {
    let replica = cluster(1).pop().unwrap();
    // A condition that reads an algebraic column is not invariant-confluent: refused.
    let mut tx = AlgebraicTransaction::new();
    tx.compare_and_set("t", "r", "sum", 1, 2);
    assert!(matches!(
        replica.prepare_ordered(tx),
        Err(LocalCommitError::InvalidOperations { errors }) if matches!(errors[0].1, AlgebraError::OpNotAccepted { .. })
    ));
    // An algebraic column accepts only its merge op, in either mode.
    let mut tx = AlgebraicTransaction::new();
    tx.put("t", "r", "sum", 7);
    assert!(replica.prepare_ordered(tx).is_err());
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "r", "name", 1);
    assert!(replica.prepare_ordered(tx).is_err());
    // And a register never changes without the log.
    let mut replica = replica;
    let mut tx = AlgebraicTransaction::new();
    tx.put("t", "r", "name", string("x"));
    assert!(matches!(
        replica.commit(tx),
        Err(LocalCommitError::RequiresCoordination { .. })
    ));
}

#[test]
fn ordered_records_recover() {
    let mut replica = cluster(1).pop().unwrap();
    let mut log = Vec::new();
    let mut tx = AlgebraicTransaction::new();
    tx.put("t", "r", "name", string("ann"))
        .increment("t", "r", "sum", 4);
    let update = replica.prepare_ordered(tx).unwrap();
    replica.apply_ordered(1, &update).unwrap();
    replica.commit(incr("r", 1)).unwrap();
    log.extend(replica.take_ready().records);
    let recovered = Replica::recover(node(0), schema(), ReplicaConfig::default(), log).unwrap();
    assert_eq!(recovered.canonical_state(), replica.canonical_state());
    assert_eq!(recovered.read("t", "r", "name").unwrap(), string("ann"));
}

/// `receiver` asks `sender` for what it lacks; the answer.
fn request(sender: &mut Replica, receiver: &mut Replica) -> Message {
    receiver.sync_with(sender.id());
    let ask = receiver.take_ready().messages.pop().unwrap().1;
    sender.step(receiver.id(), ask).unwrap();
    sender.take_ready().messages.pop().unwrap().1
}

/// A cell first seen in a delta takes the incoming state (adopted, moved out of the delta when
/// the delta is not recorded). Whether the receiver records the delta or not, and whether it
/// already held the cells or not, the states it ends with are the sender's, byte for byte.
#[test]
fn new_cells_adopt_the_incoming_state_whether_or_not_the_delta_is_recorded() {
    let (a, b) = (node(0), node(1));
    let config = |emit_records| ReplicaConfig {
        members: vec![a, b],
        emit_records,
        ..ReplicaConfig::default()
    };
    let mut sender = Replica::new(a, schema(), config(true));
    for i in 0..20 {
        let row = format!("r{i}");
        let mut tx = AlgebraicTransaction::new();
        tx.increment("t", &row, "sum", i)
            .increment("t", &row, "fsum", 0.5 * i as f64)
            .max("t", &row, "hi", i)
            .min("t", &row, "lo", -(i as f64))
            .add_to_set("t", &row, "tags", [format!("x{i}"), "y".to_owned()])
            .union("t", &row, "seen", AlgebraicValue::int_set([i, i + 1]));
        sender.commit(tx).unwrap();
    }
    let mut tx = AlgebraicTransaction::new();
    tx.remove_from_set("t", "r3", "tags", ["y".to_owned()]);
    sender.commit(tx).unwrap();
    // A receiver that already holds some of the cells, from an earlier commit of its own.
    let mut holder = Replica::new(b, schema(), config(true));
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "r0", "sum", 7).max("t", "r5", "hi", 100);
    holder.commit(tx).unwrap();
    let receivers = [
        Replica::new(b, schema(), config(true)),
        Replica::new(b, schema(), config(false)),
    ];
    for mut receiver in receivers {
        let reply = request(&mut sender, &mut receiver);
        receiver.step(a, reply).unwrap();
        assert_eq!(receiver.canonical_state(), sender.canonical_state());
    }
    // Into cells it already holds, the delta merges; the reply asked for the holder's own
    // commit, and the holder's answer carries it, so both end with the same bytes.
    let reply = request(&mut sender, &mut holder);
    holder.step(a, reply).unwrap();
    let answer = holder.take_ready().messages.pop().unwrap().1;
    sender.step(b, answer).unwrap();
    assert!(
        sender.take_ready().messages.is_empty(),
        "an exchange ends there"
    );
    assert_eq!(holder.canonical_state(), sender.canonical_state());
    assert_eq!(
        holder.read("t", "r5", "hi").unwrap(),
        AlgebraicValue::Integer(100)
    );
    assert_eq!(
        holder.read("t", "r0", "sum").unwrap(),
        AlgebraicValue::Integer(7)
    );
}

/// A log entry validated against a newer schema than a replica holds is not refused there:
/// the replica's consensus clock stays put (the index is not consumed) until it has the schema,
/// and then the entry applies as on every other replica.
#[test]
fn an_ordered_entry_needing_a_newer_schema_waits_instead_of_being_refused() {
    let spec = rhizo_algebra::ColumnSpec::new(
        rhizo_algebra::MergeType::Add,
        rhizo_algebra::ValueType::Integer,
    )
    .unwrap();
    let wider = schema().with_column("t", "extra", spec).unwrap();
    let ahead = Replica::new(node(0), wider.clone(), ReplicaConfig::default());
    let mut behind = Replica::new(node(1), schema(), ReplicaConfig::default());
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "r", "extra", 5);
    let update = ahead.prepare_ordered(tx).unwrap();
    let waits = behind.apply_ordered(1, &update);
    assert!(
        matches!(waits, Err(LocalCommitError::SchemaBehind { .. })),
        "{waits:?}"
    );
    assert_eq!(behind.clock().get(consensus_origin()), 0);
    behind.set_schema(wider);
    let dot = Dot::new(consensus_origin(), 1).unwrap();
    assert_eq!(
        behind.apply_ordered(1, &update).unwrap(),
        OrderedOutcome::Applied(dot)
    );
    assert_eq!(
        behind.read("t", "r", "extra").unwrap(),
        AlgebraicValue::Integer(5)
    );
}

/// The reply a replica that committed `commits` increments, on keys drawn with a stride from
/// 10,000 rows of `counters.value` as the networked bench draws them, sends a peer that has
/// nothing: the wire cost the networked path pays per cell.
fn counter_delta(commits: u64) -> (usize, Delta) {
    let schema = rhizo_algebra::Schema::builder()
        .table("counters")
        .column(
            "value",
            rhizo_algebra::MergeType::Add,
            rhizo_algebra::ValueType::Integer,
        )
        .build()
        .unwrap();
    let config = ReplicaConfig {
        members: vec![node(0), node(1)],
        ..ReplicaConfig::default()
    };
    let mut sender = Replica::new(node(0), schema.clone(), config.clone());
    let mut receiver = Replica::new(node(1), schema, config);
    let mut key = 3_301u64;
    for _ in 0..commits {
        let mut tx = AlgebraicTransaction::new();
        tx.increment("counters", &format!("k{key}"), "value", 1);
        sender.commit(tx).unwrap();
        key = (key + 7_919) % 10_000;
    }
    receiver.sync_with(node(0));
    let digest = receiver.take_ready().messages.pop().unwrap().1;
    sender.step(node(1), digest).unwrap();
    let reply = sender.take_ready().messages.pop().unwrap().1;
    let bytes = encode_message(&reply).len();
    let Message::Sync(SyncMessage {
        delta: Some(delta), ..
    }) = reply
    else {
        panic!("the reply holds a delta")
    };
    (bytes, delta)
}

/// A delta of counters names each table and column once: what a cell costs on the wire is its
/// row key, its one origin entry and its place in the origin's list.
#[test]
fn a_counter_delta_costs_little_more_than_its_rows_per_cell() {
    let (bytes, delta) = counter_delta(2_000);
    let cells = delta.cells.len();
    assert!(cells > 1_500, "{cells} cells");
    let per_cell = bytes as f64 / cells as f64;
    // Full names, whole positions and named origins (format 3) cost 17 more bytes a cell here.
    assert!(per_cell < 14.0, "{per_cell:.2} bytes per cell");
}
