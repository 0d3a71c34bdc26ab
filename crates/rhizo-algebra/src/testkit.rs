//! Helpers the crate's test modules share (compiled for tests only).

use proptest::prelude::*;

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
