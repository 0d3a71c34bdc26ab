//! The scenarios of `cargo xtask bench`. Each returns rows of `results.json`; wall-clock timing
//! lives here, in the harness, never in the deterministic crates it drives.

use std::time::{Duration, Instant};

use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, Ready, Replica, ReplicaConfig};
use rhizo_sim::scenario::{self, CommitPath, ScenarioSpec};
use rhizo_sim::workload::{self, KeyDistribution, OpMix, Workload};
use rhizo_sim::{GossipStrategy, LatencyModel, RegionMatrix, SimulationBuilder};

use crate::results::{ConvergenceRow, LatencyRow, ThroughputRow};
use rhizo_commit::Operations;

/// Latency percentiles of a sample, in milliseconds.
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) mean: f64,
}

pub(crate) fn percentiles(samples_ns: &mut [u64]) -> Percentiles {
    samples_ns.sort_unstable();
    let at = |q: f64| {
        let i = ((samples_ns.len() as f64 - 1.0) * q).round() as usize;
        samples_ns[i] as f64 / 1e6
    };
    let mean =
        samples_ns.iter().map(|&x| x as f64).sum::<f64>() / samples_ns.len().max(1) as f64 / 1e6;
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        mean,
    }
}

/// Builds a transaction of `ops` ADDs on distinct rows (row names prepared by the caller, so
/// formatting is not measured).
fn adds(rows: &[String]) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    for row in rows {
        tx.increment("counters", row, "value", 1);
    }
    tx
}

/// Coordination-free commit latency: a replica that emits its durable records, as a node would,
/// commits `commits` transactions of `ops_per_tx` ADDs; each commit is timed from building the
/// transaction to having its acknowledgement in hand. No network is involved — that is the
/// point — so the figure is the same on every network model.
pub(crate) fn coordination_free_latency(ops_per_tx: usize, commits: usize) -> (Percentiles, f64) {
    let schema = workload::schema();
    let members: Vec<NodeId> = (0..5).map(NodeId::numbered).collect();
    let config = ReplicaConfig {
        members,
        ..ReplicaConfig::default()
    };
    let mut replica = Replica::new(NodeId::numbered(0), schema, config);
    let rows: Vec<Vec<String>> = (0..64)
        .map(|t| {
            (0..ops_per_tx)
                .map(|i| format!("row-{}", (t * 7 + i) % 1000))
                .collect()
        })
        .collect();
    let mut samples = Vec::with_capacity(commits);
    let mut ready = Ready::default();
    let started = Instant::now();
    for i in 0..commits {
        let begin = Instant::now();
        replica
            .commit(adds(&rows[i % rows.len()]))
            .expect("valid transaction");
        replica.take_ready_into(&mut ready);
        debug_assert_eq!(ready.committed.len(), 1);
        ready.clear();
        samples.push(begin.elapsed().as_nanos() as u64);
        if i % 1024 == 1023 {
            // Keep the index bounded as a syncing node would.
            replica.sync_with(NodeId::numbered(1));
            replica.take_ready();
        }
    }
    let cpu_us = started.elapsed().as_secs_f64() * 1e6 / commits as f64;
    (percentiles(&mut samples), cpu_us)
}

/// Latency rows for the coordination-free path on both network models.
pub(crate) fn coordination_free_rows(commits: usize) -> Vec<LatencyRow> {
    let mut rows = Vec::new();
    for ops in [1usize, 10, 100] {
        let (p, cpu) = coordination_free_latency(ops, commits);
        for network in ["lan", "regions"] {
            rows.push(LatencyRow {
                path: "coordination_free".into(),
                network: network.into(),
                ops_per_tx: ops,
                p50_ms: p.p50,
                p99_ms: p.p99,
                mean_ms: p.mean,
                cpu_us_per_commit: cpu,
                commits,
            });
        }
    }
    rows
}

/// One throughput row's workload: cluster size, key space and commit path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThroughputSize {
    /// Nodes.
    pub(crate) nodes: usize,
    /// Transactions (one increment each) per node.
    pub(crate) ops_per_node: usize,
    /// Rows drawn uniformly.
    pub(crate) keys: usize,
    /// Keys given by name (`Replica::commit`) rather than through prepared cells.
    pub(crate) by_name: bool,
    /// Timed runs after the first in the row's process; with none, the first run is the row.
    pub(crate) warm_runs: usize,
}

impl ThroughputSize {
    /// The published rows' workload: 100 rows through prepared cells.
    pub(crate) fn hot(nodes: usize, ops_per_node: usize) -> Self {
        Self {
            nodes,
            ops_per_node,
            keys: 100,
            by_name: false,
            warm_runs: WARM_RUNS,
        }
    }

