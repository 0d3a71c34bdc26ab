//! The roadmap's ten manager tests, each meaning what its name says.

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, CellKey, Operations};

use super::*;
use crate::testkit::schema;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn manager(name: &str, members: &[&str]) -> CoordinationFreeManager {
    CoordinationFreeManager::new(
        CoordinationFreeConfig::new(node(name), schema())
            .with_members(members.iter().map(|m| node(m))),
    )
}

fn increment(amount: i64) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "page_views", "value", amount);
    tx
}

/// Carries messages both ways until neither side has anything left to say.
fn exchange(a: &mut CoordinationFreeManager, b: &mut CoordinationFreeManager) {
    for _ in 0..3 {
        // The first contact carries only clocks; the next rounds carry what each lacks.
        a.sync_with(b.node_id());
        b.sync_with(a.node_id());
        for (to, msg) in a.take_ready().messages {
            assert_eq!(to, b.node_id());
            b.receive(a.node_id(), msg).unwrap();
        }
        for (to, msg) in b.take_ready().messages {
            assert_eq!(to, a.node_id());
            a.receive(b.node_id(), msg).unwrap();
        }
    }
}

#[test]
fn test_create_manager() {
    let m = manager("a", &["a", "b"]);
    assert_eq!(m.node_id(), node("a"));
    assert!(m.clock().is_empty());
    assert_eq!(m.update_count(), 0);
    assert_eq!(m.schema(), &schema());
    assert_eq!(
        m.read("counters", "page_views", "value").unwrap(),
        AlgebraicValue::Integer(0)
    );
}

#[test]
fn test_commit_local() {
    let mut m = manager("a", &["a"]);
    let receipt = m.commit_local(increment(1)).unwrap();
    assert_eq!(receipt.dot.node(), node("a"));
    assert_eq!(receipt.dot.counter(), 1);
    // The replica hands out the commit's record and acknowledges its dot.
    let ready = m.take_ready();
    assert_eq!(ready.committed, vec![receipt.dot]);
    assert!(
        matches!(ready.records.as_slice(), [rhizo_commit::Record::Commit(u)] if u.dot == receipt.dot)
    );
}

#[test]
fn test_local_state_updated() {
    let mut m = manager("a", &["a"]);
    let mut tx = increment(5);
    tx.add_to_set("users", "user_123", "tags", ["premium"]);
    m.commit_local(tx).unwrap();
    assert_eq!(
        m.read("counters", "page_views", "value").unwrap(),
        AlgebraicValue::Integer(5)
    );
    assert_eq!(
        m.read("users", "user_123", "tags").unwrap(),
        AlgebraicValue::string_set(["premium"])
    );
}

#[test]
fn test_multiple_commits_accumulate() {
    let mut m = manager("a", &["a"]);
    for amount in [1, 2, 3, 4] {
        m.commit_local(increment(amount)).unwrap();
    }
    assert_eq!(
        m.read("counters", "page_views", "value").unwrap(),
        AlgebraicValue::Integer(10)
    );
}

#[test]
fn test_receive_remote_update() {
    let mut a = manager("a", &["a", "b"]);
    let mut b = manager("b", &["a", "b"]);
    a.commit_local(increment(7)).unwrap();
    exchange(&mut a, &mut b);
    assert_eq!(
        b.read("counters", "page_views", "value").unwrap(),
        AlgebraicValue::Integer(7)
    );
    assert_eq!(b.clock().get(node("a")), 1);
    // b committed nothing itself.
    assert_eq!(b.local_commit_count(), 0);
}

