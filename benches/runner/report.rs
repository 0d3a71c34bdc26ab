//! The report: machine and revision facts, the Python measurement, and `report.md`.

use std::fmt::Write as _;
use std::process::Command;

use crate::results::{PythonRow, Results, ThroughputRow};

/// `git rev-parse HEAD`, marked `-dirty` when the tree has uncommitted changes.
pub(crate) fn git_rev() -> String {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// CPU model, logical cores and memory, from /proc.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{model}, {cores} cores, {:.0} GiB",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

const PYTHON_PROBE: &str = r#"
import json, timeit
import rhizo
engine = rhizo.open(None, node_id="bench")
def one():
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "page_views", 1)
n = 20000
one_us = min(timeit.repeat(one, number=n, repeat=3)) / n * 1e6
batch = [("increment", "counters", f"row-{i % 1000}", "value", 1) for i in range(200000)]
t = min(timeit.repeat(lambda: engine.commit_batch(batch, mode="coordination_free"), number=1, repeat=3))
print(json.dumps({"one_op_tx_us": one_us, "batch_ops_per_sec": len(batch) / t}))
"#;

/// Measures the Python front through `./.venv/bin/python`, if the bindings are built there
/// (`cargo xtask regress` builds them). `None` when they are not.
pub(crate) fn python_overhead() -> Option<PythonRow> {
    let python = std::path::Path::new(".venv/bin/python");
    if !python.exists() {
        return None;
    }
    let output = Command::new(python)
        .args(["-c", PYTHON_PROBE])
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "python probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(PythonRow {
        one_op_tx_us: value["one_op_tx_us"].as_f64()?,
        batch_ops_per_sec: value["batch_ops_per_sec"].as_f64()?,
        note: "timeit, best of 3, in-memory engine, one op per transaction in the batch, ./.venv/bin/python".into(),
    })
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} K", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// `report.md` for a results file.
pub(crate) fn markdown(r: &Results, plots: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Rhizo benchmark report ({} run)\n", r.mode);
    let _ = writeln!(
        s,
        "- git revision: `{}`\n- machine: {}\n",
        r.git_rev, r.machine
    );
    let _ = writeln!(
        s,
        "Everything below was produced by one `cargo xtask bench{}` run. Simulated runs use \
         virtual time on rhizo-sim's network (LAN: 0.1–0.5 ms one way; regions: San Francisco / \
         London / Tokyo, 55–115 ms one way); wall-clock figures are this machine's.\n",
        if r.mode == "quick" { " --quick" } else { "" }
    );

    let _ = writeln!(s, "## Commit latency\n");
    let _ = writeln!(
        s,
        "Coordination-free: a replica commits locally and the commit is acknowledged when its \
         record is handed out — no message is needed, so the network model does not change it. \
         Its latency is the measured wall-clock time of the commit. Raft: a 5-node cluster of real \
         `raft` RawNodes on the simulated network, closed-loop clients; its latency is virtual \
         time from proposal to the client's acknowledgement (its CPU time, which includes the \
         simulator's, is the last column and is not added).\n"
    );
    let _ = writeln!(
        s,
        "| path | network | ops/tx | p50 ms | p99 ms | mean ms | CPU µs/commit |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for row in &r.latency {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.2} |",
            row.path,
            row.network,
            row.ops_per_tx,
            row.p50_ms,
            row.p99_ms,
            row.mean_ms,
            row.cpu_us_per_commit
        );
    }

    let _ = writeln!(s, "\n## Throughput scaling\n");
    let _ = writeln!(
        s,
        "Every node commits its transactions (one ADD each), then anti-entropy runs until every \
         replica is bit-identical. ops/s is total operations over the wall-clock time of the \
         whole run, the median of five runs after the first in its process (criterion's \
         warm-up does the same); cold ops/s is the first, which also pays for the heap's first \
         growth. Each row runs in its own processes, so peak memory is its own (VmHWM): five \
         (one with --quick), in rounds over every row, so a row's processes are spread over \
         the stage; the fastest is kept.\n"
    );
    let _ = writeln!(
        s,
        "| nodes | ops/node | keys | path | ops/s | cold ops/s | msgs/op | bytes/op | peak memory | rounds | converged |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for row in &r.throughput {
        if let Some(reason) = &row.stopped {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | stopped: {reason} | | | | {:.1} MiB seen | | |",
                row.nodes,
                row.ops_per_node,
                row.keys,
                row.commit_path,
                row.peak_memory_bytes as f64 / 1048576.0,
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.1} | {:.1} MiB | {} | {} |",
            row.nodes,
            row.ops_per_node,
            row.keys,
            row.commit_path,
            fmt_rate(row.ops_per_sec),
            fmt_rate(row.cold_ops_per_sec),
            row.messages_per_op,
            row.bytes_per_op,
            row.peak_memory_bytes as f64 / 1048576.0,
            row.rounds,
            row.converged
        );
    }
    kernel_share_lines(&mut s, &r.throughput);

    memory_lines(&mut s, &r.memory);

    let _ = writeln!(s, "\n## Convergence\n");
    let _ = writeln!(
        s,
        "Rounds are sync intervals (10 ms). fanout 0 = every peer every round.\n"
    );
    let _ = writeln!(
        s,
        "| scenario | nodes | fanout | loss | rounds | virtual ms | ⌈log2 N⌉+2 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for row in &r.convergence {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0}% | {} | {:.1} | {} |",
            row.scenario,
            row.nodes,
            row.fanout,
            row.loss * 100.0,
            row.rounds,
            row.virtual_ms,
            row.log_bound
        );
    }

    if let Some(x) = &r.success_scenario {
        let _ = writeln!(s, "\n## The roadmap's success scenario\n");
        let _ = writeln!(
            s,
            "{} nodes × {} transactions each. Both paths are measured the same way: one \
             closed-loop client per node, throughput = clients / mean commit latency. A \
             coordination-free commit's latency is its measured CPU time (no message is needed); \
             a Raft commit's is its virtual time to acknowledgement on the simulated LAN, without \
             adding its CPU time, which favours Raft. Raft's run counts as converged when every \
             transaction was acknowledged.\n",
            x.nodes, x.tx_per_node
        );
        let _ = writeln!(s, "| | coordination-free | Raft (traditional) |");
        let _ = writeln!(s, "|---|---:|---:|");
        let _ = writeln!(
            s,
            "| mean latency | {:.4} ms | {:.3} ms |",
            x.cf_mean_latency_ms, x.raft_mean_latency_ms
        );
        let _ = writeln!(
            s,
            "| throughput | {} tx/s | {} tx/s |",
            fmt_rate(x.cf_tx_per_sec),
            fmt_rate(x.raft_tx_per_sec)
        );
        let _ = writeln!(
            s,
            "\nRatio: **{:.0}×**. Committing all {} coordination-free transactions and converging \
             every replica on the simulated network took {} tx/s of wall-clock time. All nodes \
             converged: {}.",
            x.ratio,
            x.nodes * x.tx_per_node,
            fmt_rate(x.cf_wall_tx_per_sec),
            x.converged
        );
    }

    if !r.net.is_empty() {
        let _ = writeln!(s, "\n## Real nodes over TLS on this machine\n");
        let _ = writeln!(
            s,
            "Three `rhizo_net` nodes in one process, mutual TLS 1.3 on 127.0.0.1, each on its own \
             data directory. Coordination-free: one client thread per node commits one-increment \
             transactions over the keys; ops/s counts until every node holds every commit; the \
             latency is the lag from a commit on one node to its read on another (10 ms \
             anti-entropy interval). Raft: closed-loop clients commit register writes, each \
             durable on a quorum before its acknowledgement. Wire cost is the transport's frame \
             bytes (TLS record overhead excluded).\n"
        );
        let _ = writeln!(
            s,
            "| path | sync | clients | keys | ops | ops/s | p50 | p99 | measured | bytes/op | frames/op | converged |"
        );
        let _ = writeln!(
            s,
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"
        );
        for row in &r.net {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {} | {:.1} | {:.3} | {} |",
                row.path,
                row.sync,
                row.clients,
                row.keys,
                row.ops,
                fmt_rate(row.ops_per_sec),
                row.p50_ms,
                row.p99_ms,
                row.latency,
                row.bytes_per_op,
                row.frames_per_op,
                row.converged
            );
        }
    }

    if let Some(comparison) = &r.net_compare {
        s.push_str(&crate::net_compare::report::markdown(comparison));
    }

    let _ = writeln!(s, "\n## Python\n");
    match &r.python {
        Some(p) => {
            let _ = writeln!(
                s,
                "A 1-op transaction through `engine.transaction(...)`: {:.2} µs; batch API: {} ops/s ({}).",
                p.one_op_tx_us,
                fmt_rate(p.batch_ops_per_sec),
                p.note
            );
        }
        None => {
            let _ = writeln!(
                s,
                "Not measured: the bindings are not built in ./.venv (run `cargo xtask regress` first)."
            );
        }
    }

    if let Some(n) = &r.python_net {
        python_net_lines(&mut s, n);
    }

    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for plot in plots {
            let _ = writeln!(s, "![{plot}]({plot})\n");
        }
    }
    let _ = writeln!(s, "## Stage times\n");
    for (stage, secs) in &r.stage_seconds {
        let _ = writeln!(s, "- {stage}: {secs:.1} s");
    }
    s
}

