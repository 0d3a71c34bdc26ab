//! Which cells each origin's recent updates touched: what lets a replica send a peer only the
//! cells changed since the peer's clock.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::CellKey;
use crate::cells::{CellId, CellStore};

/// For one origin: the cells touched by its untrimmed updates, as filings `(counter, cell)` kept
/// in counter order: a column of cells, and a run per counter saying where its cells start.
///
/// A cell touched again by a later update is filed again; its earlier filing stays (stale) until
/// trimmed. A cell's effective counter is its latest filing, and "touched after `seen`" holds
/// exactly when some filing is after `seen`, so a stale filing never changes which cells are
/// listed, only how often: [`Self::touched_since`] may list a cell more than once and its callers
/// deduplicate. Without a map from cell to latest counter, a filing costs its cell id, and each
/// update (often many cells: a delta's or a sync's worth) one run.
///
/// `touched_since(seen)` finds the first run after `seen` by binary search and walks only what
/// follows, so building a delta costs the filings since the peer's clock, not the history.
/// Updates at or below the causally stable point are trimmed by dropping a prefix of the
/// columns; a peer behind `trimmed_upto` cannot be served from the index and gets a snapshot
/// instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginIndex {
    trimmed_upto: u64,
    /// The counter of each run, strictly increasing (binary search relies on it).
    run_counters: VecDeque<u64>,
    /// Where each run's cells start, as a position among every filing this index ever held
    /// (trimmed ones included), so that trimming a prefix moves no run's start.
    run_starts: VecDeque<u64>,
    /// The position, counted as in `run_starts`, of the first filing `cells` holds.
    first: u64,
    /// The cell of each filing, runs one after the other.
    cells: VecDeque<CellId>,
}

impl OriginIndex {
    /// Updates of this origin up to here are no longer indexed.
    pub(crate) fn trimmed_upto(&self) -> u64 {
        self.trimmed_upto
    }

    /// Where run `run` starts in `cells` (the end of `cells` for the run after the last).
    fn offset(&self, run: usize) -> usize {
        self.run_starts
            .get(run)
            .map_or(self.cells.len(), |start| (start - self.first) as usize)
    }

    /// Files `cells` under the origin's update `counter`.
    ///
    /// Counters arrive in non-decreasing order, so filings are appended (to the last run when
    /// its counter is `counter`); one that arrives out of order is inserted where its counter
    /// belongs, as the binary search in [`Self::touched_since`] and [`Self::trim`] requires runs
    /// sorted by counter.
    pub(crate) fn record(&mut self, counter: u64, cells: impl IntoIterator<Item = CellId>) {
        if counter <= self.trimmed_upto {
            return;
        }
        let run = self.run_counters.partition_point(|&c| c <= counter);
        let at = self.offset(run);
        let filed = if run == self.run_counters.len() {
            self.cells.extend(cells);
            self.cells.len() - at
        } else {
            let mut filed = 0;
            for cell in cells {
                self.cells.insert(at + filed, cell);
                filed += 1;
            }
            for start in self.run_starts.range_mut(run..) {
                *start += filed as u64;
            }
            filed
        };
        if filed > 0 && (run == 0 || self.run_counters[run - 1] != counter) {
            self.run_counters.insert(run, counter);
            self.run_starts.insert(run, self.first + at as u64);
        }
    }

