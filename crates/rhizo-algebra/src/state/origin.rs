//! Per-origin partial aggregates: the state of the abelian (ADD, MULTIPLY) columns.
//!
//! Every origin's updates to one cell reach every replica in that origin's order and at most
//! once (dots never repeat), so an origin's partial aggregate is the same value, bit for bit, on
//! every replica that has seen the same prefix of its updates. Reading folds the partials in
//! `NodeId` order, which no arrival order can change.

use std::num::NonZeroU64;

use rhizo_clock::{Dot, NodeId};

use crate::{AlgebraError, Result};

/// A partial aggregate: a monoid element with its identity and a total order used only to
/// break ties between two entries of equal sequence number (possible only if a node reused a
/// dot, which the replica layer forbids; the tie-break keeps merge commutative anyway).
pub(crate) trait Partial: Copy + Ord {
    const IDENTITY: Self;
    /// Where a list keeps its entries: [`OneOrMany`] (one entry inline) where that keeps the
    /// list no larger than a cell state's other kinds (a counter written by one origin, the
    /// commonest cell, then allocates nothing), a `Vec` where a wide partial would make every
    /// state larger.
    type List: EntryList<Self>;
}

/// The sequence number of the update named `dot` (dots count from 1).
#[inline]
pub(crate) fn seq_of(dot: Dot) -> NonZeroU64 {
    // `Dot::new` refuses counter 0, so the fallback is never taken.
    NonZeroU64::new(dot.counter()).unwrap_or(NonZeroU64::MIN)
}

/// One origin's contribution to a cell: the highest dot counter applied and the aggregate of
/// all of its updates up to that counter.
///
/// Packed to 8-byte alignment: an `i128` partial would align the entry to 16 bytes and pad it
/// from 40 to 48, and entries are what every delta restricts, sizes, merges and keeps, so the
/// padding would be copied and stored everywhere. Its fields are only ever copied: the compiler
/// refuses a reference to a field of a packed struct, so no misaligned reference can exist.
///
/// `seq` is last and never zero: [`OneOrMany`] marks its heap form by a zero there, so a list
/// holding one entry inline is no larger than the entry. Encoded as `(node, seq, partial)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(8))]
pub(crate) struct OriginEntry<P: Copy> {
    pub(crate) node: NodeId,
    pub(crate) partial: P,
    pub(crate) seq: NonZeroU64,
}

/// [`OriginEntry`]'s encoding: its fields in this order, the sequence number as a plain integer.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "OriginEntry")]
struct EncodedEntry<P> {
    node: NodeId,
    seq: u64,
    partial: P,
}

#[cfg(feature = "serde")]
impl<P: Copy + serde::Serialize> serde::Serialize for OriginEntry<P> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let Self { node, partial, seq } = *self;
        EncodedEntry {
            node,
            seq: seq.get(),
            partial,
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, P: Copy + serde::Deserialize<'de>> serde::Deserialize<'de> for OriginEntry<P> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let EncodedEntry { node, seq, partial } = EncodedEntry::deserialize(deserializer)?;
        let seq = NonZeroU64::new(seq).ok_or_else(|| {
            serde::de::Error::custom("an origin entry's sequence number starts at 1")
        })?;
        Ok(Self { node, partial, seq })
    }
}

// The size the packing above is for.
const _: () = assert!(std::mem::size_of::<OriginEntry<i128>>() == 40);
const _: () = assert!(std::mem::size_of::<OriginEntry<i64>>() == 32);
// A list holding one narrow integer entry inline is no larger than the entry, so that an
// integer sum of either width, with its tag, fits a 48-byte cell state beside the kind's tag.
const _: () = assert!(std::mem::size_of::<PerOrigin<i64>>() == 32);
const _: () = assert!(std::mem::size_of::<PerOrigin<i128>>() == 24);

impl<Q: Copy> OriginEntry<Q> {
    /// The same entry with its partial converted (`convert` must be exact: an entry's partial
    /// is its origin's aggregate, the same on every replica).
    #[inline(always)]
    pub(crate) fn converted<P: Copy>(&self, convert: impl Fn(Q) -> P) -> OriginEntry<P> {
        let OriginEntry { node, partial, seq } = *self;
        OriginEntry {
            node,
            partial: convert(partial),
            seq,
        }
    }
}

