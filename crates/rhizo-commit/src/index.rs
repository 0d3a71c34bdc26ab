//! Which cells each origin's recent updates touched: what lets a replica send a peer only the
//! cells changed since the peer's clock.

use std::collections::BTreeMap;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CellKey;

/// For one origin: each cell touched by its untrimmed updates, filed under the last update that
/// touched it.
///
/// `touched_since(seen)` walks only the updates after `seen`, so building a delta costs the cells
/// changed, not the history. Updates at or below the causally stable point are trimmed; a peer
/// behind `trimmed_upto` cannot be served from the index and gets a snapshot instead.
#[derive(Debug, Clone, Default)]
pub struct OriginIndex {
    trimmed_upto: u64,
    /// The last counter that touched each cell.
    latest: HashMap<CellKey, u64, FixedState>,
    /// Cells by the counter that touched them. An entry is stale when `latest` has moved on; stale
    /// entries are skipped on reads and dropped on trims.
    by_counter: BTreeMap<u64, Vec<CellKey>>,
}

impl OriginIndex {
    /// Updates of this origin up to here are no longer indexed.
    pub fn trimmed_upto(&self) -> u64 {
        self.trimmed_upto
    }

    /// Files `keys` under the origin's update `counter` (counters arrive in increasing order).
    pub(crate) fn record(&mut self, counter: u64, keys: impl IntoIterator<Item = CellKey>) {
        if counter <= self.trimmed_upto {
            return;
        }
        let mut filed = Vec::new();
        for key in keys {
            match self.latest.get_mut(&key) {
                Some(last) if *last >= counter => {}
                Some(last) => {
                    *last = counter;
                    filed.push(key);
                }
                None => {
                    self.latest.insert(key.clone(), counter);
                    filed.push(key);
                }
            }
        }
        if !filed.is_empty() {
            self.by_counter.entry(counter).or_default().extend(filed);
        }
    }

    /// The cells touched by this origin's updates after `seen`, each once.
    pub(crate) fn touched_since(&self, seen: u64) -> impl Iterator<Item = &CellKey> {
        let latest = &self.latest;
        self.by_counter
            .range(seen.saturating_add(1)..)
            .flat_map(move |(counter, keys)| {
                keys.iter().filter(move |k| latest.get(*k) == Some(counter))
            })
    }

    /// Forgets updates up to `stable`; returns how many index entries were dropped.
    pub(crate) fn trim(&mut self, stable: u64) -> usize {
        if stable <= self.trimmed_upto {
            return 0;
        }
        self.trimmed_upto = stable;
        let keep = self.by_counter.split_off(&(stable + 1));
        let dropped = std::mem::replace(&mut self.by_counter, keep);
        let mut count = 0;
        for (counter, keys) in dropped {
            for key in keys {
                if self.latest.get(&key) == Some(&counter) {
                    self.latest.remove(&key);
                }
                count += 1;
            }
        }
        count
    }

    /// Cells currently indexed.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether no cell is indexed.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The live entries in canonical order: counters increasing, keys sorted within a counter.
    fn canonical(&self) -> Vec<(u64, Vec<&CellKey>)> {
        self.by_counter
            .iter()
            .map(|(counter, keys)| {
                let mut live: Vec<&CellKey> = keys
                    .iter()
                    .filter(|k| self.latest.get(*k) == Some(counter))
                    .collect();
                live.sort_unstable();
                live.dedup();
                (*counter, live)
            })
            .filter(|(_, keys)| !keys.is_empty())
            .collect()
    }
}

impl PartialEq for OriginIndex {
    fn eq(&self, other: &Self) -> bool {
        self.trimmed_upto == other.trimmed_upto && self.canonical() == other.canonical()
    }
}

impl Eq for OriginIndex {}

impl Serialize for OriginIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.trimmed_upto, self.canonical()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OriginIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (trimmed_upto, entries): (u64, Vec<(u64, Vec<CellKey>)>) =
            Deserialize::deserialize(deserializer)?;
        if !entries.windows(2).all(|w| w[0].0 < w[1].0)
            || entries.first().is_some_and(|(c, _)| *c <= trimmed_upto)
        {
            return Err(serde::de::Error::custom(
                "index counters must increase past the trimmed point",
            ));
        }
        let mut index = OriginIndex {
            trimmed_upto,
            ..OriginIndex::default()
        };
        for (counter, keys) in entries {
            index.record(counter, keys);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(row: &str) -> CellKey {
        CellKey::new("t", row, "c")
    }

    #[test]
    fn a_cell_is_listed_once_under_its_last_update() {
        let mut index = OriginIndex::default();
        index.record(1, [key("a"), key("b")]);
        index.record(2, [key("a")]);
        index.record(5, [key("c"), key("a")]);
        let since = |seen| {
            index
                .touched_since(seen)
                .map(|k| k.row.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(since(0), ["b", "c", "a"]);
        assert_eq!(since(1), ["c", "a"]);
        assert_eq!(since(4), ["c", "a"]);
        assert!(since(5).is_empty());
    }

    #[test]
    fn trimming_forgets_stable_updates_only() {
        let mut index = OriginIndex::default();
        index.record(1, [key("a"), key("b")]);
        index.record(3, [key("a")]);
        assert_eq!(index.trim(2), 2);
        assert_eq!(index.trimmed_upto(), 2);
        assert_eq!(
            index
                .touched_since(2)
                .map(|k| k.row.to_string())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(index.len(), 1);
        index.record(2, [key("z")]); // at or below the trimmed point: ignored
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn serde_round_trips_the_live_entries() {
        let mut index = OriginIndex::default();
        index.record(1, [key("b"), key("a")]);
        index.record(2, [key("b")]);
        index.trim(0);
        let bytes = postcard::to_allocvec(&index).unwrap();
        let back: OriginIndex = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, index);
        assert_eq!(postcard::to_allocvec(&back).unwrap(), bytes);
    }
}
