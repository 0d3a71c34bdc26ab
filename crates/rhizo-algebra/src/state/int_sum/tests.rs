use proptest::prelude::*;
use rhizo_clock::{Dot, NodeId, VectorClock};

use super::*;

use crate::testkit::{int_sum_draws as draws, int_sum_of as sum_of};

fn merged(a: &IntSum, b: &IntSum) -> IntSum {
    let mut joined = a.clone();
    joined.merge(b, 0);
    joined
}

#[cfg(feature = "serde")]
fn encoded(sum: &IntSum) -> Vec<u8> {
    postcard::to_allocvec(sum).unwrap()
}

fn dot(node: u32, counter: u64) -> Dot {
    Dot::new(NodeId::numbered(node), counter).unwrap()
}

#[test]
fn a_sum_widens_when_its_partial_leaves_i64_and_reads_as_one_built_wide() {
    let mut sum = IntSum::default();
    assert!(sum.add(dot(1, 1), i64::MAX).unwrap());
    assert!(sum.is_narrow());
    assert!(sum.add(dot(1, 2), 1).unwrap());
    assert!(!sum.is_narrow(), "2^63 does not fit in i64");
    assert_eq!(sum.only_partial(), Some(i128::from(i64::MAX) + 1));
    let mut built_wide = IntSum::Wide(PerOrigin::default());
    built_wide.add(dot(1, 1), i64::MAX).unwrap();
    built_wide.add(dot(1, 2), 1).unwrap();
    assert_eq!(sum, built_wide);
    // Back in range, it stays wide and still equals the narrow sum of the same entries.
    assert!(sum.add(dot(1, 3), -1).unwrap());
    let narrow = IntSum::from_entries(&sum.entries().collect::<Vec<_>>());
    assert!(narrow.is_narrow() && !sum.is_narrow());
    assert_eq!(sum, narrow);
    assert_eq!(format!("{sum:?}"), format!("{narrow:?}"));
    #[cfg(feature = "serde")]
    {
        assert_eq!(encoded(&sum), encoded(&narrow));
        let decoded: IntSum = postcard::from_bytes(&encoded(&sum)).unwrap();
        assert!(
            decoded.is_narrow(),
            "decoded narrow where every partial fits"
        );
    }
}

#[test]
fn the_range_check_refuses_a_narrow_sum_leaving_i64_and_changes_nothing() {
    let mut sum = IntSum::default();
    sum.add_in_range(dot(1, 1), i64::MAX).unwrap();
    let before = sum.clone();
    let err = sum.add_in_range(dot(1, 2), 1).unwrap_err();
    assert!(matches!(err, AlgebraError::Overflow { .. }), "{err:?}");
    assert!(sum.is_narrow());
    assert_eq!(sum, before);
    assert_eq!(sum.seq(NodeId::numbered(1)), 1);
    // Two origins whose total is in range though one partial is not in i64 after the add: the
    // sum widens rather than refusing.
    sum.add_in_range(dot(2, 1), -10).unwrap();
    assert!(sum.add_in_range(dot(1, 2), 5).unwrap());
    assert!(!sum.is_narrow());
    assert_eq!(
        sum.partials().collect::<Vec<_>>(),
        vec![i128::from(i64::MAX) + 5, -10]
    );
}

#[test]
fn a_wide_entry_merged_into_a_narrow_sum_widens_it() {
    let mut sum = sum_of(&[(1, 3), (2, -4)], false);
    assert!(sum.is_narrow());
    let beyond = i128::from(i64::MIN) - 1;
    let theirs = sum_of(&[(0, 0), (3, beyond)], false);
    assert!(!theirs.is_narrow());
    sum.merge(&theirs, 0);
    assert!(!sum.is_narrow());
    assert_eq!(sum, sum_of(&[(1, 3), (3, beyond)], true));
}

proptest! {
    /// The join is commutative, associative and idempotent whatever width each side is held
    /// in, and gives what the join of wide sums gives.
    #[test]
    fn prop_join_laws_hold_across_widths(
        a in draws(), b in draws(), c in draws(),
        widths in any::<[bool; 3]>(),
    ) {
        let (x, y, z) = (sum_of(&a, widths[0]), sum_of(&b, widths[1]), sum_of(&c, widths[2]));
        let (wx, wy, wz) = (sum_of(&a, true), sum_of(&b, true), sum_of(&c, true));
        prop_assert_eq!(merged(&x, &y), merged(&y, &x));
        prop_assert_eq!(merged(&merged(&x, &y), &z), merged(&x, &merged(&y, &z)));
        prop_assert_eq!(merged(&x, &x), x.clone());
        let reference = merged(&merged(&wx, &wy), &wz);
        let joined = merged(&merged(&x, &y), &z);
        prop_assert_eq!(&joined, &reference);
        // The width held is narrow exactly when it could be, or wider (never narrower).
        if !joined.is_narrow() {
            prop_assert!(!(x.is_narrow() && y.is_narrow() && z.is_narrow()));
        }
        let mut listed = x.clone();
        listed.merge_entries(&y.entries().collect::<Vec<_>>(), 3);
        prop_assert_eq!(listed, merged(&x, &y));
        #[cfg(feature = "serde")]
        {
            prop_assert_eq!(encoded(&joined), encoded(&reference));
            let wide = PerOrigin::<i128>::from_entries(&reference.entries().collect::<Vec<_>>());
            prop_assert_eq!(encoded(&joined), postcard::to_allocvec(&wide).unwrap());
        }
    }

    /// Updates applied to a sum that starts narrow (and widens when it must) and to one built
    /// wide give the same results, the same errors and equal states.
    #[test]
    fn prop_a_sum_that_widened_equals_one_built_wide(
        updates in proptest::collection::vec(
            (0u32..3, 1u64..6, prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)], 0u8..3),
            0..24,
        ),
    ) {
        let mut narrow = IntSum::default();
        let mut wide = IntSum::Wide(PerOrigin::default());
        for (node, counter, amount, how) in updates {
            let at = dot(node, counter);
            let (a, b) = match how {
                0 => (narrow.add(at, amount), wide.add(at, amount)),
                1 => (narrow.add_in_range(at, amount), wide.add_in_range(at, amount)),
                _ => (
                    narrow.apply(at, |p| add_int(p, amount)),
                    wide.apply(at, |p| add_int(p, amount)),
                ),
            };
            prop_assert_eq!(a, b);
            prop_assert_eq!(&narrow, &wide);
            prop_assert_eq!(narrow.checked_total(), wide.checked_total());
            prop_assert_eq!(narrow.only_partial(), wide.only_partial());
            prop_assert_eq!(narrow.seq(at.node()), wide.seq(at.node()));
            let known = VectorClock::new().with_node(NodeId::numbered(0), 2);
            prop_assert_eq!(narrow.restricted(&known), wide.restricted(&known));
        }
    }
}

#[test]
fn lines_read_folds_every_other_entry_and_the_last_at_either_width() {
    let draws: Vec<(u64, i128)> = [1, 2, 4, 8, 16, 32].iter().map(|&seq| (seq, -1)).collect();
    for wide in [false, true] {
        // Entries 0, 2, 4 and 5: one per 64-byte line of narrow entries, and the last.
        assert_eq!(sum_of(&draws, wide).lines_read(), 1 ^ 4 ^ 16 ^ 32);
        assert_eq!(sum_of(&draws[..5], wide).lines_read(), 1 ^ 4 ^ 16 ^ 16);
        assert_eq!(sum_of(&[], wide).lines_read(), 0);
    }
}
