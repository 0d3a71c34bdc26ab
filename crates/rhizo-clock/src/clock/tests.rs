use proptest::prelude::*;

use super::*;

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

#[test]
fn test_tick_increments_local_clock() {
    let (a, b) = (node("a"), node("b"));
    let mut clock = VectorClock::new().with_node(b, 5);
    assert_eq!(clock.tick(a).unwrap(), Dot::new(a, 1).unwrap());
    assert_eq!(clock.tick(a).unwrap(), Dot::new(a, 2).unwrap());
    assert_eq!(clock.get(a), 2);
    assert_eq!(clock.get(b), 5, "ticking a must not touch b");
}

#[test]
fn test_merge_takes_max() {
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let mut left = VectorClock::new().with_node(a, 3).with_node(b, 1);
    let right = VectorClock::new().with_node(b, 4).with_node(c, 2);
    left.merge(&right);
    assert_eq!(
        left,
        VectorClock::new()
            .with_node(a, 3)
            .with_node(b, 4)
            .with_node(c, 2)
    );
}

#[test]
fn test_happened_before_ordering() {
    let (a, b) = (node("a"), node("b"));
    let mut first = VectorClock::new();
    first.tick(a).unwrap();
    let mut second = first.clone();
    second.tick(b).unwrap();
    assert!(first.happened_before(&second));
    assert!(!second.happened_before(&first));
    assert!(
        !first.happened_before(&first),
        "happened-before is irreflexive"
    );
    assert_eq!(first.compare(&second), CausalOrder::Before);
    assert_eq!(second.compare(&first), CausalOrder::After);
    assert!(first < second);
    assert!(
        VectorClock::new().happened_before(&first),
        "the empty clock precedes every event"
    );
}

#[test]
fn test_concurrent_detection() {
    let (a, b) = (node("a"), node("b"));
    let left = VectorClock::new().with_node(a, 1);
    let right = VectorClock::new().with_node(b, 1);
    assert!(left.concurrent(&right));
    assert!(right.concurrent(&left));
    assert_eq!(left.partial_cmp(&right), None);
    assert!(
        !left.concurrent(&left),
        "a clock is equal to itself, not concurrent"
    );
}

#[test]
fn test_serialization_roundtrip() {
    let clock = VectorClock::new()
        .with_node(node("alpha"), 7)
        .with_node(node("beta"), u64::MAX);
    let bytes = postcard::to_allocvec(&clock).unwrap();
    assert_eq!(postcard::from_bytes::<VectorClock>(&bytes).unwrap(), clock);
    let dot = Dot::new(node("alpha"), 7).unwrap();
    let bytes = postcard::to_allocvec(&dot).unwrap();
    assert_eq!(postcard::from_bytes::<Dot>(&bytes).unwrap(), dot);
}

#[test]
fn decoding_refuses_non_canonical_clocks() {
    let unsorted = vec![(node("b"), 1u64), (node("a"), 1u64)];
    let bytes = postcard::to_allocvec(&unsorted).unwrap();
    assert!(postcard::from_bytes::<VectorClock>(&bytes).is_err());
    let zero = vec![(node("a"), 0u64)];
    let bytes = postcard::to_allocvec(&zero).unwrap();
    assert!(postcard::from_bytes::<VectorClock>(&bytes).is_err());
    let zero_dot = postcard::to_allocvec(&(node("a"), 0u64)).unwrap();
    assert!(postcard::from_bytes::<Dot>(&zero_dot).is_err());
}

#[test]
fn decoding_garbage_never_panics() {
    // A length prefix of 2^32 entries followed by nothing must fail without allocating for it.
    let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(postcard::from_bytes::<VectorClock>(&bytes).is_err());
}

#[test]
fn tick_overflow_is_an_error_and_changes_nothing() {
    let a = node("a");
    let mut clock = VectorClock::new().with_node(a, u64::MAX);
    assert_eq!(clock.tick(a), Err(ClockError::CounterOverflow { node: a }));
    assert_eq!(clock.get(a), u64::MAX);
}

#[test]
fn set_zero_removes_the_entry() {
    let a = node("a");
    let clock = VectorClock::new().with_node(a, 2).with_node(a, 0);
    assert!(clock.is_empty());
    assert_eq!(clock, VectorClock::new());
}

