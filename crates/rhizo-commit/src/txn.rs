use rhizo_algebra::{AlgebraicValue, OpType};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::CellKey;

/// One operation of a transaction: an operation kind applied with a value to one cell.
///
/// It is only a request: the schema decides at commit time whether the cell's column accepts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgebraicOperation {
    /// The cell addressed.
    pub key: CellKey,
    /// What to do.
    pub op_type: OpType,
    /// The operand: an amount for ADD, a bound for MAX/MIN, elements for set operations, the
    /// new value for OVERWRITE and CONDITIONAL.
    pub value: AlgebraicValue,
    /// For CONDITIONAL (compare-and-set) only: the value the register must hold. Boxed, so that
    /// the common operation, which has none, is 40 bytes smaller to move.
    #[serde(default)]
    pub expected: Option<Box<AlgebraicValue>>,
}

impl AlgebraicOperation {
    /// An operation of any kind.
    ///
    /// ```
    /// use rhizo_algebra::OpType;
    /// use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction, CellKey};
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.push(AlgebraicOperation::new(CellKey::new("counters", "hits", "value"), OpType::AbelianAdd, 1));
    /// assert_eq!(tx.operations()[0].op_type, OpType::AbelianAdd);
    /// ```
    pub fn new(key: CellKey, op_type: OpType, value: impl Into<AlgebraicValue>) -> Self {
        Self {
            key,
            op_type,
            value: value.into(),
            expected: None,
        }
    }
}

/// What one operation does to its cell: the vocabulary every front end speaks — this builder,
/// the engine's transaction, batches, the bindings and the command line all name operations by
/// these verbs and feed them through [`Operations::operation`].
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// ADD an amount to a number column.
    Increment(AlgebraicValue),
    /// MULTIPLY a number column by a factor.
    Multiply(AlgebraicValue),
    /// Raise a MAX column to at least a value.
    Max(AlgebraicValue),
    /// Lower a MIN column to at most a value.
    Min(AlgebraicValue),
    /// Add elements (a set) to a set column: tagged adds on an observed-remove set, a union on
    /// a grow-only one.
    AddToSet(AlgebraicValue),
    /// Remove elements (a set) from an observed-remove set column: the adds of them the writer
    /// has observed.
    RemoveFromSet(AlgebraicValue),
    /// Grow a set column by UNION with a set.
    Union(AlgebraicValue),
    /// Shrink a set column by INTERSECT with a set.
    Intersect(AlgebraicValue),
    /// OVERWRITE a register (coordinated transactions only).
    Put(AlgebraicValue),
    /// Overwrite a register with `new` if it holds `expected` when the transaction applies
    /// (coordinated transactions only).
    CompareAndSet {
        /// The value the register must hold.
        expected: AlgebraicValue,
        /// The value written.
        new: AlgebraicValue,
    },
}

impl Operation {
    /// Every verb, as [`Operation::verb`] names it.
    pub const VERBS: [&'static str; 10] = [
        "increment",
        "multiply",
        "max",
        "min",
        "add_to_set",
        "remove_from_set",
        "union",
        "intersect",
        "put",
        "compare_and_set",
    ];

    /// The operation `verb` with its operand `value` (`compare_and_set` takes `expected` too;
    /// every other verb ignores it). An unknown verb is [`crate::LocalCommitError::UnknownVerb`].
    ///
    /// ```
    /// use rhizo_algebra::AlgebraicValue;
    /// use rhizo_commit::{AlgebraicTransaction, Operation, Operations};
    /// let op = Operation::named("increment", AlgebraicValue::Integer(1), None).unwrap();
    /// assert_eq!(op.verb(), "increment");
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.operation("counters", "hits", "value", op); // the same as tx.increment(..)
    /// assert!(Operation::named("incremnet", AlgebraicValue::Integer(1), None).is_err());
    /// ```
    pub fn named(
        verb: &str,
        value: AlgebraicValue,
        expected: Option<AlgebraicValue>,
    ) -> crate::Result<Self> {
        Ok(match verb {
            "increment" => Self::Increment(value),
            "multiply" => Self::Multiply(value),
            "max" => Self::Max(value),
            "min" => Self::Min(value),
            "add_to_set" => Self::AddToSet(value),
            "remove_from_set" => Self::RemoveFromSet(value),
            "union" => Self::Union(value),
            "intersect" => Self::Intersect(value),
            "put" => Self::Put(value),
            "compare_and_set" => Self::CompareAndSet {
                expected: expected.unwrap_or(AlgebraicValue::Null),
                new: value,
            },
            other => {
                return Err(crate::LocalCommitError::UnknownVerb {
                    verb: other.to_owned(),
                });
            }
        })
    }

