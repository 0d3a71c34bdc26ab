//! The local commit path and the replica's remote path: `commit_local`, `Replica::commit` and
//! `Replica::commit_prepared` for 1-, 10- and 100-op transactions (building the transaction
//! included, as a user would), remote apply per operation, digest/delta encode and decode, and
//! the remove of an observed-remove set's element after 2,000,000 re-adds.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rhizo_algebra::{MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::Operations;
use rhizo_commit::wire::{decode_message, encode_message};
use rhizo_commit::{
    AlgebraicTransaction, LocalCommitProtocol, Message, PreparedCell, PreparedTransaction, Ready,
    Replica, ReplicaConfig,
};

fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .column("peak", MergeType::Max, ValueType::Integer)
        .build()
        .expect("valid schema")
}

const ROWS: [&str; 100] = {
    // Static row names, so the benchmark measures the commit, not string formatting.
    const NAMES: [&str; 100] = [
        "r00", "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12",
        "r13", "r14", "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25",
        "r26", "r27", "r28", "r29", "r30", "r31", "r32", "r33", "r34", "r35", "r36", "r37", "r38",
        "r39", "r40", "r41", "r42", "r43", "r44", "r45", "r46", "r47", "r48", "r49", "r50", "r51",
        "r52", "r53", "r54", "r55", "r56", "r57", "r58", "r59", "r60", "r61", "r62", "r63", "r64",
        "r65", "r66", "r67", "r68", "r69", "r70", "r71", "r72", "r73", "r74", "r75", "r76", "r77",
        "r78", "r79", "r80", "r81", "r82", "r83", "r84", "r85", "r86", "r87", "r88", "r89", "r90",
        "r91", "r92", "r93", "r94", "r95", "r96", "r97", "r98", "r99",
    ];
    NAMES
};

fn build_tx(ops: usize) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    for row in &ROWS[..ops] {
        tx.increment("counters", row, "value", 1);
    }
    tx
}

fn prepare_cells(replica: &Replica, ops: usize) -> Vec<PreparedCell> {
    ROWS[..ops]
        .iter()
        .map(|row| {
            replica
                .prepare_cell("counters", row, "value")
                .expect("in the schema")
        })
        .collect()
}

fn build_prepared(cells: &[PreparedCell]) -> PreparedTransaction<'_> {
    let mut tx = PreparedTransaction::with_capacity(cells.len());
    for cell in cells {
        tx.increment(cell, 1).expect("an integer counter");
    }
    tx
}

fn bench_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    for ops in [1usize, 10, 100] {
        group.throughput(Throughput::Elements(ops as u64));
        let mut protocol = LocalCommitProtocol::new(NodeId::numbered(0), schema());
        group.bench_function(BenchmarkId::new("commit_local", ops), |b| {
            b.iter(|| {
                protocol
                    .commit_local(black_box(build_tx(ops)))
                    .expect("commits")
            })
        });
        // A replica whose caller makes records durable (the record is built and handed out).
        // The caller keeps one `Ready` across commits (`take_ready_into`), as the engine does.
        let mut durable = Replica::new(NodeId::numbered(0), schema(), ReplicaConfig::default());
        let mut ready = Ready::default();
        group.bench_function(BenchmarkId::new("replica_commit_with_record", ops), |b| {
            b.iter(|| {
                let receipt = durable.commit(black_box(build_tx(ops))).expect("commits");
                durable.take_ready_into(&mut ready);
                ready.clear();
                receipt
            })
        });
        // A purely in-memory replica: the commit and its local apply only.
        let config = ReplicaConfig {
            emit_records: false,
            ..ReplicaConfig::default()
        };
        let mut memory = Replica::new(NodeId::numbered(0), schema(), config);
        group.bench_function(BenchmarkId::new("replica_commit_in_memory", ops), |b| {
            b.iter(|| {
                let receipt = memory.commit(black_box(build_tx(ops))).expect("commits");
                memory.take_ready_into(&mut ready);
                ready.clear();
                receipt
            })
        });
        // The same commits over cells prepared once (as a server prepares its hot counters at
        // start-up); the transaction is still built per commit.
        let cells = prepare_cells(&durable, ops);
        group.bench_function(BenchmarkId::new("prepared_commit_with_record", ops), |b| {
            b.iter(|| {
                let receipt = durable
                    .commit_prepared(black_box(build_prepared(&cells)))
                    .expect("commits");
                durable.take_ready_into(&mut ready);
                ready.clear();
                receipt
            })
        });
        let cells = prepare_cells(&memory, ops);
        group.bench_function(BenchmarkId::new("prepared_commit_in_memory", ops), |b| {
            b.iter(|| {
                let receipt = memory
                    .commit_prepared(black_box(build_prepared(&cells)))
                    .expect("commits");
                memory.take_ready_into(&mut ready);
                ready.clear();
                receipt
            })
        });
    }
    group.finish();
}

