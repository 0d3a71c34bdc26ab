//! The cells a delta carries: keys with the states listed together.

use std::borrow::Cow;

use hashbrown::HashMap;
use rhizo_algebra::{CellState, ListedState, MAX_NAME_LEN, StateList};
use rhizo_clock::{ClockLookup, NodeId};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::CellKey;

/// A [`Delta`](super::Delta)'s cells: keys strictly increasing (the replica checks this on
/// receipt), each with the state the delta carries for it.
///
/// The states are a [`StateList`]: the entries of every integer sum live in one buffer, so a
/// delta of a hundred counters allocates a few times rather than a hundred, and a receiver that
/// keeps the delta in its durable log frees a few buffers when it drops it. Encoded with a column
/// and an origin dictionary (see the `Serialize` impl): table and column names, and the origins
/// of counters' entries, once per delta, not per cell.
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

    /// Appends a cell with what a replica that has delivered every update in `known`'s clock
    /// may lack of `state` ([`CellState::restricted`]).
    pub(crate) fn push_restricted(
        &mut self,
        key: CellKey,
        state: &CellState,
        known: &ClockLookup<'_>,
    ) {
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

/// Dictionaries at most this long are searched in place; longer ones are hashed. A delta names
/// a few columns and, in a small cluster, a few origins: a short list is searched faster than
/// a hash map is built and probed.
const LINEAR_SEARCH: usize = 8;

/// The hasher of the dictionaries' maps: fixed, so encoding stays deterministic (the floors use
/// no unseeded randomness), and fast on the short names and 16-byte node ids they hash.
type DictionaryHasher = foldhash::fast::FixedState;

/// The distinct `(table, column)` pairs of `keys`, in order of first appearance, and for each
/// key the position of its pair: the dictionary a delta's encoding names columns by.
fn column_dictionary(keys: &[CellKey]) -> (Vec<(&str, &str)>, Vec<u32>) {
    let mut columns: Vec<(&str, &str)> = Vec::new();
    // Built only once the list outgrows a linear search.
    let mut positions: HashMap<(&str, &str), u32, DictionaryHasher> = HashMap::default();
    let mut of_key = Vec::with_capacity(keys.len());
    // Keys are sorted by (table, row, column): the cells of one column of one table come in
    // runs whenever a row has one cell, so the previous key's pair is tried before the map.
    let mut last: Option<((&str, &str), u32)> = None;
    for key in keys {
        let pair = (key.table(), key.column());
        let position = match last {
            Some((seen, position)) if seen == pair => position,
            _ => {
                let found = if columns.len() <= LINEAR_SEARCH {
                    columns
                        .iter()
                        .position(|seen| *seen == pair)
                        .map(|i| i as u32)
                } else {
                    positions.get(&pair).copied()
                };
                found.unwrap_or_else(|| {
                    let next = columns.len() as u32;
                    columns.push(pair);
                    if columns.len() == LINEAR_SEARCH + 1 {
                        positions.extend(columns.iter().zip(0..).map(|(&c, i)| (c, i)));
                    } else if columns.len() > LINEAR_SEARCH + 1 {
                        positions.insert(pair, next);
                    }
                    next
                })
            }
        };
        last = Some((pair, position));
        of_key.push(position);
    }
    (columns, of_key)
}

/// The distinct origins of the integer sums' entries, in order of first appearance: the
/// dictionary a delta's encoding names them by.
#[derive(Default)]
struct OriginDictionary {
    nodes: Vec<NodeId>,
    /// Every entry's origin by position in `nodes`, entry after entry, sum after sum: found
    /// once while the dictionary is built, so that writing the entries looks nothing up.
    of_entry: Vec<u32>,
    /// Positions by origin, built only once `nodes` outgrows a linear search (then always in
    /// step with it).
    positions: HashMap<NodeId, u32, DictionaryHasher>,
}

impl OriginDictionary {
    fn of(states: &StateList) -> Self {
        let mut dictionary = Self {
            of_entry: Vec::with_capacity(states.buffered_int_entries()),
            ..Self::default()
        };
        for state in states.iter() {
            for (node, _, _) in state.int_sum_entries().into_iter().flatten() {
                let position = dictionary.add(node);
                dictionary.of_entry.push(position);
            }
        }
        dictionary
    }

    /// `node`'s position, listing it unless listed already: one search while the list is
    /// short, one hash-map probe once it is long.
    fn add(&mut self, node: NodeId) -> u32 {
        let next = self.nodes.len() as u32;
        // No index yet: the list is still short enough to search.
        if self.positions.is_empty() {
            if let Some(found) = self.nodes.iter().position(|n| *n == node) {
                return found as u32;
            }
            if self.nodes.len() >= LINEAR_SEARCH {
                // The list outgrows a linear search: index what it holds, then go on by hash.
                self.positions.reserve(2 * (LINEAR_SEARCH + 1));
                self.positions
                    .extend(self.nodes.iter().zip(0..).map(|(&n, i)| (n, i)));
                self.positions.insert(node, next);
            }
            self.nodes.push(node);
            return next;
        }
        match self.positions.entry(node) {
            hashbrown::hash_map::Entry::Occupied(slot) => *slot.get(),
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(next);
                self.nodes.push(node);
                next
            }
        }
    }
}

