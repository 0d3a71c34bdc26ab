//! Prepared cells: a cell's address resolved once, so that committing to it again and again
//! (a counter bumped per request, a high-water mark raised per event) builds no key, looks up
//! no schema and, in the steady state, hashes no string.
//!
//! A [`PreparedCell`] holds its key, its column's spec and the schema that spec came from, the
//! identity of the replica that prepared it, and a hint: the cell's id in that replica. Nothing
//! is trusted blindly:
//! - the spec is used as is only if the committing replica holds that very schema (the same
//!   allocation, so the same content); otherwise the column is looked up again and must be
//!   unchanged, or the commit is refused with [`LocalCommitError::StalePreparedCell`];
//! - the hint is used only by the replica that prepared the handle (the same identity
//!   allocation: a clone or a recovered replica has its own), whose cell ids are never reused;
//!   any other replica hashes the key and looks it up as on the string path, and never writes
//!   the hint.
//!
//! So a handle used on another replica, after a recovery or after a schema change costs at most
//! the string path's lookups, and never reaches a wrong cell. What a prepared commit does is
//! exactly what [`Replica::commit`] does with the same operations: the same validation, effects,
//! records and bytes (tested side by side).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rhizo_algebra::{
    AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, Scalar, Schema, ValueType,
};
use rhizo_clock::Dot;
use smallvec::SmallVec;

use super::{Replica, Slot, Slots, invalid, observed_remove};
use crate::cells::CellId;
use crate::protocol::{CellEffect, Effects, check_op_count, for_column, group_by_cell, is_grouped};
use crate::txn::TransactionMetadata;
use crate::{CellKey, CommitReceipt, LocalCommitError, MAX_ROW_KEY_LEN, Result};

/// No id known yet.
const NO_HINT: u32 = u32::MAX;

/// The most entries a replica's kept counter-bump list may hold room for between commits
/// (16 bytes each): a larger one, grown by a huge transaction, is freed.
const KEPT_BATCH_CAPACITY: usize = 4096;

/// A cell resolved once for repeated use: see [`Replica::prepare_cell`].
///
/// It is `Send` and `Sync` and may be shared between threads and replicas. Its hint is written
/// only by the replica that prepared it, which holds `&mut` while committing, so relaxed atomic
/// loads and stores suffice.
#[derive(Debug)]
pub struct PreparedCell {
    key: CellKey,
    spec: ColumnSpec,
    schema: Arc<Schema>,
    owner: StoreIdentity,
    hint: AtomicU32,
}

/// The identity of one replica's cell store, for prepared-cell hints: an allocation of its own
/// per replica value (a clone and a recovered replica get fresh ones), held by the handles it
/// prepares so that the address cannot be reused while a handle could compare against it.
#[derive(Debug, Default)]
pub(crate) struct StoreIdentity(Arc<()>);

impl Clone for StoreIdentity {
    /// A fresh identity: a cloned replica assigns ids to new cells on its own from now on.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl StoreIdentity {
    fn same(&self, other: &StoreIdentity) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Clone for PreparedCell {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            spec: self.spec,
            schema: Arc::clone(&self.schema),
            owner: StoreIdentity(Arc::clone(&self.owner.0)),
            hint: AtomicU32::new(self.hint.load(Ordering::Relaxed)),
        }
    }
}

impl PreparedCell {
    /// The cell's key.
    pub fn key(&self) -> &CellKey {
        &self.key
    }

    /// The column's spec, as the schema it was prepared against defines it.
    pub fn spec(&self) -> &ColumnSpec {
        &self.spec
    }
}

/// What one prepared operation does: built and validated when it is added, except an
/// observed-remove, whose tags are those the committing replica has observed at commit time.
///
/// 16 bytes and nothing to drop: integer operations inline, any other's payload in the
/// transaction's list of [`OtherEffect`]s. A `CellOp` is 48 bytes (16-byte aligned, for its
/// `i128` decimals), and a transaction is moved into the commit and its operations pushed one
/// by one; the integer ones are all the commonest transactions hold. With nothing to drop, a
/// list of operations is freed without being walked (a payload to drop would mean checking
/// every operation for one).
#[derive(Debug, Clone, Copy)]
enum PreparedEffect {
    /// `CellOp::AddInt`, the commonest.
    AddInt(i64),
    /// `CellOp::Max(Scalar::Integer(_))`.
    MaxInt(i64),
    /// `CellOp::Min(Scalar::Integer(_))`.
    MinInt(i64),
    /// Any other operation: the next of the transaction's [`OtherEffect`]s.
    Other,
}

