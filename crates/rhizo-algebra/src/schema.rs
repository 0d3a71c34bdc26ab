use std::fmt;

use crate::{AlgebraError, AlgebraicValue, Decimal, MergeType, OpType, Result, ValueType};

/// How one column merges, what it holds and how large an operand may be.
///
/// Built only through [`ColumnSpec::new`], which refuses merge/value pairs that have no exact,
/// order-independent merge, so a `ColumnSpec` in hand is always a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "ColumnSpecRepr", into = "ColumnSpecRepr")
)]
pub struct ColumnSpec {
    merge: MergeType,
    value_type: ValueType,
    max_set_len: u32,
    max_element_len: u32,
}

impl ColumnSpec {
    /// The default bound on the number of elements one set operand may carry.
    pub const DEFAULT_MAX_SET_LEN: u32 = 100_000;
    /// The default bound on the length in bytes of one string element.
    pub const DEFAULT_MAX_ELEMENT_LEN: u32 = 1024;

    /// A column merging by `merge` and holding `value_type` values, with default bounds.
    ///
    /// Accepted pairs: `Max`/`Min` over integer, float, decimal or boolean (`false < true`);
    /// `Add` over integer, float or decimal; `Multiply` over integer or float; `Union`,
    /// `Intersect` and `ObservedRemoveSet` over string or int sets; `Register` over anything.
    ///
    /// ```
    /// use rhizo_algebra::{ColumnSpec, MergeType, ValueType};
    /// let views = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// assert_eq!(views.merge(), MergeType::Add);
    /// // A decimal product would have to round, and rounding depends on order.
    /// let scale = ValueType::Decimal { scale: 2 };
    /// assert!(ColumnSpec::new(MergeType::Multiply, scale).is_err());
    /// ```
    pub fn new(merge: MergeType, value_type: ValueType) -> Result<Self> {
        let refuse = |reason| {
            Err(AlgebraError::InvalidColumn {
                merge,
                value_type,
                reason,
            })
        };
        if let ValueType::Decimal { scale } = value_type
            && scale > Decimal::MAX_SCALE
        {
            return refuse("a decimal column's scale is at most 18".into());
        }
        use MergeType as M;
        use ValueType as V;
        match (merge, value_type) {
            (M::Max | M::Min, V::Integer | V::Float | V::Decimal { .. } | V::Boolean) => {}
            (M::Max | M::Min, _) => {
                return refuse("sets have no total order; use UNION or INTERSECT".into());
            }
            (M::Add, V::Integer | V::Float | V::Decimal { .. }) => {}
            (M::Multiply, V::Integer | V::Float) => {}
            (M::Multiply, V::Decimal { .. }) => {
                return refuse(
                    "a fixed-scale product must round, and rounding makes the result depend on order".into(),
                );
            }
            (M::Add | M::Multiply, _) => {
                return refuse("only numbers can be added or multiplied".into());
            }
            (M::Union | M::Intersect | M::ObservedRemoveSet, V::StringSet | V::IntSet) => {}
            (M::Union | M::Intersect | M::ObservedRemoveSet, _) => {
                return refuse("set operations need a string-set or int-set column".into());
            }
            (M::Register, _) => {}
        }
        Ok(Self {
            merge,
            value_type,
            max_set_len: Self::DEFAULT_MAX_SET_LEN,
            max_element_len: Self::DEFAULT_MAX_ELEMENT_LEN,
        })
    }

    /// This column with at most `max` elements per set operand.
    #[must_use]
    pub fn with_max_set_len(mut self, max: u32) -> Self {
        self.max_set_len = max;
        self
    }

    /// This column with string elements of at most `max` bytes.
    #[must_use]
    pub fn with_max_element_len(mut self, max: u32) -> Self {
        self.max_element_len = max;
        self
    }

    /// How the column merges.
    pub fn merge(&self) -> MergeType {
        self.merge
    }

    /// What the column holds.
    pub fn value_type(&self) -> ValueType {
        self.value_type
    }

    /// The most elements one set operand may carry.
    pub fn max_set_len(&self) -> u32 {
        self.max_set_len
    }

    /// The longest string element, in bytes.
    pub fn max_element_len(&self) -> u32 {
        self.max_element_len
    }

