//! The replica's cells, each named by a dense [`CellId`] for as long as the replica lives.
//!
//! A key is hashed once per operation, when it is looked up; everything inside the replica that
//! refers to a cell afterwards (the per-origin index, the cells touched since the last sync, the
//! tombstoned cells) holds a 4-byte id instead of three strings, so filing, deduplicating and
//! sorting cells costs integers, not string hashes and clones.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use rhizo_algebra::CellState;

use crate::CellKey;

/// A cell's position in its replica's [`CellStore`]. Cells are never removed, so an id stays
/// valid for the life of the store; ids are private to one replica and never leave it.
pub(crate) type CellId = u32;

/// Cells by id, with a hash index from key to id.
#[derive(Debug, Clone, Default)]
pub(crate) struct CellStore {
    keys: Vec<CellKey>,
    states: Vec<CellState>,
    ids: HashTable<CellId>,
    hasher: FixedState,
    /// Each ranked cell's position in key order (`rank[id]` for `id < rank.len()`). Cells
    /// inserted since the ranking compare by key; the ranking is rebuilt once they are an eighth
    /// of the store, so sorting cells costs integer comparisons in the steady state and the
    /// string comparisons of re-ranking stay amortised over the insertions.
    rank: Vec<u32>,
}

impl CellStore {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn hash(&self, key: &CellKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The id of `key`, if the store holds it.
    pub(crate) fn find(&self, key: &CellKey) -> Option<CellId> {
        self.locate(key).ok()
    }

    /// The id of `key`, or the hash to insert it under ([`Self::insert_hashed`]) without
    /// hashing it again.
    pub(crate) fn locate(&self, key: &CellKey) -> Result<CellId, u64> {
        let hash = self.hash(key);
        let keys = &self.keys;
        match self.ids.find(hash, |&id| keys[id as usize] == *key) {
            Some(&id) => Ok(id),
            None => Err(hash),
        }
    }

    /// Inserts a cell [`Self::locate`] found absent, under the hash it returned.
    pub(crate) fn insert_hashed(&mut self, hash: u64, key: CellKey, state: CellState) -> CellId {
        debug_assert!(self.find(&key).is_none(), "{key} is already held");
        debug_assert_eq!(hash, self.hash(&key), "the hash locate returned");
        self.push(hash, key, state)
    }

    fn push(&mut self, hash: u64, key: CellKey, state: CellState) -> CellId {
        let id = CellId::try_from(self.keys.len()).expect("fewer than 2^32 cells");
        self.keys.push(key);
        self.states.push(state);
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.ids
            .insert_unique(hash, id, |&id| hasher.hash_one(&keys[id as usize]));
        id
    }

    /// Makes room for `additional` new cells, so that inserting them grows nothing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let len = self.keys.len();
        if self.keys.capacity() - len < additional {
            // Grown by what is asked or a quarter of what is held, whichever is more, rather
            // than doubled: the keys and states are most of a replica's own bytes beside its
            // cells' entries, a replica receiving a key space from its peers grows by a delta's
            // new cells at a time, and doubling would leave up to half of both vectors unused
            // for good. A quarter still bounds the copying of every growth to a constant per
            // cell inserted.
            let grow = additional.max(len / 4);
            self.keys.reserve_exact(grow);
            self.states.reserve_exact(grow);
        }
        let (keys, hasher) = (&self.keys, &self.hasher);
        let rehash = |&id: &CellId| hasher.hash_one(&keys[id as usize]);
        if self.ids.capacity() - self.ids.len() >= additional {
            return;
        }
        // Rebuilt in id order rather than grown in place: growing re-hashes each id in the
        // order of its bucket, a read of a key anywhere in the store per cell, where in id
        // order the keys are read as they lie. The new table has the room growing would give
        // it (at least twice the old), so insertions stay amortised.
        let room = (self.ids.len() + additional).max(self.ids.capacity() + 1);
        let mut ids = HashTable::with_capacity(room);
        for (id, key) in keys.iter().enumerate() {
            ids.insert_unique(hasher.hash_one(key), id as CellId, rehash);
        }
        self.ids = ids;
    }

