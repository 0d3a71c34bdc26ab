use crate::NodeId;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A node name was empty.
    #[error("a node name must not be empty")]
    EmptyNodeName,
    /// A node name was longer than [`NodeId::MAX_NAME_LEN`] bytes.
    #[error("node name {} is {len} bytes; at most {max} are allowed", crate::Quoted(.name), max = NodeId::MAX_NAME_LEN)]
    NodeNameTooLong {
        /// The offending name (possibly truncated for display by the caller).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A node name held a NUL byte, which the packed representation reserves for padding.
    #[error("node name {} contains a NUL byte", crate::Quoted(.name))]
    NodeNameHasNul {
        /// The offending name.
        name: String,
    },
    /// A counter would pass `u64::MAX`.
    #[error("the counter of node {node} would overflow past u64::MAX")]
    CounterOverflow {
        /// The node whose entry is full.
        node: NodeId,
    },
    /// A dot's counter was zero; the first event of a node has counter 1.
    #[error("a dot's counter starts at 1; node {node} was given 0")]
    ZeroDot {
        /// The node named by the dot.
        node: NodeId,
    },
    /// Decoded clock entries were not in canonical form (sorted, unique, non-zero).
    #[error("vector clock entries are not canonical: {reason}")]
    NonCanonical {
        /// What rule was broken.
        reason: &'static str,
    },
}

/// This crate's result type.
pub type Result<T, E = ClockError> = std::result::Result<T, E>;