/// The storage operations a [`PerOrigin`] list needs, over a `Vec` or a [`OneOrMany`].
pub(crate) trait EntryList<P: Copy>: Default + Clone {
    fn as_slice(&self) -> &[OriginEntry<P>];
    fn as_mut_slice(&mut self) -> &mut [OriginEntry<P>];
    fn from_slice(entries: &[OriginEntry<P>]) -> Self;
    /// A list of exactly these entries, allocated once.
    fn from_exact(entries: impl ExactSizeIterator<Item = OriginEntry<P>>) -> Self;
    /// Inserts `entry` at `at`, growing by exactly one slot if there is no room: a list holds
    /// its own origins, and each origin is inserted once.
    fn insert(&mut self, at: usize, entry: OriginEntry<P>);
    /// How many entries fit without allocating.
    fn capacity(&self) -> usize;
    fn reserve_exact(&mut self, additional: usize);
    /// Appends `entries` (room for them is usually made already).
    fn extend_exact(&mut self, entries: impl ExactSizeIterator<Item = OriginEntry<P>>);
}

impl<P: Copy> EntryList<P> for Vec<OriginEntry<P>> {
    fn as_slice(&self) -> &[OriginEntry<P>] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [OriginEntry<P>] {
        self
    }
    fn from_slice(entries: &[OriginEntry<P>]) -> Self {
        entries.to_vec()
    }
    fn from_exact(entries: impl ExactSizeIterator<Item = OriginEntry<P>>) -> Self {
        let mut list = Vec::with_capacity(entries.len());
        list.extend(entries);
        list
    }
    fn insert(&mut self, at: usize, entry: OriginEntry<P>) {
        EntryList::reserve_exact(self, 1);
        Vec::insert(self, at, entry);
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    /// Moves the entries to a new allocation of the size needed rather than `realloc`ating:
    /// lists grow by a few entries at a time, so the sizes they leave are the sizes others
    /// grow into, which the allocator hands back from its per-size caches, where growing in
    /// place has it split and relink the chunk beside the list.
    fn reserve_exact(&mut self, additional: usize) {
        if Vec::capacity(self) - self.len() < additional {
            let mut grown = Vec::with_capacity(self.len() + additional);
            grown.extend_from_slice(self);
            *self = grown;
        }
    }
    fn extend_exact(&mut self, entries: impl ExactSizeIterator<Item = OriginEntry<P>>) {
        Vec::extend(self, entries);
    }
}

/// One entry inline, or any number on the heap: a cell only one origin wrote allocates
/// nothing, and the list is as large as one entry (the heap form fits beside the entry's
/// never-zero `seq`, whose zero marks it).
///
/// Which form holds a list is not part of its value: equality and encoding see the entries.
#[derive(Clone)]
pub(crate) enum OneOrMany<P: Copy> {
    One(OriginEntry<P>),
    /// Empty lists are this form without an allocation, which still has room for one entry
    /// (it becomes `One` when it gets it).
    Many(Vec<OriginEntry<P>>),
}

impl<P: Copy> Default for OneOrMany<P> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<P: Copy> OneOrMany<P> {
    /// Moves the entries to the heap, with room for `additional` more.
    fn spill(&mut self, additional: usize) -> &mut Vec<OriginEntry<P>> {
        if let OneOrMany::One(entry) = *self {
            let mut heap = Vec::with_capacity(1 + additional);
            heap.push(entry);
            *self = OneOrMany::Many(heap);
        }
        match self {
            OneOrMany::Many(heap) => heap,
            // Just replaced above.
            OneOrMany::One(_) => unreachable!("spilled to the heap"),
        }
    }

    /// Whether the entries are on the heap.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        matches!(self, OneOrMany::Many(heap) if heap.capacity() > 0)
    }
}