    /// Checks that an operation of kind `op` carrying `value` may be applied to this column.
    ///
    /// `Null` is accepted only as the new value of a register (it clears it).
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, ColumnSpec, MergeType, OpType, ValueType};
    /// let tags = ColumnSpec::new(MergeType::Union, ValueType::StringSet)
    ///     .unwrap()
    ///     .with_max_set_len(2);
    /// let two = AlgebraicValue::string_set(["a", "b"]);
    /// assert!(tags.validate(OpType::SemilatticeUnion, &two).is_ok());
    /// let three = AlgebraicValue::string_set(["a", "b", "c"]);
    /// assert!(tags.validate(OpType::SemilatticeUnion, &three).is_err()); // too many elements
    /// assert!(tags.validate(OpType::AbelianAdd, &two).is_err()); // UNION does not take ADD
    /// ```
    pub fn validate(&self, op: OpType, value: &AlgebraicValue) -> Result<()> {
        if !self.merge.accepts(op) {
            return Err(AlgebraError::OpNotAccepted {
                merge: self.merge,
                op,
            });
        }
        if value.is_null() {
            return if self.merge == MergeType::Register {
                Ok(())
            } else {
                Err(AlgebraError::NullNotAllowed { merge: self.merge })
            };
        }
        self.validate_value(value)
    }

    /// Checks a non-null value against the column's type and bounds.
    pub(crate) fn validate_value(&self, value: &AlgebraicValue) -> Result<()> {
        let mismatch = || AlgebraError::TypeMismatch {
            expected: self.value_type,
            found: value.kind_name().into(),
        };
        match (self.value_type, value) {
            (ValueType::Integer, AlgebraicValue::Integer(_))
            | (ValueType::Boolean, AlgebraicValue::Boolean(_)) => Ok(()),
            (ValueType::Float, AlgebraicValue::Float(f)) => {
                if f.0.is_finite() {
                    Ok(())
                } else {
                    Err(AlgebraError::NonFiniteFloat {
                        bits: f.0.to_bits(),
                    })
                }
            }
            (ValueType::Decimal { scale }, AlgebraicValue::Decimal(d)) => {
                if d.scale() > scale {
                    return Err(AlgebraError::DecimalScale {
                        found: d.scale(),
                        max: scale,
                    });
                }
                d.rescale(scale).map(drop)
            }
            (ValueType::StringSet, AlgebraicValue::StringSet(set)) => {
                self.check_set_len(set.len())?;
                match set.iter().map(String::len).max() {
                    Some(len) if len > self.max_element_len as usize => {
                        Err(AlgebraError::ElementTooLong {
                            len,
                            max: self.max_element_len,
                        })
                    }
                    _ => Ok(()),
                }
            }
            (ValueType::IntSet, AlgebraicValue::IntSet(set)) => self.check_set_len(set.len()),
            _ => Err(mismatch()),
        }
    }

    pub(crate) fn check_set_len(&self, len: usize) -> Result<()> {
        if len > self.max_set_len as usize {
            Err(AlgebraError::SetTooLarge {
                len,
                max: self.max_set_len,
            })
        } else {
            Ok(())
        }
    }

    fn describe(&self) -> String {
        format!("{} {}", self.merge, self.value_type)
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ColumnSpecRepr {
    merge: MergeType,
    value_type: ValueType,
    max_set_len: u32,
    max_element_len: u32,
}

#[cfg(feature = "serde")]
impl TryFrom<ColumnSpecRepr> for ColumnSpec {
    type Error = AlgebraError;
    fn try_from(r: ColumnSpecRepr) -> Result<Self> {
        Ok(ColumnSpec::new(r.merge, r.value_type)?
            .with_max_set_len(r.max_set_len)
            .with_max_element_len(r.max_element_len))
    }
}

#[cfg(feature = "serde")]
impl From<ColumnSpec> for ColumnSpecRepr {
    fn from(c: ColumnSpec) -> Self {
        Self {
            merge: c.merge,
            value_type: c.value_type,
            max_set_len: c.max_set_len,
            max_element_len: c.max_element_len,
        }
    }
}

/// The columns of one table, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TableSchema {
    columns: NameMap<ColumnSpec>,
}

impl TableSchema {
    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.get(name)
    }

    /// The columns in name order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = (&str, &ColumnSpec)> + '_ {
        self.columns.iter()
    }
}

/// The registry fixing each (table, column)'s merge type, value type and bounds, with a version
/// that grows with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Schema {
    version: u64,
    tables: NameMap<TableSchema>,
}

