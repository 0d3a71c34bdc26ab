//! The roadmap's key-value surface: operations on flat string keys, without tables or a schema.
//!
//! The project roadmap's first Python API named a cell by one string and let the operation's
//! kind and value decide how it merges. This module gives that surface the rules of the rest of
//! the crate instead of rules of its own:
//!
//! - A keyed operation writes the cell `keys[<key>].<KIND> <value type>` of one fixed schema,
//!   [`keyed_schema`]: the column is implied by the operation's kind and its value's type, so a
//!   [`Replica`](crate::Replica) holds keyed operations as it holds any other, and they are
//!   validated, refused and merged as a local commit's operations are.
//! - A [`KeyedUpdate`] keeps the commits it is made of. Merging updates merges each distinct
//!   commit once, so an update merged with itself, or with a merge that already holds it, is not
//!   counted twice.
//! - One key written with two kinds (or two value types) has no merge: merging such updates, or
//!   reading such a key from a replica, is refused with
//!   [`LocalCommitError::ConflictingKeyColumns`].

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use rhizo_algebra::{
    AlgebraError, AlgebraicMerger, AlgebraicValue, ColumnSpec, Decimal, MergeType, OpType, Schema,
    ValueType,
};
use rhizo_clock::{NodeId, VectorClock};
use smallvec::SmallVec;

use crate::protocol::{CommitPath, check_op_count, validate_transaction};
use crate::{AlgebraicOperation, AlgebraicTransaction, CellKey, LocalCommitError, Result};

/// The table of [`keyed_schema`]: a keyed operation on `key` writes a cell of row `key` here.
pub const KEYED_TABLE: &str = "keys";

/// The schema every keyed operation is validated against: table [`KEYED_TABLE`] with one column
/// per merge type and value type that merge exactly (see [`ColumnSpec::new`]), named
/// `"<KIND> <value type>"`, e.g. `"ADD integer"` or `"UNION string set"`.
pub fn keyed_schema() -> &'static Schema {
    static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
        let mut value_types = vec![
            ValueType::Integer,
            ValueType::Float,
            ValueType::Boolean,
            ValueType::StringSet,
            ValueType::IntSet,
        ];
        value_types.extend((0..=Decimal::MAX_SCALE).map(|scale| ValueType::Decimal { scale }));
        let mut builder = Schema::builder().table(KEYED_TABLE);
        let merges = OpType::ALL
            .into_iter()
            .filter_map(|op| keyed_merge(op).ok());
        for merge in merges {
            for &value_type in &value_types {
                if let Ok(spec) = ColumnSpec::new(merge, value_type) {
                    builder = builder.column_spec(&column_name(merge.name(), value_type), spec);
                }
            }
        }
        builder
            .build()
            .expect("every keyed column has a distinct name and a valid spec")
    });
    &SCHEMA
}

fn column_name(kind: &str, value_type: ValueType) -> String {
    format!("{kind} {value_type}")
}

/// One operation of the roadmap's surface: a kind applied with a value to a flat key.
///
/// Nothing is checked when it is made; a commit checks it (see
/// [`KeyedTransaction::to_cell_transaction`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyedOperation {
    /// The key written.
    pub key: String,
    /// What to do.
    pub op_type: OpType,
    /// The operand.
    pub value: AlgebraicValue,
}

impl KeyedOperation {
    /// An operation of kind `op_type` carrying `value` on `key`.
    pub fn new(key: impl Into<String>, op_type: OpType, value: AlgebraicValue) -> Self {
        Self {
            key: key.into(),
            op_type,
            value,
        }
    }

    /// The column this operation writes, or why it has none: a kind no keyed column merges
    /// by (those that need coordination, observed-remove sets), a null operand, or a value type
    /// the kind cannot merge (a set under ADD, a number under UNION…).
    pub fn column(&self) -> rhizo_algebra::Result<ColumnSpec> {
        let merge = keyed_merge(self.op_type)?;
        let value_type =
            value_type_of(&self.value).ok_or(AlgebraError::NullNotAllowed { merge })?;
        ColumnSpec::new(merge, value_type)
    }

    /// The cell this operation writes in [`keyed_schema`]. An operation with no valid column
    /// still names one (its kind and its value's kind), so that its refusal can say which.
    pub fn cell_key(&self) -> CellKey {
        let column = match value_type_of(&self.value) {
            Some(value_type) => column_name(self.op_type.name(), value_type),
            None => format!("{} null", self.op_type.name()),
        };
        CellKey::new(KEYED_TABLE, &self.key, &column)
    }
}

