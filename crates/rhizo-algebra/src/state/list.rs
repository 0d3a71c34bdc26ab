//! Cell states listed together, as a delta carries them, with the per-origin entries of every
//! integer sum in one buffer.
//!
//! A delta carries a state for each cell it touches. Restricted into states of their own, the
//! cells would each allocate a list of entries at the sender, and a receiver that keeps the
//! delta in its durable log would free them one by one. Listed here, an integer sum's entries
//! are a slice of the list's buffer: a list allocates a few times and frees a few buffers,
//! however many cells it holds.

use rhizo_clock::{ClockLookup, NodeId, VectorClock};

use super::int_sum::{Entries, EntrySlice, IntSum};
use super::{CellState, OriginEntry, StateKind, mismatch, narrow_i64};
use crate::{AlgebraError, Result};

/// Cell states in order. A state restricted or copied into the list
/// ([`StateList::push_restricted`], [`StateList::push_cloned`]) that is an integer sum keeps its
/// entries in the list's one buffer; any other, and any state pushed owned, is held whole.
///
/// A list of states holds exactly what the same states one by one would hold: it is encoded
/// as a sequence of [`CellState`]s (the same bytes), compares equal to a list of equal states
/// however they were pushed, and [`ListedState::to_state`] gives each state back.
///
/// Hidden from the documentation, with [`ListedState`] and the `*_listed*` joins of
/// [`CellState`]: it is how rhizo-commit's deltas hold their cells, which that crate needs from
/// here (the entries' layout is private to this one); a user joins states with
/// [`CellState::merge`] and [`CellState::merge_beyond`].
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct StateList {
    items: Vec<Item>,
    /// The entries of every integer sum, sum after sum.
    int_entries: IntBuffer,
}

#[derive(Debug, Clone)]
enum Item {
    /// An integer sum whose entries are `int_entries[start..end]`.
    IntSum { start: usize, end: usize },
    /// Any other state.
    Whole(CellState),
}

/// The entries of a list's integer sums: with `i64` partials (32 bytes an entry) while every
/// partial fits one, as a replica's sums are held, so that restricting a sum into a delta and
/// merging it at the receiver copy entries without converting them; with `i128` partials once
/// one does not. The width is not part of the value (entries encode as `i128` either way).
#[derive(Debug, Clone)]
enum IntBuffer {
    Narrow(Vec<OriginEntry<i64>>),
    Wide(Vec<OriginEntry<i128>>),
}

impl Default for IntBuffer {
    fn default() -> Self {
        IntBuffer::Narrow(Vec::new())
    }
}

impl IntBuffer {
    fn len(&self) -> usize {
        match self {
            IntBuffer::Narrow(entries) => entries.len(),
            IntBuffer::Wide(entries) => entries.len(),
        }
    }

