use rhizo_algebra::{AlgebraicValue, OpType};
use rhizo_commit::keyed::{KeyedOperation, KeyedTransaction};

use super::*;

fn tx(ops: impl IntoIterator<Item = (&'static str, OpType, AlgebraicValue)>) -> KeyedTransaction {
    let mut tx = KeyedTransaction::new();
    for (key, op_type, value) in ops {
        tx.push(KeyedOperation::new(key, op_type, value));
    }
    tx
}

fn add(key: &'static str, amount: i64) -> KeyedTransaction {
    tx([(key, OpType::AbelianAdd, AlgebraicValue::Integer(amount))])
}

fn cluster(nodes: usize, config: &RoundConfig) -> RoundCluster {
    RoundCluster::new(nodes, config).unwrap()
}

fn value(cluster: &RoundCluster, node: usize, key: &str) -> Option<AlgebraicValue> {
    cluster.value(node, key).unwrap().map(|read| read.unwrap())
}

fn values_everywhere(cluster: &RoundCluster, key: &str) -> Vec<Option<AlgebraicValue>> {
    (0..cluster.node_count())
        .map(|n| value(cluster, n, key))
        .collect()
}

#[test]
fn a_commit_reaches_every_node_in_one_round_on_a_perfect_network() {
    let mut c = cluster(4, &RoundConfig::default());
    let update = c.commit_on_node(2, &add("views", 5)).unwrap();
    assert_eq!(update.origin(), "n2");
    assert_eq!(update.clock().get(rhizo_clock::NodeId::numbered(2)), 1);
    assert_eq!(values_everywhere(&c, "views")[..2], [None, None]);
    c.propagate_round();
    assert_eq!(c.round(), 1);
    assert_eq!(
        values_everywhere(&c, "views"),
        vec![Some(AlgebraicValue::Integer(5)); 4]
    );
    c.propagate_all();
    let stats = c.stats();
    assert_eq!(stats.rounds_to_converge, Some(2));
    // A fresh cluster: the round that delivers the commit is the round that converges.
    let mut fresh = cluster(4, &RoundConfig::default());
    fresh.commit_on_node(0, &add("views", 5)).unwrap();
    fresh.propagate_all();
    assert_eq!(fresh.stats().rounds_to_converge, Some(1));
    assert_eq!(stats.operations_committed, 1);
    assert!(stats.messages_sent >= 3 && stats.messages_delivered == stats.messages_sent);
    assert_eq!(stats.messages_dropped, 0);
}

#[test]
fn commits_everywhere_converge_to_their_merge() {
    let mut c = cluster(5, &RoundConfig::default());
    for i in 0..20 {
        let best = AlgebraicValue::Integer(i * 7 % 11);
        let tags = AlgebraicValue::string_set([format!("t{}", i % 3)]);
        let write = tx([
            ("views", OpType::AbelianAdd, AlgebraicValue::Integer(i)),
            ("best", OpType::SemilatticeMax, best),
            ("tags", OpType::SemilatticeUnion, tags),
        ]);
        c.commit_on_node(i as usize % 5, &write).unwrap();
    }
    c.propagate_all();
    assert!(c.stats().rounds_to_converge.is_some());
    assert!(c.values_converged());
    assert_eq!(value(&c, 3, "views"), Some(AlgebraicValue::Integer(190)));
    assert_eq!(value(&c, 0, "best"), Some(AlgebraicValue::Integer(10)));
    assert_eq!(
        value(&c, 4, "tags"),
        Some(AlgebraicValue::string_set(["t0", "t1", "t2"]))
    );
    assert_eq!(c.keys(), ["best", "tags", "views"]);
    assert_eq!(c.stats().operations_committed, 60);
}

#[test]
fn a_cut_link_is_bypassed_through_a_third_node() {
    let mut c = cluster(3, &RoundConfig::default());
    c.partition(0, 1).unwrap();
    c.commit_on_node(0, &add("views", 1)).unwrap();
    c.propagate_all();
    assert_eq!(
        values_everywhere(&c, "views"),
        vec![Some(AlgebraicValue::Integer(1)); 3]
    );
    assert!(c.stats().messages_dropped > 0);
}

#[test]
fn a_partition_holds_until_healed_and_anti_entropy_then_converges() {
    let config = RoundConfig {
        max_rounds: 5,
        ..RoundConfig::default()
    };
    let mut c = cluster(2, &config);
    c.partition(0, 1).unwrap();
    c.commit_on_node(0, &add("views", 1)).unwrap();
    c.commit_on_node(1, &add("views", 2)).unwrap();
    c.propagate_all();
    assert_eq!((c.round(), c.stats().rounds_to_converge), (5, None));
    assert!(!c.values_converged());
    c.heal_partitions();
    c.propagate_all();
    assert!(c.values_converged());
    assert_eq!(
        values_everywhere(&c, "views"),
        vec![Some(AlgebraicValue::Integer(3)); 2]
    );
    assert_eq!(c.stats().rounds_to_converge, Some(c.round()));
}

#[test]
fn requeue_starts_exchanges_at_once() {
    let mut c = cluster(3, &RoundConfig::default());
    c.commit_on_node(0, &add("views", 1)).unwrap();
    let before = c.stats().messages_sent;
    c.requeue_all_updates();
    // Every node asks every other: six exchanges start before any round runs.
    assert_eq!(c.stats().messages_sent, before + 6);
    assert_eq!(c.cluster().in_flight(), 6);
}

#[test]
fn a_delayed_network_takes_its_rounds() {
    let config = RoundConfig {
        network: RoundNetwork::Delayed { rounds: 3 },
        ..RoundConfig::default()
    };
    let mut c = cluster(2, &config);
    c.commit_on_node(0, &add("views", 1)).unwrap();
    c.propagate_round();
    c.propagate_round();
    assert_eq!(value(&c, 1, "views"), None);
    c.propagate_all();
    assert_eq!(value(&c, 1, "views"), Some(AlgebraicValue::Integer(1)));
    assert!(c.stats().rounds_to_converge.unwrap() >= 3);
}

#[test]
fn reordering_changes_the_run_but_not_the_values() {
    let run = |config: RoundConfig| {
        let mut c = cluster(4, &config);
        for i in 0..12 {
            c.commit_on_node(i % 4, &add("views", i as i64)).unwrap();
            c.propagate_round();
        }
        c.propagate_all();
        assert!(c.values_converged());
        (c.cluster().trace_hash(), value(&c, 3, "views"))
    };
    let perfect = run(RoundConfig::default());
    let randomized = run(RoundConfig {
        randomize_order: true,
        ..RoundConfig::default()
    });
    let reordered = run(RoundConfig {
        network: RoundNetwork::Reordered,
        ..RoundConfig::default()
    });
    assert_ne!(perfect.0, randomized.0);
    assert_ne!(perfect.0, reordered.0);
    assert_eq!(perfect.1, Some(AlgebraicValue::Integer(66)));
    assert_eq!((randomized.1, reordered.1), (perfect.1.clone(), perfect.1));
}

#[test]
fn a_partitioned_network_splits_the_nodes_in_halves() {
    let config = RoundConfig {
        network: RoundNetwork::Partitioned,
        max_rounds: 4,
        ..RoundConfig::default()
    };
    let mut c = cluster(4, &config);
    c.commit_on_node(0, &add("views", 1)).unwrap();
    c.propagate_all();
    assert_eq!(
        values_everywhere(&c, "views")[1..3],
        [Some(AlgebraicValue::Integer(1)), None]
    );
    c.heal_partitions();
    c.propagate_all();
    assert!(c.values_converged());
}

#[test]
fn bad_nodes_and_refused_commits_leave_no_trace() {
    let mut c = cluster(2, &RoundConfig::default());
    assert!(matches!(
        c.commit_on_node(2, &add("views", 1)),
        Err(SimError::UnknownNode { .. })
    ));
    assert!(matches!(
        c.partition(0, 9),
        Err(SimError::UnknownNode { .. })
    ));
    assert!(matches!(
        c.value(5, "views"),
        Err(SimError::UnknownNode { .. })
    ));
    let refused = tx([(
        "views",
        OpType::GenericOverwrite,
        AlgebraicValue::Integer(1),
    )]);
    let err = c.commit_on_node(1, &refused).unwrap_err();
    assert!(matches!(
        err,
        SimError::Commit {
            source: LocalCommitError::RequiresCoordination { .. },
            ..
        }
    ));
    let nan = tx([("x", OpType::AbelianAdd, AlgebraicValue::float(f64::NAN))]);
    assert!(matches!(
        c.commit_on_node(1, &nan),
        Err(SimError::Commit { .. })
    ));
    assert_eq!(c.stats().operations_committed, 0);
    assert!(c.cluster().replica(1).unwrap().clock().is_empty());
    assert!(matches!(
        RoundCluster::new(0, &RoundConfig::default()),
        Err(SimError::NoNodes)
    ));
    let mut config = RoundConfig::default();
    config.add_partition(0, 3);
    assert!(matches!(
        RoundCluster::new(2, &config),
        Err(SimError::UnknownNode { .. })
    ));
}

#[test]
fn a_key_written_two_ways_reads_as_a_conflict_on_every_node() {
    let mut c = cluster(2, &RoundConfig::default());
    c.commit_on_node(0, &add("k", 1)).unwrap();
    let maxed = tx([("k", OpType::SemilatticeMax, AlgebraicValue::Integer(4))]);
    c.commit_on_node(1, &maxed).unwrap();
    c.propagate_all();
    assert!(c.values_converged());
    for node in 0..2 {
        assert!(matches!(
            c.value(node, "k").unwrap(),
            Some(Err(LocalCommitError::ConflictingKeyColumns { .. }))
        ));
    }
    assert!(
        c.debug_state()
            .lines()
            .all(|line| line.contains("do not merge"))
    );
}

#[test]
fn debug_state_lists_each_node() {
    let mut c = cluster(2, &RoundConfig::default());
    c.commit_on_node(0, &add("views", 3)).unwrap();
    assert_eq!(
        c.debug_state(),
        "Node 0: {\"views\": (ADD, 3)}\nNode 1: {}\n"
    );
}

#[test]
fn a_scenario_commits_in_order_and_runs_independent_clusters() {
    let mut scenario = RoundScenario::new(3);
    scenario.config_mut().max_rounds = 10;
    scenario.add_transaction(0, add("views", 2));
    scenario.add_transaction(2, add("views", 3));
    assert_eq!(scenario.transaction_count(), 2);
    let mut first = scenario.run().unwrap();
    let second = scenario.run().unwrap();
    assert!(first.stats().rounds_to_converge.is_some());
    assert_eq!(value(&second, 1, "views"), Some(AlgebraicValue::Integer(5)));
    first.commit_on_node(1, &add("views", 10)).unwrap();
    assert_eq!(value(&second, 1, "views"), Some(AlgebraicValue::Integer(5)));
    scenario.add_transaction(7, add("views", 1));
    assert!(matches!(scenario.run(), Err(SimError::UnknownNode { .. })));
}
