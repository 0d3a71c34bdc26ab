//! A vector clock's counters in an open-addressing table, for callers that look up many nodes
//! in one clock in no particular order.

use crate::{NodeId, VectorClock};

/// The counters of one [`VectorClock`], found by node with a hash and (usually) one probe
/// instead of a search of the clock's sorted entries.
///
/// A delta restricts every cell it carries to what its receiver lacks, asking the receiver's
/// clock for each origin of each cell: over a clock of many members that is many lookups in
/// one clock, and a table built once per delta makes each of them cost about the same
/// whatever the number of members. The table lives in [`LookupSlots`] its caller keeps and
/// refills clock after clock, so that building one allocates nothing once the slots have
/// grown to the clocks they index.
///
/// ```
/// use rhizo_clock::{LookupSlots, NodeId, VectorClock};
/// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
/// let clock = VectorClock::new().with_node(a, 3);
/// let mut slots = LookupSlots::default();
/// let lookup = clock.lookup_in(&mut slots);
/// assert_eq!((lookup.get(a), lookup.get(b)), (3, 0));
/// assert_eq!(lookup.clock(), &clock);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClockLookup<'a> {
    clock: &'a VectorClock,
    /// The clock's entries, sorted by node.
    entries: &'a [(NodeId, u64)],
    /// [`LookupSlots::slots`], filled for this clock.
    slots: &'a [u32],
    /// 64 minus the number of index bits: the slot is the top bits of [`NodeId::mixed`].
    shift: u32,
}

/// Room for the table of a [`ClockLookup`], kept to be refilled for clock after clock.
#[derive(Debug, Clone, Default)]
pub struct LookupSlots {
    /// A power of two of slots, at most half full, each 0 (empty) or one more than the
    /// position of a clock's entry: positions rather than entries, so that the table for a
    /// hundred members is a kilobyte, which stays in the first-level cache beside the lists
    /// it is asked about. Linear probing: an entry sits at or after the slot its node's hash
    /// names, with no empty slot in between.
    slots: Vec<u32>,
}

impl<'a> ClockLookup<'a> {
    /// The table of `clock`'s counters, in `room`'s slots.
    ///
    /// # Panics
    /// Only for a clock of 2³² nodes or more (a position must fit in a `u32`), which no clock
    /// in memory holds: its entries alone would take 96 GiB.
    pub fn new(clock: &'a VectorClock, room: &'a mut LookupSlots) -> Self {
        let entries = clock.as_slice();
        // At most half full, so that a probe runs past few occupied slots; at least two slots,
        // so that the shift stays below 64.
        let len = (2 * entries.len()).next_power_of_two().max(2);
        let shift = 64 - len.trailing_zeros();
        let slots = &mut room.slots;
        slots.clear();
        slots.resize(len, 0);
        let mask = len - 1;
        for (position, &(node, _)) in entries.iter().enumerate() {
            let mut at = Self::home(node, shift);
            while slots[at] != 0 {
                at = (at + 1) & mask;
            }
            slots[at] = u32::try_from(position + 1).expect("fewer than 2^32 nodes");
        }
        Self {
            clock,
            entries,
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
            // An empty slot ends the probe: the node is absent.
            let Some(position) = self.slots[at].checked_sub(1) else {
                return 0;
            };
            let (held, counter) = self.entries[position as usize];
            if held == node {
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
    /// This clock's counters in a table for many lookups ([`ClockLookup`]), in `room`.
    pub fn lookup_in<'a>(&'a self, room: &'a mut LookupSlots) -> ClockLookup<'a> {
        ClockLookup::new(self, room)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Each of `asked` looked up in the table answers what the clock does.
    fn agrees_with_the_clock(clock: &VectorClock, asked: impl Iterator<Item = NodeId>) {
        let mut room = LookupSlots::default();
        let lookup = clock.lookup_in(&mut room);
        for node in asked {
            assert_eq!(lookup.get(node), clock.get(node), "{node}");
        }
    }

    #[test]
    fn an_empty_clock_answers_zero_for_every_node() {
        let clock = VectorClock::new();
        let mut room = LookupSlots::default();
        let lookup = clock.lookup_in(&mut room);
        assert_eq!(lookup.slots.len(), 2);
        assert_eq!(lookup.get(NodeId::numbered(0)), 0);
        assert_eq!(lookup.get(NodeId::new("a").unwrap()), 0);
    }

    #[test]
    fn a_clock_of_a_hundred_numbered_members_is_found_member_by_member() {
        let clock = (0..100).fold(VectorClock::new(), |clock, i| {
            clock.with_node(NodeId::numbered(i), u64::from(i) + 1)
        });
        let mut room = LookupSlots::default();
        let lookup = clock.lookup_in(&mut room);
        assert_eq!(lookup.slots.len(), 256, "at most half full");
        agrees_with_the_clock(&clock, (0..300).map(NodeId::numbered));
        // Probes stay short for the simulator's names: the mixing spreads names that differ
        // only in a few bytes of one word.
        let longest_run = lookup
            .slots
            .split(|slot| *slot == 0)
            .map(<[_]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest_run <= 12, "a run of {longest_run} occupied slots");
    }

    fn named_clock(entries: &[(String, u64)]) -> VectorClock {
        entries
            .iter()
            .fold(VectorClock::new(), |clock, (name, counter)| {
                clock.with_node(NodeId::new(name).unwrap(), *counter)
            })
    }

    proptest! {
        /// The table answers what the clock does, for nodes it holds and nodes it does not,
        /// whatever their names (16-byte names fill both words), also in slots refilled after
        /// another clock's table (none of that clock's entries may linger).
        #[test]
        fn prop_lookup_is_get(
            before in prop::collection::vec(("[a-z0-9]{1,16}", 1u64..u64::MAX), 0..64),
            entries in prop::collection::vec(("[a-z0-9]{1,16}", 1u64..u64::MAX), 0..64),
            others in prop::collection::vec("[a-z0-9]{1,16}", 0..16),
        ) {
            let (earlier, clock) = (named_clock(&before), named_clock(&entries));
            let asked: Vec<NodeId> = before
                .iter()
                .chain(&entries)
                .map(|(name, _)| name)
                .chain(&others)
                .map(|name| NodeId::new(name).unwrap())
                .collect();
            let mut room = LookupSlots::default();
            prop_assert_eq!(earlier.lookup_in(&mut room).clock(), &earlier);
            let lookup = clock.lookup_in(&mut room);
            for node in asked {
                prop_assert_eq!(lookup.get(node), clock.get(node));
            }
            prop_assert!(2 * clock.node_count() <= lookup.slots.len());
        }
    }
}
