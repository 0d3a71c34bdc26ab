//! The shape of `results.json`: every figure the report and the paper quote.

use serde::{Deserialize, Serialize};

/// Everything one `cargo xtask bench` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Results {
    /// `git rev-parse HEAD` of the measured tree (with `-dirty` if it had changes).
    pub(crate) git_rev: String,
    /// The machine: CPU model, cores, memory.
    pub(crate) machine: String,
    /// "quick" or "full".
    pub(crate) mode: String,
    /// Commit latency per path, network and transaction size.
    pub(crate) latency: Vec<LatencyRow>,
    /// Commit-then-converge throughput at each cluster size.
    pub(crate) throughput: Vec<ThroughputRow>,
    /// Rounds and virtual time to converge.
    pub(crate) convergence: Vec<ConvergenceRow>,
    /// The roadmap's success scenario, both paths.
    pub(crate) success_scenario: Option<SuccessScenario>,
    /// The Python front's overhead.
    pub(crate) python: Option<PythonRow>,
    /// Python through a networked node and a client, beside Redis.
    #[serde(default)]
    pub(crate) python_net: Option<PythonNetRow>,
    /// Real nodes over TLS on this machine.
    #[serde(default)]
    pub(crate) net: Vec<NetRow>,
    /// etcd and Rhizo's two paths driven by the same clients over the network, in this run.
    #[serde(default)]
    pub(crate) net_compare: Option<NetComparison>,
    /// Memory per key of one engine holding many counters, and Redis holding the same.
    #[serde(default)]
    pub(crate) memory: Vec<MemoryRow>,
    /// Wall-clock seconds each stage took.
    pub(crate) stage_seconds: Vec<(String, f64)>,
}

/// One measurement of real nodes over TLS on loopback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetRow {
    /// "coordination_free" or "raft".
    pub(crate) path: String,
    /// The nodes' sync policy.
    pub(crate) sync: String,
    /// Nodes.
    pub(crate) nodes: usize,
    /// Client threads committing at once.
    pub(crate) clients: usize,
    /// Keys the operations were spread over.
    pub(crate) keys: u64,
    /// Operations committed.
    pub(crate) ops: usize,
    /// Committed operations per second (coordination-free: until every node held them all).
    pub(crate) ops_per_sec: f64,
    /// Whether every node held the same state at the end.
    pub(crate) converged: bool,
    /// Median of `latency`, milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile of `latency`, milliseconds.
    pub(crate) p99_ms: f64,
    /// What the percentiles measure.
    pub(crate) latency: String,
    /// Frame bytes the transports wrote per operation (TLS records' own overhead excluded).
    pub(crate) bytes_per_op: f64,
    /// Frames the transports wrote per operation.
    pub(crate) frames_per_op: f64,
}

/// etcd and Rhizo side by side: three members or nodes on 127.0.0.1 each, the same closed-loop
/// clients and operations, in one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NetComparison {
    /// One row per system, operation and client count.
    pub(crate) rows: Vec<CompareRow>,
    /// Systems whose rows are missing, and why (for instance: etcd is not installed).
    pub(crate) skipped: Vec<SkippedSystem>,
    /// The targets, each with the figures it was judged on.
    pub(crate) targets: Vec<TargetCheck>,
    /// How long each client count ran, seconds (after a warm-up that is not counted).
    pub(crate) seconds_per_row: f64,
}

