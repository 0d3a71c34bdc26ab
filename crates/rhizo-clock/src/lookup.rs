//! A vector clock's counters in an open-addressing table, for callers that look up many nodes
//! in one clock in no particular order.

use crate::{NodeId, VectorClock};

/// The counters of one [`VectorClock`], found by node with a hash and (usually) one probe
/// instead of a search of the clock's sorted entries.
///
/// A delta restricts every cell it carries to what its receiver lacks, asking the receiver's
/// clock for each origin of each cell: over a clock of many members that is many lookups in
/// one clock, and building this table once per delta makes each of them cost about the same
/// whatever the number of members.
///
/// ```
/// use rhizo_clock::{NodeId, VectorClock};
/// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
/// let clock = VectorClock::new().with_node(a, 3);
/// let lookup = clock.lookup();
/// assert_eq!((lookup.get(a), lookup.get(b)), (3, 0));
/// assert_eq!(lookup.clock(), &clock);
/// ```
#[derive(Debug, Clone)]
pub struct ClockLookup<'a> {
    clock: &'a VectorClock,
    /// A power of two of slots, at most half full, each a node and its counter; an empty slot
    /// holds [`NodeId::UNNAMED`] and counter 0 (a clock holds no zero counter). Linear probing:
    /// a node sits at or after the slot its hash names, with no empty slot in between.
    slots: Box<[(NodeId, u64)]>,
    /// 64 minus the number of index bits: the slot is the top bits of [`NodeId::mixed`].
    shift: u32,
}

impl<'a> ClockLookup<'a> {
    /// The table of `clock`'s counters.
    pub fn new(clock: &'a VectorClock) -> Self {
        // At most half full, so that a probe runs past few occupied slots; at least two slots,
        // so that the shift stays below 64.
        let len = (2 * clock.node_count()).next_power_of_two().max(2);
        let shift = 64 - len.trailing_zeros();
        let mut slots = vec![(NodeId::UNNAMED, 0); len].into_boxed_slice();
        let mask = len - 1;
        for (node, counter) in clock.iter() {
            let mut at = Self::home(node, shift);
            while slots[at].1 != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = (node, counter);
        }
        Self {
            clock,
            slots,
            shift,
        }
    }

    #[inline]
    fn home(node: NodeId, shift: u32) -> usize {
        // The shift leaves at most as many bits as index a slot, which a `usize` holds.
        (node.mixed() >> shift) as usize
    }

    /// How many events of `node` the clock knows (0 if none): [`VectorClock::get`].
    #[inline]
    pub fn get(&self, node: NodeId) -> u64 {
        let mask = self.slots.len() - 1;
        let mut at = Self::home(node, self.shift);
        loop {
            let (held, counter) = self.slots[at];
            // An empty slot ends the probe: its counter is the 0 an absent node has.
            if held == node || counter == 0 {
                return counter;
            }
            at = (at + 1) & mask;
        }
    }

    /// The clock the table was built from.
    pub fn clock(&self) -> &'a VectorClock {
        self.clock
    }
}

impl VectorClock {
    /// This clock's counters in a table for many lookups ([`ClockLookup`]).
    pub fn lookup(&self) -> ClockLookup<'_> {
        ClockLookup::new(self)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Each of `asked` looked up in the table answers what the clock does.
    fn agrees_with_the_clock(clock: &VectorClock, asked: impl Iterator<Item = NodeId>) {
        let lookup = clock.lookup();
        for node in asked {
            assert_eq!(lookup.get(node), clock.get(node), "{node}");
        }
    }

    #[test]
    fn an_empty_clock_answers_zero_for_every_node() {
        let clock = VectorClock::new();
        let lookup = clock.lookup();
        assert_eq!(lookup.slots.len(), 2);
        assert_eq!(lookup.get(NodeId::numbered(0)), 0);
        assert_eq!(lookup.get(NodeId::new("a").unwrap()), 0);
    }

    #[test]
    fn a_clock_of_a_hundred_numbered_members_is_found_member_by_member() {
        let clock = (0..100).fold(VectorClock::new(), |clock, i| {
            clock.with_node(NodeId::numbered(i), u64::from(i) + 1)
        });
        let lookup = clock.lookup();
        assert_eq!(lookup.slots.len(), 256, "at most half full");
        agrees_with_the_clock(&clock, (0..300).map(NodeId::numbered));
        // Probes stay short for the simulator's names: the mixing spreads names that differ
        // only in a few bytes of one word.
        let longest_run = lookup
            .slots
            .split(|(_, counter)| *counter == 0)
            .map(<[_]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest_run <= 12, "a run of {longest_run} occupied slots");
    }

    proptest! {
        /// The table answers what the clock does, for nodes it holds and nodes it does not,
        /// whatever their names (16-byte names fill both words).
        #[test]
        fn prop_lookup_is_get(
            entries in prop::collection::vec(("[a-z0-9]{1,16}", 1u64..u64::MAX), 0..64),
            others in prop::collection::vec("[a-z0-9]{1,16}", 0..16),
        ) {
            let clock = entries.iter().fold(VectorClock::new(), |clock, (name, counter)| {
                clock.with_node(NodeId::new(name).unwrap(), *counter)
            });
            let asked: Vec<NodeId> = entries
                .iter()
                .map(|(name, _)| name)
                .chain(&others)
                .map(|name| NodeId::new(name).unwrap())
                .collect();
            let lookup = clock.lookup();
            for node in asked {
                prop_assert_eq!(lookup.get(node), clock.get(node));
            }
            prop_assert!(2 * clock.node_count() <= lookup.slots.len());
        }
    }
}
