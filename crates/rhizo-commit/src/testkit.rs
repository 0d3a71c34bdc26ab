//! Helpers the crate's test modules share (compiled for tests only).

use rhizo_algebra::{MergeType, Schema, ValueType};
use rhizo_clock::NodeId;

use crate::{AlgebraicTransaction, Operations};

/// Table `t`, a column of every kind the replica's tests exercise: sums and a maximum of
/// integers and floats, minima of both, an observed-remove and two grow-only sets (strings and
/// integers) and a register.
pub(crate) fn schema() -> Schema {
    Schema::builder()
        .table("t")
        .column("sum", MergeType::Add, ValueType::Integer)
        .column("fsum", MergeType::Add, ValueType::Float)
        .column("hi", MergeType::Max, ValueType::Integer)
        .column("lo", MergeType::Min, ValueType::Float)
        .column("ilo", MergeType::Min, ValueType::Integer)
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .column("seen", MergeType::Union, ValueType::IntSet)
        .column("words", MergeType::Union, ValueType::StringSet)
        .column("name", MergeType::Register, ValueType::StringSet)
        .build()
        .unwrap()
}

/// Node `n{i}`.
pub(crate) fn node(i: u32) -> NodeId {
    NodeId::numbered(i)
}

/// A transaction adding `amount` to `t.sum` of `row`.
pub(crate) fn incr(row: &str, amount: i64) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", row, "sum", amount);
    tx
}
