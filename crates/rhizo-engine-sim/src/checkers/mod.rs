//! Checkers over what the clients of an engine cluster were told, one module per invariant:
//! every acknowledged compare-and-set took effect and no refused one did
//! ([`check_compare_and_set`]); coordinated read-modify-write transfers between accounts are
//! serializable and conserve the total ([`check_transfers`]).
//!
//! Both judge a register's whole history from its final value alone: each write stores a value
//! no other write stores (a fresh CAS value; a transfer's id beside each balance it writes), so
//! the final value names its writer, whose read names the writer before it, back to the
//! initial value. The chain found is the history the log decided, whatever the clients heard.

mod compare_and_set;
mod transfers;

pub use compare_and_set::{CasOp, check_compare_and_set};
pub use transfers::{Balance, Transfer, check_transfers};

/// What a client was told about a coordinated transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// Committed at this log index.
    Committed {
        /// The transaction's log index.
        index: u64,
    },
    /// Refused: its condition (a compare-and-set or a read check) did not hold.
    Refused,
    /// No outcome: a timeout, a crash of its node, or an entry learned before it was applied.
    /// It may or may not have taken effect.
    Unknown,
}

impl Told {
    fn index(self) -> Option<u64> {
        match self {
            Self::Committed { index } => Some(index),
            Self::Refused | Self::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests;
