use proptest::prelude::*;
use rhizo_algebra::{AlgebraError, AlgebraicValue, MergeType, OpType, Schema, ValueType};
use rhizo_clock::NodeId;

use crate::testkit::schema;
use crate::*;

fn replica(i: u32) -> Replica {
    Replica::new(NodeId::numbered(i), schema(), ReplicaConfig::default())
}

/// One operation of the side-by-side test, on row `row` of its column.
#[derive(Debug, Clone)]
enum Op {
    Add(u8, i64),
    FloatAdd(u8, f64),
    Max(u8, i64),
    Min(u8, i64),
    Tag(u8, &'static str),
    Untag(u8, &'static str),
    Seen(u8, &'static str),
}

impl Op {
    fn key(&self) -> CellKey {
        let (row, column) = match self {
            Op::Add(r, _) => (r, "sum"),
            Op::FloatAdd(r, _) => (r, "fsum"),
            Op::Max(r, _) => (r, "hi"),
            Op::Min(r, _) => (r, "ilo"),
            Op::Tag(r, _) | Op::Untag(r, _) => (r, "tags"),
            Op::Seen(r, _) => (r, "words"),
        };
        CellKey::new("t", &format!("r{row}"), column)
    }

    fn add_to(&self, tx: &mut AlgebraicTransaction) {
        let key = self.key();
        let (row, column) = (key.row(), key.column());
        match *self {
            Op::Add(_, v) => tx.increment("t", row, column, v),
            Op::FloatAdd(_, v) => tx.increment("t", row, column, v),
            Op::Max(_, v) => tx.max("t", row, column, v),
            Op::Min(_, v) => tx.min("t", row, column, v),
            Op::Tag(_, e) | Op::Seen(_, e) => tx.add_to_set("t", row, column, [e]),
            Op::Untag(_, e) => tx.remove_from_set("t", row, column, [e]),
        };
    }

    fn add_prepared<'c>(
        &self,
        tx: &mut PreparedTransaction<'c>,
        cell: &'c PreparedCell,
    ) -> Result<()> {
        match *self {
            Op::Add(_, v) => tx.increment(cell, v),
            Op::FloatAdd(_, v) => tx.increment(cell, v),
            Op::Max(_, v) => tx.max(cell, v),
            Op::Min(_, v) => tx.min(cell, v),
            Op::Tag(_, e) | Op::Seen(_, e) => tx.add_to_set(cell, [e]),
            Op::Untag(_, e) => tx.remove_from_set(cell, [e]),
        }
        .map(drop)
    }
}

fn op() -> impl Strategy<Value = Op> {
    let row = 0u8..4;
    let element = prop::sample::select(vec!["a", "b", "c"]);
    prop_oneof![
        (
            row.clone(),
            prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)]
        )
            .prop_map(|(r, v)| Op::Add(r, v)),
        (row.clone(), prop_oneof![-2.0f64..2.0, Just(f64::MAX)])
            .prop_map(|(r, v)| Op::FloatAdd(r, v)),
        (row.clone(), any::<i64>()).prop_map(|(r, v)| Op::Max(r, v)),
        (row.clone(), any::<i64>()).prop_map(|(r, v)| Op::Min(r, v)),
        (row.clone(), element.clone()).prop_map(|(r, e)| Op::Tag(r, e)),
        (row.clone(), element.clone()).prop_map(|(r, e)| Op::Untag(r, e)),
        (row, element).prop_map(|(r, e)| Op::Seen(r, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A prepared commit is the string path's commit: for random transactions (repeated cells,
    /// any order, overflowing counters and floats that are refused), both replicas give the same
    /// outcome per transaction, the same records and, at the end, the same bytes.
    #[test]
    fn prepared_commits_are_the_string_paths_commits(
        txs in prop::collection::vec(prop::collection::vec(op(), 1..6), 1..24),
        handles_from_another_replica in any::<bool>(),
    ) {
        let mut by_string = replica(0);
        let mut by_handle = replica(0);
        // Handles prepared elsewhere carry hints of another replica: they must still find the
        // right cells (or none).
        let mut elsewhere = replica(1);
        let preparer = if handles_from_another_replica {
            for i in 0..4 {
                let mut tx = AlgebraicTransaction::new();
                tx.increment("t", &format!("r{}", 3 - i), "sum", 1);
                elsewhere.commit(tx).unwrap();
            }
            &elsewhere
        } else {
            &by_handle
        };
        let cells: Vec<Vec<PreparedCell>> = txs
            .iter()
            .map(|ops| ops.iter().map(|op| preparer.prepare_cell_key(op.key()).unwrap()).collect())
            .collect();
        for (ops, cells) in txs.iter().zip(&cells) {
            let mut tx = AlgebraicTransaction::new();
            let mut prepared = PreparedTransaction::new();
            for (op, cell) in ops.iter().zip(cells) {
                op.add_to(&mut tx);
                op.add_prepared(&mut prepared, cell).unwrap();
            }
            let expected = by_string.commit(tx);
            let got = by_handle.commit_prepared(prepared);
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(by_handle.take_ready(), by_string.take_ready());
        }
        prop_assert_eq!(by_handle.canonical_state(), by_string.canonical_state());
        prop_assert_eq!(by_handle.clock(), by_string.clock());
    }

    /// Batches of counter bumps are the string path's commits too. In key order, each cell
    /// once and every cell already there, they take the batch path (`integer_add_batch`);
    /// otherwise the general one. Overflowing adds are refused the same way on both.
    #[test]
    fn counter_batches_are_the_string_paths_commits(
        txs in prop::collection::vec(
            prop::collection::vec(
                (0u8..6, prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)]),
                1..8,
            ),
            1..32,
        ),
        in_key_order in any::<bool>(),
        with_records in any::<bool>(),
    ) {
        let config = ReplicaConfig { emit_records: with_records, ..ReplicaConfig::default() };
        let mut by_string = Replica::new(NodeId::numbered(0), schema(), config.clone());
        let mut by_handle = Replica::new(NodeId::numbered(0), schema(), config);
        let cells: Vec<PreparedCell> = (0..6)
            .map(|row| by_handle.prepare_cell("t", &format!("r{row}"), "sum").unwrap())
            .collect();
        for mut adds in txs {
            if in_key_order {
                adds.sort_by_key(|(row, _)| *row);
                adds.dedup_by_key(|(row, _)| *row);
            }
            let mut tx = AlgebraicTransaction::new();
            let mut prepared = PreparedTransaction::new();
            for (row, amount) in adds {
                Op::Add(row, amount).add_to(&mut tx);
                prepared.increment(&cells[usize::from(row)], amount).unwrap();
            }
            let expected = by_string.commit(tx);
            let got = by_handle.commit_prepared(prepared);
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(by_handle.take_ready(), by_string.take_ready());
        }
        prop_assert_eq!(by_handle.canonical_state(), by_string.canonical_state());
        prop_assert_eq!(by_handle.clock(), by_string.clock());
    }
}

#[test]
fn preparing_refuses_unknown_columns_and_long_rows_and_changes_nothing() {
    let r = replica(0);
    let before = r.canonical_state();
    assert!(matches!(
        r.prepare_cell("t", "x", "nope"),
        Err(LocalCommitError::UnknownCell { .. })
    ));
    assert!(matches!(
        r.prepare_cell("nope", "x", "sum"),
        Err(LocalCommitError::UnknownCell { .. })
    ));
    let long = "k".repeat(MAX_ROW_KEY_LEN + 1);
    assert!(matches!(
        r.prepare_cell("t", &long, "sum"),
        Err(LocalCommitError::RowKeyTooLong { len, .. }) if len == MAX_ROW_KEY_LEN + 1
    ));
    // Preparing an existing column creates no cell.
    let cell = r.prepare_cell("t", "x", "sum").unwrap();
    assert_eq!(cell.key(), &CellKey::new("t", "x", "sum"));
    assert_eq!(r.cell_count(), 0);
    assert_eq!(r.canonical_state(), before);
}

#[test]
fn bad_operations_are_refused_when_added_and_leave_the_transaction_as_it_was() {
    let r = replica(0);
    let sum = r.prepare_cell("t", "x", "sum").unwrap();
    let name = r.prepare_cell("t", "x", "name").unwrap();
    let mut tx = PreparedTransaction::new();
    tx.increment(&sum, 1).unwrap();
    match tx.increment(&sum, AlgebraicValue::Boolean(true)) {
        Err(LocalCommitError::InvalidOperations { errors }) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].0, *sum.key());
            assert!(matches!(errors[0].1, AlgebraError::TypeMismatch { .. }));
        }
        other => panic!("expected InvalidOperations, got {other:?}"),
    }
    assert!(matches!(
        tx.increment(&sum, f64::NAN),
        Err(LocalCommitError::InvalidOperations { .. })
    ));
    match tx.add_to_set(&name, ["v"]) {
        Err(LocalCommitError::RequiresCoordination { operations }) => {
            assert_eq!(operations, vec![(name.key().clone(), OpType::OrSetAdd)]);
        }
        other => panic!("expected RequiresCoordination, got {other:?}"),
    }
    // An overwrite names consensus whatever the column, as on the string path.
    let mut string_tx = AlgebraicTransaction::new();
    string_tx.put("t", "x", "sum", 5);
    let string_refusal = replica(1).commit(string_tx).unwrap_err();
    let prepared_refusal = tx.operation(&sum, OpType::GenericOverwrite, 5).unwrap_err();
    assert_eq!(prepared_refusal.to_string(), string_refusal.to_string());
    assert!(matches!(
        prepared_refusal,
        LocalCommitError::RequiresCoordination { .. }
    ));
    // The general form of a method is the method.
    tx.operation(&sum, OpType::AbelianAdd, 2).unwrap();
    assert_eq!(tx.len(), 2);
}