    fn slice(&self, start: usize, end: usize) -> EntrySlice<'_> {
        match self {
            IntBuffer::Narrow(entries) => EntrySlice::Narrow(&entries[start..end]),
            IntBuffer::Wide(entries) => EntrySlice::Wide(&entries[start..end]),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            IntBuffer::Narrow(entries) => entries.truncate(len),
            IntBuffer::Wide(entries) => entries.truncate(len),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            IntBuffer::Narrow(entries) => entries.shrink_to_fit(),
            IntBuffer::Wide(entries) => entries.shrink_to_fit(),
        }
    }

    /// The buffer held wide (its entries converted once if they were narrow; positions stay).
    fn widen(&mut self) -> &mut Vec<OriginEntry<i128>> {
        if let IntBuffer::Narrow(narrow) = self {
            let wide = narrow.iter().map(|e| e.converted(i128::from)).collect();
            *self = IntBuffer::Wide(wide);
        }
        match self {
            IntBuffer::Wide(entries) => entries,
            // Just replaced above.
            IntBuffer::Narrow(_) => unreachable!("widened"),
        }
    }

    /// Appends `entry`, widening the buffer if it is narrow and the partial does not fit.
    fn push(&mut self, entry: OriginEntry<i128>) {
        match self {
            IntBuffer::Narrow(entries) => match narrow_i64(entry.partial) {
                Some(partial) => entries.push(entry.converted(|_| partial)),
                None => self.widen().push(entry),
            },
            IntBuffer::Wide(entries) => entries.push(entry),
        }
    }

    /// Appends the entries of `sum` that a replica knowing `known` may lack (all of them
    /// without `known`), at the buffer's width, widening it only for a partial that does not
    /// fit in `i64`.
    // Always: it runs once per cell of every delta, and inlined into the delta's loop it keeps
    // the lookup table's address and size in registers across cells.
    #[inline(always)]
    fn extend_from(&mut self, sum: &IntSum, known: Option<&ClockLookup<'_>>) {
        match known {
            Some(known) => self.extend_seen(sum, |node| known.get(node)),
            None => self.extend_seen(sum, |_| 0),
        }
    }

    /// Appends the entries of `sum` above `seen` of their origin.
    #[inline(always)]
    fn extend_seen(&mut self, sum: &IntSum, seen: impl FnMut(NodeId) -> u64) {
        match (sum, &mut *self) {
            (IntSum::Narrow(list), IntBuffer::Narrow(out)) => {
                list.restricted_into(seen, out, |partial| partial);
            }
            (IntSum::Narrow(list), IntBuffer::Wide(out)) => {
                list.restricted_into(seen, out, i128::from);
            }
            (IntSum::Wide(list), IntBuffer::Wide(out)) => {
                list.restricted_into(seen, out, |partial| partial);
            }
            // A sum once widened may still hold only partials that fit (rare): each entry
            // goes in as it fits.
            (IntSum::Wide(list), IntBuffer::Narrow(_)) => {
                let mut wide = Vec::new();
                list.restricted_into(seen, &mut wide, |partial| partial);
                for entry in wide {
                    self.push(entry);
                }
            }
        }
    }
}

/// One state of a [`StateList`], borrowed.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ListedState<'a>(Listed<'a>);

