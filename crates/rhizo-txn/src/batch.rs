//! Bulk commits: many operations, cut into transactions of a fixed size, in one call.

use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction};

use crate::{Engine, Result, Submission, TransactionMode, TxnError};

impl Engine {
    /// Commits `ops` in order, `per_transaction` operations to a transaction (each one atomic;
    /// `usize::MAX` puts everything in one), each decided at once (see [`Engine::submit`]).
    /// Returns how many transactions were committed.
    ///
    /// A refused transaction stops the batch with [`TxnError::BatchStopped`], which says how
    /// many transactions committed before it and which operation its own first one was: the
    /// transactions before it stay committed, so resuming from that operation applies every
    /// operation exactly once. A `per_transaction` of 0 is refused before anything commits.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_algebra::OpType;
    /// use rhizo_commit::{AlgebraicOperation, CellKey};
    /// use rhizo_txn::TxnError;
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let add = |row: &str| AlgebraicOperation::new(CellKey::new("counters", row, "value"), OpType::AbelianAdd, 1);
    /// let ops = vec![add("a"), add("b"), add("c"), AlgebraicOperation::new(CellKey::new("counters", "d", "nope"), OpType::AbelianAdd, 1)];
    /// let err = engine.commit_batch(TransactionMode::CoordinationFree, ops, 2).unwrap_err();
    /// // The first transaction (a, b) committed; the second (c and the bad operation) did not.
    /// assert!(matches!(err, TxnError::BatchStopped { committed: 1, failed_at: 2, .. }));
    /// assert_eq!(engine.read("counters", "b", "value").unwrap(), AlgebraicValue::Integer(1));
    /// assert_eq!(engine.read("counters", "c", "value").unwrap(), AlgebraicValue::Integer(0));
    /// ```
    pub fn commit_batch(
        &mut self,
        mode: TransactionMode,
        ops: impl IntoIterator<Item = AlgebraicOperation>,
        per_transaction: usize,
    ) -> Result<usize> {
        if per_transaction == 0 {
            return Err(TxnError::Config {
                reason: "a batch needs at least 1 operation per transaction".to_owned(),
            });
        }
        let mut committed = 0;
        let mut first_op = 0;
        let mut tx = AlgebraicTransaction::new();
        let mut ops = ops.into_iter().enumerate().peekable();
        while let Some((_, op)) = ops.next() {
            tx.push(op);
            let next = ops.peek().map(|(i, _)| *i);
            if tx.len() < per_transaction && next.is_some() {
                continue;
            }
            let stopped = |source| TxnError::BatchStopped {
                committed,
                failed_at: first_op,
                source: Box::new(source),
            };
            match self.submit(mode, std::mem::take(&mut tx)) {
                Ok(Submission::Committed(_)) => committed += 1,
                Ok(Submission::Pending(proposal)) => {
                    return Err(stopped(TxnError::Undecided { proposal }));
                }
                Err(source) => return Err(stopped(source)),
            }
            first_op = next.unwrap_or(first_op);
        }
        Ok(committed)
    }
}

#[cfg(test)]
mod tests {
    use rhizo_algebra::AlgebraicValue;
    use rhizo_clock::NodeId;
    use rhizo_commit::{CellKey, Operation};

    use super::*;
    use crate::{EngineConfig, default_schema};

    fn increment(row: &str, amount: i64) -> AlgebraicOperation {
        Operation::Increment(amount.into()).on(CellKey::new("counters", row, "value"))
    }

    #[test]
    fn a_batch_is_cut_into_transactions_and_stops_at_the_first_refused_one() {
        let config = EngineConfig::new(NodeId::numbered(0)).with_schema(default_schema());
        let mut engine = Engine::in_memory(config).unwrap();
        let cf = TransactionMode::CoordinationFree;
        let ops: Vec<AlgebraicOperation> = (0..10)
            .map(|i| increment(&format!("r{}", i % 3), 1))
            .collect();
        assert_eq!(engine.commit_batch(cf, ops.clone(), 4).unwrap(), 3);
        assert_eq!(engine.commit_batch(cf, ops, usize::MAX).unwrap(), 1);
        assert_eq!(engine.clock().get(NodeId::numbered(0)), 4);
        let tags = Operation::named("add_to_set", AlgebraicValue::string_set(["a", "b"]), None)
            .unwrap()
            .on(CellKey::new("users", "u", "tags"));
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

        // Operation 3 holds a float for an integer column: its transaction (operations 2 and 3)
        // is refused, the one before stays, the one after never runs; resuming at operation 2
        // with the float fixed applies every operation once.
        let bad = Operation::Increment(AlgebraicValue::float(1.5))
            .on(CellKey::new("counters", "c", "value"));
        let batch = [
            increment("c", 1),
            increment("c", 1),
            increment("c", 1),
            bad,
            increment("c", 1),
        ];
        let refused = engine.commit_batch(cf, batch.clone(), 2).unwrap_err();
        let TxnError::BatchStopped {
            committed: 1,
            failed_at: 2,
            source,
        } = refused
        else {
            panic!("unexpected {refused:?}")
        };
        assert!(matches!(*source, TxnError::InvalidOperations { .. }));
        assert_eq!(
            engine.read("counters", "c", "value").unwrap(),
            AlgebraicValue::Integer(2)
        );
        let mut rest = batch[2..].to_vec();
        rest[1] = increment("c", 1);
        assert_eq!(engine.commit_batch(cf, rest, 2).unwrap(), 2);
        assert_eq!(
            engine.read("counters", "c", "value").unwrap(),
            AlgebraicValue::Integer(5)
        );
        // A register write is not algebraic: a coordination-free batch refuses it.
        let put = Operation::Put(1.into()).on(CellKey::new("users", "u", "tags"));
        assert!(matches!(
            engine.commit_batch(cf, [put], 1),
            Err(TxnError::BatchStopped { source, .. }) if matches!(*source, TxnError::NotAlgebraic { .. })
        ));
    }

    #[test]
    fn verbs_parse_from_their_names() {
        for verb in Operation::VERBS {
            let operation = Operation::named(verb, AlgebraicValue::Integer(1), None).unwrap();
            assert_eq!(operation.verb(), verb);
        }
        let err = Operation::named("frob", AlgebraicValue::Null, None).unwrap_err();
        assert!(err.to_string().contains("remove_from_set"), "{err}");
    }
}
