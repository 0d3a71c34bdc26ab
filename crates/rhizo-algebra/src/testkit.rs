//! Helpers the crate's test modules share (compiled for tests only).

use std::num::NonZeroU64;

use proptest::prelude::*;
use rhizo_clock::NodeId;

use crate::state::{IntSum, OriginEntry};

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

/// An integer sum of origins `0..n`, each drawn as `(seq, partial)` (a zero sequence number
/// means the origin is absent), held narrow where it can be, or wide if `wide`.
pub(crate) fn int_sum_of(draws: &[(u64, i128)], wide: bool) -> IntSum {
    let sum = IntSum::from_entries(&drawn_entries(draws));
    if wide { sum.to_wide() } else { sum }
}

/// An integer sum's partials: mostly small, some at the edges of `i64`, some beyond it.
fn int_sum_partial() -> impl Strategy<Value = i128> {
    prop_oneof![
        4 => -5i128..5,
        1 => (-2i128..=2).prop_map(|d| i128::from(i64::MAX) + d),
        1 => (-2i128..=2).prop_map(|d| i128::from(i64::MIN) + d),
        1 => any::<i64>().prop_map(|x| i128::from(x) << 40),
    ]
}

/// Draws for [`int_sum_of`]: up to a dozen origins.
pub(crate) fn int_sum_draws() -> impl Strategy<Value = Vec<(u64, i128)>> {
    proptest::collection::vec((0u64..4, int_sum_partial()), 0..12)
}