/// The payloads of a transaction's [`PreparedEffect::Other`] operations, in their order.
#[derive(Debug, Clone, Default)]
struct OtherEffects(Vec<OtherEffect>);

/// A validated operation: an effect held inline, or the payload of a
/// [`PreparedEffect::Other`].
enum ValidatedEffect {
    Inline(PreparedEffect),
    Payload(OtherEffect),
}

/// The payload of an operation whose effect is [`PreparedEffect::Other`].
#[derive(Debug, Clone)]
enum OtherEffect {
    /// Any operation but an integer add, max or min.
    Op(CellOp),
    /// An observed-remove of these elements.
    Remove(AlgebraicValue),
}

#[derive(Debug, Clone)]
struct PreparedOp<'c> {
    cell: &'c PreparedCell,
    effect: PreparedEffect,
}

/// A transaction over [`PreparedCell`]s, committed with [`Replica::commit_prepared`].
///
/// Each operation is validated against its cell's column as it is added, so a wrong type or a
/// register column is refused there (with the error [`Replica::commit`] would give) and the
/// transaction is left as it was.
///
/// ```
/// use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
/// use rhizo_clock::NodeId;
/// use rhizo_commit::{PreparedTransaction, Replica, ReplicaConfig};
///
/// let schema = Schema::builder()
///     .table("counters")
///     .column("value", MergeType::Add, ValueType::Integer)
///     .build()
///     .unwrap();
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
/// let views = replica.prepare_cell("counters", "page_views", "value").unwrap();
/// for _ in 0..3 {
///     let mut tx = PreparedTransaction::new();
///     tx.increment(&views, 1).unwrap();
///     replica.commit_prepared(tx).unwrap();
/// }
/// assert_eq!(replica.read_prepared(&views).unwrap(), AlgebraicValue::Integer(3));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PreparedTransaction<'c> {
    /// The operation of a one-operation transaction, apart: the commonest transaction has one,
    /// and then commits without touching (or freeing) a list.
    only: Option<PreparedOp<'c>>,
    /// Every operation, in order, once there are two or more (`only` is then `None`): a commit
    /// of many walks one slice.
    all: Vec<PreparedOp<'c>>,
    /// The payloads of the operations whose effect is [`PreparedEffect::Other`], in their order
    /// (boxed, and absent until there is one: a transaction of counter bumps stays 72 bytes,
    /// cheap to move and to drop).
    others: Option<Box<OtherEffects>>,
    /// Free-form metadata carried with the transaction, as [`crate::AlgebraicTransaction`]'s.
    pub metadata: TransactionMetadata,
}

impl<'c> PreparedTransaction<'c> {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty transaction with room for `ops` operations.
    pub fn with_capacity(ops: usize) -> Self {
        Self {
            only: None,
            all: Vec::with_capacity(if ops > 1 { ops } else { 0 }),
            others: None,
            metadata: TransactionMetadata::default(),
        }
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        usize::from(self.only.is_some()) + self.all.len()
    }

    /// Whether the transaction has no operations.
    pub fn is_empty(&self) -> bool {
        self.only.is_none() && self.all.is_empty()
    }

