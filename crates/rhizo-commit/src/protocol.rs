use std::collections::BTreeMap;
use std::ops::DerefMut;

use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, Schema};
use rhizo_clock::{Dot, NodeId, VectorClock};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::txn::TransactionMetadata;
use crate::{AlgebraicOperation, AlgebraicTransaction, CellKey, LocalCommitError, Result};

/// The longest row key a replica accepts, in bytes.
pub const MAX_ROW_KEY_LEN: usize = 1024;

/// The most operations one transaction may hold.
pub const MAX_OPS_PER_TRANSACTION: usize = 100_000;

/// The effects of one update, grouped by cell (most updates touch one cell: inline, no allocation).
pub type Effects = SmallVec<[CellEffect; 1]>;

/// All effects of one update on one cell, applied together under the update's dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellEffect {
    /// The cell.
    pub key: CellKey,
    /// The validated effects, in the order the transaction listed them.
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    pub ops: SmallVec<[CellOp; 1]>,
}

/// A committed transaction as it travels and as it is made durable: its validated effects,
/// the dot that names it, and the clock of its origin when it committed (its causal past).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedUpdate {
    /// The event that names this update; `dot.node()` is the origin.
    pub dot: Dot,
    /// The origin's clock just after the commit: it contains `dot` and everything the update
    /// depends on.
    pub clock: VectorClock,
    /// The schema version the update was validated against.
    pub schema_version: u64,
    /// Effects grouped by cell, cells in key order.
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    pub effects: Effects,
    /// The transaction's metadata.
    pub metadata: TransactionMetadata,
}

impl VersionedUpdate {
    /// The node that committed the update.
    pub fn origin(&self) -> NodeId {
        self.dot.node()
    }

    /// Number of operations the update applies.
    pub fn op_count(&self) -> usize {
        self.effects.iter().map(|e| e.ops.len()).sum()
    }
}

/// Validates a transaction's operations against `schema`, refusing it whole if any operation is
/// not algebraic or not valid. `remove` builds an observed-remove effect from the committer's
/// view of the cell (a stateless committer passes `None` and such removes are refused).
/// A transaction ordered by the consensus log: validated by its proposer (which resolved its
/// observed-removes against its own view), applied by every replica in log order with
/// [`crate::Replica::apply_ordered`]. Registers change only this way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderedUpdate {
    /// The schema version the update was validated against.
    pub schema_version: u64,
    /// Effects grouped by cell, cells in key order.
    #[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]
    pub effects: Effects,
    /// Registers the proposer read, with the values it read: the update applies only if each
    /// still holds its value at the update's place in the log. Registers change only in log
    /// order, so every replica decides the same.
    pub reads: Vec<(CellKey, AlgebraicValue)>,
    /// The transaction's metadata.
    pub metadata: TransactionMetadata,
}

/// Builds an observed-remove effect from the committer's view of a cell.
pub(crate) type ObserveRemove<'a> =
    dyn FnMut(&CellKey, &ColumnSpec, &AlgebraicValue) -> rhizo_algebra::Result<CellOp> + 'a;

/// Which commit path a transaction is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitPath {
    /// Without coordination: every operation must be algebraic.
    Local,
    /// Through the consensus log: registers may be overwritten and compared too.
    Ordered,
}