    /// Inserts a cell the store does not hold yet.
    pub(crate) fn insert_new(&mut self, key: CellKey, state: CellState) -> CellId {
        let hash = self.hash(&key);
        self.insert_hashed(hash, key, state)
    }

    pub(crate) fn get(&self, key: &CellKey) -> Option<&CellState> {
        self.find(key).map(|id| &self.states[id as usize])
    }

    pub(crate) fn key(&self, id: CellId) -> &CellKey {
        &self.keys[id as usize]
    }

    pub(crate) fn state(&self, id: CellId) -> &CellState {
        &self.states[id as usize]
    }

    pub(crate) fn state_mut(&mut self, id: CellId) -> &mut CellState {
        &mut self.states[id as usize]
    }

    /// Every cell's state, by id: for a loop over many cells that holds the slice once.
    pub(crate) fn states(&self) -> &[CellState] {
        &self.states
    }

    /// The ranks of the cells ranked (`ranks()[id]`, ids below its length), as [`CellStore::rank`]
    /// gives them one by one.
    pub(crate) fn ranks(&self) -> &[u32] {
        &self.rank
    }

    /// Every cell's state, by id: for a loop over many cells that holds the slice once.
    pub(crate) fn states_mut(&mut self) -> &mut [CellState] {
        &mut self.states
    }

    /// Every cell, in id (insertion) order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&CellKey, &CellState)> + '_ {
        self.keys.iter().zip(&self.states)
    }

    /// Rebuilds the ranking if enough cells were inserted since the last one.
    ///
    /// Only the cells inserted since the last ranking are sorted by key; the ranked ones are
    /// already in key order (placed by rank, no comparison), and the two runs are merged. A
    /// store that grows by a share of itself at a time (a replica receiving a key space from its
    /// peers) then pays for sorting what is new and one pass over the rest, not a sort of every
    /// key at each refresh.
    pub(crate) fn refresh_ranks(&mut self) {
        let ranked = self.rank.len();
        let unranked = self.keys.len() - ranked;
        if unranked == 0 || unranked * 8 < self.keys.len() {
            return;
        }
        let keys = &self.keys;
        let mut old: Vec<CellId> = vec![0; ranked];
        for (id, &rank) in self.rank.iter().enumerate() {
            old[rank as usize] = id as CellId;
        }
        let mut fresh: Vec<CellId> = (ranked as CellId..keys.len() as CellId).collect();
        // A stable sort, because it finds runs already in order and merges them: cells come
        // in a delta's key order, so the fresh ones are a few sorted runs (one per delta), and
        // merging those compares far fewer keys than sorting them afresh.
        fresh.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
        self.rank.resize(keys.len(), 0);
        let (mut i, mut j) = (0, 0);
        for position in 0..keys.len() as u32 {
            // Keys are distinct: exactly one of the two heads comes first.
            let take_old = j == fresh.len()
                || (i < old.len() && keys[old[i] as usize] < keys[fresh[j] as usize]);
            let id = if take_old {
                i += 1;
                old[i - 1]
            } else {
                j += 1;
                fresh[j - 1]
            };
            self.rank[id as usize] = position;
        }
    }

    /// Cell `id`'s rank (its place in key order when ranks were last refreshed), if it has one.
    #[inline]
    pub(crate) fn rank(&self, id: CellId) -> Option<u32> {
        self.rank.get(id as usize).copied()
    }

    /// Whether cell `a`'s key sorts strictly before cell `b`'s (by rank when both are ranked).
    pub(crate) fn precedes(&self, a: CellId, b: CellId) -> bool {
        self.cmp_ids(a, b) == Ordering::Less
    }

    /// Key order of two cells: by rank when both are ranked, else by key (the same order).
    fn cmp_ids(&self, a: CellId, b: CellId) -> Ordering {
        match (self.rank.get(a as usize), self.rank.get(b as usize)) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => self.keys[a as usize].cmp(&self.keys[b as usize]),
        }
    }

    /// Sorts `ids` (each at most once) by their keys: the canonical order of cells in deltas
    /// and snapshots.
    pub(crate) fn sort_by_key(&self, ids: &mut [CellId]) {
        let ranked = self.rank.len();
        if ids.iter().any(|&id| id as usize >= ranked) {
            ids.sort_unstable_by(|a, b| self.cmp_ids(*a, *b));
            return;
        }
        // Every id is ranked, and ranks are distinct: sorting is placing. A delta usually
        // carries a good share of the cells, so place by rank when that is cheaper than a
        // comparison sort, whose every comparison reads the rank table twice.
        if ids.len() * 8 >= ranked {
            let mut by_rank = vec![CellId::MAX; ranked];
            for &id in ids.iter() {
                by_rank[self.rank[id as usize] as usize] = id;
            }
            let placed = by_rank.into_iter().filter(|&id| id != CellId::MAX);
            for (slot, id) in ids.iter_mut().zip(placed) {
                *slot = id;
            }
        } else {
            let mut keyed: Vec<u64> = ids
                .iter()
                .map(|&id| (u64::from(self.rank[id as usize]) << 32) | u64::from(id))
                .collect();
            keyed.sort_unstable();
            for (slot, key) in ids.iter_mut().zip(keyed) {
                *slot = key as CellId;
            }
        }
    }

    /// Every id, sorted by key.
    pub(crate) fn ids_by_key(&self) -> Vec<CellId> {
        let mut ids: Vec<CellId> = (0..self.keys.len() as CellId).collect();
        self.sort_by_key(&mut ids);
        ids
    }
}

