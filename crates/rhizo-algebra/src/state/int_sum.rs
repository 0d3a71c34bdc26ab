//! An exact integer sum's per-origin entries, held with `i64` partials while every partial
//! fits one (32-byte entries) and with `i128` partials once one does not (40-byte entries).
//!
//! What must hold: the width is not part of the value. A narrow and a wide sum of the same
//! entries are `==`, print alike and encode to the same bytes — entries are encoded as
//! `(node, seq, partial as i128)` whatever they are held as. A narrow sum holds only partials
//! that fit `i64`; a sum widens the first time a partial it must hold (its own update's, or
//! one merged in) does not, and never narrows again (a decoded sum is narrow if it can be).

use rhizo_clock::{Dot, NodeId, VectorClock};

use super::{OriginEntry, PerOrigin, add_int, narrow_i64};
use crate::{AlgebraError, Result, ValueType};

/// An integer sum's entries by origin: `i64` partials while they all fit, else `i128`.
#[derive(Clone)]
pub(crate) enum IntSum {
    /// Every partial fits in `i64`.
    Narrow(PerOrigin<i64>),
    /// A partial did not fit in `i64` when it was stored.
    Wide(PerOrigin<i128>),
}

// Both widths and the tag fit the 40 bytes a cell state's kind may take.
const _: () = assert!(std::mem::size_of::<IntSum>() == 40);

impl Default for IntSum {
    fn default() -> Self {
        IntSum::Narrow(PerOrigin::default())
    }
}

/// An integer sum's entries, each as an `i128` entry, in origin order.
#[derive(Clone)]
pub(crate) enum Entries<'a> {
    /// Entries held narrow, widened as they are read.
    Narrow(std::slice::Iter<'a, OriginEntry<i64>>),
    /// Entries held wide (a sum's, or a delta buffer's).
    Wide(std::slice::Iter<'a, OriginEntry<i128>>),
}

impl Iterator for Entries<'_> {
    type Item = OriginEntry<i128>;

    #[inline]
    fn next(&mut self) -> Option<OriginEntry<i128>> {
        match self {
            Entries::Narrow(entries) => entries.next().map(|e| e.converted(i128::from)),
            Entries::Wide(entries) => entries.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Entries::Narrow(entries) => entries.size_hint(),
            Entries::Wide(entries) => entries.size_hint(),
        }
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// An integer sum's entries held elsewhere (a delta buffer's), at the width they are held.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EntrySlice<'a> {
    /// Every partial fits in `i64`.
    Narrow(&'a [OriginEntry<i64>]),
    /// Held with `i128` partials (which may fit in `i64` or not).
    Wide(&'a [OriginEntry<i128>]),
}

impl<'a> EntrySlice<'a> {
    /// The entries as `i128` entries, sorted by origin.
    #[inline]
    pub(crate) fn entries(self) -> Entries<'a> {
        match self {
            EntrySlice::Narrow(entries) => Entries::Narrow(entries.iter()),
            EntrySlice::Wide(entries) => Entries::Wide(entries.iter()),
        }
    }
}

impl PartialEq for IntSum {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (IntSum::Narrow(a), IntSum::Narrow(b)) => a == b,
            (IntSum::Wide(a), IntSum::Wide(b)) => a == b,
            _ => self.len() == other.len() && self.entries().eq(other.entries()),
        }
    }
}

impl Eq for IntSum {}

impl std::fmt::Debug for IntSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As a wide list prints: the width is not part of the value.
        f.debug_struct("PerOrigin")
            .field("entries", &self.entries().collect::<Vec<_>>())
            .finish()
    }
}

/// Encoded as a list of `i128` entries is, whatever the width held.
#[cfg(feature = "serde")]
impl serde::Serialize for IntSum {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        EncodedSum::of(self.entries()).serialize(serializer)
    }
}