    /// The verb that names this operation.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Increment(_) => "increment",
            Self::Multiply(_) => "multiply",
            Self::Max(_) => "max",
            Self::Min(_) => "min",
            Self::AddToSet(_) => "add_to_set",
            Self::RemoveFromSet(_) => "remove_from_set",
            Self::Union(_) => "union",
            Self::Intersect(_) => "intersect",
            Self::Put(_) => "put",
            Self::CompareAndSet { .. } => "compare_and_set",
        }
    }

    /// Whether the verb's operand is a set of elements.
    pub fn takes_elements(verb: &str) -> bool {
        matches!(
            verb,
            "add_to_set" | "remove_from_set" | "union" | "intersect"
        )
    }

    /// The operation on cell `key`, in the form a transaction stores.
    pub fn on(self, key: CellKey) -> AlgebraicOperation {
        let (op_type, value, expected) = match self {
            Self::Increment(v) => (OpType::AbelianAdd, v, None),
            Self::Multiply(v) => (OpType::AbelianMultiply, v, None),
            Self::Max(v) => (OpType::SemilatticeMax, v, None),
            Self::Min(v) => (OpType::SemilatticeMin, v, None),
            Self::AddToSet(v) => (OpType::OrSetAdd, v, None),
            Self::RemoveFromSet(v) => (OpType::OrSetRemove, v, None),
            Self::Union(v) => (OpType::SemilatticeUnion, v, None),
            Self::Intersect(v) => (OpType::SemilatticeIntersect, v, None),
            Self::Put(v) => (OpType::GenericOverwrite, v, None),
            Self::CompareAndSet { expected, new } => {
                (OpType::GenericConditional, new, Some(Box::new(expected)))
            }
        };
        AlgebraicOperation {
            key,
            op_type,
            value,
            expected,
        }
    }
}

/// The elements of a set operation: one string, strings, or any set value (an integer set
/// with [`AlgebraicValue::int_set`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Elements(pub AlgebraicValue);

impl From<&str> for Elements {
    fn from(element: &str) -> Self {
        Self(AlgebraicValue::string_set([element]))
    }
}

impl From<&String> for Elements {
    fn from(element: &String) -> Self {
        Self(AlgebraicValue::string_set([element.as_str()]))
    }
}

impl From<String> for Elements {
    fn from(element: String) -> Self {
        Self(AlgebraicValue::string_set([element]))
    }
}

impl<S: Into<String>, const N: usize> From<[S; N]> for Elements {
    fn from(elements: [S; N]) -> Self {
        Self(AlgebraicValue::string_set(elements))
    }
}

impl<S: Into<String>> From<Vec<S>> for Elements {
    fn from(elements: Vec<S>) -> Self {
        Self(AlgebraicValue::string_set(elements))
    }
}

impl From<AlgebraicValue> for Elements {
    fn from(set: AlgebraicValue) -> Self {
        Self(set)
    }
}

/// The verbs of a transaction builder, defined once: a builder implements
/// [`Operations::operation`] and gets every verb with the same arguments — `(table, row,
/// column, operand)` — whatever it builds ([`AlgebraicTransaction`], the engine's transaction).
///
/// ```
/// use rhizo_commit::{AlgebraicTransaction, Operations};
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "page_views", "value", 1)
///     .add_to_set("users", "user_123", "tags", "premium");
/// assert_eq!(tx.len(), 2);
/// ```
pub trait Operations {
    /// Adds `operation` on cell `(table, row, column)`; what the schema makes of it is decided
    /// at commit.
    fn operation(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        operation: Operation,
    ) -> &mut Self;

    /// ADD `amount` to a number column (`AbelianAdd`).
    fn increment(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        amount: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Increment(amount.into()))
    }

    /// MULTIPLY a number column by `factor` (`AbelianMultiply`).
    fn multiply(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        factor: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Multiply(factor.into()))
    }

    /// Raise a MAX column to at least `value` (`SemilatticeMax`).
    fn max(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Max(value.into()))
    }

    /// Lower a MIN column to at most `value` (`SemilatticeMin`).
    fn min(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Min(value.into()))
    }

    /// Add elements to a set column: tagged adds (`OrSetAdd`) on an observed-remove set, a
    /// union on a grow-only one — the replica picks by the column's merge type.
    fn add_to_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        elements: impl Into<Elements>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::AddToSet(elements.into().0))
    }

    /// Remove elements from an observed-remove set column (`OrSetRemove`): exactly the adds of
    /// them the replica has observed.
    fn remove_from_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        elements: impl Into<Elements>,
    ) -> &mut Self {
        self.operation(
            table,
            row,
            column,
            Operation::RemoveFromSet(elements.into().0),
        )
    }

    /// Grow a set column by UNION with `set` (`SemilatticeUnion`).
    fn union(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        set: impl Into<Elements>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Union(set.into().0))
    }

    /// INTERSECT a set column with `set` (`SemilatticeIntersect`).
    fn intersect(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        set: impl Into<Elements>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Intersect(set.into().0))
    }

    /// OVERWRITE a register (`GenericOverwrite`): never commits without coordination.
    fn put(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.operation(table, row, column, Operation::Put(value.into()))
    }

    /// COMPARE-AND-SET a register (`GenericConditional`): write `new` if it holds `expected`
    /// when the transaction applies, in the coordinated order.
    fn compare_and_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        expected: impl Into<AlgebraicValue>,
        new: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        let operation = Operation::CompareAndSet {
            expected: expected.into(),
            new: new.into(),
        };
        self.operation(table, row, column, operation)
    }
}

