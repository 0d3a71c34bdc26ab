//! Seeded workloads for replica clusters: counters, max/min gauges, observed-remove and
//! grow-only sets, paired cells written in one transaction, and mixed multi-key transactions,
//! over uniformly chosen or hot keys.
//!
//! Every choice is drawn from the random stream handed in (a cluster's
//! [`workload_rng`](crate::SimulatedCluster::workload_rng)), so a seed fixes the workload.

use rand_chacha::ChaCha8Rng;
use rhizo_algebra::{AlgebraicValue, MergeType, OpType, Schema, ValueType};
use rhizo_commit::{
    AlgebraicOperation, AlgebraicTransaction, CellKey, LocalCommitError, PreparedCell,
    PreparedTransaction, Replica,
};
use smallvec::SmallVec;

use crate::network::up_to;

/// Additive counters: `counters[k].value` (ADD, integer). Only positive amounts are added, so
/// the counter-bounds checker applies.
pub const COUNTERS: &str = "counters";
/// Gauges: `gauges[k].high` (MAX) and `gauges[k].low` (MIN), integers.
pub const GAUGES: &str = "gauges";
/// Observed-remove sets: `carts[k].items` (string set; adds and removes of a few items).
pub const CARTS: &str = "carts";
/// Grow-only sets: `tags[k].members` (UNION of unique strings; for the set-full checker).
pub const TAGS: &str = "tags";
/// Paired cells: every transaction adds the same amount to `pair_a[k].v` and `pair_b[k].v`, so
/// a replica that shows them different shows part of a transaction (the atomic-visibility
/// checker's invariant).
pub const PAIR_TABLES: (&str, &str) = ("pair_a", "pair_b");
/// The column of both pair tables.
pub const PAIR_COLUMN: &str = "v";

/// The schema every workload of this module writes to.
pub fn schema() -> Schema {
    Schema::builder()
        .table(COUNTERS)
        .column("value", MergeType::Add, ValueType::Integer)
        .table(GAUGES)
        .column("high", MergeType::Max, ValueType::Integer)
        .column("low", MergeType::Min, ValueType::Integer)
        .table(CARTS)
        .column("items", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .table(TAGS)
        .column("members", MergeType::Union, ValueType::StringSet)
        .table(PAIR_TABLES.0)
        .column(PAIR_COLUMN, MergeType::Add, ValueType::Integer)
        .table(PAIR_TABLES.1)
        .column(PAIR_COLUMN, MergeType::Add, ValueType::Integer)
        .build()
        .expect("the workload schema is valid")
}

/// Which row a transaction touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    /// Rows `k0..k{keys-1}`, uniformly.
    Uniform {
        /// Number of rows (at least 1).
        keys: u32,
    },
    /// `hot_percent` % of choices go to row `k0`, the rest uniformly to all rows.
    Hot {
        /// Number of rows (at least 1).
        keys: u32,
        /// Share of choices that go to the hot row, 0–100.
        hot_percent: u32,
    },
}

impl KeyDistribution {
    fn pick(self, rng: &mut ChaCha8Rng) -> u32 {
        match self {
            KeyDistribution::Uniform { keys } => up_to(rng, u64::from(keys.max(1) - 1)) as u32,
            KeyDistribution::Hot { keys, hot_percent } => {
                if up_to(rng, 99) < u64::from(hot_percent) {
                    0
                } else {
                    up_to(rng, u64::from(keys.max(1) - 1)) as u32
                }
            }
        }
    }
}

/// Relative weights of the transaction kinds (a zero weight turns a kind off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpMix {
    /// One counter increment.
    pub counter: u32,
    /// One MAX and one MIN on a gauge row.
    pub max_min: u32,
    /// One add (two thirds) or remove (one third) on an observed-remove set.
    pub or_set: u32,
    /// One unique element added to a grow-only set.
    pub grow_set: u32,
    /// The same amount added to both cells of a pair.
    pub pair: u32,
    /// Two to four of the single operations above, on distinct random rows, in one transaction.
    pub multi: u32,
}

