use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::testkit::arb_i64;

fn merge(
    op: OpType,
    a: impl Into<AlgebraicValue>,
    b: impl Into<AlgebraicValue>,
) -> Result<AlgebraicValue> {
    AlgebraicMerger::merge(op, &a.into(), &b.into())
}

#[test]
fn merges_by_kind() {
    assert_eq!(merge(OpType::AbelianAdd, 2, 3), Ok(5.into()));
    assert_eq!(merge(OpType::AbelianMultiply, -2, 3), Ok((-6).into()));
    assert_eq!(merge(OpType::SemilatticeMax, -0.0, 0.0), Ok(0.0.into()));
    assert_eq!(merge(OpType::SemilatticeMin, -0.0, 0.0), Ok((-0.0).into()));
    assert_eq!(merge(OpType::SemilatticeMax, false, true), Ok(true.into()));
    let (a, b) = (
        AlgebraicValue::int_set([1, 2]),
        AlgebraicValue::int_set([2, 3]),
    );
    assert_eq!(
        merge(OpType::SemilatticeUnion, a.clone(), b.clone()),
        Ok(AlgebraicValue::int_set([1, 2, 3]))
    );
    assert_eq!(
        merge(OpType::OrSetAdd, a.clone(), b.clone()),
        Ok(AlgebraicValue::int_set([1, 2, 3]))
    );
    assert_eq!(
        merge(OpType::SemilatticeIntersect, a, b),
        Ok(AlgebraicValue::int_set([2]))
    );
    let (x, y): (Decimal, Decimal) = ("0.1".parse().unwrap(), "0.25".parse().unwrap());
    assert_eq!(
        merge(OpType::AbelianAdd, x, y),
        Ok(AlgebraicValue::Decimal("0.35".parse().unwrap()))
    );
    assert_eq!(
        merge(OpType::AbelianAdd, AlgebraicValue::Null, 4),
        Ok(4.into()),
        "null is the identity"
    );
    assert_eq!(
        AlgebraicMerger::merge_all(OpType::AbelianAdd, []),
        Ok(AlgebraicValue::Null)
    );
}

#[test]
fn refusals_are_typed() {
    for op in [
        OpType::GenericOverwrite,
        OpType::GenericConditional,
        OpType::Unknown,
    ] {
        assert_eq!(merge(op, 1, 2), Err(AlgebraError::NotConflictFree { op }));
    }
    assert_eq!(
        merge(OpType::AbelianAdd, 1, 1.0),
        Err(AlgebraError::MixedKinds {
            first: "integer".into(),
            other: "float".into()
        })
    );
    assert_eq!(
        merge(OpType::AbelianAdd, true, false),
        Err(AlgebraError::UnsupportedType {
            op: OpType::AbelianAdd,
            found: "boolean".into()
        })
    );
    assert_eq!(
        merge(
            OpType::SemilatticeMax,
            AlgebraicValue::int_set([1]),
            AlgebraicValue::int_set([2])
        ),
        Err(AlgebraError::UnsupportedType {
            op: OpType::SemilatticeMax,
            found: "int set".into()
        })
    );
    assert_eq!(
        merge(OpType::SemilatticeUnion, 1, 2),
        Err(AlgebraError::UnsupportedType {
            op: OpType::SemilatticeUnion,
            found: "integer".into()
        })
    );
    assert_eq!(
        merge(OpType::SemilatticeMax, f64::NAN, 1.0),
        Err(AlgebraError::NonFiniteFloat {
            bits: f64::NAN.to_bits()
        })
    );
    assert_eq!(
        merge(OpType::SemilatticeMax, 1.0, f64::NAN),
        Err(AlgebraError::NonFiniteFloat {
            bits: f64::NAN.to_bits()
        }),
        "NaN is refused in either position"
    );
    let overflow = Err(AlgebraError::Overflow {
        value_type: ValueType::Integer,
    });
    assert_eq!(merge(OpType::AbelianAdd, i64::MAX, 1), overflow);
    assert_eq!(merge(OpType::AbelianMultiply, i64::MIN, -1), overflow);
    assert_eq!(
        merge(OpType::AbelianAdd, f64::MAX, f64::MAX),
        Err(AlgebraError::Overflow {
            value_type: ValueType::Float
        })
    );
}

#[test]
fn merge_all_is_exact_where_pairwise_checked_arithmetic_is_not() {
    let values: Vec<AlgebraicValue> = vec![i64::MAX.into(), 1.into(), (-1).into()];
    assert_eq!(
        AlgebraicMerger::merge_all(OpType::AbelianAdd, &values),
        Ok(i64::MAX.into())
    );
    let floats: Vec<AlgebraicValue> = vec![1e16.into(), 1.0.into(), (-1e16).into()];
    let mut reversed = floats.clone();
    reversed.reverse();
    assert_eq!(
        AlgebraicMerger::merge_all(OpType::AbelianAdd, &floats),
        AlgebraicMerger::merge_all(OpType::AbelianAdd, &reversed)
    );
    let with_zero: Vec<AlgebraicValue> = vec![i64::MAX.into(), i64::MAX.into(), 0.into()];
    assert_eq!(
        AlgebraicMerger::merge_all(OpType::AbelianMultiply, &with_zero),
        Ok(0.into())
    );
}

