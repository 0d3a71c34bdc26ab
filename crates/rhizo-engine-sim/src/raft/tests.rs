//! The Raft scenarios on the simulator: the seed sweep, its checkers, the latency bench.

use rhizo_sim::seeds::{SweepName, sweep_parallel};
use rhizo_sim::{LatencyModel, RegionMatrix};
use rhizo_txn::TransactionMode;

use super::*;

#[test]
fn a_healthy_cluster_passes_every_checker() {
    let mut config = RaftSimConfig::lan_with_faults(30);
    config.faults = false;
    for seed in 0..3 {
        let report = run_raft_scenario(&config, seed).unwrap();
        assert!(report.acknowledged > 10, "{report:?}");
        assert!(report.register_ops > 10, "{report:?}");
    }
}

/// ≥ 200 seeds of five nodes with partitions, isolated and crashed leaders, and restarts.
#[test]
fn raft_seed_sweep_with_partitions_and_leader_crashes() {
    let config = RaftSimConfig::lan_with_faults(24);
    let name = SweepName {
        package: "rhizo-engine-sim",
        test: "raft_seed_sweep_with_partitions_and_leader_crashes",
    };
    let ran = sweep_parallel(name, 200, 2, |seed| {
        run_raft_scenario(&config, seed).map(|_| ())
    })
    .unwrap();
    assert!(ran >= 1);
}

#[test]
fn the_sweep_exercises_faults_and_snapshots() {
    let config = RaftSimConfig::lan_with_faults(24);
    let reports: Vec<RaftScenarioReport> = (0..8)
        .map(|seed| run_raft_scenario(&config, seed).unwrap())
        .collect();
    assert!(reports.iter().any(|r| r.crashes > 0), "{reports:?}");
    assert!(
        reports.iter().any(|r| r.terms_with_leader > 1),
        "{reports:?}"
    );
    assert!(
        reports.iter().any(|r| r.max_snapshot_index > 0),
        "{reports:?}"
    );
}

#[test]
fn latency_scenario_reports_lan_and_regions() {
    let lan = bench::commit_latency(LatencyModel::Lan, 3, 2, 60, 1).unwrap();
    assert!(lan.commits >= 60);
    assert!(lan.p50_ms > 0.0 && lan.p50_ms <= lan.p99_ms, "{lan:?}");
    assert!(lan.p99_ms < 10.0, "{lan:?}");
    let regions = LatencyModel::Regions(RegionMatrix::sf_london_tokyo());
    let wan = bench::commit_latency(regions.clone(), 3, 2, 30, 1).unwrap();
    // A quorum round trip crosses at least the nearest region pair (55 ms one way).
    assert!(wan.p50_ms >= 100.0, "{wan:?}");
    let local =
        bench::commit_latency_in(TransactionMode::CoordinationFree, regions, 3, 2, 30, 1).unwrap();
    assert_eq!(local.p99_ms, 0.0);
    assert!(bench::commit_latency(LatencyModel::Lan, 3, 2, 0, 1).is_err());
}
