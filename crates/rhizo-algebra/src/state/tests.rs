use super::*;

fn spec(merge: MergeType, value_type: ValueType) -> ColumnSpec {
    ColumnSpec::new(merge, value_type).unwrap()
}

fn dot(node: &str, counter: u64) -> Dot {
    Dot::new(NodeId::new(node).unwrap(), counter).unwrap()
}

fn op(spec: &ColumnSpec, kind: OpType, value: impl Into<AlgebraicValue>) -> CellOp {
    CellOp::new(spec, kind, &value.into()).unwrap()
}

/// Every permutation of `items` (Heap's algorithm, for the small cases below).
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn heap<T: Clone>(k: usize, a: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            if k.is_multiple_of(2) {
                a.swap(i, k - 1);
            } else {
                a.swap(0, k - 1);
            }
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}

#[test]
fn float_sums_are_bit_identical_in_every_arrival_order() {
    // 1e16 + 1 - 1e16 is 0.0 in one order and 1.0 in another when summed on arrival.
    let s = spec(MergeType::Add, ValueType::Float);
    let updates = [
        (op(&s, OpType::AbelianAdd, 1e16), dot("a", 1)),
        (op(&s, OpType::AbelianAdd, 1.0), dot("b", 1)),
        (op(&s, OpType::AbelianAdd, -1e16), dot("c", 1)),
    ];
    let orders = permutations(&updates);
    assert_eq!(orders.len(), 6);
    let states: Vec<CellState> = orders
        .iter()
        .map(|order| {
            let mut state = CellState::new(&s);
            for (o, d) in order {
                state.apply(o, *d).unwrap();
            }
            state
        })
        .collect();
    for state in &states {
        assert_eq!(state, &states[0]);
        // The canonical fold is ((-0 + 1e16) + 1) + -1e16 in node order a, b, c.
        assert_eq!(state.value().unwrap(), AlgebraicValue::float(0.0));
    }
}

#[test]
fn integer_sums_are_exact_and_overflow_identically() {
    // checked_add would fail MAX + 1 - 1 in one order and not in another.
    let s = spec(MergeType::Add, ValueType::Integer);
    let updates = [
        (op(&s, OpType::AbelianAdd, i64::MAX), dot("a", 1)),
        (op(&s, OpType::AbelianAdd, 1), dot("b", 1)),
        (op(&s, OpType::AbelianAdd, -1), dot("c", 1)),
    ];
    for order in permutations(&updates) {
        let mut state = CellState::new(&s);
        for (i, (o, d)) in order.iter().enumerate() {
            state.apply(o, *d).unwrap();
            let seen: Vec<i64> = order[..=i]
                .iter()
                .map(|(o, _)| match o {
                    CellOp::AddInt(v) => *v,
                    _ => unreachable!(),
                })
                .collect();
            let exact: i128 = seen.iter().map(|v| i128::from(*v)).sum();
            let expected = i64::try_from(exact)
                .map(AlgebraicValue::Integer)
                .map_err(|_| AlgebraError::Overflow {
                    value_type: ValueType::Integer,
                });
            assert_eq!(state.value(), expected, "after {seen:?}");
        }
        assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(i64::MAX));
    }
}

#[test]
fn duplicates_and_older_dots_are_ignored() {
    let s = spec(MergeType::Add, ValueType::Integer);
    let mut state = CellState::new(&s);
    state
        .apply(&op(&s, OpType::AbelianAdd, 5), dot("a", 3))
        .unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, 5), dot("a", 3))
        .unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, 7), dot("a", 2))
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(5));
    assert_eq!(state.applied_seq(NodeId::new("a").unwrap()), 3);
    assert_eq!(state.applied_seq(NodeId::new("b").unwrap()), 0);
    // All effects of one update go together.
    state
        .apply_all(
            &[op(&s, OpType::AbelianAdd, 1), op(&s, OpType::AbelianAdd, 2)],
            dot("a", 4),
        )
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(8));
}

