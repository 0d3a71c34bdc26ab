//! The merge laws, checked by property tests: for every conflict-free column type, replicas
//! that receive the same updates in any order and any grouping hold equal states, encode them
//! to equal bytes and read equal values; and the join is commutative, associative, idempotent,
//! with the initial state as its identity.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::testkit::arb_i64;

/// A small deterministic generator for shuffles, driven by a proptest-chosen seed.
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn permute<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One update as delivered: its dot and all its effects on this cell.
type Update = (Dot, Vec<CellOp>);

/// Origin names chosen so that name order differs from creation order.
const ORIGINS: [&str; 4] = ["n2", "b", "alpha", "n10"];

fn origin(i: usize) -> NodeId {
    NodeId::new(ORIGINS[i % ORIGINS.len()]).unwrap()
}

fn arb_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::from_bits(1)),        // the smallest subnormal
        Just(-f64::MIN_POSITIVE / 3.0), // a negative subnormal
        Just(1e16),
        Just(-1e16),
        Just(1.0),
        Just(-1.0),
        Just(0.1),
        Just(f64::MAX),
        Just(f64::MIN),
        f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
    ]
}

fn arb_mantissa() -> impl Strategy<Value = i128> {
    prop_oneof![
        Just(Decimal::MAX_MANTISSA),
        Just(-Decimal::MAX_MANTISSA),
        Just(0i128),
        Just(1i128),
        -10_000i128..10_000,
        -Decimal::MAX_MANTISSA..=Decimal::MAX_MANTISSA,
    ]
}

/// Sets biased to overlap (a small domain), to be empty, or to hold 10 000 elements.
fn arb_int_set() -> impl Strategy<Value = AlgebraicValue> {
    prop_oneof![
        12 => vec(-12i64..12, 0..6).prop_map(AlgebraicValue::int_set),
        2 => Just(AlgebraicValue::int_set([])),
        2 => vec(prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()], 0..4)
            .prop_map(AlgebraicValue::int_set),
        1 => (-5_000i64..5_000).prop_map(|start| AlgebraicValue::int_set(start..start + 10_000)),
    ]
}

fn arb_string_set() -> impl Strategy<Value = AlgebraicValue> {
    prop_oneof![
        12 => vec("[a-h]{0,2}", 0..6).prop_map(AlgebraicValue::string_set),
        2 => Just(AlgebraicValue::string_set::<String>([])),
        1 => (0u32..5_000).prop_map(|start| {
            AlgebraicValue::string_set((start..start + 10_000).map(|i| format!("s{i}")))
        }),
    ]
}

fn arb_value(value_type: ValueType) -> BoxedStrategy<AlgebraicValue> {
    match value_type {
        ValueType::Integer => arb_i64().prop_map(AlgebraicValue::Integer).boxed(),
        ValueType::Float => arb_f64().prop_map(AlgebraicValue::float).boxed(),
        ValueType::Decimal { scale } => arb_mantissa()
            .prop_map(move |m| AlgebraicValue::Decimal(Decimal::new(m, scale).unwrap()))
            .boxed(),
        ValueType::Boolean => any::<bool>().prop_map(AlgebraicValue::Boolean).boxed(),
        ValueType::IntSet => arb_int_set().boxed(),
        ValueType::StringSet => arb_string_set().boxed(),
    }
}

/// Every conflict-free column whose updates are plain values (the OR-set has its own tests).
fn value_columns() -> Vec<ColumnSpec> {
    let mut out = Vec::new();
    for merge in [
        MergeType::Max,
        MergeType::Min,
        MergeType::Union,
        MergeType::Intersect,
        MergeType::Add,
        MergeType::Multiply,
    ] {
        for value_type in [
            ValueType::Integer,
            ValueType::Float,
            ValueType::Decimal { scale: 2 },
            ValueType::Boolean,
            ValueType::IntSet,
            ValueType::StringSet,
        ] {
            if let Ok(spec) = ColumnSpec::new(merge, value_type) {
                out.push(spec);
            }
        }
    }
    out
}