#[derive(Debug, Clone, Copy)]
enum Listed<'a> {
    IntSum(EntrySlice<'a>),
    Whole(&'a CellState),
}

impl StateList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `states` states.
    pub fn with_capacity(states: usize) -> Self {
        Self {
            items: Vec::with_capacity(states),
            int_entries: IntBuffer::default(),
        }
    }

    /// How many states it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many integer-sum entries the list holds in its shared buffer (those of sums pushed
    /// restricted or copied; a state pushed whole keeps its own). For an encoder sizing its
    /// output from what the list holds without walking every state.
    pub fn buffered_int_entries(&self) -> usize {
        self.int_entries.len()
    }

    /// The `index`th state.
    pub fn get(&self, index: usize) -> Option<ListedState<'_>> {
        self.items.get(index).map(|item| self.listed(item))
    }

    /// The states in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ListedState<'_>> + '_ {
        self.items.iter().map(|item| self.listed(item))
    }

    fn listed<'a>(&'a self, item: &'a Item) -> ListedState<'a> {
        ListedState(match item {
            Item::IntSum { start, end } => Listed::IntSum(self.int_entries.slice(*start, *end)),
            Item::Whole(state) => Listed::Whole(state),
        })
    }

    /// Appends `state` as it is: a state already built (a decoded one, say) is kept whole
    /// rather than copied into the buffer and freed, and moves out whole again
    /// ([`StateList::take`]).
    pub fn push(&mut self, state: CellState) {
        self.items.push(Item::Whole(state));
    }

    /// Appends a copy of `state`.
    pub fn push_cloned(&mut self, state: &CellState) {
        match &state.kind {
            StateKind::SumInt(origins) => {
                self.push_int_sum(|buffer| buffer.extend_from(origins, None));
            }
            _ => self.items.push(Item::Whole(state.clone())),
        }
    }

    /// Appends `state.restricted(known.clock())`: what a replica that has delivered every
    /// update in that clock may lack of it. A list of many cells restricted to one clock builds
    /// its table once ([`rhizo_clock::VectorClock::lookup_in`]) and passes it to each.
    pub fn push_restricted(&mut self, state: &CellState, known: &ClockLookup<'_>) {
        match &state.kind {
            StateKind::SumInt(origins) => {
                self.push_int_sum(|buffer| buffer.extend_from(origins, Some(known)));
            }
            _ => self
                .items
                .push(Item::Whole(state.restricted(known.clock()))),
        }
    }

    /// Appends the integer sum of `entries` (as [`ListedState::int_sum_entries`] gives them),
    /// checked as a decoded state is: origins strictly increasing, sequence numbers from 1. On
    /// an error nothing is appended.
    pub fn push_int_sum_entries(
        &mut self,
        entries: impl IntoIterator<Item = (NodeId, u64, i128)>,
    ) -> Result<()> {
        let start = self.int_entries.len();
        let mut zero_seq = false;
        for (node, seq, partial) in entries {
            match std::num::NonZeroU64::new(seq) {
                Some(seq) => self.int_entries.push(OriginEntry { node, seq, partial }),
                None => zero_seq = true,
            }
        }
        let end = self.int_entries.len();
        let added = self.int_entries.slice(start, end).entries();
        let canonical = if zero_seq {
            Err("an origin entry's sequence number starts at 1")
        } else if !added
            .clone()
            .zip(added.skip(1))
            .all(|(a, b)| a.node < b.node)
        {
            Err("origins must be strictly increasing")
        } else {
            Ok(())
        };
        if let Err(reason) = canonical {
            self.int_entries.truncate(start);
            return Err(AlgebraError::NonCanonical {
                reason: reason.into(),
            });
        }
        self.items.push(Item::IntSum { start, end });
        Ok(())
    }

    fn push_int_sum(&mut self, fill: impl FnOnce(&mut IntBuffer)) {
        let start = self.int_entries.len();
        fill(&mut self.int_entries);
        let end = self.int_entries.len();
        self.items.push(Item::IntSum { start, end });
    }

    /// Frees the room the buffer holds beyond its entries: a list kept long (a delta in a
    /// durable log) holds only what it lists.
    pub fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
        self.int_entries.shrink_to_fit();
    }

    /// The `index`th state, owned: a state held whole is moved out, and an empty integer sum
    /// left in its place (for a caller about to drop the list).
    pub fn take(&mut self, index: usize) -> Option<CellState> {
        let empty = Item::IntSum { start: 0, end: 0 };
        match std::mem::replace(self.items.get_mut(index)?, empty) {
            Item::IntSum { start, end } => {
                self.items[index] = Item::IntSum { start, end };
                Some(self.listed(&self.items[index]).to_state())
            }
            Item::Whole(state) => Some(state),
        }
    }

    /// The states, owned, in order.
    pub fn into_states(self) -> impl ExactSizeIterator<Item = CellState> {
        let entries = self.int_entries;
        self.items.into_iter().map(move |item| match item {
            Item::IntSum { start, end } => CellState {
                kind: StateKind::SumInt(IntSum::from_slice(entries.slice(start, end))),
            },
            Item::Whole(state) => state,
        })
    }
}

impl PartialEq for StateList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl FromIterator<CellState> for StateList {
    fn from_iter<I: IntoIterator<Item = CellState>>(states: I) -> Self {
        let mut list = StateList::new();
        for state in states {
            list.push(state);
        }
        list
    }
}

impl<'a> ListedState<'a> {
    /// The state, owned.
    pub fn to_state(self) -> CellState {
        match self.0 {
            Listed::IntSum(entries) => CellState {
                kind: StateKind::SumInt(IntSum::from_slice(entries)),
            },
            Listed::Whole(state) => state.clone(),
        }
    }