/// How a cell's state travels: an integer sum as its entries with their origins named by
/// position in the delta's origin dictionary (`origins`, one per entry, in order), any other
/// state as itself.
enum StateRef<'a> {
    IntSum {
        state: ListedState<'a>,
        origins: &'a [u32],
    },
    Other(ListedState<'a>),
}

/// `WireState`'s variants, in the order [`DecodedState`] declares them.
const INT_SUM: u32 = 0;
const OTHER: u32 = 1;

impl Serialize for StateRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StateRef::IntSum { state, origins } => {
                let entries = EntriesRef {
                    state: *state,
                    origins,
                };
                serializer.serialize_newtype_variant("WireState", INT_SUM, "IntSum", &entries)
            }
            StateRef::Other(state) => {
                serializer.serialize_newtype_variant("WireState", OTHER, "Other", state)
            }
        }
    }
}

/// An integer sum's entries as `(origin position, dot counter, partial sum)`.
struct EntriesRef<'a> {
    state: ListedState<'a>,
    /// Each entry's origin position, in the entries' order.
    origins: &'a [u32],
}

impl Serialize for EntriesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Postcard writes a sequence's length first: the iterators must know theirs. The
        // positions were found over the same entries (`OriginDictionary::of`), one each.
        match self.state.int_sum_entries() {
            Some(entries) => serializer.collect_seq(
                entries
                    .zip(self.origins)
                    .map(|((_, seq, partial), &origin)| (origin, seq, partial)),
            ),
            None => serializer.collect_seq(std::iter::empty::<(u32, u64, i128)>()),
        }
    }
}

/// One cell as the wire carries it: its column by position in the delta's dictionary, its row,
/// its state.
#[derive(Serialize)]
struct CellRef<'a> {
    column: u32,
    row: &'a str,
    state: StateRef<'a>,
}

/// A delta's cells by reference, their columns and origins named by position.
struct CellsRef<'a> {
    cells: &'a DeltaCells,
    columns: &'a [u32],
    origins: &'a OriginDictionary,
}

impl Serialize for CellsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let cells = self.cells.iter().zip(self.columns);
        // Where the next integer sum's entries start among the dictionary's positions.
        let mut next_entry = 0;
        serializer.collect_seq(cells.map(|((key, state), &column)| {
            let state = match state.int_sum_entries() {
                Some(entries) => {
                    let start = next_entry;
                    next_entry += entries.len();
                    StateRef::IntSum {
                        state,
                        origins: &self.origins.of_entry[start..next_entry],
                    }
                }
                None => StateRef::Other(state),
            };
            CellRef {
                column,
                row: key.row(),
                state,
            }
        }))
    }
}

/// Written as two dictionaries — the distinct `(table, column)` pairs, then the distinct
/// origins of the integer sums' entries, each once — then the cells, each as `(column position,
/// row, state)`, an integer sum's state as its entries `(origin position, dot counter, partial
/// sum)`: a delta of many counters of few columns carries each name once rather than once per
/// cell.
impl Serialize for DeltaCells {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let (columns, of_key) = column_dictionary(&self.keys);
        let origins = OriginDictionary::of(&self.states);
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element(&columns)?;
        tuple.serialize_element(&origins.nodes)?;
        tuple.serialize_element(&CellsRef {
            cells: self,
            columns: &of_key,
            origins: &origins,
        })?;
        tuple.end()
    }
}