/// The merge type of the column a keyed operation of kind `op` writes. Observed-remove sets are
/// left out: a remove needs the adds its writer observed, which only a column declared as such
/// tracks (and a merge of keyed updates would take a remove for an add).
fn keyed_merge(op: OpType) -> rhizo_algebra::Result<MergeType> {
    match op {
        OpType::SemilatticeMax => Ok(MergeType::Max),
        OpType::SemilatticeMin => Ok(MergeType::Min),
        OpType::SemilatticeUnion => Ok(MergeType::Union),
        OpType::SemilatticeIntersect => Ok(MergeType::Intersect),
        OpType::AbelianAdd => Ok(MergeType::Add),
        OpType::AbelianMultiply => Ok(MergeType::Multiply),
        OpType::OrSetAdd | OpType::OrSetRemove => Err(AlgebraError::NeedsContext {
            op,
            needs: "a table column declared as an observed-remove set".into(),
        }),
        OpType::GenericOverwrite | OpType::GenericConditional | OpType::Unknown => {
            Err(AlgebraError::NotConflictFree { op })
        }
    }
}

/// The operation kind a keyed column's merge type stands for.
fn kind_of(merge: MergeType) -> OpType {
    match merge {
        MergeType::Max => OpType::SemilatticeMax,
        MergeType::Min => OpType::SemilatticeMin,
        MergeType::Union => OpType::SemilatticeUnion,
        MergeType::Intersect => OpType::SemilatticeIntersect,
        MergeType::Add => OpType::AbelianAdd,
        MergeType::Multiply => OpType::AbelianMultiply,
        MergeType::ObservedRemoveSet => OpType::OrSetAdd,
        MergeType::Register => OpType::GenericOverwrite,
    }
}

fn value_type_of(value: &AlgebraicValue) -> Option<ValueType> {
    match value {
        AlgebraicValue::Null => None,
        AlgebraicValue::Integer(_) => Some(ValueType::Integer),
        AlgebraicValue::Float(_) => Some(ValueType::Float),
        AlgebraicValue::Decimal(d) => Some(ValueType::Decimal { scale: d.scale() }),
        AlgebraicValue::StringSet(_) => Some(ValueType::StringSet),
        AlgebraicValue::IntSet(_) => Some(ValueType::IntSet),
        AlgebraicValue::Boolean(_) => Some(ValueType::Boolean),
    }
}

/// A transaction of the roadmap's surface: keyed operations in order, and string metadata that
/// stays with the transaction (it is not copied into the committed update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyedTransaction {
    operations: Vec<KeyedOperation>,
    metadata: BTreeMap<String, String>,
}

impl KeyedTransaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an operation (any kind; a key may repeat).
    pub fn push(&mut self, op: KeyedOperation) {
        self.operations.push(op);
    }

    /// The operations, in the order they were added.
    pub fn operations(&self) -> &[KeyedOperation] {
        &self.operations
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the transaction has no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Whether every operation's kind is conflict-free (true for an empty transaction).
    pub fn is_fully_algebraic(&self) -> bool {
        self.operations
            .iter()
            .all(|op| op.op_type.is_conflict_free())
    }

    /// Whether the transaction may be committed without coordination as far as its kinds tell:
    /// it is non-empty and fully algebraic. A commit also checks the values.
    pub fn can_commit_locally(&self) -> bool {
        !self.is_empty() && self.is_fully_algebraic()
    }

    /// Sets the metadata entry `key` (replacing any earlier value).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// The metadata entry `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The same operations over the cells of [`keyed_schema`], refused whole as a local commit
    /// refuses: an empty or oversized transaction, kinds that need coordination (all of them
    /// listed), then operations that have no column (each with its reason). Values are checked
    /// against their columns when the cell transaction is committed.
    pub fn to_cell_transaction(&self) -> Result<AlgebraicTransaction> {
        check_op_count(self.operations.len())?;
        let coordinated: Vec<(CellKey, OpType)> = self
            .operations
            .iter()
            .filter(|op| !op.op_type.is_conflict_free())
            .map(|op| (op.cell_key(), op.op_type))
            .collect();
        if !coordinated.is_empty() {
            return Err(LocalCommitError::RequiresCoordination {
                operations: coordinated,
            });
        }
        let errors: Vec<(CellKey, AlgebraError)> = self
            .operations
            .iter()
            .filter_map(|op| op.column().err().map(|err| (op.cell_key(), err)))
            .collect();
        if !errors.is_empty() {
            return Err(LocalCommitError::InvalidOperations { errors });
        }
        Ok(self
            .operations
            .iter()
            .map(|op| AlgebraicOperation::new(op.cell_key(), op.op_type, op.value.clone()))
            .collect())
    }
}