    /// An application's key space: 100,000 rows, by name.
    pub(crate) fn wide(nodes: usize, ops_per_node: usize) -> Self {
        Self {
            nodes,
            ops_per_node,
            keys: 100_000,
            by_name: true,
            warm_runs: WARM_RUNS,
        }
    }

    /// The same workload run once in its process: for a row too large to repeat in the stage's
    /// time, whose one run is long enough to be its own steady state.
    pub(crate) fn once(self) -> Self {
        Self {
            warm_runs: 0,
            ..self
        }
    }

    /// "prepared" or "by_name", as rows name the path.
    pub(crate) fn commit_path(&self) -> &'static str {
        if self.by_name { "by_name" } else { "prepared" }
    }
}

/// Timed runs after the first in a throughput child process; the median is reported.
pub(crate) const WARM_RUNS: usize = 5;

/// Commit-then-converge on the simulated LAN (run in a child process for its own peak memory),
/// `1 + WARM_RUNS` times: the first run is reported as cold, the median of the others as the
/// steady state.
pub(crate) fn throughput(size: ThroughputSize, seed: u64) -> ThroughputRow {
    let ThroughputSize {
        nodes,
        ops_per_node,
        keys,
        by_name,
        warm_runs,
    } = size;
    // Push-pull gossip with fanout 3: each round a node exchanges digests and deltas with three
    // seeded peers, so messages grow with N·log N rather than N².
    let mut spec = ScenarioSpec::new(nodes, ops_per_node, seed);
    spec.gossip = GossipStrategy::PushPull { fanout: 3 };
    spec.keys = KeyDistribution::Uniform {
        keys: u32::try_from(keys).expect("a key space under 2^32 rows"),
    };
    spec.commits = if by_name {
        CommitPath::Keys
    } else {
        CommitPath::Prepared
    };
    let ops = (nodes * ops_per_node) as f64;
    // Each run's wall time, with what the kernel did for it (see `KernelShare`).
    let timed = || {
        let before = KernelShare::of_this_process();
        let started = Instant::now();
        let report = scenario::run(&spec);
        let wall = started.elapsed().as_secs_f64();
        (report, (wall, KernelShare::of_this_process().since(before)))
    };
    let (cold, (cold_wall, cold_kernel)) = timed();
    // One 20 x 1000 run takes about 10 ms, and on a shared VM a single sample of that length
    // moved by a third from one process to the next: the median of several runs is the steady
    // state, one run is not.
    let mut walls = Vec::with_capacity(warm_runs.max(1));
    let mut report = cold.map_err(|error| error.to_string());
    if warm_runs == 0 {
        walls.push((cold_wall, cold_kernel));
    }
    for _ in 0..warm_runs {
        let (warm, wall) = timed();
        walls.push(wall);
        // The same seed: every run must report the same messages, bytes and rounds.
        report = match (report, warm) {
            (Ok(first), Ok(warm)) if first != warm => Err(format!(
                "two runs of one seed differ: {first:?} vs {warm:?}"
            )),
            (Err(error), _) => Err(error),
            (_, Err(error)) => Err(error.to_string()),
            (Ok(first), Ok(_)) => Ok(first),
        };
    }
    walls.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, kernel) = walls[walls.len() / 2];
    match report {
        Ok(report) => ThroughputRow {
            nodes,
            ops_per_node,
            keys,
            commit_path: size.commit_path().into(),
            ops_per_sec: ops / wall,
            cold_ops_per_sec: ops / cold_wall,
            messages_per_op: report.messages_per_op,
            bytes_per_op: report.bytes as f64 / ops,
            peak_memory_bytes: peak_rss_bytes(),
            converged: true,
            rounds: report.rounds_to_converge,
            wall_seconds: wall,
            kernel_seconds: kernel.seconds,
            minor_faults: kernel.minor_faults,
            stopped: None,
        },
        Err(error) => {
            eprintln!("throughput {nodes}x{ops_per_node} failed: {error}");
            ThroughputRow {
                nodes,
                ops_per_node,
                keys,
                commit_path: size.commit_path().into(),
                ops_per_sec: 0.0,
                cold_ops_per_sec: 0.0,
                messages_per_op: 0.0,
                bytes_per_op: 0.0,
                peak_memory_bytes: peak_rss_bytes(),
                converged: false,
                rounds: 0,
                wall_seconds: wall,
                kernel_seconds: kernel.seconds,
                minor_faults: kernel.minor_faults,
                stopped: Some(error),
            }
        }
    }
}

