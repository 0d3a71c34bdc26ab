//! The engine's transaction builder: the verbs of [`Operations`], reads, commit.

use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicTransaction, Operation, Operations};

use crate::{Engine, Result, Submission, TransactionMode};

/// A transaction being built on an [`Engine`]. Its verbs are those of [`Operations`]; nothing
/// is checked or applied until [`Transaction::commit`], which applies all of it or none.
///
/// It borrows the engine, so its reads see one state. In [`TransactionMode::Coordinated`],
/// every register it reads is recorded with the value read: the transaction then applies only
/// if each still holds that value at the transaction's place in the log, so read-modify-write
/// is serializable across every member (a conflict is `TxnError::ReadConflict`: read again
/// and retry). Reads of algebraic columns are causal snapshot reads: they are not validated,
/// since such columns change without coordination by design.
#[derive(Debug)]
pub struct Transaction<'e> {
    engine: &'e mut Engine,
    mode: TransactionMode,
    tx: AlgebraicTransaction,
}

impl Operations for Transaction<'_> {
    fn operation(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        operation: Operation,
    ) -> &mut Self {
        self.tx.operation(table, row, column, operation);
        self
    }
}

impl<'e> Transaction<'e> {
    pub(crate) fn new(engine: &'e mut Engine, mode: TransactionMode) -> Self {
        Self {
            engine,
            mode,
            tx: AlgebraicTransaction::new(),
        }
    }

    /// The transaction's mode.
    pub fn mode(&self) -> TransactionMode {
        self.mode
    }

    /// Operations added so far.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// Reads one cell as committed on this node (not this transaction's own writes). In a
    /// coordinated transaction, a register read joins the read set the log validates.
    pub fn read(&mut self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        self.engine
            .read_into(self.mode, &mut self.tx, table, row, column)
    }

    /// Commits: all operations take effect, or none (and the error says why). See
    /// [`Engine::submit`] for when the outcome is decided at once.
    pub fn commit(self) -> Result<Submission> {
        self.engine.submit(self.mode, self.tx)
    }

    /// Drops every operation; nothing is applied.
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// let mut engine = Engine::in_memory(config).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// tx.abort(); // nothing applied, nothing logged
    /// assert_eq!(engine.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(0));
    /// ```
    pub fn abort(self) {}
}