impl<P: Copy> EntryList<P> for OneOrMany<P> {
    #[inline]
    fn as_slice(&self) -> &[OriginEntry<P>] {
        match self {
            OneOrMany::One(entry) => std::slice::from_ref(entry),
            OneOrMany::Many(heap) => heap,
        }
    }
    #[inline]
    fn as_mut_slice(&mut self) -> &mut [OriginEntry<P>] {
        match self {
            OneOrMany::One(entry) => std::slice::from_mut(entry),
            OneOrMany::Many(heap) => heap,
        }
    }
    fn from_slice(entries: &[OriginEntry<P>]) -> Self {
        match entries {
            [one] => OneOrMany::One(*one),
            _ => OneOrMany::Many(entries.to_vec()),
        }
    }
    fn from_exact(mut entries: impl ExactSizeIterator<Item = OriginEntry<P>>) -> Self {
        match (entries.len(), entries.next()) {
            (1, Some(one)) => OneOrMany::One(one),
            (len, first) => {
                let mut heap = Vec::with_capacity(len);
                heap.extend(first);
                heap.extend(entries);
                OneOrMany::Many(heap)
            }
        }
    }
    fn insert(&mut self, at: usize, entry: OriginEntry<P>) {
        match self {
            OneOrMany::Many(heap) if heap.capacity() == 0 => *self = OneOrMany::One(entry),
            _ => EntryList::insert(self.spill(1), at, entry),
        }
    }
    fn capacity(&self) -> usize {
        match self {
            OneOrMany::One(_) => 1,
            OneOrMany::Many(heap) => heap.capacity().max(1),
        }
    }
    fn reserve_exact(&mut self, additional: usize) {
        let len = self.as_slice().len();
        if len + additional > self.capacity() {
            EntryList::reserve_exact(self.spill(additional), additional);
        }
    }
    fn extend_exact(&mut self, mut entries: impl ExactSizeIterator<Item = OriginEntry<P>>) {
        match (&*self, entries.len()) {
            (_, 0) => {}
            (OneOrMany::Many(heap), 1) if heap.capacity() == 0 => {
                if let Some(one) = entries.next() {
                    *self = OneOrMany::One(one);
                }
            }
            (_, len) => self.spill(len).extend(entries),
        }
    }
}

/// Partial aggregates by origin, sorted by `NodeId`, one entry per origin.
///
/// Encoded as a sequence of entries, exactly as a `Vec` of them is.
#[derive(Clone)]
pub(crate) struct PerOrigin<P: Partial> {
    entries: P::List,
}

impl<P: Partial + std::fmt::Debug> std::fmt::Debug for PerOrigin<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the derived form of a struct holding the entries: which form holds them is not
        // part of the value.
        f.debug_struct("PerOrigin")
            .field("entries", &self.entries.as_slice())
            .finish()
    }
}

impl<P: Partial> PartialEq for PerOrigin<P> {
    fn eq(&self, other: &Self) -> bool {
        self.entries.as_slice() == other.entries.as_slice()
    }
}

impl<P: Partial> Eq for PerOrigin<P> {}

/// [`PerOrigin`]'s encoding: a struct of one field, its entries as a sequence.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "PerOrigin")]
struct EncodedList<L> {
    entries: L,
}

#[cfg(feature = "serde")]
impl<P: Partial + serde::Serialize> serde::Serialize for PerOrigin<P> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        EncodedList {
            entries: self.entries.as_slice(),
        }
        .serialize(serializer)
    }
}

/// A list's entries, read as a `Vec` is: serde preallocates at most a bounded amount for a
/// length the bytes claim.
#[cfg(feature = "serde")]
impl<'de, P: Partial + serde::Deserialize<'de>> serde::Deserialize<'de> for PerOrigin<P> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let EncodedList { entries } =
            EncodedList::<Vec<OriginEntry<P>>>::deserialize(deserializer)?;
        Ok(Self {
            entries: P::List::from_slice(&entries),
        })
    }
}

impl<P: Partial> Default for PerOrigin<P> {
    fn default() -> Self {
        Self {
            entries: P::List::default(),
        }
    }
}

impl<P: Partial> PerOrigin<P> {
    /// The entries a replica that knows `known` may lack: those of later sequence numbers.
    pub(crate) fn restricted(&self, known: &rhizo_clock::VectorClock) -> Self {
        let mut entries = Vec::new();
        self.restricted_into(walking(known), &mut entries, |partial| partial);
        // Room for every entry was made at once; a kept state holds only its own.
        Self {
            entries: P::List::from_slice(&entries),
        }
    }

