use std::cmp::Ordering;
use std::fmt;

use smallvec::SmallVec;

use crate::{ClockError, Dot, NodeId, Result};

/// How two vector clocks (or the events they stamp) relate causally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CausalOrder {
    /// The left clock happened before the right one (`left < right`).
    Before,
    /// The left clock happened after the right one (`left > right`).
    After,
    /// The clocks are identical.
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

/// Clocks of up to this many nodes live inline, without a heap allocation.
const INLINE_NODES: usize = 4;

type Entries = SmallVec<[(NodeId, u64); INLINE_NODES]>;

/// A vector clock: for each node, how many of its events are known.
///
/// Stored as entries sorted by [`NodeId`] with no zero counters (a missing node means 0). The form
/// is canonical, so `==`, `Hash` and the encoded bytes agree with the causal meaning: two clocks
/// are equal exactly when they know the same events.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    entries: Entries,
}

impl VectorClock {
    /// The clock that knows no events.
    ///
    /// ```
    /// let clock = rhizo_clock::VectorClock::new();
    /// assert!(clock.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// This clock with `node`'s entry set to `counter` (a builder for tests and examples).
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let a = NodeId::new("a").unwrap();
    /// assert_eq!(VectorClock::new().with_node(a, 3).get(a), 3);
    /// ```
    #[must_use]
    pub fn with_node(mut self, node: NodeId, counter: u64) -> Self {
        self.set(node, counter);
        self
    }

    #[inline]
    fn position(&self, node: NodeId) -> std::result::Result<usize, usize> {
        self.entries.binary_search_by(|(n, _)| n.cmp(&node))
    }

    /// How many events of `node` this clock knows (0 if none).
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let clock = VectorClock::new().with_node(a, 2);
    /// assert_eq!((clock.get(a), clock.get(b)), (2, 0));
    /// ```
    #[inline]
    pub fn get(&self, node: NodeId) -> u64 {
        match self.position(node) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// [`get`](Self::get), looking first at position `hint`, where `node`'s entry was found
    /// before; `hint` is updated to where it is now. A replica reads and advances its own entry
    /// on every commit, and the entry moves only when an entry of a smaller node is added, so
    /// the search is usually skipped.
    ///
    /// Hidden: the hint is an implementation detail of rhizo-commit's commit path, which lives
    /// in another crate and so cannot reach a `pub(crate)` item; users call [`get`](Self::get).
    #[doc(hidden)]
    #[inline]
    pub fn get_hinted(&self, node: NodeId, hint: &mut usize) -> u64 {
        match self.position_hinted(node, hint) {
            Some(i) => self.entries[i].1,
            None => 0,
        }
    }

    /// [`set`](Self::set), looking first at position `hint` as [`get_hinted`](Self::get_hinted)
    /// does. Hidden for the same reason; users call [`set`](Self::set).
    #[doc(hidden)]
    #[inline]
    pub fn set_hinted(&mut self, node: NodeId, counter: u64, hint: &mut usize) {
        match self.position_hinted(node, hint) {
            Some(i) if counter != 0 => self.entries[i].1 = counter,
            _ => self.set_slow(node, counter),
        }
    }

    /// Where `node`'s entry is, checking `hint` first and updating it.
    #[inline]
    fn position_hinted(&self, node: NodeId, hint: &mut usize) -> Option<usize> {
        if let Some((n, _)) = self.entries.get(*hint)
            && *n == node
        {
            return Some(*hint);
        }
        let i = self.position(node).ok()?;
        *hint = i;
        Some(i)
    }

    /// Sets `node`'s entry to `counter`; setting 0 removes the entry.
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let a = NodeId::new("a").unwrap();
    /// let mut clock = VectorClock::new();
    /// clock.set(a, 5);
    /// assert_eq!(clock.get(a), 5);
    /// clock.set(a, 0);
    /// assert_eq!(clock, VectorClock::new()); // canonical: no zero entries
    /// ```
    #[inline]
    pub fn set(&mut self, node: NodeId, counter: u64) {
        // The commonest call, a replica advancing its own entry, inline in the caller.
        if counter != 0
            && let Ok(i) = self.position(node)
        {
            self.entries[i].1 = counter;
            return;
        }
        self.set_slow(node, counter);
    }

    #[inline(never)]
    fn set_slow(&mut self, node: NodeId, counter: u64) {
        match (self.position(node), counter) {
            (Ok(i), 0) => {
                self.entries.remove(i);
            }
            (Ok(i), c) => self.entries[i].1 = c,
            (Err(_), 0) => {}
            (Err(i), c) => self.entries.insert(i, (node, c)),
        }
    }

    /// Records one new event of `node` and returns the [`Dot`] that names it.
    ///
    /// Only `node`'s entry changes, and it grows by exactly one. A full counter is
    /// [`ClockError::CounterOverflow`] (the clock is unchanged), so no dot is ever named twice.
    ///
    /// ```
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let a = NodeId::new("a").unwrap();
    /// let mut clock = VectorClock::new();
    /// assert_eq!(clock.tick(a).unwrap(), Dot::new(a, 1).unwrap());
    /// assert_eq!(clock.tick(a).unwrap().counter(), 2);
    /// assert!(VectorClock::new().with_node(a, u64::MAX).tick(a).is_err());
    /// ```
    pub fn tick(&mut self, node: NodeId) -> Result<Dot> {
        let counter = match self.position(node) {
            Ok(i) => {
                let entry = &mut self.entries[i].1;
                *entry = entry
                    .checked_add(1)
                    .ok_or(ClockError::CounterOverflow { node })?;
                *entry
            }
            Err(i) => {
                self.entries.insert(i, (node, 1));
                1
            }
        };
        Ok(Dot::new(node, counter).expect("a ticked counter is at least 1"))
    }

    /// Whether this clock knows the event `dot`.
    ///
    /// ```
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let a = NodeId::new("a").unwrap();
    /// let clock = VectorClock::new().with_node(a, 2);
    /// assert!(clock.contains(Dot::new(a, 2).unwrap()));
    /// assert!(!clock.contains(Dot::new(a, 3).unwrap()));
    /// ```
    #[inline]
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter() <= self.get(dot.node())
    }