#[test]
fn a_failing_update_changes_nothing() {
    let s = spec(MergeType::Add, ValueType::Float);
    let mut state = CellState::new(&s);
    state
        .apply(&op(&s, OpType::AbelianAdd, f64::MAX), dot("a", 1))
        .unwrap();
    let before = state.clone();
    assert_eq!(
        state.apply_all(
            &[
                op(&s, OpType::AbelianAdd, -1.0),
                op(&s, OpType::AbelianAdd, f64::MAX)
            ],
            dot("a", 2)
        ),
        Err(AlgebraError::Overflow {
            value_type: ValueType::Float
        })
    );
    assert_eq!(state, before);
    assert_eq!(state.applied_seq(NodeId::new("a").unwrap()), 1);
    // Two origins each within range whose sum is not: the read reports it, on every replica.
    state
        .apply(&op(&s, OpType::AbelianAdd, f64::MAX), dot("b", 1))
        .unwrap();
    assert_eq!(
        state.value(),
        Err(AlgebraError::Overflow {
            value_type: ValueType::Float
        })
    );
    let mut mixed = state.clone();
    assert_eq!(
        mixed.apply(
            &op(
                &spec(MergeType::Max, ValueType::Float),
                OpType::SemilatticeMax,
                1.0
            ),
            dot("c", 1)
        ),
        Err(AlgebraError::StateMismatch {
            state: "float ADD".into(),
            op: "MAX".into()
        })
    );
    assert_eq!(mixed, state);
}

#[test]
fn decimal_sums_are_exact() {
    let s = spec(MergeType::Add, ValueType::Decimal { scale: 2 });
    let mut state = CellState::new(&s);
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::Decimal("0.00".parse().unwrap())
    );
    let tenth: Decimal = "0.1".parse().unwrap();
    let fifth: Decimal = "0.20".parse().unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, tenth), dot("a", 1))
        .unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, fifth), dot("b", 1))
        .unwrap();
    assert_eq!(state.value().unwrap().to_string(), "0.30");
    let max = Decimal::new(Decimal::MAX_MANTISSA, 2).unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, max), dot("c", 1))
        .unwrap();
    assert_eq!(
        state.value(),
        Err(AlgebraError::Overflow {
            value_type: ValueType::Decimal { scale: 2 }
        })
    );
    let minus: Decimal = "-0.30".parse().unwrap();
    state
        .apply(&op(&s, OpType::AbelianAdd, minus), dot("d", 1))
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Decimal(max));
}

#[test]
fn integer_products_are_exact_with_zero_absorbing() {
    let s = spec(MergeType::Multiply, ValueType::Integer);
    let mut state = CellState::new(&s);
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::Integer(1),
        "identity"
    );
    state
        .apply(&op(&s, OpType::AbelianMultiply, -3), dot("a", 1))
        .unwrap();
    state
        .apply(&op(&s, OpType::AbelianMultiply, 4), dot("b", 1))
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(-12));
    state
        .apply(&op(&s, OpType::AbelianMultiply, i64::MAX), dot("c", 1))
        .unwrap();
    assert_eq!(
        state.value(),
        Err(AlgebraError::Overflow {
            value_type: ValueType::Integer
        })
    );
    state
        .apply(&op(&s, OpType::AbelianMultiply, 0), dot("d", 1))
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(0));
}

#[test]
fn float_products_fold_in_node_order() {
    let s = spec(MergeType::Multiply, ValueType::Float);
    let mut a_first = CellState::new(&s);
    let mut c_first = CellState::new(&s);
    let ups = [
        (op(&s, OpType::AbelianMultiply, 0.1), dot("a", 1)),
        (op(&s, OpType::AbelianMultiply, 3.0), dot("b", 1)),
        (op(&s, OpType::AbelianMultiply, 1e-300), dot("c", 1)),
    ];
    for (o, d) in &ups {
        a_first.apply(o, *d).unwrap();
    }
    for (o, d) in ups.iter().rev() {
        c_first.apply(o, *d).unwrap();
    }
    assert_eq!(a_first, c_first);
    assert_eq!(
        a_first.value().unwrap(),
        AlgebraicValue::float(0.1 * 3.0 * 1e-300)
    );
}

