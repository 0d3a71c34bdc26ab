use super::*;
use crate::{Replica, ReplicaConfig};

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn op(key: &str, op_type: OpType, value: impl Into<AlgebraicValue>) -> KeyedOperation {
    KeyedOperation::new(key, op_type, value.into())
}

fn tx(ops: impl IntoIterator<Item = KeyedOperation>) -> KeyedTransaction {
    let mut tx = KeyedTransaction::new();
    for op in ops {
        tx.push(op);
    }
    tx
}

fn add(key: &str, amount: i64) -> KeyedTransaction {
    tx([op(key, OpType::AbelianAdd, amount)])
}

fn commit(tx: &KeyedTransaction, on: &str, clock: &mut VectorClock) -> KeyedUpdate {
    KeyedUpdate::commit(tx, node(on), clock).unwrap()
}

fn value_of(update: &KeyedUpdate, key: &str) -> AlgebraicValue {
    let found = update.operations().iter().find(|op| op.key == key);
    found.map(|op| op.value.clone()).unwrap()
}

#[test]
fn the_schema_has_a_column_for_every_kind_and_value_type_that_merge() {
    let schema = keyed_schema();
    let columns: Vec<&str> = schema
        .table(KEYED_TABLE)
        .unwrap()
        .columns()
        .map(|c| c.0)
        .collect();
    // MAX and MIN: integer, float, boolean and 19 decimal scales each; UNION and INTERSECT: two
    // set types each; ADD: integer, float and 19 decimal scales; MULTIPLY: integer and float.
    assert_eq!(columns.len(), 22 * 2 + 2 * 2 + 21 + 2);
    for name in [
        "ADD integer",
        "MAX boolean",
        "UNION string set",
        "MIN decimal(scale 18)",
    ] {
        assert!(columns.contains(&name), "{name}");
    }
    assert!(
        !columns
            .iter()
            .any(|c| c.starts_with("OR_") || c.contains("REGISTER"))
    );
}

#[test]
fn an_operation_names_its_column_even_when_it_has_none() {
    let union_of_int = op("k", OpType::SemilatticeUnion, 3);
    assert_eq!(
        union_of_int.cell_key(),
        CellKey::new("keys", "k", "UNION integer")
    );
    assert!(matches!(
        union_of_int.column(),
        Err(AlgebraError::InvalidColumn { .. })
    ));
    let add_null = op("k", OpType::AbelianAdd, AlgebraicValue::Null);
    assert_eq!(add_null.cell_key().column(), "ADD null");
    assert_eq!(
        add_null.column(),
        Err(AlgebraError::NullNotAllowed {
            merge: MergeType::Add
        })
    );
    assert!(matches!(
        op("k", OpType::OrSetAdd, AlgebraicValue::string_set(["a"])).column(),
        Err(AlgebraError::NeedsContext { .. })
    ));
}

#[test]
fn a_commit_ticks_the_callers_clock_and_keeps_the_transaction_order() {
    let mut clock = VectorClock::new().with_node(node("b"), 4);
    let tx = tx([
        op("z", OpType::AbelianAdd, 1),
        op("a", OpType::SemilatticeMax, 2.5),
        op("z", OpType::AbelianAdd, 3),
    ]);
    let update = commit(&tx, "a", &mut clock);
    assert_eq!(
        clock,
        VectorClock::new()
            .with_node(node("a"), 1)
            .with_node(node("b"), 4)
    );
    assert_eq!(update.clock(), &clock);
    assert_eq!(update.operations(), tx.operations());
    assert_eq!(
        (update.origin(), update.origin_node()),
        ("a", Some(node("a")))
    );
}

#[test]
fn a_refused_commit_leaves_the_clock_unchanged() {
    let before = VectorClock::new().with_node(node("a"), 2);
    let refused = [
        (KeyedTransaction::new(), "EmptyTransaction"),
        (
            tx([
                op("k", OpType::AbelianAdd, 1),
                op("r", OpType::GenericOverwrite, 1),
            ]),
            "RequiresCoordination",
        ),
        (
            tx([op("k", OpType::SemilatticeUnion, 1)]),
            "InvalidOperations",
        ),
        (
            tx([op("k", OpType::AbelianAdd, f64::NAN)]),
            "InvalidOperations",
        ),
        (
            tx([op(&"k".repeat(2000), OpType::AbelianAdd, 1)]),
            "RowKeyTooLong",
        ),
    ];
    for (tx, expected) in refused {
        let mut clock = before.clone();
        let err = KeyedUpdate::commit(&tx, node("a"), &mut clock).unwrap_err();
        assert!(format!("{err:?}").starts_with(expected), "{err:?}");
        assert_eq!(clock, before);
    }
}

