//! The cells a delta carries: keys with the states listed together.

use rhizo_algebra::{CellState, ListedState, StateList};
use rhizo_clock::VectorClock;
use serde::{Deserialize, Serialize};

use crate::CellKey;

/// A [`Delta`](super::Delta)'s cells: keys strictly increasing (the replica checks this on
/// receipt), each with the state the delta carries for it.
///
/// The states are a [`StateList`]: the entries of every integer sum live in one buffer, so a
/// delta of a hundred counters allocates a few times rather than a hundred, and a receiver that
/// keeps the delta in its durable log frees a few buffers when it drops it. Encoded as a list of
/// `(key, state)` pairs, as a list of [`CellState`]s with their keys would be.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DeltaCells {
    keys: Vec<CellKey>,
    states: StateList,
}

impl DeltaCells {
    /// No cells.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// No cells, with room for `cells`.
    pub(crate) fn with_capacity(cells: usize) -> Self {
        Self {
            keys: Vec::with_capacity(cells),
            states: StateList::with_capacity(cells),
        }
    }

    /// How many cells.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The keys, in order.
    pub(crate) fn keys(&self) -> &[CellKey] {
        &self.keys
    }

    /// The `index`th cell.
    pub(crate) fn get(&self, index: usize) -> Option<(&CellKey, ListedState<'_>)> {
        Some((self.keys.get(index)?, self.states.get(index)?))
    }

    /// The cells, in order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&CellKey, ListedState<'_>)> + '_ {
        self.keys.iter().zip(self.states.iter())
    }

    /// Appends a cell.
    pub(crate) fn push(&mut self, key: CellKey, state: CellState) {
        self.keys.push(key);
        self.states.push(state);
    }

    /// Appends a cell with a copy of `state`.
    pub(crate) fn push_cloned(&mut self, key: CellKey, state: &CellState) {
        self.keys.push(key);
        self.states.push_cloned(state);
    }

    /// Appends a cell with what a replica that has delivered every update in `known` may lack
    /// of `state` ([`CellState::restricted`]).
    pub(crate) fn push_restricted(&mut self, key: CellKey, state: &CellState, known: &VectorClock) {
        self.keys.push(key);
        self.states.push_restricted(state, known);
    }

    /// The `index`th cell's state, owned ([`StateList::take`]: one held whole is moved out).
    pub(crate) fn take_state(&mut self, index: usize) -> Option<CellState> {
        self.states.take(index)
    }

    /// Frees the room held beyond the cells ([`StateList::shrink_to_fit`]).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.states.shrink_to_fit();
    }

    /// The cells, owned, in order.
    #[cfg(test)]
    pub(crate) fn into_cells(self) -> impl ExactSizeIterator<Item = (CellKey, CellState)> {
        self.keys.into_iter().zip(self.states.into_states())
    }
}

impl FromIterator<(CellKey, CellState)> for DeltaCells {
    fn from_iter<I: IntoIterator<Item = (CellKey, CellState)>>(cells: I) -> Self {
        let mut out = DeltaCells::new();
        for (key, state) in cells {
            out.push(key, state);
        }
        out
    }
}

impl Serialize for DeltaCells {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Decoded as a list of `(key, state)` pairs, each checked as a lone key and state are.
impl<'de> Deserialize<'de> for DeltaCells {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellsVisitor;
        impl<'de> serde::de::Visitor<'de> for CellsVisitor {
            type Value = DeltaCells;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of (key, cell state) pairs")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DeltaCells, A::Error> {
                // Room for what the input claims, up to a mebibyte (as serde's own lists
                // reserve): a claim the bytes cannot back reserves little.
                let claimed = seq.size_hint().unwrap_or(0);
                let cap = (1 << 20) / std::mem::size_of::<(CellKey, CellState)>();
                let mut cells = DeltaCells::with_capacity(claimed.min(cap));
                while let Some((key, state)) = seq.next_element::<(CellKey, CellState)>()? {
                    cells.push(key, state);
                }
                Ok(cells)
            }
        }
        deserializer.deserialize_seq(CellsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use rhizo_algebra::{AlgebraicValue, CellOp, ColumnSpec, MergeType, OpType, ValueType};
    use rhizo_clock::{Dot, NodeId};

    use super::*;

    fn cells() -> Vec<(CellKey, CellState)> {
        let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let tags = ColumnSpec::new(MergeType::Union, ValueType::StringSet).unwrap();
        let mut counter = CellState::new(&sum);
        for node in 0..3 {
            let dot = Dot::new(NodeId::numbered(node), 1).unwrap();
            counter.apply_add_int(i64::from(node) + 1, dot).unwrap();
        }
        let mut set = CellState::new(&tags);
        let value = AlgebraicValue::StringSet(["a".to_owned()].into_iter().collect());
        let op = CellOp::new(&tags, OpType::SemilatticeUnion, &value).unwrap();
        set.apply(&op, Dot::new(NodeId::numbered(0), 2).unwrap())
            .unwrap();
        vec![
            (CellKey::new("t", "a", "n"), counter.clone()),
            (CellKey::new("t", "b", "tags"), set),
            (CellKey::new("t", "c", "n"), counter),
        ]
    }

    #[test]
    fn cells_encode_as_a_list_of_pairs_and_come_back() {
        let listed: DeltaCells = cells().into_iter().collect();
        let bytes = postcard::to_allocvec(&listed).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&cells()).unwrap());
        let decoded: DeltaCells = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, listed);
        assert_eq!(decoded.into_cells().collect::<Vec<_>>(), cells());
        assert_eq!(listed.len(), 3);
        assert_eq!(listed.keys()[1], CellKey::new("t", "b", "tags"));
        let (key, state) = listed.get(2).unwrap();
        assert_eq!(
            (key, state.to_state()),
            (&cells()[2].0, cells()[2].1.clone())
        );
        assert!(listed.get(3).is_none());
    }

    #[test]
    fn restricted_cells_carry_what_restriction_keeps() {
        let mut known = VectorClock::new();
        known.set(NodeId::numbered(1), 1);
        let mut listed = DeltaCells::with_capacity(3);
        let mut cloned = DeltaCells::new();
        for (key, state) in cells() {
            listed.push_restricted(key.clone(), &state, &known);
            cloned.push_cloned(key, &state.restricted(&known));
        }
        assert_eq!(listed, cloned);
        let expected: Vec<_> = cells()
            .into_iter()
            .map(|(key, state)| (key, state.restricted(&known)))
            .collect();
        assert_eq!(listed.into_cells().collect::<Vec<_>>(), expected);
    }
}