#[test]
fn refused_commits_change_nothing() {
    let mut r = replica(0);
    let a = r.prepare_cell("t", "a", "sum").unwrap();
    let b = r.prepare_cell("t", "b", "sum").unwrap();
    let mut tx = PreparedTransaction::new();
    tx.increment(&b, i64::MAX).unwrap();
    r.commit_prepared(tx).unwrap();
    r.take_ready();
    let (bytes, clock) = (r.canonical_state(), r.clock().clone());

    assert_eq!(
        r.commit_prepared(PreparedTransaction::new()),
        Err(LocalCommitError::EmptyTransaction)
    );
    // The first cell is fine and new, the second would leave i64: neither takes effect.
    let mut tx = PreparedTransaction::new();
    tx.increment(&a, 5).unwrap().increment(&b, 1).unwrap();
    match r.commit_prepared(tx) {
        Err(LocalCommitError::InvalidOperations { errors }) => {
            assert_eq!(errors[0].0, *b.key());
            assert!(matches!(errors[0].1, AlgebraError::Overflow { .. }));
        }
        other => panic!("expected an overflow, got {other:?}"),
    }
    assert_eq!(r.canonical_state(), bytes);
    assert_eq!(r.clock(), &clock);
    assert!(!r.has_ready());
    assert_eq!(r.read_prepared(&a).unwrap(), AlgebraicValue::Integer(0));
}

