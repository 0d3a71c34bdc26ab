//! Read-your-writes on any node: the commits a read must already see, wherever they were
//! acknowledged.
//!
//! Every committed transaction is named by a dot ([`CommitOutcome::dot`]): `(node, n)` for a
//! coordination-free commit on `node`, `(consensus-log, index)` for one the log ordered. A node
//! holds a commit exactly when its vector clock covers the dot: a replica merges a delta's clock
//! only once the delta's every cell is installed, and applies an origin's updates in that
//! origin's order, so covering `(node, n)` means holding every update of `node` up to `n`; the
//! consensus entry of the clock is the last log index applied. A token is therefore one vector
//! clock, the join of the dots it was given, and "this node may serve the read" is one
//! clock comparison, with no coordination.

use rhizo_clock::{Dot, VectorClock};
use serde::{Deserialize, Serialize};

use crate::CommitOutcome;

/// The commits a read must see before it is served: built from the outcomes of commits
/// (made on this node or any other) and handed to a read on any node, which waits until that
/// node holds them all ([`crate::Engine::read_cells_after`]).
///
/// ```
/// use rhizo_clock::{Dot, NodeId};
/// use rhizo_txn::{CommitOutcome, CommitPath, ReadAfter};
/// let a = NodeId::new("a").unwrap();
/// let outcome = CommitOutcome {
///     dot: Some(Dot::new(a, 3).unwrap()),
///     sequence: None,
///     durable: true,
///     path: CommitPath::Local,
/// };
/// let after = ReadAfter::new().with(&outcome);
/// assert_eq!(after.clock().get(a), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAfter {
    clock: VectorClock,
}

impl ReadAfter {
    /// No commits: any node serves the read at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every commit `clock` covers (a node's clock read earlier, for monotonic reads).
    pub fn from_clock(clock: VectorClock) -> Self {
        Self { clock }
    }

    /// This token and the commit `outcome` names.
    #[must_use]
    pub fn with(mut self, outcome: &CommitOutcome) -> Self {
        self.include(outcome);
        self
    }

    /// Adds the commit `outcome` names (a schema change names none and adds nothing).
    pub fn include(&mut self, outcome: &CommitOutcome) {
        if let Some(dot) = outcome.dot {
            self.include_dot(dot);
        }
    }

    /// Adds the commit named `dot`.
    pub fn include_dot(&mut self, dot: Dot) {
        if self.clock.get(dot.node()) < dot.counter() {
            self.clock.set(dot.node(), dot.counter());
        }
    }

    /// The commits, as the clock that covers exactly them and their causal past per origin.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Whether the token names no commit.
    pub fn is_empty(&self) -> bool {
        self.clock.is_empty()
    }

    /// What of the token a node whose clock is `held` does not hold yet (empty when it holds
    /// everything).
    pub fn missing_from(&self, held: &VectorClock) -> VectorClock {
        let mut missing = VectorClock::new();
        for (node, counter) in self.clock.iter() {
            if held.get(node) < counter {
                missing.set(node, counter);
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use rhizo_clock::NodeId;

    use super::*;
    use crate::CommitPath;

    fn outcome(dot: Option<Dot>) -> CommitOutcome {
        CommitOutcome {
            dot,
            sequence: None,
            durable: false,
            path: CommitPath::Local,
        }
    }

    #[test]
    fn a_token_is_the_join_of_its_dots_and_names_what_a_clock_lacks() {
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let mut after = ReadAfter::new();
        assert!(after.is_empty());
        after.include(&outcome(Some(Dot::new(a, 5).unwrap())));
        after.include(&outcome(Some(Dot::new(a, 2).unwrap()))); // older: changes nothing
        after.include(&outcome(None)); // a schema change names no commit
        let after = after.with(&outcome(Some(Dot::new(b, 1).unwrap())));
        assert_eq!(
            after.clock(),
            &VectorClock::new().with_node(a, 5).with_node(b, 1)
        );
        let held = VectorClock::new().with_node(a, 5);
        assert_eq!(
            after.missing_from(&held),
            VectorClock::new().with_node(b, 1)
        );
        let held = held.with_node(b, 3);
        assert!(after.missing_from(&held).is_empty());
        assert_eq!(ReadAfter::from_clock(held.clone()).clock(), &held);
    }
}
