//! Invariant checkers over what a simulated Raft cluster recorded, one module per invariant.
//!
//! The history outlives crashes (the simulation keeps it beside the cluster): what every node
//! applied at which index, who led which term, which writes were acknowledged, and each
//! register operation's invocation and completion in virtual time.

mod linearizable;
mod lost_writes;
mod split_brain;

pub use linearizable::check_linearizable;
pub use lost_writes::check_no_lost_writes;
pub use split_brain::check_no_split_brain;

use std::collections::{BTreeMap, BTreeSet};

use rhizo_clock::NodeId;

/// One operation on a single register, as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOp {
    /// The register's name.
    pub key: String,
    /// `Some(v)` for a write of `v`; `None` for a read.
    pub write: Option<i64>,
    /// For a completed read: the value seen (`None` = never written). Beside a write: the
    /// value the write required — a compare-and-set that took effect (or, with an unknown
    /// outcome, may have), which reads that value and writes its own in one step.
    pub read: Option<Option<i64>>,
    /// Invocation, virtual µs.
    pub invoked: u64,
    /// Completion, virtual µs; `None` when the outcome is unknown (timeout, crash).
    pub completed: Option<u64>,
}

/// What a simulated Raft cluster recorded for the checkers.
#[derive(Debug, Default, Clone)]
pub struct RaftHistory {
    /// For each term, the nodes that acted as its leader.
    pub leaders: BTreeMap<u64, BTreeSet<NodeId>>,
    /// For each node (across its lives), each applied index's `(term, hash of the entry)`.
    pub applied: BTreeMap<NodeId, BTreeMap<u64, (u64, u64)>>,
    /// A node applied two different entries at one index (across a restart, say).
    pub conflicts: Vec<String>,
    /// Log indices of acknowledged coordinated writes.
    pub acknowledged: Vec<u64>,
    /// The sum of acknowledged increments of the shared counter (both paths).
    pub counter_acknowledged: i64,
    /// The sum of increments whose outcome is unknown (they may or may not count).
    pub counter_unknown: i64,
    /// Register operations.
    pub ops: Vec<RegisterOp>,
}

impl RaftHistory {
    /// Notes that `node` applied the entry `(index, term, data)`.
    pub fn note_applied(&mut self, node: NodeId, index: u64, term: u64, data: &[u8]) {
        let entry = (term, fingerprint(data));
        let seen = self.applied.entry(node).or_default();
        match seen.get(&index) {
            Some(previous) if *previous != entry => self.conflicts.push(format!(
                "{node} applied two entries at index {index}: {previous:?} then {entry:?}"
            )),
            Some(_) => {}
            None => {
                seen.insert(index, entry);
            }
        }
    }

    /// Notes that `node` acted as leader in `term`.
    pub fn note_leader(&mut self, term: u64, node: NodeId) {
        self.leaders.entry(term).or_default().insert(node);
    }
}

/// A fingerprint of an entry's bytes, compared only within one run: `DefaultHasher::new` is
/// keyed by constants, so it is deterministic, and it is already at hand.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests;