fn op_kind(merge: MergeType) -> OpType {
    OpType::ALL
        .into_iter()
        .find(|op| merge.accepts(*op))
        .expect("every merge type accepts an op")
}

/// A column and the updates its origins issued, each origin's in its own order.
/// Dots have gaps (an origin's other updates touched other cells). Updates an origin could not
/// commit (its own partial left the value range) are dropped, as the origin would refuse them.
fn arb_history() -> impl Strategy<Value = (ColumnSpec, Vec<Update>)> {
    let columns = value_columns();
    (0..columns.len()).prop_flat_map(move |i| {
        let spec = columns[i];
        let update = (0usize..3, 1u64..4, vec(arb_value(spec.value_type()), 1..3));
        vec(update, 0..10).prop_map(move |raw| {
            let kind = op_kind(spec.merge());
            let mut counters = [0u64; 3];
            let mut scratch: Vec<CellState> = (0..3).map(|_| CellState::new(&spec)).collect();
            let mut updates = Vec::new();
            for (o, gap, values) in raw {
                counters[o] += gap;
                let dot = Dot::new(origin(o), counters[o]).unwrap();
                let ops: Vec<CellOp> = values
                    .iter()
                    .map(|v| CellOp::new(&spec, kind, v).unwrap())
                    .collect();
                if scratch[o].apply_all(&ops, dot).is_ok() {
                    updates.push((dot, ops));
                }
            }
            (spec, updates)
        })
    })
}

fn apply_in(spec: &ColumnSpec, updates: &[&Update]) -> CellState {
    let mut state = CellState::new(spec);
    for (dot, ops) in updates {
        state.apply_all(ops, *dot).unwrap();
    }
    state
}

/// An arbitrary interleaving of the updates that keeps each origin's own order (what causal
/// delivery guarantees).
fn interleave<'a>(updates: &[&'a Update], rng: &mut Shuffler) -> Vec<&'a Update> {
    let mut queues: Vec<Vec<&Update>> = Vec::new();
    let mut origins: Vec<NodeId> = Vec::new();
    for u in updates {
        match origins.iter().position(|o| *o == u.0.node()) {
            Some(i) => queues[i].push(u),
            None => {
                origins.push(u.0.node());
                queues.push(vec![u]);
            }
        }
    }
    for q in &mut queues {
        q.reverse();
    }
    let mut out = Vec::with_capacity(updates.len());
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty())
            .collect();
        if live.is_empty() {
            return out;
        }
        let pick = live[rng.below(live.len())];
        out.push(queues[pick].pop().expect("non-empty"));
    }
}

/// Splits the updates among `k` replicas: each replica gets, per origin, a prefix of that
/// origin's updates (some replica gets all of them), applied in its own interleaving.
fn replicas(spec: &ColumnSpec, updates: &[Update], k: usize, rng: &mut Shuffler) -> Vec<CellState> {
    let mut nodes: Vec<NodeId> = updates.iter().map(|u| u.0.node()).collect();
    nodes.sort();
    nodes.dedup();
    // prefix[r][o]: how many of origin o's updates replica r holds.
    let mut prefix = vec![vec![0usize; nodes.len()]; k];
    for (o, node) in nodes.iter().enumerate() {
        let total = updates.iter().filter(|u| u.0.node() == *node).count();
        for row in prefix.iter_mut() {
            row[o] = rng.below(total + 1);
        }
        prefix[rng.below(k)][o] = total;
    }
    prefix
        .iter()
        .map(|row| {
            let mut seen = vec![0usize; nodes.len()];
            let held: Vec<&Update> = updates
                .iter()
                .filter(|u| {
                    let o = nodes.binary_search(&u.0.node()).expect("known node");
                    seen[o] += 1;
                    seen[o] <= row[o]
                })
                .collect();
            apply_in(spec, &interleave(&held, rng))
        })
        .collect()
}