#[test]
fn max_and_min_use_a_total_order() {
    let s = spec(MergeType::Max, ValueType::Float);
    let mut state = CellState::new(&s);
    assert_eq!(state.value().unwrap(), AlgebraicValue::Null);
    state
        .apply(&op(&s, OpType::SemilatticeMax, 0.0), dot("a", 1))
        .unwrap();
    state
        .apply(&op(&s, OpType::SemilatticeMax, -0.0), dot("b", 1))
        .unwrap();
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::float(0.0),
        "-0.0 < +0.0"
    );
    assert_eq!(
        CellOp::new(&s, OpType::SemilatticeMax, &f64::NAN.into()),
        Err(AlgebraError::NonFiniteFloat {
            bits: f64::NAN.to_bits()
        })
    );
    let m = spec(MergeType::Min, ValueType::Decimal { scale: 3 });
    let mut state = CellState::new(&m);
    for (i, d) in ["1.5", "-0.25", "2"].iter().enumerate() {
        let d: Decimal = d.parse().unwrap();
        state
            .apply(&op(&m, OpType::SemilatticeMin, d), dot("a", i as u64 + 1))
            .unwrap();
    }
    assert_eq!(state.value().unwrap().to_string(), "-0.250");
    let b = spec(MergeType::Max, ValueType::Boolean);
    let mut state = CellState::new(&b);
    state
        .apply(&op(&b, OpType::SemilatticeMax, false), dot("a", 1))
        .unwrap();
    state
        .apply(&op(&b, OpType::SemilatticeMax, true), dot("b", 1))
        .unwrap();
    state
        .apply(&op(&b, OpType::SemilatticeMax, false), dot("c", 1))
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Boolean(true));
}

#[test]
fn union_grows_and_intersect_starts_from_everything() {
    let u = spec(MergeType::Union, ValueType::StringSet);
    let mut state = CellState::new(&u);
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::string_set::<&str>([])
    );
    state
        .apply(
            &op(
                &u,
                OpType::SemilatticeUnion,
                AlgebraicValue::string_set(["b", "a"]),
            ),
            dot("a", 1),
        )
        .unwrap();
    state
        .apply(
            &op(
                &u,
                OpType::SemilatticeUnion,
                AlgebraicValue::string_set(["c", "a"]),
            ),
            dot("b", 1),
        )
        .unwrap();
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::string_set(["a", "b", "c"])
    );

    let i = spec(MergeType::Intersect, ValueType::IntSet);
    let mut state = CellState::new(&i);
    assert_eq!(state.value().unwrap(), AlgebraicValue::Null, "the universe");
    let empty = CellState::new(&i);
    state
        .apply(
            &op(
                &i,
                OpType::SemilatticeIntersect,
                AlgebraicValue::int_set([1, 2, 3]),
            ),
            dot("a", 1),
        )
        .unwrap();
    state.merge(&empty).unwrap();
    assert_eq!(
        state.value().unwrap(),
        AlgebraicValue::int_set([1, 2, 3]),
        "identity"
    );
    state
        .apply(
            &op(
                &i,
                OpType::SemilatticeIntersect,
                AlgebraicValue::int_set([2, 3, 4]),
            ),
            dot("b", 1),
        )
        .unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::int_set([2, 3]));
    assert_eq!(
        state.apply(
            &CellOp::Intersect(Elements::Strings(SortedSet::new())),
            dot("c", 1)
        ),
        Err(AlgebraError::StateMismatch {
            state: "INTERSECT".into(),
            op: "INTERSECT".into()
        })
    );
}

#[test]
fn or_set_add_wins_over_a_concurrent_remove() {
    let s = spec(MergeType::ObservedRemoveSet, ValueType::StringSet);
    let x = AlgebraicValue::string_set(["x"]);
    let mut a = CellState::new(&s);
    a.apply(&op(&s, OpType::OrSetAdd, x.clone()), dot("a", 1))
        .unwrap();
    let mut b = a.clone();
    // b removes what it observed; a concurrently re-adds x.
    let remove = b.remove_op(&s, &x).unwrap();
    assert_eq!(
        remove,
        CellOp::OrRemove(ObservedTags::Strings(
            [("x".to_owned(), dot("a", 1))].into_iter().collect()
        ))
    );
    b.apply(&remove, dot("b", 1)).unwrap();
    assert_eq!(b.value().unwrap(), AlgebraicValue::string_set::<&str>([]));
    a.apply(&op(&s, OpType::OrSetAdd, x.clone()), dot("a", 2))
        .unwrap();
    let mut ab = a.clone();
    ab.merge(&b).unwrap();
    let mut ba = b.clone();
    ba.merge(&a).unwrap();
    assert_eq!(ab, ba);
    assert_eq!(ab.value().unwrap(), x, "the unobserved add survives");
    assert_eq!(ab.observed(ElementRef::Str("x")), vec![dot("a", 2)]);
    assert_eq!(ab.observed(ElementRef::Str("y")), vec![]);
    assert_eq!(
        ab.observed(ElementRef::Int(1)),
        vec![],
        "wrong element kind"
    );
}