    /// The entries a replica may lack, appended to `out`: those whose sequence number is
    /// above `seen` of their origin, the counter of the receiver's clock (asked once per
    /// entry, in origin order).
    // Always: restricting runs once per cell of every delta, and inlined into the delta's loop
    // the way `seen` finds a counter is compiled into it.
    #[inline(always)]
    pub(crate) fn restricted_into<Q: Copy>(
        &self,
        mut seen: impl FnMut(NodeId) -> u64,
        out: &mut Vec<OriginEntry<Q>>,
        convert: impl Fn(P) -> Q,
    ) {
        let entries = self.entries.as_slice();
        out.reserve(entries.len());
        for entry in entries {
            if entry.seq.get() > seen(entry.node) {
                out.push(entry.converted(&convert));
            }
        }
    }

    /// The entries, sorted by origin.
    pub(crate) fn entries(&self) -> &[OriginEntry<P>] {
        self.entries.as_slice()
    }

    /// A list holding `entries` (sorted by origin, each origin once, as a list's own are).
    pub(crate) fn from_entries(entries: &[OriginEntry<P>]) -> Self {
        Self {
            entries: P::List::from_slice(entries),
        }
    }

    /// A list holding `entries` with their partials converted (exactly), allocated once.
    pub(crate) fn from_converted<Q: Copy>(
        entries: &[OriginEntry<Q>],
        convert: impl Fn(Q) -> P,
    ) -> Self {
        Self {
            entries: P::List::from_exact(entries.iter().map(|e| e.converted(&convert))),
        }
    }

    /// The entries, to change partials and sequence numbers in place (never origins: the
    /// list stays sorted by origin).
    #[inline]
    pub(crate) fn entries_mut(&mut self) -> &mut [OriginEntry<P>] {
        self.entries.as_mut_slice()
    }

    /// The partial `dot`'s update applies to: its origin's, or the identity for a new origin;
    /// `None` if `dot` is not newer than what its origin already contributed (a duplicate).
    pub(crate) fn prior(&self, dot: Dot) -> Option<P> {
        let entries = self.entries.as_slice();
        match entries.binary_search_by(|e| e.node.cmp(&dot.node())) {
            Ok(i) => (dot.counter() > entries[i].seq.get()).then_some(entries[i].partial),
            Err(_) => Some(P::IDENTITY),
        }
    }

