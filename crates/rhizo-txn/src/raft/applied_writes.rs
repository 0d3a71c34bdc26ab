//! At-most-once application of write entries, and the Raft snapshot payload that carries it
//! (with the replica's image and the schema).
//!
//! Raft orders what it is given: a follower's forwarded proposal that the network repeats, or
//! that arrives after its proposer's next one, becomes a second log entry like any other. Each
//! write names its proposal ([`ProposalId`]), and one proposer numbers its proposals in the order
//! it makes them, so a member keeps only the newest write it applied from each proposer: an
//! entry whose proposal is not newer is a repeat or overtaken, and is skipped. The table is a
//! function of the log prefix, so every member skips the same entries.

use std::collections::BTreeMap;

use rhizo_algebra::Schema;
use rhizo_clock::NodeId;
use rhizo_commit::{Record, wire};
use serde::{Deserialize, Serialize};

use super::membership::Membership;
use super::node::ProposalId;

/// The newest write applied from each proposer: `(incarnation, seq)` by node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppliedWrites(BTreeMap<NodeId, (u64, u64)>);

impl AppliedWrites {
    /// Whether the write `id` may apply: its proposal is newer than every write applied from
    /// its proposer. If so it is recorded as the newest.
    pub(crate) fn admit(&mut self, id: ProposalId) -> bool {
        let newer = (id.incarnation, id.seq);
        match self.0.get_mut(&id.node) {
            Some(newest) if *newest >= newer => false,
            Some(newest) => {
                *newest = newer;
                true
            }
            None => {
                self.0.insert(id.node, newer);
                true
            }
        }
    }

    /// Joins a table taken at a later point of the same log (each proposer's newest wins).
    pub(crate) fn join(&mut self, other: &Self) {
        for (node, newest) in &other.0 {
            let entry = self.0.entry(*node).or_insert(*newest);
            *entry = (*entry).max(*newest);
        }
    }
}

/// What a Raft snapshot carries: the replica's image (a `rhizo_commit` snapshot record), the
/// schema in force and the applied-writes table, all at the snapshot's index — a member that
/// catches up by snapshot skips the entries that changed the schema or applied the writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotData {
    /// `wire::encode_record(&Record::Snapshot(..))` of the replica.
    pub(crate) image: Vec<u8>,
    /// The schema the log had ordered up to the snapshot.
    pub(crate) schema: Schema,
    /// The newest write applied from each proposer up to the snapshot.
    pub(crate) applied_writes: AppliedWrites,
    /// The group's membership at the snapshot.
    pub(crate) membership: Membership,
}

/// A snapshot's payload, decoded.
#[derive(Debug)]
pub(crate) struct DecodedSnapshot {
    /// The replica's image record.
    pub(crate) image: Record,
    /// The schema in force at the snapshot.
    pub(crate) schema: Schema,
    /// The applied-writes table at the snapshot.
    pub(crate) applied_writes: AppliedWrites,
    /// The membership at the snapshot.
    pub(crate) membership: Membership,
}

impl SnapshotData {
    /// The bytes a `raft` snapshot holds.
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a snapshot payload always encodes")
    }

    /// Decodes a snapshot's bytes. Malformed bytes are an error naming what failed, never a
    /// panic.
    pub(crate) fn decode(bytes: &[u8]) -> Result<DecodedSnapshot, String> {
        let data: Self =
            postcard::from_bytes(bytes).map_err(|e| format!("snapshot payload: {e}"))?;
        let image = wire::decode_record(&data.image).map_err(|e| format!("snapshot image: {e}"))?;
        Ok(DecodedSnapshot {
            image,
            schema: data.schema,
            applied_writes: data.applied_writes,
            membership: data.membership,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(node: u32, incarnation: u64, seq: u64) -> ProposalId {
        ProposalId {
            node: NodeId::numbered(node),
            incarnation,
            seq,
        }
    }

    #[test]
    fn a_repeated_or_overtaken_write_is_refused_and_others_are_not() {
        let mut table = AppliedWrites::default();
        assert!(table.admit(id(1, 1, 5)));
        assert!(!table.admit(id(1, 1, 5)), "a repeat");
        assert!(!table.admit(id(1, 1, 4)), "overtaken by 5");
        assert!(table.admit(id(2, 1, 1)), "another proposer is independent");
        assert!(table.admit(id(1, 1, 6)));
        assert!(table.admit(id(1, 2, 0)), "a new incarnation starts over");
        assert!(
            !table.admit(id(1, 1, 7)),
            "the old incarnation is overtaken"
        );
    }

    #[test]
    fn malformed_snapshot_bytes_are_an_error() {
        assert!(SnapshotData::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(SnapshotData::decode(&[]).is_err());
    }

    proptest! {
        /// The table after a log prefix, joined with the table after a longer prefix, is the
        /// longer prefix's table: what a follower holds after installing a leader's snapshot
        /// does not depend on how much of the log it had applied itself.
        #[test]
        fn joining_a_later_table_gives_the_later_table(
            log in prop::collection::vec((0u32..3, 0u64..3, 0u64..20), 0..60),
            cut in 0usize..60,
        ) {
            let cut = cut.min(log.len());
            let mut early = AppliedWrites::default();
            let mut late = AppliedWrites::default();
            for (i, (node, incarnation, seq)) in log.iter().enumerate() {
                if i < cut {
                    early.admit(id(*node, *incarnation, *seq));
                }
                late.admit(id(*node, *incarnation, *seq));
            }
            early.join(&late);
            prop_assert_eq!(early, late);
        }
    }
}
