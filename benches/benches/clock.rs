//! Vector clock tick, merge and compare at 3, 20 and 100 nodes, against `crdts::VClock` in the
//! same run. Each merge benchmark starts from a clone, so both sides pay the same clone.

use std::hint::black_box;

use crdts::{CmRDT, CvRDT, VClock};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rhizo_clock::{NodeId, VectorClock};

/// Two clocks over `n` nodes that are concurrent: each is ahead on a different half of the nodes.
fn rhizo_pair(n: u32) -> (VectorClock, VectorClock) {
    let (mut a, mut b) = (VectorClock::new(), VectorClock::new());
    for i in 0..n {
        let node = NodeId::numbered(i);
        let (x, y) = if i % 2 == 0 {
            (10 + u64::from(i), 5)
        } else {
            (5, 10 + u64::from(i))
        };
        a.set(node, x);
        b.set(node, y);
    }
    (a, b)
}

fn crdts_pair(n: u32) -> (VClock<u32>, VClock<u32>) {
    let (mut a, mut b) = (VClock::new(), VClock::new());
    for i in 0..n {
        let (x, y) = if i % 2 == 0 {
            (10 + u64::from(i), 5)
        } else {
            (5, 10 + u64::from(i))
        };
        a.apply(crdts::Dot::new(i, x));
        b.apply(crdts::Dot::new(i, y));
    }
    (a, b)
}

fn bench_clocks(c: &mut Criterion) {
    for n in [3u32, 20, 100] {
        let mut group = c.benchmark_group(format!("vector_clock/{n}_nodes"));
        let (ra, rb) = rhizo_pair(n);
        let (ca, cb) = crdts_pair(n);
        let me = NodeId::numbered(0);

        // Concurrent clocks (the common case between replicas) ...
        group.bench_function(BenchmarkId::new("compare", "rhizo"), |b| {
            b.iter(|| black_box(&ra).compare(black_box(&rb)))
        });
        group.bench_function(BenchmarkId::new("compare", "crdts"), |b| {
            b.iter(|| black_box(&ca).partial_cmp(black_box(&cb)))
        });
        // ... and ordered ones, where no early exit is possible: every entry is read.
        let (mut ra_up, mut ca_up) = (ra.clone(), ca.clone());
        ra_up.merge(&rb);
        ca_up.merge(cb.clone());
        group.bench_function(BenchmarkId::new("compare_ordered", "rhizo"), |b| {
            b.iter(|| black_box(&ra).compare(black_box(&ra_up)))
        });
        group.bench_function(BenchmarkId::new("compare_ordered", "crdts"), |b| {
            b.iter(|| black_box(&ca).partial_cmp(black_box(&ca_up)))
        });
        group.bench_function(BenchmarkId::new("clone_merge", "rhizo"), |b| {
            b.iter(|| {
                let mut m = black_box(&ra).clone();
                m.merge(black_box(&rb));
                m
            })
        });
        group.bench_function(BenchmarkId::new("clone_merge", "crdts"), |b| {
            b.iter(|| {
                let mut m = black_box(&ca).clone();
                m.merge(black_box(cb.clone()));
                m
            })
        });
        // Merge into a clock that already has every node: the steady state between replicas.
        let mut warm = ra.clone();
        group.bench_function(BenchmarkId::new("merge_in_place", "rhizo"), |b| {
            b.iter(|| warm.merge(black_box(&rb)))
        });
        let mut warm_c = ca.clone();
        group.bench_function(BenchmarkId::new("merge_in_place", "crdts"), |b| {
            b.iter(|| warm_c.merge(black_box(cb.clone())))
        });
        let mut ticking = ra.clone();
        group.bench_function(BenchmarkId::new("tick", "rhizo"), |b| {
            b.iter(|| ticking.tick(black_box(me)))
        });
        let mut ticking_c = ca.clone();
        group.bench_function(BenchmarkId::new("tick", "crdts"), |b| {
            b.iter(|| {
                let op = ticking_c.inc(black_box(0));
                ticking_c.apply(op);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_clocks);
criterion_main!(benches);