    /// Sets `dot`'s origin's entry to `partial` as of `dot` (adding the origin if new).
    pub(crate) fn store(&mut self, dot: Dot, partial: P) {
        let entry = OriginEntry {
            node: dot.node(),
            seq: seq_of(dot),
            partial,
        };
        match self
            .entries
            .as_slice()
            .binary_search_by(|e| e.node.cmp(&dot.node()))
        {
            Ok(i) => self.entries.as_mut_slice()[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Applies an update named `dot` whose effect on its origin's partial is `step`.
    ///
    /// Returns `Ok(false)` without change if `dot` is not newer than what this origin already
    /// contributed (a duplicate delivery). If `step` fails, nothing changes.
    #[inline]
    pub(crate) fn apply(&mut self, dot: Dot, step: impl FnOnce(P) -> Result<P>) -> Result<bool> {
        match self
            .entries
            .as_slice()
            .binary_search_by(|e| e.node.cmp(&dot.node()))
        {
            Ok(i) => {
                let entry = &mut self.entries.as_mut_slice()[i];
                if dot.counter() <= entry.seq.get() {
                    return Ok(false);
                }
                entry.partial = step(entry.partial)?;
                entry.seq = seq_of(dot);
            }
            Err(i) => {
                let partial = step(P::IDENTITY)?;
                self.entries.insert(
                    i,
                    OriginEntry {
                        node: dot.node(),
                        seq: seq_of(dot),
                        partial,
                    },
                );
            }
        }
        Ok(true)
    }

    /// The join: for each origin, the entry with the higher sequence number (an origin's
    /// history is a chain, so the longer prefix contains the shorter).
    pub(crate) fn merge(&mut self, other: &PerOrigin<P>, expected_origins: usize) {
        self.merge_entries(other.entries.as_slice(), expected_origins, |partial| {
            partial
        });
    }

    /// [`PerOrigin::merge`] of another list's entries, their partials converted by `convert`
    /// (which must be exact, and keep the order of the partials it is given).
    #[inline]
    pub(crate) fn merge_entries<Q: Copy>(
        &mut self,
        theirs: &[OriginEntry<Q>],
        expected_origins: usize,
        convert: impl Fn(Q) -> P,
    ) {
        // In place, without allocating unless `other` brings new origins: a delta's restricted
        // cell usually brings news of origins this cell has, and building a fresh list for it
        // would allocate and free once per merge.
        // Pass 1: origins both hold take the higher entry; count those only `other` holds.
        // Indexing works on slices taken once: each index of the list itself would ask
        // again whether it is inline.
        let mine = self.entries.as_mut_slice();
        let mut missing = 0;
        let mut i = 0;
        for entry in theirs {
            while i < mine.len() && mine[i].node < entry.node {
                i += 1;
            }
            match mine.get_mut(i) {
                Some(held) if held.node == entry.node => {
                    let entry = entry.converted(&convert);
                    if (entry.seq, entry.partial) > (held.seq, held.partial) {
                        *held = entry;
                    }
                    i += 1;
                }
                _ => missing += 1,
            }
        }
        if missing == 0 {
            return;
        }
        // Pass 2: room for the new origins, then one merge in place. A list grows to exactly
        // its joined length (a replica of many cells keeps every list for as long as it runs,
        // so slack would be paid per cell; growth copies it to an allocation of that size), or,
        // when told how many origins to expect, to room for them up to four times its origins
        // (few cells written by many origins, where each merge would otherwise grow the list).
        // Local updates grow it by one slot per new origin. Growing first and merging backward
        // from the end needs one merge loop, where merging forward into a new list when there
        // is no room would need a second.
        let list = &mut self.entries;
        let old_len = list.as_slice().len();
        let joined_len = old_len + missing;
        if list.capacity() < joined_len {
            let room = joined_len.max(expected_origins.min(4 * joined_len));
            list.reserve_exact(room - old_len);
        }
        // Backward from the end, so that each entry of ours moves once, to its final place,
        // before anything overwrites it (ours fill the front, and a slot is written only after
        // the entry of ours that was there has moved further back).
        // The new slots are all overwritten below; `missing` of their entries fill them with a
        // copy (a resize would push them one at a time).
        list.extend_exact(theirs[..missing].iter().map(|e| e.converted(&convert)));
        let mine = list.as_mut_slice();
        let (mut write, mut i, mut j) = (joined_len, old_len, theirs.len());
        while j > 0 {
            write -= 1;
            if i > 0 && mine[i - 1].node >= theirs[j - 1].node {
                // Both hold it: pass 1 already kept the higher entry in ours.
                if mine[i - 1].node == theirs[j - 1].node {
                    j -= 1;
                }
                mine[write] = mine[i - 1];
                i -= 1;
            } else {
                mine[write] = theirs[j - 1].converted(&convert);
                j -= 1;
            }
        }
        // What is left of ours is already in place.
        debug_assert_eq!(write, i, "pass 1 counted the new origins");
    }

    /// The partials in `NodeId` order (the canonical fold order).
    pub(crate) fn partials(&self) -> impl ExactSizeIterator<Item = P> + '_ {
        self.entries.as_slice().iter().map(|e| e.partial)
    }

    /// The partial of the one origin, if exactly one has contributed.
    #[inline]
    pub(crate) fn only_partial(&self) -> Option<P> {
        match self.entries.as_slice() {
            [only] => Some(only.partial),
            _ => None,
        }
    }

    /// The highest counter applied from `node` (0 if none).
    pub(crate) fn seq(&self, node: NodeId) -> u64 {
        self.entries
            .as_slice()
            .binary_search_by(|e| e.node.cmp(&node))
            .map_or(0, |i| self.entries.as_slice()[i].seq.get())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.as_slice().is_empty()
    }

    pub(crate) fn check_canonical(&self) -> Result<()> {
        if !self
            .entries
            .as_slice()
            .windows(2)
            .all(|w| w[0].node < w[1].node)
        {
            return Err(AlgebraError::NonCanonical {
                reason: "origins must be strictly increasing".into(),
            });
        }
        // Sequence numbers start at 1: the entry's type holds no zero, and decoding refuses one.
        Ok(())
    }
}

/// `known`'s counter of each node asked, for nodes asked in increasing order: one walk along
/// the clock's sorted entries serves a whole list (a list's origins are sorted too). For one
/// list against a clock built for it alone; a delta, which asks one clock about every cell it
/// carries, looks each origin up in a [`rhizo_clock::ClockLookup`] instead, so that a cell of
/// a few origins does not walk a clock of many members.
pub(crate) fn walking(known: &rhizo_clock::VectorClock) -> impl FnMut(NodeId) -> u64 + '_ {
    let known = known.as_slice();
    let mut j = 0;
    move |node| {
        while j < known.len() && known[j].0 < node {
            j += 1;
        }
        match known.get(j) {
            Some(&(held, counter)) if held == node => counter,
            _ => 0,
        }
    }
}

/// An integer sum's partial while it fits: one inline entry of 32 bytes, or a heap list.
impl Partial for i64 {
    const IDENTITY: Self = 0;
    type List = OneOrMany<Self>;
}

/// An integer sum's partial once one has left `i64` (rare): a heap list, so that the sum's two
/// widths together are no larger than the inline narrow entry and a tag.
impl Partial for i128 {
    const IDENTITY: Self = 0;
    type List = Vec<OriginEntry<Self>>;
}

impl Partial for crate::TotalF64 {
    /// `-0.0` is the identity of IEEE addition: `-0.0 + x == x` bit for bit, for every `x`.
    const IDENTITY: Self = crate::TotalF64(-0.0);
    type List = OneOrMany<Self>;
}

/// The identity of float multiplication, wrapped so it can be a distinct partial type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub(crate) struct FloatProduct(pub(crate) crate::TotalF64);

impl Partial for FloatProduct {
    const IDENTITY: Self = FloatProduct(crate::TotalF64(1.0));
    type List = OneOrMany<Self>;
}

/// A 256-bit two's-complement integer, `hi · 2^128 + lo`: wide enough that sums of decimal
/// mantissas (each below 10^38 < 2^127) cannot overflow for fewer than 2^128 updates, so every
/// decimal sum is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct WideInt {
    // Field order matters: the derived `Ord` compares `hi` first, which is the numeric order.
    hi: i128,
    lo: u128,
}