    /// Raises every entry to the larger of the two clocks' (the least upper bound).
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut clock = VectorClock::new().with_node(a, 3).with_node(b, 1);
    /// clock.merge(&VectorClock::new().with_node(b, 4));
    /// assert_eq!((clock.get(a), clock.get(b)), (3, 4));
    /// ```
    pub fn merge(&mut self, other: &VectorClock) {
        let same_nodes = self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((a, _), (b, _))| a == b);
        if same_nodes {
            // The common case between replicas of one cluster: no allocation, one pass.
            for ((_, mine), (_, theirs)) in self.entries.iter_mut().zip(&other.entries) {
                *mine = (*mine).max(*theirs);
            }
            return;
        }
        let mut merged = Entries::with_capacity(self.entries.len() + other.entries.len());
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => {
                    merged.push(a[i]);
                    i += 1;
                }
                Ordering::Greater => {
                    merged.push(b[j]);
                    j += 1;
                }
                Ordering::Equal => {
                    merged.push((a[i].0, a[i].1.max(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&a[i..]);
        merged.extend_from_slice(&b[j..]);
        self.entries = merged;
    }

    /// The clock that knows exactly the events both clocks know (the greatest lower bound).
    ///
    /// The meet of every member's clock is what every member has seen: the causally stable part.
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let left = VectorClock::new().with_node(a, 3).with_node(b, 1);
    /// let right = VectorClock::new().with_node(a, 2);
    /// assert_eq!(left.meet(&right), VectorClock::new().with_node(a, 2));
    /// ```
    #[must_use]
    pub fn meet(&self, other: &VectorClock) -> VectorClock {
        let mut out = Entries::new();
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    out.push((a[i].0, a[i].1.min(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        VectorClock { entries: out }
    }

    /// Lowers every entry to the smaller of the two clocks' (the greatest lower bound), in
    /// place: `self.meet(other)` without building a new clock.
    pub fn meet_assign(&mut self, other: &VectorClock) {
        let b = &other.entries;
        let mut j = 0;
        // Entries stay sorted: the kept ones keep their order, only some are dropped.
        self.entries.retain(|(node, counter)| {
            while j < b.len() && b[j].0 < *node {
                j += 1;
            }
            match b.get(j) {
                Some(&(theirs, count)) if theirs == *node => {
                    // The smaller of two non-zero counters: the form stays canonical.
                    *counter = (*counter).min(count);
                    true
                }
                _ => false,
            }
        });
    }

    /// Compares two clocks causally.
    ///
    /// ```
    /// use rhizo_clock::{CausalOrder, NodeId, VectorClock};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let old = VectorClock::new().with_node(a, 1);
    /// let new = old.clone().with_node(b, 1);
    /// assert_eq!(old.compare(&new), CausalOrder::Before);
    /// assert_eq!(new.compare(&old), CausalOrder::After);
    /// assert_eq!(old.clone().with_node(a, 2).compare(&new), CausalOrder::Concurrent);
    /// ```
    pub fn compare(&self, other: &VectorClock) -> CausalOrder {
        // `less`: some entry of self is below other's; `greater`: some entry is above.
        let (mut less, mut greater) = (false, false);
        let (a, b) = (self.entries.as_slice(), other.entries.as_slice());
        // Clocks of one cluster usually list the same nodes: walk the shared prefix pairwise
        // before falling back to the general sorted-merge walk.
        let mut k = 0;
        for (x, y) in a.iter().zip(b) {
            if x.0 != y.0 {
                break;
            }
            less |= x.1 < y.1;
            greater |= x.1 > y.1;
            if less & greater {
                return CausalOrder::Concurrent;
            }
            k += 1;
        }
        let (mut i, mut j) = (k, k);
        while i < a.len() && j < b.len() && !(less && greater) {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => {
                    greater = true;
                    i += 1;
                }
                Ordering::Greater => {
                    less = true;
                    j += 1;
                }
                Ordering::Equal => {
                    less |= a[i].1 < b[j].1;
                    greater |= a[i].1 > b[j].1;
                    i += 1;
                    j += 1;
                }
            }
        }
        greater |= i < a.len();
        less |= j < b.len();
        match (less, greater) {
            (false, false) => CausalOrder::Equal,
            (true, false) => CausalOrder::Before,
            (false, true) => CausalOrder::After,
            (true, true) => CausalOrder::Concurrent,
        }
    }

    /// Whether every event this clock knows, `other` knows too (`self ≤ other`).
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let a = NodeId::new("a").unwrap();
    /// let one = VectorClock::new().with_node(a, 1);
    /// assert!(one.dominated_by(&one));
    /// assert!(one.dominated_by(&one.clone().with_node(a, 2)));
    /// assert!(!one.dominated_by(&VectorClock::new()));
    /// ```
    pub fn dominated_by(&self, other: &VectorClock) -> bool {
        // Not `compare`: this answer is known at the first entry of `self` above `other`'s,
        // which a replica asking "does this peer hold all I hold?" right after a local commit
        // meets at its own entry.
        let (a, b) = (self.entries.as_slice(), other.entries.as_slice());
        if a.len() > b.len() {
            // Entries are non-zero, so `self` names a node `other` lacks.
            return false;
        }
        let mut j = 0;
        for &(node, counter) in a {
            // Clocks of one cluster usually list the same nodes: `other`'s next entry is
            // usually this one's.
            while j < b.len() && b[j].0 < node {
                j += 1;
            }
            match b.get(j) {
                Some(&(theirs, known)) if theirs == node && counter <= known => j += 1,
                _ => return false,
            }
        }
        true
    }

    /// Whether this clock happened strictly before `other` (`self < other`).
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == CausalOrder::Before
    }

    /// Whether neither clock happened before the other and they differ.
    pub fn concurrent(&self, other: &VectorClock) -> bool {
        self.compare(other) == CausalOrder::Concurrent
    }

    /// Whether an update stamped `update` and named `dot` may take effect at a replica whose
    /// delivered history is `self`: it is the next event of its origin, and everything else it
    /// depends on has already been delivered (causal delivery).
    ///
    /// ```
    /// use rhizo_clock::{NodeId, VectorClock};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let delivered = VectorClock::new().with_node(a, 1);
    /// // b's first event, made after seeing a's first: ready here.
    /// let mut stamp = delivered.clone();
    /// let dot = stamp.tick(b).unwrap();
    /// assert!(delivered.causally_ready(dot, &stamp));
    /// // b's second event, depending on a's second: not yet.
    /// stamp.set(a, 2);
    /// let later = stamp.tick(b).unwrap();
    /// assert!(!delivered.causally_ready(later, &stamp));
    /// ```
    pub fn causally_ready(&self, dot: Dot, update: &VectorClock) -> bool {
        if dot.counter() != self.get(dot.node()).wrapping_add(1) {
            return false;
        }
        update
            .entries
            .iter()
            .all(|&(node, counter)| node == dot.node() || counter <= self.get(node))
    }

    /// Whether the clock knows no event.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many nodes have a non-zero entry.
    pub fn node_count(&self) -> usize {
        self.entries.len()
    }

    /// The non-zero entries, in node order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// The (node, counter) entries, sorted by node, counters non-zero: what [`Self::iter`]
    /// yields, as a slice for callers that walk it alongside another sorted list.
    pub fn as_slice(&self) -> &[(NodeId, u64)] {
        &self.entries
    }

    /// The total number of events known (wide enough never to overflow).
    pub fn sum(&self) -> u128 {
        self.entries.iter().map(|&(_, c)| u128::from(c)).sum()
    }

    /// Builds a clock from entries, which must be sorted by node, unique and non-zero — the form
    /// a decoder sees. Anything else is refused rather than repaired, so that malformed input can
    /// never alias a different clock.
    #[cfg(feature = "serde")]
    pub(crate) fn from_canonical_entries(
        entries: impl IntoIterator<Item = (NodeId, u64)>,
    ) -> Result<Self> {
        let entries: Entries = entries.into_iter().collect();
        for window in entries.windows(2) {
            if window[0].0 >= window[1].0 {
                return Err(ClockError::NonCanonical {
                    reason: "nodes must be strictly increasing",
                });
            }
        }
        if entries.iter().any(|&(_, c)| c == 0) {
            return Err(ClockError::NonCanonical {
                reason: "counters must be non-zero",
            });
        }
        Ok(Self { entries })
    }
}

impl PartialOrd for VectorClock {
    /// The causal order: `None` for concurrent clocks.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            CausalOrder::Before => Some(Ordering::Less),
            CausalOrder::After => Some(Ordering::Greater),
            CausalOrder::Equal => Some(Ordering::Equal),
            CausalOrder::Concurrent => None,
        }
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VectorClock")?;
        f.debug_map()
            .entries(self.entries.iter().map(|(n, c)| (n.to_string(), c)))
            .finish()
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (k, (node, counter)) in self.entries.iter().enumerate() {
            if k > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{node}: {counter}")?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a VectorClock {
    type Item = (NodeId, u64);
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, (NodeId, u64)>>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().copied()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::VectorClock;
    use crate::NodeId;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// A clock travels as its canonical entry list.
    impl Serialize for VectorClock {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.entries.len()))?;
            for entry in &self.entries {
                seq.serialize_element(entry)?;
            }
            seq.end()
        }
    }

    impl<'de> Deserialize<'de> for VectorClock {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct EntriesVisitor;
            impl<'de> Visitor<'de> for EntriesVisitor {
                type Value = VectorClock;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a sorted list of (node, counter) entries")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<VectorClock, A::Error> {
                    // Grow as elements arrive: a length prefix alone never buys an allocation.
                    let mut entries = Vec::new();
                    while let Some(entry) = seq.next_element::<(NodeId, u64)>()? {
                        entries.push(entry);
                    }
                    VectorClock::from_canonical_entries(entries).map_err(A::Error::custom)
                }
            }
            deserializer.deserialize_seq(EntriesVisitor)
        }
    }
}

#[cfg(test)]
mod tests;