/// What the kernel did for this process: its CPU time in the kernel and the page faults it
/// served without reading a disk (the first touch of a fresh page is one). A run that grows its
/// heap by gigabytes spends a share of its wall time there, which its own code does not show.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KernelShare {
    pub(crate) seconds: f64,
    pub(crate) minor_faults: u64,
}

impl KernelShare {
    /// The process's totals so far, from `/proc/self/stat`; zeros where it cannot be read.
    pub(crate) fn of_this_process() -> Self {
        std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| Self::parse(&stat))
            .unwrap_or_default()
    }

    /// The fields of a `/proc/PID/stat` line: after the command name (in parentheses, and
    /// free to hold spaces), `minflt` is the 8th and `stime` the 13th, in clock ticks of
    /// 1/100 s (the kernel's fixed `USER_HZ`).
    fn parse(stat: &str) -> Option<Self> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let minor_faults = fields.get(7)?.parse().ok()?;
        let ticks: u64 = fields.get(12)?.parse().ok()?;
        Some(Self {
            seconds: ticks as f64 / 100.0,
            minor_faults,
        })
    }

    /// What happened between `before` and these totals.
    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            seconds: (self.seconds - before.seconds).max(0.0),
            minor_faults: self.minor_faults.saturating_sub(before.minor_faults),
        }
    }
}

/// The process's peak resident set (VmHWM), or 0 where /proc is not available.
pub(crate) fn peak_rss_bytes() -> u64 {
    peak_rss_of("/proc/self/status")
}

/// The peak resident set (VmHWM) a `/proc/PID/status` file shows, or 0 where it cannot be read
/// (the process ended, or there is no /proc).
pub(crate) fn peak_rss_of(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| kb * 1024)
            })
        })
        .unwrap_or(0)
}

fn log_bound(nodes: usize) -> u64 {
    (nodes as f64).log2().ceil() as u64 + 2
}

const ROUND: Duration = Duration::from_millis(10);
const BOUND: Duration = Duration::from_secs(600);

/// Rounds to converge after the last write: every node commits `writes` transactions at time
/// zero, then gossip runs with `fanout` (0 = full broadcast) over a LAN that loses `loss`.
pub(crate) fn convergence_after_writes(
    nodes: usize,
    fanout: usize,
    loss: f64,
    seed: u64,
) -> ConvergenceRow {
    let gossip = if fanout == 0 {
        GossipStrategy::FullBroadcast
    } else {
        GossipStrategy::PushPull { fanout }
    };
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(nodes)
        .seed(seed)
        .latency(LatencyModel::Lan)
        .gossip(gossip)
        .sync_interval(Some(ROUND));
    builder.loss_rate(loss);
    let mut cluster = builder
        .build_replicas(workload::schema())
        .expect("valid settings");
    cluster.history_mut().set_recording(false);
    let mut load = Workload::new(KeyDistribution::Uniform { keys: 1000 }, OpMix::COUNTERS);
    for _ in 0..10 {
        for node in 0..nodes {
            let tx = load.next_transaction(cluster.workload_rng());
            cluster.commit_on_node(node, tx).expect("commits");
        }
    }
    let last = cluster.now();
    let converged = cluster
        .run_until_converged(BOUND, ROUND / 10)
        .expect("converges");
    cluster.verify_convergence().expect("bit-identical");
    let span = converged.saturating_since(last);
    ConvergenceRow {
        scenario: "after_writes".into(),
        nodes,
        fanout,
        loss,
        rounds: scenario::rounds(span, ROUND),
        virtual_ms: span.as_secs_f64() * 1e3,
        log_bound: log_bound(nodes),
    }
}

/// Rounds to converge after a partition heals: the cluster splits in two halves, both sides keep
/// committing for 50 rounds, then the partition heals.
pub(crate) fn convergence_after_heal(nodes: usize, fanout: usize, seed: u64) -> ConvergenceRow {
    let gossip = if fanout == 0 {
        GossipStrategy::FullBroadcast
    } else {
        GossipStrategy::PushPull { fanout }
    };
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(nodes)
        .seed(seed)
        .latency(LatencyModel::Lan)
        .gossip(gossip)
        .sync_interval(Some(ROUND));
    let mut cluster = builder
        .build_replicas(workload::schema())
        .expect("valid settings");
    cluster.history_mut().set_recording(false);
    let half = nodes / 2;
    for a in 0..half {
        for b in half..nodes {
            cluster.partition(a, b).expect("valid nodes");
        }
    }
    let mut load = Workload::new(KeyDistribution::Uniform { keys: 1000 }, OpMix::COUNTERS);
    for _ in 0..50 {
        for node in 0..nodes {
            let tx = load.next_transaction(cluster.workload_rng());
            cluster.commit_on_node(node, tx).expect("commits");
        }
        cluster.run_for(ROUND);
    }
    cluster.heal();
    let healed = cluster.now();
    let converged = cluster
        .run_until_converged(BOUND, ROUND / 10)
        .expect("converges");
    cluster.verify_convergence().expect("bit-identical");
    let span = converged.saturating_since(healed);
    ConvergenceRow {
        scenario: "after_partition_heal".into(),
        nodes,
        fanout,
        loss: 0.0,
        rounds: scenario::rounds(span, ROUND),
        virtual_ms: span.as_secs_f64() * 1e3,
        log_bound: log_bound(nodes),
    }
}