/// A run's time in the kernel is a tenth or more of its wall time from here.
const KERNEL_SHARE_NOTED: f64 = 0.1;

/// The rows whose runs spent a tenth or more of their wall time in the kernel: time the
/// system's own code does not show, spent serving the first touch of the pages a growing heap
/// takes (on a VM, each costs far more than zeroing it would).
fn kernel_share_lines(s: &mut String, rows: &[ThroughputRow]) {
    let noted: Vec<&ThroughputRow> = rows
        .iter()
        .filter(|row| {
            row.stopped.is_none() && row.kernel_seconds >= KERNEL_SHARE_NOTED * row.wall_seconds
        })
        .collect();
    if noted.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nRuns that spent a tenth or more of their wall time in the kernel, mostly serving the \
         first touch of fresh pages as the replicas' heap grows (their own code does not show \
         it):\n"
    );
    for row in noted {
        let _ = writeln!(
            s,
            "- {} × {} over {} keys, {}: {:.1} s of {:.1} s in the kernel, {:.2} M minor page \
             faults ({:.1} µs each)",
            row.nodes,
            row.ops_per_node,
            row.keys,
            row.commit_path,
            row.kernel_seconds,
            row.wall_seconds,
            row.minor_faults as f64 / 1e6,
            row.kernel_seconds * 1e6 / row.minor_faults.max(1) as f64,
        );
    }
}