/// Joins states in a random order and a random tree shape.
fn join_all(mut states: Vec<CellState>, rng: &mut Shuffler) -> CellState {
    while states.len() > 1 {
        let i = rng.below(states.len());
        let a = states.swap_remove(i);
        let j = rng.below(states.len());
        states[j].merge(&a).unwrap();
    }
    states.pop().expect("at least one state")
}

fn same(a: &CellState, b: &CellState) -> std::result::Result<(), TestCaseError> {
    prop_assert_eq!(a, b);
    prop_assert_eq!(a.value(), b.value());
    #[cfg(feature = "serde")]
    prop_assert_eq!(
        postcard::to_allocvec(a).unwrap(),
        postcard::to_allocvec(b).unwrap()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any interleaving that respects each origin's order yields the same bytes and value.
    #[test]
    fn prop_any_delivery_order_converges((spec, updates) in arb_history(), seed in any::<u64>()) {
        let mut rng = Shuffler(seed);
        let all: Vec<&Update> = updates.iter().collect();
        let reference = apply_in(&spec, &all);
        let other = apply_in(&spec, &interleave(&all, &mut rng));
        same(&reference, &other)?;
        #[cfg(feature = "serde")]
        {
            let bytes = postcard::to_allocvec(&reference).unwrap();
            prop_assert_eq!(postcard::from_bytes::<CellState>(&bytes).unwrap(), reference.clone());
        }
    }

    /// Any grouping — updates spread over replicas, each holding per-origin prefixes, joined in
    /// any order and tree shape — yields the state of applying everything in one place.
    #[test]
    fn prop_any_grouping_converges(
        (spec, updates) in arb_history(),
        k in 1usize..5,
        seed in any::<u64>(),
    ) {
        let mut rng = Shuffler(seed);
        let all: Vec<&Update> = updates.iter().collect();
        let reference = apply_in(&spec, &all);
        let joined = join_all(replicas(&spec, &updates, k, &mut rng), &mut rng);
        same(&reference, &joined)?;
    }

    /// Re-delivering updates (duplicates) changes nothing.
    #[test]
    fn prop_duplicate_delivery_is_ignored((spec, updates) in arb_history()) {
        let all: Vec<&Update> = updates.iter().collect();
        let mut state = apply_in(&spec, &all);
        let once = state.clone();
        for (dot, ops) in &updates {
            state.apply_all(ops, *dot).unwrap();
        }
        same(&once, &state)?;
    }

    /// The join is commutative, associative and idempotent, and the initial state is its
    /// identity, for states built from different prefixes of the same history.
    #[test]
    fn prop_join_laws((spec, updates) in arb_history(), seed in any::<u64>()) {
        let mut rng = Shuffler(seed);
        let parts = replicas(&spec, &updates, 3, &mut rng);
        let (a, b, c) = (&parts[0], &parts[1], &parts[2]);
        let join = |x: &CellState, y: &CellState| {
            let mut z = x.clone();
            z.merge(y).unwrap();
            z
        };
        same(&join(a, b), &join(b, a))?;
        same(&join(&join(a, b), c), &join(a, &join(b, c)))?;
        same(&join(a, a), a)?;
        let identity = CellState::new(&spec);
        same(&join(a, &identity), a)?;
        same(&join(&identity, a), a)?;
    }

    /// The read value is the exact mathematical result whenever that fits the type.
    #[test]
    fn prop_integer_sums_and_products_are_exact(
        values in vec((0usize..3, arb_i64()), 0..12),
        seed in any::<u64>(),
    ) {
        let mut rng = Shuffler(seed);
        let sum_spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mul_spec = ColumnSpec::new(MergeType::Multiply, ValueType::Integer).unwrap();
        let mut counters = [0u64; 3];
        let mut sums = Vec::new();
        let mut products = Vec::new();
        for (o, v) in &values {
            counters[*o] += 1;
            let dot = Dot::new(origin(*o), counters[*o]).unwrap();
            sums.push((dot, vec![CellOp::AddInt(*v)]));
            products.push((dot, vec![CellOp::MulInt(*v)]));
        }
        let overflow = AlgebraError::Overflow { value_type: ValueType::Integer };
        let exact_sum: i128 = values.iter().map(|(_, v)| i128::from(*v)).sum();
        let sum = apply_in(&sum_spec, &interleave(&sums.iter().collect::<Vec<_>>(), &mut rng));
        prop_assert_eq!(
            sum.value(),
            i64::try_from(exact_sum).map(AlgebraicValue::Integer).map_err(|_| overflow.clone())
        );
        let exact_product = values.iter().try_fold(1i128, |acc, (_, v)| acc.checked_mul(i128::from(*v)));
        let expected = if values.iter().any(|(_, v)| *v == 0) {
            Ok(AlgebraicValue::Integer(0))
        } else {
            exact_product
                .and_then(|p| i64::try_from(p).ok())
                .map(AlgebraicValue::Integer)
                .ok_or(overflow)
        };
        let product = apply_in(&mul_spec, &interleave(&products.iter().collect::<Vec<_>>(), &mut rng));
        prop_assert_eq!(product.value(), expected);
    }
}

/// The OR-set's history: adds of elements, and removes of (element, tag) pairs observed among
/// earlier adds, each with a dot of one of three origins.
fn arb_or_history() -> impl Strategy<Value = (ColumnSpec, Vec<Update>)> {
    let action = prop_oneof![
        3 => (0usize..3, arb_int_set()).prop_map(|(o, set)| (o, Some(set), Vec::new())),
        2 => (0usize..3, vec((any::<usize>(), any::<usize>()), 0..4))
            .prop_map(|(o, picks)| (o, None, picks)),
    ];
    vec(action, 0..14).prop_map(|actions| {
        let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::IntSet).unwrap();
        let mut counters = [0u64; 3];
        let mut adds: Vec<(Dot, Vec<i64>)> = Vec::new();
        let mut updates = Vec::new();
        for (o, added, picks) in actions {
            counters[o] += 1;
            let dot = Dot::new(origin(o), counters[o]).unwrap();
            let op = match added {
                Some(set) => {
                    let op = CellOp::new(&spec, OpType::OrSetAdd, &set).unwrap();
                    let elements = set.as_int_set().unwrap().as_slice().to_vec();
                    adds.push((dot, elements));
                    op
                }
                None => {
                    let observed = picks
                        .iter()
                        .filter(|_| !adds.is_empty())
                        .filter_map(|(a, e)| {
                            let (tag, elements) = &adds[a % adds.len()];
                            (!elements.is_empty()).then(|| (elements[e % elements.len()], *tag))
                        })
                        .collect();
                    CellOp::OrRemove(ObservedTags::Ints(observed))
                }
            };
            updates.push((dot, vec![op]));
        }
        (spec, updates)
    })
}

