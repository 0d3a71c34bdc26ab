//! The add-wins observed-remove set, holding one tag per element and origin.
//!
//! An add of element `e` by the update named `d` tags `e` with `d`. A remove names the
//! `(element, tag)` pairs its writer observed and turns exactly those tags into tombstones, so an
//! add the remover had not seen survives. Tombstones make the set commute under *any* delivery
//! order (an add arriving after the remove of its tag stays removed); [`OrSet::compact`] drops
//! them once the remove is causally stable.
//!
//! Of one origin's adds of one element only the newest tag is kept. An origin's updates are
//! causally ordered, so whoever observed its newest add of `e` has its older adds of `e` in its
//! causal past too: an element is present exactly when one of its adds is in the causal past of
//! no remove, and that holds of some add of an origin exactly when it holds of that origin's
//! newest. A superseded tag decides nothing, and keeping it would make the set grow with every
//! re-add. So for each (element, origin) the set holds one [`Tag`], live or removed, and every
//! change — an add, a remove, a merge — keeps the greater of two tags in one total order
//! ([`Tag::supersedes`]): a join, so the set is a semilattice whatever the delivery order.

use std::cmp::Ordering;

use rhizo_clock::{Dot, NodeId, VectorClock};
use smallvec::SmallVec;

use crate::{AlgebraError, Result, SortedSet};

/// A removed tag and the update that removed it (kept to know when the tombstone may go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Tombstone {
    tag: Dot,
    removed_by: Dot,
}

/// What one origin's adds of one element amount to: its newest add, live or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Live(Dot),
    Removed(Tombstone),
}

impl Tag {
    fn dot(self) -> Dot {
        match self {
            Tag::Live(dot) => dot,
            Tag::Removed(tombstone) => tombstone.tag,
        }
    }

    fn origin(self) -> NodeId {
        self.dot().node()
    }

    /// Whether `self` replaces `other`, a tag of the same origin and element. The order is
    /// total: a newer add first; for the same add, removed over live (the remove observed it);
    /// for two removes of it, the smaller remover (a canonical choice, as any would do).
    fn supersedes(self, other: Tag) -> bool {
        match self.dot().counter().cmp(&other.dot().counter()) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match (self, other) {
                (Tag::Removed(mine), Tag::Removed(theirs)) => mine.removed_by < theirs.removed_by,
                (Tag::Removed(_), Tag::Live(_)) => true,
                (Tag::Live(_), _) => false,
            },
        }
    }
}