/// One operation at one client count on one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CompareRow {
    /// "etcd 3.4.23" (its version) or "rhizo".
    pub(crate) system: String,
    /// "raft" (etcd), "coordinated" or "coordination_free" (Rhizo).
    pub(crate) path: String,
    /// "put", "compare_and_set" or "increment".
    pub(crate) operation: String,
    /// When a commit is durable relative to its acknowledgement.
    pub(crate) durability: String,
    /// Members or nodes.
    pub(crate) nodes: usize,
    /// Closed-loop clients, each with one connection, spread over the nodes in turn.
    pub(crate) clients: usize,
    /// Operations acknowledged within the measured time.
    pub(crate) ops: usize,
    /// Attempts beyond the first that retryable failures took.
    pub(crate) retries: u64,
    /// Acknowledged operations per second.
    pub(crate) ops_per_sec: f64,
    /// Median latency from call to acknowledgement (retries included), milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile of the same, milliseconds.
    pub(crate) p99_ms: f64,
    /// Coordination-free only: median time from a commit's acknowledgement until a client of
    /// another node reads it, milliseconds.
    pub(crate) visibility_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub(crate) visibility_p99_ms: Option<f64>,
    /// Coordination-free only: whether every node ended with every acknowledged increment and
    /// the same state.
    pub(crate) converged: Option<bool>,
}

/// A system measured in no row of this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SkippedSystem {
    /// The system.
    pub(crate) system: String,
    /// Why, and how to make it run.
    pub(crate) reason: String,
}

/// One of the targets, judged on this run's rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TargetCheck {
    /// The target, in words.
    pub(crate) target: String,
    /// The figures compared.
    pub(crate) measured: String,
    /// Whether it holds; `None` when a row it needs is missing.
    pub(crate) holds: Option<bool>,
}

/// One latency measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LatencyRow {
    /// "coordination_free" or "raft".
    pub(crate) path: String,
    /// "lan" or "regions" (San Francisco / London / Tokyo).
    pub(crate) network: String,
    /// Operations per transaction.
    pub(crate) ops_per_tx: usize,
    /// Median commit latency in milliseconds: virtual network time plus measured CPU time.
    pub(crate) p50_ms: f64,
    /// 99th percentile, same units.
    pub(crate) p99_ms: f64,
    /// Mean, same units.
    pub(crate) mean_ms: f64,
    /// Wall-clock CPU microseconds spent per commit by this process.
    pub(crate) cpu_us_per_commit: f64,
    /// Commits measured.
    pub(crate) commits: usize,
}

/// One throughput measurement (each in its own process, so peak memory is its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ThroughputRow {
    /// Nodes.
    pub(crate) nodes: usize,
    /// Transactions committed per node (one ADD each).
    pub(crate) ops_per_node: usize,
    /// Distinct rows the increments are drawn from, uniformly.
    #[serde(default = "default_keys")]
    pub(crate) keys: usize,
    /// How the transactions reach the replicas: "prepared" (through prepared cells) or
    /// "by_name" (keys looked up per commit).
    #[serde(default = "default_commit_path")]
    pub(crate) commit_path: String,
    /// Committed operations per second of wall-clock time, commits and convergence included:
    /// the median of five runs after the first in its process (the first warms the allocator
    /// and the page tables, as criterion's warm-up does).
    pub(crate) ops_per_sec: f64,
    /// The same for the process's first run, which also pays for the heap's first growth
    /// (page faults; on this VM several milliseconds at 20 × 1000).
    #[serde(default)]
    pub(crate) cold_ops_per_sec: f64,
    /// Messages sent until every replica held every update, per operation.
    pub(crate) messages_per_op: f64,
    /// Bytes of those messages per operation.
    pub(crate) bytes_per_op: f64,
    /// Peak resident memory of the process (VmHWM).
    pub(crate) peak_memory_bytes: u64,
    /// Whether every replica ended bit-identical.
    pub(crate) converged: bool,
    /// Rounds from the last write to convergence.
    pub(crate) rounds: u64,
    /// Wall-clock seconds of the run.
    pub(crate) wall_seconds: f64,
    /// CPU seconds the kernel spent for that run (mostly serving the first touch of fresh
    /// pages as the heap grows).
    #[serde(default)]
    pub(crate) kernel_seconds: f64,
    /// Page faults served without a disk read during that run (one per fresh page touched).
    #[serde(default)]
    pub(crate) minor_faults: u64,
    /// Why the row has no figures, when it did not finish (it failed, or its process passed
    /// the memory or time it was allowed); the figures above are then zero, except the peak
    /// memory seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stopped: Option<String>,
}

