use std::time::Duration;

use proptest::prelude::*;
use rhizo_algebra::AlgebraicValue;
use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, ReplicaConfig};

use crate::checkers::check_all;
use crate::testkit::incr;
use crate::workload::{self, KeyDistribution, OpMix, Workload};
use crate::{
    GossipStrategy, NetworkCondition, ReplicaNode, SimError, SimTime, SimulatedCluster,
    SimulationBuilder,
};
use rhizo_commit::Operations;

const BOUND: Duration = Duration::from_secs(30);

fn cluster(nodes: usize, seed: u64, condition: NetworkCondition) -> SimulatedCluster<ReplicaNode> {
    SimulationBuilder::new()
        .nodes(nodes)
        .seed(seed)
        .network_condition(condition)
        .build_replicas(workload::schema())
        .unwrap()
}

fn counter(cluster: &SimulatedCluster<ReplicaNode>, node: usize, row: &str) -> AlgebraicValue {
    cluster
        .replica(node)
        .unwrap()
        .read(workload::COUNTERS, row, "value")
        .unwrap()
}

/// Commits `ops` workload transactions on random nodes, spaced by `gap`.
fn drive(cluster: &mut SimulatedCluster<ReplicaNode>, ops: usize, gap: Duration) {
    let mut workload = Workload::new(KeyDistribution::Uniform { keys: 6 }, OpMix::ALL);
    let nodes = cluster.node_count() as u64;
    for _ in 0..ops {
        let node = crate::network::up_to(cluster.workload_rng(), nodes - 1) as usize;
        let tx = workload.next_transaction(cluster.workload_rng());
        cluster.commit_on_node(node, tx).unwrap();
        cluster.run_for(gap);
        if cluster.now().as_micros().is_multiple_of(7) {
            cluster.observe();
        }
    }
}

fn settle_and_check(cluster: &mut SimulatedCluster<ReplicaNode>) {
    cluster.run_until_quiescent(BOUND).unwrap();
    cluster.verify_convergence().unwrap();
    cluster.observe();
    check_all(cluster).unwrap();
}

#[test]
fn test_two_nodes_converge() {
    let mut c = cluster(2, 1, NetworkCondition::Perfect);
    c.commit_on_node(0, incr("page", 3)).unwrap();
    c.commit_on_node(1, incr("page", 4)).unwrap();
    assert_eq!(
        counter(&c, 1, "page"),
        AlgebraicValue::Integer(4),
        "not yet synced"
    );
    settle_and_check(&mut c);
    for node in 0..2 {
        assert_eq!(counter(&c, node, "page"), AlgebraicValue::Integer(7));
    }
}

#[test]
fn test_five_nodes_converge() {
    let mut c = cluster(5, 2, NetworkCondition::Perfect);
    drive(&mut c, 200, Duration::from_micros(300));
    settle_and_check(&mut c);
    let a = c.get_node_state(0).unwrap();
    for node in 1..5 {
        let b = c.get_node_state(node).unwrap();
        assert_eq!(
            (&a.clock, &a.values, a.fingerprint),
            (&b.clock, &b.values, b.fingerprint)
        );
    }
    assert_eq!(c.history().acknowledged().len(), 200);
}

#[test]
fn test_convergence_under_message_reordering() {
    for seed in 0..5 {
        let mut c = cluster(4, seed, NetworkCondition::Reordered);
        drive(&mut c, 150, Duration::from_micros(200));
        settle_and_check(&mut c);
    }
}

#[test]
fn test_convergence_after_partition_heal() {
    let mut c = cluster(4, 3, NetworkCondition::Partitioned);
    drive(&mut c, 100, Duration::from_micros(500));
    c.run_for(Duration::from_millis(200));
    // Nodes 0 and 1 cannot reach 2 and 3: each half converges on its own writes only.
    assert!(matches!(
        c.verify_convergence(),
        Err(SimError::Diverged { .. })
    ));
    assert!(!c.is_converged());
    c.heal();
    settle_and_check(&mut c);
}