    /// Any algebraic operation on a cell, as [`crate::AlgebraicOperation::new`] names it (the
    /// methods below are this with their kind). Refused like them: a register column or a value
    /// the column does not take.
    #[inline]
    pub fn operation(
        &mut self,
        cell: &'c PreparedCell,
        op_type: OpType,
        value: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, op_type, value.into())
    }

    #[inline]
    fn op(
        &mut self,
        cell: &'c PreparedCell,
        op_type: OpType,
        value: AlgebraicValue,
    ) -> Result<&mut Self> {
        let spec = &cell.spec;
        // The commonest operation, an integer added to an integer sum, is valid as it stands
        // (as `CellOp::new` knows): inline, everything else checked out of line.
        let effect = match (op_type, spec.merge(), spec.value_type(), &value) {
            (
                OpType::AbelianAdd,
                MergeType::Add,
                ValueType::Integer,
                &AlgebraicValue::Integer(v),
            ) => {
                // An integer owns nothing: skip the out-of-line drop a value would take.
                std::mem::forget(value);
                PreparedEffect::AddInt(v)
            }
            _ => Self::checked_effect(cell, op_type, value, &mut self.others)?,
        };
        let op = PreparedOp { cell, effect };
        if !self.all.is_empty() {
            self.all.push(op);
        } else if self.only.is_none() {
            self.only = Some(op);
        } else {
            self.second(op);
        }
        Ok(self)
    }

    /// Adds the second operation: both move to the list. Out of line, so that adding an
    /// operation stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn second(&mut self, op: PreparedOp<'c>) {
        let only = self
            .only
            .take()
            .expect("a second operation follows a first");
        self.all.reserve(2);
        self.all.push(only);
        self.all.push(op);
    }

    /// The effect of any operation but an integer added to an integer sum, validated as the
    /// string path validates it; the payload of an [`PreparedEffect::Other`] goes to `others`
    /// (here, out of line: with that push inlined, adding an operation grows too large to be
    /// inlined into the caller's loop, which then pays a call for every integer add too).
    #[inline(never)]
    fn checked_effect(
        cell: &PreparedCell,
        op_type: OpType,
        value: AlgebraicValue,
        others: &mut Option<Box<OtherEffects>>,
    ) -> Result<PreparedEffect> {
        Ok(match Self::validated_effect(cell, op_type, value)? {
            ValidatedEffect::Inline(effect) => effect,
            ValidatedEffect::Payload(other) => {
                others.get_or_insert_default().0.push(other);
                PreparedEffect::Other
            }
        })
    }

    /// [`PreparedTransaction::checked_effect`]'s validation.
    fn validated_effect(
        cell: &PreparedCell,
        op_type: OpType,
        value: AlgebraicValue,
    ) -> Result<ValidatedEffect> {
        let spec = &cell.spec;
        // As on the string path: an overwrite or compare-and-set, and any operation on a
        // register column, goes through consensus.
        if !op_type.is_conflict_free() || !spec.merge().is_conflict_free() {
            return Err(LocalCommitError::RequiresCoordination {
                operations: vec![(cell.key.clone(), op_type)],
            });
        }
        let invalid = |source| LocalCommitError::InvalidOperations {
            errors: vec![(cell.key.clone(), source)],
        };
        let op_type = for_column(op_type, spec);
        Ok(match op_type {
            OpType::OrSetRemove => {
                spec.validate(op_type, &value).map_err(invalid)?;
                ValidatedEffect::Payload(OtherEffect::Remove(value))
            }
            _ => {
                let op = CellOp::new(spec, op_type, &value).map_err(invalid)?;
                match op {
                    CellOp::AddInt(amount) => {
                        ValidatedEffect::Inline(PreparedEffect::AddInt(amount))
                    }
                    CellOp::Max(Scalar::Integer(v)) => {
                        ValidatedEffect::Inline(PreparedEffect::MaxInt(v))
                    }
                    CellOp::Min(Scalar::Integer(v)) => {
                        ValidatedEffect::Inline(PreparedEffect::MinInt(v))
                    }
                    op => ValidatedEffect::Payload(OtherEffect::Op(op)),
                }
            }
        })
    }

    /// ADD `amount` to an additive cell.
    pub fn increment(
        &mut self,
        cell: &'c PreparedCell,
        amount: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::AbelianAdd, amount.into())
    }

    /// MULTIPLY a multiplicative cell by `factor`.
    pub fn multiply(
        &mut self,
        cell: &'c PreparedCell,
        factor: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::AbelianMultiply, factor.into())
    }

    /// Raise a MAX cell to at least `value`.
    pub fn max(
        &mut self,
        cell: &'c PreparedCell,
        value: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::SemilatticeMax, value.into())
    }

    /// Lower a MIN cell to at most `value`.
    pub fn min(
        &mut self,
        cell: &'c PreparedCell,
        value: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::SemilatticeMin, value.into())
    }

    /// Add string elements to a set cell (OR_ADD or UNION, by the column's merge type).
    pub fn add_to_set<S: Into<String>>(
        &mut self,
        cell: &'c PreparedCell,
        elements: impl IntoIterator<Item = S>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::OrSetAdd, AlgebraicValue::string_set(elements))
    }

    /// Remove string elements from an observed-remove set cell: the adds of them that the
    /// committing replica has observed when the transaction commits.
    pub fn remove_from_set<S: Into<String>>(
        &mut self,
        cell: &'c PreparedCell,
        elements: impl IntoIterator<Item = S>,
    ) -> Result<&mut Self> {
        self.op(
            cell,
            OpType::OrSetRemove,
            AlgebraicValue::string_set(elements),
        )
    }

    /// Grow-only UNION of any set value.
    pub fn union(
        &mut self,
        cell: &'c PreparedCell,
        set: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::SemilatticeUnion, set.into())
    }

    /// INTERSECT a set cell with `set`.
    pub fn intersect(
        &mut self,
        cell: &'c PreparedCell,
        set: impl Into<AlgebraicValue>,
    ) -> Result<&mut Self> {
        self.op(cell, OpType::SemilatticeIntersect, set.into())
    }
}

