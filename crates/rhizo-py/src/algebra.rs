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

use crate::convert::{ValueArg, value_to_py};
use crate::errors::PyResultExt;

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

#[pymethods]
impl PyOpType {
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
    #[getter]
    fn description(&self) -> &'static str {
        OpType::from(*self).description()
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
    /// The value of a Python object: `None`, `bool`, `int`, `float`, `decimal.Decimal`, a set of
    /// `str` or a set of `int`.
    #[new]
    fn new(value: ValueArg) -> Self {
        Self(value.0)
    }

    /// An integer value.
    #[staticmethod]
    fn integer(value: i64) -> Self {
        Self(AlgebraicValue::Integer(value))
    }

    /// A float value.
    #[staticmethod]
    fn float(value: f64) -> Self {
        Self(AlgebraicValue::float(value))
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
    fn boolean(value: bool) -> Self {
        Self(AlgebraicValue::Boolean(value))
    }

    /// A set of strings.
    #[staticmethod]
    fn string_set(elements: Vec<String>) -> Self {
        Self(AlgebraicValue::string_set(elements))
    }

    /// A set of integers.
    #[staticmethod]
    fn int_set(elements: Vec<i64>) -> Self {
        Self(AlgebraicValue::int_set(elements))
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

    /// The plain Python value (`None`, `int`, `float`, `Decimal`, `set`, `bool`).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.0)
    }

    /// Whether this is the null value.
    fn is_null(&self) -> bool {
        self.0.is_null()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("PyAlgebraicValue({}: {})", self.0.kind_name(), self.0)
    }

    fn __richcmp__(&self, other: &Self, op: CompareOp) -> bool {
        op.matches(self.0.cmp(&other.0))
    }

    fn __hash__(&self) -> u64 {
        crate::clock::hash_of(&self.0)
    }
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