pub(crate) fn validate_transaction(
    schema: &Schema,
    ops: SmallVec<[AlgebraicOperation; 2]>,
    mut observe: Option<&mut ObserveRemove<'_>>,
    path: CommitPath,
) -> Result<Effects> {
    check_op_count(ops.len())?;
    // Operation kinds that are never conflict-free are refused before anything is looked up.
    if path == CommitPath::Local && ops.iter().any(|op| !op.op_type.is_conflict_free()) {
        let operations = ops
            .iter()
            .filter(|op| !op.op_type.is_conflict_free() || column_needs_consensus(schema, &op.key))
            .map(|op| (op.key.clone(), op.op_type))
            .collect();
        return Err(LocalCommitError::RequiresCoordination { operations });
    }
    let mut effects = Effects::with_capacity(ops.len());
    let mut errors = Vec::new();
    let mut coordinated = Vec::new();
    for op in ops {
        if op.key.row().len() > MAX_ROW_KEY_LEN {
            return Err(LocalCommitError::RowKeyTooLong {
                len: op.key.row().len(),
                key: Box::new(op.key),
                max: MAX_ROW_KEY_LEN,
            });
        }
        let spec = match schema.column(op.key.table(), op.key.column()) {
            Ok(spec) => spec,
            Err(err) => {
                errors.push((op.key, err));
                continue;
            }
        };
        if path == CommitPath::Local && !spec.merge().is_conflict_free() {
            // An algebraic-looking operation on a register column still needs consensus.
            coordinated.push((op.key, op.op_type));
            continue;
        }
        let op_type = for_column(op.op_type, spec);
        let built = match (op_type, observe.as_mut()) {
            (OpType::OrSetRemove, Some(observe)) => observe(&op.key, spec, &op.value),
            (OpType::GenericConditional, _) => match &op.expected {
                Some(expected) => CellOp::compare_and_set(spec, expected, &op.value),
                None => CellOp::new(spec, op_type, &op.value),
            },
            _ => CellOp::new(spec, op_type, &op.value),
        };
        match built {
            Ok(cell_op) => effects.push(CellEffect {
                key: op.key,
                ops: smallvec::smallvec![cell_op],
            }),
            Err(err) => errors.push((op.key, err)),
        }
    }
    if !coordinated.is_empty() {
        return Err(LocalCommitError::RequiresCoordination {
            operations: coordinated,
        });
    }
    if !errors.is_empty() {
        return Err(LocalCommitError::InvalidOperations { errors });
    }
    group_by_cell(&mut effects);
    Ok(effects)
}

/// Refuses an empty transaction (it would name no effect, and dots stay meaningful) and one
/// with more than [`MAX_OPS_PER_TRANSACTION`] operations.
pub(crate) fn check_op_count(len: usize) -> Result<()> {
    if len == 0 {
        return Err(LocalCommitError::EmptyTransaction);
    }
    if len > MAX_OPS_PER_TRANSACTION {
        return Err(LocalCommitError::TransactionTooLarge {
            len,
            max: MAX_OPS_PER_TRANSACTION,
        });
    }
    Ok(())
}

/// The operation kind `op_type` means on a column of `spec`: "add to a set" is UNION on a
/// grow-only set column and OR_ADD on an observed-remove one, whichever the caller named.
pub(crate) fn for_column(op_type: OpType, spec: &ColumnSpec) -> OpType {
    match (op_type, spec.merge()) {
        (OpType::OrSetAdd, MergeType::Union) => OpType::SemilatticeUnion,
        (OpType::SemilatticeUnion, MergeType::ObservedRemoveSet) => OpType::OrSetAdd,
        (other, _) => other,
    }
}

fn column_needs_consensus(schema: &Schema, key: &CellKey) -> bool {
    schema
        .column(key.table(), key.column())
        .is_ok_and(|spec| !spec.merge().is_conflict_free())
}

/// Whether effects are grouped by cell: distinct cells in key order, as transactions often list
/// them already.
pub(crate) fn is_grouped(effects: &[CellEffect]) -> bool {
    effects.windows(2).all(|w| w[0].key < w[1].key)
}

/// What [`group_by_cell`] groups: an effect, alone or with something carried along.
pub(crate) trait WithEffect {
    fn effect(&self) -> &CellEffect;
    fn effect_mut(&mut self) -> &mut CellEffect;
}

impl WithEffect for CellEffect {
    fn effect(&self) -> &CellEffect {
        self
    }
    fn effect_mut(&mut self) -> &mut CellEffect {
        self
    }
}

/// A prepared commit's effect and its cell's slot, carried along so no key is hashed again.
impl<T> WithEffect for (CellEffect, T) {
    fn effect(&self) -> &CellEffect {
        &self.0
    }
    fn effect_mut(&mut self) -> &mut CellEffect {
        &mut self.0
    }
}