/// One commit of keyed operations: what a [`KeyedUpdate`] is made of, and the unit merges count
/// once. Two commits are the same commit only when they are equal in everything.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyedCommit {
    origin: NodeId,
    clock: VectorClock,
    operations: Vec<KeyedOperation>,
}

impl KeyedCommit {
    fn order_key(&self) -> (NodeId, &[(NodeId, u64)], &[KeyedOperation]) {
        (self.origin, self.clock.as_slice(), &self.operations)
    }
}

/// The roadmap's versioned update: keyed operations with the clock they were committed (or
/// merged) at.
///
/// A commit lists its operations in transaction order. A merge of several updates lists one
/// operation per key, in key order, its value the merge of every distinct commit's values for
/// that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedUpdate {
    origin: String,
    origin_node: Option<NodeId>,
    clock: VectorClock,
    operations: Vec<KeyedOperation>,
    /// The commits it holds, each once, in (origin, clock, operations) order.
    commits: Vec<Arc<KeyedCommit>>,
}

impl KeyedUpdate {
    /// Commits `tx` on `node` whose clock is `clock`: checks it as a local commit does, then
    /// ticks `clock` for `node` and returns the update, stamped with the ticked clock. On error
    /// `clock` is unchanged.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, OpType};
    /// use rhizo_clock::{NodeId, VectorClock};
    /// use rhizo_commit::keyed::{KeyedOperation, KeyedTransaction, KeyedUpdate};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut tx = KeyedTransaction::new();
    /// tx.push(KeyedOperation::new("page_views", OpType::AbelianAdd, AlgebraicValue::Integer(1)));
    /// let (mut on_a, mut on_b) = (VectorClock::new(), VectorClock::new());
    /// let from_a = KeyedUpdate::commit(&tx, a, &mut on_a).unwrap();
    /// let from_b = KeyedUpdate::commit(&tx, b, &mut on_b).unwrap();
    /// let once = KeyedUpdate::merge([&from_a, &from_b]).unwrap();
    /// let again = KeyedUpdate::merge([&once, &from_a]).unwrap(); // from_a is not counted twice
    /// assert_eq!(again.operations()[0].value, AlgebraicValue::Integer(2));
    /// ```
    pub fn commit(tx: &KeyedTransaction, node: NodeId, clock: &mut VectorClock) -> Result<Self> {
        let cells = tx.to_cell_transaction()?;
        validate_transaction(
            keyed_schema(),
            cells.into_local_operations()?,
            None,
            CommitPath::Local,
        )?;
        let mut ticked = clock.clone();
        ticked.tick(node)?;
        *clock = ticked.clone();
        Ok(Self::committed(node, ticked, tx.operations().to_vec()))
    }

    /// The update a commit of `operations` on `node` made, stamped with `clock` (the node's
    /// clock just after the commit). For drivers that commit through a replica.
    pub fn committed(node: NodeId, clock: VectorClock, operations: Vec<KeyedOperation>) -> Self {
        let commit = KeyedCommit {
            origin: node,
            clock: clock.clone(),
            operations: operations.clone(),
        };
        Self {
            origin: node.to_string(),
            origin_node: Some(node),
            clock,
            operations,
            commits: vec![Arc::new(commit)],
        }
    }

    /// The merge of `updates`, in any order: an empty list is refused (as an empty transaction),
    /// one update is returned as it is. For two or more, every distinct commit they hold is
    /// merged once; the clock is the entry-wise maximum of theirs, and the origin reads
    /// `merged:<origin>+<origin>…`.
    pub fn merge<'a>(updates: impl IntoIterator<Item = &'a KeyedUpdate>) -> Result<Self> {
        let updates: SmallVec<[&KeyedUpdate; 2]> = updates.into_iter().collect();
        match updates.as_slice() {
            [] => Err(LocalCommitError::EmptyTransaction),
            [only] => Ok((*only).clone()),
            _ => {
                let mut commits: Vec<Arc<KeyedCommit>> = updates
                    .iter()
                    .flat_map(|u| u.commits.iter().cloned())
                    .collect();
                commits.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                commits.dedup_by(|a, b| a == b);
                let mut clock = VectorClock::new();
                for update in &updates {
                    clock.merge(&update.clock);
                }
                let origins: Vec<&str> = updates.iter().map(|u| u.origin.as_str()).collect();
                Ok(Self {
                    origin: format!("merged:{}", origins.join("+")),
                    origin_node: None,
                    clock,
                    operations: fold_by_key(&commits)?,
                    commits,
                })
            }
        }
    }

    /// Who made it: the committing node's name, or `merged:…` for a merge.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The committing node (`None` for a merge).
    pub fn origin_node(&self) -> Option<NodeId> {
        self.origin_node
    }

    /// The clock it carries.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Its operations.
    pub fn operations(&self) -> &[KeyedOperation] {
        &self.operations
    }
}