/// A sync request from `b` to `a`, and `a`'s reply carrying everything `a` committed.
fn exchange(a: &mut Replica, b: &mut Replica) -> (Message, Message) {
    b.sync_with(a.id());
    let (_, request) = b.take_ready().messages.pop().expect("a request");
    a.step(b.id(), request.clone()).expect("valid request");
    let (_, reply) = a.take_ready().messages.pop().expect("a reply");
    (request, reply)
}

fn bench_remote(c: &mut Criterion) {
    let mut group = c.benchmark_group("remote");
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let config = ReplicaConfig {
        members: vec![a, b],
        emit_records: false,
        ..ReplicaConfig::default()
    };
    let mut source = Replica::new(a, schema(), config.clone());
    let ops = 1000usize;
    for i in 0..ops {
        let mut tx = AlgebraicTransaction::new();
        tx.increment("counters", &format!("row-{i}"), "value", 1);
        source.commit(tx).expect("commits");
    }
    let empty = Replica::new(b, schema(), config);
    let (request, reply) = exchange(&mut source, &mut empty.clone());
    group.throughput(Throughput::Elements(ops as u64));
    group.bench_function(
        BenchmarkId::new("apply_delta", format!("{ops}_ops")),
        |bench| {
            bench.iter_batched(
                || (empty.clone(), reply.clone()),
                |(mut target, message)| {
                    target.step(a, message).expect("applies");
                    target
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.throughput(Throughput::Elements(1));
    let request_bytes = encode_message(&request);
    let reply_bytes = encode_message(&reply);
    group.bench_function("digest_encode", |bench| {
        bench.iter(|| encode_message(black_box(&request)))
    });
    group.bench_function("digest_decode", |bench| {
        bench.iter(|| decode_message(black_box(&request_bytes)))
    });
    group.throughput(Throughput::Elements(ops as u64));
    group.bench_function(
        BenchmarkId::new("delta_encode", format!("{ops}_ops")),
        |bench| bench.iter(|| encode_message(black_box(&reply))),
    );
    group.bench_function(
        BenchmarkId::new("delta_decode", format!("{ops}_ops")),
        |bench| bench.iter(|| decode_message(black_box(&reply_bytes))),
    );
    group.finish();
}

/// An observed-remove set re-added to 2,000,000 times by its one writer (as a server marks a
/// user "premium" at every login), then the remove of the element: the set holds one tag, so the
/// remove names one (target: well under 10 ms; it cost seconds when every add kept a tag).
fn bench_or_set(c: &mut Criterion) {
    let schema = Schema::builder()
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .build()
        .expect("valid schema");
    let config = ReplicaConfig {
        emit_records: false,
        ..ReplicaConfig::default()
    };
    let mut readded = Replica::new(NodeId::numbered(0), schema, config);
    let cell = readded
        .prepare_cell("users", "u1", "tags")
        .expect("in the schema");
    let mut ready = Ready::default();
    for _ in 0..2_000_000 {
        let mut tx = PreparedTransaction::new();
        tx.add_to_set(&cell, ["premium"]).expect("a set column");
        readded.commit_prepared(tx).expect("commits");
        readded.take_ready_into(&mut ready);
        ready.clear();
    }
    let mut remove = AlgebraicTransaction::new();
    remove.remove_from_set("users", "u1", "tags", ["premium"]);
    let mut group = c.benchmark_group("or_set");
    group.bench_function("remove_after_2m_readds", |bench| {
        bench.iter_batched(
            || (readded.clone(), remove.clone()),
            |(mut replica, tx)| {
                replica.commit(tx).expect("commits");
                replica
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_commit, bench_remote, bench_or_set);
criterion_main!(benches);