/// The memory-per-key table: one engine's rows and Redis's, from one run.
fn memory_lines(s: &mut String, rows: &[crate::results::MemoryRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Memory per key\n");
    let _ = writeln!(
        s,
        "One store holding distinct counters, one increment each, by name (the same names for \
         both). Rhizo: one `Engine` on a fresh directory, in a process of its own.\n"
    );
    let _ = writeln!(
        s,
        "| system | sync | keys | bytes/key | increments/s | measured by |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|");
    for row in rows {
        match &row.skipped {
            Some(reason) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | skipped | | {reason} |",
                    row.system, row.sync, row.keys
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.1} | {} | {} |",
                    row.system,
                    row.sync,
                    row.keys,
                    row.bytes_per_key,
                    fmt_rate(row.ops_per_sec),
                    row.measure
                );
            }
        }
    }
}

/// The networked Python rows of `report.md`.
fn python_net_lines(s: &mut String, n: &crate::results::PythonNetRow) {
    let _ = writeln!(
        s,
        "\nA 1-op coordination-free commit from Python, {} timed calls each, load average {} \
         at the start:\n",
        n.samples, n.load_average
    );
    let _ = writeln!(s, "| through | p50 µs | p99 µs |");
    let _ = writeln!(s, "|---|---:|---:|");
    let _ = writeln!(
        s,
        "| a networked node (`rhizo.start_node`, in memory) | {:.2} | {:.2} |",
        n.node_p50_us, n.node_p99_us
    );
    let _ = writeln!(
        s,
        "| `rhizo.connect()` on loopback | {:.2} | {:.2} |",
        n.client_p50_us, n.client_p99_us
    );
    match (n.redis_p50_us, n.redis_p99_us) {
        (Some(p50), Some(p99)) => {
            let _ = writeln!(
                s,
                "| Redis INCR (`redis` client, `redis-server` on loopback) | {p50:.2} | {p99:.2} |"
            );
            let _ = writeln!(
                s,
                "\n`connect()` p50 / Redis INCR p50: {:.2}×.",
                n.client_p50_us / p50
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "\nRedis INCR not measured: {}.",
                n.redis_skipped.as_deref().unwrap_or("no reason recorded")
            );
        }
    }
}