#[test]
fn handles_survive_schema_growth_and_are_refused_by_a_different_column() {
    let mut r = replica(0);
    let sum = r.prepare_cell("t", "x", "sum").unwrap();
    // A schema that adds a column keeps the handle valid (a lookup confirms the spec).
    let extra = rhizo_algebra::ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    let grown = r.schema().with_column("t", "extra", extra).unwrap();
    r.set_schema(grown);
    let mut tx = PreparedTransaction::new();
    tx.increment(&sum, 2).unwrap();
    r.commit_prepared(tx).unwrap();
    assert_eq!(r.read_prepared(&sum).unwrap(), AlgebraicValue::Integer(2));

    // A replica whose `sum` column is a MAX: the handle's ADD must not reach it.
    let other_schema = Schema::builder()
        .table("t")
        .column("sum", MergeType::Max, ValueType::Integer)
        .build()
        .unwrap();
    let mut other = Replica::new(NodeId::numbered(2), other_schema, ReplicaConfig::default());
    let mut tx = PreparedTransaction::new();
    tx.increment(&sum, 1).unwrap();
    assert_eq!(
        other.commit_prepared(tx),
        Err(LocalCommitError::StalePreparedCell {
            key: Box::new(sum.key().clone())
        })
    );
    assert!(matches!(
        other.read_prepared(&sum),
        Err(LocalCommitError::StalePreparedCell { .. })
    ));
    assert_eq!(other.cell_count(), 0);
    assert_eq!(other.clock().get(other.id()), 0);
}

