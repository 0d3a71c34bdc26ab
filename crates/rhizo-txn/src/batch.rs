//! Bulk commits: many operations, cut into transactions of a fixed size, in one call.

use std::str::FromStr;

use rhizo_algebra::{AlgebraicValue, OpType};
use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction, CellKey};

use crate::{Engine, RegisterWrite, Result, TransactionMode, TxnError};

/// What one operation of a batch does: a verb of the [`crate::Transaction`] builder, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchVerb {
    /// ADD to an additive column.
    Increment,
    /// MULTIPLY a multiplicative column.
    Multiply,
    /// Raise a MAX column.
    Max,
    /// Lower a MIN column.
    Min,
    /// Add elements to an observed-remove set column.
    AddToSet,
    /// Remove elements from an observed-remove set column.
    RemoveFromSet,
    /// Overwrite a register (coordinated transactions only).
    Put,
}

impl BatchVerb {
    /// Every verb, in declaration order.
    pub const ALL: [BatchVerb; 7] = [
        Self::Increment,
        Self::Multiply,
        Self::Max,
        Self::Min,
        Self::AddToSet,
        Self::RemoveFromSet,
        Self::Put,
    ];

    /// The verb's name, as the builder method is called: `"increment"`, `"add_to_set"`, …
    pub fn name(self) -> &'static str {
        match self {
            Self::Increment => "increment",
            Self::Multiply => "multiply",
            Self::Max => "max",
            Self::Min => "min",
            Self::AddToSet => "add_to_set",
            Self::RemoveFromSet => "remove_from_set",
            Self::Put => "put",
        }
    }

    /// Whether the operand is set elements (strings) rather than one value.
    pub fn takes_elements(self) -> bool {
        matches!(self, Self::AddToSet | Self::RemoveFromSet)
    }

    /// The operation on `key`; `value` is the operand (a string set for the set verbs, as the
    /// builder's `add_to_set` makes it).
    pub fn operation(self, key: CellKey, value: AlgebraicValue) -> BatchOp {
        let op_type = match self {
            Self::Increment => OpType::AbelianAdd,
            Self::Multiply => OpType::AbelianMultiply,
            Self::Max => OpType::SemilatticeMax,
            Self::Min => OpType::SemilatticeMin,
            Self::AddToSet => OpType::OrSetAdd,
            Self::RemoveFromSet => OpType::OrSetRemove,
            Self::Put => return BatchOp::Register(RegisterWrite::Put { key, value }),
        };
        BatchOp::Algebraic(AlgebraicOperation {
            key,
            op_type,
            value,
            expected: None,
        })
    }
}

impl FromStr for BatchVerb {
    type Err = TxnError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| TxnError::UnknownName {
                what: "batch verb",
                name: s.to_owned(),
                valid: "\"increment\", \"multiply\", \"max\", \"min\", \"add_to_set\", \
                        \"remove_from_set\", \"put\"",
            })
    }
}

/// One operation of [`Engine::commit_batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOp {
    /// An algebraic operation.
    Algebraic(AlgebraicOperation),
    /// A register write.
    Register(RegisterWrite),
}

impl Engine {
    /// Commits `ops` in order, `per_transaction` operations to a transaction (each one atomic;
    /// `usize::MAX` puts everything in one). Stops at the first refused transaction and
    /// returns its error; the transactions before it stay committed. Returns how many
    /// transactions were committed. A `per_transaction` of 0 is refused before anything
    /// commits.
    pub fn commit_batch(
        &mut self,
        mode: TransactionMode,
        ops: impl IntoIterator<Item = BatchOp>,
        per_transaction: usize,
    ) -> Result<usize> {
        if per_transaction == 0 {
            return Err(TxnError::Config {
                reason: "a batch needs at least 1 operation per transaction".to_owned(),
            });
        }
        let mut committed = 0;
        let mut algebraic = AlgebraicTransaction::new();
        let mut registers = Vec::new();
        let mut ops = ops.into_iter().peekable();
        while let Some(op) = ops.next() {
            match op {
                BatchOp::Algebraic(op) => {
                    algebraic.push(op);
                }
                BatchOp::Register(write) => registers.push(write),
            }
            if algebraic.len() + registers.len() >= per_transaction || ops.peek().is_none() {
                self.commit_parts(
                    mode,
                    std::mem::take(&mut algebraic),
                    std::mem::take(&mut registers),
                )?;
                committed += 1;
            }
        }
        Ok(committed)
    }
}

#[cfg(test)]
mod tests {
    use rhizo_clock::NodeId;

    use super::*;
    use crate::{EngineConfig, roadmap_schema};

    fn increment(row: &str, amount: i64) -> BatchOp {
        BatchVerb::Increment.operation(CellKey::new("counters", row, "value"), amount.into())
    }

    #[test]
    fn verbs_parse_from_their_names() {
        for verb in BatchVerb::ALL {
            assert_eq!(verb.name().parse::<BatchVerb>().unwrap(), verb);
        }
        let err = "frob".parse::<BatchVerb>().unwrap_err();
        assert!(matches!(&err, TxnError::UnknownName { name, .. } if name == "frob"));
        assert!(err.to_string().contains("\"remove_from_set\""), "{err}");
    }

    #[test]
    fn a_batch_is_cut_into_transactions_and_stops_at_the_first_refused_one() {
        let config = EngineConfig::new(NodeId::numbered(0)).with_schema(roadmap_schema());
        let mut engine = Engine::in_memory(config).unwrap();
        let cf = TransactionMode::CoordinationFree;
        let ops: Vec<BatchOp> = (0..10)
            .map(|i| increment(&format!("r{}", i % 3), 1))
            .collect();
        assert_eq!(engine.commit_batch(cf, ops.clone(), 4).unwrap(), 3);
        assert_eq!(engine.commit_batch(cf, ops, usize::MAX).unwrap(), 1);
        assert_eq!(engine.clock().get(NodeId::numbered(0)), 4);
        let tags = BatchVerb::AddToSet.operation(
            CellKey::new("users", "u", "tags"),
            AlgebraicValue::string_set(["a", "b"]),
        );
        assert_eq!(engine.commit_batch(cf, [tags], 1).unwrap(), 1);
        assert_eq!(
            engine.read("users", "u", "tags").unwrap(),
            AlgebraicValue::string_set(["a", "b"])
        );
        assert_eq!(engine.commit_batch(cf, [], 1).unwrap(), 0);
        assert!(matches!(
            engine.commit_batch(cf, [increment("r0", 1)], 0),
            Err(TxnError::Config { .. })
        ));

        // The second transaction holds a float for an integer column: the first stays, the
        // third never runs.
        let bad = BatchVerb::Increment.operation(
            CellKey::new("counters", "c", "value"),
            AlgebraicValue::float(1.5),
        );
        let refused = engine.commit_batch(cf, [increment("c", 1), bad, increment("c", 1)], 1);
        assert!(matches!(refused, Err(TxnError::InvalidOperations { .. })));
        assert_eq!(
            engine.read("counters", "c", "value").unwrap(),
            AlgebraicValue::Integer(1)
        );
        // A register write is not algebraic: a coordination-free batch refuses it.
        let put = BatchVerb::Put.operation(CellKey::new("users", "u", "tags"), 1.into());
        assert!(matches!(
            engine.commit_batch(cf, [put], 1),
            Err(TxnError::NotAlgebraic { .. })
        ));
    }
}
