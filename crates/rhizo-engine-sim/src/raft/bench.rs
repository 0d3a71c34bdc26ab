//! Commit latency of the Raft path (and of the coordination-free path, for comparison) on the
//! simulator, in virtual time, with closed-loop clients: one per node, each starting its next
//! transaction as soon as the previous one is answered.

use std::time::{Duration, Instant};

use rhizo_sim::LatencyModel;

use rhizo_txn::TransactionMode;
use rhizo_txn::raft::RaftConfig;

use super::{RaftSimConfig, RaftWorkload, build};

/// Commit latencies of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyReport {
    /// Median commit latency, virtual milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, virtual milliseconds.
    pub p99_ms: f64,
    /// Mean, virtual milliseconds.
    pub mean_ms: f64,
    /// Wall-clock CPU time of the whole simulation per commit, microseconds (Raft, replica,
    /// encoding and the simulator itself; an upper bound on the protocol's own cost).
    pub cpu_us_per_commit: f64,
    /// Commits per virtual second, cluster-wide.
    pub tx_per_sec: f64,
    /// Transactions measured.
    pub commits: usize,
}

/// A tick long enough that elections are not triggered by slow links: a quarter of the
/// largest one-way delay (at least 1 ms), with elections after 10–20 ticks.
fn tick_for(network: &LatencyModel) -> Duration {
    let worst = match network {
        LatencyModel::Constant(d) => *d,
        LatencyModel::Uniform { max, .. } => *max,
        LatencyModel::Lan => Duration::from_micros(500),
        LatencyModel::Regions(matrix) => {
            let mut worst = Duration::ZERO;
            for a in 0..matrix.region_count() {
                for b in 0..matrix.region_count() {
                    worst = worst.max(matrix.one_way(a, b).unwrap_or_default());
                }
            }
            worst
        }
    };
    (worst / 4).max(Duration::from_millis(1))
}

/// Runs closed-loop coordinated commits of `ops_per_tx` increments on a `nodes`-node Raft
/// cluster over `network` until `commits` have committed, and reports their latency.
pub fn commit_latency(
    network: LatencyModel,
    nodes: usize,
    ops_per_tx: u32,
    commits: usize,
    seed: u64,
) -> Result<LatencyReport, String> {
    commit_latency_in(
        TransactionMode::Coordinated,
        network,
        nodes,
        ops_per_tx,
        commits,
        seed,
    )
}

/// [`commit_latency`] in any mode: `CoordinationFree` measures the local path on the same
/// cluster and network (its commits are answered without a message, so 0 ms of virtual time).
pub fn commit_latency_in(
    mode: TransactionMode,
    network: LatencyModel,
    nodes: usize,
    ops_per_tx: u32,
    commits: usize,
    seed: u64,
) -> Result<LatencyReport, String> {
    if commits == 0 || nodes == 0 || ops_per_tx == 0 {
        return Err("nodes, ops_per_tx and commits must be at least 1".to_owned());
    }
    let tick = tick_for(&network);
    let config = RaftSimConfig {
        nodes,
        latency: network,
        jitter: Duration::ZERO,
        loss_rate: 0.0,
        tick,
        raft: RaftConfig {
            proposal_timeout_ticks: 200,
            compact_after_entries: 4096,
            ..RaftConfig::default()
        },
        sync_every_ticks: 5,
        workload: RaftWorkload::Commits { ops_per_tx, mode },
        faults: false,
        duration: Duration::ZERO,
    };
    let started = Instant::now();
    let mut sim = build(&config, seed)?;
    let limit = tick * 200_000;
    let count = |c: &rhizo_sim::SimulatedCluster<super::RaftSimNode>| {
        c.running_nodes()
            .map(|(_, n)| n.latencies().len())
            .sum::<usize>()
    };
    let first = sim.cluster.now();
    sim.cluster
        .run_until(limit, |c| count(c) >= commits)
        .map_err(|e| format!("{commits} commits did not finish: {e}"))?;
    let cpu = started.elapsed();
    let elapsed = sim.cluster.now().saturating_since(first);
    let mut latencies: Vec<u64> = sim
        .cluster
        .running_nodes()
        .flat_map(|(_, n)| n.latencies().iter().copied())
        .collect();
    latencies.sort_unstable();
    let n = latencies.len();
    let at = |q: f64| latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
    Ok(LatencyReport {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        mean_ms: latencies.iter().sum::<u64>() as f64 / n as f64 / 1000.0,
        cpu_us_per_commit: cpu.as_secs_f64() * 1e6 / n as f64,
        tx_per_sec: n as f64 / elapsed.as_secs_f64().max(1e-9),
        commits: n,
    })
}