#[test]
fn a_handle_keeps_working_across_recovery_and_on_a_replica_with_other_ids() {
    let mut r = replica(0);
    let mut log = Vec::new();
    // Committed in reverse order of preparation; the recovered replica and `elsewhere` below
    // assign ids in their own orders, and the hints must be checked, never trusted.
    let cells: Vec<PreparedCell> = (0..5)
        .map(|i| r.prepare_cell("t", &format!("r{i}"), "sum").unwrap())
        .collect();
    for (i, cell) in cells.iter().enumerate().rev() {
        let mut tx = PreparedTransaction::new();
        tx.increment(cell, i as i64 + 1).unwrap();
        r.commit_prepared(tx).unwrap();
    }
    log.extend(r.take_ready().records);
    let mut recovered =
        Replica::recover(r.id(), schema(), ReplicaConfig::default(), log.clone()).unwrap();
    assert_eq!(recovered.canonical_state(), r.canonical_state());
    for (i, cell) in cells.iter().enumerate() {
        assert_eq!(
            recovered.read_prepared(cell).unwrap(),
            AlgebraicValue::Integer(i as i64 + 1)
        );
        let mut tx = PreparedTransaction::new();
        tx.increment(cell, 10).unwrap();
        recovered.commit_prepared(tx).unwrap();
        assert_eq!(
            recovered.read("t", &format!("r{i}"), "sum").unwrap(),
            AlgebraicValue::Integer(i as i64 + 11)
        );
    }
    // A replica that holds the cells under other ids (created in another order).
    let mut elsewhere = replica(3);
    for i in 0..5 {
        let mut tx = AlgebraicTransaction::new();
        tx.increment("t", &format!("r{i}"), "sum", 100);
        elsewhere.commit(tx).unwrap();
    }
    let mut tx = PreparedTransaction::new();
    tx.increment(&cells[4], 1)
        .unwrap()
        .increment(&cells[0], 2)
        .unwrap();
    elsewhere.commit_prepared(tx).unwrap();
    assert_eq!(
        elsewhere.read("t", "r4", "sum").unwrap(),
        AlgebraicValue::Integer(101)
    );
    assert_eq!(
        elsewhere.read("t", "r0", "sum").unwrap(),
        AlgebraicValue::Integer(102)
    );
}

#[test]
fn observed_removes_see_the_committing_replicas_adds() {
    let mut a = replica(0);
    let tags = a.prepare_cell("t", "x", "tags").unwrap();
    let mut tx = PreparedTransaction::new();
    tx.add_to_set(&tags, ["p", "q"]).unwrap();
    a.commit_prepared(tx).unwrap();
    let mut tx = PreparedTransaction::new();
    tx.remove_from_set(&tags, ["p"]).unwrap();
    a.commit_prepared(tx).unwrap();
    assert_eq!(
        a.read_prepared(&tags).unwrap(),
        AlgebraicValue::string_set(["q"])
    );
}

#[test]
fn a_clone_does_not_trust_the_hints_its_original_gives() {
    let mut original = replica(0);
    let counter = original.prepare_cell("t", "counter", "sum").unwrap();
    // The clone shares every id so far; from here on the two assign ids on their own.
    let mut clone = original.clone();
    let mut tx = AlgebraicTransaction::new();
    tx.increment("t", "other", "sum", 7);
    clone.commit(tx).unwrap();
    // The original creates `counter` under the id the clone gave `other`, and hints it.
    let mut tx = PreparedTransaction::new();
    tx.increment(&counter, 1).unwrap();
    original.commit_prepared(tx).unwrap();
    // The clone must find `counter` by its key, not take the original's hint for `other`.
    let mut tx = PreparedTransaction::new();
    tx.increment(&counter, 5).unwrap();
    clone.commit_prepared(tx).unwrap();
    assert_eq!(
        clone.read("t", "other", "sum").unwrap(),
        AlgebraicValue::Integer(7)
    );
    assert_eq!(
        clone.read_prepared(&counter).unwrap(),
        AlgebraicValue::Integer(5)
    );
    assert_eq!(
        original.read_prepared(&counter).unwrap(),
        AlgebraicValue::Integer(1)
    );
    assert_eq!(original.cell_count(), 1);
}

