//! `rhizo-algebra`: operation kinds, merge types, value types, values, schemas and the plain
//! value merger.

use std::collections::BTreeMap;
use std::str::FromStr;

use pyo3::Borrowed;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rhizo_algebra::{
    AlgebraicMerger, AlgebraicValue, ColumnSpec, Decimal, MergeType, OpType, Schema, ValueType,
};

use crate::convert::{InferredValue, ValueArg, value_to_py};
use crate::errors::{Exc, PyResultExt, Raise};

/// `From` both ways between a Python-facing enum and the Rust enum it mirrors.
macro_rules! mirror_enum {
    ($py:ident, $rust:ident { $($variant:ident),* $(,)? }) => {
        impl From<$rust> for $py {
            fn from(v: $rust) -> Self {
                match v { $($rust::$variant => Self::$variant),* }
            }
        }

        impl From<$py> for $rust {
            fn from(v: $py) -> Self {
                match v { $($py::$variant => Self::$variant),* }
            }
        }
    };
}

/// The kind of an operation. Its `name` is the roadmap's (`"ADD"`, `"MAX"`, …).
#[pyclass(module = "_rhizo", name = "PyOpType", eq, hash, frozen, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PyOpType {
    SemilatticeMax,
    SemilatticeMin,
    SemilatticeUnion,
    SemilatticeIntersect,
    AbelianAdd,
    AbelianMultiply,
    GenericOverwrite,
    GenericConditional,
    Unknown,
    OrSetAdd,
    OrSetRemove,
}

mirror_enum!(
    PyOpType,
    OpType {
        SemilatticeMax,
        SemilatticeMin,
        SemilatticeUnion,
        SemilatticeIntersect,
        AbelianAdd,
        AbelianMultiply,
        GenericOverwrite,
        GenericConditional,
        Unknown,
        OrSetAdd,
        OrSetRemove,
    }
);

/// The operation kind spelled `text` as the roadmap spells kinds, in any case: the display name
/// (`add`) or, for the semilattice, abelian and generic families, the name after its family
/// (`abelian_add`, `semilattice_max`, `generic_overwrite`).
fn kind_of_spelling(text: &str) -> Option<OpType> {
    let spelled = text.to_lowercase();
    OpType::ALL.into_iter().find(|&op| {
        let name = op.name().to_lowercase();
        let family = if op.is_semilattice() {
            "semilattice"
        } else if op.is_abelian() {
            "abelian"
        } else if matches!(op, OpType::GenericOverwrite | OpType::GenericConditional) {
            "generic"
        } else {
            ""
        };
        spelled == name || (!family.is_empty() && spelled == format!("{family}_{name}"))
    })
}

#[pymethods]
impl PyOpType {
    /// The operation kind spelled `op_type` (`"add"`, `"ABELIAN_ADD"`, `"max"`, …; any case).
    #[new]
    fn new(op_type: &str) -> PyResult<Self> {
        kind_of_spelling(op_type).map(Self::from).ok_or_else(|| {
            let valid: Vec<String> = OpType::ALL
                .iter()
                .map(|op| op.name().to_lowercase())
                .collect();
            let message = format!(
                "Invalid operation type: '{op_type}'. Valid: {}",
                valid.join(", ")
            );
            Raise::new(Exc::Schema, "UnknownName", message).into_pyerr()
        })
    }

    /// The operation kind called `name` (`"ADD"`, `"OR_ADD"`, …).
    #[staticmethod]
    fn from_name(name: &str) -> PyResult<Self> {
        OpType::from_str(name).py().map(Self::from)
    }

    /// Every operation kind, in declaration order.
    #[staticmethod]
    fn all() -> Vec<Self> {
        OpType::ALL.iter().map(|&op| op.into()).collect()
    }

