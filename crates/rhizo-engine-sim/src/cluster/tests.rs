use rhizo_algebra::{MergeType, ValueType};
use rhizo_sim::NetworkCondition;

use rhizo_commit::Operations;
use rhizo_txn::CommitPath;

use super::*;

fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .column("email", MergeType::Register, ValueType::Integer)
        .build()
        .unwrap()
}

fn builder(nodes: usize, seed: u64) -> SimulationBuilder {
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(nodes)
        .seed(seed)
        .sync_interval(Some(Duration::from_millis(5)));
    builder
}

fn raft_cluster(seed: u64) -> EngineCluster {
    let config = ClusterConfig::new(schema()).with_backend(Backend::Raft(RaftConfig::default()));
    EngineCluster::new(&builder(3, seed), config).unwrap()
}

fn increment(cluster: &mut EngineCluster, node: usize, amount: i64) -> CommitOutcome {
    cluster
        .commit(node, TransactionMode::CoordinationFree, |tx| {
            tx.increment("counters", "c", "value", amount);
        })
        .unwrap()
}

fn count(cluster: &EngineCluster, node: usize) -> AlgebraicValue {
    cluster.read(node, "counters", "c", "value").unwrap()
}

#[test]
fn a_lossy_partitioned_cluster_with_crashes_converges_once_healed() {
    for seed in 0..3 {
        let mut builder = builder(5, seed);
        builder.network_condition(NetworkCondition::Lossy);
        let mut cluster = EngineCluster::new(&builder, ClusterConfig::new(schema())).unwrap();
        // {0, 1} | {2, 3, 4}, and node 4 down for a while.
        for a in 0..2 {
            for b in 2..5 {
                cluster.partition(a, b).unwrap();
            }
        }
        let mut acked = 0;
        for round in 0..40usize {
            if round == 10 {
                cluster.crash(4).unwrap();
            }
            if round == 30 {
                cluster.restart(4).unwrap();
            }
            let node = round % 5;
            if !(10..30).contains(&round) || node != 4 {
                let amount = i64::try_from(round).unwrap() + 1;
                assert!(increment(&mut cluster, node, amount).durable);
                acked += amount;
            }
            cluster.run_for(Duration::from_millis(2));
        }
        // Cut off, the halves cannot agree.
        assert_ne!(count(&cluster, 0), count(&cluster, 2));
        assert!(cluster.verify_convergence().is_err());
        cluster.heal();
        cluster
            .run_until_quiescent(Duration::from_secs(30))
            .unwrap();
        assert!(cluster.is_quiescent());
        cluster.verify_convergence().unwrap();
        for node in 0..5 {
            assert_eq!(count(&cluster, node), AlgebraicValue::Integer(acked));
        }
        assert_eq!(cluster.faults(), []);
        let stats = cluster.stats();
        assert!(stats.dropped_by_loss > 0 && stats.dropped_by_partition > 0);
        assert_eq!((stats.crashes, stats.restarts), (1, 1));
    }
}

#[test]
fn a_coordinated_put_through_raft_is_seen_on_every_node() {
    for seed in 0..3 {
        let mut cluster = raft_cluster(seed);
        // No leader yet: `commit` waits for the election, then for the log.
        let outcome = cluster
            .commit(1, TransactionMode::Coordinated, |tx| {
                tx.put("users", "u", "email", 42)
                    .increment("counters", "c", "value", 1);
            })
            .unwrap();
        assert_eq!(outcome.path, CommitPath::Consensus);
        let index = outcome.sequence.unwrap();
        assert!(cluster.leader().is_some());
        // Submitted on a follower, the next one is decided as the simulation runs.
        let follower = (0..3).find(|&i| Some(i) != cluster.leader()).unwrap();
        let submitted = cluster
            .submit(follower, TransactionMode::Coordinated, |tx| {
                tx.compare_and_set("users", "u", "email", 42, 43);
            })
            .unwrap();
        let Submission::Pending(id) = submitted else {
            panic!("a three-member cluster decided a proposal at once: {submitted:?}");
        };
        assert!(cluster.take_outcome(id).is_none());
        cluster.run_until_quiescent(Duration::from_secs(5)).unwrap();
        let second = cluster.take_outcome(id).unwrap().unwrap();
        assert!(second.sequence.unwrap() > index);
        cluster.verify_convergence().unwrap();
        for node in 0..3 {
            let engine = cluster.engine(node).unwrap();
            assert_eq!(
                engine.read("users", "u", "email").unwrap(),
                AlgebraicValue::Integer(43)
            );
            assert_eq!(count(&cluster, node), AlgebraicValue::Integer(1));
            assert_eq!(engine.last_sequence(), second.sequence.unwrap());
        }
        // A failed condition is decided too, and changes nothing.
        let refused = cluster.commit(2, TransactionMode::Coordinated, |tx| {
            tx.compare_and_set("users", "u", "email", 42, 7);
        });
        assert!(matches!(
            refused,
            Err(ClusterError::Txn(TxnError::ConditionFailed { .. }))
        ));
        assert_eq!(cluster.faults(), []);
    }
}