/// A prepared operation is three words and a one-operation transaction eight: both are moved
/// on every commit (a `CellOp` held inline would make them 64 and 112 bytes).
#[test]
fn prepared_operations_stay_small() {
    assert_eq!(std::mem::size_of::<super::PreparedOp<'_>>(), 24);
    assert_eq!(std::mem::size_of::<PreparedTransaction<'_>>(), 72);
}

/// A cell created after the key ranks were last refreshed has no rank until enough new cells
/// make a refresh worth it. A batch of counter bumps orders it against ranked cells by key:
/// in key order it commits, out of order it takes the general path, and either way the
/// replica ends as the string path's does.
#[test]
fn counter_batches_order_unranked_cells_by_key() {
    let mut by_string = replica(0);
    let mut by_handle = replica(0);
    let rows: Vec<String> = (0..16).map(|i| format!("r{i:02}")).collect();
    let cells: Vec<PreparedCell> = rows
        .iter()
        .map(|row| by_handle.prepare_cell("t", row, "sum").unwrap())
        .collect();
    let late = by_handle.prepare_cell("t", "r07b", "sum").unwrap();
    let commit_both =
        |by_string: &mut Replica, by_handle: &mut Replica, adds: &[(&str, &PreparedCell)]| {
            let mut tx = AlgebraicTransaction::new();
            let mut prepared = PreparedTransaction::new();
            for (row, cell) in adds {
                tx.increment("t", row, "sum", 1);
                prepared.increment(cell, 1).unwrap();
            }
            assert_eq!(by_handle.commit_prepared(prepared), by_string.commit(tx));
            assert_eq!(by_handle.take_ready(), by_string.take_ready());
        };
    // Sixteen ranked cells, then one more (`r07b`, between `r07` and `r08`), too few to rank.
    let all: Vec<(&str, &PreparedCell)> = rows.iter().map(String::as_str).zip(&cells).collect();
    commit_both(&mut by_string, &mut by_handle, &all);
    commit_both(&mut by_string, &mut by_handle, &all);
    commit_both(&mut by_string, &mut by_handle, &[("r07b", &late)]);
    assert_eq!(
        by_handle
            .cells
            .rank(by_handle.cells.find(late.key()).unwrap()),
        None
    );
    // In key order around the unranked cell, then out of order on either side of it.
    let (r07, r08) = (("r07", &cells[7]), ("r08", &cells[8]));
    let r07b = ("r07b", &late);
    for adds in [[r07, r07b, r08], [r07b, r07, r08], [r07, r08, r07b]] {
        commit_both(&mut by_string, &mut by_handle, &adds);
        assert_eq!(
            by_handle
                .cells
                .rank(by_handle.cells.find(late.key()).unwrap()),
            None
        );
    }
    assert_eq!(by_handle.canonical_state(), by_string.canonical_state());
    assert_eq!(
        by_handle.read_prepared(&late).unwrap(),
        AlgebraicValue::Integer(4)
    );
}

/// A counter batch whose handles' hints name ranked cells of the committing replica, in rank
/// order, but were given by another replica: the hints name other cells there, and the batch
/// must not trust them (the steady-state check refuses foreign handles before it uses a hint).
#[test]
fn a_counter_batch_of_another_replicas_handles_bumps_the_cells_they_name() {
    let rows = ["r0", "r1", "r2"];
    let mut a = replica(0);
    let cells: Vec<PreparedCell> = rows
        .iter()
        .map(|row| a.prepare_cell("t", row, "sum").unwrap())
        .collect();
    // On `a` the cells get ids 0, 1, 2 in key order, and the handles learn them.
    let mut tx = PreparedTransaction::new();
    for cell in &cells {
        tx.increment(cell, 1).unwrap();
    }
    a.commit_prepared(tx).unwrap();
    // On `b` they are created r1, r2, r0: ids 0 and 1 (the hints of r0 and r1 on `a`) name
    // r1 and r2 there, in rank order. A batch over `b`'s own handles ranks them.
    let mut b = replica(1);
    let own: Vec<PreparedCell> = ["r1", "r2", "r0"]
        .iter()
        .map(|row| b.prepare_cell("t", row, "sum").unwrap())
        .collect();
    for cell in &own {
        let mut tx = PreparedTransaction::new();
        tx.increment(cell, 100).unwrap();
        b.commit_prepared(tx).unwrap();
    }
    let mut tx = PreparedTransaction::new();
    tx.increment(&own[2], 100)
        .unwrap()
        .increment(&own[0], 100)
        .unwrap();
    b.commit_prepared(tx).unwrap();
    let mut tx = PreparedTransaction::new();
    tx.increment(&cells[0], 1)
        .unwrap()
        .increment(&cells[1], 2)
        .unwrap();
    b.commit_prepared(tx).unwrap();
    for (row, expected) in [("r0", 201), ("r1", 202), ("r2", 100)] {
        assert_eq!(
            b.read("t", row, "sum").unwrap(),
            AlgebraicValue::Integer(expected),
            "{row}"
        );
    }
    // And on `a`, the steady state: the same handles, trusted.
    let mut tx = PreparedTransaction::new();
    for cell in &cells {
        tx.increment(cell, 10).unwrap();
    }
    a.commit_prepared(tx).unwrap();
    for row in rows {
        assert_eq!(
            a.read("t", row, "sum").unwrap(),
            AlgebraicValue::Integer(11)
        );
    }
}
