//! [`chaos`](super::chaos) runs that also change membership, at points drawn from the seed:
//!
//! - **A join while views differ.** The last node is a newcomer no other member counts at
//!   first (it counts everyone, and may commit: the others merge what it sends). At one point
//!   some of the members count it, the others only later; meanwhile the workload's
//!   observed-remove removes go on, and a member that does not count the newcomer yet may
//!   collect a tombstone the newcomer still needs.
//! - **A removal while down, then a re-add.** One of the other members is crashed and every
//!   other member stops counting it, so collection goes on without it; later it restarts with
//!   its stale state and, later still, every member counts it again.
//!
//! Membership is each driver's configuration, not part of a replica's durable log: a node
//! restarted by a fault is given its view again at once, as a deployment's configuration would.
//! Once healed, every member counts every other, and the run must pass every checker of
//! [`chaos`](super::chaos) — convergence to identical bytes, no acknowledged write lost, no
//! removed element back (the oracle) — and the metadata checker: once every member has seen
//! every remove, no tombstone or index entry is left anywhere.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::{ChaosFailure, ChaosReport, ChaosSettings, run_chaos};
use crate::network::up_to;
use crate::{ReplicaNode, SimError, SimulatedCluster};

#[cfg(test)]
mod tests;

/// When and to whom a run's membership changes happen, drawn from its seed. Points are
/// transaction numbers (`1..=ops`): an event at `n` happens just before the `n`th transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipPlan {
    /// The node that joins late: the last one.
    pub newcomer: usize,
    /// The members that count the newcomer first (a non-empty proper subset of the others
    /// when there are two or more of them).
    pub first_to_count: Vec<usize>,
    /// When they start counting it.
    pub count_first_at: usize,
    /// When every other member counts it too.
    pub count_all_at: usize,
    /// The member removed while down (never the newcomer).
    pub removed: usize,
    /// When it is crashed (if running) and every other member stops counting it.
    pub remove_at: usize,
    /// When it restarts, with the state it had when it went down.
    pub restart_at: usize,
    /// When every other member counts it again.
    pub re_add_at: usize,
}

impl MembershipPlan {
    /// The plan seed `seed` gives a run of `nodes` nodes and `ops` transactions (at least 20).
    pub fn draw(seed: u64, nodes: usize, ops: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // A stream of its own: the cluster's streams and the chaos settings' stay as they are.
        rng.set_stream(u64::MAX - 1);
        let ops = ops.max(20) as u64;
        let newcomer = nodes - 1;
        let mut others: Vec<usize> = (0..newcomer).collect();
        let first = 1 + up_to(&mut rng, (others.len() as u64).saturating_sub(2)) as usize;
        // A partial Fisher–Yates shuffle picks `first` of the others.
        for i in 0..first {
            let j = i + up_to(&mut rng, (others.len() - 1 - i) as u64) as usize;
            others.swap(i, j);
        }
        let mut first_to_count = others[..first].to_vec();
        first_to_count.sort_unstable();
        let count_first_at = 1 + up_to(&mut rng, ops / 2) as usize;
        let count_all_at = count_first_at + 1 + up_to(&mut rng, ops / 4) as usize;
        let removed = up_to(&mut rng, newcomer as u64 - 1) as usize;
        let remove_at = 1 + up_to(&mut rng, ops / 2) as usize;
        let restart_at = remove_at + (ops / 20) as usize + up_to(&mut rng, ops / 5) as usize;
        let re_add_at = restart_at + up_to(&mut rng, ops / 8) as usize;
        Self {
            newcomer,
            first_to_count,
            count_first_at,
            count_all_at,
            removed,
            remove_at,
            restart_at,
            re_add_at,
        }
    }
}

/// What a [`chaos_with_membership`] run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipReport {
    /// The chaos part.
    pub chaos: ChaosReport,
    /// The drawn plan.
    pub plan: MembershipPlan,
    /// Whole states sent, summed over the replicas running at the end (what a member that
    /// lacks collected updates is given).
    pub snapshots_sent: u64,
}

/// A [`chaos`](super::chaos) run of seed `seed` with the membership changes its
/// [`MembershipPlan`] draws; see the [module](self) for what is checked.
///
/// ```
/// let report = rhizo_sim::scenario::membership::chaos_with_membership(7, 200).unwrap();
/// assert_eq!(report.plan.newcomer, report.chaos.settings.nodes - 1);
/// ```
pub fn chaos_with_membership(seed: u64, ops: usize) -> Result<MembershipReport, ChaosFailure> {
    let settings = ChaosSettings::draw(seed, ops);
    let plan = MembershipPlan::draw(seed, settings.nodes, ops);
    let mut membership = Membership::new(plan.clone(), settings.nodes);
    let chaos = run_chaos(seed, settings, Some(&mut membership))?;
    Ok(MembershipReport {
        chaos,
        plan,
        snapshots_sent: membership.snapshots_sent,
    })
}

