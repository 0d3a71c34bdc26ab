use std::fmt;
use std::str::FromStr;

use crate::TxnError;

/// How a transaction commits.
///
/// The default is [`TransactionMode::Coordinated`]: a transaction is serializable unless its
/// author opts out, because only the author knows that every operation is algebraic on purpose.
/// [`TransactionMode::Auto`] decides per transaction: coordination-free when every operation
/// is algebraic, otherwise the whole transaction goes to consensus; the commit result names the
/// [`CommitPath`] taken.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum TransactionMode {
    /// Serializable: ordered by the engine's [`crate::Backend`] (the single-node order, or
    /// the Raft log). Accepts register writes
    /// (`put`, `compare_and_set`) and algebraic operations together.
    #[default]
    Coordinated,
    /// Commits locally without waiting for any other node; only algebraic operations (their
    /// effects commute, so replicas converge in any delivery order). Anything else is refused
    /// whole with [`TxnError::NotAlgebraic`].
    CoordinationFree,
    /// Commits locally when every operation is algebraic on an algebraic column (as
    /// `CoordinationFree` would); otherwise escalates the *whole* transaction to consensus (as
    /// `Coordinated`), so a mixed transaction stays atomic. The outcome says which path it took.
    Auto,
}

/// Which path a committed transaction took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CommitPath {
    /// Committed on this node without coordination; replicated by anti-entropy.
    Local,
    /// Ordered by the coordinated backend (the consensus log).
    Consensus,
}

impl TransactionMode {
    /// The mode's name as the Python API spells it: `"coordinated"`, `"coordination_free"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Coordinated => "coordinated",
            Self::CoordinationFree => "coordination_free",
            Self::Auto => "auto",
        }
    }
}

impl fmt::Display for TransactionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransactionMode {
    type Err = TxnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coordinated" => Ok(Self::Coordinated),
            "coordination_free" => Ok(Self::CoordinationFree),
            "auto" => Ok(Self::Auto),
            other => Err(TxnError::UnknownMode {
                name: other.to_owned(),
            }),
        }
    }
}

/// How fresh a read must be.
///
/// Every read is atomic (a reader never sees part of a transaction) and causal (it sees
/// everything this node has seen before). They differ in what they promise about other nodes:
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum ReadConsistency {
    /// This node's state as it stands: answered at once without asking anyone, and may lag a
    /// coordinated transaction another node has already acknowledged.
    #[default]
    Local,
    /// Sees every coordinated transaction acknowledged anywhere in the cluster before the read
    /// began: the Raft leader confirms its commit index with a quorum (one round trip to the
    /// leader and its quorum; nothing is written to the log) and the read is answered from
    /// this node's state once that state holds the log up to that index. Coordination-free updates are those this node holds,
    /// as with [`ReadConsistency::Local`]: they have no order to be linearized in.
    Linearizable,
}

impl ReadConsistency {
    /// The consistency's name as the Python API and the `rhizo` program spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Linearizable => "linearizable",
        }
    }
}

impl fmt::Display for ReadConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ReadConsistency {
    type Err = TxnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "linearizable" => Ok(Self::Linearizable),
            other => Err(TxnError::UnknownName {
                what: "read consistency",
                name: other.to_owned(),
                valid: "\"local\", \"linearizable\"",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_coordinated_and_names_round_trip() {
        assert_eq!(TransactionMode::default(), TransactionMode::Coordinated);
        for mode in [
            TransactionMode::Coordinated,
            TransactionMode::CoordinationFree,
            TransactionMode::Auto,
        ] {
            assert_eq!(mode.name().parse::<TransactionMode>().unwrap(), mode);
        }
        assert!(matches!(
            "automatic".parse::<TransactionMode>(),
            Err(TxnError::UnknownMode { name }) if name == "automatic"
        ));
    }

    #[test]
    fn read_consistency_names_round_trip_and_unknown_names_are_refused() {
        assert_eq!(ReadConsistency::default(), ReadConsistency::Local);
        for consistency in [ReadConsistency::Local, ReadConsistency::Linearizable] {
            assert_eq!(
                consistency.name().parse::<ReadConsistency>().unwrap(),
                consistency
            );
        }
        assert!(matches!(
            "strong".parse::<ReadConsistency>(),
            Err(TxnError::UnknownName { what: "read consistency", name, .. }) if name == "strong"
        ));
    }
}