/// The model of an arbitrary history (removes may name any add, or one not yet made): an element
/// is present iff, for some origin, that origin's newest add of it is newer than every tag of
/// that origin a remove named for it. For the removes replicas issue — the tags their view holds
/// live — this is the classic add-wins set, in which an element is present iff one of its add
/// tags was never removed: `prop_or_set_is_the_classic_set_for_the_removes_replicas_issue`.
fn or_model(updates: &[Update]) -> SortedSet<i64> {
    // (element, origin) -> (newest add, newest removed tag)
    let mut tags: BTreeMap<(i64, NodeId), (u64, u64)> = BTreeMap::new();
    for (dot, ops) in updates {
        match ops.as_slice() {
            [CellOp::OrAdd(Elements::Ints(set))] => {
                for e in set {
                    let slot = tags.entry((*e, dot.node())).or_default();
                    slot.0 = slot.0.max(dot.counter());
                }
            }
            [CellOp::OrRemove(ObservedTags::Ints(named))] => {
                for (e, tag) in named {
                    let slot = tags.entry((*e, tag.node())).or_default();
                    slot.1 = slot.1.max(tag.counter());
                }
            }
            other => unreachable!("an OR-set history holds adds and removes: {other:?}"),
        }
    }
    tags.into_iter()
        .filter(|(_, (added, removed))| added > removed)
        .map(|((e, _), _)| e)
        .collect()
}

