//! Metadata collection: once a healed cluster has fallen silent and every member counts every
//! other, no replica keeps a tombstone or an index entry, and every stable point has reached
//! its clock.
//!
//! It protects the other half of observed-remove sets: tombstones and per-origin index entries
//! are kept only until every member has seen the updates they describe. A replica that keeps
//! them for ever leaks; one that collects them early (before a member that may hold the removed
//! element has seen the remove) lets the element come back, which the oracle catches. This
//! checker catches the leak, in particular after membership changes: a member removed, or one
//! joining, must not leave another replica waiting for it for ever.

use rhizo_clock::{NodeId, VectorClock};

use crate::{ReplicaNode, SimulatedCluster};

/// What a quiet cluster failed to collect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataViolation {
    /// A replica still holds tombstones or index entries.
    #[error("{node} keeps {tombstones} tombstones and {indexed_ranges} index entries")]
    Uncollected {
        /// The replica.
        node: NodeId,
        /// Observed-remove tombstones it holds.
        tombstones: usize,
        /// Per-origin index entries it holds.
        indexed_ranges: usize,
    },
    /// A replica's stable point lags its clock although every member holds everything.
    #[error("{node}'s stable point {stable} lags its clock {clock}")]
    StableBehind {
        /// The replica.
        node: NodeId,
        /// Its stable point.
        stable: VectorClock,
        /// Its clock.
        clock: VectorClock,
    },
}

/// Checks every running replica of a cluster that is healed, converged and quiescent, and whose
/// members all count each other (the caller's precondition: metadata waits, rightly, for a
/// member that is down or not yet counted).
pub fn check(cluster: &SimulatedCluster<ReplicaNode>) -> Result<(), MetadataViolation> {
    for (node, running) in cluster.running_nodes() {
        let replica = running.replica();
        let (tombstones, indexed_ranges) = (replica.tombstones(), replica.indexed_ranges());
        if tombstones != 0 || indexed_ranges != 0 {
            return Err(MetadataViolation::Uncollected {
                node,
                tombstones,
                indexed_ranges,
            });
        }
        if replica.stable_clock() != replica.clock() {
            return Err(MetadataViolation::StableBehind {
                node,
                stable: replica.stable_clock().clone(),
                clock: replica.clock().clone(),
            });
        }
    }
    Ok(())
}