#[test]
fn or_set_remove_delivered_before_its_add_stays_removed() {
    let s = spec(MergeType::ObservedRemoveSet, ValueType::IntSet);
    let add = op(&s, OpType::OrSetAdd, AlgebraicValue::int_set([7, 8]));
    let remove = CellOp::OrRemove(ObservedTags::Ints([(7, dot("a", 1))].into_iter().collect()));
    let mut in_order = CellState::new(&s);
    in_order.apply(&add, dot("a", 1)).unwrap();
    in_order.apply(&remove, dot("b", 1)).unwrap();
    let mut reversed = CellState::new(&s);
    reversed.apply(&remove, dot("b", 1)).unwrap();
    reversed.apply(&add, dot("a", 1)).unwrap();
    assert_eq!(in_order, reversed);
    assert_eq!(in_order.value().unwrap(), AlgebraicValue::int_set([8]));
    assert_eq!(in_order.tombstone_count(), 1);

    // Compaction waits until both the tag and the remover are stable.
    let a = NodeId::new("a").unwrap();
    let b = NodeId::new("b").unwrap();
    in_order.compact(&VectorClock::new().with_node(a, 1));
    assert_eq!(in_order.tombstone_count(), 1);
    in_order.compact(&VectorClock::new().with_node(a, 1).with_node(b, 1));
    assert_eq!(in_order.tombstone_count(), 0);
    assert_eq!(in_order.value().unwrap(), AlgebraicValue::int_set([8]));
}

#[test]
fn or_set_bulk_add_matches_single_adds() {
    let s = spec(MergeType::ObservedRemoveSet, ValueType::IntSet);
    let many: Vec<i64> = (0..100).map(|i| i * 3).collect();
    let mut bulk = CellState::new(&s);
    bulk.apply(
        &op(
            &s,
            OpType::OrSetAdd,
            AlgebraicValue::int_set((0..50).map(|i| i * 2)),
        ),
        dot("a", 1),
    )
    .unwrap();
    bulk.apply(
        &op(&s, OpType::OrSetAdd, AlgebraicValue::int_set(many.clone())),
        dot("a", 2),
    )
    .unwrap();
    let mut single = CellState::new(&s);
    single
        .apply(
            &op(
                &s,
                OpType::OrSetAdd,
                AlgebraicValue::int_set((0..50).map(|i| i * 2)),
            ),
            dot("a", 1),
        )
        .unwrap();
    for v in &many {
        single
            .apply(
                &op(&s, OpType::OrSetAdd, AlgebraicValue::int_set([*v])),
                dot("a", 2),
            )
            .unwrap();
    }
    assert_eq!(bulk, single);
    // a's second add of 6 superseded its first: one tag per element and origin.
    assert_eq!(bulk.observed(ElementRef::Int(6)), vec![dot("a", 2)]);
    assert_eq!(bulk.observed(ElementRef::Int(2)), vec![dot("a", 1)]);
}

/// Re-adding an element keeps one tag per origin: the state after many re-adds is the state
/// after each origin's last add alone, byte for byte, and a remove names one tag per origin.
#[test]
fn re_adding_an_element_keeps_one_tag_per_origin() {
    let s = spec(MergeType::ObservedRemoveSet, ValueType::StringSet);
    let premium = AlgebraicValue::string_set(["premium"]);
    let add = op(&s, OpType::OrSetAdd, premium.clone());
    const READDS: u64 = 200_000;
    let mut readded = CellState::new(&s);
    for i in 1..=READDS {
        readded.apply(&add, dot("a", i)).unwrap();
    }
    readded.apply(&add, dot("b", 1)).unwrap();
    readded.apply(&add, dot("b", 2)).unwrap();
    let mut written_once = CellState::new(&s);
    written_once.apply(&add, dot("b", 2)).unwrap();
    written_once.apply(&add, dot("a", READDS)).unwrap();
    // Compared without printing: a failure would list every tag kept.
    assert!(readded == written_once, "re-adds left superseded tags");
    #[cfg(feature = "serde")]
    {
        let (readded, written_once) = (
            postcard::to_allocvec(&readded).unwrap(),
            postcard::to_allocvec(&written_once).unwrap(),
        );
        assert_eq!(readded.len(), written_once.len());
        assert!(readded == written_once);
    }
    let remove = readded.remove_op(&s, &premium).unwrap();
    let CellOp::OrRemove(tags) = &remove else {
        panic!("a remove op: {remove:?}");
    };
    assert_eq!(tags.len(), 2, "one observed tag per origin");
    readded.apply(&remove, dot("c", 1)).unwrap();
    assert_eq!(
        readded.value().unwrap(),
        AlgebraicValue::string_set::<&str>([])
    );
    assert_eq!(readded.tombstone_count(), 2);
    // A stale copy of an older add of a removed tag's origin stays removed; a newer one is back.
    readded.apply(&add, dot("a", 5)).unwrap();
    assert_eq!(
        readded.value().unwrap(),
        AlgebraicValue::string_set::<&str>([])
    );
    readded.apply(&add, dot("a", READDS + 1)).unwrap();
    assert_eq!(readded.value().unwrap(), premium);
    assert_eq!(
        readded.tombstone_count(),
        1,
        "the newer add supersedes a's tombstone"
    );
}