/// What a replica of an OR-set cell does next: add or remove an element against its own view,
/// or pull another replica's whole view.
#[derive(Debug, Clone)]
enum OrStep {
    Add { at: usize, element: i64 },
    Remove { at: usize, element: i64 },
    Pull { at: usize, from: usize },
}

fn arb_or_steps() -> impl Strategy<Value = Vec<OrStep>> {
    let step = prop_oneof![
        3 => (0usize..3, 0i64..4).prop_map(|(at, element)| OrStep::Add { at, element }),
        2 => (0usize..3, 0i64..4).prop_map(|(at, element)| OrStep::Remove { at, element }),
        2 => (0usize..3, 0usize..3).prop_map(|(at, from)| OrStep::Pull { at, from }),
    ];
    vec(step, 0..40)
}

/// One update of an [`OrWorld`], as this set issues it and as the classic set would.
#[derive(Debug)]
struct WorldUpdate {
    dot: Dot,
    op: CellOp,
    classic: ClassicOp,
}

/// An element and the tag of one of its adds.
type TaggedElement = (i64, Dot);

/// The classic OR-set's update: an add, or the remove of every live tag its writer saw.
#[derive(Debug)]
enum ClassicOp {
    Add(i64),
    Remove(Vec<TaggedElement>),
}

/// Three replicas of one cell issuing updates against their own views, as replicas do. A view
/// is causally closed (the indices of the updates it holds, in issue order), so applying it in
/// index order is a causal delivery.
struct OrWorld {
    spec: ColumnSpec,
    updates: Vec<WorldUpdate>,
    views: Vec<Vec<usize>>,
}

impl OrWorld {
    fn run(steps: &[OrStep]) -> Self {
        let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::IntSet).unwrap();
        let mut world = OrWorld {
            spec,
            updates: Vec::new(),
            views: vec![Vec::new(); 3],
        };
        let mut counters = [0u64; 3];
        for step in steps {
            match *step {
                OrStep::Pull { at, from } => {
                    let mut view = world.views[at].clone();
                    view.extend(&world.views[from]);
                    view.sort_unstable();
                    view.dedup();
                    world.views[at] = view;
                }
                OrStep::Add { at, element } | OrStep::Remove { at, element } => {
                    counters[at] += 1;
                    let dot = Dot::new(origin(at), counters[at]).unwrap();
                    let value = AlgebraicValue::int_set([element]);
                    let (op, classic) = if matches!(step, OrStep::Add { .. }) {
                        let op = CellOp::new(&world.spec, OpType::OrSetAdd, &value).unwrap();
                        (op, ClassicOp::Add(element))
                    } else {
                        let view = &world.views[at];
                        let op = world.state(view).remove_op(&world.spec, &value).unwrap();
                        let (adds, removed) = world.classic(view);
                        let live = adds
                            .into_iter()
                            .filter(|(e, tag)| *e == element && !removed.contains(&(*e, *tag)))
                            .collect();
                        (op, ClassicOp::Remove(live))
                    };
                    world.views[at].push(world.updates.len());
                    world.updates.push(WorldUpdate { dot, op, classic });
                }
            }
        }
        world
    }

    fn state(&self, view: &[usize]) -> CellState {
        let mut state = CellState::new(&self.spec);
        for &i in view {
            state
                .apply(&self.updates[i].op, self.updates[i].dot)
                .unwrap();
        }
        state
    }

    fn clock(&self, view: &[usize]) -> VectorClock {
        let mut clock = VectorClock::new();
        for &i in view {
            let dot = self.updates[i].dot;
            clock.set(dot.node(), clock.get(dot.node()).max(dot.counter()));
        }
        clock
    }

    /// The classic set's add tags and removed tags in `view`.
    fn classic(&self, view: &[usize]) -> (Vec<TaggedElement>, Vec<TaggedElement>) {
        let (mut adds, mut removed) = (Vec::new(), Vec::new());
        for &i in view {
            match &self.updates[i].classic {
                ClassicOp::Add(e) => adds.push((*e, self.updates[i].dot)),
                ClassicOp::Remove(tags) => removed.extend(tags.iter().copied()),
            }
        }
        (adds, removed)
    }

    fn classic_value(&self, view: &[usize]) -> AlgebraicValue {
        let (adds, removed) = self.classic(view);
        AlgebraicValue::int_set(
            adds.into_iter()
                .filter(|tag| !removed.contains(tag))
                .map(|(e, _)| e),
        )
    }

    /// Every update any replica holds.
    fn union(&self) -> Vec<usize> {
        (0..self.updates.len()).collect()
    }
}