    /// An integer sum's entries as `(origin, highest dot counter applied, partial sum)`, sorted
    /// by origin; `None` for any other kind of state. For a wire format that writes integer sums
    /// its own way (rhizo-commit's deltas name origins by position in a dictionary).
    pub fn int_sum_entries(
        self,
    ) -> Option<impl ExactSizeIterator<Item = (NodeId, u64, i128)> + 'a> {
        let entries: Entries<'a> = match self.0 {
            Listed::IntSum(entries) => entries.entries(),
            Listed::Whole(CellState {
                kind: StateKind::SumInt(origins),
            }) => origins.entries(),
            Listed::Whole(_) => return None,
        };
        Some(entries.map(|e| (e.node, e.seq.get(), e.partial)))
    }

    fn kind_name(self) -> &'static str {
        match self.0 {
            Listed::IntSum(_) => "integer ADD",
            Listed::Whole(state) => state.kind_name(),
        }
    }
}

impl PartialEq for ListedState<'_> {
    fn eq(&self, other: &Self) -> bool {
        fn entries<'a>(listed: Listed<'a>) -> Option<Entries<'a>> {
            match listed {
                Listed::IntSum(entries) => Some(entries.entries()),
                Listed::Whole(CellState {
                    kind: StateKind::SumInt(origins),
                }) => Some(origins.entries()),
                Listed::Whole(_) => None,
            }
        }
        match (entries(self.0), entries(other.0)) {
            (Some(a), Some(b)) => a.len() == b.len() && a.eq(b),
            (None, None) => match (self.0, other.0) {
                (Listed::Whole(a), Listed::Whole(b)) => a == b,
                _ => false,
            },
            _ => false,
        }
    }
}

impl CellState {
    /// [`CellState::merges_infallibly`] with a listed state.
    #[doc(hidden)]
    pub fn merges_listed_infallibly(&self, other: ListedState<'_>) -> bool {
        match other.0 {
            Listed::IntSum(_) => matches!(self.kind, StateKind::SumInt(_)),
            Listed::Whole(state) => self.merges_infallibly(state),
        }
    }

    /// [`CellState::merge`] of a listed state: the same join.
    #[doc(hidden)]
    pub fn merge_listed(&mut self, other: ListedState<'_>) -> Result<()> {
        self.merge_listed_expecting(other, 0)
    }

    /// [`CellState::merge_expecting`] of a listed state: the same join.
    pub(crate) fn merge_listed_expecting(
        &mut self,
        other: ListedState<'_>,
        expected_origins: usize,
    ) -> Result<()> {
        match (other.0, &mut self.kind) {
            (Listed::IntSum(theirs), StateKind::SumInt(mine)) => {
                mine.merge_slice(theirs, expected_origins);
                Ok(())
            }
            (Listed::IntSum(_), _) => Err(mismatch(self.kind_name(), other.kind_name())),
            (Listed::Whole(state), _) => self.merge_expecting(state, expected_origins),
        }
    }
}

impl CellState {
    /// [`CellState::merge_beyond`] of a listed state: the same join. A replica passes its
    /// member count as `expected_origins` (see [`CellState::merge_expecting`]).
    #[doc(hidden)]
    pub fn merge_listed_beyond(
        &mut self,
        other: ListedState<'_>,
        known: &VectorClock,
        expected_origins: usize,
    ) -> Result<()> {
        match other.0 {
            Listed::Whole(state) => self.merge_beyond_expecting(state, known, expected_origins),
            // An integer sum holds no tombstone: what `known` covers joins as a no-op.
            Listed::IntSum(_) => self.merge_listed_expecting(other, expected_origins),
        }
    }

    /// [`CellState::retract_collected`] with a listed complete state.
    #[doc(hidden)]
    pub fn retract_collected_listed(&mut self, complete: ListedState<'_>, clock: &VectorClock) {
        if let Listed::Whole(state) = complete.0 {
            self.retract_collected(state, clock);
        }
    }
}

/// Encoded as the state it lists, by reference: an integer sum's entries exactly as its
/// `CellState` would write them.
#[cfg(feature = "serde")]
impl serde::Serialize for ListedState<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            Listed::IntSum(entries) => super::serialize_int_sum(entries.entries(), serializer),
            Listed::Whole(state) => state.serialize(serializer),
        }
    }
}