#[test]
fn causal_readiness_needs_the_next_event_and_all_dependencies() {
    let (a, b) = (node("a"), node("b"));
    let delivered = VectorClock::new().with_node(a, 1);
    let next_of_a = VectorClock::new().with_node(a, 2);
    assert!(delivered.causally_ready(Dot::new(a, 2).unwrap(), &next_of_a));
    let gap = VectorClock::new().with_node(a, 3);
    assert!(!delivered.causally_ready(Dot::new(a, 3).unwrap(), &gap));
    let needs_b = VectorClock::new().with_node(a, 2).with_node(b, 1);
    assert!(!delivered.causally_ready(Dot::new(a, 2).unwrap(), &needs_b));
    let duplicate = VectorClock::new().with_node(a, 1);
    assert!(!delivered.causally_ready(Dot::new(a, 1).unwrap(), &duplicate));
}

#[test]
fn meet_is_the_pointwise_minimum() {
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let left = VectorClock::new().with_node(a, 3).with_node(b, 1);
    let right = VectorClock::new()
        .with_node(a, 2)
        .with_node(b, 4)
        .with_node(c, 9);
    assert_eq!(
        left.meet(&right),
        VectorClock::new().with_node(a, 2).with_node(b, 1)
    );
}

#[test]
fn display_and_sum() {
    let clock = VectorClock::new()
        .with_node(node("b"), u64::MAX)
        .with_node(node("a"), 2);
    assert_eq!(clock.to_string(), format!("{{a: 2, b: {}}}", u64::MAX));
    assert_eq!(clock.sum(), u128::from(u64::MAX) + 2);
    assert_eq!(clock.node_count(), 2);
    assert_eq!(
        clock.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        vec![node("a"), node("b")]
    );
}

/// Clocks over a small node set, so that random pairs are often related, equal or concurrent.
fn arb_clock() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec((0u32..6, prop_oneof![0u64..4, Just(u64::MAX)]), 0..8).prop_map(
        |entries| {
            entries.into_iter().fold(VectorClock::new(), |c, (n, v)| {
                c.with_node(NodeId::numbered(n), v)
            })
        },
    )
}