/// One operation per key, in key order: the merge of every commit's values for the key, which
/// must all write one column.
fn fold_by_key(commits: &[Arc<KeyedCommit>]) -> Result<Vec<KeyedOperation>> {
    let mut by_key: BTreeMap<&str, (&KeyedOperation, CellKey, Vec<&AlgebraicValue>)> =
        BTreeMap::new();
    for op in commits.iter().flat_map(|c| &c.operations) {
        let cell = op.cell_key();
        match by_key.get_mut(op.key.as_str()) {
            Some((_, first, values)) if first.column() == cell.column() => values.push(&op.value),
            Some((_, first, _)) => {
                return Err(LocalCommitError::ConflictingKeyColumns {
                    key: op.key.clone(),
                    first: first.column().to_owned(),
                    other: cell.column().to_owned(),
                });
            }
            None => {
                by_key.insert(&op.key, (op, cell, vec![&op.value]));
            }
        }
    }
    by_key
        .into_values()
        .map(|(first, cell, values)| {
            let value = AlgebraicMerger::merge_all(first.op_type, values).map_err(|err| {
                LocalCommitError::InvalidOperations {
                    errors: vec![(cell, err)],
                }
            })?;
            Ok(KeyedOperation::new(first.key.clone(), first.op_type, value))
        })
        .collect()
}

/// The value of one key as a replica of [`keyed_schema`] holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedValue {
    /// The kind of the operations that wrote it.
    pub op_type: OpType,
    /// Its value.
    pub value: AlgebraicValue,
}

/// Every key among a replica's cell values ([`Replica::values`](crate::Replica::values)) of
/// [`keyed_schema`], with its kind and value; a key written in two columns reads as
/// [`LocalCommitError::ConflictingKeyColumns`]. Cells of other tables are left out.
///
/// ```
/// use rhizo_algebra::{AlgebraicValue, OpType};
/// use rhizo_clock::NodeId;
/// use rhizo_commit::keyed::{keyed_schema, keyed_values, KeyedOperation, KeyedTransaction};
/// use rhizo_commit::{Replica, ReplicaConfig};
/// let mut replica = Replica::new(NodeId::new("a").unwrap(), keyed_schema().clone(), ReplicaConfig::default());
/// let mut tx = KeyedTransaction::new();
/// tx.push(KeyedOperation::new("page_views", OpType::AbelianAdd, AlgebraicValue::Integer(3)));
/// replica.commit(tx.to_cell_transaction().unwrap()).unwrap();
/// let values = keyed_values(replica.values());
/// let views = values["page_views"].as_ref().unwrap();
/// assert_eq!((views.op_type, &views.value), (OpType::AbelianAdd, &AlgebraicValue::Integer(3)));
/// ```
pub fn keyed_values(
    cells: BTreeMap<CellKey, Result<AlgebraicValue>>,
) -> BTreeMap<String, Result<KeyedValue>> {
    let mut out: BTreeMap<String, Result<KeyedValue>> = BTreeMap::new();
    let mut columns: BTreeMap<String, String> = BTreeMap::new();
    for (cell, value) in cells {
        let (table, key, column) = cell.parts();
        let Ok(spec) = keyed_schema().column(table, column) else {
            continue;
        };
        let read = value.map(|value| KeyedValue {
            op_type: kind_of(spec.merge()),
            value,
        });
        match columns.get(key) {
            Some(first) => {
                let conflict = LocalCommitError::ConflictingKeyColumns {
                    key: key.to_owned(),
                    first: first.clone(),
                    other: column.to_owned(),
                };
                out.insert(key.to_owned(), Err(conflict));
            }
            None => {
                columns.insert(key.to_owned(), column.to_owned());
                out.insert(key.to_owned(), read);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