/// What the set knows about one element.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct OrEntry<E> {
    element: E,
    /// Live tags, at most one per origin, sorted (so by origin).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::serde_bounded::smallvec")
    )]
    live: SmallVec<[Dot; 1]>,
    /// Removed tags, at most one per origin and none of an origin with a live tag, sorted by
    /// tag (so by origin).
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

    /// Joins one tag in: it replaces the tag of its origin if it supersedes it.
    fn join_tag(&mut self, incoming: Tag) {
        let origin = incoming.origin();
        let live_at = self.live.binary_search_by(|d| d.node().cmp(&origin));
        let removed_at = match live_at {
            Ok(_) => None,
            Err(_) => Some(self.removed.binary_search_by(|t| t.tag.node().cmp(&origin))),
        };
        let current = match (live_at, removed_at) {
            (Ok(i), _) => Some(Tag::Live(self.live[i])),
            (Err(_), Some(Ok(j))) => Some(Tag::Removed(self.removed[j])),
            _ => None,
        };
        if current.is_some_and(|current| !incoming.supersedes(current)) {
            return;
        }
        match (incoming, live_at) {
            // A newer add of a live element (a re-add): the tag is replaced where it stands.
            (Tag::Live(dot), Ok(i)) => self.live[i] = dot,
            (Tag::Live(dot), Err(i)) => {
                if let Some(Ok(j)) = removed_at {
                    self.removed.remove(j);
                }
                self.live.insert(i, dot);
            }
            (Tag::Removed(tombstone), _) => {
                if let Ok(i) = live_at {
                    self.live.remove(i);
                }
                match self.removed.binary_search_by(|t| t.tag.node().cmp(&origin)) {
                    Ok(j) => self.removed[j] = tombstone,
                    Err(j) => self.removed.insert(j, tombstone),
                }
            }
        }
    }

    /// Every tag, live or removed, in origin order.
    fn tags(&self) -> impl Iterator<Item = Tag> + '_ {
        let mut live = self.live.iter().copied().peekable();
        let mut removed = self.removed.iter().copied().peekable();
        std::iter::from_fn(move || match (live.peek(), removed.peek()) {
            (Some(d), Some(t)) if d.node() < t.tag.node() => live.next().map(Tag::Live),
            (Some(_), Some(_)) | (None, Some(_)) => removed.next().map(Tag::Removed),
            (Some(_), None) => live.next().map(Tag::Live),
            (None, None) => None,
        })
    }

    /// The join of two entries of one element: origin by origin, the superseding tag.
    fn merge(&mut self, other: &OrEntry<E>) {
        let mut live: SmallVec<[Dot; 1]> = SmallVec::new();
        let mut removed: Vec<Tombstone> = Vec::new();
        let mut keep = |tag: Tag| match tag {
            Tag::Live(dot) => live.push(dot),
            Tag::Removed(tombstone) => removed.push(tombstone),
        };
        {
            let (mut mine, mut theirs) = (self.tags().peekable(), other.tags().peekable());
            loop {
                let next = match (mine.peek().copied(), theirs.peek().copied()) {
                    (Some(a), Some(b)) => match a.origin().cmp(&b.origin()) {
                        Ordering::Less => mine.next(),
                        Ordering::Greater => theirs.next(),
                        Ordering::Equal => {
                            mine.next();
                            theirs.next();
                            Some(if b.supersedes(a) { b } else { a })
                        }
                    },
                    (Some(_), None) => mine.next(),
                    (None, Some(_)) => theirs.next(),
                    (None, None) => None,
                };
                match next {
                    Some(tag) => keep(tag),
                    None => break,
                }
            }
        }
        self.live = live;
        self.removed = removed;
    }

    /// Whether this entry holds a tag of `origin`, live or removed.
    fn has_origin(&self, origin: NodeId) -> bool {
        self.live
            .binary_search_by(|d| d.node().cmp(&origin))
            .is_ok()
            || self
                .removed
                .binary_search_by(|t| t.tag.node().cmp(&origin))
                .is_ok()
    }

    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.removed.is_empty()
    }

    fn check_canonical(&self) -> Result<()> {
        let bad = |reason| Err(AlgebraError::NonCanonical { reason });
        if self.is_empty() {
            return bad("a set entry must hold a tag or a tombstone".into());
        }
        if !self.live.windows(2).all(|w| w[0].node() < w[1].node())
            || !self
                .removed
                .windows(2)
                .all(|w| w[0].tag.node() < w[1].tag.node())
        {
            return bad("an element's tags must be sorted, one per origin".into());
        }
        if self.live.iter().any(|d| {
            self.removed
                .binary_search_by(|t| t.tag.node().cmp(&d.node()))
                .is_ok()
        }) {
            return bad("an element holds one tag per origin, live or removed".into());
        }
        Ok(())
    }
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

    /// Tags every element of `elements` with `tag`, superseding the elements' older tags of
    /// the same origin.
    pub(crate) fn add(&mut self, elements: &SortedSet<E>, tag: Dot) {
        let elements = elements.as_slice();
        if elements.len() <= BULK_ADD {
            for e in elements {
                self.entry_mut(e).join_tag(Tag::Live(tag));
            }
            return;
        }
        let mine = std::mem::take(&mut self.entries);
        let mut out = Vec::with_capacity(mine.len() + elements.len());
        let mut new = elements.iter().peekable();
        let fresh = |e: &E| {
            let mut entry = OrEntry::new(e.clone());
            entry.join_tag(Tag::Live(tag));
            entry
        };
        for mut entry in mine {
            while let Some(e) = new.next_if(|e| **e < entry.element) {
                out.push(fresh(e));
            }
            if new.next_if(|e| **e == entry.element).is_some() {
                entry.join_tag(Tag::Live(tag));
            }
            out.push(entry);
        }
        out.extend(new.map(fresh));
        self.entries = out;
    }

    /// Turns each observed `(element, tag)` into a tombstone left by `removed_by`. Costs a
    /// lookup per pair: an entry a remove touches keeps a tombstone, so no entry empties.
    pub(crate) fn remove(&mut self, observed: &SortedSet<(E, Dot)>, removed_by: Dot) {
        for (element, tag) in observed {
            self.entry_mut(element).join_tag(Tag::Removed(Tombstone {
                tag: *tag,
                removed_by,
            }));
        }
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

    /// The join of two sets: element by element and origin by origin, the superseding tag.
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

    /// Drops the live tags that `complete` — the whole set of a replica that had delivered
    /// every update in `clock` — holds no tag of the same element and origin for, although
    /// `clock` covers them. That replica delivered those adds and kept neither them, nor a
    /// newer add of their origin, nor a tombstone: a remove it delivered deleted them and its
    /// tombstone was collected (it keeps one otherwise), so they are removed.
    pub(crate) fn retract_collected(&mut self, complete: &OrSet<E>, clock: &VectorClock) {
        let mut theirs = complete.entries.iter().peekable();
        for entry in &mut self.entries {
            while theirs.next_if(|t| t.element < entry.element).is_some() {}
            let counterpart = theirs.next_if(|t| t.element == entry.element);
            entry.live.retain(|dot| {
                !clock.contains(*dot) || counterpart.is_some_and(|t| t.has_origin(dot.node()))
            });
        }
        self.entries.retain(|e| !e.is_empty());
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

    /// The live tags of `element`, one per origin at most: what a remove issued here deletes.
    pub(crate) fn observed(&self, element: &E) -> Vec<Dot> {
        self.position(element)
            .map_or_else(|_| Vec::new(), |i| self.entries[i].live.to_vec())
    }

    /// How many tombstones the set keeps (metadata awaiting [`OrSet::compact`]).
    pub(crate) fn tombstone_count(&self) -> usize {
        self.entries.iter().map(|e| e.removed.len()).sum()
    }

    pub(crate) fn check_canonical(&self) -> Result<()> {
        if !self.entries.windows(2).all(|w| w[0].element < w[1].element) {
            return Err(AlgebraError::NonCanonical {
                reason: "set entries must be strictly increasing".into(),
            });
        }
        self.entries.iter().try_for_each(OrEntry::check_canonical)
    }
}