/// [`Replica::integer_add_batch`] in the steady state, where every handle was prepared by this
/// replica against the schema it holds and names a cell by a hint that is ranked: `Some` of
/// whether `ops` are a batch of counter bumps (listed in `batch`, empty on entry), or `None`
/// (and `batch` emptied) when a cell needs more than its hint and rank (a handle without a
/// hint, from elsewhere, or of a cell created since the last ranking), for the general check
/// to decide.
///
/// Out of line, with the slices passed in, for the same reason as [`apply_adds`].
#[inline(never)]
fn ranked_add_batch(
    ops: &[PreparedOp<'_>],
    identity: &StoreIdentity,
    schema: &Arc<Schema>,
    ranks: &[u32],
    states: &[CellState],
    batch: &mut Vec<(CellId, i64)>,
) -> Option<bool> {
    batch.reserve(ops.len());
    let mut last_rank: i64 = -1;
    for PreparedOp { cell, effect } in ops {
        let PreparedEffect::AddInt(amount) = *effect else {
            return Some(false);
        };
        // No hint (`NO_HINT` is past every rank) or a cell not ranked yet: the general check.
        // Both bounds first: one comparison, and the handle's checks after.
        let id = cell.hint.load(Ordering::Relaxed);
        let (Some(&rank), Some(state)) = (ranks.get(id as usize), states.get(id as usize)) else {
            batch.clear();
            return None;
        };
        if !cell.owner.same(identity) || !Arc::ptr_eq(&cell.schema, schema) {
            batch.clear();
            return None;
        }
        let rank = i64::from(rank);
        if rank <= last_rank {
            return Some(false);
        }
        last_rank = rank;
        // The range check `apply_local` makes for the committer.
        if state.check_add_int(amount).is_err() {
            return Some(false);
        }
        batch.push((id, amount));
    }
    Some(true)
}

/// Applies a batch of integer adds [`Replica::integer_add_batch`] accepted, filing each cell
/// as open; on error, the add's place in the batch and why (the check makes it unreachable).
///
/// Out of line, with the slices passed in: inside the commit, the loop runs short of registers
/// and reloads the dot from the stack at every add.
#[inline(never)]
fn apply_adds(
    states: &mut [CellState],
    open_cells: &mut super::OpenCells,
    batch: &[(CellId, i64)],
    dot: Dot,
) -> std::result::Result<(), (usize, rhizo_algebra::AlgebraError)> {
    for (i, &(id, amount)) in batch.iter().enumerate() {
        // In range, checked by `integer_add_batch` (as the general path checks before it
        // installs anything).
        states[id as usize]
            .apply_add_int(amount, dot)
            .map_err(|source| (i, source))?;
        open_cells.file(id);
    }
    Ok(())
}

impl Replica {
    /// Resolves the cell (`table`, `row`, `column`) once for repeated local commits with
    /// [`Replica::commit_prepared`] and reads with [`Replica::read_prepared`].
    ///
    /// Refuses a row key longer than [`MAX_ROW_KEY_LEN`] and a table or column the schema lacks.
    /// Preparing changes nothing: the cell is created by the first commit to it, as on the
    /// string path.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::PreparedTransaction;
    /// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// let hits = replica.prepare_cell("counters", "hits", "value").unwrap(); // resolved once
    /// for _ in 0..3 {
    ///     let mut tx = PreparedTransaction::new();
    ///     tx.increment(&hits, 1).unwrap(); // validated against the cached column as it is added
    ///     replica.commit_prepared(tx).unwrap();
    /// }
    /// assert_eq!(replica.read_prepared(&hits).unwrap(), AlgebraicValue::Integer(3));
    /// assert!(replica.prepare_cell("counters", "hits", "nope").is_err());
    /// ```
    pub fn prepare_cell(&self, table: &str, row: &str, column: &str) -> Result<PreparedCell> {
        self.prepare_cell_key(CellKey::new(table, row, column))
    }

    /// [`Replica::prepare_cell`] by key.
    pub fn prepare_cell_key(&self, key: CellKey) -> Result<PreparedCell> {
        if key.row().len() > MAX_ROW_KEY_LEN {
            return Err(LocalCommitError::RowKeyTooLong {
                len: key.row().len(),
                key: Box::new(key),
                max: MAX_ROW_KEY_LEN,
            });
        }
        let spec = match self.schema.column(key.table(), key.column()) {
            Ok(spec) => *spec,
            Err(source) => {
                return Err(LocalCommitError::UnknownCell {
                    key: Box::new(key),
                    source: Box::new(source),
                });
            }
        };
        let hint = self.cells.find(&key).unwrap_or(NO_HINT);
        Ok(PreparedCell {
            key,
            spec,
            schema: Arc::clone(&self.schema),
            owner: StoreIdentity(Arc::clone(&self.identity.0)),
            hint: AtomicU32::new(hint),
        })
    }

    /// Commits a prepared transaction locally, exactly as [`Replica::commit`] commits the same
    /// operations: atomically, under one new dot, with the same record; on error nothing
    /// changes.
    ///
    /// ```
    /// # use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::{AlgebraicTransaction, Operations, Replica, ReplicaConfig};
    /// # let schema = Schema::builder()
    /// #     .table("counters")
    /// #     .column("value", MergeType::Add, ValueType::Integer)
    /// #     .build()
    /// #     .unwrap();
    /// # use rhizo_commit::PreparedTransaction;
    /// let mut replica = Replica::new(NodeId::new("a").unwrap(), schema, ReplicaConfig::default());
    /// let cells: Vec<_> = ["r1", "r2"]
    ///     .iter()
    ///     .map(|row| replica.prepare_cell("counters", row, "value").unwrap())
    ///     .collect();
    /// let mut tx = PreparedTransaction::with_capacity(cells.len());
    /// for cell in &cells {
    ///     tx.increment(cell, 1).unwrap();
    /// }
    /// let receipt = replica.commit_prepared(tx).unwrap(); // one atomic commit
    /// assert_eq!(receipt.dot.counter(), 1);
    /// assert_eq!(replica.read("counters", "r2", "value").unwrap(), AlgebraicValue::Integer(1));
    /// ```
    pub fn commit_prepared(&mut self, tx: PreparedTransaction<'_>) -> Result<CommitReceipt> {
        let PreparedTransaction {
            only,
            all,
            others,
            metadata,
        } = tx;
        match only {
            // One operation (and `all` empty): in the allowed count.
            Some(only) => self.commit_one(only, others, metadata),
            None => {
                check_op_count(all.len())?;
                self.commit_many(all, others, metadata)
            }
        }
    }

    /// A commit of several operations: out of line, so that the one-operation path above
    /// keeps a small frame now that integer adds are inlined into this one.
    #[inline(never)]
    fn commit_many(
        &mut self,
        ops: Vec<PreparedOp<'_>>,
        others: Option<Box<OtherEffects>>,
        metadata: TransactionMetadata,
    ) -> Result<CommitReceipt> {
        // Both paths below order existing cells by rank.
        self.cells.refresh_ranks();
        let mut kept = std::mem::take(&mut self.add_batch);
        let steady = ranked_add_batch(
            &ops,
            &self.identity,
            &self.schema,
            self.cells.ranks(),
            self.cells.states(),
            &mut kept,
        );
        let (accepted, batch) = match steady {
            Some(accepted) => (accepted, kept),
            None => self.integer_add_batch(&ops, kept),
        };
        debug_assert!(
            !accepted
                || batch
                    .iter()
                    .zip(&ops)
                    .all(|(&(id, _), op)| *self.cells.key(id) == op.cell.key),
            "each hint names its handle's cell"
        );
        if accepted {
            let committed = self.commit_integer_adds(&batch, &ops, metadata);
            self.keep_add_batch(batch);
            return committed;
        }
        self.keep_add_batch(batch);
        let len = ops.len();
        let mut effects = Effects::with_capacity(len);
        let mut slots = Slots::with_capacity(len);
        // Cells this commit creates: their handles learn the new ids afterwards.
        let mut created: SmallVec<[&PreparedCell; 2]> = SmallVec::new();
        let mut errors = Vec::new();
        let mut others = others.into_iter().flat_map(|others| others.0);
        for PreparedOp { cell, effect } in ops {
            let slot = self.resolve(cell)?;
            let op = match self.built(cell, slot, effect, &mut others) {
                Ok(op) => op,
                Err(source) => {
                    errors.push((cell.key.clone(), source));
                    continue;
                }
            };
            if slot.is_err() {
                created.push(cell);
            }
            effects.push(CellEffect {
                key: cell.key.clone(),
                ops: smallvec::smallvec![op],
            });
            slots.push(slot);
        }
        if !errors.is_empty() {
            return Err(LocalCommitError::InvalidOperations { errors });
        }
        // Grouped (cells in key order, each once) unless the transaction says otherwise; cells
        // that exist compare by rank, so checking costs integer comparisons, not key ones.
        let grouped = effects
            .windows(2)
            .zip(slots.windows(2))
            .all(|(e, s)| match (s[0], s[1]) {
                (Ok(a), Ok(b)) => self.cells.precedes(a, b),
                _ => e[0].key < e[1].key,
            });
        debug_assert_eq!(grouped, is_grouped(&effects));
        if !grouped {
            // Each cell's slot travels with its effects, so no key is hashed again.
            let mut pairs: Vec<(CellEffect, Slot)> = effects.into_iter().zip(slots).collect();
            group_by_cell(&mut pairs);
            (effects, slots) = pairs.into_iter().unzip();
        }
        let receipt = self.commit_effects(effects, &slots, metadata)?;
        for cell in created {
            if let Some(id) = self.cells.find(&cell.key) {
                self.learn(cell, id);
            }
        }
        Ok(receipt)
    }

    /// Keeps a counter-bump list, emptied, for the next batch, unless a huge transaction grew
    /// it (accepted as a batch or not: `integer_add_batch` reserves room for every operation).
    #[inline]
    fn keep_add_batch(&mut self, mut batch: Vec<(CellId, i64)>) {
        if batch.capacity() <= KEPT_BATCH_CAPACITY {
            batch.clear();
            self.add_batch = batch;
        }
    }

    /// Checks whether `ops` are a batch of counter bumps and lists them in `batch` (empty on
    /// entry, handed back) as `(cell, amount)`: integer adds, each to a cell this replica
    /// holds, each cell once and in key order (so the transaction is already grouped). `false`
    /// for any other transaction, or if an add would be refused: the general path then commits
    /// it, or reports every refused operation. Changes nothing; the key ranks must be fresh.
    /// The list is moved in and out rather than borrowed, so that its length stays in a
    /// register while it fills.
    fn integer_add_batch(
        &self,
        ops: &[PreparedOp<'_>],
        mut batch: Vec<(CellId, i64)>,
    ) -> (bool, Vec<(CellId, i64)>) {
        // A list, not a small vector: pushing to a spilled `SmallVec` checks where its items
        // are on every push.
        batch.reserve(ops.len());
        // The previous cell's rank: each cell's rank is looked up once, to compare with the
        // next. `FIRST` before the first cell; `UNRANKED` for a cell created since the last
        // refresh, which compares by key (the previous cell is then the batch's last). One
        // integer, not an `Option` of a pair: the loop keeps it in a register.
        const FIRST: i64 = -1;
        const UNRANKED: i64 = i64::MAX;
        let mut last_rank = FIRST;
        for PreparedOp { cell, effect } in ops {
            let PreparedEffect::AddInt(amount) = *effect else {
                return (false, batch);
            };
            // The steady state first, anything else through `resolve` (which checks the hint
            // first too, but as a call for every cell, with its general result to unpack).
            let Some(id) = self.hinted(cell).or_else(|| match self.resolve(cell) {
                Ok(Ok(id)) => Some(id),
                _ => None,
            }) else {
                return (false, batch);
            };
            let rank = self.cells.rank(id).map_or(UNRANKED, i64::from);
            let ordered = if rank != UNRANKED && last_rank != UNRANKED {
                last_rank < rank
            } else {
                match batch.last() {
                    Some(&(last_id, _)) => self.cells.precedes(last_id, id),
                    None => true,
                }
            };
            if !ordered {
                return (false, batch);
            }
            last_rank = rank;
            // The range check `apply_local` makes for the committer.
            if self.cells.state(id).check_add_int(amount).is_err() {
                return (false, batch);
            }
            batch.push((id, amount));
        }
        (true, batch)
    }

    /// Commits a batch [`Replica::integer_add_batch`] accepted (`ops` are its operations, for
    /// their keys): what `commit_effects` does with the same grouped effects, without building
    /// them unless a record needs them (a replica in memory never does).
    fn commit_integer_adds(
        &mut self,
        batch: &[(CellId, i64)],
        ops: &[PreparedOp<'_>],
        metadata: TransactionMetadata,
    ) -> Result<CommitReceipt> {
        let dot = self.next_dot()?;
        // The operations are needed only to name a key in an error.
        apply_adds(self.cells.states_mut(), &mut self.open_cells, batch, dot)
            .map_err(|(i, source)| invalid(&ops[i].cell.key, source))?;
        if !self.config.emit_records {
            return Ok(self.finish_local_commit(dot, Effects::new, metadata));
        }
        let effects = batch
            .iter()
            .zip(ops)
            .map(|(&(_, amount), op)| CellEffect {
                key: op.cell.key.clone(),
                ops: smallvec::smallvec![CellOp::AddInt(amount)],
            })
            .collect();
        Ok(self.finish_local_commit(dot, || effects, metadata))
    }

    /// The cell operation of a prepared effect on the cell at `slot`, taking an `Other`
    /// effect's payload from `others`: an observed-remove removes the adds this replica holds
    /// now.
    fn built(
        &self,
        cell: &PreparedCell,
        slot: Slot,
        effect: PreparedEffect,
        others: &mut impl Iterator<Item = OtherEffect>,
    ) -> rhizo_algebra::Result<CellOp> {
        match effect {
            PreparedEffect::AddInt(amount) => Ok(CellOp::AddInt(amount)),
            PreparedEffect::MaxInt(v) => Ok(CellOp::Max(Scalar::Integer(v))),
            PreparedEffect::MinInt(v) => Ok(CellOp::Min(Scalar::Integer(v))),
            PreparedEffect::Other => {
                match others.next().expect("a payload for every other effect") {
                    OtherEffect::Op(op) => Ok(op),
                    OtherEffect::Remove(value) => {
                        let existing = slot.ok().map(|id| self.cells.state(id));
                        observed_remove(existing, &cell.spec, &value)
                    }
                }
            }
        }
    }

    /// A one-operation commit, the commonest: the cell is checked and applied in place, and
    /// its effect list is built only for the record.
    #[inline]
    fn commit_one(
        &mut self,
        PreparedOp { cell, effect }: PreparedOp<'_>,
        others: Option<Box<OtherEffects>>,
        metadata: TransactionMetadata,
    ) -> Result<CommitReceipt> {
        let slot = self.resolve(cell)?;
        let fresh = |_: &Self| Ok(CellState::new(&cell.spec));
        let (dot, id, op) = match effect {
            // An integer added: applied without building (or dispatching on) an operation.
            PreparedEffect::AddInt(amount) => {
                let add = |state: &mut CellState, dot| state.add_int_in_range(amount, dot);
                let (dot, id) = self.apply_one(&cell.key, slot, false, add, fresh)?;
                (dot, id, CellOp::AddInt(amount))
            }
            effect => {
                let op = self
                    .built(
                        cell,
                        slot,
                        effect,
                        &mut others.into_iter().flat_map(|others| others.0),
                    )
                    .map_err(|source| invalid(&cell.key, source))?;
                let removes = matches!(op, CellOp::OrRemove(_));
                let apply = |state: &mut CellState, dot| state.apply_in_range(&op, dot);
                let (dot, id) = self.apply_one(&cell.key, slot, removes, apply, fresh)?;
                (dot, id, op)
            }
        };
        if slot.is_err() {
            self.learn(cell, id);
        }
        if !self.config.emit_records {
            op.discard();
            return Ok(self.finish_local_commit(dot, Effects::new, metadata));
        }
        let effects = || {
            smallvec::smallvec![CellEffect {
                key: cell.key.clone(),
                ops: smallvec::smallvec![op],
            }]
        };
        Ok(self.finish_local_commit(dot, effects, metadata))
    }

    /// The value of a prepared cell, as [`Replica::read`] gives it.
    pub fn read_prepared(&self, cell: &PreparedCell) -> Result<rhizo_algebra::AlgebraicValue> {
        let value = match self.resolve(cell)? {
            Ok(id) => self.cells.state(id).value(),
            Err(_) => CellState::new(&cell.spec).value(),
        };
        value.map_err(|source| LocalCommitError::Read {
            key: Box::new(cell.key.clone()),
            source: Box::new(source),
        })
    }

    /// Refuses a handle whose spec this replica's schema does not give its column.
    fn check_prepared(&self, cell: &PreparedCell) -> Result<()> {
        // The same schema allocation: the spec came from this very schema.
        if Arc::ptr_eq(&cell.schema, &self.schema) {
            return Ok(());
        }
        match self.schema.column(cell.key.table(), cell.key.column()) {
            Ok(spec) if *spec == cell.spec => Ok(()),
            _ => Err(LocalCommitError::StalePreparedCell {
                key: Box::new(cell.key.clone()),
            }),
        }
    }

    /// The handle's cell in the steady state: this replica prepared it, against the schema it
    /// holds, and has given it an id. `None` otherwise ([`Replica::resolve`] then goes on).
    #[inline]
    fn hinted(&self, cell: &PreparedCell) -> Option<CellId> {
        if !cell.owner.same(&self.identity) || !Arc::ptr_eq(&cell.schema, &self.schema) {
            return None;
        }
        let hint = cell.hint.load(Ordering::Relaxed);
        debug_assert!(hint == NO_HINT || *self.cells.key(hint) == cell.key);
        (hint != NO_HINT).then_some(hint)
    }

    /// Where the handle's cell is, once the handle is checked ([`Replica::check_prepared`]):
    /// its hint if this replica prepared it and has given it one (ids are never reused, so the
    /// hint names the handle's cell), else a lookup.
    #[inline]
    fn resolve(&self, cell: &PreparedCell) -> Result<Slot> {
        if let Some(id) = self.hinted(cell) {
            return Ok(Ok(id));
        }
        let owned = cell.owner.same(&self.identity);
        if !owned || !Arc::ptr_eq(&cell.schema, &self.schema) {
            self.check_prepared(cell)?;
            if owned
                && let hint = cell.hint.load(Ordering::Relaxed)
                && hint != NO_HINT
            {
                return Ok(Ok(hint));
            }
        }
        let slot = self.cells.locate(&cell.key);
        if let Ok(id) = slot {
            self.learn(cell, id);
        }
        Ok(slot)
    }

    /// Gives the handle its cell's id, if this replica prepared it.
    fn learn(&self, cell: &PreparedCell, id: CellId) {
        if cell.owner.same(&self.identity) {
            cell.hint.store(id, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
