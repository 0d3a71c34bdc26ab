//! Helpers the crate's test modules share (compiled for tests only).

use std::num::NonZeroU64;

use proptest::prelude::*;
use rhizo_clock::NodeId;

use crate::state::OriginEntry;

/// Any `i64`, with the edges (`MIN`, `MAX`, 0, ±1) and small values drawn often: overflow and
/// sign handling live at the edges, and small values make sums that stay in range.
pub(crate) fn arb_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        Just(1i64),
        Just(-1i64),
        -1000i64..1000,
        any::<i64>(),
    ]
}

/// Origins `0..n` as node ids, each entry `(seq, partial)` drawn per origin (a zero sequence
/// number means the origin is absent), sorted by node as a per-origin list keeps them.
pub(crate) fn drawn_entries<P: Copy>(draws: &[(u64, P)]) -> Vec<OriginEntry<P>> {
    let mut entries: Vec<OriginEntry<P>> = draws
        .iter()
        .enumerate()
        .filter(|(_, (seq, _))| *seq > 0)
        .map(|(i, &(seq, partial))| OriginEntry {
            node: NodeId::numbered(i as u32),
            seq: NonZeroU64::new(seq).unwrap(),
            partial,
        })
        .collect();
    entries.sort_by_key(|e| e.node);
    entries
}
