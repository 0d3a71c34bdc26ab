use std::fmt;

use rhizo_algebra::{AlgebraError, OpType};
use rhizo_clock::{ClockError, NodeId};

use crate::CellKey;

/// Everything that can go wrong in the local commit protocol and the replica.
///
/// A refused commit leaves no trace: nothing applied, the clock not ticked, no record emitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocalCommitError {
    /// A register a coordinated transaction read held another value when the transaction
    /// reached its place in the log: it was written in between. Nothing was applied; read again
    /// and retry.
    #[error(
        "{key} was read as {} but holds {} at the transaction's place in the log: read again \
         and retry",
        rhizo_clock::Bounded(.expected),
        rhizo_clock::Bounded(.found)
    )]
    ReadConflict {
        /// The register.
        key: Box<CellKey>,
        /// The value the transaction read, displayed.
        expected: String,
        /// The value it held, displayed.
        found: String,
    },
    /// A log entry validated against a newer schema than this replica holds: it is not refused
    /// (other replicas apply it) but waits until this replica has that schema.
    #[error(
        "a log entry needs schema version {needed}; this replica has {held}: declare the same \
         columns on every member"
    )]
    SchemaBehind {
        /// The version the entry was validated against.
        needed: u64,
        /// The version this replica holds.
        held: u64,
    },
    /// A verb that names no operation (see `Operation::VERBS`).
    #[error(
        "{} is not an operation; the verbs are {}",
        rhizo_clock::Quoted(.verb),
        crate::Operation::VERBS.join(", ")
    )]
    UnknownVerb {
        /// The verb given.
        verb: String,
    },
    /// A transaction with no operations names no effect; refusing it keeps dots meaningful.
    #[error("the transaction is empty")]
    EmptyTransaction,
    /// Some operations overwrite or compare: they need consensus, not a local commit.
    #[error("operations need coordination (not algebraic): {}", OperationList(.operations))]
    RequiresCoordination {
        /// The offending cells and their operation kinds.
        operations: Vec<(CellKey, OpType)>,
    },
    /// Some operations failed schema validation.
    #[error("invalid operations: {}", ErrorList(.errors))]
    InvalidOperations {
        /// Each offending cell with the reason.
        errors: Vec<(CellKey, AlgebraError)>,
    },
    /// Keyed operations (the roadmap's surface, see [`crate::keyed`]) that write one key with
    /// two kinds or two value types: no merge combines them.
    #[error("key {key:?} is written both as {first} and as {other}, which do not merge")]
    ConflictingKeyColumns {
        /// The key.
        key: String,
        /// The column one of the operations writes (`"<KIND> <value type>"`).
        first: String,
        /// The column another writes.
        other: String,
    },
    /// A row key was longer than the replica accepts.
    #[error("row key of {key} is {len} bytes; at most {max} are allowed")]
    RowKeyTooLong {
        /// The cell addressed.
        key: Box<CellKey>,
        /// The row key's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction held more operations than the replica accepts in one commit.
    #[error("a transaction holds {len} operations; at most {max} are allowed")]
    TransactionTooLarge {
        /// Number of operations.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// This node's clock is full: it can name no further event.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Reading a cell failed (for instance an exact counter that left the i64 range).
    #[error("reading {key}: {source}")]
    Read {
        /// The cell read.
        key: Box<CellKey>,
        /// Why.
        source: Box<AlgebraError>,
    },
    /// A cell, table or column named in a read or a prepare is not in the schema.
    #[error("{key}: {source}")]
    UnknownCell {
        /// The cell named.
        key: Box<CellKey>,
        /// The schema's answer.
        source: Box<AlgebraError>,
    },
    /// A prepared cell whose column this replica's schema no longer defines as it did when the
    /// cell was prepared (or does not define at all): prepare it again.
    #[error("{key} was prepared against another schema: prepare it again")]
    StalePreparedCell {
        /// The cell.
        key: Box<CellKey>,
    },
    /// A message from a peer held a cell this replica's schema cannot accept. Nothing of the
    /// message was applied.
    #[error("message from {from} rejected at {key}: {source}")]
    RemoteStateRejected {
        /// The sender.
        from: NodeId,
        /// The offending cell.
        key: Box<CellKey>,
        /// Why.
        source: Box<AlgebraError>,
    },
    /// A message from a peer is malformed beyond a single cell (inconsistent clocks, wrong
    /// origin, a sender that is this replica…). Nothing of it was applied.
    #[error("message from {from} rejected: {reason}")]
    MalformedMessage {
        /// The sender.
        from: NodeId,
        /// What rule it broke.
        reason: &'static str,
    },
    /// Bytes that are not a message of a known format version.
    #[error("cannot decode: {reason}")]
    Decode {
        /// What the decoder said.
        reason: String,
    },
    /// A message or record written by a newer format version.
    #[error("unsupported format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Durable records that do not rebuild a replica: the log is damaged or not this node's.
    #[error("recovery failed at record {index}: {reason}")]
    Recovery {
        /// Position of the offending record.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

/// How many items of a list a message shows before it says how many more there are.
const LISTED: usize = 8;

/// Writes at most [`LISTED`] items of `items`, separated by `separator`, then how many more.
fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    separator: &str,
    item: impl Fn(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, one) in items.iter().take(LISTED).enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        item(f, one)?;
    }
    if items.len() > LISTED {
        write!(f, "{separator}… and {} more", items.len() - LISTED)?;
    }
    Ok(())
}

/// Displays refused operations (`ADD on counters["x"].value, …`) in a bounded message: a
/// transaction of many operations cannot flood it.
#[derive(Debug, Clone, Copy)]
pub struct OperationList<'a>(pub &'a [(CellKey, OpType)]);

impl fmt::Display for OperationList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, self.0, ", ", |f, (key, op)| write!(f, "{op} on {key}"))
    }
}

/// Displays cells with the reasons they were refused, bounded like [`OperationList`].
#[derive(Debug, Clone, Copy)]
pub struct ErrorList<'a>(pub &'a [(CellKey, AlgebraError)]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, self.0, "; ", |f, (key, err)| write!(f, "{key}: {err}"))
    }
}

/// This crate's result type.
pub type Result<T, E = LocalCommitError> = std::result::Result<T, E>;
