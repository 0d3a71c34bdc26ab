//! Helpers the crate's test modules share (compiled for tests only).

use rhizo_algebra::{MergeType, Schema, ValueType};

/// The roadmap's tables (`counters.value`, `users.tags`) with a MAX column, a string-set
/// register `users.email` and an integer register `kv.reg`: what the manager's and the Raft
/// node's tests write.
pub(crate) fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .column("peak", MergeType::Max, ValueType::Integer)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .column("email", MergeType::Register, ValueType::StringSet)
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .build()
        .unwrap()
}
