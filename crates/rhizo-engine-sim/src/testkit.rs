//! Helpers the crate's tests share.

use rhizo_algebra::{AlgebraicValue, ColumnSpec, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_txn::{CommitOutcome, EngineConfig, Transaction};

pub(crate) fn node(i: u32) -> NodeId {
    NodeId::numbered(i)
}

/// Counters (ADD, MAX, MIN), an observed-remove set, two registers and a bounded set.
pub(crate) fn test_schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .column("peak", MergeType::Max, ValueType::Integer)
        .column("low", MergeType::Min, ValueType::Float)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .column("email", MergeType::Register, ValueType::Integer)
        .column("score", MergeType::Register, ValueType::Integer)
        .column_spec(
            "badges",
            ColumnSpec::new(MergeType::Union, ValueType::StringSet)
                .unwrap()
                .with_max_set_len(3),
        )
        .build()
        .unwrap()
}

pub(crate) fn config() -> EngineConfig {
    EngineConfig::new(node(0)).with_schema(test_schema())
}

pub(crate) fn int(v: i64) -> AlgebraicValue {
    AlgebraicValue::Integer(v)
}

/// Commits a transaction the engine decides at once.
pub(crate) fn decide(tx: Transaction<'_>) -> rhizo_txn::Result<CommitOutcome> {
    tx.commit()
        .map(|submitted| submitted.committed().expect("decided at once"))
}