/// A `PerOrigin<i128>`'s encoding, from entries of either width: a struct of one field, its
/// entries as a sequence of `i128` entries. How a sum is written whether it is held whole or
/// as a slice of a list's buffer, so the two write the same bytes.
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(rename = "PerOrigin")]
pub(crate) struct EncodedSum<'a> {
    entries: WideEntries<'a>,
}

#[cfg(feature = "serde")]
impl<'a> EncodedSum<'a> {
    pub(crate) fn of(entries: Entries<'a>) -> Self {
        Self {
            entries: WideEntries(entries),
        }
    }
}

/// Entries written as a sequence of `i128` entries: what a slice of them writes.
#[cfg(feature = "serde")]
struct WideEntries<'a>(Entries<'a>);

#[cfg(feature = "serde")]
impl serde::Serialize for WideEntries<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

/// Decoded as a list of `i128` entries, held narrow if every partial fits.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for IntSum {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let wide = PerOrigin::<i128>::deserialize(deserializer)?;
        Ok(IntSum::from_wide(wide))
    }
}

/// Whether every entry's partial fits in `i64`.
#[inline]
fn all_narrow(entries: &[OriginEntry<i128>]) -> bool {
    entries.iter().all(|e| narrow_i64(e.partial).is_some())
}

/// An `i128` partial known to fit in `i64` (checked by [`all_narrow`] first).
#[inline(always)]
fn truncate(partial: i128) -> i64 {
    partial as i64
}

impl IntSum {
    /// A wide list, held narrow if every partial fits.
    #[cfg(feature = "serde")]
    fn from_wide(wide: PerOrigin<i128>) -> Self {
        if all_narrow(wide.entries()) {
            IntSum::Narrow(PerOrigin::from_converted(wide.entries(), truncate))
        } else {
            IntSum::Wide(wide)
        }
    }

    /// A sum holding `entries` (sorted by origin, each origin once), narrow if it can be.
    pub(crate) fn from_entries(entries: &[OriginEntry<i128>]) -> Self {
        if all_narrow(entries) {
            IntSum::Narrow(PerOrigin::from_converted(entries, truncate))
        } else {
            IntSum::Wide(PerOrigin::from_entries(entries))
        }
    }

    /// A sum holding the entries of `slice` (sorted by origin, each origin once), narrow if it
    /// can be.
    pub(crate) fn from_slice(slice: EntrySlice<'_>) -> Self {
        match slice {
            EntrySlice::Narrow(entries) => IntSum::Narrow(PerOrigin::from_entries(entries)),
            EntrySlice::Wide(entries) => IntSum::from_entries(entries),
        }
    }