/// `state` with the tombstones `stable` lets go, `stable` cut to at most `clock` entry by entry
/// at the fractions `cuts` choose (so any point from nothing to the whole clock).
fn compacted_below(state: &CellState, clock: &VectorClock, cuts: &[u8]) -> CellState {
    let mut stable = VectorClock::new();
    for ((node, counter), cut) in clock.iter().zip(cuts.iter().cycle()) {
        stable.set(node, counter * u64::from(*cut % 5) / 4);
    }
    let mut state = state.clone();
    state.compact(&stable);
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The OR-set does not need causal delivery: any permutation, any grouping (with
    /// duplicates), any join order give the same state, and it matches the add-wins model.
    #[test]
    fn prop_or_set_converges_under_any_delivery(
        (spec, updates) in arb_or_history(),
        k in 1usize..4,
        seed in any::<u64>(),
    ) {
        let mut rng = Shuffler(seed);
        let all: Vec<&Update> = updates.iter().collect();
        let reference = apply_in(&spec, &all);
        prop_assert_eq!(reference.value().unwrap(), AlgebraicValue::IntSet(or_model(&updates)));
        let mut shuffled = all.clone();
        rng.permute(&mut shuffled);
        same(&reference, &apply_in(&spec, &shuffled))?;
        // Any grouping, duplicates included: each update goes to one or two replicas.
        let mut held: Vec<Vec<&Update>> = vec![Vec::new(); k];
        for u in &all {
            held[rng.below(k)].push(u);
            if rng.below(3) == 0 {
                held[rng.below(k)].push(u);
            }
        }
        let states = held.iter_mut().map(|h| { rng.permute(h); apply_in(&spec, h) }).collect();
        same(&reference, &join_all(states, &mut rng))?;
    }

    /// The OR-set join is commutative, associative and idempotent, with the empty set as identity.
    #[test]
    fn prop_or_set_join_laws((spec, updates) in arb_or_history(), seed in any::<u64>()) {
        let mut rng = Shuffler(seed);
        let parts: Vec<CellState> = (0..3)
            .map(|_| {
                let held: Vec<&Update> = updates.iter().filter(|_| rng.below(2) == 0).collect();
                apply_in(&spec, &held)
            })
            .collect();
        let (a, b, c) = (&parts[0], &parts[1], &parts[2]);
        let join = |x: &CellState, y: &CellState| {
            let mut z = x.clone();
            z.merge(y).unwrap();
            z
        };
        same(&join(a, b), &join(b, a))?;
        same(&join(&join(a, b), c), &join(a, &join(b, c)))?;
        same(&join(a, a), a)?;
        same(&join(a, &CellState::new(&spec)), a)?;
    }

    /// For the removes replicas issue (the live tags of their own view), keeping one tag per
    /// element and origin reads exactly what the classic set that keeps every add tag reads,
    /// on every replica's view and on all of them together.
    #[test]
    fn prop_or_set_is_the_classic_set_for_the_removes_replicas_issue(steps in arb_or_steps()) {
        let world = OrWorld::run(&steps);
        let mut views = world.views.clone();
        views.push(world.union());
        for view in &views {
            prop_assert_eq!(world.state(view).value().unwrap(), world.classic_value(view));
        }
    }

    /// A replica joining a peer's whole state by their clocks (`retract_collected`, then
    /// `merge_beyond`) holds the state of every update either held, whatever tombstones each
    /// had collected; and a restricted state joins the same way, provided its sender collected
    /// nothing the receiver had not delivered (a sender trims its index where it collects, so a
    /// receiver behind that point gets the whole state instead).
    #[test]
    fn prop_joining_by_clocks_gives_the_union_whatever_was_collected(
        steps in arb_or_steps(),
        pair in (0usize..3, 0usize..3),
        cuts in vec(any::<u8>(), 1..4),
    ) {
        let world = OrWorld::run(&steps);
        let (mine, theirs) = (&world.views[pair.0], &world.views[pair.1]);
        let (my_clock, their_clock) = (world.clock(mine), world.clock(theirs));
        let mut union: Vec<usize> = mine.iter().chain(theirs).copied().collect();
        union.sort_unstable();
        union.dedup();
        let union_clock = world.clock(&union);
        let canonical = |state: &CellState| {
            let mut state = state.clone();
            state.compact(&union_clock);
            state
        };
        let expected = canonical(&world.state(&union));
        let receiver = compacted_below(&world.state(mine), &my_clock, &cuts);
        let complete = compacted_below(&world.state(theirs), &their_clock, &cuts[1..]);
        let mut joined = receiver.clone();
        joined.retract_collected(&complete, &their_clock);
        joined.merge_beyond(&complete, &my_clock).unwrap();
        same(&canonical(&joined), &expected)?;
        prop_assert_eq!(joined.value().unwrap(), world.state(&union).value().unwrap());
        // A delta: the sender's state restricted to what the receiver may lack, from a sender
        // that collected only what the receiver had delivered.
        let base = my_clock.meet(&their_clock);
        let sender = compacted_below(&world.state(theirs), &base, &cuts);
        let mut joined = receiver.clone();
        joined.merge_beyond(&sender.restricted(&base), &my_clock).unwrap();
        same(&canonical(&joined), &expected)?;
        // `merge_beyond` is the merge of the restricted state, listed or not.
        let mut plain = receiver.clone();
        plain.merge(&sender.restricted(&my_clock)).unwrap();
        let mut beyond = receiver.clone();
        beyond.merge_beyond(&sender, &my_clock).unwrap();
        same(&plain, &beyond)?;
        let listed: StateList = [sender.clone()].into_iter().collect();
        let mut beyond = receiver;
        beyond.merge_listed_beyond(listed.get(0).unwrap(), &my_clock, 0).unwrap();
        same(&plain, &beyond)?;
    }

    /// Once everything is stable, compaction drops every tombstone and changes no element.
    #[test]
    fn prop_or_set_compaction_keeps_the_value((spec, updates) in arb_or_history()) {
        let all: Vec<&Update> = updates.iter().collect();
        let mut state = apply_in(&spec, &all);
        let before = state.value().unwrap();
        let mut stable = VectorClock::new();
        for (dot, _) in &updates {
            stable.set(dot.node(), stable.get(dot.node()).max(dot.counter()));
        }
        state.compact(&stable);
        prop_assert_eq!(state.tombstone_count(), 0);
        prop_assert_eq!(state.value().unwrap(), before);
    }

    /// The register's join (latest version, ties by value) is a semilattice too.
    #[test]
    fn prop_register_join_laws(writes in vec(vec(arb_i64(), 0..4), 3)) {
        let spec = ColumnSpec::new(MergeType::Register, ValueType::Integer).unwrap();
        let states: Vec<CellState> = writes
            .iter()
            .map(|w| {
                let mut s = CellState::new(&spec);
                for (i, v) in w.iter().enumerate() {
                    s.apply(&CellOp::Overwrite(Box::new((*v).into())), Dot::new(origin(0), i as u64 + 1).unwrap()).unwrap();
                }
                s
            })
            .collect();
        let join = |x: &CellState, y: &CellState| {
            let mut z = x.clone();
            z.merge(y).unwrap();
            z
        };
        let (a, b, c) = (&states[0], &states[1], &states[2]);
        same(&join(a, b), &join(b, a))?;
        same(&join(&join(a, b), c), &join(a, &join(b, c)))?;
        same(&join(a, a), a)?;
    }
}