    /// The cells touched by this origin's updates after `seen`, each at least once (a cell
    /// touched by several of those updates may be listed once per update).
    pub(crate) fn touched_since(&self, seen: u64) -> impl ExactSizeIterator<Item = CellId> + '_ {
        let run = self.run_counters.partition_point(|&c| c <= seen);
        self.cells.range(self.offset(run)..).copied()
    }

    /// Forgets updates up to `stable`; returns how many filings were dropped.
    pub(crate) fn trim(&mut self, stable: u64) -> usize {
        if stable <= self.trimmed_upto {
            return 0;
        }
        self.trimmed_upto = stable;
        let runs = self.run_counters.partition_point(|&c| c <= stable);
        let dropped = self.offset(runs);
        if runs == self.run_counters.len() {
            // Everything goes (the usual case once every member holds everything): the room is
            // freed too, as a quiet replica needs none.
            *self = OriginIndex {
                trimmed_upto: stable,
                ..OriginIndex::default()
            };
            return dropped;
        }
        // Dropping a prefix of a ring buffer moves its head, not the filings that stay.
        self.run_counters.drain(..runs);
        self.run_starts.drain(..runs);
        self.cells.drain(..dropped);
        self.first += dropped as u64;
        if self.cells.len() < self.cells.capacity() / 4 {
            // Room held for a burst that was trimmed away: halving what stays keeps the
            // shrinking amortised against the filings that were dropped.
            self.cells.shrink_to(self.cells.len() * 2);
            self.run_counters.shrink_to(self.run_counters.len() * 2);
            self.run_starts.shrink_to(self.run_starts.len() * 2);
        }
        dropped
    }

    /// Filings held: one per (update, cell) not yet trimmed, a stale one (of a cell filed again
    /// later) included. It bounds what [`Self::touched_since`] lists and is zero once every
    /// update of the origin is causally stable.
    pub(crate) fn len(&self) -> usize {
        self.cells.len()
    }

    /// Each indexed cell under its latest counter, in canonical form: counters increasing, keys
    /// sorted within a counter. Stale filings do not appear, so the image depends only on which
    /// cells were touched last by which update, not on how often they were filed.
    pub(crate) fn image(&self, store: &CellStore) -> IndexImage {
        let mut latest: Vec<(CellId, u64)> = Vec::with_capacity(self.cells.len());
        for (run, &counter) in self.run_counters.iter().enumerate() {
            let filings = self.cells.range(self.offset(run)..self.offset(run + 1));
            latest.extend(filings.map(|&cell| (cell, counter)));
        }
        // By cell, latest counter first: the first filing of each cell is the one that counts.
        latest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        latest.dedup_by_key(|(cell, _)| *cell);
        let mut filed: Vec<(u64, &CellKey)> = latest
            .into_iter()
            .map(|(cell, counter)| (counter, store.key(cell)))
            .collect();
        filed.sort_unstable();
        let mut entries: Vec<(u64, Vec<CellKey>)> = Vec::new();
        for (counter, key) in filed {
            match entries.last_mut() {
                Some((last, keys)) if *last == counter => keys.push(key.clone()),
                _ => entries.push((counter, vec![key.clone()])),
            }
        }
        IndexImage {
            trimmed_upto: self.trimmed_upto,
            entries,
        }
    }

    /// Rebuilds an index from its image, naming cells by their ids in `store`. Returns `None` if
    /// the image is malformed: counters not increasing past the trimmed point, or a cell the
    /// store does not hold.
    pub(crate) fn from_image(image: IndexImage, store: &CellStore) -> Option<Self> {
        let entries = &image.entries;
        if !entries.windows(2).all(|w| w[0].0 < w[1].0)
            || entries
                .first()
                .is_some_and(|(c, _)| *c <= image.trimmed_upto)
        {
            return None;
        }
        let mut index = OriginIndex {
            trimmed_upto: image.trimmed_upto,
            ..OriginIndex::default()
        };
        for (counter, keys) in image.entries {
            let cells: Option<Vec<CellId>> = keys.iter().map(|k| store.find(k)).collect();
            index.record(counter, cells?);
        }
        Some(index)
    }
}

