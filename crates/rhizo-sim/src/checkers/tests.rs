//! Each checker must catch the violation it names: histories and clusters below are broken on
//! purpose, one property at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rhizo_algebra::AlgebraicValue;
use rhizo_clock::{Dot, NodeId, VectorClock};
use rhizo_commit::{AlgebraicTransaction, CellKey};

use super::*;
use crate::history::CellRead;
use crate::testkit::incr;
use crate::workload::{self, KeyDistribution, OpMix, PAIR_COLUMN, PAIR_TABLES, Workload};
use crate::{SimTime, SimulationBuilder};
use rhizo_commit::Operations;

fn n(i: u32) -> NodeId {
    NodeId::numbered(i)
}

fn cluster(nodes: usize) -> SimulatedCluster<ReplicaNode> {
    SimulationBuilder::new()
        .nodes(nodes)
        .build_replicas(workload::schema())
        .unwrap()
}

fn key(table: &str, row: &str, column: &str) -> CellKey {
    CellKey::new(table, row, column)
}

fn values(cells: &[(CellKey, i64)]) -> BTreeMap<CellKey, CellRead> {
    cells
        .iter()
        .map(|(k, v)| (k.clone(), Ok(AlgebraicValue::Integer(*v))))
        .collect()
}

/// A healthy run, so that every checker passes before it is broken.
fn healthy() -> SimulatedCluster<ReplicaNode> {
    let mut c = cluster(3);
    let mut w = Workload::new(KeyDistribution::Uniform { keys: 3 }, OpMix::ALL);
    for i in 0..60 {
        let tx = w.next_transaction(c.workload_rng());
        c.commit_on_node(i % 3, tx).unwrap();
        c.run_for(Duration::from_micros(700));
        if i % 10 == 0 {
            c.observe();
        }
    }
    c.run_until_quiescent(Duration::from_secs(5)).unwrap();
    c.observe();
    check_all(&c).unwrap();
    c
}

#[test]
fn counter_bounds_catch_lost_and_invented_adds() {
    let mut c = cluster(2);
    c.commit_on_node(0, incr("k", 5)).unwrap();
    let k = key(workload::COUNTERS, "k", "value");
    let h = c.history_mut();
    h.record_observation(
        SimTime::ZERO,
        n(0),
        VectorClock::new(),
        values(&[(k.clone(), 3)]),
    );
    assert!(matches!(
        counter_bounds::check_reads(h),
        Err(counter_bounds::CounterViolation::ReadBelowAcknowledged {
            read: 3,
            acknowledged_here: 5,
            ..
        })
    ));
    let mut c = cluster(2);
    c.commit_on_node(0, incr("k", 5)).unwrap();
    let h = c.history_mut();
    // Node 1 need not show node 0's add yet, but may never show more than was attempted.
    h.record_observation(
        SimTime::ZERO,
        n(1),
        VectorClock::new(),
        values(&[(k.clone(), 0)]),
    );
    counter_bounds::check_reads(h).unwrap();
    h.record_observation(
        SimTime::ZERO,
        n(1),
        VectorClock::new(),
        values(&[(k.clone(), 6)]),
    );
    assert!(matches!(
        counter_bounds::check_reads(h),
        Err(counter_bounds::CounterViolation::ReadAboveAttempted {
            read: 6,
            attempted: 5,
            ..
        })
    ));
    // Before convergence node 1 reads 0, not the acknowledged 5.
    assert!(matches!(
        counter_bounds::check_final(c.history(), &c),
        Err(counter_bounds::CounterViolation::FinalDiffers {
            read: 0,
            acknowledged: 5,
            ..
        })
    ));
}

#[test]
fn set_full_catches_lost_phantom_and_vanished_elements() {
    let schema = workload::schema();
    let tags = key(workload::TAGS, "r", "members");
    let set = |items: &[&str]| -> BTreeMap<CellKey, CellRead> {
        [(
            tags.clone(),
            Ok(AlgebraicValue::string_set(items.iter().copied())),
        )]
        .into()
    };
    let mut c = cluster(2);
    let mut tx = AlgebraicTransaction::new();
    tx.add_to_set(workload::TAGS, "r", "members", ["a"]);
    c.commit_on_node(0, tx).unwrap();

    let mut h = c.history().clone();
    h.record_observation(SimTime::ZERO, n(0), VectorClock::new(), set(&[]));
    assert!(matches!(
        set_full::check_reads(&h, &schema),
        Err(set_full::SetViolation::NotVisibleToWriter { .. })
    ));
    let mut h = c.history().clone();
    h.record_observation(SimTime::ZERO, n(1), VectorClock::new(), set(&["a", "zzz"]));
    assert!(matches!(
        set_full::check_reads(&h, &schema),
        Err(set_full::SetViolation::Phantom { element, .. }) if element == "zzz"
    ));
    let mut h = c.history().clone();
    h.record_observation(SimTime::ZERO, n(1), VectorClock::new(), set(&["a"]));
    h.record_observation(SimTime::ZERO, n(1), VectorClock::new(), set(&[]));
    assert!(matches!(
        set_full::check_reads(&h, &schema),
        Err(set_full::SetViolation::Vanished { .. })
    ));
    // Node 1 has not received "a" yet.
    assert!(matches!(
        set_full::check_final(c.history(), &c),
        Err(set_full::SetViolation::Lost { node, .. }) if node == n(1)
    ));
}

