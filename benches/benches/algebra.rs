//! Merge cost per column type (rhizo-algebra), with the `crdts` crate's `Orswot` as the peer
//! group in the same run. Every merge benchmark starts from clones made outside the timed
//! region (criterion's `iter_batched`), so both sides pay the same setup and neither pays it
//! in the figure.

use std::hint::black_box;

use crdts::{CmRDT, CvRDT, Orswot};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use rhizo_algebra::{
    AlgebraicMerger, AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, TotalF64,
    ValueType,
};
use rhizo_clock::{Dot, NodeId};

const SET_LEN: u64 = 10_000;

fn spec(merge: MergeType, value_type: ValueType) -> ColumnSpec {
    ColumnSpec::new(merge, value_type).expect("valid column")
}

fn dot(node: NodeId, counter: u64) -> Dot {
    Dot::new(node, counter).expect("counter >= 1")
}

/// One scalar merge: two plain values, and one update applied to a cell state.
fn bench_scalar(c: &mut Criterion) {
    let mut group = c.benchmark_group("algebra/scalar");
    let (x, y) = (AlgebraicValue::Integer(40), AlgebraicValue::Integer(2));
    group.bench_function("merger_i64_add", |b| {
        b.iter(|| AlgebraicMerger::merge(OpType::AbelianAdd, black_box(&x), black_box(&y)))
    });
    let (fx, fy) = (AlgebraicValue::float(1.5), AlgebraicValue::float(-0.25));
    group.bench_function("merger_f64_max", |b| {
        b.iter(|| AlgebraicMerger::merge(OpType::SemilatticeMax, black_box(&fx), black_box(&fy)))
    });

    // Applying one update to a cell: three origins already present, the update from one of them.
    let origins = [
        NodeId::numbered(0),
        NodeId::numbered(1),
        NodeId::numbered(2),
    ];
    let cases: [(&str, ColumnSpec, CellOp); 4] = [
        (
            "apply_i64_add",
            spec(MergeType::Add, ValueType::Integer),
            CellOp::AddInt(3),
        ),
        (
            "apply_f64_add",
            spec(MergeType::Add, ValueType::Float),
            CellOp::AddFloat(TotalF64(0.1)),
        ),
        (
            "apply_f64_max",
            spec(MergeType::Max, ValueType::Float),
            CellOp::Max(rhizo_algebra::Scalar::Float(TotalF64(0.1))),
        ),
        (
            "apply_i64_mul",
            spec(MergeType::Multiply, ValueType::Integer),
            CellOp::MulInt(3),
        ),
    ];
    for (name, spec, op) in cases {
        let mut state = CellState::new(&spec);
        for node in origins {
            state.apply(&op, dot(node, 1)).expect("apply");
        }
        // Dots are made outside the timed region: each update needs a fresh, increasing one.
        let mut counter = 1u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    counter += 1;
                    dot(origins[1], counter)
                },
                |d| state.apply(black_box(&op), d),
                BatchSize::SmallInput,
            )
        });
    }

    // Joining two per-origin states of three origins each (the state-based path).
    let add = spec(MergeType::Add, ValueType::Float);
    let (mut left, mut right) = (CellState::new(&add), CellState::new(&add));
    for (i, node) in origins.iter().enumerate() {
        let seq = i as u64 + 1;
        left.apply(&CellOp::AddFloat(TotalF64(1.0)), dot(*node, seq))
            .expect("apply");
        right
            .apply(&CellOp::AddFloat(TotalF64(2.0)), dot(*node, 4 - seq))
            .expect("apply");
    }
    group.bench_function("join_f64_add_3_origins", |b| {
        b.iter_batched(
            || left.clone(),
            |mut s| {
                s.merge(black_box(&right)).expect("same kind");
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Two sets of 10 000 elements overlapping by half, each side built by its own replica.
fn bench_sets(c: &mut Criterion) {
    let mut group = c.benchmark_group("algebra/set_merge_10k_plus_10k");
    group.sample_size(50);
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let left: Vec<i64> = (0..SET_LEN as i64).collect();
    let right: Vec<i64> = (SET_LEN as i64 / 2..SET_LEN as i64 * 3 / 2).collect();

    // Grow-only union of integer sets and of string sets.
    let union = spec(MergeType::Union, ValueType::IntSet);
    let build_union = |items: &[i64], node: NodeId| {
        let mut s = CellState::new(&union);
        let op = CellOp::new(
            &union,
            OpType::SemilatticeUnion,
            &AlgebraicValue::int_set(items.iter().copied()),
        )
        .expect("valid op");
        s.apply(&op, dot(node, 1)).expect("apply");
        s
    };
    let (ul, ur) = (build_union(&left, a), build_union(&right, b));
    group.bench_function(BenchmarkId::new("union_int_set", "rhizo"), |bench| {
        bench.iter_batched(
            || ul.clone(),
            |mut s| {
                s.merge(black_box(&ur)).expect("same kind");
                s
            },
            BatchSize::LargeInput,
        )
    });
    let strings = spec(MergeType::Union, ValueType::StringSet);
    let build_strings = |items: &[i64], node: NodeId| {
        let mut s = CellState::new(&strings);
        let value = AlgebraicValue::string_set(items.iter().map(|i| format!("element-{i:06}")));
        let op = CellOp::new(&strings, OpType::SemilatticeUnion, &value).expect("valid op");
        s.apply(&op, dot(node, 1)).expect("apply");
        s
    };
    let (sl, sr) = (build_strings(&left, a), build_strings(&right, b));
    group.bench_function(BenchmarkId::new("union_string_set", "rhizo"), |bench| {
        bench.iter_batched(
            || sl.clone(),
            |mut s| {
                s.merge(black_box(&sr)).expect("same kind");
                s
            },
            BatchSize::LargeInput,
        )
    });

    // Observed-remove sets: one add (one dot) per element, as crdts' Orswot does below.
    let orset = spec(MergeType::ObservedRemoveSet, ValueType::IntSet);
    let build_orset = |items: &[i64], node: NodeId| {
        let mut s = CellState::new(&orset);
        for (i, item) in items.iter().enumerate() {
            let op = CellOp::new(&orset, OpType::OrSetAdd, &AlgebraicValue::int_set([*item]))
                .expect("valid op");
            s.apply(&op, dot(node, i as u64 + 1)).expect("apply");
        }
        s
    };
    let (ol, or) = (build_orset(&left, a), build_orset(&right, b));
    group.bench_function(BenchmarkId::new("or_set_int", "rhizo"), |bench| {
        bench.iter_batched(
            || ol.clone(),
            |mut s| {
                s.merge(black_box(&or)).expect("same kind");
                s
            },
            BatchSize::LargeInput,
        )
    });

    let build_orswot = |items: &[i64], actor: u32| {
        let mut s: Orswot<u64, u32> = Orswot::new();
        for item in items {
            let ctx = s.read_ctx().derive_add_ctx(actor);
            let op = s.add(*item as u64, ctx);
            s.apply(op);
        }
        s
    };
    let (cl, cr) = (build_orswot(&left, 0), build_orswot(&right, 1));
    group.bench_function(BenchmarkId::new("or_set_int", "crdts_orswot"), |bench| {
        bench.iter_batched(
            || (cl.clone(), cr.clone()),
            |(mut s, other)| {
                s.merge(black_box(other));
                s
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_scalar, bench_sets);
criterion_main!(benches);