/// Encoded as a sequence of [`CellState`]s.
#[cfg(feature = "serde")]
impl serde::Serialize for StateList {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Decoded from a sequence of [`CellState`]s, each checked as a `CellState` is.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for StateList {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> serde::de::Visitor<'de> for ListVisitor {
            type Value = StateList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of cell states")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<StateList, A::Error> {
                // Room for what the input claims, up to a mebibyte (as serde's own lists
                // reserve): a claim the bytes cannot back reserves little.
                let claimed = seq.size_hint().unwrap_or(0);
                let cap = (1 << 20) / std::mem::size_of::<CellState>();
                let mut list = StateList::with_capacity(claimed.min(cap));
                while let Some(state) = seq.next_element::<CellState>()? {
                    list.push(state);
                }
                Ok(list)
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use rhizo_clock::{Dot, NodeId};

    use super::*;
    use crate::{ColumnSpec, MergeType, OpType, ValueType};

    fn sum(adds: &[(u32, u64, i64)]) -> CellState {
        let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mut state = CellState::new(&spec);
        for &(node, counter, amount) in adds {
            let dot = Dot::new(NodeId::numbered(node), counter).unwrap();
            state.apply_add_int(amount, dot).unwrap();
        }
        state
    }

    fn peak(v: i64) -> CellState {
        let spec = ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
        let mut state = CellState::new(&spec);
        let op = crate::CellOp::new(
            &spec,
            OpType::SemilatticeMax,
            &crate::AlgebraicValue::Integer(v),
        )
        .unwrap();
        state
            .apply(&op, Dot::new(NodeId::numbered(9), 1).unwrap())
            .unwrap();
        state
    }

    /// Whether the list holds the state whole (rather than its entries in the buffer).
    fn whole(listed: ListedState<'_>) -> bool {
        matches!(listed.0, Listed::Whole(_))
    }

    fn states() -> Vec<CellState> {
        vec![
            sum(&[(0, 1, 5), (1, 2, -3)]),
            peak(7),
            sum(&[]),
            sum(&[(2, 4, 1), (0, 1, 2), (3, 1, 9)]),
        ]
    }

    /// The same states in two lists: collected whole, and pushed one by one as clones.
    fn owned_and_cloned() -> [StateList; 2] {
        let owned: StateList = states().into_iter().collect();
        let mut cloned = StateList::new();
        for state in &states() {
            cloned.push_cloned(state);
        }
        [owned, cloned]
    }

    #[test]
    fn buffered_entries_count_the_sums_copied_in_not_those_held_whole() {
        let [owned, cloned] = owned_and_cloned();
        // Collected whole, every state keeps its own entries; pushed as clones, the sums'
        // five entries (2 + 0 + 3) go to the buffer and the maximum stays whole.
        assert_eq!(owned.buffered_int_entries(), 0);
        assert_eq!(cloned.buffered_int_entries(), 5);
    }

