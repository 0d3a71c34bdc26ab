use super::*;
use crate::seeds::{SweepName, sweep_parallel};

/// Transactions per seed in the sweep.
const SWEEP_OPS: usize = 2000;
/// Seeds in the sweep run by `cargo test` (more with `RHIZO_SIM_SEEDS=N`).
const SWEEP_SEEDS: u64 = 1000;

/// The seed sweep: each seed draws its own cluster (3–7 nodes), gossip, latency, loss
/// (0–30 %), duplication (0–50 %), reordering and fault schedule (two-way and one-way
/// partitions, isolation, heals, crashes, restarts); 2,000 transactions of every kind run
/// under those faults with reads recorded throughout; then the network calms, every node
/// restarts, and the cluster must converge within `CHAOS_CONVERGENCE_ROUNDS` rounds and fall
/// silent; every checker then judges the history and the final state.
#[test]
fn chaos_seed_sweep() {
    let name = SweepName {
        package: env!("CARGO_PKG_NAME"),
        test: "chaos_seed_sweep",
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let worst_rounds = std::sync::atomic::AtomicU64::new(0);
    let ran = sweep_parallel(name, SWEEP_SEEDS, threads, |seed| {
        let report = chaos(seed, SWEEP_OPS).map_err(|failure| {
            format!(
                "{failure} (settings: {:?})",
                ChaosSettings::draw(seed, SWEEP_OPS)
            )
        })?;
        if report.acknowledged != SWEEP_OPS as u64 {
            return Err(format!(
                "only {} of {SWEEP_OPS} commits acknowledged",
                report.acknowledged
            ));
        }
        worst_rounds.fetch_max(
            report.rounds_to_converge,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    })
    .unwrap();
    eprintln!(
        "chaos sweep: {ran} seeds × {SWEEP_OPS} ops; worst convergence {} rounds after healing (bound {CHAOS_CONVERGENCE_ROUNDS})",
        worst_rounds.into_inner()
    );
}

#[test]
fn chaos_runs_are_deterministic_and_seeds_differ() {
    let a = chaos(11, 300).unwrap();
    let b = chaos(11, 300).unwrap();
    assert_eq!(a, b);
    let c = chaos(12, 300).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}

/// Committing through prepared cells is committing by key: under the same faults, crashes and
/// restarts (after which the handles belong to a replica that no longer exists), the same
/// acknowledgements, messages, bytes, checkers' verdicts and event trace.
#[test]
fn prepared_commits_run_exactly_as_commits_by_key() {
    let mut crashes = 0;
    for seed in [3, 8, 21] {
        let settings = ChaosSettings::draw(seed, 600);
        let run = |commits| {
            let settings = ChaosSettings {
                commits,
                ..settings.clone()
            };
            let mut report = chaos_with(seed, settings).unwrap();
            report.settings.commits = CommitPath::Keys;
            report
        };
        let by_key = run(CommitPath::Keys);
        crashes += by_key.crashes;
        assert_eq!(run(CommitPath::Prepared), by_key, "seed {seed}");
    }
    assert!(crashes > 0, "some run restarts a node");
    for mix in [OpMix::ALL, OpMix::COUNTERS] {
        let spec = ScenarioSpec {
            keys: KeyDistribution::Hot {
                keys: 12,
                hot_percent: 60,
            },
            mix,
            ..ScenarioSpec::new(5, 300, 9)
        };
        let prepared = run(&ScenarioSpec {
            commits: CommitPath::Prepared,
            ..spec
        })
        .unwrap();
        let by_key = run(&ScenarioSpec {
            commits: CommitPath::Keys,
            ..spec
        })
        .unwrap();
        assert_eq!(prepared, by_key);
    }
}

#[test]
fn chaos_settings_stay_in_their_ranges() {
    let mut saw = (false, false, false);
    for seed in 0..200 {
        let s = ChaosSettings::draw(seed, 10);
        assert!((3..=7).contains(&s.nodes));
        assert!((0.0..=0.3).contains(&s.loss));
        assert!((0.0..=0.5).contains(&s.duplication));
        assert!((5..=20).contains(&s.sync_interval.as_millis()));
        saw.0 |= s.gossip == GossipStrategy::FullBroadcast;
        saw.1 |= matches!(s.gossip, GossipStrategy::PushPull { .. });
        saw.2 |= matches!(s.keys, KeyDistribution::Hot { .. });
    }
    assert_eq!(
        saw,
        (true, true, true),
        "every variant is drawn by some seed"
    );
}

#[test]
fn throughput_converges_with_fewer_messages_than_ops() {
    let report = throughput(5, 200, 3).unwrap();
    assert_eq!(report.ops, 1000);
    assert!(report.messages_per_op <= 1.0, "{report:?}");
    assert!(report.rounds_to_converge >= 1, "{report:?}");
    assert!(report.messages_to_quiesce >= report.messages);
    assert_eq!(report, throughput(5, 200, 3).unwrap(), "deterministic");
}

#[test]
fn push_pull_converges_in_logarithmic_rounds() {
    let spec = ScenarioSpec {
        gossip: GossipStrategy::PushPull { fanout: 3 },
        ..ScenarioSpec::new(32, 20, 5)
    };
    let report = run(&spec).unwrap();
    // ⌈log2 32⌉ + 2 = 7 rounds.
    assert!(report.rounds_to_converge <= 7, "{report:?}");
}

#[test]
fn rounds_count_partial_rounds() {
    let ms = Duration::from_millis;
    assert_eq!(rounds(ms(0), ms(10)), 0);
    assert_eq!(rounds(ms(1), ms(10)), 1);
    assert_eq!(rounds(ms(10), ms(10)), 1);
    assert_eq!(rounds(ms(11), ms(10)), 2);
}