/// A state as decoded: an integer sum's entries name their origins by position.
#[derive(Deserialize)]
#[serde(rename = "WireState")]
enum DecodedState {
    IntSum(
        #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
        SmallVec<[(u32, u64, i128); 2]>,
    ),
    Other(CellState),
}

/// A cell as decoded: the row borrowed from the input where the format allows.
#[derive(Deserialize)]
struct DecodedCell<'a> {
    column: u32,
    #[serde(borrow)]
    row: Cow<'a, str>,
    state: DecodedState,
}

/// Decodes the cells against the dictionaries decoded before them.
struct CellsSeed<'c> {
    columns: &'c [(String, String)],
    origins: &'c [NodeId],
}

impl<'de> DeserializeSeed<'de> for CellsSeed<'_> {
    type Value = DeltaCells;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<DeltaCells, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl CellsSeed<'_> {
    /// Appends a decoded cell, refusing positions beyond the dictionaries.
    fn push(&self, cells: &mut DeltaCells, cell: DecodedCell<'_>) -> Result<(), String> {
        let Some((table, column)) = self.columns.get(cell.column as usize) else {
            return Err("a cell names a column the delta's dictionary does not hold".into());
        };
        if u32::try_from(cell.row.len()).is_err() {
            return Err("a row key of 4 GiB or more".into());
        }
        let key = CellKey::new(table, &cell.row, column);
        match cell.state {
            DecodedState::Other(state) => {
                cells.push(key, state);
                Ok(())
            }
            DecodedState::IntSum(entries) => {
                let mut named = SmallVec::<[(NodeId, u64, i128); 2]>::new();
                for (origin, seq, partial) in entries {
                    let Some(&node) = self.origins.get(origin as usize) else {
                        return Err(
                            "an entry names an origin the delta's dictionary does not hold".into(),
                        );
                    };
                    named.push((node, seq, partial));
                }
                cells
                    .states
                    .push_int_sum_entries(named)
                    .map_err(|e| e.to_string())?;
                cells.keys.push(key);
                Ok(())
            }
        }
    }
}

impl<'de> Visitor<'de> for CellsSeed<'_> {
    type Value = DeltaCells;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of (column, row, cell state)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DeltaCells, A::Error> {
        // Room for what the input claims, up to a mebibyte (as serde's own lists reserve): a
        // claim the bytes cannot back reserves little.
        let claimed = seq.size_hint().unwrap_or(0);
        let cap = (1 << 20) / std::mem::size_of::<(CellKey, CellState)>();
        let mut cells = DeltaCells::with_capacity(claimed.min(cap));
        while let Some(cell) = seq.next_element::<DecodedCell<'de>>()? {
            self.push(&mut cells, cell)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(cells)
    }
}

/// Decoded as the dictionaries, then the cells, each checked as a lone key and state are.
impl<'de> Deserialize<'de> for DeltaCells {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DeltaCellsVisitor;
        impl<'de> Visitor<'de> for DeltaCellsVisitor {
            type Value = DeltaCells;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a column dictionary, an origin dictionary and a sequence of cells")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DeltaCells, A::Error> {
                let columns: Vec<(String, String)> = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                // Every cell copies its pair's names into its key: names no schema accepts
                // would let a few bytes per cell decode to far more.
                if columns.iter().any(|(table, column)| {
                    table.len() > MAX_NAME_LEN || column.len() > MAX_NAME_LEN
                }) {
                    return Err(serde::de::Error::custom(
                        "a table or column name longer than a schema allows",
                    ));
                }
                let origins: Vec<NodeId> = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                let seed = CellsSeed {
                    columns: &columns,
                    origins: &origins,
                };
                seq.next_element_seed(seed)?
                    .ok_or_else(|| serde::de::Error::invalid_length(2, &self))
            }
        }
        deserializer.deserialize_tuple(3, DeltaCellsVisitor)
    }
}