    /// The entries as `i128` entries, sorted by origin.
    #[inline]
    pub(crate) fn entries(&self) -> Entries<'_> {
        match self {
            IntSum::Narrow(list) => Entries::Narrow(list.entries().iter()),
            IntSum::Wide(list) => Entries::Wide(list.entries().iter()),
        }
    }

    /// The partials in `NodeId` order (the canonical fold order).
    #[inline]
    pub(crate) fn partials(&self) -> impl ExactSizeIterator<Item = i128> + '_ {
        self.entries().map(|e| e.partial)
    }

    /// The sequence numbers of every other entry and of the last, folded (0 if none): a word
    /// read from each cache line the entries span (two narrow entries fill a line), so that
    /// a caller reading many lists ahead has every line of each in flight at once.
    #[inline]
    pub(crate) fn lines_read(&self) -> u64 {
        fn fold<P: Copy>(entries: &[OriginEntry<P>]) -> u64 {
            let every_other = entries
                .iter()
                .step_by(2)
                .fold(0, |seen, e| seen ^ e.seq.get());
            every_other ^ entries.last().map_or(0, |e| e.seq.get())
        }
        match self {
            IntSum::Narrow(list) => fold(list.entries()),
            IntSum::Wide(list) => fold(list.entries()),
        }
    }

    /// How many origins have contributed.
    pub(crate) fn len(&self) -> usize {
        match self {
            IntSum::Narrow(list) => list.entries().len(),
            IntSum::Wide(list) => list.entries().len(),
        }
    }

    /// Whether the entries are held with `i64` partials.
    #[cfg(test)]
    pub(crate) fn is_narrow(&self) -> bool {
        matches!(self, IntSum::Narrow(_))
    }

    /// The same entries held wide, built as a sum that was wide from the start.
    #[cfg(test)]
    pub(crate) fn to_wide(&self) -> IntSum {
        let entries: Vec<_> = self.entries().collect();
        IntSum::Wide(PerOrigin::from_entries(&entries))
    }

    /// The partial of the one origin, if exactly one has contributed.
    #[inline]
    pub(crate) fn only_partial(&self) -> Option<i128> {
        match self {
            IntSum::Narrow(list) => list.only_partial().map(i128::from),
            IntSum::Wide(list) => list.only_partial(),
        }
    }

    /// The total of the partials, `None` if it leaves `i128`.
    fn checked_total(&self) -> Option<i128> {
        match self {
            // Fewer than 2^64 partials each below 2^63 in magnitude: the `i128` sum is exact.
            IntSum::Narrow(list) => Some(list.partials().map(i128::from).sum()),
            IntSum::Wide(list) => list
                .partials()
                .try_fold(0i128, |total, partial| total.checked_add(partial)),
        }
    }

    /// The highest counter applied from `node` (0 if none).
    pub(crate) fn seq(&self, node: NodeId) -> u64 {
        match self {
            IntSum::Narrow(list) => list.seq(node),
            IntSum::Wide(list) => list.seq(node),
        }
    }

    pub(crate) fn check_canonical(&self) -> Result<()> {
        match self {
            IntSum::Narrow(list) => list.check_canonical(),
            IntSum::Wide(list) => list.check_canonical(),
        }
    }

    /// The entries a replica that knows `known` may lack, at this sum's width.
    pub(crate) fn restricted(&self, known: &VectorClock) -> Self {
        match self {
            IntSum::Narrow(list) => IntSum::Narrow(list.restricted(known)),
            IntSum::Wide(list) => IntSum::Wide(list.restricted(known)),
        }
    }

    /// This sum's entries held wide (converted once if they were narrow).
    fn widen(&mut self) -> &mut PerOrigin<i128> {
        if let IntSum::Narrow(list) = self {
            *self = IntSum::Wide(PerOrigin::from_converted(list.entries(), i128::from));
        }
        match self {
            IntSum::Wide(list) => list,
            // Just replaced above.
            IntSum::Narrow(_) => unreachable!("widened"),
        }
    }

    /// The join: for each origin, the entry with the higher sequence number.
    pub(crate) fn merge(&mut self, other: &IntSum, expected_origins: usize) {
        match (&mut *self, other) {
            (IntSum::Narrow(mine), IntSum::Narrow(theirs)) => mine.merge(theirs, expected_origins),
            (IntSum::Wide(mine), IntSum::Wide(theirs)) => mine.merge(theirs, expected_origins),
            (IntSum::Wide(mine), IntSum::Narrow(theirs)) => {
                mine.merge_entries(theirs.entries(), expected_origins, i128::from);
            }
            (IntSum::Narrow(_), IntSum::Wide(theirs)) => {
                self.merge_entries(theirs.entries(), expected_origins);
            }
        }
    }

    /// [`IntSum::merge`] of a delta buffer's entries, at their width.
    #[inline]
    pub(crate) fn merge_slice(&mut self, theirs: EntrySlice<'_>, expected_origins: usize) {
        match (&mut *self, theirs) {
            (IntSum::Narrow(mine), EntrySlice::Narrow(theirs)) => {
                mine.merge_entries(theirs, expected_origins, |partial| partial);
            }
            (IntSum::Wide(mine), EntrySlice::Narrow(theirs)) => {
                mine.merge_entries(theirs, expected_origins, i128::from);
            }
            (_, EntrySlice::Wide(theirs)) => self.merge_entries(theirs, expected_origins),
        }
    }

    /// [`IntSum::merge`] of `i128` entries (another sum's, or a delta buffer's).
    #[inline]
    pub(crate) fn merge_entries(&mut self, theirs: &[OriginEntry<i128>], expected_origins: usize) {
        match self {
            IntSum::Wide(mine) => mine.merge_entries(theirs, expected_origins, |partial| partial),
            IntSum::Narrow(mine) if all_narrow(theirs) => {
                mine.merge_entries(theirs, expected_origins, truncate);
            }
            IntSum::Narrow(_) => {
                self.widen()
                    .merge_entries(theirs, expected_origins, |partial| partial);
            }
        }
    }

    /// Applies an update named `dot` whose effect on its origin's partial is `step`.
    ///
    /// Returns `Ok(false)` without change for a duplicate `dot`. If `step` fails, nothing
    /// changes.
    #[inline]
    pub(crate) fn apply(
        &mut self,
        dot: Dot,
        step: impl FnOnce(i128) -> Result<i128>,
    ) -> Result<bool> {
        match self {
            IntSum::Wide(list) => list.apply(dot, step),
            IntSum::Narrow(list) => {
                let Some(prior) = list.prior(dot) else {
                    return Ok(false);
                };
                let partial = step(i128::from(prior))?;
                match narrow_i64(partial) {
                    Some(narrow) => list.store(dot, narrow),
                    None => self.widen().store(dot, partial),
                }
                Ok(true)
            }
        }
    }

    /// [`IntSum::apply`] of an integer added to `dot`'s origin's partial.
    #[inline]
    pub(crate) fn add(&mut self, dot: Dot, amount: i64) -> Result<bool> {
        // A cell only the adder has written (a counter bumped by one server): no search.
        if let IntSum::Narrow(list) = self
            && let [entry] = list.entries_mut()
            && entry.node == dot.node()
        {
            if dot.counter() <= entry.seq.get() {
                return Ok(false);
            }
            if let Some(sum) = entry.partial.checked_add(amount) {
                entry.partial = sum;
                entry.seq = super::origin::seq_of(dot);
                return Ok(true);
            }
        }
        self.apply(dot, |partial| add_int(partial, amount))
    }

    /// Adds `amount` under `dot` as [`IntSum::apply`] does, refusing it if the sum of all
    /// partials is in `i64` now and would leave it (the committer's range check).
    ///
    /// Returns `Ok(false)` without change for a duplicate `dot`. On error nothing changes.
    #[inline]
    pub(crate) fn add_in_range(&mut self, dot: Dot, amount: i64) -> Result<bool> {
        // A cell only its committer has written, the commonest: its one narrow partial is the
        // total, so the range check is an `i64` add whose result is the new partial. The same
        // checks, in the same order, as `add_in_range_searched`.
        if let IntSum::Narrow(list) = self
            && let [entry] = list.entries_mut()
            && entry.node == dot.node()
        {
            let sum = entry
                .partial
                .checked_add(amount)
                .ok_or_else(|| AlgebraError::overflow(ValueType::Integer))?;
            if dot.counter() <= entry.seq.get() {
                return Ok(false);
            }
            entry.partial = sum;
            entry.seq = super::origin::seq_of(dot);
            return Ok(true);
        }
        self.add_in_range_searched(dot, amount)
    }

    /// [`IntSum::add_in_range`] of any cell but one only `dot`'s origin has written (narrow):
    /// out of line, so that the one-origin path inlines into the commit without this frame.
    #[inline(never)]
    fn add_in_range_searched(&mut self, dot: Dot, amount: i64) -> Result<bool> {
        let overflow = || AlgebraError::overflow(ValueType::Integer);
        // A sum already out of range (through others' updates) is left to its reads.
        if let Some(total) = self.checked_total()
            && i64::try_from(total).is_ok()
            && i64::try_from(total + i128::from(amount)).is_err()
        {
            return Err(overflow());
        }
        self.apply(dot, |partial| {
            partial.checked_add(i128::from(amount)).ok_or_else(overflow)
        })
    }
}

#[cfg(test)]
mod tests;