#[test]
fn test_concurrent_writes_same_key_merge_correctly() {
    let mut c = cluster(3, 4, NetworkCondition::Perfect);
    // The same instant on every node, before any message moves.
    for node in 0..3 {
        let mut tx = AlgebraicTransaction::new();
        tx.increment(workload::COUNTERS, "hot", "value", 10 * (node as i64 + 1))
            .max(workload::GAUGES, "hot", "high", 100 - node as i64)
            .min(workload::GAUGES, "hot", "low", 100 - node as i64)
            .add_to_set(workload::CARTS, "hot", "items", [format!("from{node}")]);
        c.commit_on_node(node, tx).unwrap();
    }
    settle_and_check(&mut c);
    for node in 0..3 {
        let r = c.replica(node).unwrap();
        assert_eq!(counter(&c, node, "hot"), AlgebraicValue::Integer(60));
        assert_eq!(
            r.read(workload::GAUGES, "hot", "high").unwrap(),
            AlgebraicValue::Integer(100)
        );
        assert_eq!(
            r.read(workload::GAUGES, "hot", "low").unwrap(),
            AlgebraicValue::Integer(98)
        );
        assert_eq!(
            r.read(workload::CARTS, "hot", "items").unwrap(),
            AlgebraicValue::string_set(["from0", "from1", "from2"])
        );
    }
}

#[test]
fn concurrent_add_and_remove_on_an_or_set_keeps_the_unseen_add() {
    let mut c = cluster(2, 5, NetworkCondition::Perfect);
    let mut add = AlgebraicTransaction::new();
    add.add_to_set(workload::CARTS, "c", "items", ["x"]);
    c.commit_on_node(0, add.clone()).unwrap();
    settle_and_check(&mut c);
    // Node 1 removes the add it has seen while node 0 adds "x" again: the new add survives.
    let mut remove = AlgebraicTransaction::new();
    remove.remove_from_set(workload::CARTS, "c", "items", ["x"]);
    c.commit_on_node(1, remove).unwrap();
    c.commit_on_node(0, add).unwrap();
    settle_and_check(&mut c);
    assert_eq!(
        c.replica(1)
            .unwrap()
            .read(workload::CARTS, "c", "items")
            .unwrap(),
        AlgebraicValue::string_set(["x"])
    );
}

/// Once writes stop, a quiet cluster finishes collecting: after every member has seen the
/// removes, no replica keeps a tombstone or an index entry, under either gossip strategy, and
/// each replica's stable point is its clock. Nothing is written after the removes.
#[test]
fn a_quiet_cluster_holds_no_tombstone_once_every_member_has_seen_the_remove() {
    for gossip in [
        GossipStrategy::FullBroadcast,
        GossipStrategy::PushPull { fanout: 1 },
    ] {
        let mut c = SimulationBuilder::new()
            .nodes(5)
            .seed(16)
            .gossip(gossip)
            .build_replicas(workload::schema())
            .unwrap();
        for node in 0..5 {
            let mut add = AlgebraicTransaction::new();
            add.add_to_set(workload::CARTS, "c", "items", [format!("x{node}")]);
            c.commit_on_node(node, add).unwrap();
            c.commit_on_node(node, incr("k", 1)).unwrap();
        }
        c.run_until_quiescent(BOUND).unwrap();
        for node in 0..5 {
            let mut remove = AlgebraicTransaction::new();
            remove.remove_from_set(
                workload::CARTS,
                "c",
                "items",
                [format!("x{}", (node + 2) % 5)],
            );
            c.commit_on_node(node, remove).unwrap();
        }
        settle_and_check(&mut c);
        c.run_for(Duration::from_millis(200));
        for node in 0..5 {
            let r = c.replica(node).unwrap();
            assert_eq!(
                r.tombstones(),
                0,
                "{gossip:?}: node {node} keeps tombstones"
            );
            assert_eq!(
                r.indexed_ranges(),
                0,
                "{gossip:?}: node {node} keeps index entries"
            );
            assert_eq!(r.stable_clock(), r.clock(), "{gossip:?}: node {node}");
            assert_eq!(
                r.read(workload::CARTS, "c", "items").unwrap(),
                AlgebraicValue::string_set(Vec::<String>::new())
            );
        }
    }
}

#[test]
fn crash_before_sync_loses_nothing_acknowledged() {
    let mut c = cluster(3, 6, NetworkCondition::Perfect);
    for i in 0..20 {
        c.commit_on_node(0, incr("k", i + 1)).unwrap();
    }
    // Crash before the first timer could send anything: only the durable log survives.
    c.crash(0).unwrap();
    assert!(
        c.durable_state(0)
            .unwrap()
            .is_some_and(|log| log.len() == 20)
    );
    c.run_for(Duration::from_millis(50));
    assert_eq!(counter(&c, 1, "k"), AlgebraicValue::Integer(0));
    c.restart(0).unwrap();
    assert_eq!(counter(&c, 0, "k"), AlgebraicValue::Integer(210));
    assert!(c.node(0).unwrap().faults().is_empty());
    settle_and_check(&mut c);
    assert_eq!(counter(&c, 2, "k"), AlgebraicValue::Integer(210));
}