#[test]
fn acknowledged_commits_survive_crashes_restarts_and_a_reopened_cluster() {
    let root = tempfile::tempdir().unwrap();
    let config = ClusterConfig::new(schema()).with_root(root.path());
    let mut cluster = EngineCluster::new(&builder(3, 1), config.clone()).unwrap();
    assert_eq!(cluster.root(), root.path());
    cluster.isolate(1).unwrap();
    increment(&mut cluster, 1, 5);
    // Crashed before anyone heard of it: only its directory holds the commit.
    cluster.crash(1).unwrap();
    assert!(cluster.is_crashed(1).unwrap());
    assert!(matches!(
        cluster.read(1, "counters", "c", "value"),
        Err(ClusterError::Simulation(SimError::NodeCrashed { .. }))
    ));
    assert!(matches!(
        cluster.restart(0),
        Err(ClusterError::Simulation(SimError::NodeNotCrashed { .. }))
    ));
    assert!(matches!(
        cluster.crash(9),
        Err(ClusterError::Simulation(SimError::UnknownNode { .. }))
    ));
    cluster.restart(1).unwrap();
    assert_eq!(count(&cluster, 1), AlgebraicValue::Integer(5));
    cluster.heal();
    cluster.run_until_quiescent(Duration::from_secs(5)).unwrap();
    for node in 0..3 {
        assert_eq!(count(&cluster, node), AlgebraicValue::Integer(5));
    }
    // A restarted node never reuses a dot.
    assert_eq!(increment(&mut cluster, 1, 1).dot.unwrap().counter(), 2);
    cluster.run_until_quiescent(Duration::from_secs(5)).unwrap();
    let fingerprint = cluster.engine(0).unwrap().fingerprint();
    drop(cluster);

    // The same root, reopened: every node recovers what it acknowledged.
    let cluster = EngineCluster::new(&builder(3, 2), config).unwrap();
    cluster.verify_convergence().unwrap();
    assert_eq!(cluster.engine(2).unwrap().fingerprint(), fingerprint);
    assert_eq!(count(&cluster, 2), AlgebraicValue::Integer(6));
}

#[test]
fn a_raft_commit_survives_its_leader_crash_and_an_interrupted_proposal_is_reported() {
    let mut cluster = raft_cluster(4);
    let acked = cluster
        .commit(0, TransactionMode::Coordinated, |tx| {
            tx.put("users", "u", "email", 1);
        })
        .unwrap();
    let leader = cluster.leader().unwrap();
    // A proposal whose node crashes before it is decided has an unknown outcome.
    let submitted = cluster
        .submit(leader, TransactionMode::Coordinated, |tx| {
            tx.put("users", "u", "email", 2);
        })
        .unwrap();
    let Submission::Pending(id) = submitted else {
        panic!("a three-member cluster decided a proposal at once: {submitted:?}");
    };
    cluster.crash(leader).unwrap();
    assert!(matches!(
        cluster.take_outcome(id),
        Some(Err(TxnError::Raft(err))) if matches!(*err, RaftError::Interrupted)
    ));
    // The survivors elect a leader (until then a proposal forwarded to the dead leader would
    // time out, its outcome unknown) and go on.
    cluster.run_for(Duration::from_millis(500));
    assert!(cluster.leader().is_some_and(|l| l != leader));
    let survivor = (leader + 1) % 3;
    cluster
        .commit(survivor, TransactionMode::Coordinated, |tx| {
            tx.increment("counters", "c", "value", 1);
        })
        .unwrap();
    cluster.restart(leader).unwrap();
    assert!(cluster.engine(leader).unwrap().last_sequence() >= acked.sequence.unwrap());
    cluster.run_until_quiescent(Duration::from_secs(5)).unwrap();
    cluster.verify_convergence().unwrap();
    let email = cluster.read(leader, "users", "u", "email").unwrap();
    // The interrupted write may or may not have committed; the acknowledged one is not lost.
    assert!(email == AlgebraicValue::Integer(1) || email == AlgebraicValue::Integer(2));
    assert_eq!(count(&cluster, leader), AlgebraicValue::Integer(1));
    assert_eq!(cluster.faults(), []);
}