#[test]
fn atomic_visibility_catches_a_fractured_pair() {
    let mut c = cluster(1);
    let (a, b) = (
        key(PAIR_TABLES.0, "p", PAIR_COLUMN),
        key(PAIR_TABLES.1, "p", PAIR_COLUMN),
    );
    let h = c.history_mut();
    h.record_observation(
        SimTime::ZERO,
        n(0),
        VectorClock::new(),
        values(&[(a.clone(), 2), (b.clone(), 2)]),
    );
    atomic_visibility::check_reads(h).unwrap();
    h.record_observation(SimTime::ZERO, n(0), VectorClock::new(), values(&[(a, 2)]));
    assert!(matches!(
        atomic_visibility::check_reads(h),
        Err(atomic_visibility::AtomicViolation::FracturedRead { row, .. }) if row == "p"
    ));
}

#[test]
fn causal_reads_catch_open_pasts_unknown_dots_and_unexplained_values() {
    let schema = workload::schema();
    let mut c = cluster(2);
    c.commit_on_node(0, incr("k", 1)).unwrap();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    c.commit_on_node(1, incr("k", 2)).unwrap(); // depends on n0:1
    let k = key(workload::COUNTERS, "k", "value");

    // Shows n1:1 without its cause n0:1.
    let mut h = c.history().clone();
    let open = VectorClock::new().with_node(n(1), 1);
    h.record_observation(SimTime::ZERO, n(1), open, values(&[(k.clone(), 2)]));
    assert!(matches!(
        causal_reads::check(&h, &schema),
        Err(causal_reads::CausalViolation::NotCausallyClosed { .. })
    ));
    // A dot nobody was acknowledged.
    let mut h = c.history().clone();
    let invented = VectorClock::new().with_node(n(0), 2);
    h.record_observation(SimTime::ZERO, n(0), invented, values(&[(k.clone(), 1)]));
    assert!(matches!(
        causal_reads::check(&h, &schema),
        Err(causal_reads::CausalViolation::UnknownDot { dot, .. }) if dot == Dot::new(n(0), 2).unwrap()
    ));
    // The right clock but a value its updates do not make (an add applied twice).
    let mut h = c.history().clone();
    let both = VectorClock::new().with_node(n(0), 1).with_node(n(1), 1);
    h.record_observation(SimTime::ZERO, n(1), both.clone(), values(&[(k.clone(), 5)]));
    assert!(matches!(
        causal_reads::check(&h, &schema),
        Err(causal_reads::CausalViolation::StateNotExplained { .. })
    ));
    let mut h = c.history().clone();
    h.record_observation(SimTime::ZERO, n(1), both, values(&[(k.clone(), 3)]));
    causal_reads::check(&h, &schema).unwrap();
    // A replica that does not show its own acknowledged write.
    let mut h = c.history().clone();
    let own_missing = VectorClock::new().with_node(n(0), 1);
    h.record_observation(SimTime::ZERO, n(1), own_missing, values(&[(k, 1)]));
    assert!(matches!(
        causal_reads::check(&h, &schema),
        Err(causal_reads::CausalViolation::OwnWriteMissing { .. })
    ));
}

#[test]
fn convergence_and_oracle_catch_divergence_and_missing_updates() {
    let mut c = cluster(2);
    c.partition(0, 1).unwrap();
    c.commit_on_node(0, incr("k", 1)).unwrap();
    c.run_for(Duration::from_millis(50));
    assert!(matches!(
        convergence::check(&c),
        Err(convergence::ConvergenceViolation::Diverged { .. })
    ));
    assert!(matches!(check_all(&c), Err(Violation::Convergence(_))));
    c.heal();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    convergence::check(&c).unwrap();
    oracle::check(c.history(), &c).unwrap();
    // An acknowledged commit that no replica holds.
    let mut other = cluster(2);
    other.commit_on_node(1, incr("k", 4)).unwrap();
    let lost = other.history().acknowledged()[0].clone();
    c.history_mut()
        .record_acknowledged(lost.at, lost.node, lost.update);
    assert!(matches!(
        oracle::check(c.history(), &c),
        Err(oracle::OracleViolation::ClockDiffers { .. })
    ));
}

#[test]
fn healthy_run_passes_every_checker_and_a_violation_names_its_property() {
    let c = healthy();
    assert!(c.history().observations().len() >= 3 * 7);
    let v = Violation::ReplicaFault {
        node: n(0),
        fault: "x".into(),
    };
    assert_eq!(v.to_string(), "replica fault on n0: x");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The causal checker's incremental oracle agrees with `LocalCommitProtocol::merge_all`.
    #[test]
    fn incremental_view_matches_merge_all(seed in 0u64..10_000, ops in 1usize..60) {
        let mut c = cluster(3);
        let mut w = Workload::new(KeyDistribution::Hot { keys: 4, hot_percent: 60 }, OpMix::ALL);
        for i in 0..ops {
            let tx = w.next_transaction(c.workload_rng());
            c.commit_on_node(i % 3, tx).unwrap();
            c.run_for(Duration::from_micros(300 + seed % 2000));
        }
        let updates: Vec<_> = c.history().acknowledged_updates().cloned().collect();
        prop_assert!(causal_reads::view_agrees_with_merge_all(&workload::schema(), &updates));
    }
}