impl OpMix {
    /// Every kind.
    pub const ALL: OpMix = OpMix {
        counter: 4,
        max_min: 2,
        or_set: 2,
        grow_set: 1,
        pair: 2,
        multi: 2,
    };
    /// Counter increments only.
    pub const COUNTERS: OpMix = OpMix {
        counter: 1,
        max_min: 0,
        or_set: 0,
        grow_set: 0,
        pair: 0,
        multi: 0,
    };

    fn total(&self) -> u32 {
        self.counter + self.max_min + self.or_set + self.grow_set + self.pair + self.multi
    }
}

/// Generates transactions.
#[derive(Debug, Clone)]
pub struct Workload {
    keys: KeyDistribution,
    mix: OpMix,
    next_element: u64,
    /// The keys of the cells used so far.
    keys_made: CellTable<CellKey>,
}

/// Items an observed-remove set's adds and removes draw from (few, so removes find adds).
const CART_ITEMS: u64 = 6;

impl Workload {
    /// A workload over `keys` with `mix` (a mix of all-zero weights means counters only).
    pub fn new(keys: KeyDistribution, mix: OpMix) -> Self {
        let mix = if mix.total() == 0 {
            OpMix::COUNTERS
        } else {
            mix
        };
        Self {
            keys,
            mix,
            next_element: 0,
            keys_made: CellTable::default(),
        }
    }

    /// The next transaction, drawn from `rng`.
    ///
    /// ```
    /// use rand_chacha::ChaCha8Rng;
    /// use rand::SeedableRng;
    /// use rhizo_sim::workload::{KeyDistribution, OpMix, Workload};
    /// let mut workload = Workload::new(KeyDistribution::Uniform { keys: 100 }, OpMix::ALL);
    /// let mut rng = ChaCha8Rng::seed_from_u64(1);
    /// let tx = workload.next_transaction(&mut rng);
    /// assert!(!tx.is_empty());
    /// let mut again = Workload::new(KeyDistribution::Uniform { keys: 100 }, OpMix::ALL);
    /// assert_eq!(again.next_transaction(&mut ChaCha8Rng::seed_from_u64(1)), tx); // seeded
    /// ```
    pub fn next_transaction(&mut self, rng: &mut ChaCha8Rng) -> AlgebraicTransaction {
        let ops = self.next_ops(rng);
        self.transaction(&ops)
    }

    /// The operations of the next transaction, drawn from `rng`, by row and column: the same
    /// draws as [`next_transaction`](Self::next_transaction), to be built into a transaction
    /// over keys ([`transaction`](Self::transaction)) or over a node's prepared cells
    /// ([`PreparedRows::transaction`]).
    pub fn next_ops(&mut self, rng: &mut ChaCha8Rng) -> WorkloadOps {
        let mut ops = WorkloadOps::new();
        self.next_ops_into(rng, &mut ops);
        ops
    }