#[test]
fn restart_from_a_snapshot_truncated_log_keeps_everything() {
    let config = ReplicaConfig {
        snapshot_every: 8,
        ..ReplicaConfig::default()
    };
    let mut c = SimulationBuilder::new()
        .nodes(3)
        .seed(7)
        .network_condition(NetworkCondition::Lossy)
        .build_replicas_with(workload::schema(), config)
        .unwrap();
    drive(&mut c, 120, Duration::from_micros(400));
    for node in 0..3 {
        let log = c.node(node).unwrap().durable_log();
        assert!(
            log.len() <= 9,
            "the log restarts at each snapshot: {}",
            log.len()
        );
    }
    c.crash(1).unwrap();
    drive(&mut c, 0, Duration::ZERO);
    c.restart(1).unwrap();
    c.crash(2).unwrap();
    c.restart(2).unwrap();
    settle_and_check(&mut c);
}

#[test]
fn crashes_during_traffic_then_restart_converge() {
    let mut c = cluster(5, 8, NetworkCondition::Chaos);
    drive(&mut c, 100, Duration::from_micros(300));
    c.crash(1).unwrap();
    c.crash(3).unwrap();
    assert!(matches!(
        c.commit_on_node(1, incr("k", 1)),
        Err(SimError::NodeCrashed { .. })
    ));
    drive(&mut c, 0, Duration::ZERO);
    c.run_for(Duration::from_millis(30));
    c.restart(1).unwrap();
    c.run_for(Duration::from_millis(30));
    c.restart(3).unwrap();
    c.calm();
    settle_and_check(&mut c);
}

#[test]
fn one_way_partition_is_bridged_by_a_third_node() {
    let mut c = cluster(3, 9, NetworkCondition::Perfect);
    c.partition_one_way(0, 1).unwrap();
    c.commit_on_node(0, incr("k", 5)).unwrap();
    c.commit_on_node(1, incr("k", 7)).unwrap();
    // Node 0's messages never reach node 1 directly; node 2 carries them.
    c.run_until_converged(BOUND, Duration::from_millis(1))
        .unwrap();
    assert_eq!(counter(&c, 1, "k"), AlgebraicValue::Integer(12));
    assert!(c.stats().dropped_by_partition > 0);
    c.heal();
    settle_and_check(&mut c);
}

#[test]
fn one_way_partition_between_two_nodes_blocks_both_directions_of_news() {
    // Push-pull needs a reply: with 0 -> 1 cut, 1's requests reach 0 but 0's answers do not, and
    // 0 never hears 1's clock, so it never sends 1 a delta either.
    let mut c = cluster(2, 10, NetworkCondition::Perfect);
    c.partition_one_way(0, 1).unwrap();
    c.commit_on_node(0, incr("k", 1)).unwrap();
    c.commit_on_node(1, incr("k", 2)).unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(counter(&c, 1, "k"), AlgebraicValue::Integer(2));
    c.heal();
    settle_and_check(&mut c);
    assert_eq!(counter(&c, 0, "k"), AlgebraicValue::Integer(3));
}

#[test]
fn refused_commit_is_recorded_and_leaves_no_trace() {
    let mut c = cluster(2, 11, NetworkCondition::Perfect);
    let mut bad = AlgebraicTransaction::new();
    bad.increment(workload::COUNTERS, "k", "no_such_column", 1);
    assert!(matches!(
        c.commit_on_node(0, bad),
        Err(SimError::Commit { node, .. }) if node == NodeId::numbered(0)
    ));
    assert!(c.replica(0).unwrap().clock().is_empty());
    assert_eq!(c.history().attempts().len(), 1);
    assert!(!c.history().attempts()[0].acknowledged);
    assert!(c.history().acknowledged().is_empty());
}