#[test]
fn test_merge_updates() {
    let mut a = manager("a", &["a", "b"]);
    let mut b = manager("b", &["a", "b"]);
    a.commit_local(increment(3)).unwrap();
    let mut tx = increment(4);
    tx.add_to_set("users", "u", "tags", ["x"]);
    b.commit_local(tx).unwrap();
    let mut tx = AlgebraicTransaction::new();
    tx.add_to_set("users", "u", "tags", ["y"]);
    a.commit_local(tx).unwrap();
    exchange(&mut a, &mut b);
    for m in [&a, &b] {
        assert_eq!(
            m.read("counters", "page_views", "value").unwrap(),
            AlgebraicValue::Integer(7)
        );
        assert_eq!(
            m.read("users", "u", "tags").unwrap(),
            AlgebraicValue::string_set(["x", "y"])
        );
    }
    assert_eq!(a.replica().canonical_state(), b.replica().canonical_state());
}

#[test]
fn test_max_operation() {
    let mut a = manager("a", &["a", "b"]);
    let mut b = manager("b", &["a", "b"]);
    for (m, values) in [(&mut a, [3, 42, 7]), (&mut b, [40, 1, 41])] {
        for v in values {
            let mut tx = AlgebraicTransaction::new();
            tx.max("counters", "latency", "peak", v);
            m.commit_local(tx).unwrap();
        }
    }
    assert_eq!(
        a.read("counters", "latency", "peak").unwrap(),
        AlgebraicValue::Integer(42)
    );
    assert_eq!(
        b.read("counters", "latency", "peak").unwrap(),
        AlgebraicValue::Integer(41)
    );
    exchange(&mut a, &mut b);
    assert_eq!(
        b.read("counters", "latency", "peak").unwrap(),
        AlgebraicValue::Integer(42)
    );
}

#[test]
fn test_clock_advances() {
    let mut a = manager("a", &["a", "b"]);
    let mut b = manager("b", &["a", "b"]);
    let first = a.commit_local(increment(1)).unwrap().dot;
    let second = a.commit_local(increment(1)).unwrap().dot;
    assert_eq!((first.counter(), second.counter()), (1, 2));
    assert_eq!(a.clock().get(node("a")), 2);
    b.commit_local(increment(1)).unwrap();
    exchange(&mut a, &mut b);
    // Merging advances the clock by the peer's entry; it does not tick the local one.
    assert_eq!(a.clock().get(node("a")), 2);
    assert_eq!(a.clock().get(node("b")), 1);
    assert_eq!(a.clock(), b.clock());
}

#[test]
fn test_non_algebraic_rejected() {
    let mut m = manager("a", &["a"]);
    m.commit_local(increment(1)).unwrap();
    m.take_ready();
    let before = m.replica().canonical_state();
    let mut tx = increment(100);
    tx.put("users", "u", "email", AlgebraicValue::string_set(["a@b"]));
    let err = m.commit_local(tx).unwrap_err();
    assert_eq!(
        err,
        CoordinationFreeError::NonAlgebraic {
            operations: vec![(
                CellKey::new("users", "u", "email"),
                rhizo_algebra::OpType::GenericOverwrite
            )]
        }
    );
    // No partial effect: the increment beside the put did not happen, nothing to persist.
    assert_eq!(m.replica().canonical_state(), before);
    assert!(m.take_ready().is_empty());
    assert_eq!(
        m.read("counters", "page_views", "value").unwrap(),
        AlgebraicValue::Integer(1)
    );
}

#[test]
fn test_update_count() {
    let mut a = manager("a", &["a", "b"]);
    let mut b = manager("b", &["a", "b"]);
    for _ in 0..3 {
        a.commit_local(increment(1)).unwrap();
    }
    b.commit_local(increment(1)).unwrap();
    assert_eq!((a.update_count(), b.update_count()), (3, 1));
    exchange(&mut a, &mut b);
    assert_eq!((a.update_count(), b.update_count()), (4, 4));
    assert_eq!((a.local_commit_count(), b.local_commit_count()), (3, 1));
    // A refused commit counts nothing.
    assert!(a.commit_local(AlgebraicTransaction::new()).is_err());
    assert_eq!(a.update_count(), 4);
}