    #[test]
    fn a_list_gives_back_what_was_pushed_however_it_was_pushed() {
        let [owned, cloned] = owned_and_cloned();
        assert_eq!(owned, cloned, "equal states, held whole or in the buffer");
        for list in [&owned, &cloned] {
            assert_eq!(list.len(), 4);
            assert_eq!(
                list.iter().map(ListedState::to_state).collect::<Vec<_>>(),
                states()
            );
            assert_eq!(list.clone().into_states().collect::<Vec<_>>(), states());
            assert!(whole(list.get(1).unwrap()));
            assert!(list.get(4).is_none());
        }
        assert!(whole(owned.get(0).unwrap()), "pushed owned: whole");
        assert!(!whole(cloned.get(0).unwrap()), "copied: in the buffer");
        // Taking a state moves one held whole out and leaves an empty sum in its place; one
        // in the buffer is copied out and stays.
        let mut taken = cloned.clone();
        assert_eq!(taken.take(1), Some(peak(7)));
        assert_eq!(
            taken.get(1).unwrap().to_state(),
            sum(&[]),
            "an empty sum is left"
        );
        assert_eq!(taken.take(0), Some(states()[0].clone()));
        assert_eq!(
            taken.get(0).unwrap().to_state(),
            states()[0],
            "a buffered sum stays"
        );
        assert_eq!(taken.take(4), None);
        let mut taken = owned.clone();
        assert_eq!(taken.take(0), Some(states()[0].clone()));
        assert_eq!(taken.get(0).unwrap().to_state(), sum(&[]));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_list_encodes_as_its_states_do() {
        let mut list = StateList::new();
        for state in &states() {
            list.push_cloned(state);
        }
        let as_states = postcard::to_allocvec(&states()).unwrap();
        assert_eq!(postcard::to_allocvec(&list).unwrap(), as_states);
        let decoded: StateList = postcard::from_bytes(&as_states).unwrap();
        assert_eq!(decoded, list);
    }

    #[test]
    fn a_listed_state_merges_as_the_state_does_and_is_refused_by_another_kind() {
        let known = {
            let mut clock = VectorClock::new();
            clock.set(NodeId::numbered(0), 1);
            clock
        };
        let mut list = StateList::new();
        for state in &states() {
            list.push_restricted(state, &known.lookup_in(&mut Default::default()));
        }
        for (state, listed) in states().iter().zip(list.iter()) {
            assert_eq!(listed.to_state(), state.restricted(&known));
            let mut base = sum(&[(0, 1, 5)]);
            let mut expected = base.clone();
            assert_eq!(
                base.merges_listed_infallibly(listed),
                expected.merges_infallibly(state)
            );
            let merged = base.merge_listed_expecting(listed, 8);
            let reference = expected.merge(&state.restricted(&known));
            assert_eq!(merged.is_ok(), reference.is_ok());
            assert_eq!(base, expected);
        }
        let mut max = peak(1);
        let err = max.merge_listed(list.get(0).unwrap()).unwrap_err();
        assert!(
            matches!(err, crate::AlgebraError::StateMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(max, peak(1), "a refused merge changes nothing");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn malformed_states_in_a_list_are_refused_as_they_are_alone() {
        // One integer sum (variant 2) of two origins, in the given order, as postcard lays
        // out a list of one state.
        let encoded = |first: u32, second: u32| {
            let entry = |node: u32| (NodeId::numbered(node), 1u64, 1i128);
            postcard::to_allocvec(&(1usize, 2u32, 2usize, entry(first), entry(second))).unwrap()
        };
        let sorted = encoded(0, 1);
        let list: StateList = postcard::from_bytes(&sorted).unwrap();
        assert_eq!(list, [sum(&[(0, 1, 1), (1, 1, 1)])].into_iter().collect());
        let unsorted = encoded(1, 0);
        assert!(postcard::from_bytes::<Vec<CellState>>(&unsorted).is_err());
        assert!(postcard::from_bytes::<StateList>(&unsorted).is_err());
        // A claimed length far beyond the input allocates nothing ahead and fails.
        let mut huge = sorted.clone();
        huge.splice(0..1, [0xff, 0xff, 0xff, 0x0f]);
        assert!(postcard::from_bytes::<StateList>(&huge).is_err());
    }
    #[test]
    fn int_sum_entries_come_back_through_push_int_sum_entries() {
        let [owned, cloned] = owned_and_cloned();
        for list in [&owned, &cloned] {
            let mut rebuilt = StateList::new();
            for listed in list.iter() {
                match listed.int_sum_entries() {
                    Some(entries) => rebuilt.push_int_sum_entries(entries).unwrap(),
                    None => rebuilt.push(listed.to_state()),
                }
            }
            assert_eq!(&rebuilt, list);
            assert!(
                !whole(rebuilt.get(0).unwrap()),
                "entries live in the buffer"
            );
        }
        assert!(owned.get(1).unwrap().int_sum_entries().is_none());
        let entries: Vec<_> = owned.get(0).unwrap().int_sum_entries().unwrap().collect();
        assert_eq!(
            entries,
            [(NodeId::numbered(0), 1, 5), (NodeId::numbered(1), 2, -3)]
        );
    }

    /// The sums of `draws` as cell states, each held narrow where it can be or wide.
    fn int_sums(draws: &[(Vec<(u64, i128)>, bool)]) -> Vec<CellState> {
        draws
            .iter()
            .map(|(draws, wide)| CellState {
                kind: StateKind::SumInt(crate::testkit::int_sum_of(draws, *wide)),
            })
            .collect()
    }

    proptest::proptest! {
        /// Sums restricted, copied or decoded into a list are the restricted sums, whatever
        /// width each sum and the buffer hold: equal, the same bytes, the same joins. The
        /// buffer stays narrow until a partial it holds does not fit in `i64`.
        #[test]
        fn prop_listed_sums_are_the_sums_whatever_width_the_buffer_holds(
            draws in proptest::collection::vec(
                (crate::testkit::int_sum_draws(), proptest::bool::ANY), 0..6),
            seen in proptest::collection::vec(0u64..4, 0..12),
            base in crate::testkit::int_sum_draws(),
        ) {
            let states = int_sums(&draws);
            let mut known = VectorClock::new();
            for (i, &counter) in seen.iter().enumerate() {
                known.set(NodeId::numbered(i as u32), counter);
            }
            let restricted: Vec<CellState> =
                states.iter().map(|state| state.restricted(&known)).collect();
            let mut pushed = StateList::new();
            let mut cloned = StateList::new();
            for state in &states {
                pushed.push_restricted(state, &known.lookup_in(&mut Default::default()));
                cloned.push_cloned(state);
            }
            let mut decoded = StateList::new();
            for listed in pushed.iter() {
                decoded.push_int_sum_entries(listed.int_sum_entries().unwrap()).unwrap();
            }
            for (list, expected) in [(&pushed, &restricted), (&cloned, &states), (&decoded, &restricted)] {
                let fits = expected.iter().all(|state| match &state.kind {
                    StateKind::SumInt(sum) => sum.partials().all(|p| narrow_i64(p).is_some()),
                    _ => false,
                });
                proptest::prop_assert_eq!(
                    matches!(list.int_entries, IntBuffer::Narrow(_)), fits,
                    "narrow exactly while every partial fits"
                );
                let listed: Vec<CellState> = list.iter().map(ListedState::to_state).collect();
                proptest::prop_assert_eq!(&listed, expected);
                #[cfg(feature = "serde")]
                proptest::prop_assert_eq!(
                    postcard::to_allocvec(list).unwrap(),
                    postcard::to_allocvec(expected).unwrap()
                );
                for (listed, state) in list.iter().zip(expected) {
                    for wide in [false, true] {
                        let into = CellState {
                            kind: StateKind::SumInt(crate::testkit::int_sum_of(&base, wide)),
                        };
                        let (mut joined, mut reference) = (into.clone(), into);
                        joined.merge_listed_expecting(listed, 4).unwrap();
                        reference.merge(state).unwrap();
                        proptest::prop_assert_eq!(joined, reference);
                    }
                }
            }
        }
    }

    #[test]
    fn uncanonical_entries_are_refused_and_append_nothing() {
        let (n0, n1) = (NodeId::numbered(0), NodeId::numbered(1));
        let mut list = StateList::new();
        list.push_int_sum_entries([(n0, 1, 1)]).unwrap();
        for bad in [
            vec![(n1, 1, 1), (n0, 1, 1)],
            vec![(n0, 1, 1), (n0, 2, 1)],
            vec![(n0, 0, 1)],
        ] {
            let err = list.push_int_sum_entries(bad).unwrap_err();
            assert!(matches!(err, AlgebraError::NonCanonical { .. }), "{err:?}");
        }
        let mut expected = StateList::new();
        expected.push(sum(&[(0, 1, 1)]));
        assert_eq!(list, expected);
        assert_eq!(
            list.int_entries.len(),
            1,
            "refused entries leave the buffer"
        );
    }
}