#[cfg(test)]
mod tests {
    use rhizo_algebra::{ColumnSpec, MergeType, ValueType};

    use super::*;

    fn counter() -> CellState {
        CellState::new(&ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap())
    }

    #[test]
    fn ids_are_dense_stable_and_found_by_key() {
        let mut store = CellStore::default();
        let b = store.insert_new(CellKey::new("t", "b", "c"), counter());
        let key = CellKey::new("t", "a", "c");
        let hash = store.locate(&key).unwrap_err();
        let a = store.insert_hashed(hash, key, counter());
        assert_eq!((b, a), (0, 1));
        assert_eq!(store.locate(&CellKey::new("t", "b", "c")), Ok(b));
        assert_eq!(store.find(&CellKey::new("t", "a", "c")), Some(a));
        assert_eq!(store.find(&CellKey::new("t", "z", "c")), None);
        assert_eq!(store.ids_by_key(), vec![a, b]);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn ranked_unranked_and_mixed_sorts_all_follow_key_order() {
        let mut store = CellStore::default();
        let rows = ["m", "c", "x", "a", "p", "e", "k", "b", "z", "d"];
        let mut ids: Vec<CellId> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            ids.push(store.insert_new(CellKey::new("t", row, "c"), counter()));
            if i == 4 {
                store.refresh_ranks(); // the first five ranked, the rest not
            }
            let mut sorted = ids.clone();
            store.sort_by_key(&mut sorted);
            let mut expected = ids.clone();
            expected.sort_by_key(|id| store.key(*id).clone());
            assert_eq!(sorted, expected, "after inserting {row}");
        }
        store.refresh_ranks();
        assert_eq!(store.rank.len(), rows.len());
        let by_key: Vec<&str> = store
            .ids_by_key()
            .iter()
            .map(|&id| store.key(id).row())
            .collect();
        assert_eq!(by_key, ["a", "b", "c", "d", "e", "k", "m", "p", "x", "z"]);
    }

    #[test]
    fn subsets_of_ranked_cells_sort_by_key_whether_placed_or_compared() {
        let mut store = CellStore::default();
        // Keys inserted out of order, so ids and ranks differ.
        let ids: Vec<CellId> = (0..200u32)
            .map(|i| {
                let row = format!("r{:03}", (i * 77) % 200);
                store.insert_new(CellKey::new("t", &row, "c"), counter())
            })
            .collect();
        store.refresh_ranks();
        // Small subsets take the comparison path, large ones the placing path.
        for size in [1, 2, 5, 24, 25, 26, 60, 199, 200] {
            let mut subset: Vec<CellId> = ids.iter().copied().rev().step_by(200 / size).collect();
            subset.truncate(size);
            let mut expected = subset.clone();
            expected.sort_by_key(|id| store.key(*id).clone());
            store.sort_by_key(&mut subset);
            assert_eq!(subset, expected, "{size} cells");
        }
    }

