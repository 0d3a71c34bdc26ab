//! The add-wins observed-remove set.
//!
//! An add of element `e` by the update named `d` tags `e` with `d`. A remove names the
//! `(element, tag)` pairs its writer observed and turns exactly those tags into tombstones, so an
//! add the remover had not seen survives. Tombstones make the set commute under *any* delivery
//! order (an add arriving after the remove of its tag stays removed); [`OrSet::compact`] drops
//! them once the remove is causally stable.

use std::cmp::Ordering;

use rhizo_clock::{Dot, VectorClock};
use smallvec::SmallVec;

use crate::{AlgebraError, Result, SortedSet};

/// A removed tag and the update that removed it (kept to know when the tombstone may go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Tombstone {
    tag: Dot,
    removed_by: Dot,
}

/// What the set knows about one element.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct OrEntry<E> {
    element: E,
    /// Tags of adds not (yet) removed; sorted, unique, disjoint from the tombstones' tags.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::serde_bounded::smallvec")
    )]
    live: SmallVec<[Dot; 1]>,
    /// Removed tags, sorted by tag, one per tag (the smallest remover, a canonical choice).
    removed: Vec<Tombstone>,
}

impl<E> OrEntry<E> {
    fn new(element: E) -> Self {
        Self {
            element,
            live: SmallVec::new(),
            removed: Vec::new(),
        }
    }

    fn is_removed(&self, tag: Dot) -> bool {
        self.removed.binary_search_by(|t| t.tag.cmp(&tag)).is_ok()
    }

    fn add_tag(&mut self, tag: Dot) {
        if self.is_removed(tag) {
            return;
        }
        if let Err(i) = self.live.binary_search(&tag) {
            self.live.insert(i, tag);
        }
    }

    fn remove_tag(&mut self, tag: Dot, removed_by: Dot) {
        if let Ok(i) = self.live.binary_search(&tag) {
            self.live.remove(i);
        }
        match self.removed.binary_search_by(|t| t.tag.cmp(&tag)) {
            Ok(i) => {
                let t = &mut self.removed[i];
                t.removed_by = t.removed_by.min(removed_by);
            }
            Err(i) => self.removed.insert(i, Tombstone { tag, removed_by }),
        }
    }

    fn merge(&mut self, other: &OrEntry<E>) {
        if !other.removed.is_empty() {
            self.removed = merge_tombstones(&self.removed, &other.removed);
        }
        if other
            .live
            .iter()
            .any(|d| self.live.binary_search(d).is_err())
        {
            let mut live: SmallVec<[Dot; 1]> =
                SmallVec::with_capacity(self.live.len() + other.live.len());
            let (a, b) = (&self.live, &other.live);
            let (mut i, mut j) = (0, 0);
            while i < a.len() || j < b.len() {
                let next = match (a.get(i), b.get(j)) {
                    (Some(x), Some(y)) => match x.cmp(y) {
                        Ordering::Less => {
                            i += 1;
                            *x
                        }
                        Ordering::Greater => {
                            j += 1;
                            *y
                        }
                        Ordering::Equal => {
                            i += 1;
                            j += 1;
                            *x
                        }
                    },
                    (Some(x), None) => {
                        i += 1;
                        *x
                    }
                    (None, Some(y)) => {
                        j += 1;
                        *y
                    }
                    (None, None) => unreachable!("loop condition"),
                };
                live.push(next);
            }
            self.live = live;
        }
        if !self.removed.is_empty() {
            let removed = &self.removed;
            self.live
                .retain(|d| removed.binary_search_by(|t| t.tag.cmp(d)).is_err());
        }
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.removed.is_empty()
    }
}

fn merge_tombstones(a: &[Tombstone], b: &[Tombstone]) -> Vec<Tombstone> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].tag.cmp(&b[j].tag) {
            Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push(Tombstone {
                    tag: a[i].tag,
                    removed_by: a[i].removed_by.min(b[j].removed_by),
                });
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// An observed-remove set of `E`, entries sorted by element, none empty.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct OrSet<E> {
    entries: Vec<OrEntry<E>>,
}

impl<E> Default for OrSet<E> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

/// Below this many elements an add inserts one by one; above, it rebuilds in one merge walk.
const BULK_ADD: usize = 16;

impl<E: Ord + Clone> OrSet<E> {
    fn position(&self, element: &E) -> std::result::Result<usize, usize> {
        self.entries.binary_search_by(|e| e.element.cmp(element))
    }