#[test]
fn register_changes_in_log_order_and_compare_and_set_checks() {
    let s = spec(MergeType::Register, ValueType::Integer);
    let mut state = CellState::new(&s);
    assert_eq!(state.value().unwrap(), AlgebraicValue::Null);
    let cas = CellOp::compare_and_set(&s, &AlgebraicValue::Null, &1.into()).unwrap();
    state.apply(&cas, dot("a", 1)).unwrap();
    let before = state.clone();
    assert_eq!(
        state.apply(&cas, dot("a", 2)),
        Err(AlgebraError::ConditionFailed {
            expected: "null".into(),
            found: "1".into()
        })
    );
    assert_eq!(state, before);
    let mut later = state.clone();
    later
        .apply(&op(&s, OpType::GenericOverwrite, 9), dot("b", 1))
        .unwrap();
    state.merge(&later).unwrap();
    assert_eq!(state.value().unwrap(), AlgebraicValue::Integer(9));
    later.merge(&before).unwrap();
    assert_eq!(
        later, state,
        "the later write wins whatever the merge order"
    );
    assert_eq!(
        CellOp::new(&s, OpType::GenericConditional, &1.into()),
        Err(AlgebraError::NeedsContext {
            op: OpType::GenericConditional,
            needs: "an expected value; build it with CellOp::compare_and_set".into()
        })
    );
}

#[test]
fn mismatched_states_and_ops_are_refused() {
    let sum = CellState::new(&spec(MergeType::Add, ValueType::Integer));
    let mut max = CellState::new(&spec(MergeType::Max, ValueType::Integer));
    assert_eq!(
        max.merge(&sum),
        Err(AlgebraError::StateMismatch {
            state: "MAX".into(),
            op: "integer ADD".into()
        })
    );
    let mut max_float = CellState::new(&spec(MergeType::Max, ValueType::Float));
    assert_eq!(
        max_float.apply(&CellOp::Max(Scalar::Integer(1)), dot("a", 1)),
        Err(AlgebraError::StateMismatch {
            state: "MAX".into(),
            op: "integer".into()
        })
    );
    let s = spec(MergeType::ObservedRemoveSet, ValueType::StringSet);
    assert_eq!(
        CellOp::new(&s, OpType::OrSetRemove, &AlgebraicValue::string_set(["x"])),
        Err(AlgebraError::NeedsContext {
            op: OpType::OrSetRemove,
            needs: "the tags its writer observed; build it with CellState::remove_op".into()
        })
    );
    assert_eq!(
        sum.remove_op(&s, &AlgebraicValue::string_set(["x"])),
        Err(AlgebraError::StateMismatch {
            state: "integer ADD".into(),
            op: "string set".into()
        })
    );
}

#[cfg(feature = "serde")]
#[test]
fn decoding_refuses_non_canonical_states() {
    let s = spec(MergeType::Add, ValueType::Integer);
    let mut state = CellState::new(&s);
    state.apply(&CellOp::AddInt(1), dot("b", 1)).unwrap();
    state.apply(&CellOp::AddInt(2), dot("a", 1)).unwrap();
    let bytes = postcard::to_allocvec(&state).unwrap();
    assert_eq!(postcard::from_bytes::<CellState>(&bytes).unwrap(), state);
    // Re-encode by hand: the variant tag, two entries, then the entries in a given order.
    let encode = |order: [(&str, i128); 2]| {
        let mut bytes = postcard::to_allocvec(&StateKind::SumInt(IntSum::default())).unwrap();
        bytes.truncate(1);
        bytes.push(2);
        for (node, partial) in order {
            let entry = (NodeId::new(node).unwrap(), 1u64, partial);
            bytes.extend(postcard::to_allocvec(&entry).unwrap());
        }
        bytes
    };
    assert_eq!(
        postcard::from_bytes::<CellState>(&encode([("a", 2), ("b", 1)])).unwrap(),
        state,
        "the hand encoding is the canonical one"
    );
    let bytes = encode([("b", 1), ("a", 2)]);
    assert!(postcard::from_bytes::<CellState>(&bytes).is_err());
}

