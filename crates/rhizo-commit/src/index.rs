//! Which cells each origin's recent updates touched: what lets a replica send a peer only the
//! cells changed since the peer's clock.

use std::collections::BTreeMap;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::CellKey;
use crate::cells::{CellId, CellStore};

/// For one origin: each cell touched by its untrimmed updates, filed under the last update that
/// touched it.
///
/// `touched_since(seen)` walks only the updates after `seen`, so building a delta costs the cells
/// changed, not the history. Updates at or below the causally stable point are trimmed; a peer
/// behind `trimmed_upto` cannot be served from the index and gets a snapshot instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginIndex {
    trimmed_upto: u64,
    /// The last counter that touched each cell.
    latest: HashMap<CellId, u64, FixedState>,
    /// Cells by the counter that touched them. An entry is stale when `latest` has moved on; stale
    /// entries are skipped on reads and dropped on trims.
    by_counter: BTreeMap<u64, Vec<CellId>>,
}

impl OriginIndex {
    /// Updates of this origin up to here are no longer indexed.
    pub(crate) fn trimmed_upto(&self) -> u64 {
        self.trimmed_upto
    }

    /// Files `cells` under the origin's update `counter` (counters arrive in increasing order).
    pub(crate) fn record(&mut self, counter: u64, cells: impl IntoIterator<Item = CellId>) {
        if counter <= self.trimmed_upto {
            return;
        }
        // Sized from the iterator, so that filing a large delta grows the map and list once.
        let cells = cells.into_iter();
        let expected = cells.size_hint().0;
        self.latest.reserve(expected);
        let mut filed = Vec::with_capacity(expected);
        for cell in cells {
            let last = self.latest.entry(cell).or_insert(0);
            if *last < counter {
                *last = counter;
                filed.push(cell);
            }
        }
        if filed.len() * 2 < filed.capacity() {
            // Kept until trimmed: do not hold room for cells that were not filed.
            filed.shrink_to_fit();
        }
        if !filed.is_empty() {
            self.by_counter.entry(counter).or_default().extend(filed);
        }
    }

    /// How many cells the index holds (an upper bound on what [`Self::touched_since`] lists).
    pub(crate) fn cells_indexed(&self) -> usize {
        self.latest.len()
    }

    /// The cells touched by this origin's updates after `seen`, each once.
    pub(crate) fn touched_since(&self, seen: u64) -> impl Iterator<Item = CellId> + '_ {
        let latest = &self.latest;
        self.by_counter
            .range(seen.saturating_add(1)..)
            .flat_map(move |(counter, cells)| {
                cells
                    .iter()
                    .copied()
                    .filter(move |c| latest.get(c) == Some(counter))
            })
    }

    /// Forgets updates up to `stable`; returns how many index entries were dropped.
    pub(crate) fn trim(&mut self, stable: u64) -> usize {
        if stable <= self.trimmed_upto {
            return 0;
        }
        self.trimmed_upto = stable;
        if self
            .by_counter
            .last_key_value()
            .is_none_or(|(last, _)| *last <= stable)
        {
            // Everything goes (the usual case once every member holds everything): no entry to
            // look up, and the room is freed, as a quiet replica needs none.
            let count = self.by_counter.values().map(Vec::len).sum();
            self.by_counter.clear();
            self.latest = HashMap::default();
            return count;
        }
        let keep = self.by_counter.split_off(&(stable + 1));
        let dropped = std::mem::replace(&mut self.by_counter, keep);
        let mut count = 0;
        for (counter, cells) in dropped {
            for cell in cells {
                if self.latest.get(&cell) == Some(&counter) {
                    self.latest.remove(&cell);
                }
                count += 1;
            }
        }
        count
    }

    /// Cells currently indexed.
    pub(crate) fn len(&self) -> usize {
        self.latest.len()
    }

    /// The live entries in canonical form: counters increasing, keys sorted within a counter.
    pub(crate) fn image(&self, store: &CellStore) -> IndexImage {
        let entries = self
            .by_counter
            .iter()
            .map(|(counter, cells)| {
                let mut live: Vec<CellKey> = cells
                    .iter()
                    .filter(|c| self.latest.get(*c) == Some(counter))
                    .map(|&c| store.key(c).clone())
                    .collect();
                live.sort_unstable();
                live.dedup();
                (*counter, live)
            })
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
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
    use rhizo_algebra::{CellState, ColumnSpec, MergeType, ValueType};

    use super::*;

    /// A store holding cells "a" to "e" (ids 0 to 4).
    fn store() -> CellStore {
        let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
        let mut store = CellStore::default();
        for row in ["a", "b", "c", "d", "e"] {
            store.insert_new(CellKey::new("t", row, "c"), CellState::new(&spec));
        }
        store
    }

    const A: CellId = 0;
    const B: CellId = 1;
    const C: CellId = 2;

    #[test]
    fn a_cell_is_listed_once_under_its_last_update() {
        let mut index = OriginIndex::default();
        index.record(1, [A, B]);
        index.record(2, [A]);
        index.record(5, [C, A]);
        let since = |seen| index.touched_since(seen).collect::<Vec<_>>();
        assert_eq!(since(0), [B, C, A]);
        assert_eq!(since(1), [C, A]);
        assert_eq!(since(4), [C, A]);
        assert!(since(5).is_empty());
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
        assert_eq!(index.touched_since(2).collect::<Vec<_>>(), [A]);
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
}
