//! Seeded workloads for replica clusters: counters, max/min gauges, observed-remove and
//! grow-only sets, paired cells written in one transaction, and mixed multi-key transactions,
//! over uniformly chosen or hot keys.
//!
//! Every choice is drawn from the random stream handed in (a cluster's
//! [`workload_rng`](crate::SimulatedCluster::workload_rng)), so a seed fixes the workload.

use rand_chacha::ChaCha8Rng;
use rhizo_algebra::{AlgebraicValue, MergeType, OpType, Schema, ValueType};
use rhizo_commit::{AlgebraicOperation, AlgebraicTransaction, CellKey};

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
    /// The rows drawn so far, by row number (boxed: a slot of a row never drawn costs a word).
    rows: Vec<Option<Box<RowCells>>>,
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
            rows: Vec::new(),
        }
    }

    /// The next transaction, drawn from `rng`.
    pub fn next_transaction(&mut self, rng: &mut ChaCha8Rng) -> AlgebraicTransaction {
        let mut tx = AlgebraicTransaction::new();
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
            0..=3 => self.single(kind, &mut tx, rng),
            4 => {
                let row = self.keys.pick(rng);
                let amount = 1 + up_to(rng, 4) as i64;
                let (a, b) = self.cells(row).pair.clone();
                tx.push(AlgebraicOperation::new(a, OpType::AbelianAdd, amount))
                    .push(AlgebraicOperation::new(b, OpType::AbelianAdd, amount));
            }
            _ => {
                let ops = 2 + up_to(rng, 2) as usize;
                for _ in 0..ops {
                    let kind = up_to(rng, 3) as usize;
                    self.single(kind, &mut tx, rng);
                }
            }
        }
        tx
    }

    /// The cells of row `k<row>`, their keys built the first time the row is drawn.
    fn cells(&mut self, row: u32) -> &RowCells {
        let index = row as usize;
        if index >= self.rows.len() {
            self.rows.resize_with(index + 1, || None);
        }
        self.rows[index].get_or_insert_with(|| Box::new(RowCells::new(row)))
    }

    fn single(&mut self, kind: usize, tx: &mut AlgebraicTransaction, rng: &mut ChaCha8Rng) {
        let row = self.keys.pick(rng);
        match kind {
            0 => {
                let amount = 1 + up_to(rng, 4) as i64;
                let key = self.cells(row).value.clone();
                tx.push(AlgebraicOperation::new(key, OpType::AbelianAdd, amount));
            }
            1 => {
                let high = up_to(rng, 999) as i64;
                let low = up_to(rng, 999) as i64;
                let cells = self.cells(row);
                let (high_key, low_key) = (cells.high.clone(), cells.low.clone());
                tx.push(AlgebraicOperation::new(
                    high_key,
                    OpType::SemilatticeMax,
                    high,
                ))
                .push(AlgebraicOperation::new(
                    low_key,
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
                let key = self.cells(row).items.clone();
                tx.push(AlgebraicOperation::new(
                    key,
                    op_type,
                    AlgebraicValue::string_set([item]),
                ));
            }
            _ => {
                self.next_element += 1;
                let element = format!("e{}", self.next_element);
                let key = self.cells(row).members.clone();
                // OR_ADD: the replica takes it as UNION on this grow-only column.
                tx.push(AlgebraicOperation::new(
                    key,
                    OpType::OrSetAdd,
                    AlgebraicValue::string_set([element]),
                ));
            }
        }
    }
}

/// The keys of one row's cells in every table of the workload. A transaction's keys are
/// cloned from here: building a key from three names costs several times copying one, and the
/// bench draws millions of transactions over a few hundred rows.
#[derive(Debug, Clone)]
struct RowCells {
    value: CellKey,
    high: CellKey,
    low: CellKey,
    items: CellKey,
    members: CellKey,
    pair: (CellKey, CellKey),
}

impl RowCells {
    fn new(row: u32) -> Self {
        let row = format!("k{row}");
        Self {
            value: CellKey::new(COUNTERS, &row, "value"),
            high: CellKey::new(GAUGES, &row, "high"),
            low: CellKey::new(GAUGES, &row, "low"),
            items: CellKey::new(CARTS, &row, "items"),
            members: CellKey::new(TAGS, &row, "members"),
            pair: (
                CellKey::new(PAIR_TABLES.0, &row, PAIR_COLUMN),
                CellKey::new(PAIR_TABLES.1, &row, PAIR_COLUMN),
            ),
        }
    }
}