/// The membership side of a run: the plan, and each node's view of who the members are.
#[derive(Debug)]
pub(super) struct Membership {
    plan: MembershipPlan,
    /// `views[i][m]`: whether node `i` counts node `m` (always true for `m == i`).
    views: Vec<Vec<bool>>,
    /// The removed member while it must stay down.
    held_down: Option<usize>,
    /// Filled in by the liveness phase.
    pub(super) snapshots_sent: u64,
}

impl Membership {
    fn new(plan: MembershipPlan, nodes: usize) -> Self {
        Self {
            plan,
            views: vec![vec![true; nodes]; nodes],
            held_down: None,
            snapshots_sent: 0,
        }
    }

    /// The node a fault action must not restart now.
    pub(super) fn held_down(&self) -> Option<usize> {
        self.held_down
    }

    /// At time zero, before any transaction: no member but the newcomer itself counts it.
    pub(super) fn start(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
    ) -> Result<(), SimError> {
        let newcomer = self.plan.newcomer;
        for node in (0..self.views.len()).filter(|&n| n != newcomer) {
            self.set_view(cluster, node, newcomer, false)?;
        }
        Ok(())
    }

    /// Carries out the plan's events due just before transaction `op`.
    pub(super) fn at_op(
        &mut self,
        op: usize,
        cluster: &mut SimulatedCluster<ReplicaNode>,
    ) -> Result<(), SimError> {
        let plan = self.plan.clone();
        if op == plan.count_first_at {
            for &node in &plan.first_to_count {
                self.set_view(cluster, node, plan.newcomer, true)?;
            }
        }
        if op == plan.count_all_at {
            for node in 0..self.views.len() {
                self.set_view(cluster, node, plan.newcomer, true)?;
            }
        }
        if op == plan.remove_at {
            self.remove_while_down(cluster)?;
        }
        if op == plan.restart_at {
            self.held_down = None;
            if cluster.is_crashed(plan.removed)? {
                cluster.restart(plan.removed)?;
                self.restored(cluster, plan.removed)?;
            }
        }
        if op == plan.re_add_at {
            for node in 0..self.views.len() {
                self.set_view(cluster, node, plan.removed, true)?;
            }
        }
        Ok(())
    }

    /// Crashes the removed member (keeping another node running, so the workload has
    /// somewhere to commit) and makes every other member stop counting it.
    fn remove_while_down(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
    ) -> Result<(), SimError> {
        let removed = self.plan.removed;
        let nodes = self.views.len();
        if !cluster.is_crashed(removed)? {
            let others_down = (0..nodes)
                .filter(|&n| n != removed)
                .try_fold(true, |all, n| {
                    cluster.is_crashed(n).map(|crashed| all && crashed)
                })?;
            if others_down {
                let other = (removed + 1) % nodes;
                cluster.restart(other)?;
                self.restored(cluster, other)?;
            }
            cluster.crash(removed)?;
        }
        self.held_down = Some(removed);
        for node in 0..nodes {
            self.set_view(cluster, node, removed, false)?;
        }
        Ok(())
    }

    /// Gives each node that was in `crashed_before` and runs now its view again.
    pub(super) fn after_restarts(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
        crashed_before: &[usize],
    ) -> Result<(), SimError> {
        for &node in crashed_before {
            if !cluster.is_crashed(node)? {
                self.restored(cluster, node)?;
            }
        }
        Ok(())
    }

    /// Gives a node just restarted (which counts every configured node) its view again.
    pub(super) fn restored(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
        node: usize,
    ) -> Result<(), SimError> {
        for member in 0..self.views.len() {
            if !self.views[node][member] {
                cluster.remove_member_on_node(node, member)?;
            }
        }
        Ok(())
    }

    /// Makes every member count every other (the end of the run: every view agrees).
    pub(super) fn count_everyone(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
    ) -> Result<(), SimError> {
        self.held_down = None;
        for node in 0..self.views.len() {
            for member in 0..self.views.len() {
                self.set_view(cluster, node, member, true)?;
            }
        }
        Ok(())
    }

    /// Sets whether `node` counts `member`, on its replica too if it runs (a crashed node is
    /// given its view when it restarts). A node always counts itself.
    fn set_view(
        &mut self,
        cluster: &mut SimulatedCluster<ReplicaNode>,
        node: usize,
        member: usize,
        counted: bool,
    ) -> Result<(), SimError> {
        if node == member || self.views[node][member] == counted {
            return Ok(());
        }
        self.views[node][member] = counted;
        if cluster.is_crashed(node)? {
            return Ok(());
        }
        if counted {
            cluster.add_member_on_node(node, member)
        } else {
            cluster.remove_member_on_node(node, member)
        }
    }
}
