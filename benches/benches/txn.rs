//! The engine's commit paths: a durable commit with an fsync per commit (criterion's time, plus
//! a printed p50/p99 of single commits), group-commit throughput, and the in-memory engine's
//! overhead over a bare `Replica::commit`.
//!
//! Durable figures depend on the file system and the disk under the temp directory (printed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rhizo_algebra::{MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::Operations;
use rhizo_commit::{AlgebraicTransaction, Ready, Replica, ReplicaConfig};
use rhizo_txn::{Engine, EngineConfig, SyncPolicy, TransactionMode};

fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .build()
        .expect("valid schema")
}

fn config(sync: SyncPolicy) -> EngineConfig {
    EngineConfig::new(NodeId::numbered(0))
        .with_schema(schema())
        .with_sync(sync)
}

fn commit_one(engine: &mut Engine) -> rhizo_txn::CommitOutcome {
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "page_views", "value", 1);
    tx.commit()
        .expect("commits")
        .committed()
        .expect("decided at once")
}

/// Times single durable commits one by one and prints their percentiles.
fn print_percentiles(engine: &mut Engine, samples: usize) {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            black_box(commit_one(engine));
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "txn/durable_commit_fsync single-commit latency over {samples}: p50 {:?}, p90 {:?}, p99 {:?}",
        at(0.5),
        at(0.9),
        at(0.99)
    );
}

fn bench_durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    println!("txn benches write under {}", dir.path().display());
    let mut engine = Engine::open(dir.path(), config(SyncPolicy::EveryCommit)).expect("opens");
    print_percentiles(&mut engine, 2000);
    let mut group = c.benchmark_group("txn");
    group.throughput(Throughput::Elements(1));
    group.bench_function("durable_commit_fsync", |b| {
        b.iter(|| commit_one(&mut engine))
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut grouped = Engine::open(
        dir.path(),
        config(SyncPolicy::Group {
            max_delay_ms: 10,
            max_records: 1024,
        }),
    )
    .expect("opens");
    group.bench_function("group_commit", |b| b.iter(|| commit_one(&mut grouped)));
    group.finish();
}

fn bench_in_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("txn_in_memory");
    group.throughput(Throughput::Elements(1));
    let mut replica = Replica::new(
        NodeId::numbered(0),
        schema(),
        ReplicaConfig {
            emit_records: false,
            ..ReplicaConfig::default()
        },
    );
    // The replica driven as well as a caller can: one `Ready` kept across commits, as the
    // engine does, so the difference below is the engine's own work.
    let mut ready = Ready::default();
    group.bench_function("bare_replica_commit", |b| {
        b.iter(|| {
            let mut tx = AlgebraicTransaction::new();
            tx.increment("counters", "page_views", "value", 1);
            let receipt = replica.commit(black_box(tx)).expect("commits");
            replica.take_ready_into(&mut ready);
            ready.clear();
            receipt
        })
    });
    let mut engine = Engine::in_memory(config(SyncPolicy::None)).expect("opens");
    group.bench_function("engine_commit", |b| b.iter(|| commit_one(&mut engine)));
    group.finish();
}

/// A one-increment coordination-free commit on a bare engine and through a networked node's
/// handle (a one-member cluster, log in memory, synced by nothing): the handle's own cost is
/// its lock and bookkeeping — the commit waits for no network and crosses no channel.
fn bench_node_handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("txn_node");
    group.throughput(Throughput::Elements(1));
    let mut engine =
        Engine::open_in_memory_log(rhizo_txn::MemStorage::new(), config(SyncPolicy::None))
            .expect("opens");
    group.bench_function("engine_commit_1op", |b| b.iter(|| commit_one(&mut engine)));
    let me = NodeId::numbered(0);
    let members = std::collections::BTreeMap::from([(me, "127.0.0.1:0".to_owned())]);
    let node_config =
        rhizo_net::NodeConfig::new(me, "bench", members, rhizo_net::Security::Insecure)
            .with_schema(schema())
            .with_sync(SyncPolicy::None);
    let node = rhizo_net::Node::start(node_config).expect("starts");
    group.bench_function("node_handle_commit_1op", |b| {
        b.iter(|| {
            let mut tx = node.transaction(TransactionMode::CoordinationFree);
            tx.increment("counters", "page_views", "value", 1);
            tx.commit().expect("commits")
        })
    });
    group.finish();
    node.shutdown().expect("stops");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_durable, bench_in_memory, bench_node_handle
}
criterion_main!(benches);