#[test]
fn messages_are_counted_in_wire_bytes() {
    let mut c = cluster(2, 12, NetworkCondition::Perfect);
    c.commit_on_node(0, incr("k", 1)).unwrap();
    c.run_until_quiescent(BOUND).unwrap();
    let stats = c.stats();
    assert!(stats.messages_sent >= 2);
    // Every sync message holds at least a version, a clock and a flag.
    assert!(stats.bytes_sent >= 3 * stats.messages_sent);
}

#[test]
fn idle_cluster_sends_nothing() {
    let mut c = cluster(4, 13, NetworkCondition::Perfect);
    c.run_for(Duration::from_millis(100));
    assert_eq!(
        c.stats().messages_sent,
        0,
        "empty replicas have nothing to tell"
    );
    assert!(c.is_quiescent());
}

#[test]
fn push_pull_reaches_everyone() {
    let mut c = SimulationBuilder::new()
        .nodes(12)
        .seed(14)
        .gossip(GossipStrategy::PushPull { fanout: 2 })
        .build_replicas(workload::schema())
        .unwrap();
    drive(&mut c, 100, Duration::from_micros(100));
    settle_and_check(&mut c);
}

/// A round's exchanges run in turn, so a partner sends only what the exchanges before it have
/// not brought: after every node commits at once, few deltas arrive that bring nothing. (All
/// started at once, 30 of the 98 deltas this run receives brought nothing; in turn, 8 of 74.)
#[test]
fn push_pull_partners_answered_in_turn_send_little_twice() {
    let mut c = SimulationBuilder::new()
        .nodes(12)
        .seed(15)
        .gossip(GossipStrategy::PushPull { fanout: 3 })
        .build_replicas(workload::schema())
        .unwrap();
    c.history_mut().set_recording(false);
    let mut load = Workload::new(KeyDistribution::Uniform { keys: 50 }, OpMix::COUNTERS);
    for node in 0..12 {
        for _ in 0..50 {
            let tx = load.next_transaction(c.workload_rng());
            c.commit_on_node(node, tx).unwrap();
        }
    }
    c.run_until_converged(BOUND, Duration::from_millis(1))
        .unwrap();
    c.verify_convergence().unwrap();
    let totals = c.replica_totals();
    assert!(
        totals.deltas_redundant * 5 <= totals.deltas_applied,
        "{totals:?}"
    );
}

// ------------------------------------------------------------------ merge properties

/// A cluster without timers: messages move only when a test asks for an exchange.
fn manual(nodes: usize) -> SimulatedCluster<ReplicaNode> {
    SimulationBuilder::new()
        .nodes(nodes)
        .sync_interval(None)
        .build_replicas(workload::schema())
        .unwrap()
}

/// `to` pulls everything `from` holds (one push-pull exchange, carried to completion).
fn pull(c: &mut SimulatedCluster<ReplicaNode>, to: usize, from: usize) {
    let peer = NodeId::numbered(from as u32);
    c.with_node(to, |n, ctx| n.sync_with(peer, ctx)).unwrap();
    while c.step() {}
}

fn commit_all(c: &mut SimulatedCluster<ReplicaNode>, node: usize, txs: &[AlgebraicTransaction]) {
    for tx in txs {
        c.commit_on_node(node, tx.clone()).unwrap();
    }
}

fn txs(seed: u64, count: usize) -> Vec<AlgebraicTransaction> {
    txs_of(seed, count, OpMix::ALL)
}

fn txs_of(seed: u64, count: usize, mix: OpMix) -> Vec<AlgebraicTransaction> {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut w = Workload::new(KeyDistribution::Uniform { keys: 3 }, mix);
    (0..count).map(|_| w.next_transaction(&mut rng)).collect()
}

/// Every kind whose effect does not depend on the committing replica's view: an observed
/// remove removes what its replica has seen, which the network's timing decides.
const BLIND: OpMix = OpMix {
    or_set: 0,
    multi: 0,
    ..OpMix::ALL
};

