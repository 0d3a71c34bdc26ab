use super::*;
use crate::seeds::{SweepName, sweep_parallel};

/// Transactions per seed in the sweep (as many as the chaos sweep's).
const SWEEP_OPS: usize = 2000;
/// Seeds in the sweep run by `cargo test` (more with `RHIZO_SIM_SEEDS=N`).
const SWEEP_SEEDS: u64 = 200;

/// The membership sweep: each seed's chaos run (its own cluster, gossip, loss, duplication,
/// reordering, partitions, crashes) with a join while views differ and a removal while down
/// followed by a restart and a re-add, at points the seed draws; every checker of the chaos
/// sweep, and the metadata checker, must pass once healed and every view agrees.
#[test]
fn membership_seed_sweep() {
    let name = SweepName {
        package: env!("CARGO_PKG_NAME"),
        test: "membership_seed_sweep",
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let snapshots = std::sync::atomic::AtomicU64::new(0);
    let ran = sweep_parallel(name, SWEEP_SEEDS, threads, |seed| {
        let report = chaos_with_membership(seed, SWEEP_OPS).map_err(|failure| {
            let settings = ChaosSettings::draw(seed, SWEEP_OPS);
            let plan = MembershipPlan::draw(seed, settings.nodes, SWEEP_OPS);
            format!("{failure} (settings: {settings:?}; membership: {plan:?})")
        })?;
        if report.chaos.acknowledged != SWEEP_OPS as u64 {
            return Err(format!(
                "only {} of {SWEEP_OPS} commits acknowledged",
                report.chaos.acknowledged
            ));
        }
        snapshots.fetch_add(report.snapshots_sent, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    eprintln!(
        "membership sweep: {ran} seeds × {SWEEP_OPS} ops; {} whole states sent",
        snapshots.into_inner()
    );
}

#[test]
fn membership_runs_are_deterministic_and_differ_from_plain_chaos() {
    let a = chaos_with_membership(4, 300).unwrap();
    assert_eq!(a, chaos_with_membership(4, 300).unwrap());
    let plain = super::super::chaos(4, 300).unwrap();
    assert_eq!(a.chaos.settings, plain.settings);
    assert_ne!(a.chaos.trace_hash, plain.trace_hash);
}

/// Both changes reach the replicas: a member that lacks collected updates is sent a whole
/// state in some run (the path defects of joins and re-adds live on).
#[test]
fn membership_runs_send_whole_states() {
    let snapshots: u64 = (0..8)
        .map(|seed| chaos_with_membership(seed, 600).unwrap().snapshots_sent)
        .sum();
    assert!(snapshots > 0, "no run sent a whole state");
}

#[test]
fn membership_plans_stay_in_their_ranges() {
    for seed in 0..300 {
        let nodes = 3 + (seed % 5) as usize;
        let ops = 2000;
        let plan = MembershipPlan::draw(seed, nodes, ops);
        assert_eq!(plan.newcomer, nodes - 1);
        let first = plan.first_to_count.len();
        assert!((1..nodes - 1).contains(&first), "{plan:?}");
        assert!(plan.first_to_count.windows(2).all(|w| w[0] < w[1]));
        assert!(plan.first_to_count.iter().all(|&n| n < plan.newcomer));
        assert!(plan.removed < plan.newcomer);
        assert!(1 <= plan.count_first_at && plan.count_first_at < plan.count_all_at);
        assert!(plan.count_all_at <= ops, "{plan:?}");
        assert!(1 <= plan.remove_at && plan.remove_at < plan.restart_at);
        assert!(
            plan.restart_at <= plan.re_add_at && plan.re_add_at <= ops,
            "{plan:?}"
        );
    }
}

/// A restarted node counts every configured node until it is given its view again; a node
/// given a view counts exactly it.
#[test]
fn a_restarted_node_is_given_its_view_again() {
    let settings = ChaosSettings::draw(1, 10);
    let mut cluster = settings
        .builder(1)
        .build_replicas(crate::workload::schema())
        .unwrap();
    let nodes = settings.nodes;
    let plan = MembershipPlan::draw(1, nodes, 10);
    let mut membership = Membership::new(plan.clone(), nodes);
    membership.start(&mut cluster).unwrap();
    let counts_newcomer = |cluster: &SimulatedCluster<ReplicaNode>, node: usize| {
        let newcomer = cluster.node_id(plan.newcomer).unwrap();
        cluster
            .replica(node)
            .unwrap()
            .members()
            .any(|m| m == newcomer)
    };
    assert!(!counts_newcomer(&cluster, 0));
    assert!(counts_newcomer(&cluster, plan.newcomer));
    cluster.crash(0).unwrap();
    cluster.restart(0).unwrap();
    assert!(
        counts_newcomer(&cluster, 0),
        "configured members after a restart"
    );
    membership.after_restarts(&mut cluster, &[0]).unwrap();
    assert!(!counts_newcomer(&cluster, 0));
    membership.count_everyone(&mut cluster).unwrap();
    assert!((0..nodes).all(|n| counts_newcomer(&cluster, n)));
}