#[test]
fn coordination_is_reported_for_every_operation_that_needs_it() {
    let tx = tx([
        op("r", OpType::GenericOverwrite, 1),
        op("k", OpType::AbelianAdd, 1),
        op("c", OpType::GenericConditional, 2),
    ]);
    assert!(!tx.is_fully_algebraic() && !tx.can_commit_locally());
    let Err(LocalCommitError::RequiresCoordination { operations }) = tx.to_cell_transaction()
    else {
        panic!("expected RequiresCoordination");
    };
    let kinds: Vec<(&str, OpType)> = operations.iter().map(|(k, o)| (k.row(), *o)).collect();
    assert_eq!(
        kinds,
        [
            ("r", OpType::GenericOverwrite),
            ("c", OpType::GenericConditional)
        ]
    );
}

#[test]
fn merging_counts_each_commit_once() {
    let (mut on_a, mut on_b) = (VectorClock::new(), VectorClock::new());
    let from_a = commit(&add("views", 2), "a", &mut on_a);
    let from_b = commit(&add("views", 3), "b", &mut on_b);
    let both = KeyedUpdate::merge([&from_a, &from_b]).unwrap();
    assert_eq!(value_of(&both, "views"), AlgebraicValue::Integer(5));
    // The same update twice, or again beside a merge that holds it: still counted once.
    let itself = KeyedUpdate::merge([&from_a, &from_a]).unwrap();
    assert_eq!(value_of(&itself, "views"), AlgebraicValue::Integer(2));
    let again = KeyedUpdate::merge([&both, &from_a, &both]).unwrap();
    assert_eq!(value_of(&again, "views"), AlgebraicValue::Integer(5));
    assert_eq!(again.origin(), "merged:merged:a+b+a+merged:a+b");
    assert_eq!(again.origin_node(), None);
    assert_eq!(again.clock(), both.clock());
}

#[test]
fn different_commits_under_one_dot_both_count() {
    // Two commits from fresh clocks carry the same dot; they are still two commits.
    let first = commit(&add("views", 2), "a", &mut VectorClock::new());
    let second = commit(&add("views", 7), "a", &mut VectorClock::new());
    let merged = KeyedUpdate::merge([&first, &second]).unwrap();
    assert_eq!(value_of(&merged, "views"), AlgebraicValue::Integer(9));
}

#[test]
fn merge_is_independent_of_order_and_grouping() {
    let mut clock = VectorClock::new();
    let updates: Vec<KeyedUpdate> = [(1, 0.1), (2, 0.2), (3, 0.3), (4, 1e16)]
        .into_iter()
        .map(|(n, x)| {
            let tx = tx([
                op("n", OpType::AbelianAdd, n),
                op("x", OpType::AbelianAdd, x),
                op("s", OpType::SemilatticeUnion, AlgebraicValue::int_set([n])),
                op("m", OpType::SemilatticeMin, n),
            ]);
            commit(&tx, "a", &mut clock)
        })
        .collect();
    let all = KeyedUpdate::merge(&updates).unwrap();
    let reversed = KeyedUpdate::merge(updates.iter().rev()).unwrap();
    let left = KeyedUpdate::merge([&updates[0], &updates[1]]).unwrap();
    let right = KeyedUpdate::merge([&updates[2], &updates[3]]).unwrap();
    let grouped = KeyedUpdate::merge([&left, &right]).unwrap();
    for other in [&reversed, &grouped] {
        assert_eq!(other.operations(), all.operations());
    }
    let keys: Vec<&str> = all.operations().iter().map(|op| op.key.as_str()).collect();
    assert_eq!(keys, ["m", "n", "s", "x"]);
    assert_eq!(value_of(&all, "n"), AlgebraicValue::Integer(10));
    assert_eq!(value_of(&all, "m"), AlgebraicValue::Integer(1));
    assert_eq!(value_of(&all, "s"), AlgebraicValue::int_set([1, 2, 3, 4]));
}