    /// [`next_ops`](Self::next_ops) into a list the caller keeps (cleared first): a loop that
    /// draws millions of transactions moves and drops no list per draw.
    pub(crate) fn next_ops_into(&mut self, rng: &mut ChaCha8Rng, ops: &mut WorkloadOps) {
        ops.clear();
        let m = self.mix;
        let mut r = up_to(rng, u64::from(m.total() - 1)) as u32;
        let weights = [m.counter, m.max_min, m.or_set, m.grow_set, m.pair, m.multi];
        let kind = weights
            .iter()
            .position(|&w| {
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .expect("r is below the total weight");
        match kind {
            0..=3 => self.single(kind, ops, rng),
            4 => {
                let row = self.keys.pick(rng);
                let amount = AlgebraicValue::Integer(1 + up_to(rng, 4) as i64);
                let add = OpType::AbelianAdd;
                ops.push(WorkloadOp::new(row, Column::PairA, add, amount.clone()));
                ops.push(WorkloadOp::new(row, Column::PairB, add, amount));
            }
            _ => {
                let count = 2 + up_to(rng, 2) as usize;
                for _ in 0..count {
                    let kind = up_to(rng, 3) as usize;
                    self.single(kind, ops, rng);
                }
            }
        }
    }

    /// The key of `op`'s cell (built once per cell and cloned).
    pub fn key(&mut self, op: &WorkloadOp) -> CellKey {
        self.keys_made
            .get_or_insert_with(op.row, op.column, || op.column.key(op.row))
            .clone()
    }

    /// `ops` as a transaction over keys (built once per cell and cloned).
    pub fn transaction(&mut self, ops: &[WorkloadOp]) -> AlgebraicTransaction {
        let mut tx = AlgebraicTransaction::new();
        for op in ops {
            tx.push(AlgebraicOperation::new(
                self.key(op),
                op.op_type,
                op.value.clone(),
            ));
        }
        tx
    }

    fn single(&mut self, kind: usize, ops: &mut WorkloadOps, rng: &mut ChaCha8Rng) {
        let row = self.keys.pick(rng);
        match kind {
            0 => {
                let amount = AlgebraicValue::Integer(1 + up_to(rng, 4) as i64);
                ops.push(WorkloadOp::new(
                    row,
                    Column::Value,
                    OpType::AbelianAdd,
                    amount,
                ));
            }
            1 => {
                let high = AlgebraicValue::Integer(up_to(rng, 999) as i64);
                let low = AlgebraicValue::Integer(up_to(rng, 999) as i64);
                ops.push(WorkloadOp::new(
                    row,
                    Column::High,
                    OpType::SemilatticeMax,
                    high,
                ));
                ops.push(WorkloadOp::new(
                    row,
                    Column::Low,
                    OpType::SemilatticeMin,
                    low,
                ));
            }
            2 => {
                let item = format!("i{}", up_to(rng, CART_ITEMS - 1));
                let op_type = if up_to(rng, 2) < 2 {
                    OpType::OrSetAdd
                } else {
                    OpType::OrSetRemove
                };
                let items = AlgebraicValue::string_set([item]);
                ops.push(WorkloadOp::new(row, Column::Items, op_type, items));
            }
            _ => {
                self.next_element += 1;
                let element = AlgebraicValue::string_set([format!("e{}", self.next_element)]);
                // OR_ADD: the replica takes it as UNION on this grow-only column.
                ops.push(WorkloadOp::new(
                    row,
                    Column::Members,
                    OpType::OrSetAdd,
                    element,
                ));
            }
        }
    }
}

/// The operations of one workload transaction (at most eight: four singles of two).
pub type WorkloadOps = SmallVec<[WorkloadOp; 2]>;

/// One operation of a workload transaction, addressed by row and column.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadOp {
    /// The row, `k<row>`.
    pub row: u32,
    /// The cell of the row.
    pub column: Column,
    /// What the operation does.
    pub op_type: OpType,
    /// Its operand.
    pub value: AlgebraicValue,
}

impl WorkloadOp {
    fn new(row: u32, column: Column, op_type: OpType, value: AlgebraicValue) -> Self {
        Self {
            row,
            column,
            op_type,
            value,
        }
    }
}

/// The cells of a workload row, one per column of [`schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `counters.value`.
    Value,
    /// `gauges.high`.
    High,
    /// `gauges.low`.
    Low,
    /// `carts.items`.
    Items,
    /// `tags.members`.
    Members,
    /// `pair_a.v`.
    PairA,
    /// `pair_b.v`.
    PairB,
}

impl Column {
    /// The key of this cell of row `k<row>`.
    fn key(self, row: u32) -> CellKey {
        let (table, column) = self.names();
        CellKey::new(table, &format!("k{row}"), column)
    }