fn state(c: &SimulatedCluster<ReplicaNode>, node: usize) -> Vec<u8> {
    c.replica(node).unwrap().canonical_state()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The same commits (of kinds whose effect does not depend on what the committing replica
    /// has seen) on the same nodes reach the same bytes whatever the network does to
    /// their messages (delays, reordering, loss, duplication: one seed per order).
    #[test]
    fn prop_any_order_same_result(
        commits in proptest::collection::vec((0usize..4, 0u64..1000), 1..40),
        seeds in (0u64..1_000_000, 0u64..1_000_000),
    ) {
        let mut results = Vec::new();
        for seed in [seeds.0, seeds.1] {
            let mut c = cluster(4, seed, NetworkCondition::Chaos);
            for (node, tx_seed) in &commits {
                commit_all(&mut c, *node, &txs_of(*tx_seed, 1, BLIND));
                let gap = crate::network::up_to(c.workload_rng(), 3000);
                c.run_for(Duration::from_micros(gap));
            }
            c.calm();
            settle_and_check(&mut c);
            results.push(state(&c, 0));
        }
        prop_assert_eq!(&results[0], &results[1]);
    }

    /// Receiving `a`'s and `b`'s states in either order gives the same replica.
    #[test]
    fn prop_merge_commutative(a in 0u64..1000, b in 0u64..1000, n in 1usize..12) {
        let mut ends = Vec::new();
        for order in [[0, 1], [1, 0]] {
            let mut c = manual(3);
            commit_all(&mut c, 0, &txs(a, n));
            commit_all(&mut c, 1, &txs(b, n));
            for from in order {
                pull(&mut c, 2, from);
            }
            ends.push(state(&c, 2));
        }
        prop_assert_eq!(&ends[0], &ends[1]);
    }

    /// `(a ⊔ b) ⊔ c` equals `a ⊔ (b ⊔ c)`: the grouping of merges does not matter.
    #[test]
    fn prop_merge_associative(a in 0u64..1000, b in 0u64..1000, d in 0u64..1000, n in 1usize..10) {
        let setup = || {
            let mut c = manual(4);
            commit_all(&mut c, 0, &txs(a, n));
            commit_all(&mut c, 1, &txs(b, n));
            commit_all(&mut c, 2, &txs(d, n));
            c
        };
        // (a ⊔ b) ⊔ c: node 1 first takes a, then node 3 takes node 1, then c.
        let mut left = setup();
        pull(&mut left, 1, 0);
        pull(&mut left, 3, 1);
        pull(&mut left, 3, 2);
        // a ⊔ (b ⊔ c): node 2 first takes b, then node 3 takes a, then node 2.
        let mut right = setup();
        pull(&mut right, 2, 1);
        pull(&mut right, 3, 0);
        pull(&mut right, 3, 2);
        prop_assert_eq!(state(&left, 3), state(&right, 3));
    }
}

#[test]
fn convergence_runs_cut_into_event_budgets_process_the_same_events() {
    let mut whole = cluster(4, 21, NetworkCondition::Reordered);
    let mut cut = cluster(4, 21, NetworkCondition::Reordered);
    for c in [&mut whole, &mut cut] {
        for node in 0..4 {
            c.commit_on_node(node, incr("r", 1)).unwrap();
        }
    }
    let until = cut.now().saturating_add(BOUND);
    let resolution = Duration::from_millis(1);
    let mut calls = 0;
    let cut_at = loop {
        calls += 1;
        if let Some(result) = cut.run_until_converged_within(until, resolution, 3) {
            break result.unwrap();
        }
    };
    assert!(calls > 3, "the budget must have cut the run: {calls} calls");
    // The uninterrupted run checks on its own grid; events are what both must share.
    whole.run_to(cut_at, usize::MAX);
    assert_eq!(whole.trace_hash(), cut.trace_hash());
    assert!(whole.is_converged() && cut.is_converged());
    assert_eq!(counter(&cut, 3, "r"), AlgebraicValue::Integer(4));
    // Nothing left to do: converged at once; a deadline already passed reports it.
    assert_eq!(
        cut.run_until_converged_within(SimTime::ZERO, resolution, 0),
        Some(Ok(cut_at))
    );
    cut.commit_on_node(0, incr("r", 1)).unwrap();
    assert_eq!(
        cut.run_until_converged_within(SimTime::ZERO, resolution, 10),
        Some(Err(SimError::DeadlineReached { at: cut_at }))
    );
}

#[test]
fn a_replica_cluster_can_move_to_another_thread() {
    let mut c = cluster(3, 22, NetworkCondition::Perfect);
    c.commit_on_node(0, incr("r", 2)).unwrap();
    let c = std::thread::spawn(move || {
        c.run_until_quiescent(BOUND).unwrap();
        c
    })
    .join()
    .unwrap();
    assert_eq!(counter(&c, 2, "r"), AlgebraicValue::Integer(2));
}