#[test]
fn a_single_update_is_returned_as_it_is_and_none_is_refused() {
    let tx = tx([
        op("k", OpType::AbelianAdd, 1),
        op("k", OpType::AbelianAdd, 2),
    ]);
    let update = commit(&tx, "a", &mut VectorClock::new());
    assert_eq!(KeyedUpdate::merge([&update]).unwrap(), update);
    assert_eq!(
        KeyedUpdate::merge(std::iter::empty()),
        Err(LocalCommitError::EmptyTransaction)
    );
    // Merged with anything, its repeated key is combined.
    let merged = KeyedUpdate::merge([&update, &update]).unwrap();
    assert_eq!(merged.operations(), [op("k", OpType::AbelianAdd, 3)]);
}

#[test]
fn one_key_written_two_ways_does_not_merge() {
    let mut clock = VectorClock::new();
    let added = commit(&add("k", 1), "a", &mut clock);
    let maxed = commit(&tx([op("k", OpType::SemilatticeMax, 1)]), "a", &mut clock);
    let as_float = commit(&tx([op("k", OpType::AbelianAdd, 1.0)]), "a", &mut clock);
    for other in [&maxed, &as_float] {
        let err = KeyedUpdate::merge([&added, other]).unwrap_err();
        assert!(
            matches!(&err, LocalCommitError::ConflictingKeyColumns { key, first, .. }
                if key == "k" && first == "ADD integer"),
            "{err:?}"
        );
    }
}

#[test]
fn an_overflowing_merge_names_its_key() {
    let mut clock = VectorClock::new();
    let big = commit(&add("k", i64::MAX), "a", &mut clock);
    let one = commit(&add("k", 1), "a", &mut clock);
    let Err(LocalCommitError::InvalidOperations { errors }) = KeyedUpdate::merge([&big, &one])
    else {
        panic!("expected an overflow");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, CellKey::new("keys", "k", "ADD integer"));
    assert!(matches!(errors[0].1, AlgebraError::Overflow { .. }));
}

#[test]
fn metadata_stays_with_the_transaction() {
    let mut tx = add("k", 1);
    tx.set_metadata("request", "1");
    tx.set_metadata("request", "2");
    assert_eq!(tx.metadata("request"), Some("2"));
    assert_eq!(tx.metadata("other"), None);
    assert!(KeyedTransaction::new().is_fully_algebraic());
    assert!(!KeyedTransaction::new().can_commit_locally());
}

#[test]
fn a_replica_reads_keys_back_with_their_kinds() {
    let mut replica = Replica::new(node("a"), keyed_schema().clone(), ReplicaConfig::default());
    let writes = tx([
        op("views", OpType::AbelianAdd, 4),
        op("best", OpType::SemilatticeMax, 2.5),
        op(
            "tags",
            OpType::SemilatticeUnion,
            AlgebraicValue::string_set(["x"]),
        ),
    ]);
    replica
        .commit(writes.to_cell_transaction().unwrap())
        .unwrap();
    let values = keyed_values(replica.values());
    let read = |key: &str| values[key].clone().unwrap();
    assert_eq!(read("views").op_type, OpType::AbelianAdd);
    assert_eq!(read("views").value, AlgebraicValue::Integer(4));
    assert_eq!(read("best").value, AlgebraicValue::float(2.5));
    assert_eq!(read("tags").op_type, OpType::SemilatticeUnion);
    // A second kind on a key reads as the conflict it is.
    replica
        .commit(
            tx([op("views", OpType::SemilatticeMin, 1)])
                .to_cell_transaction()
                .unwrap(),
        )
        .unwrap();
    let values = keyed_values(replica.values());
    assert!(matches!(
        &values["views"],
        Err(LocalCommitError::ConflictingKeyColumns { first, other, .. })
            if first == "ADD integer" && other == "MIN integer"
    ));
    assert_eq!(values.len(), 3);
}