/// A transaction: operations that take effect together — on every replica all of them or none.
///
/// Built through its [`Operations`] verbs as a user would write it:
///
/// ```
/// use rhizo_commit::{AlgebraicTransaction, Operations};
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "page_views", "value", 1)
///     .add_to_set("users", "user_123", "tags", ["premium"]);
/// assert_eq!(tx.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlgebraicTransaction {
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    ops: SmallVec<[AlgebraicOperation; 2]>,
    /// Registers the transaction read, with the values it read: through consensus it applies
    /// only if each still holds that value at its place in the log (see
    /// [`AlgebraicTransaction::expect`]).
    reads: Vec<(CellKey, AlgebraicValue)>,
    /// Free-form metadata carried with the transaction (for instance a client request id).
    pub metadata: TransactionMetadata,
}

/// What a transaction carries besides its operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionMetadata {
    /// An application tag, e.g. a request id for idempotent retries on the client side.
    pub tag: Option<u64>,
}

impl Operations for AlgebraicTransaction {
    fn operation(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        operation: Operation,
    ) -> &mut Self {
        self.push(operation.on(CellKey::new(table, row, column)))
    }
}

impl AlgebraicTransaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an operation.
    pub fn push(&mut self, op: AlgebraicOperation) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Requires register `(table, row, column)` to hold `value` when the transaction applies
    /// in the coordinated order; otherwise the whole transaction is refused
    /// (`LocalCommitError::ReadConflict`: read again and retry). A coordinated transaction's
    /// reads of registers are recorded this way, which makes read-modify-write serializable.
    /// Only registers qualify (they change only in log order, so every replica decides the
    /// same); a transaction holding a read check never commits without coordination.
    ///
    /// ```
    /// use rhizo_algebra::AlgebraicValue;
    /// use rhizo_commit::{AlgebraicTransaction, Operations};
    /// // Read-modify-write on a register, serializable through the log: the write applies only if
    /// // the balance still holds what was read.
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.expect("accounts", "42", "balance", 100)
    ///     .put("accounts", "42", "balance", 90);
    /// assert_eq!(tx.reads().len(), 1);
    /// ```
    pub fn expect(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        let key = CellKey::new(table, row, column);
        let value = value.into();
        match self.reads.iter_mut().find(|(k, _)| *k == key) {
            // The first read of a cell is the one the transaction's writes depend on.
            Some(_) => {}
            None => self.reads.push((key, value)),
        }
        self
    }

    /// The read checks, in the order they were added.
    pub fn reads(&self) -> &[(CellKey, AlgebraicValue)] {
        &self.reads
    }

    /// The operations, in the order they were added.
    pub fn operations(&self) -> &[AlgebraicOperation] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the transaction has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(crate) fn into_parts(
        self,
    ) -> (
        SmallVec<[AlgebraicOperation; 2]>,
        Vec<(CellKey, AlgebraicValue)>,
    ) {
        (self.ops, self.reads)
    }

    /// The operations of a transaction about to commit without coordination: one that holds
    /// read checks needs the coordinated order to evaluate them.
    pub(crate) fn into_local_operations(self) -> crate::Result<SmallVec<[AlgebraicOperation; 2]>> {
        if self.reads.is_empty() {
            return Ok(self.ops);
        }
        let operations = self
            .reads
            .into_iter()
            .map(|(key, _)| (key, OpType::GenericConditional))
            .collect();
        Err(crate::LocalCommitError::RequiresCoordination { operations })
    }
}

impl FromIterator<AlgebraicOperation> for AlgebraicTransaction {
    fn from_iter<I: IntoIterator<Item = AlgebraicOperation>>(iter: I) -> Self {
        Self {
            ops: iter.into_iter().collect(),
            reads: Vec::new(),
            metadata: TransactionMetadata::default(),
        }
    }
}
