//! Atomic visibility: no fractured read. The workload's pair transactions add the same amount
//! to `pair_a[k].v` and `pair_b[k].v` in one transaction (cells in different tables, so they
//! travel as different cells of a delta); a replica that ever shows the two different has
//! shown part of a transaction.

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::NodeId;
use rhizo_commit::CellKey;

use crate::history::{CellRead, History};
use crate::workload::{PAIR_COLUMN, PAIR_TABLES};
use crate::{ReplicaNode, SimulatedCluster};

/// A fractured read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AtomicViolation {
    /// The two cells of a pair differ on a replica.
    #[error(
        "{node} shows row {row:?} as {left:?} / {right:?} (read #{seq:?}): part of a transaction"
    )]
    FracturedRead {
        /// The replica.
        node: NodeId,
        /// The read's position in the history (`None` for the final state).
        seq: Option<u64>,
        /// The pair's row.
        row: String,
        /// `pair_a[row].v`.
        left: Option<CellRead>,
        /// `pair_b[row].v`.
        right: Option<CellRead>,
    },
}

/// Missing cells read as the column's identity (0).
fn same(left: Option<&CellRead>, right: Option<&CellRead>) -> bool {
    let zero = Ok(AlgebraicValue::Integer(0));
    left.unwrap_or(&zero) == right.unwrap_or(&zero)
}

fn rows<'a>(keys: impl Iterator<Item = &'a CellKey>) -> Vec<String> {
    let mut rows: Vec<String> = keys
        .filter(|k| {
            (k.table() == PAIR_TABLES.0 || k.table() == PAIR_TABLES.1) && k.column() == PAIR_COLUMN
        })
        .map(|k| k.row().to_string())
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Checks every recorded read.
pub fn check_reads(history: &History) -> Result<(), AtomicViolation> {
    for obs in history.observations() {
        for row in rows(obs.values.keys()) {
            let left = obs
                .values
                .get(&CellKey::new(PAIR_TABLES.0, &row, PAIR_COLUMN));
            let right = obs
                .values
                .get(&CellKey::new(PAIR_TABLES.1, &row, PAIR_COLUMN));
            if !same(left, right) {
                return Err(AtomicViolation::FracturedRead {
                    node: obs.node,
                    seq: Some(obs.seq),
                    row,
                    left: left.cloned(),
                    right: right.cloned(),
                });
            }
        }
    }
    Ok(())
}

/// Checks every running replica's current state.
pub fn check_final(cluster: &SimulatedCluster<ReplicaNode>) -> Result<(), AtomicViolation> {
    for (id, node) in cluster.running_nodes() {
        let values = node.replica().values();
        for row in rows(values.keys()) {
            let left = values.get(&CellKey::new(PAIR_TABLES.0, &row, PAIR_COLUMN));
            let right = values.get(&CellKey::new(PAIR_TABLES.1, &row, PAIR_COLUMN));
            if !same(left, right) {
                return Err(AtomicViolation::FracturedRead {
                    node: id,
                    seq: None,
                    row,
                    left: left.cloned(),
                    right: right.cloned(),
                });
            }
        }
    }
    Ok(())
}