/// Values by name, sorted by name: what a `BTreeMap<String, V>` holds, encoded as it encodes.
///
/// Every commit looks its columns up here, and schemas are small. A scan that compares lengths
/// first rejects most names with one integer comparison, where a tree compares strings byte by
/// byte at every level; a large map is searched by bisection.
#[derive(Clone, PartialEq, Eq)]
struct NameMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V> NameMap<V> {
    /// Up to this many names, a lookup scans.
    const SCAN_UP_TO: usize = 16;

    #[inline]
    fn get(&self, name: &str) -> Option<&V> {
        if self.entries.len() <= Self::SCAN_UP_TO {
            self.entries
                .iter()
                .find(|(n, _)| n.len() == name.len() && n.as_bytes() == name.as_bytes())
                .map(|(_, v)| v)
        } else {
            let i = self
                .entries
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()?;
            Some(&self.entries[i].1)
        }
    }

    fn position(&self, name: &str) -> std::result::Result<usize, usize> {
        self.entries.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value under `name`, inserted as `V::default()` if absent.
    fn get_or_default(&mut self, name: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.position(name) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (name.to_owned(), V::default()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Sets `name` to `value`, returning the value it replaced.
    fn insert(&mut self, name: &str, value: V) -> Option<V> {
        match self.position(name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name.to_owned(), value));
                None
            }
        }
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &V)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl<V: fmt::Debug> fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(feature = "serde")]
impl<V: serde::Serialize> serde::Serialize for NameMap<V> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(feature = "serde")]
impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for NameMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        // Decoded as the map it is written as, so the bytes and their checks are the map's.
        let map = std::collections::BTreeMap::<String, V>::deserialize(deserializer)?;
        Ok(Self {
            entries: map.into_iter().collect(),
        })
    }
}

/// The longest table or column name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

fn check_name(what: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME_LEN {
        "must be at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(AlgebraError::InvalidName {
        what: what.into(),
        name: name.chars().take(64).collect(),
        reason: reason.into(),
    })
}

impl Schema {
    /// The empty schema, version 0, to which [`Schema::with_column`] adds columns.
    ///
    /// ```
    /// let schema = rhizo_algebra::Schema::new();
    /// assert_eq!((schema.version(), schema.tables().len()), (0, 0));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a schema of version 1.
    ///
    /// ```
    /// use rhizo_algebra::{MergeType, Schema, ValueType};
    /// let schema = Schema::builder()
    ///     .table("counters")
    ///     .column("page_views", MergeType::Add, ValueType::Integer)
    ///     .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(schema.version(), 1);
    /// assert_eq!(schema.column("counters", "page_views").unwrap().merge(), MergeType::Add);
    /// ```
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The schema's version: 0 when empty, 1 when built, one more after each change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Result<&TableSchema> {
        self.tables
            .get(name)
            .ok_or_else(|| AlgebraError::UnknownTable {
                table: name.to_owned(),
            })
    }

    /// The tables in name order.
    pub fn tables(&self) -> impl ExactSizeIterator<Item = (&str, &TableSchema)> + '_ {
        self.tables.iter()
    }

    /// The column `table.column`; an unknown table or column is an error naming it.
    ///
    /// ```
    /// use rhizo_algebra::{MergeType, Schema, ValueType};
    /// let schema = Schema::builder()
    ///     .table("counters")
    ///     .column("value", MergeType::Add, ValueType::Integer)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(schema.column("counters", "value").unwrap().value_type(), ValueType::Integer);
    /// assert!(schema.column("counters", "nope").is_err());
    /// ```
    pub fn column(&self, table: &str, column: &str) -> Result<&ColumnSpec> {
        self.table(table)?
            .column(column)
            .ok_or_else(|| AlgebraError::UnknownColumn {
                table: table.to_owned(),
                column: column.to_owned(),
            })
    }

    /// Checks that an operation of kind `op` carrying `value` may be applied to `table.column`,
    /// and returns the column's spec.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, MergeType, OpType, Schema, ValueType};
    /// let schema = Schema::builder()
    ///     .table("counters")
    ///     .column("value", MergeType::Add, ValueType::Integer)
    ///     .build()
    ///     .unwrap();
    /// let one = AlgebraicValue::Integer(1);
    /// assert!(schema.validate("counters", "value", OpType::AbelianAdd, &one).is_ok());
    /// // ADD and MULTIPLY do not commute: a column takes one or the other.
    /// assert!(schema.validate("counters", "value", OpType::AbelianMultiply, &one).is_err());
    /// ```
    pub fn validate(
        &self,
        table: &str,
        column: &str,
        op: OpType,
        value: &AlgebraicValue,
    ) -> Result<&ColumnSpec> {
        let spec = self.column(table, column)?;
        spec.validate(op, value)?;
        Ok(spec)
    }

    /// A new schema with `table.column` declared as `spec` and the version one higher.
    ///
    /// A new table or column is added; an existing column may change only its bounds. Changing
    /// its merge or value type is refused, because replicas already hold states of the old
    /// kind. Re-declaring a column exactly as it is returns the schema unchanged, same version.
    ///
    /// ```
    /// use rhizo_algebra::{ColumnSpec, MergeType, Schema, ValueType};
    /// let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let v1 = Schema::new().with_column("counters", "value", sum).unwrap();
    /// assert_eq!(v1.version(), 1);
    /// assert_eq!(v1.with_column("counters", "value", sum).unwrap().version(), 1);
    /// let max = ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    /// assert!(v1.with_column("counters", "value", max).is_err()); // merge type changed
    /// ```
    pub fn with_column(&self, table: &str, column: &str, spec: ColumnSpec) -> Result<Schema> {
        check_name("table", table)?;
        check_name("column", column)?;
        if let Some(existing) = self.tables.get(table).and_then(|t| t.columns.get(column)) {
            if *existing == spec {
                return Ok(self.clone());
            }
            if (existing.merge, existing.value_type) != (spec.merge, spec.value_type) {
                return Err(AlgebraError::ColumnRedefined {
                    table: table.to_owned(),
                    column: column.to_owned(),
                    from: existing.describe(),
                    to: spec.describe(),
                });
            }
        }
        let mut next = self.clone();
        next.version += 1;
        next.tables
            .get_or_default(table)
            .columns
            .insert(column, spec);
        Ok(next)
    }
}

