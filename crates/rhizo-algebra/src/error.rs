use std::borrow::Cow;

use rhizo_clock::{Bounded, Quoted};

use crate::{MergeType, OpType, ValueType};

/// Everything that can go wrong in this crate. Each variant names one rule that was broken;
/// an operation refused with any of them has changed nothing.
///
/// Plain data (its texts are `Cow<'static, str>`, borrowed when this crate names them), so that
/// a node can send the error a transaction met to a client, which gets the same value back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AlgebraError {
    /// The schema has no table of this name.
    #[error("unknown table {}", Quoted(.table))]
    UnknownTable {
        /// The table asked for.
        table: String,
    },
    /// The table has no column of this name.
    #[error("table {} has no column {}", Quoted(.table), Quoted(.column))]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column asked for.
        column: String,
    },
    /// The operation kind does not commute with the column's merge type.
    #[error("a {merge} column does not accept {op} operations")]
    OpNotAccepted {
        /// The column's merge type.
        merge: MergeType,
        /// The refused operation kind.
        op: OpType,
    },
    /// The value's kind is not the column's value type.
    #[error("expected a {expected} value, found {found}")]
    TypeMismatch {
        /// The column's value type.
        expected: ValueType,
        /// The kind of value given.
        found: Cow<'static, str>,
    },
    /// `Null` was given where the column needs a value.
    #[error("null is not a valid operand for a {merge} column")]
    NullNotAllowed {
        /// The column's merge type.
        merge: MergeType,
    },
    /// A float was NaN or infinite; such values never enter a column.
    #[error("floats must be finite; got {}", f64::from_bits(*bits))]
    NonFiniteFloat {
        /// The float's bits (so that the error compares equal to itself even for NaN).
        bits: u64,
    },
    /// A set operand had more elements than the column allows.
    #[error("a set operand has {len} elements; the column allows at most {max}")]
    SetTooLarge {
        /// The operand's size.
        len: usize,
        /// The column's bound.
        max: u32,
    },
    /// A string element was longer than the column allows.
    #[error("a string element is {len} bytes; the column allows at most {max}")]
    ElementTooLong {
        /// The element's length in bytes.
        len: usize,
        /// The column's bound.
        max: u32,
    },
    /// A decimal had more fractional digits than allowed (by the column, or at all).
    #[error("a decimal with {found} fractional digits does not fit scale {max}")]
    DecimalScale {
        /// The scale given.
        found: u8,
        /// The largest scale allowed.
        max: u8,
    },
    /// A decimal had more significant digits than a mantissa holds.
    #[error("a decimal may have at most {max_digits} significant digits")]
    DecimalPrecision {
        /// The bound.
        max_digits: u32,
    },
    /// A string did not parse as a decimal.
    #[error("{} is not a decimal: {reason}", Quoted(.input))]
    InvalidDecimal {
        /// The input (at most 64 characters of it).
        input: String,
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// A name did not name an operation kind, merge type or value type.
    #[error("{} is not a known {what}; valid names: {valid}", Quoted(.name))]
    UnknownName {
        /// What was being parsed.
        what: Cow<'static, str>,
        /// The name given.
        name: String,
        /// The accepted spellings, for the message.
        valid: Cow<'static, str>,
    },
    /// A column declaration paired a merge type with a value type it cannot merge.
    #[error("a {merge} column cannot hold {value_type} values: {reason}")]
    InvalidColumn {
        /// The merge type declared.
        merge: MergeType,
        /// The value type declared.
        value_type: ValueType,
        /// Why the pair is refused.
        reason: Cow<'static, str>,
    },
    /// A table or column name was empty or too long.
    #[error("invalid {what} name {}: {reason}", Quoted(.name))]
    InvalidName {
        /// `"table"` or `"column"`.
        what: Cow<'static, str>,
        /// The name (at most 64 characters of it).
        name: String,
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// A schema builder declared the same column twice.
    #[error("column {}.{} is declared twice", Bounded(.table), Bounded(.column))]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// Schema evolution tried to change an existing column's merge or value type, which would
    /// change the meaning of states that replicas already hold.
    #[error("column {}.{} cannot change from {from} to {to}", Bounded(.table), Bounded(.column))]
    ColumnRedefined {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The existing declaration, e.g. `"ADD integer"`.
        from: String,
        /// The refused declaration.
        to: String,
    },
    /// The exact result of a column does not fit its value type. Every replica holding the same
    /// updates reports this same error.
    #[error("the exact {value_type} result is outside the representable range")]
    Overflow {
        /// The column's value type.
        value_type: ValueType,
    },
    /// An operation or state of one kind met a state of another kind (a caller bug: cells of
    /// different columns were mixed).
    #[error("a {op} cannot be applied to or merged with a {state} state")]
    StateMismatch {
        /// The state's kind.
        state: Cow<'static, str>,
        /// The operation's or other state's kind.
        op: Cow<'static, str>,
    },
    /// The operation needs coordination; it has no conflict-free merge.
    #[error("{op} is not conflict-free and has no coordination-free merge")]
    NotConflictFree {
        /// The operation kind.
        op: OpType,
    },
    /// The operation kind cannot be built from a single value (a conditional needs its expected
    /// value, a remove needs the tags it observed).
    #[error("a {op} operation needs {needs}")]
    NeedsContext {
        /// The operation kind.
        op: OpType,
        /// What must be supplied, and how.
        needs: Cow<'static, str>,
    },
    /// The operation kind is not defined on this value type.
    #[error("{op} is not defined on {found} values")]
    UnsupportedType {
        /// The operation kind.
        op: OpType,
        /// The kind of value given.
        found: Cow<'static, str>,
    },
    /// Values of different kinds were merged together.
    #[error("cannot merge a {first} value with a {other} value")]
    MixedKinds {
        /// The kind of the first non-null value.
        first: Cow<'static, str>,
        /// The kind of a later value that differs.
        other: Cow<'static, str>,
    },
    /// A compare-and-set found a value other than the one it expected.
    #[error(
        "conditional write failed: expected {}, found {}",
        Bounded(.expected),
        Bounded(.found)
    )]
    ConditionFailed {
        /// The value the write expected, displayed.
        expected: String,
        /// The value the register held, displayed.
        found: String,
    },
    /// A value could not be converted to the requested Rust type.
    #[error("cannot convert a {from} value to {to}")]
    Conversion {
        /// The value's kind.
        from: Cow<'static, str>,
        /// The requested type.
        to: Cow<'static, str>,
    },
    /// A value written as text (on a command line, in a file) is not a value of the type.
    #[error("{} is not a {expected} value", Quoted(.input))]
    InvalidLiteral {
        /// The type the text was read as.
        expected: ValueType,
        /// The text (at most 64 characters of it).
        input: String,
    },
    /// Decoded data was not in canonical form.
    #[error("non-canonical encoding: {reason}")]
    NonCanonical {
        /// What rule was broken.
        reason: Cow<'static, str>,
    },
}

impl AlgebraError {
    /// The overflow error, built only on the failure path (so the success path never
    /// constructs and drops an error value).
    #[cold]
    pub(crate) fn overflow(value_type: ValueType) -> Self {
        AlgebraError::Overflow { value_type }
    }
}

/// This crate's result type.
pub type Result<T, E = AlgebraError> = std::result::Result<T, E>;