    /// The roadmap's name, e.g. `"ADD"`.
    #[getter]
    fn name(&self) -> &'static str {
        OpType::from(*self).name()
    }

    /// One sentence on what the operation does and whether it needs coordination.
    fn description(&self) -> &'static str {
        OpType::from(*self).description()
    }

    /// Whether operations of this kind and of `other` merge with each other: the same kind,
    /// and a conflict-free one.
    fn can_merge_with(&self, other: PyOpType) -> bool {
        *self == other && self.is_conflict_free()
    }

    /// Whether operations of this kind commute on a matching column (may commit locally).
    fn is_conflict_free(&self) -> bool {
        OpType::from(*self).is_conflict_free()
    }

    /// Whether the kind is a semilattice join or meet (idempotent).
    fn is_semilattice(&self) -> bool {
        OpType::from(*self).is_semilattice()
    }

    /// Whether the kind is a commutative group or monoid operation (exactly once).
    fn is_abelian(&self) -> bool {
        OpType::from(*self).is_abelian()
    }

    /// Whether the kind belongs to the observed-remove set.
    fn is_observed_remove(&self) -> bool {
        OpType::from(*self).is_observed_remove()
    }

    fn __str__(&self) -> &'static str {
        self.name()
    }

    fn __repr__(&self) -> String {
        format!("PyOpType({})", self.name())
    }
}

/// How a column merges concurrent writes.
#[pyclass(
    module = "_rhizo",
    name = "PyMergeType",
    eq,
    hash,
    frozen,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PyMergeType {
    Max,
    Min,
    Union,
    Intersect,
    Add,
    Multiply,
    ObservedRemoveSet,
    Register,
}

mirror_enum!(
    PyMergeType,
    MergeType {
        Max,
        Min,
        Union,
        Intersect,
        Add,
        Multiply,
        ObservedRemoveSet,
        Register,
    }
);

#[pymethods]
impl PyMergeType {
    /// The merge type called `name` (`"ADD"`, `"OR_SET"`, `"REGISTER"`, …).
    #[staticmethod]
    fn from_name(name: &str) -> PyResult<Self> {
        MergeType::from_str(name).py().map(Self::from)
    }

    /// Every merge type, in declaration order.
    #[staticmethod]
    fn all() -> Vec<Self> {
        MergeType::ALL.iter().map(|&m| m.into()).collect()
    }

    /// The name, e.g. `"ADD"`.
    #[getter]
    fn name(&self) -> &'static str {
        MergeType::from(*self).name()
    }

    /// Whether writes to such a column may commit locally (all but `Register`).
    fn is_conflict_free(&self) -> bool {
        MergeType::from(*self).is_conflict_free()
    }

    /// Whether such a column accepts operations of kind `op`.
    fn accepts(&self, op: PyOpType) -> bool {
        MergeType::from(*self).accepts(op.into())
    }

    fn __str__(&self) -> &'static str {
        self.name()
    }
}

/// The type of a column's values.
#[pyclass(module = "_rhizo", name = "PyValueType", eq, hash, frozen)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyValueType(pub(crate) ValueType);

#[pymethods]
impl PyValueType {
    /// 64-bit signed integers.
    #[staticmethod]
    fn integer() -> Self {
        Self(ValueType::Integer)
    }

    /// Finite 64-bit floats.
    #[staticmethod]
    fn float() -> Self {
        Self(ValueType::Float)
    }

    /// Exact decimals with `scale` fractional digits.
    #[staticmethod]
    fn decimal(scale: u8) -> Self {
        Self(ValueType::Decimal { scale })
    }

    /// Sets of strings.
    #[staticmethod]
    fn string_set() -> Self {
        Self(ValueType::StringSet)
    }

    /// Sets of 64-bit integers.
    #[staticmethod]
    fn int_set() -> Self {
        Self(ValueType::IntSet)
    }

    /// Booleans.
    #[staticmethod]
    fn boolean() -> Self {
        Self(ValueType::Boolean)
    }

    /// The type's name: `"integer"`, `"float"`, `"decimal"`, `"string set"`, `"int set"`,
    /// `"boolean"`.
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The scale of a decimal type, `None` for the others.
    #[getter]
    fn scale(&self) -> Option<u8> {
        match self.0 {
            ValueType::Decimal { scale } => Some(scale),
            _ => None,
        }
    }