    /// The cell's table and column (`column as usize`, 0–6, indexes a row's cells).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Column::Value => (COUNTERS, "value"),
            Column::High => (GAUGES, "high"),
            Column::Low => (GAUGES, "low"),
            Column::Items => (CARTS, "items"),
            Column::Members => (TAGS, "members"),
            Column::PairA => (PAIR_TABLES.0, PAIR_COLUMN),
            Column::PairB => (PAIR_TABLES.1, PAIR_COLUMN),
        }
    }
}

/// One node's [`PreparedCell`]s for the workload's cells, each prepared the first time the
/// node commits to it: the workload committed through [`Replica::commit_prepared`] (the
/// hot-counter path) instead of [`Replica::commit`].
///
/// A handle stays valid on the node's later replicas (after a crash and restart), which find its
/// cell by key; only the replica that prepared it uses its hint.
#[derive(Debug, Default)]
pub struct PreparedRows {
    cells: CellTable<PreparedCell>,
}

impl PreparedRows {
    /// No cell prepared yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares on `replica` the cells of `ops` not prepared yet (`workload` drew `ops` and
    /// gives their keys).
    pub fn prepare(
        &mut self,
        replica: &Replica,
        workload: &mut Workload,
        ops: &[WorkloadOp],
    ) -> Result<(), LocalCommitError> {
        for op in ops {
            self.cells.get_or_try_insert(op.row, op.column, || {
                replica.prepare_cell_key(workload.key(op))
            })?;
        }
        Ok(())
    }

    /// Whether every cell of `ops` is prepared already (so [`prepare`](Self::prepare) would do
    /// nothing, and the caller need not fetch a replica for it).
    pub fn has_all(&self, ops: &[WorkloadOp]) -> bool {
        ops.iter()
            .all(|op| self.cells.get(op.row, op.column).is_some())
    }

    /// `ops` as a transaction over the prepared cells ([`prepare`](Self::prepare) them first).
    ///
    /// # Panics
    /// If a cell of `ops` was not prepared.
    pub fn transaction(
        &self,
        ops: &[WorkloadOp],
    ) -> Result<PreparedTransaction<'_>, LocalCommitError> {
        let mut tx = PreparedTransaction::with_capacity(ops.len());
        for op in ops {
            let cell = self.cells.get(op.row, op.column);
            let cell = cell.expect("the cell was prepared");
            tx.operation(cell, op.op_type, op.value.clone())?;
        }
        Ok(tx)
    }
}

/// Something per workload cell, made the first time the cell is used (a row's slots when the
/// row is first drawn): keys are cloned from one (building a key from three names costs
/// several times copying one, and the bench draws millions of transactions over a few hundred
/// rows), a node's prepared cells are another.
#[derive(Debug, Clone)]
struct CellTable<T> {
    rows: Vec<Option<Box<[Option<T>; 7]>>>,
}

impl<T> Default for CellTable<T> {
    fn default() -> Self {
        Self { rows: Vec::new() }
    }
}

impl<T> CellTable<T> {
    fn get_or_try_insert<E>(
        &mut self,
        row: u32,
        column: Column,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<&T, E> {
        let index = row as usize;
        if index >= self.rows.len() {
            self.rows.resize_with(index + 1, || None);
        }
        let slot = &mut self.rows[index].get_or_insert_with(Default::default)[column as usize];
        if slot.is_none() {
            *slot = Some(make()?);
        }
        Ok(slot.as_ref().expect("filled above"))
    }

    fn get_or_insert_with(&mut self, row: u32, column: Column, make: impl FnOnce() -> T) -> &T {
        let made =
            self.get_or_try_insert(row, column, || Ok::<_, std::convert::Infallible>(make()));
        let Ok(value) = made;
        value
    }

    fn get(&self, row: u32, column: Column) -> Option<&T> {
        self.rows.get(row as usize)?.as_ref()?[column as usize].as_ref()
    }
}
