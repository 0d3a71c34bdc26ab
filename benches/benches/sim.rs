//! The simulator benches: replica clusters committing then converging on the simulated network.
//!
//! - `sim/commit_then_converge/20x1000`: 20 nodes × 1,000 counter increments each (through
//!   prepared cells, as a server bumps its hot counters), then gossip until every replica holds
//!   every update (targets: ≥ 2 M ops/s wall, ≤ 1 message per op).
//! - `sim/commit_by_key_then_converge/20x1000`: the same, each commit naming its cell by key.
//! - `sim/converge/100x10000` (one timed run, printed): 100 nodes × 10,000 ops each with
//!   push-pull fanout 3 (target: < 10 s wall), and the rounds from the last write to
//!   convergence (target: ≤ ⌈log2 100⌉ + 2 = 9).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rhizo_sim::GossipStrategy;
use rhizo_sim::scenario::{self, CommitPath, ScenarioSpec};

fn commit_then_converge(c: &mut Criterion) {
    let (nodes, ops_per_node) = (20, 1000);
    let report = scenario::throughput(nodes, ops_per_node, 1).expect("scenario runs");
    println!(
        "sim 20x1000: {} ops, {} messages ({:.3}/op), {} bytes, {} rounds to converge, {} messages to quiesce, peak buffered {}",
        report.ops,
        report.messages,
        report.messages_per_op,
        report.bytes,
        report.rounds_to_converge,
        report.messages_to_quiesce,
        report.peak_buffered
    );
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements((nodes * ops_per_node) as u64));
    group.sample_size(10);
    group.bench_function("commit_then_converge/20x1000", |b| {
        b.iter(|| black_box(scenario::throughput(nodes, ops_per_node, 1).expect("scenario runs")))
    });
    let by_key = ScenarioSpec {
        commits: CommitPath::Keys,
        ..ScenarioSpec::new(nodes, ops_per_node, 1)
    };
    group.bench_function("commit_by_key_then_converge/20x1000", |b| {
        b.iter(|| black_box(scenario::run(&by_key).expect("scenario runs")))
    });
    group.finish();
}

/// One timed run: criterion's minimum of ten samples would take minutes at this size.
fn converge_at_scale(_c: &mut Criterion) {
    let spec = ScenarioSpec {
        gossip: GossipStrategy::PushPull { fanout: 3 },
        ..ScenarioSpec::new(100, 10_000, 1)
    };
    let start = Instant::now();
    let report = scenario::run(&spec).expect("scenario runs");
    let wall = start.elapsed();
    let rounds_target = (spec.nodes as f64).log2().ceil() as u64 + 2;
    println!(
        "sim/converge/100x10000 (push-pull fanout 3): {:.2} s wall ({:.0} ops/s), {} messages ({:.4}/op), {} rounds after the last write (target <= {rounds_target}), peak buffered {}",
        wall.as_secs_f64(),
        report.ops as f64 / wall.as_secs_f64().max(f64::MIN_POSITIVE),
        report.messages,
        report.messages_per_op,
        report.rounds_to_converge,
        report.peak_buffered
    );
}

criterion_group!(benches, commit_then_converge, converge_at_scale);
criterion_main!(benches);