fn arb_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::from_bits(1)),
        Just(1e16),
        Just(-1e16),
        Just(1.0),
        f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
    ]
}

fn arb_values() -> impl Strategy<Value = Vec<AlgebraicValue>> {
    prop_oneof![
        vec(arb_i64().prop_map(AlgebraicValue::Integer), 0..6),
        vec(arb_f64().prop_map(AlgebraicValue::float), 0..6),
        vec(any::<bool>().prop_map(AlgebraicValue::Boolean), 0..6),
        vec(
            (-10_000i128..10_000, 0u8..4)
                .prop_map(|(m, s)| AlgebraicValue::Decimal(Decimal::new(m, s).unwrap())),
            0..6
        ),
        vec(vec(-8i64..8, 0..5).prop_map(AlgebraicValue::int_set), 0..6),
        vec(
            vec("[a-e]", 0..4).prop_map(AlgebraicValue::string_set),
            0..6
        ),
    ]
}

const CONFLICT_FREE: [OpType; 8] = [
    OpType::SemilatticeMax,
    OpType::SemilatticeMin,
    OpType::SemilatticeUnion,
    OpType::SemilatticeIntersect,
    OpType::AbelianAdd,
    OpType::AbelianMultiply,
    OpType::OrSetAdd,
    OpType::OrSetRemove,
];

proptest! {
    /// Pairwise merge is commutative for every kind (errors included).
    #[test]
    fn prop_merge_commutes(values in arb_values(), op in 0usize..8) {
        let op = CONFLICT_FREE[op];
        let null = AlgebraicValue::Null;
        let (a, b) = (values.first().unwrap_or(&null), values.get(1).unwrap_or(&null));
        prop_assert_eq!(AlgebraicMerger::merge(op, a, b), AlgebraicMerger::merge(op, b, a));
    }

    /// Null is the identity of every conflict-free merge.
    #[test]
    fn prop_null_is_the_identity(values in arb_values(), op in 0usize..8) {
        let op = CONFLICT_FREE[op];
        if let Some(a) = values.first() {
            let alone = AlgebraicMerger::merge_all(op, [a]);
            prop_assert_eq!(AlgebraicMerger::merge(op, a, &AlgebraicValue::Null), alone.clone());
            if let Ok(v) = alone {
                prop_assert_eq!(&v, a, "one value merges to itself, bit for bit");
            }
        }
    }

    /// Semilattice merges are associative and idempotent.
    #[test]
    fn prop_semilattices_are_associative_and_idempotent(values in arb_values(), op in 0usize..4) {
        let op = CONFLICT_FREE[op];
        let null = AlgebraicValue::Null;
        let (a, b, c) = (
            values.first().unwrap_or(&null),
            values.get(1).unwrap_or(&null),
            values.get(2).unwrap_or(&null),
        );
        let m = |x: &AlgebraicValue, y: &AlgebraicValue| AlgebraicMerger::merge(op, x, y);
        if let (Ok(ab), Ok(bc)) = (m(a, b), m(b, c)) {
            prop_assert_eq!(m(&ab, c), m(a, &bc));
            prop_assert_eq!(m(&ab, &ab), Ok(ab.clone()));
        }
    }

    /// merge_all depends only on the multiset of values, never on their order.
    #[test]
    fn prop_merge_all_ignores_order(mut values in arb_values(), op in 0usize..8, seed in any::<u64>()) {
        let op = CONFLICT_FREE[op];
        let first = AlgebraicMerger::merge_all(op, &values);
        // Fisher-Yates driven by a seeded linear congruential sequence.
        let mut state = seed;
        for i in (1..values.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            values.swap(i, ((state >> 33) % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(first, AlgebraicMerger::merge_all(op, &values));
    }

    /// Integer merge_all is the exact sum, refused only when that leaves i64.
    #[test]
    fn prop_integer_merge_all_is_exact(values in vec(arb_i64(), 0..8)) {
        let wrapped: Vec<AlgebraicValue> = values.iter().map(|v| (*v).into()).collect();
        let exact: i128 = values.iter().map(|v| i128::from(*v)).sum();
        let expected = if values.is_empty() {
            Ok(AlgebraicValue::Null)
        } else {
            i64::try_from(exact).map(AlgebraicValue::Integer).map_err(|_| AlgebraError::Overflow {
                value_type: ValueType::Integer,
            })
        };
        prop_assert_eq!(AlgebraicMerger::merge_all(OpType::AbelianAdd, &wrapped), expected);
    }
}
