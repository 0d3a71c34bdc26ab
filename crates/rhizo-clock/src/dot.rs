use std::fmt;

use crate::{ClockError, NodeId, Result};

/// One event: the `counter`-th event of `node` (counters start at 1).
///
/// A dot names an update uniquely and forever, as long as a node never reuses a counter — which
/// is why a restarted replica must recover its counter from durable state before it acts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "(NodeId, u64)", into = "(NodeId, u64)")
)]
pub struct Dot {
    node: NodeId,
    counter: u64,
}

impl Dot {
    /// The `counter`-th event of `node`; refuses counter 0, which names no event.
    ///
    /// ```
    /// use rhizo_clock::{Dot, NodeId};
    /// let a = NodeId::new("a").unwrap();
    /// let dot = Dot::new(a, 3).unwrap();
    /// assert_eq!((dot.node(), dot.counter()), (a, 3));
    /// assert!(Dot::new(a, 0).is_err());
    /// ```
    #[inline]
    pub fn new(node: NodeId, counter: u64) -> Result<Self> {
        if counter == 0 {
            return Err(ClockError::ZeroDot { node });
        }
        Ok(Self { node, counter })
    }

    /// The node that produced the event.
    #[inline]
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The event's position in its node's history, from 1.
    #[inline]
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl TryFrom<(NodeId, u64)> for Dot {
    type Error = ClockError;
    fn try_from((node, counter): (NodeId, u64)) -> Result<Self> {
        Self::new(node, counter)
    }
}

impl From<Dot> for (NodeId, u64) {
    fn from(dot: Dot) -> Self {
        (dot.node, dot.counter)
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.counter)
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dot({}:{})", self.node, self.counter)
    }
}