#[test]
fn a_simulated_crash_is_a_power_loss() {
    let group = SyncPolicy::Group {
        max_delay_ms: 1_000_000,
        max_records: 1_000,
    };
    for (sync, kept) in [
        (group, 0),
        (SyncPolicy::None, 0),
        (SyncPolicy::EveryCommit, 1),
    ] {
        let config = ClusterConfig::new(schema()).with_sync(sync);
        let mut cluster = EngineCluster::new(&builder(3, 1), config).unwrap();
        let outcome = cluster
            .commit(0, TransactionMode::CoordinationFree, |tx| {
                tx.increment("counters", "pv", "value", 1);
            })
            .unwrap();
        assert_eq!(outcome.durable, kept == 1, "{sync:?}");
        cluster.isolate(0).unwrap();
        cluster.crash(0).unwrap();
        cluster.restart(0).unwrap();
        assert_eq!(
            cluster.read(0, "counters", "pv", "value").unwrap(),
            AlgebraicValue::Integer(kept),
            "{sync:?}: only what was synced survives"
        );
        assert!(cluster.faults().is_empty(), "{:?}", cluster.faults());
    }
}

#[test]
fn runs_cut_into_event_budgets_are_the_uninterrupted_runs() {
    let run = |budget: usize| {
        let mut cluster = raft_cluster(4);
        let mut calls = 0;
        while !cluster.run_to(SimTime::from_millis(300), budget) {
            calls += 1;
        }
        increment(&mut cluster, 1, 2);
        let until = cluster.now().saturating_add(Duration::from_secs(5));
        let settled_at = loop {
            calls += 1;
            if let Some(result) = cluster.run_until_quiescent_within(until, budget) {
                break result.unwrap();
            }
        };
        (cluster.simulation().trace_hash(), settled_at, calls)
    };
    let (whole, whole_at, _) = run(usize::MAX);
    let (cut, cut_at, calls) = run(5);
    assert!(
        calls > 20,
        "the budget must have cut the runs: {calls} calls"
    );
    assert_eq!((cut, cut_at), (whole, whole_at));
    // A deadline reached before the cluster settles is reported as such.
    let mut cluster = EngineCluster::new(&builder(2, 1), ClusterConfig::new(schema())).unwrap();
    cluster.isolate(0).unwrap();
    increment(&mut cluster, 0, 1);
    let until = cluster.now().saturating_add(Duration::from_millis(50));
    assert!(matches!(
        cluster.run_until_quiescent_within(until, usize::MAX),
        Some(Err(ClusterError::Simulation(
            SimError::DeadlineReached { .. }
        )))
    ));
}

#[test]
fn a_cluster_can_be_used_and_dropped_on_another_thread() {
    let mut cluster = EngineCluster::new(&builder(3, 2), ClusterConfig::new(schema())).unwrap();
    let root = cluster.root().to_path_buf();
    increment(&mut cluster, 0, 3);
    let counted = std::thread::spawn(move || {
        cluster.run_until_quiescent(Duration::from_secs(5)).unwrap();
        count(&cluster, 2)
    })
    .join()
    .unwrap();
    assert_eq!(counted, AlgebraicValue::Integer(3));
    // Dropped on that thread: its temporary directory went with it.
    assert!(!root.exists(), "{}", root.display());
}
