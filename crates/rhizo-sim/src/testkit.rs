//! Helpers the crate's test modules share (compiled for tests only).

use rhizo_commit::{AlgebraicTransaction, Operations};

use crate::workload;

/// A transaction adding `amount` to the workload schema's counter `row`.
pub(crate) fn incr(row: &str, amount: i64) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.increment(workload::COUNTERS, row, "value", amount);
    tx
}