/// The encoding of an origin's cell positions ([`super::OriginRange`]): strictly increasing, so
/// written as the first position, then each next one as its distance from the one before less
/// one — a byte each while an origin touched one cell in 128 or more, where whole positions
/// take two or three bytes in a delta of thousands of cells.
pub(crate) mod ascending_positions {
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `positions`, which must be strictly increasing (as a delta builds them).
    pub(crate) fn serialize<S: Serializer>(
        positions: &[u32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        debug_assert!(positions.windows(2).all(|w| w[0] < w[1]));
        let mut previous: Option<u32> = None;
        serializer.collect_seq(positions.iter().map(|&position| {
            let gap = match previous {
                None => position,
                // Wraps only on positions that break the invariant; their bytes then decode to
                // a position past `u32::MAX` or past the delta's cells, and are refused.
                Some(before) => position.wrapping_sub(before).wrapping_sub(1),
            };
            previous = Some(position);
            gap
        }))
    }

    /// Reads positions written by [`serialize`]; a position past `u32::MAX` is an error.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u32>, D::Error> {
        struct GapsVisitor;
        impl<'de> Visitor<'de> for GapsVisitor {
            type Value = Vec<u32>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence of gaps between increasing positions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
                // Room for what the input claims, up to a mebibyte: a claim the bytes cannot
                // back reserves little.
                let claimed = seq.size_hint().unwrap_or(0);
                let mut positions: Vec<u32> = Vec::with_capacity(claimed.min((1 << 20) / 4));
                while let Some(gap) = seq.next_element::<u32>()? {
                    let next = match positions.last() {
                        None => Some(gap),
                        Some(&before) => before.checked_add(gap).and_then(|p| p.checked_add(1)),
                    };
                    let Some(next) = next else {
                        return Err(serde::de::Error::custom("a cell position past u32::MAX"));
                    };
                    positions.push(next);
                }
                Ok(positions)
            }
        }
        deserializer.deserialize_seq(GapsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use rhizo_algebra::{AlgebraicValue, CellOp, ColumnSpec, MergeType, OpType, ValueType};
    use rhizo_clock::{Dot, NodeId, VectorClock};

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

    /// How the tests write a state by hand: the variants of the wire's `WireState`, in order.
    #[derive(Serialize)]
    enum WireState<'a> {
        IntSum(Vec<(u32, u64, i128)>),
        Other(&'a CellState),
    }

    #[test]
    fn cells_encode_with_dictionaries_and_come_back() {
        let listed: DeltaCells = cells().into_iter().collect();
        let bytes = postcard::to_allocvec(&listed).unwrap();
        // The dictionaries hold each (table, column) pair and each origin once, in order of
        // first appearance; each cell names its pair, and each counter entry its origin, by
        // position.
        let states: Vec<CellState> = cells().into_iter().map(|(_, state)| state).collect();
        let counter = || WireState::IntSum(vec![(0, 1, 1), (1, 1, 2), (2, 1, 3)]);
        let expected = (
            vec![("t", "n"), ("t", "tags")],
            vec![
                NodeId::numbered(0),
                NodeId::numbered(1),
                NodeId::numbered(2),
            ],
            vec![
                (0u32, "a", counter()),
                (1, "b", WireState::Other(&states[1])),
                (0, "c", counter()),
            ],
        );
        assert_eq!(bytes, postcard::to_allocvec(&expected).unwrap());
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
    fn no_cells_encode_as_three_empty_lists() {
        let bytes = postcard::to_allocvec(&DeltaCells::new()).unwrap();
        assert_eq!(bytes, [0, 0, 0]);
        let decoded: DeltaCells = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, DeltaCells::new());
    }

    fn refused(bytes: &[u8]) {
        let err = postcard::from_bytes::<DeltaCells>(bytes).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }

    #[test]
    fn positions_beyond_the_dictionaries_and_uncanonical_sums_are_refused() {
        let n0 = vec![NodeId::numbered(0)];
        let one = |origin| WireState::IntSum(vec![(origin, 1, 1)]);
        let beyond = (
            vec![("t", "n")],
            &n0,
            vec![(0u32, "a", one(0)), (1, "c", one(0))],
        );
        refused(&postcard::to_allocvec(&beyond).unwrap());
        let beyond = (vec![("t", "n")], &n0, vec![(0u32, "a", one(1))]);
        refused(&postcard::to_allocvec(&beyond).unwrap());
        // Entries out of origin order, or with sequence number 0, are not a canonical sum.
        let two = vec![NodeId::numbered(0), NodeId::numbered(1)];
        let backwards = WireState::IntSum(vec![(1, 1, 1), (0, 1, 1)]);
        refused(
            &postcard::to_allocvec(&(vec![("t", "n")], &two, vec![(0u32, "a", backwards)]))
                .unwrap(),
        );
        let unborn = WireState::IntSum(vec![(0, 0, 1)]);
        refused(
            &postcard::to_allocvec(&(vec![("t", "n")], &n0, vec![(0u32, "a", unborn)])).unwrap(),
        );
        // Names longer than any schema allows are refused before any cell copies them.
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for dictionary in [vec![(long.as_str(), "n")], vec![("t", long.as_str())]] {
            refused(&postcard::to_allocvec(&(dictionary, &n0, vec![(0u32, "a", one(0))])).unwrap());
        }
        // Dictionaries with nothing behind them are truncated, not empty.
        let bytes = postcard::to_allocvec(&(vec![("t", "n")], &n0)).unwrap();
        assert!(postcard::from_bytes::<DeltaCells>(&bytes).is_err());
    }

    #[test]
    fn many_counters_of_one_column_carry_each_name_and_origin_once() {
        let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mut state = CellState::new(&sum);
        state
            .apply_add_int(1, Dot::new(NodeId::numbered(0), 1).unwrap())
            .unwrap();
        let mut rows: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        rows.sort();
        let listed: DeltaCells = rows
            .iter()
            .map(|row| (CellKey::new("counters", row, "value"), state.clone()))
            .collect();
        let pairs: Vec<(CellKey, CellState)> = listed.clone().into_cells().collect();
        let compact = postcard::to_allocvec(&listed).unwrap();
        let whole = postcard::to_allocvec(&pairs).unwrap();
        // Each cell saves the two names and their lengths less its column position, and its
        // entry's origin ("n0" and its length) less the origin's position.
        let saved = ("counters".len() + 1 + "value".len() + 1 - 1) + (2 + 1 - 1);
        let dictionaries = (1 + "counters".len() + 1 + "value".len() + 1) + (1 + 2 + 1);
        assert_eq!(compact.len() + 100 * saved, whole.len() + dictionaries);
        assert_eq!(
            postcard::from_bytes::<DeltaCells>(&compact).unwrap(),
            listed
        );
    }

    #[test]
    fn restricted_cells_carry_what_restriction_keeps() {
        let mut known = VectorClock::new();
        known.set(NodeId::numbered(1), 1);
        let mut listed = DeltaCells::with_capacity(3);
        let mut cloned = DeltaCells::new();
        for (key, state) in cells() {
            listed.push_restricted(
                key.clone(),
                &state,
                &known.lookup_in(&mut Default::default()),
            );
            cloned.push_cloned(key, &state.restricted(&known));
        }
        assert_eq!(listed, cloned);
        let expected: Vec<_> = cells()
            .into_iter()
            .map(|(key, state)| (key, state.restricted(&known)))
            .collect();
        assert_eq!(listed.into_cells().collect::<Vec<_>>(), expected);
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Positions(#[serde(with = "ascending_positions")] Vec<u32>);

    #[test]
    fn positions_travel_as_gaps_and_come_back() {
        let positions = Positions(vec![3, 4, 5, 200, 70_000]);
        let bytes = postcard::to_allocvec(&positions).unwrap();
        // 3, then gaps 0, 0, 194 and 69,799 as varints.
        let gaps = postcard::to_allocvec(&vec![3u32, 0, 0, 194, 69_799]).unwrap();
        assert_eq!(bytes, gaps);
        assert_eq!(
            postcard::from_bytes::<Positions>(&bytes).unwrap(),
            positions
        );
        let empty = postcard::to_allocvec(&Positions(Vec::new())).unwrap();
        assert_eq!(
            postcard::from_bytes::<Positions>(&empty).unwrap(),
            Positions(Vec::new())
        );
        // Gaps that add up past u32::MAX are refused.
        let past = postcard::to_allocvec(&vec![u32::MAX - 1, 0, 0]).unwrap();
        let err = postcard::from_bytes::<Positions>(&past).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }

    /// Cells of `columns` columns whose counters name origins from `origins`: each `(column,
    /// row)` a cell, its entries one per origin listed.
    fn counters(
        cells: &std::collections::BTreeMap<(u8, u16), std::collections::BTreeSet<u32>>,
    ) -> DeltaCells {
        let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mut listed: Vec<(CellKey, CellState)> = cells
            .iter()
            .map(|((column, row), origins)| {
                let mut state = CellState::new(&sum);
                for &origin in origins {
                    let dot = Dot::new(NodeId::numbered(origin), 1).unwrap();
                    state.apply_add_int(i64::from(origin) + 1, dot).unwrap();
                }
                let key = CellKey::new("t", &format!("r{row:03}"), &format!("c{column:02}"));
                (key, state)
            })
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        listed.into_iter().collect()
    }

    proptest::proptest! {
        /// Counters copied into a delta's buffer (as a replica builds a delta) encode to the
        /// same bytes as the same states held whole, whatever their rows, origins, dot counters
        /// and partials: each entry's origin position, found once while the dictionary is
        /// built, is the one a search of the dictionary gives.
        #[test]
        fn prop_buffered_counters_encode_as_whole_ones_do(
            cells in proptest::collection::btree_map(
                "[a-z0-9-]{0,40}",
                proptest::collection::btree_map(0u32..40, (1u64.., proptest::prelude::any::<i64>()), 1..6),
                0..40,
            )
        ) {
            let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
            let (mut buffered, mut whole) = (DeltaCells::new(), DeltaCells::new());
            for (row, adds) in &cells {
                let mut state = CellState::new(&sum);
                for (&origin, &(seq, amount)) in adds {
                    let dot = Dot::new(NodeId::numbered(origin), seq).unwrap();
                    state.apply_add_int(amount, dot).unwrap();
                }
                let key = CellKey::new("table", row, "n");
                buffered.push_cloned(key.clone(), &state);
                whole.push(key, state);
            }
            let bytes = postcard::to_allocvec(&buffered).unwrap();
            proptest::prop_assert_eq!(&bytes, &postcard::to_allocvec(&whole).unwrap());
        }
    }

    proptest::proptest! {
        /// However many columns and origins a delta names (few are searched in place, many
        /// hashed), its dictionaries list each once in order of first appearance and its cells
        /// name them by position: the bytes are those written by hand from a plain search.
        #[test]
        fn prop_dictionaries_of_any_size_list_by_first_appearance(
            cells in proptest::collection::btree_map(
                (0u8..20, 0u16..40),
                proptest::collection::btree_set(0u32..30, 1..12),
                0..60,
            )
        ) {
            let listed = counters(&cells);
            let mut columns: Vec<(&str, &str)> = Vec::new();
            let mut origins: Vec<NodeId> = Vec::new();
            let mut wire = Vec::new();
            for (key, state) in listed.iter() {
                let pair = (key.table(), key.column());
                if !columns.contains(&pair) {
                    columns.push(pair);
                }
                let column = columns.iter().position(|c| *c == pair).unwrap() as u32;
                let mut entries = Vec::new();
                for (node, seq, partial) in state.int_sum_entries().unwrap() {
                    if !origins.contains(&node) {
                        origins.push(node);
                    }
                    let origin = origins.iter().position(|n| *n == node).unwrap() as u32;
                    entries.push((origin, seq, partial));
                }
                wire.push((column, key.row(), WireState::IntSum(entries)));
            }
            let bytes = postcard::to_allocvec(&listed).unwrap();
            proptest::prop_assert_eq!(
                &bytes,
                &postcard::to_allocvec(&(&columns, &origins, &wire)).unwrap()
            );
            proptest::prop_assert_eq!(postcard::from_bytes::<DeltaCells>(&bytes).unwrap(), listed);
        }
    }

    proptest::proptest! {
        /// Any strictly increasing positions come back as they went, in at most the bytes of
        /// the positions themselves.
        #[test]
        fn prop_positions_round_trip(set in proptest::collection::btree_set(proptest::prelude::any::<u32>(), 0..64)) {
            let positions = Positions(set.into_iter().collect());
            let bytes = postcard::to_allocvec(&positions).unwrap();
            proptest::prop_assert!(bytes.len() <= postcard::to_allocvec(&positions.0).unwrap().len());
            proptest::prop_assert_eq!(postcard::from_bytes::<Positions>(&bytes).unwrap(), positions);
        }
    }
}
