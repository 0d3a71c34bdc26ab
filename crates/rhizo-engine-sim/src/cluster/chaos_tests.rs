//! Several engines on temp directories over rhizo-sim's network, with loss, reordering,
//! crashes and restarts: they converge, and nothing acknowledged is lost.

use std::time::Duration;

use rand::Rng;
use rhizo_sim::{NetworkCondition, SimulationBuilder};

use rhizo_algebra::AlgebraicValue;
use rhizo_commit::Operations;
use rhizo_txn::TransactionMode;

use super::{ClusterConfig, EngineCluster};
use crate::testkit::*;

const NODES: usize = 4;

fn run(seed: u64) {
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(NODES)
        .seed(seed)
        .network_condition(NetworkCondition::Chaos)
        .sync_interval(Some(Duration::from_millis(5)));
    let mut cluster = EngineCluster::new(&builder, ClusterConfig::new(test_schema())).unwrap();
    // What the clients were told.
    let mut acked_total = 0;
    let mut acked_elements: Vec<String> = Vec::new();
    let mut crashed: Option<usize> = None;
    for round in 0..80usize {
        let (target, amount) = {
            let rng = cluster.simulation_mut().workload_rng();
            (rng.random_range(0..NODES), rng.random_range(1..100i64))
        };
        if round % 20 == 10 {
            if let Some(down) = crashed.take() {
                cluster.restart(down).unwrap();
            }
            cluster.crash(target).unwrap();
            crashed = Some(target);
        }
        if crashed != Some(target) {
            let element = format!("e{round}");
            let outcome = cluster
                .commit(target, TransactionMode::CoordinationFree, |tx| {
                    tx.increment("counters", "total", "value", amount)
                        .add_to_set("users", "all", "tags", &element);
                })
                .unwrap();
            assert!(outcome.durable);
            acked_total += amount;
            acked_elements.push(element);
        }
        cluster.run_for(Duration::from_millis(3));
    }
    if let Some(down) = crashed {
        cluster.restart(down).unwrap();
    }
    cluster
        .run_until_quiescent(Duration::from_secs(60))
        .unwrap();
    cluster.verify_convergence().unwrap();
    assert_eq!(cluster.faults(), []);
    for i in 0..NODES {
        assert_eq!(
            cluster.read(i, "counters", "total", "value").unwrap(),
            AlgebraicValue::Integer(acked_total)
        );
        assert_eq!(
            cluster.read(i, "users", "all", "tags").unwrap(),
            AlgebraicValue::string_set(acked_elements.iter().cloned())
        );
    }
    assert!(cluster.stats().crashes >= 3);
}

#[test]
fn engines_over_the_simulated_network_converge_through_crashes_and_keep_every_ack() {
    for seed in 0..3 {
        run(seed);
    }
}