/// Groups single-operation effects by cell: cells in key order, the operations of one cell in
/// transaction order, each cell keeping what its first item carries.
pub(crate) fn group_by_cell<C, T>(items: &mut C)
where
    T: WithEffect,
    C: Default + DerefMut<Target = [T]> + IntoIterator<Item = T> + Extend<T>,
{
    if items
        .windows(2)
        .all(|w| w[0].effect().key < w[1].effect().key)
    {
        return;
    }
    // Stable: keeps transaction order within a cell.
    items.sort_by(|a, b| a.effect().key.cmp(&b.effect().key));
    for mut item in std::mem::take(items) {
        match items.last_mut() {
            Some(last) if last.effect().key == item.effect().key => {
                let ops = std::mem::take(&mut item.effect_mut().ops);
                last.effect_mut().ops.extend(ops);
            }
            _ => items.extend(Some(item)),
        }
    }
}

/// The roadmap's local commit protocol: a node's clock and schema, and the pure functions that
/// decide whether a transaction may commit without coordination, stamp it, and merge updates.
///
/// It holds no cell state — [`crate::Replica`] is the stateful replica built on the same rules.
/// Because it has no state, it cannot build an observed-remove (that needs the adds observed)
/// and refuses one with [`rhizo_algebra::AlgebraError::NeedsContext`].
#[derive(Debug, Clone)]
pub struct LocalCommitProtocol {
    node: NodeId,
    clock: VectorClock,
    schema: Schema,
}

impl LocalCommitProtocol {
    /// The protocol of `node` under `schema`, with an empty clock.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// use rhizo_commit::{AlgebraicTransaction, LocalCommitProtocol, Operations};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut on_a = LocalCommitProtocol::new(a, schema.clone());
    /// let mut on_b = LocalCommitProtocol::new(b, schema);
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 2);
    /// assert!(on_a.can_commit_locally(&tx));
    /// let from_a = on_a.commit_local(tx.clone()).unwrap();
    /// let from_b = on_b.commit_local(tx).unwrap();
    /// let merged = on_a.merge_updates(&from_a, &from_b).unwrap();
    /// let key = rhizo_commit::CellKey::new("counters", "hits", "value");
    /// assert_eq!(merged.get(&key), Some(Ok(AlgebraicValue::Integer(4))));
    /// ```
    pub fn new(node: NodeId, schema: Schema) -> Self {
        Self {
            node,
            clock: VectorClock::new(),
            schema,
        }
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The node's clock: its own commits and every update it has observed.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// The schema transactions are validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Why `tx` may not commit locally, or `Ok` if it may.
    pub fn check(&self, tx: &AlgebraicTransaction) -> Result<()> {
        validate_transaction(
            &self.schema,
            tx.clone().into_local_operations()?,
            None,
            CommitPath::Local,
        )
        .map(drop)
    }

    /// Whether `tx` may commit without coordination: it is non-empty, every operation is
    /// algebraic and valid for its column.
    pub fn can_commit_locally(&self, tx: &AlgebraicTransaction) -> bool {
        self.check(tx).is_ok()
    }

    /// Commits `tx` locally: validates it, ticks the clock and returns the stamped update.
    /// On error nothing changes (the clock is not ticked).
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// use rhizo_commit::{AlgebraicTransaction, LocalCommitProtocol, Operations};
    /// let a = NodeId::new("a").unwrap();
    /// let mut protocol = LocalCommitProtocol::new(a, schema);
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// let update = protocol.commit_local(tx).unwrap();
    /// assert_eq!((update.dot.node(), update.dot.counter()), (a, 1));
    /// let mut put = AlgebraicTransaction::new();
    /// put.put("counters", "hits", "value", 5); // an overwrite needs coordination
    /// assert!(protocol.commit_local(put).is_err());
    /// assert_eq!(protocol.clock().get(a), 1); // the refusal ticked nothing
    /// ```
    pub fn commit_local(&mut self, tx: AlgebraicTransaction) -> Result<VersionedUpdate> {
        let metadata = tx.metadata.clone();
        let effects = validate_transaction(
            &self.schema,
            tx.into_local_operations()?,
            None,
            CommitPath::Local,
        )?;
        let mut clock = self.clock.clone();
        let dot = clock.tick(self.node)?;
        self.clock = clock.clone();
        Ok(VersionedUpdate {
            dot,
            clock,
            schema_version: self.schema.version(),
            effects,
            metadata,
        })
    }

    /// Records that this node has observed `update` (its clock absorbs the update's clock), so
    /// that the node's next commits depend on it.
    pub fn observe(&mut self, update: &VersionedUpdate) {
        self.clock.merge(&update.clock);
    }

    /// The state two updates produce together (in either order: the result is the same).
    pub fn merge_updates(&self, a: &VersionedUpdate, b: &VersionedUpdate) -> Result<MergedState> {
        self.merge_all([a, b])
    }

    /// The state a set of updates produces, whatever order they are given in: updates are
    /// de-duplicated by dot and applied in (origin, counter) order, which respects each origin's
    /// order as causal delivery does. This is also the sequential oracle the replica is tested
    /// against.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// use rhizo_commit::{AlgebraicTransaction, CellKey, LocalCommitProtocol, Operations};
    /// let mut protocol = LocalCommitProtocol::new(NodeId::new("a").unwrap(), schema);
    /// let updates: Vec<_> = (1..=3)
    ///     .map(|n| {
    ///         let mut tx = AlgebraicTransaction::new();
    ///         tx.increment("counters", "hits", "value", n);
    ///         protocol.commit_local(tx).unwrap()
    ///     })
    ///     .collect();
    /// let forward = protocol.merge_all(&updates).unwrap();
    /// let backward = protocol.merge_all(updates.iter().rev().chain(&updates)).unwrap(); // any order, duplicates
    /// let key = CellKey::new("counters", "hits", "value");
    /// assert_eq!(forward.get(&key), Some(Ok(AlgebraicValue::Integer(6))));
    /// assert_eq!(backward.get(&key), forward.get(&key));
    /// ```
    pub fn merge_all<'a>(
        &self,
        updates: impl IntoIterator<Item = &'a VersionedUpdate>,
    ) -> Result<MergedState> {
        let mut by_dot: BTreeMap<Dot, &VersionedUpdate> = BTreeMap::new();
        for update in updates {
            by_dot.entry(update.dot).or_insert(update);
        }
        let mut state = MergedState::default();
        for (dot, update) in by_dot {
            state.apply(&self.schema, dot, update)?;
        }
        Ok(state)
    }
}