    fn entry_mut(&mut self, element: &E) -> &mut OrEntry<E> {
        let i = match self.position(element) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, OrEntry::new(element.clone()));
                i
            }
        };
        &mut self.entries[i]
    }

    /// Tags every element of `elements` with `tag`.
    pub(crate) fn add(&mut self, elements: &SortedSet<E>, tag: Dot) {
        let elements = elements.as_slice();
        if elements.len() <= BULK_ADD {
            for e in elements {
                self.entry_mut(e).add_tag(tag);
            }
            return;
        }
        let mine = std::mem::take(&mut self.entries);
        let mut out = Vec::with_capacity(mine.len() + elements.len());
        let mut new = elements.iter().peekable();
        for mut entry in mine {
            while let Some(e) = new.next_if(|e| **e < entry.element) {
                let mut fresh = OrEntry::new(e.clone());
                fresh.add_tag(tag);
                out.push(fresh);
            }
            if new.next_if(|e| **e == entry.element).is_some() {
                entry.add_tag(tag);
            }
            out.push(entry);
        }
        for e in new {
            let mut fresh = OrEntry::new(e.clone());
            fresh.add_tag(tag);
            out.push(fresh);
        }
        self.entries = out;
    }

    /// Turns each observed `(element, tag)` into a tombstone left by `removed_by`.
    pub(crate) fn remove(&mut self, observed: &SortedSet<(E, Dot)>, removed_by: Dot) {
        for (element, tag) in observed {
            self.entry_mut(element).remove_tag(*tag, removed_by);
        }
        self.entries.retain(|e| !e.is_empty());
    }

    /// The tags and tombstones a replica that knows `known` may lack: live tags it has not seen
    /// and tombstones whose remover it has not seen. Joining this into such a replica gives what
    /// joining the whole set would.
    pub(crate) fn restricted(&self, known: &VectorClock) -> Self {
        let entries = self
            .entries
            .iter()
            .filter_map(|e| {
                let live: SmallVec<[Dot; 1]> = e
                    .live
                    .iter()
                    .copied()
                    .filter(|d| !known.contains(*d))
                    .collect();
                let removed: Vec<Tombstone> = e
                    .removed
                    .iter()
                    .copied()
                    .filter(|t| !known.contains(t.removed_by))
                    .collect();
                (!live.is_empty() || !removed.is_empty()).then(|| OrEntry {
                    element: e.element.clone(),
                    live,
                    removed,
                })
            })
            .collect();
        Self { entries }
    }

    /// The join of two sets: union of tags and of tombstones, minus tombstoned tags.
    pub(crate) fn merge(&mut self, other: &OrSet<E>) {
        if other.entries.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.entries);
        let mut out = Vec::with_capacity(mine.len() + other.entries.len());
        let mut theirs = other.entries.iter().peekable();
        for mut entry in mine {
            while let Some(t) = theirs.next_if(|t| t.element < entry.element) {
                out.push(t.clone());
            }
            if let Some(t) = theirs.next_if(|t| t.element == entry.element) {
                entry.merge(t);
            }
            out.push(entry);
        }
        out.extend(theirs.cloned());
        self.entries = out;
    }

    /// Drops tombstones whose tag and remover every member has seen (`stable` is the causally
    /// stable clock): no replica can still deliver that add, and every replica has the remove.
    pub(crate) fn compact(&mut self, stable: &VectorClock) {
        for entry in &mut self.entries {
            entry
                .removed
                .retain(|t| !(stable.contains(t.tag) && stable.contains(t.removed_by)));
        }
        self.entries.retain(|e| !e.is_empty());
    }

    /// The elements with a live tag.
    pub(crate) fn elements(&self) -> SortedSet<E> {
        let items = self
            .entries
            .iter()
            .filter(|e| !e.live.is_empty())
            .map(|e| e.element.clone())
            .collect();
        SortedSet::from_sorted(items).expect("entries are sorted by element")
    }

    /// The live tags of `element`: what a remove issued here would delete.
    pub(crate) fn observed(&self, element: &E) -> Vec<Dot> {
        self.position(element)
            .map_or_else(|_| Vec::new(), |i| self.entries[i].live.to_vec())
    }

    /// How many tombstones the set keeps (metadata awaiting [`OrSet::compact`]).
    pub(crate) fn tombstone_count(&self) -> usize {
        self.entries.iter().map(|e| e.removed.len()).sum()
    }

    pub(crate) fn check_canonical(&self) -> Result<()> {
        let bad = |reason| Err(AlgebraError::NonCanonical { reason });
        if !self.entries.windows(2).all(|w| w[0].element < w[1].element) {
            return bad("set entries must be strictly increasing".into());
        }
        for e in &self.entries {
            if e.is_empty() {
                return bad("a set entry must hold a tag or a tombstone".into());
            }
            if !e.live.windows(2).all(|w| w[0] < w[1])
                || !e.removed.windows(2).all(|w| w[0].tag < w[1].tag)
            {
                return bad("tags must be strictly increasing".into());
            }
            if e.live.iter().any(|d| e.is_removed(*d)) {
                return bad("a tag cannot be both live and removed".into());
            }
        }
        Ok(())
    }
}
