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
    pub fn new(key: CellKey, op_type: OpType, value: impl Into<AlgebraicValue>) -> Self {
        Self {
            key,
            op_type,
            value: value.into(),
            expected: None,
        }
    }
}

/// A transaction: operations that take effect together — on every replica all of them or none.
///
/// Built with a `&mut self` builder as a user would write it:
///
/// ```
/// use rhizo_commit::AlgebraicTransaction;
/// let mut tx = AlgebraicTransaction::new();
/// tx.increment("counters", "page_views", "value", 1)
///     .add_to_set("users", "user_123", "tags", ["premium"]);
/// assert_eq!(tx.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlgebraicTransaction {
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    ops: SmallVec<[AlgebraicOperation; 2]>,
    /// Free-form metadata carried with the transaction (for instance a client request id).
    pub metadata: TransactionMetadata,
}

/// What a transaction carries besides its operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionMetadata {
    /// An application tag, e.g. a request id for idempotent retries on the client side.
    pub tag: Option<u64>,
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

    fn op(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        op_type: OpType,
        value: AlgebraicValue,
    ) -> &mut Self {
        self.push(AlgebraicOperation {
            key: CellKey::new(table, row, column),
            op_type,
            value,
            expected: None,
        })
    }

    /// ADD `amount` to an additive column (`AbelianAdd`).
    pub fn increment(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        amount: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::AbelianAdd, amount.into())
    }

    /// MULTIPLY a multiplicative column by `factor` (`AbelianMultiply`).
    pub fn multiply(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        factor: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::AbelianMultiply, factor.into())
    }

    /// Raise a MAX column to at least `value` (`SemilatticeMax`).
    pub fn max(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::SemilatticeMax, value.into())
    }

    /// Lower a MIN column to at most `value` (`SemilatticeMin`).
    pub fn min(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::SemilatticeMin, value.into())
    }

    /// Add string elements to a set column: `OrSetAdd` on an observed-remove set column,
    /// `SemilatticeUnion` on a grow-only one — the replica picks by the column's merge type.
    pub fn add_to_set<S: Into<String>>(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        elements: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.op(
            table,
            row,
            column,
            OpType::OrSetAdd,
            AlgebraicValue::string_set(elements),
        )
    }

    /// Remove string elements from an observed-remove set column (`OrSetRemove`): the replica
    /// removes exactly the adds of those elements it has observed.
    pub fn remove_from_set<S: Into<String>>(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        elements: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.op(
            table,
            row,
            column,
            OpType::OrSetRemove,
            AlgebraicValue::string_set(elements),
        )
    }

    /// Grow-only UNION of any set value (`SemilatticeUnion`).
    pub fn union(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        set: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::SemilatticeUnion, set.into())
    }

    /// INTERSECT a set column with `set` (`SemilatticeIntersect`).
    pub fn intersect(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        set: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::SemilatticeIntersect, set.into())
    }

    /// OVERWRITE a register (`GenericOverwrite`): never commits locally.
    pub fn put(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        value: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.op(table, row, column, OpType::GenericOverwrite, value.into())
    }

    /// COMPARE-AND-SET a register (`GenericConditional`): write `new` if it holds `expected`.
    /// Never commits locally; through consensus the condition is evaluated in log order.
    pub fn compare_and_set(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        expected: impl Into<AlgebraicValue>,
        new: impl Into<AlgebraicValue>,
    ) -> &mut Self {
        self.push(AlgebraicOperation {
            key: CellKey::new(table, row, column),
            op_type: OpType::GenericConditional,
            value: new.into(),
            expected: Some(Box::new(expected.into())),
        })
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

    pub(crate) fn into_operations(self) -> SmallVec<[AlgebraicOperation; 2]> {
        self.ops
    }
}

impl FromIterator<AlgebraicOperation> for AlgebraicTransaction {
    fn from_iter<I: IntoIterator<Item = AlgebraicOperation>>(iter: I) -> Self {
        Self {
            ops: iter.into_iter().collect(),
            metadata: TransactionMetadata::default(),
        }
    }
}