/// An observed-remove set holds one tag per element and origin: an encoding with two of one
/// origin (live, or one live and one removed) is refused.
#[cfg(feature = "serde")]
#[test]
fn decoding_refuses_two_tags_of_one_origin_for_an_element() {
    let s = spec(MergeType::ObservedRemoveSet, ValueType::IntSet);
    let mut state = CellState::new(&s);
    state
        .apply(
            &op(&s, OpType::OrSetAdd, AlgebraicValue::int_set([1])),
            dot("a", 2),
        )
        .unwrap();
    let canonical = postcard::to_allocvec(&state).unwrap();
    type Tags = (Vec<(NodeId, u64)>, Vec<((NodeId, u64), (NodeId, u64))>);
    // The variant tag, then the entries: (element, live tags, tombstones).
    let encode = |(live, removed): Tags| {
        let mut bytes = canonical[..1].to_vec();
        bytes.extend(postcard::to_allocvec(&vec![(1i64, live, removed)]).unwrap());
        bytes
    };
    let a = |counter| (NodeId::new("a").unwrap(), counter);
    let b = |counter| (NodeId::new("b").unwrap(), counter);
    assert_eq!(encode((vec![a(2)], vec![])), canonical, "the hand encoding");
    let other_origin = encode((vec![a(2)], vec![(b(1), a(3))]));
    assert!(
        postcard::from_bytes::<CellState>(&other_origin).is_ok(),
        "a tombstone of b"
    );
    for tags in [
        (vec![a(1), a(2)], vec![]),
        (vec![a(2)], vec![(a(1), b(1))]),
        (vec![], vec![(a(1), b(1)), (a(2), b(1))]),
    ] {
        assert!(
            postcard::from_bytes::<CellState>(&encode(tags.clone())).is_err(),
            "{tags:?}"
        );
    }
}

#[test]
fn a_restricted_state_joins_like_the_whole_state() {
    let known = VectorClock::new()
        .with_node(NodeId::new("a").unwrap(), 2)
        .with_node(NodeId::new("b").unwrap(), 3);
    // Sums: the sender has a:1..=5 and b:1..=3; the receiver has exactly `known`.
    let sum = spec(MergeType::Add, ValueType::Float);
    let add = |x: f64| op(&sum, OpType::AbelianAdd, x);
    let (mut sender, mut receiver) = (CellState::new(&sum), CellState::new(&sum));
    for i in 1..=5 {
        sender.apply(&add(0.1 * i as f64), dot("a", i)).unwrap();
        if i <= 2 {
            receiver.apply(&add(0.1 * i as f64), dot("a", i)).unwrap();
        }
    }
    for i in 1..=3 {
        sender.apply(&add(1e16), dot("b", i)).unwrap();
        receiver.apply(&add(1e16), dot("b", i)).unwrap();
    }
    let restricted = sender.restricted(&known);
    assert_eq!(
        restricted.applied_seq(NodeId::new("b").unwrap()),
        0,
        "b's entry is known"
    );
    let (mut whole, mut part) = (receiver.clone(), receiver);
    whole.merge(&sender).unwrap();
    part.merge(&restricted).unwrap();
    assert_eq!(whole, part);

    // Observed-remove sets: the sender saw a remove (b:3) of a tag the receiver also holds, and
    // an add (a:4) the receiver lacks.
    let set = spec(MergeType::ObservedRemoveSet, ValueType::StringSet);
    let add_x = op(&set, OpType::OrSetAdd, AlgebraicValue::string_set(["x"]));
    let add_y = op(&set, OpType::OrSetAdd, AlgebraicValue::string_set(["y"]));
    let (mut sender, mut receiver) = (CellState::new(&set), CellState::new(&set));
    for state in [&mut sender, &mut receiver] {
        state.apply(&add_x, dot("a", 1)).unwrap();
        state.apply(&add_y, dot("b", 1)).unwrap();
    }
    let remove = sender
        .remove_op(&set, &AlgebraicValue::string_set(["y"]))
        .unwrap();
    sender.apply(&remove, dot("b", 3)).unwrap();
    sender.apply(&add_x, dot("a", 4)).unwrap();
    let known = VectorClock::new()
        .with_node(NodeId::new("a").unwrap(), 2)
        .with_node(NodeId::new("b").unwrap(), 2);
    let restricted = sender.restricted(&known);
    let (mut whole, mut part) = (receiver.clone(), receiver);
    whole.merge(&sender).unwrap();
    part.merge(&restricted).unwrap();
    assert_eq!(whole, part);
    assert_eq!(part.value().unwrap(), AlgebraicValue::string_set(["x"]));
}