    proptest::proptest! {
        /// Re-ranking merges the cells inserted since into the ranked ones: whatever the
        /// batches, every rank, once refreshed, is the cell's place in key order.
        #[test]
        fn refreshed_ranks_are_places_in_key_order(
            batches in proptest::collection::vec(
                proptest::collection::btree_set(0u32..500, 0..40), 1..8),
        ) {
            let mut store = CellStore::default();
            for batch in batches {
                for row in batch {
                    let key = CellKey::new("t", &format!("r{row}"), "c");
                    if store.find(&key).is_none() {
                        store.insert_new(key, counter());
                    }
                }
                store.refresh_ranks();
                let ranked = store.rank.len();
                let mut expected: Vec<CellId> = (0..ranked as CellId).collect();
                expected.sort_by_key(|id| store.key(*id).clone());
                for (place, id) in expected.into_iter().enumerate() {
                    proptest::prop_assert_eq!(store.rank[id as usize], place as u32);
                }
                // A refresh leaves at most an eighth of the cells unranked.
                proptest::prop_assert!((store.len() - ranked) * 8 < store.len().max(1));
            }
        }
    }

    #[test]
    fn reserving_rebuilds_the_index_with_room_and_every_key_still_found() {
        let mut store = CellStore::default();
        let key = |i: u32| CellKey::new("t", &format!("r{}", (i * 7919) % 5000), "c");
        for i in 0..100 {
            store.insert_new(key(i), counter());
        }
        store.reserve(1000);
        let room = store.ids.capacity();
        assert!(room >= 1100, "room for 1100 cells, {room} made");
        for i in 0..100 {
            assert_eq!(
                store.find(&key(i)),
                Some(i),
                "cell {i} found after the rebuild"
            );
        }
        // Inserting what was reserved grows nothing, and a reserve with room left rebuilds
        // nothing.
        for i in 100..1100 {
            store.insert_new(key(i), counter());
        }
        store.reserve(room - store.len());
        assert_eq!(store.ids.capacity(), room);
        for i in 0..1100 {
            assert_eq!(store.find(&key(i)), Some(i));
        }
        assert_eq!(store.find(&CellKey::new("t", "absent", "c")), None);
    }

    #[test]
    fn growing_leaves_at_most_a_quarter_of_the_store_or_the_batch_unused() {
        let mut store = CellStore::default();
        let key = |i: u32| CellKey::new("t", &format!("r{i}"), "c");
        let mut next = 0;
        // Batches as a replica gets them: one cell (a commit), a delta's many, a few.
        for batch in [1usize, 1, 1, 5000, 3, 1, 700, 1, 2000, 10, 1] {
            store.reserve(batch);
            let (len, room) = (store.len(), store.keys.capacity());
            assert!(room >= len + batch, "room for the batch of {batch}");
            assert_eq!(
                store.states.capacity(),
                room,
                "keys and states grow together"
            );
            assert!(
                room <= len + batch.max(len / 4).max(1) + len / 4,
                "{room} slots for {len} cells and a batch of {batch}"
            );
            for _ in 0..batch {
                store.insert_new(key(next), counter());
                next += 1;
            }
            // Filled, nothing unused beyond a quarter of the store (doubling left up to half).
            let (len, room) = (store.len(), store.keys.capacity());
            assert!(
                room - len <= (len / 4).max(1),
                "{room} slots for {len} cells"
            );
        }
    }

    #[test]
    fn a_failing_constructor_inserts_nothing() {
        // Callers build a fresh cell between `locate` and `insert_hashed`; if building fails,
        // they never insert, and locating alone leaves the store as it was.
        let mut store = CellStore::default();
        let key = CellKey::new("t", "a", "c");
        let hash = store.locate(&key).unwrap_err();
        assert_eq!(store.len(), 0);
        assert_eq!(store.find(&key), None);
        let id = store.insert_hashed(hash, key.clone(), counter());
        assert_eq!(store.locate(&key), Ok(id));
    }
}