impl WideInt {
    pub(crate) const ZERO: WideInt = WideInt { hi: 0, lo: 0 };

    pub(crate) fn from_i128(x: i128) -> Self {
        WideInt {
            hi: if x < 0 { -1 } else { 0 },
            lo: x as u128,
        }
    }

    pub(crate) fn checked_add(self, other: WideInt) -> Option<WideInt> {
        let (lo, carry) = self.lo.overflowing_add(other.lo);
        let hi = self
            .hi
            .checked_add(other.hi)?
            .checked_add(i128::from(carry))?;
        Some(WideInt { hi, lo })
    }

    pub(crate) fn to_i128(self) -> Option<i128> {
        let fits = (self.hi == 0 && self.lo <= i128::MAX as u128)
            || (self.hi == -1 && self.lo > i128::MAX as u128);
        fits.then_some(self.lo as i128)
    }
}

impl Partial for WideInt {
    const IDENTITY: Self = WideInt::ZERO;
    type List = Vec<OriginEntry<Self>>;
}

/// An exact integer product in an order-independent form: the sign and the magnitude, the
/// magnitude saturating at `u128::MAX`.
///
/// Saturation is exact for our purpose: every factor is 0 or has magnitude ≥ 1, so without a
/// zero the true magnitude never decreases — an intermediate magnitude past the i64 range means
/// the final one is too, whatever the order; a zero factor makes the product 0 in every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct IntProduct {
    negative: bool,
    magnitude: u128,
}

impl IntProduct {
    pub(crate) fn times(self, factor: IntProduct) -> IntProduct {
        let magnitude = self.magnitude.saturating_mul(factor.magnitude);
        IntProduct {
            // Zero has no sign, so that every zero product has one representation.
            negative: magnitude != 0 && (self.negative != factor.negative),
            magnitude,
        }
    }

    pub(crate) fn from_i64(v: i64) -> Self {
        IntProduct {
            negative: v < 0,
            magnitude: u128::from(v.unsigned_abs()),
        }
    }

    /// The product as an `i64`, or `None` if it is outside the i64 range.
    pub(crate) fn to_i64(self) -> Option<i64> {
        if self.negative {
            let m = i128::try_from(self.magnitude).ok()?;
            i64::try_from(-m).ok()
        } else {
            i64::try_from(self.magnitude).ok()
        }
    }
}