/// Memory per key: one store holding `keys` counters, one increment each, by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MemoryRow {
    /// "rhizo" (one `Engine`) or "redis".
    pub(crate) system: String,
    /// The engine's sync policy ("none" or "group"; Redis runs with persistence off).
    pub(crate) sync: String,
    /// Distinct counters.
    pub(crate) keys: usize,
    /// Bytes held per counter.
    pub(crate) bytes_per_key: f64,
    /// How the bytes were measured.
    pub(crate) measure: String,
    /// Increments per second while loading.
    pub(crate) ops_per_sec: f64,
    /// Why the row was not measured, if it was not.
    pub(crate) skipped: Option<String>,
}

/// The key space of throughput rows measured before rows carried one.
fn default_keys() -> usize {
    100
}

/// The commit path of throughput rows measured before rows carried one.
fn default_commit_path() -> String {
    "prepared".into()
}

/// One convergence measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConvergenceRow {
    /// What was measured: "after_writes" or "after_partition_heal".
    pub(crate) scenario: String,
    /// Nodes.
    pub(crate) nodes: usize,
    /// Push-pull fanout (0 = full broadcast).
    pub(crate) fanout: usize,
    /// Message loss rate.
    pub(crate) loss: f64,
    /// Rounds (sync intervals) from the last write or the heal to convergence.
    pub(crate) rounds: u64,
    /// The same in virtual milliseconds.
    pub(crate) virtual_ms: f64,
    /// ⌈log2 N⌉ + 2, the bound push-pull gossip should meet.
    pub(crate) log_bound: u64,
}

/// The roadmap's success scenario: 5 nodes × 10 K transactions each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SuccessScenario {
    /// Nodes.
    pub(crate) nodes: usize,
    /// Transactions per node.
    pub(crate) tx_per_node: usize,
    /// Closed-loop throughput of the coordination-free path (one client per node).
    pub(crate) cf_tx_per_sec: f64,
    /// Closed-loop throughput of the Raft path (one client per node).
    pub(crate) raft_tx_per_sec: f64,
    /// Mean commit latency, coordination-free.
    pub(crate) cf_mean_latency_ms: f64,
    /// Mean commit latency, Raft.
    pub(crate) raft_mean_latency_ms: f64,
    /// `cf_tx_per_sec / raft_tx_per_sec`.
    pub(crate) ratio: f64,
    /// Transactions per second of wall-clock time to commit all 50 K coordination-free and
    /// converge every replica on the simulated network.
    pub(crate) cf_wall_tx_per_sec: f64,
    /// Whether all nodes converged (both paths).
    pub(crate) converged: bool,
}

/// Python overhead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PythonRow {
    /// Microseconds for a 1-op transaction through the context manager.
    pub(crate) one_op_tx_us: f64,
    /// Operations per second through the batch API.
    pub(crate) batch_ops_per_sec: f64,
    /// How it was measured.
    pub(crate) note: String,
}

/// A 1-op commit from Python through a networked node, through a client on loopback, and a
/// Redis INCR from Python on the same machine, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PythonNetRow {
    /// Coordination-free commit through `rhizo.start_node(...)`'s node, p50.
    pub(crate) node_p50_us: f64,
    /// The same, p99.
    pub(crate) node_p99_us: f64,
    /// Coordination-free commit through `rhizo.connect(...)` on loopback, p50.
    pub(crate) client_p50_us: f64,
    /// The same, p99.
    pub(crate) client_p99_us: f64,
    /// Redis INCR through the `redis` client on loopback, p50 (`None` when skipped).
    pub(crate) redis_p50_us: Option<f64>,
    /// The same, p99.
    pub(crate) redis_p99_us: Option<f64>,
    /// Why the Redis row was not measured, if it was not.
    pub(crate) redis_skipped: Option<String>,
    /// Timed calls per row.
    pub(crate) samples: u64,
    /// /proc/loadavg (1, 5, 15 minutes) when the measurement started.
    pub(crate) load_average: String,
}