/// An origin's index as it is made durable: which cells each of its untrimmed updates touched
/// last, in canonical order (counters increasing, keys sorted within a counter).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexImage {
    /// Updates of the origin up to here are no longer indexed.
    pub(crate) trimmed_upto: u64,
    /// The cells filed under each update counter.
    pub(crate) entries: Vec<(u64, Vec<CellKey>)>,
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use rhizo_algebra::{CellState, ColumnSpec, MergeType, ValueType};

    use super::*;

    /// A store holding cells "a" to "h" (ids 0 to 7).
    fn store() -> CellStore {
        let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mut store = CellStore::default();
        for row in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            store.insert_new(CellKey::new("t", row, "c"), CellState::new(&spec));
        }
        store
    }

    const A: CellId = 0;
    const B: CellId = 1;
    const C: CellId = 2;

    fn touched(index: &OriginIndex, seen: u64) -> BTreeSet<CellId> {
        index.touched_since(seen).collect()
    }

    #[test]
    fn a_cell_is_listed_after_seen_when_its_last_update_is() {
        let mut index = OriginIndex::default();
        index.record(1, [A, B]);
        index.record(2, [A]);
        index.record(5, [C, A]);
        assert_eq!(touched(&index, 0), BTreeSet::from([A, B, C]));
        assert_eq!(touched(&index, 1), BTreeSet::from([A, C]));
        assert_eq!(touched(&index, 4), BTreeSet::from([A, C]));
        assert!(touched(&index, 5).is_empty());
        assert_eq!(index.touched_since(1).len(), 3, "A once per later update");
    }

    #[test]
    fn a_filing_out_of_order_is_found_by_its_counter() {
        let mut index = OriginIndex::default();
        index.record(2, [A]);
        index.record(6, [B]);
        index.record(4, [C]);
        assert_eq!(touched(&index, 3), BTreeSet::from([B, C]));
        assert_eq!(touched(&index, 4), BTreeSet::from([B]));
        assert_eq!(index.trim(4), 2);
        assert_eq!(touched(&index, 0), BTreeSet::from([B]));
    }

    #[test]
    fn trimming_a_prefix_keeps_the_later_filings() {
        let mut index = OriginIndex::default();
        for counter in 1..=100 {
            index.record(counter, [counter as CellId % 5]);
        }
        assert_eq!(index.trim(90), 90);
        assert_eq!(index.len(), 10);
        assert!(index.cells.capacity() <= 40, "trimmed room is given back");
        assert_eq!(touched(&index, 95), BTreeSet::from([1, 2, 3, 4, 0]));
        assert_eq!(index.touched_since(97).collect::<Vec<_>>(), [3, 4, 0]);
    }

    #[test]
    fn trimming_everything_forgets_every_entry() {
        let mut index = OriginIndex::default();
        index.record(1, [A, B]);
        index.record(3, [A, C]);
        assert_eq!(index.trim(3), 4, "every filed entry, stale ones included");
        assert_eq!(index.len(), 0);
        assert_eq!(index.trimmed_upto(), 3);
        assert_eq!(index.touched_since(0).count(), 0);
        assert_eq!(index.cells.capacity(), 0, "a quiet index holds no room");
        index.record(4, [B]);
        assert_eq!(index.touched_since(3).collect::<Vec<_>>(), [B]);
    }

    #[test]
    fn trimming_forgets_stable_updates_only() {
        let mut index = OriginIndex::default();
        index.record(1, [A, B]);
        index.record(3, [A]);
        assert_eq!(index.trim(2), 2);
        assert_eq!(index.trimmed_upto(), 2);
        assert_eq!(touched(&index, 2), BTreeSet::from([A]));
        assert_eq!(index.len(), 1);
        index.record(2, [4]); // at or below the trimmed point: ignored
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_image_round_trips_the_live_entries_in_key_order() {
        let store = store();
        let mut index = OriginIndex::default();
        index.record(1, [B, A]);
        index.record(2, [B]);
        index.trim(0);
        let image = index.image(&store);
        assert_eq!(
            image.entries,
            vec![
                (1, vec![store.key(A).clone()]),
                (2, vec![store.key(B).clone()])
            ]
        );
        let back = OriginIndex::from_image(image.clone(), &store).unwrap();
        assert_eq!(back.image(&store), image);
        let bytes = postcard::to_allocvec(&image).unwrap();
        assert_eq!(postcard::from_bytes::<IndexImage>(&bytes).unwrap(), image);
    }

    #[test]
    fn a_malformed_image_is_refused() {
        let store = store();
        let key = |row| CellKey::new("t", row, "c");
        let unordered = IndexImage {
            trimmed_upto: 0,
            entries: vec![(2, vec![key("a")]), (1, vec![key("b")])],
        };
        let below_trim = IndexImage {
            trimmed_upto: 3,
            entries: vec![(3, vec![key("a")])],
        };
        let unknown_cell = IndexImage {
            trimmed_upto: 0,
            entries: vec![(1, vec![key("zz")])],
        };
        for image in [unordered, below_trim, unknown_cell] {
            assert!(OriginIndex::from_image(image, &store).is_none());
        }
    }

    /// The index as a map from each cell to the last update that touched it: what the filings
    /// must answer, whatever stale filings they keep.
    #[derive(Debug, Default)]
    struct Model {
        trimmed_upto: u64,
        latest: BTreeMap<CellId, u64>,
    }

    impl Model {
        fn record(&mut self, counter: u64, cells: &[CellId]) {
            if counter <= self.trimmed_upto {
                return;
            }
            for &cell in cells {
                let last = self.latest.entry(cell).or_insert(0);
                *last = (*last).max(counter);
            }
        }

        fn touched_since(&self, seen: u64) -> BTreeSet<CellId> {
            let after = self.latest.iter().filter(|(_, counter)| **counter > seen);
            after.map(|(cell, _)| *cell).collect()
        }

        fn trim(&mut self, stable: u64) {
            if stable > self.trimmed_upto {
                self.trimmed_upto = stable;
                self.latest.retain(|_, counter| *counter > stable);
            }
        }

        fn image(&self, store: &CellStore) -> IndexImage {
            let mut by_counter: BTreeMap<u64, Vec<CellKey>> = BTreeMap::new();
            for (&cell, &counter) in &self.latest {
                by_counter
                    .entry(counter)
                    .or_default()
                    .push(store.key(cell).clone());
            }
            for keys in by_counter.values_mut() {
                keys.sort_unstable();
            }
            IndexImage {
                trimmed_upto: self.trimmed_upto,
                entries: by_counter.into_iter().collect(),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Files cells under the last counter moved by `step` (mostly forward).
        Record { step: i64, cells: Vec<CellId> },
        /// Trims up to `back` below the last counter.
        Trim { back: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-3i64..4, proptest::collection::vec(0..8 as CellId, 0..5))
                .prop_map(|(step, cells)| Op::Record { step, cells }),
            1 => (0u64..6).prop_map(|back| Op::Trim { back }),
        ]
    }

    proptest! {
        /// Filings answer every question as the map from cell to last update does: the cells
        /// touched after any point, the trimmed point, the image (byte for byte), and the image
        /// of the index rebuilt from it; they never hold fewer entries than the map.
        #[test]
        fn the_filings_answer_as_the_map_of_last_updates(ops in proptest::collection::vec(op(), 0..40)) {
            let store = store();
            let (mut index, mut model) = (OriginIndex::default(), Model::default());
            let (mut last, mut top) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Record { step, cells } => {
                        last = last.saturating_add_signed(step).max(1);
                        top = top.max(last);
                        index.record(last, cells.iter().copied());
                        model.record(last, &cells);
                    }
                    Op::Trim { back } => {
                        let stable = last.saturating_sub(back);
                        index.trim(stable);
                        model.trim(stable);
                    }
                }
                prop_assert_eq!(index.trimmed_upto(), model.trimmed_upto);
                // Runs: counters strictly increasing, none empty, the first at the front.
                let counters: Vec<u64> = index.run_counters.iter().copied().collect();
                prop_assert!(counters.windows(2).all(|w| w[0] < w[1]), "{:?}", counters);
                let offsets: Vec<usize> = (0..=counters.len()).map(|r| index.offset(r)).collect();
                prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{:?}", offsets);
                prop_assert_eq!(offsets[0], 0);
                prop_assert!(index.len() >= model.latest.len());
                for seen in 0..=top + 1 {
                    prop_assert_eq!(touched(&index, seen), model.touched_since(seen), "seen {}", seen);
                }
                let image = index.image(&store);
                prop_assert_eq!(&image, &model.image(&store));
                let back = OriginIndex::from_image(image.clone(), &store).unwrap();
                prop_assert_eq!(back.image(&store), image);
            }
            index.trim(top);
            prop_assert_eq!(index.len(), 0);
        }
    }
}