/// The cells a set of updates produces, keyed and ordered by cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedState {
    cells: BTreeMap<CellKey, CellState>,
    clock: VectorClock,
}

impl MergedState {
    fn apply(&mut self, schema: &Schema, dot: Dot, update: &VersionedUpdate) -> Result<()> {
        for effect in &update.effects {
            let spec = schema
                .column(effect.key.table(), effect.key.column())
                .map_err(|source| LocalCommitError::UnknownCell {
                    key: Box::new(effect.key.clone()),
                    source: Box::new(source),
                })?;
            let cell = self
                .cells
                .entry(effect.key.clone())
                .or_insert_with(|| CellState::new(spec));
            cell.apply_all(&effect.ops, dot).map_err(|source| {
                LocalCommitError::RemoteStateRejected {
                    from: dot.node(),
                    key: Box::new(effect.key.clone()),
                    source: Box::new(source),
                }
            })?;
        }
        self.clock.merge(&update.clock);
        Ok(())
    }

    /// The value of one cell, or `None` if no update touched it.
    pub fn get(&self, key: &CellKey) -> Option<Result<AlgebraicValue>> {
        self.cells.get(key).map(|cell| {
            cell.value().map_err(|source| LocalCommitError::Read {
                key: Box::new(key.clone()),
                source: Box::new(source),
            })
        })
    }

    /// The cells touched, in key order.
    pub fn cells(&self) -> impl ExactSizeIterator<Item = (&CellKey, &CellState)> {
        self.cells.iter()
    }

    /// The union of the merged updates' clocks.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Number of cells touched.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no cell was touched.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}
