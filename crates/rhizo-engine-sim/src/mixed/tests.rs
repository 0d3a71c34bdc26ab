//! The mixed sweep over seeds, and what a run must exercise.

use std::sync::Mutex;

use rhizo_sim::seeds::{SweepName, sweep_parallel};

use super::*;

/// Seeds `cargo test` runs (more with `RHIZO_SIM_SEEDS=N`, one with `RHIZO_SIM_SEED=N`).
const SWEEP_SEEDS: u64 = 1000;

/// The mixed scenario over many seeds, each drawing its own faults and workload: what the
/// clients were told must pass every checker (see [`run_mixed_scenario`]).
#[test]
fn mixed_seed_sweep() {
    let name = SweepName {
        package: env!("CARGO_PKG_NAME"),
        test: "mixed_seed_sweep",
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let totals = Mutex::new(MixedReport::default());
    let ran = sweep_parallel(name, SWEEP_SEEDS, threads, |seed| {
        let report = run_mixed_scenario(seed)
            .map_err(|e| format!("{e} (settings: {:?})", MixedSettings::draw(seed)))?;
        let mut totals = totals.lock().expect("no thread panics holding it");
        for i in 0..3 {
            totals.transfers[i] += report.transfers[i];
            totals.compare_and_sets[i] += report.compare_and_sets[i];
        }
        totals.local_commits += report.local_commits;
        totals.crashes += report.crashes;
        totals.max_snapshot_index = totals.max_snapshot_index.max(report.max_snapshot_index);
        Ok(())
    })
    .unwrap();
    let totals = totals.into_inner().expect("the sweep has ended");
    eprintln!(
        "mixed sweep: {ran} seeds; transfers committed/refused/unknown {:?}, compare-and-sets \
         {:?}, {} local commits, {} power losses, snapshots up to index {}",
        totals.transfers,
        totals.compare_and_sets,
        totals.local_commits,
        totals.crashes,
        totals.max_snapshot_index
    );
}

#[test]
fn a_mixed_run_exercises_every_ingredient() {
    let reports: Vec<MixedReport> = (0..6)
        .map(|seed| run_mixed_scenario(seed).unwrap())
        .collect();
    let any = |f: &dyn Fn(&MixedReport) -> bool| reports.iter().any(f);
    assert!(any(&|r| r.crashes > 0), "{reports:?}");
    assert!(any(&|r| r.max_snapshot_index > 0), "{reports:?}");
    assert!(
        any(&|r| r.transfers[0] > 0 && r.transfers[1] > 0),
        "{reports:?}"
    );
    assert!(
        any(&|r| r.compare_and_sets[0] > 0 && r.compare_and_sets[1] > 0),
        "{reports:?}"
    );
    assert!(
        any(&|r| r.transfers[2] + r.compare_and_sets[2] > 0),
        "{reports:?}"
    );
    assert!(
        reports
            .iter()
            .all(|r| r.column_declared && r.local_commits > 0),
        "{reports:?}"
    );
}

#[test]
fn a_mixed_run_replays_from_its_seed() {
    assert_eq!(
        run_mixed_scenario(3).unwrap(),
        run_mixed_scenario(3).unwrap()
    );
}