    /// Whether values of this type are sets.
    fn is_set(&self) -> bool {
        self.0.is_set()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        match self.0 {
            ValueType::Decimal { scale } => format!("PyValueType.decimal({scale})"),
            ValueType::StringSet => "PyValueType.string_set()".to_owned(),
            ValueType::IntSet => "PyValueType.int_set()".to_owned(),
            other => format!("PyValueType.{}()", other.name()),
        }
    }
}

/// A value type argument: a `PyValueType` or its spelling as `ValueType::from_str` parses it:
/// `"integer"`, `"float"`, `"boolean"`, `"string_set"`, `"int_set"`, `"decimal(N)"`.
pub(crate) struct ValueTypeArg(pub(crate) ValueType);

impl<'a, 'py> FromPyObject<'a, 'py> for ValueTypeArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(vt) = obj.cast::<PyValueType>() {
            return Ok(Self(vt.get().0));
        }
        let text = obj.cast::<PyString>()?.to_cow()?.into_owned();
        ValueType::from_str(&text).py().map(Self)
    }
}

/// A merge type argument: a `PyMergeType` or its name (`"ADD"`, `"OR_SET"`…).
pub(crate) struct MergeTypeArg(pub(crate) MergeType);

impl<'a, 'py> FromPyObject<'a, 'py> for MergeTypeArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(m) = obj.cast::<PyMergeType>() {
            return Ok(Self((*m.get()).into()));
        }
        let name = obj.cast::<PyString>()?.to_cow()?.into_owned();
        MergeType::from_str(&name).py().map(Self)
    }
}

/// An operation kind argument: a `PyOpType` or its name (`"ADD"`…).
pub(crate) struct OpTypeArg(pub(crate) OpType);

impl<'a, 'py> FromPyObject<'a, 'py> for OpTypeArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(op) = obj.cast::<PyOpType>() {
            return Ok(Self((*op.get()).into()));
        }
        let name = obj.cast::<PyString>()?.to_cow()?.into_owned();
        OpType::from_str(&name).py().map(Self)
    }
}

/// A value a column holds or an operation carries. Immutable; `==`, ordering and `hash` are the
/// Rust value's (exact: floats by bits, a total order across kinds).
#[pyclass(module = "_rhizo", name = "PyAlgebraicValue", frozen)]
#[derive(Clone)]
pub(crate) struct PyAlgebraicValue(pub(crate) AlgebraicValue);

#[pymethods]
impl PyAlgebraicValue {
    /// The value of a Python object, inferred as the roadmap infers it: `None`, a `bool`, an
    /// integer that fits 64 bits, anything `float()` takes, or a set or sequence of `str` or of
    /// `int`.
    #[new]
    fn new(value: InferredValue) -> Self {
        Self(value.0)
    }

    /// An integer value.
    #[staticmethod]
    fn integer(v: i64) -> Self {
        Self(AlgebraicValue::Integer(v))
    }

    /// A float value.
    #[staticmethod]
    fn float(v: f64) -> Self {
        Self(AlgebraicValue::float(v))
    }

    /// An exact decimal from its text, e.g. `"12.34"`.
    #[staticmethod]
    fn decimal(text: &str) -> PyResult<Self> {
        Decimal::from_str(text)
            .py()
            .map(|d| Self(AlgebraicValue::Decimal(d)))
    }

    /// A boolean value.
    #[staticmethod]
    fn boolean(v: bool) -> Self {
        Self(AlgebraicValue::Boolean(v))
    }

    /// A set of strings, from a list or tuple of them.
    #[staticmethod]
    fn string_set(values: Vec<String>) -> Self {
        Self(AlgebraicValue::string_set(values))
    }

    /// A set of integers, from a list or tuple of them.
    #[staticmethod]
    fn int_set(values: Vec<i64>) -> Self {
        Self(AlgebraicValue::int_set(values))
    }