#[test]
fn merges_infallibly_only_where_merge_cannot_fail() {
    let sum = CellState::new(&spec(MergeType::Add, ValueType::Integer));
    let max_int = CellState::new(&spec(MergeType::Max, ValueType::Integer));
    let max_float = CellState::new(&spec(MergeType::Max, ValueType::Float));
    let union = CellState::new(&spec(MergeType::Union, ValueType::IntSet));
    assert!(sum.merges_infallibly(&sum));
    assert!(max_int.merges_infallibly(&max_int));
    // Different parameters or kinds: the merge refuses them, so it must be tried.
    assert!(!max_int.merges_infallibly(&max_float));
    assert!(max_int.clone().merge(&max_float).is_err());
    assert!(!sum.merges_infallibly(&max_int));
    assert!(sum.clone().merge(&max_int).is_err());
    // A grow-only set may reach its size limit.
    assert!(!union.merges_infallibly(&union));
}

#[test]
fn the_integer_range_check_refuses_what_would_leave_i64() {
    let node = |counter| dot("a", counter);
    let mut sum = CellState::new(&spec(MergeType::Add, ValueType::Integer));
    sum.apply(&CellOp::AddInt(i64::MAX - 1), node(1)).unwrap();
    assert_eq!(sum.check_integer_range(&[CellOp::AddInt(1)]), Ok(()));
    let overflow = Err(AlgebraError::Overflow {
        value_type: ValueType::Integer,
    });
    assert_eq!(
        sum.check_integer_range(&[CellOp::AddInt(1), CellOp::AddInt(1)]),
        overflow
    );
    // Going back into range in the same transaction is fine: only the result counts.
    assert_eq!(
        sum.check_integer_range(&[CellOp::AddInt(5), CellOp::AddInt(-5)]),
        Ok(())
    );
    let mut product = CellState::new(&spec(MergeType::Multiply, ValueType::Integer));
    product.apply(&CellOp::MulInt(1 << 40), node(1)).unwrap();
    assert_eq!(
        product.check_integer_range(&[CellOp::MulInt(1 << 22)]),
        Ok(())
    );
    assert_eq!(
        product.check_integer_range(&[CellOp::MulInt(1 << 23)]),
        overflow
    );
    // Already out of range through another origin's updates: left to reads, which report it.
    sum.apply(&CellOp::AddInt(i64::MAX), dot("b", 1)).unwrap();
    assert!(sum.value().is_err());
    assert_eq!(sum.check_integer_range(&[CellOp::AddInt(1)]), Ok(()));
    // Floats and other kinds have nothing to check here.
    let floats = CellState::new(&spec(MergeType::Add, ValueType::Float));
    assert_eq!(
        floats.check_integer_range(&[CellOp::AddFloat(TotalF64(1e308))]),
        Ok(())
    );
}

