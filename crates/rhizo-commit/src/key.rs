use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The address of one cell: a column of one row of one table.
///
/// The schema fixes, per (table, column), the merge type every replica applies to the cell; the
/// row key is free-form. Keys order by (table, row, column), which is the order in which states,
/// deltas and snapshots list cells — so their bytes never depend on insertion or hash order.
/// Names up to 24 bytes live inline, without a heap allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellKey {
    /// The table, as declared in the schema.
    pub table: CompactString,
    /// The row key, chosen by the application.
    pub row: CompactString,
    /// The column, as declared in the schema.
    pub column: CompactString,
}

impl CellKey {
    /// The cell `column` of row `row` in `table`.
    pub fn new(table: &str, row: &str, column: &str) -> Self {
        Self {
            table: table.into(),
            row: row.into(),
            column: column.into(),
        }
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{:?}].{}", self.table, self.row.as_str(), self.column)
    }
}

impl fmt::Debug for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CellKey({self})")
    }
}