    /// The null value.
    #[staticmethod]
    fn null() -> Self {
        Self(AlgebraicValue::Null)
    }

    /// The kind of value: `"null"`, `"integer"`, `"float"`, …
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind_name()
    }

    /// The roadmap's name of the kind: `"Integer"`, `"Float"`, `"Decimal"`, `"StringSet"`,
    /// `"IntSet"`, `"Boolean"` or `"Null"`.
    fn type_name(&self) -> &'static str {
        match self.0 {
            AlgebraicValue::Null => "Null",
            AlgebraicValue::Integer(_) => "Integer",
            AlgebraicValue::Float(_) => "Float",
            AlgebraicValue::Decimal(_) => "Decimal",
            AlgebraicValue::StringSet(_) => "StringSet",
            AlgebraicValue::IntSet(_) => "IntSet",
            AlgebraicValue::Boolean(_) => "Boolean",
        }
    }

    /// The plain Python value (`None`, `int`, `float`, `Decimal`, `set`, `bool`).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.0)
    }

    /// Whether this is a number (integer, float or decimal).
    fn is_numeric(&self) -> bool {
        matches!(
            self.0,
            AlgebraicValue::Integer(_) | AlgebraicValue::Float(_) | AlgebraicValue::Decimal(_)
        )
    }

    /// Whether this is a set (of strings or of integers).
    fn is_set(&self) -> bool {
        matches!(
            self.0,
            AlgebraicValue::StringSet(_) | AlgebraicValue::IntSet(_)
        )
    }

    /// Whether this is the null value.
    fn is_null(&self) -> bool {
        self.0.is_null()
    }

    fn __str__(&self) -> String {
        roadmap_text(&self.0)
    }

    fn __repr__(&self) -> String {
        format!("PyAlgebraicValue({})", roadmap_text(&self.0))
    }

    fn __richcmp__(&self, other: &Self, op: CompareOp) -> bool {
        op.matches(self.0.cmp(&other.0))
    }

    fn __hash__(&self) -> u64 {
        crate::clock::hash_of(&self.0)
    }
}

/// A value as the roadmap prints it: floats in positional notation (a whole float without
/// `.0`), sets as a bracketed list of at most five elements (strings quoted and escaped), with
/// the total after a cut.
pub(crate) fn roadmap_text(value: &AlgebraicValue) -> String {
    match value {
        AlgebraicValue::Null => "null".to_owned(),
        AlgebraicValue::Integer(i) => i.to_string(),
        AlgebraicValue::Float(f) => f.0.to_string(),
        AlgebraicValue::Decimal(d) => d.to_string(),
        AlgebraicValue::Boolean(b) => b.to_string(),
        AlgebraicValue::StringSet(set) => listed(set.iter().map(|e| format!("{e:?}")), set.len()),
        AlgebraicValue::IntSet(set) => listed(set.iter().map(i64::to_string), set.len()),
    }
}

fn listed(elements: impl Iterator<Item = String>, len: usize) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = elements.take(SHOWN).collect();
    if len <= SHOWN {
        format!("[{}]", shown.join(", "))
    } else {
        format!("{{[{}]... ({len} total)}}", shown.join(", "))
    }
}

/// The merge of `value1` and `value2` under `op_type`, by the rules every replica merges by
/// (null is the identity of every conflict-free kind).
#[pyfunction]
pub(crate) fn algebraic_merge(
    op_type: PyOpType,
    value1: &PyAlgebraicValue,
    value2: &PyAlgebraicValue,
) -> PyResult<PyAlgebraicValue> {
    AlgebraicMerger::merge(op_type.into(), &value1.0, &value2.0)
        .py()
        .map(PyAlgebraicValue)
}

/// Tables and columns with their merge and value types. Immutable: `with_column` returns a new
/// schema one version up.
#[pyclass(module = "_rhizo", name = "PySchema", frozen)]
#[derive(Clone)]
pub(crate) struct PySchema(pub(crate) Schema);