/// Builds a [`Schema`]; errors are reported by [`SchemaBuilder::build`].
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    tables: NameMap<TableSchema>,
    current: Option<String>,
    error: Option<AlgebraError>,
}

impl SchemaBuilder {
    /// Starts (or resumes) the table called `name`; the following columns belong to it.
    #[must_use]
    pub fn table(mut self, name: &str) -> Self {
        if self.error.is_none()
            && let Err(e) = check_name("table", name)
        {
            self.error = Some(e);
        }
        self.tables.get_or_default(name);
        self.current = Some(name.to_owned());
        self
    }

    /// Declares a column of the current table with default bounds.
    #[must_use]
    pub fn column(self, name: &str, merge: MergeType, value_type: ValueType) -> Self {
        match ColumnSpec::new(merge, value_type) {
            Ok(spec) => self.column_spec(name, spec),
            Err(e) => self.fail(e),
        }
    }

    /// Declares a column of the current table with an explicit spec.
    #[must_use]
    pub fn column_spec(mut self, name: &str, spec: ColumnSpec) -> Self {
        if self.error.is_some() {
            return self;
        }
        if let Err(e) = check_name("column", name) {
            return self.fail(e);
        }
        let Some(table) = self.current.clone() else {
            return self.fail(AlgebraError::InvalidName {
                what: "table".into(),
                name: String::new(),
                reason: "a column must follow a table(..) call".into(),
            });
        };
        let columns = &mut self.tables.get_or_default(&table).columns;
        if columns.insert(name, spec).is_some() {
            return self.fail(AlgebraError::DuplicateColumn {
                table,
                column: name.to_owned(),
            });
        }
        self
    }

    fn fail(mut self, error: AlgebraError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// The schema (version 1), or the first error met while building.
    ///
    /// ```
    /// use rhizo_algebra::{MergeType, Schema, ValueType};
    /// let duplicate = Schema::builder()
    ///     .table("t")
    ///     .column("c", MergeType::Max, ValueType::Integer)
    ///     .column("c", MergeType::Min, ValueType::Integer)
    ///     .build();
    /// assert!(duplicate.is_err());
    /// ```
    pub fn build(self) -> Result<Schema> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Ok(Schema {
            version: 1,
            tables: self.tables,
        })
    }
}

#[cfg(test)]
mod tests;