/// The coordination-free half of the success scenario: commit `tx_per_node` on each of `nodes`
/// nodes and converge, timed on the wall clock.
pub(crate) fn success_cf_wall(nodes: usize, tx_per_node: usize, seed: u64) -> (f64, bool) {
    let spec = ScenarioSpec::new(nodes, tx_per_node, seed);
    let started = Instant::now();
    let ok = scenario::run(&spec).is_ok();
    let wall = started.elapsed().as_secs_f64();
    ((nodes * tx_per_node) as f64 / wall, ok)
}

/// What the success scenario needs of a Raft run.
pub(crate) struct RaftSummary {
    pub(crate) tx_per_sec: f64,
    pub(crate) mean_ms: f64,
    pub(crate) converged: bool,
}

fn regions() -> LatencyModel {
    LatencyModel::Regions(RegionMatrix::sf_london_tokyo())
}

/// Raft commit latency on the same simulated networks: a 5-node cluster of real `raft`
/// RawNodes, closed-loop clients, `commits` commits per transaction size. Latency is virtual
/// time from proposal to acknowledgement; CPU is the whole simulation's per commit (an upper
/// bound on Raft's own cost).
pub(crate) fn raft_rows(commits: usize, seed: u64) -> Result<Vec<LatencyRow>, String> {
    let mut rows = Vec::new();
    for (name, network) in [("lan", LatencyModel::Lan), ("regions", regions())] {
        for ops in [1u32, 10, 100] {
            let report = rhizo_engine_sim::raft::bench::commit_latency(
                network.clone(),
                5,
                ops,
                commits,
                seed,
            )?;
            rows.push(LatencyRow {
                path: "raft".into(),
                network: name.into(),
                ops_per_tx: ops as usize,
                p50_ms: report.p50_ms,
                p99_ms: report.p99_ms,
                mean_ms: report.mean_ms,
                cpu_us_per_commit: report.cpu_us_per_commit,
                commits: report.commits,
            });
        }
    }
    Ok(rows)
}

/// The Raft half of the success scenario: `nodes` nodes on the LAN, `tx_per_node` one-ADD
/// transactions per node through consensus, closed-loop clients.
pub(crate) fn raft_success(
    nodes: usize,
    tx_per_node: usize,
    seed: u64,
) -> Result<RaftSummary, String> {
    let wanted = nodes * tx_per_node;
    let report =
        rhizo_engine_sim::raft::bench::commit_latency(LatencyModel::Lan, nodes, 1, wanted, seed)?;
    // The run ends once every transaction is acknowledged by the cluster (committed in the log);
    // anything less is reported as not converged.
    Ok(RaftSummary {
        tx_per_sec: report.tx_per_sec,
        mean_ms: report.mean_ms,
        converged: report.commits >= wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::KernelShare;

    #[test]
    fn kernel_share_reads_faults_and_kernel_ticks_after_a_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "4242 (rhizo (bench) x) R 1 4242 4242 0 -1 4194304 1851463 0 12 0 4731 \
                    1636 0 0 20 0 1 0 100 6551760896 1599359";
        let share = KernelShare::parse(stat).expect("a well-formed line");
        assert_eq!(share.minor_faults, 1_851_463);
        assert!((share.seconds - 16.36).abs() < 1e-9, "{}", share.seconds);
        let later = KernelShare {
            seconds: 20.0,
            minor_faults: 2_000_000,
        };
        let between = later.since(share);
        assert_eq!(between.minor_faults, 148_537);
        assert!((between.seconds - 3.64).abs() < 1e-9);
        assert!(KernelShare::parse("4242 (truncated").is_none());
        assert!(KernelShare::parse("4242 (x) R 1 2").is_none());
    }

    #[test]
    fn this_process_has_touched_pages() {
        // Every process faults in its first pages; on a system without /proc, zeros.
        let share = KernelShare::of_this_process();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(share.minor_faults > 0);
        } else {
            assert_eq!(share.minor_faults, 0);
        }
    }
}