#[pymethods]
impl PySchema {
    /// A schema from `{table: {column: (merge_type, value_type)}}` (version 1), or the empty
    /// schema (version 0).
    #[new]
    #[pyo3(signature = (tables = None))]
    fn new(tables: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let Some(tables) = tables else {
            return Ok(Self(Schema::new()));
        };
        let mut builder = Schema::builder();
        for (table, columns) in tables.iter() {
            builder = builder.table(&table.extract::<String>()?);
            for (column, spec) in columns.cast::<PyDict>()?.iter() {
                let (merge, value_type): (MergeTypeArg, ValueTypeArg) = spec.extract()?;
                builder = builder.column(&column.extract::<String>()?, merge.0, value_type.0);
            }
        }
        builder.build().py().map(Self)
    }

    /// This schema with one more column (the table is created if new): a new schema, one
    /// version up. Redefining a column with another merge or value type is refused.
    fn with_column(
        &self,
        table: &str,
        column: &str,
        merge: MergeTypeArg,
        value_type: ValueTypeArg,
    ) -> PyResult<Self> {
        let spec = ColumnSpec::new(merge.0, value_type.0).py()?;
        self.0.with_column(table, column, spec).py().map(Self)
    }

    /// The schema's version (0 for the empty schema, +1 per change).
    #[getter]
    fn version(&self) -> u64 {
        self.0.version()
    }

    /// The merge and value types of one column.
    fn column(&self, table: &str, column: &str) -> PyResult<(PyMergeType, PyValueType)> {
        let spec = self.0.column(table, column).py()?;
        Ok((spec.merge().into(), PyValueType(spec.value_type())))
    }

    /// `{table: {column: (merge_type, value_type)}}`, in name order.
    fn tables(&self) -> BTreeMap<String, BTreeMap<String, (PyMergeType, PyValueType)>> {
        self.0
            .tables()
            .map(|(name, table)| {
                let columns = table
                    .columns()
                    .map(|(c, spec)| {
                        (
                            c.to_owned(),
                            (spec.merge().into(), PyValueType(spec.value_type())),
                        )
                    })
                    .collect();
                (name.to_owned(), columns)
            })
            .collect()
    }

    /// Checks that `op` with `value` is valid on `table.column`; raises the reason if not.
    fn validate(&self, table: &str, column: &str, op: OpTypeArg, value: ValueArg) -> PyResult<()> {
        self.0
            .validate(table, column, op.0, &value.0)
            .py()
            .map(drop)
    }

    fn __repr__(&self) -> String {
        let tables: Vec<String> = self
            .0
            .tables()
            .map(|(name, table)| {
                let columns: Vec<String> = table
                    .columns()
                    .map(|(c, spec)| format!("{c}: {} {}", spec.merge(), spec.value_type()))
                    .collect();
                format!("{name} {{{}}}", columns.join(", "))
            })
            .collect();
        format!("PySchema(v{}: {})", self.0.version(), tables.join("; "))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// The roadmap's plain-value merger: how two values of one operation kind combine.
#[pyclass(module = "_rhizo", name = "PyAlgebraicMerger", frozen)]
pub(crate) struct PyAlgebraicMerger;

#[pymethods]
impl PyAlgebraicMerger {
    /// The merge of `a` and `b` under `op` (null is the identity).
    #[staticmethod]
    fn merge<'py>(
        py: Python<'py>,
        op: OpTypeArg,
        a: ValueArg,
        b: ValueArg,
    ) -> PyResult<Bound<'py, PyAny>> {
        let merged = AlgebraicMerger::merge(op.0, &a.0, &b.0).py()?;
        value_to_py(py, &merged)
    }

    /// The merge of every value under `op`, whatever their order.
    #[staticmethod]
    fn merge_all<'py>(
        py: Python<'py>,
        op: OpTypeArg,
        values: Vec<ValueArg>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let merged = AlgebraicMerger::merge_all(op.0, values.iter().map(|v| &v.0)).py()?;
        value_to_py(py, &merged)
    }
}