impl Partial for IntProduct {
    const IDENTITY: Self = IntProduct {
        negative: false,
        magnitude: 1,
    };
    type List = Vec<OriginEntry<Self>>;
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    /// Origins `0..n` as node ids, each entry `(seq, partial)` drawn per origin (a zero
    /// sequence number means the origin is absent).
    fn per_origin(draws: &[(u64, i64)], spare: usize) -> PerOrigin<i64> {
        let mut entries = OneOrMany::from_slice(&crate::testkit::drawn_entries(draws));
        entries.reserve_exact(spare);
        PerOrigin { entries }
    }

    #[test]
    fn one_origin_lists_hold_their_entry_inline_and_a_second_origin_moves_it_to_the_heap() {
        let (a, b) = (NodeId::numbered(1), NodeId::numbered(2));
        let mut sum = PerOrigin::<i64>::default();
        let add = |amount: i64| move |partial: i64| Ok(partial + amount);
        assert!(sum.apply(Dot::new(a, 1).unwrap(), add(5)).unwrap());
        assert!(sum.apply(Dot::new(a, 2).unwrap(), add(1)).unwrap());
        assert!(!sum.entries.spilled(), "one origin allocates nothing");
        assert_eq!(sum.only_partial(), Some(6));
        assert!(sum.apply(Dot::new(b, 1).unwrap(), add(10)).unwrap());
        assert!(sum.entries.spilled());
        assert_eq!(
            sum.entries.capacity(),
            2,
            "grown by the one origin it gained"
        );
        assert_eq!(sum.partials().collect::<Vec<_>>(), vec![6, 10]);
        let restricted = sum.restricted(&rhizo_clock::VectorClock::new());
        assert_eq!(restricted, sum);
        let mut one = PerOrigin::<crate::TotalF64>::default();
        one.apply(Dot::new(b, 1).unwrap(), |p| Ok(crate::TotalF64(p.0 + 1.5)))
            .unwrap();
        assert!(!one.entries.spilled());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_list_claiming_more_entries_than_its_bytes_hold_is_an_error_not_an_allocation() {
        // A length of 2^40 entries (40 TiB), then nothing: refused from the bytes that are
        // there, without reserving room for the claim.
        let mut bytes = Vec::new();
        let mut claim: u64 = 1 << 40;
        while claim >= 0x80 {
            bytes.push((claim as u8) | 0x80);
            claim >>= 7;
        }
        bytes.push(claim as u8);
        assert!(postcard::from_bytes::<PerOrigin<i128>>(&bytes).is_err());
        let one = PerOrigin::<i128>::from_entries(&[OriginEntry {
            node: NodeId::numbered(3),
            seq: NonZeroU64::new(2).unwrap(),
            partial: -4,
        }]);
        let encoded = postcard::to_allocvec(&one).unwrap();
        let as_vec = postcard::to_allocvec(&one.entries().to_vec()).unwrap();
        assert_eq!(encoded, as_vec, "encoded as a Vec of its entries is");
        let decoded: PerOrigin<i128> = postcard::from_bytes(&encoded).unwrap();
        assert_eq!(decoded, one);
        let narrow: PerOrigin<i64> = postcard::from_bytes(&encoded).unwrap();
        assert!(!narrow.entries.spilled(), "one entry decodes inline");
    }

    #[test]
    fn a_list_of_one_entry_is_the_same_value_inline_or_on_the_heap() {
        let entry = OriginEntry {
            node: NodeId::numbered(1),
            partial: 7i64,
            seq: NonZeroU64::new(3).unwrap(),
        };
        let inline = PerOrigin::<i64>::from_entries(&[entry]);
        let mut heap = PerOrigin::<i64> {
            entries: OneOrMany::Many(Vec::with_capacity(4)),
        };
        heap.merge_entries(&[entry], 0, |partial| partial);
        assert!(!inline.entries.spilled() && heap.entries.spilled());
        assert_eq!(inline, heap);
        assert_eq!(format!("{inline:?}"), format!("{heap:?}"));
        #[cfg(feature = "serde")]
        assert_eq!(
            postcard::to_allocvec(&inline).unwrap(),
            postcard::to_allocvec(&heap).unwrap()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn an_entry_of_sequence_number_zero_is_refused_when_decoded() {
        let encoded = |seq: u64| postcard::to_allocvec(&(1usize, NodeId::numbered(1), seq, 5i128));
        let one: PerOrigin<i128> = postcard::from_bytes(&encoded(1).unwrap()).unwrap();
        assert_eq!(one.seq(NodeId::numbered(1)), 1);
        let err = postcard::from_bytes::<PerOrigin<i128>>(&encoded(0).unwrap()).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
    }

    proptest::proptest! {
        /// `narrow_i64` is `i64::try_from`, across the range and at its edges.
        #[test]
        fn prop_narrow_i64_is_try_from(
            x in proptest::prop_oneof![
                proptest::num::i128::ANY,
                proptest::num::i64::ANY.prop_map(i128::from),
                (-2i128..=2).prop_map(|d| i128::from(i64::MAX) + d),
                (-2i128..=2).prop_map(|d| i128::from(i64::MIN) + d),
            ]
        ) {
            proptest::prop_assert_eq!(super::super::narrow_i64(x), i64::try_from(x).ok());
        }

        /// The merge into a list that has room and into one that must grow first give the
        /// same entries, and the first does not reallocate. (The name is from when a list
        /// without room was merged into a new one.)
        /// `state::tests::per_origin_join_is_the_entrywise_maximum` checks the join itself
        /// against the reference.
        #[test]
        fn prop_merge_in_place_equals_merge_into_a_new_list(
            mine in proptest::collection::vec((0u64..4, -5i64..5), 0..40),
            theirs in proptest::collection::vec((0u64..4, -5i64..5), 0..40),
            expected_origins in 0usize..64,
        ) {
            let other = per_origin(&theirs, 0);
            let mut roomy = per_origin(&mine, theirs.len());
            let mut tight = per_origin(&mine, 0);
            let capacity = roomy.entries.capacity();
            roomy.merge(&other, expected_origins);
            tight.merge(&other, expected_origins);
            proptest::prop_assert_eq!(&roomy, &tight);
            proptest::prop_assert_eq!(roomy.entries.capacity(), capacity, "merged in place");
            // A list that grew holds room for exactly its origins, or for the origins it
            // was told to expect up to four times its own.
            let len = tight.entries.as_slice().len();
            let room = len.max(expected_origins.min(4 * len));
            let before = per_origin(&mine, 0).entries.capacity();
            if len > before {
                proptest::prop_assert_eq!(tight.entries.capacity(), room);
            } else {
                proptest::prop_assert_eq!(tight.entries.capacity(), before);
            }
        }
    }

    #[test]
    fn wide_int_is_exact_past_i128() {
        let max = WideInt::from_i128(i128::MAX);
        let beyond = max.checked_add(WideInt::from_i128(1)).unwrap();
        assert_eq!(beyond.to_i128(), None);
        let back = beyond.checked_add(WideInt::from_i128(-1)).unwrap();
        assert_eq!(back.to_i128(), Some(i128::MAX));
        let min = WideInt::from_i128(i128::MIN);
        assert_eq!(min.to_i128(), Some(i128::MIN));
        let below = min.checked_add(WideInt::from_i128(-1)).unwrap();
        assert_eq!(below.to_i128(), None);
        assert!(below < min && min < WideInt::ZERO && WideInt::ZERO < max && max < beyond);
    }

    #[test]
    fn int_product_saturation_and_zero() {
        let big = IntProduct::from_i64(i64::MIN);
        let p = big.times(big).times(big); // 2^189: saturates
        assert_eq!(p.to_i64(), None);
        assert_eq!(p.times(IntProduct::from_i64(0)).to_i64(), Some(0));
        assert_eq!(
            IntProduct::from_i64(i64::MIN)
                .times(IntProduct::IDENTITY)
                .to_i64(),
            Some(i64::MIN)
        );
        assert_eq!(
            IntProduct::from_i64(-1)
                .times(IntProduct::from_i64(i64::MIN))
                .to_i64(),
            None,
            "-i64::MIN = 2^63 does not fit"
        );
        assert_eq!(
            IntProduct::from_i64(-3)
                .times(IntProduct::from_i64(-4))
                .to_i64(),
            Some(12)
        );
        assert_eq!(
            IntProduct::from_i64(-3).times(IntProduct::from_i64(0)),
            IntProduct::from_i64(0),
            "zero has one representation"
        );
    }
}