proptest! {
    #[test]
    fn prop_merge_commutative(a in arb_clock(), b in arb_clock()) {
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn prop_merge_associative(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
        let mut left = a.clone();
        left.merge(&b);
        left.merge(&c);
        let mut bc = b.clone();
        bc.merge(&c);
        let mut right = a.clone();
        right.merge(&bc);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn prop_merge_idempotent(a in arb_clock(), b in arb_clock()) {
        let mut once = a.clone();
        once.merge(&b);
        let mut twice = once.clone();
        twice.merge(&b);
        prop_assert_eq!(&once, &twice);
        let mut self_merge = a.clone();
        self_merge.merge(&a);
        prop_assert_eq!(self_merge, a);
    }

    #[test]
    fn prop_merge_is_least_upper_bound(a in arb_clock(), b in arb_clock()) {
        let mut m = a.clone();
        m.merge(&b);
        prop_assert!(a.dominated_by(&m) && b.dominated_by(&m));
        for (node, counter) in &m {
            prop_assert_eq!(counter, a.get(node).max(b.get(node)));
        }
    }

    #[test]
    fn prop_dominated_by_is_entrywise_at_most(a in arb_clock(), b in arb_clock()) {
        let entrywise = a.iter().all(|(node, counter)| counter <= b.get(node));
        prop_assert_eq!(a.dominated_by(&b), entrywise);
        prop_assert_eq!(
            a.dominated_by(&b),
            matches!(a.compare(&b), CausalOrder::Before | CausalOrder::Equal)
        );
        // Related pairs, which random ones rarely are.
        let mut up = a.clone();
        up.merge(&b);
        prop_assert!(a.dominated_by(&up) && b.dominated_by(&up));
        let down = a.meet(&b);
        prop_assert!(down.dominated_by(&a) && down.dominated_by(&b));
    }

    #[test]
    fn prop_hinted_access_is_plain_access(
        a in arb_clock(), n in 0u32..6, counter in 0u64..4, hint in 0usize..10
    ) {
        let node = NodeId::numbered(n);
        let mut h = hint;
        prop_assert_eq!(a.get_hinted(node, &mut h), a.get(node));
        // Whatever the hint was, it now names the entry if there is one.
        prop_assert!(a.get(node) == 0 || a.as_slice()[h].0 == node);
        let (mut plain, mut hinted) = (a.clone(), a.clone());
        plain.set(node, counter);
        let mut h = hint;
        hinted.set_hinted(node, counter, &mut h);
        prop_assert_eq!(hinted.as_slice(), plain.as_slice());
    }

    #[test]
    fn prop_meet_is_greatest_lower_bound(a in arb_clock(), b in arb_clock()) {
        let m = a.meet(&b);
        prop_assert!(m.dominated_by(&a) && m.dominated_by(&b));
        for n in 0..6 {
            let node = NodeId::numbered(n);
            prop_assert_eq!(m.get(node), a.get(node).min(b.get(node)));
        }
        // In place, the same clock, entries and all (so equal bytes too).
        let mut in_place = a.clone();
        in_place.meet_assign(&b);
        prop_assert_eq!(in_place.as_slice(), m.as_slice());
    }

    #[test]
    fn prop_happened_before_is_a_strict_partial_order(
        a in arb_clock(), b in arb_clock(), c in arb_clock()
    ) {
        prop_assert!(!a.happened_before(&a), "irreflexive");
        prop_assert!(!(a.happened_before(&b) && b.happened_before(&a)), "asymmetric");
        if a.happened_before(&b) && b.happened_before(&c) {
            prop_assert!(a.happened_before(&c), "transitive");
        }
        // Transitivity rarely triggers on random triples; build a chain that certainly does.
        let mut ab = a.clone();
        ab.merge(&b);
        let mut up = ab.clone();
        up.tick(NodeId::numbered(7)).unwrap();
        let mut upper = up.clone();
        upper.tick(NodeId::numbered(8)).unwrap();
        prop_assert!(ab.happened_before(&up) && up.happened_before(&upper) && ab.happened_before(&upper));
    }

    #[test]
    fn prop_compare_agrees_with_partial_ord_and_predicates(a in arb_clock(), b in arb_clock()) {
        let order = a.compare(&b);
        let pointwise_le = (0..6).all(|n| a.get(NodeId::numbered(n)) <= b.get(NodeId::numbered(n)));
        let pointwise_ge = (0..6).all(|n| a.get(NodeId::numbered(n)) >= b.get(NodeId::numbered(n)));
        let expected = match (pointwise_le, pointwise_ge) {
            (true, true) => CausalOrder::Equal,
            (true, false) => CausalOrder::Before,
            (false, true) => CausalOrder::After,
            (false, false) => CausalOrder::Concurrent,
        };
        prop_assert_eq!(order, expected);
        prop_assert_eq!(order == CausalOrder::Equal, a == b);
        prop_assert_eq!(a.happened_before(&b), order == CausalOrder::Before);
        prop_assert_eq!(a.concurrent(&b), order == CausalOrder::Concurrent);
        let flipped = match order {
            CausalOrder::Before => CausalOrder::After,
            CausalOrder::After => CausalOrder::Before,
            other => other,
        };
        prop_assert_eq!(b.compare(&a), flipped);
        let expected_ord = match order {
            CausalOrder::Before => Some(Ordering::Less),
            CausalOrder::After => Some(Ordering::Greater),
            CausalOrder::Equal => Some(Ordering::Equal),
            CausalOrder::Concurrent => None,
        };
        prop_assert_eq!(a.partial_cmp(&b), expected_ord);
    }

    #[test]
    fn prop_tick_increases_own_entry_only(a in arb_clock(), n in 0u32..8) {
        let node = NodeId::numbered(n);
        let mut ticked = a.clone();
        match ticked.tick(node) {
            Ok(dot) => {
                prop_assert_eq!(dot.node(), node);
                prop_assert_eq!(dot.counter(), a.get(node) + 1);
                prop_assert_eq!(ticked.get(node), a.get(node) + 1);
                prop_assert!(a.happened_before(&ticked));
            }
            Err(err) => {
                prop_assert_eq!(err, ClockError::CounterOverflow { node });
                prop_assert_eq!(&ticked, &a);
            }
        }
        for other in (0..8).filter(|&m| m != n) {
            prop_assert_eq!(ticked.get(NodeId::numbered(other)), a.get(NodeId::numbered(other)));
        }
    }

    #[test]
    fn prop_serde_round_trips(a in arb_clock()) {
        let bytes = postcard::to_allocvec(&a).unwrap();
        prop_assert_eq!(postcard::from_bytes::<VectorClock>(&bytes).unwrap(), a);
    }

    #[test]
    fn prop_decoding_random_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = postcard::from_bytes::<VectorClock>(&bytes);
        let _ = postcard::from_bytes::<Dot>(&bytes);
    }
}