proptest::proptest! {
    /// The committer's one-pass step is the range check followed by `apply`: same result, same
    /// state after, for sums near and beyond the `i64` bounds, several origins and duplicates.
    #[test]
    fn apply_in_range_is_the_check_then_apply(
        history in proptest::collection::vec(
            (0u8..4, 1u64..6, proptest::prop_oneof![-3i64..3, proptest::strategy::Just(i64::MAX), proptest::strategy::Just(i64::MIN)]),
            0..12,
        ),
        next in (0u8..4, 1u64..8, proptest::prop_oneof![-3i64..3, proptest::strategy::Just(i64::MAX), proptest::strategy::Just(i64::MIN)]),
    ) {
        let node = |n: u8| ["a", "b", "c", "d"][n as usize];
        let mut state = CellState::new(&spec(MergeType::Add, ValueType::Integer));
        for (n, counter, v) in history {
            let _ = state.apply(&CellOp::AddInt(v), dot(node(n), counter));
        }
        let (n, counter, v) = next;
        let (op, at) = (CellOp::AddInt(v), dot(node(n), counter));
        let mut fused = state.clone();
        let fused_result = fused.apply_in_range(&op, at);
        let mut reference = state.clone();
        let reference_result = reference
            .check_integer_range(std::slice::from_ref(&op))
            .and_then(|()| reference.apply(&op, at));
        proptest::prop_assert_eq!(fused_result, reference_result);
        proptest::prop_assert_eq!(fused, reference);
    }

    /// `check_add_int`, `apply_add_int` and `add_int_in_range` are `check_integer_range`,
    /// `apply` and `apply_in_range` of `CellOp::AddInt`, on an integer sum near the `i64`
    /// bounds and on columns that refuse it.
    #[test]
    fn add_int_shortcuts_are_the_general_calls(
        column in 0usize..4,
        history in proptest::collection::vec(
            (0u8..4, 1u64..6, proptest::prop_oneof![-3i64..3, proptest::strategy::Just(i64::MAX), proptest::strategy::Just(i64::MIN)]),
            0..12,
        ),
        next in (0u8..4, 1u64..8, proptest::prop_oneof![-3i64..3, proptest::strategy::Just(i64::MAX), proptest::strategy::Just(i64::MIN)]),
    ) {
        let node = |n: u8| ["a", "b", "c", "d"][n as usize];
        let columns = [
            spec(MergeType::Add, ValueType::Integer),
            spec(MergeType::Add, ValueType::Float),
            spec(MergeType::Multiply, ValueType::Integer),
            spec(MergeType::Max, ValueType::Integer),
        ];
        let mut state = CellState::new(&columns[column]);
        for (n, counter, v) in history {
            let _ = state.apply(&CellOp::AddInt(v), dot(node(n), counter));
        }
        let (n, counter, v) = next;
        let (op, at) = (CellOp::AddInt(v), dot(node(n), counter));
        proptest::prop_assert_eq!(
            state.check_add_int(v),
            state.check_integer_range(std::slice::from_ref(&op))
        );
        // Both take the same shortcuts; the read's fold is the reference.
        proptest::prop_assert_eq!(
            state.check_add_int(v),
            state.check_integer_range_folded(std::slice::from_ref(&op))
        );
        let mut short = state.clone();
        let short_result = short.apply_add_int(v, at);
        let mut general = state.clone();
        let general_result = general.apply(&op, at);
        proptest::prop_assert_eq!(short_result, general_result);
        proptest::prop_assert_eq!(short, general);
        let mut short = state.clone();
        let short_result = short.add_int_in_range(v, at);
        let mut general = state.clone();
        let general_result = general.apply_in_range(&op, at);
        proptest::prop_assert_eq!(short_result, general_result);
        proptest::prop_assert_eq!(short, general);
    }
}

proptest::proptest! {
    /// The in-place join of per-origin sums is the reference join: for every origin either
    /// side holds, the entry of the higher (sequence, partial), in node order.
    #[test]
    fn per_origin_join_is_the_entrywise_maximum(
        ours in proptest::collection::btree_map(0u8..12, (1u64..5, -3i64..3), 0..12),
        theirs in proptest::collection::btree_map(0u8..12, (1u64..5, -3i64..3), 0..12),
    ) {
        let build = |entries: &std::collections::BTreeMap<u8, (u64, i64)>| {
            let mut state = CellState::new(&spec(MergeType::Add, ValueType::Integer));
            for (&node, &(seq, amount)) in entries {
                // One update per origin whose dot is `seq`: the entry (node, seq, amount).
                state.apply(&CellOp::AddInt(amount), dot(&format!("n{node:02}"), seq)).unwrap();
            }
            state
        };
        let mut expected = ours.clone();
        for (node, entry) in &theirs {
            let held = expected.entry(*node).or_insert(*entry);
            if (entry.0, i128::from(entry.1)) > (held.0, i128::from(held.1)) {
                *held = *entry;
            }
        }
        let mut joined = build(&ours);
        joined.merge(&build(&theirs)).unwrap();
        proptest::prop_assert_eq!(joined, build(&expected));
    }
}
