//! Conversions between Python objects and the core crates' argument and result types.

use std::str::FromStr;

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyFloat, PyFrozenSet, PyInt, PySequence, PySet, PyString, PyType,
};
use pyo3::{Borrowed, IntoPyObjectExt};
use rhizo_algebra::{AlgebraError, AlgebraicValue, Decimal};
use rhizo_clock::{Bounded, NodeId};
use rhizo_commit::CellKey;
use rhizo_sim::NodeRef;

use crate::algebra::PyAlgebraicValue;
use crate::clock::PyNodeId;
use crate::errors::{Exc, PyResultExt, Raise, ToRaise};

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A node argument: a `PyNodeId` or its name.
pub(crate) struct NodeArg(pub(crate) NodeId);

impl<'a, 'py> FromPyObject<'a, 'py> for NodeArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(id) = obj.cast::<PyNodeId>() {
            return Ok(Self(id.get().0));
        }
        if let Ok(name) = obj.cast::<PyString>() {
            return NodeId::new(&name.to_cow()?).py().map(Self);
        }
        Err(PyTypeError::new_err(format!(
            "expected a PyNodeId or a node name (str), got {}",
            obj.get_type().name()?
        )))
    }
}

/// A simulated node named by index, `PyNodeId` or name.
pub(crate) struct NodeRefArg(pub(crate) NodeRef);

impl<'a, 'py> FromPyObject<'a, 'py> for NodeRefArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
            return Ok(Self(NodeRef::Index(obj.extract::<usize>()?)));
        }
        obj.extract::<NodeArg>()
            .map(|n| Self(NodeRef::Id(n.0)))
            .map_err(|_| {
                PyTypeError::new_err("expected a node index (int), a PyNodeId or a node name (str)")
            })
    }
}

/// Why a Python object is not a value: a Python error as it is, or an integer outside the 64
/// bits Rhizo's integers have — reported as `ValueOverflowError`, naming the cell when the
/// caller knows it.
enum Unconvertible {
    Py(PyErr),
    /// The integer, displayed (bounded: it may have any number of digits).
    OutOfRange(String),
}

impl From<PyErr> for Unconvertible {
    fn from(err: PyErr) -> Self {
        Self::Py(err)
    }
}

impl Unconvertible {
    fn into_pyerr(self, cell: Option<&CellKey>) -> PyErr {
        let text = match self {
            Self::Py(err) => return err,
            Self::OutOfRange(text) => text,
        };
        let range = format!(
            "{} does not fit a 64-bit integer ({}..={})",
            Bounded(&text),
            i64::MIN,
            i64::MAX
        );
        match cell {
            Some(cell) => Raise::new(
                Exc::ValueOverflow,
                "IntegerOutOfRange",
                format!("{cell}: {range}"),
            )
            .with_key(cell)
            .into_pyerr(),
            None => Raise::new(Exc::ValueOverflow, "IntegerOutOfRange", range).into_pyerr(),
        }
    }
}

/// A Python integer (an `int`, or anything with `__index__`, such as `numpy.int64`) as an
/// `i64`.
fn integer(obj: &Bound<'_, PyAny>) -> Result<i64, Unconvertible> {
    match obj.extract::<i64>() {
        Ok(i) => Ok(i),
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => {
            Err(Unconvertible::OutOfRange(obj.str()?.to_cow()?.into_owned()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether `obj` is a zero-dimensional array scalar (`numpy.int64(3)`, `numpy.bool_(True)`,
/// a 0-d array): something with a `dtype`, `ndim == 0` and an `item()` that returns the plain
/// Python value. Checked by those attributes, so that numpy need not be imported here.
fn is_array_scalar(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() {
        return Ok(false);
    }
    Ok(obj.hasattr("dtype")?
        && obj.hasattr("item")?
        && obj
            .getattr_opt("ndim")?
            .is_some_and(|ndim| ndim.extract::<i64>().ok() == Some(0)))
}

/// The plain Python value of an array scalar (see [`is_array_scalar`]).
fn array_scalar_item<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let item = obj.call_method0("item")?;
    if is_array_scalar(&item)? {
        return Err(PyTypeError::new_err(format!(
            "{}.item() returned another array scalar",
            obj.get_type().name()?
        )));
    }
    Ok(item)
}

/// A value from a Python object: `None`, `bool`, `int`, `float`, `decimal.Decimal`, a set (or
/// frozenset, list, tuple) of `str` or of `int`, a `PyAlgebraicValue`; also a numpy scalar
/// (its `item()`), anything with `__index__` as an integer and anything with `__float__` as a
/// float.
fn value(obj: &Bound<'_, PyAny>) -> Result<AlgebraicValue, Unconvertible> {
    let py = obj.py();
    let value = if obj.is_none() {
        AlgebraicValue::Null
    } else if let Ok(v) = obj.cast::<PyAlgebraicValue>() {
        v.get().0.clone()
    } else if obj.is_instance_of::<PyBool>() {
        AlgebraicValue::Boolean(obj.extract()?)
    } else if obj.is_instance_of::<PyInt>() {
        AlgebraicValue::Integer(integer(obj)?)
    } else if obj.is_instance_of::<PyFloat>() {
        AlgebraicValue::float(obj.extract()?)
    } else if obj.is_instance(DECIMAL.import(py, "decimal", "Decimal")?)? {
        // Fixed-point notation: `Decimal("1E+3")` prints as "1E+3" but formats as "1000".
        let text: String = py
            .import("builtins")?
            .getattr("format")?
            .call1((obj, "f"))?
            .extract()?;
        AlgebraicValue::Decimal(Decimal::from_str(&text).py()?)
    } else if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "a str is not a value; for a set of strings pass a set, e.g. {\"premium\"}",
        )
        .into());
    } else if obj.is_instance_of::<PySet>()
        || obj.is_instance_of::<PyFrozenSet>()
        || obj.is_instance_of::<pyo3::types::PyList>()
        || obj.is_instance_of::<pyo3::types::PyTuple>()
    {
        set_value(obj)?
    } else if is_array_scalar(obj)? {
        value(&array_scalar_item(obj)?)?
    } else if obj.hasattr("__index__")? {
        AlgebraicValue::Integer(integer(obj)?)
    } else if obj.hasattr("__float__")? {
        AlgebraicValue::float(obj.extract()?)
    } else {
        return Err(PyTypeError::new_err(format!(
            "cannot use a {} as a Rhizo value (expected None, bool, int, float, \
             decimal.Decimal, a set of str or a set of int, or a number implementing \
             __index__ or __float__)",
            obj.get_type().name()?
        ))
        .into());
    };
    Ok(value)
}

/// A value argument (see [`value`]); an integer out of range raises `ValueOverflowError`.
pub(crate) struct ValueArg(pub(crate) AlgebraicValue);

impl<'a, 'py> FromPyObject<'a, 'py> for ValueArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        value(&obj.to_owned())
            .map(Self)
            .map_err(|err| err.into_pyerr(None))
    }
}

/// The value of an operation on `cell`; an integer out of range raises `ValueOverflowError`
/// naming the cell (its `key`).
pub(crate) fn cell_value(obj: &Bound<'_, PyAny>, cell: &CellKey) -> PyResult<AlgebraicValue> {
    value(obj).map_err(|err| err.into_pyerr(Some(cell)))
}

/// One set element: a `str`, or an integer (`int`, anything with `__index__`, a numpy integer).
enum Element {
    Text(String),
    Integer(i64),
}

fn element(item: &Bound<'_, PyAny>) -> Result<Element, Unconvertible> {
    if let Ok(text) = item.cast::<PyString>() {
        return Ok(Element::Text(text.to_cow()?.into_owned()));
    }
    if is_array_scalar(item)? {
        return element(&array_scalar_item(item)?);
    }
    if !item.is_instance_of::<PyBool>()
        && (item.is_instance_of::<PyInt>() || item.hasattr("__index__")?)
    {
        return Ok(Element::Integer(integer(item)?));
    }
    Err(PyTypeError::new_err(format!(
        "set elements must be str or int, got {}",
        item.get_type().name()?
    ))
    .into())
}

/// A set value from an iterable of all-`str` or all-integer elements (an empty one is a
/// string set).
fn set_value(obj: &Bound<'_, PyAny>) -> Result<AlgebraicValue, Unconvertible> {
    let mut strings: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    for item in obj.try_iter()? {
        match element(&item?)? {
            Element::Text(text) => strings.push(text),
            Element::Integer(i) => ints.push(i),
        }
        if !strings.is_empty() && !ints.is_empty() {
            let mixed = AlgebraError::MixedKinds {
                first: "string".into(),
                other: "integer".into(),
            };
            return Err(Unconvertible::Py(mixed.to_raise().into_pyerr()));
        }
    }
    Ok(if ints.is_empty() {
        AlgebraicValue::string_set(strings)
    } else {
        AlgebraicValue::int_set(ints)
    })
}

/// A value inferred from any Python object as the roadmap's `PyAlgebraicValue(value)` infers
/// it, trying in turn: `None`; a `bool`; an integer (anything with `__index__`) that fits 64
/// bits; anything `float` converts (a larger integer, a `decimal.Decimal`, a numpy float); a set,
/// frozenset or other non-string sequence of `str` (or empty) or of `int`.
pub(crate) struct InferredValue(pub(crate) AlgebraicValue);

impl<'a, 'py> FromPyObject<'a, 'py> for InferredValue {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(Self(AlgebraicValue::Null));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(Self(AlgebraicValue::Boolean(obj.extract()?)));
        }
        if obj.hasattr("__index__")?
            && let Ok(i) = obj.extract::<i64>()
        {
            return Ok(Self(AlgebraicValue::Integer(i)));
        }
        let text = obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>();
        if !text {
            if let Ok(f) = obj.extract::<f64>() {
                return Ok(Self(AlgebraicValue::float(f)));
            }
            let collection = obj.is_instance_of::<PySet>()
                || obj.is_instance_of::<PyFrozenSet>()
                || obj.cast::<PySequence>().is_ok();
            if collection && let Some(set) = inferred_set(obj)? {
                return Ok(Self(set));
            }
        }
        Err(Raise::new(
            Exc::TypeMismatch,
            "UnsupportedValue",
            "Unsupported value type. Use int, float, bool, set/list of str, set/list of int, \
             or None",
        )
        .into_pyerr())
    }
}

/// The set of a collection's elements if they are all `str` (or there are none) or all `int`
/// in the 64-bit range; `None` otherwise.
fn inferred_set(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Option<AlgebraicValue>> {
    let mut strings: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        if let Ok(text) = item.cast::<PyString>() {
            strings.push(text.to_cow()?.into_owned());
        } else if item.is_instance_of::<PyInt>() && !item.is_instance_of::<PyBool>() {
            match item.extract() {
                Ok(i) => ints.push(i),
                Err(_) => return Ok(None),
            }
        } else {
            return Ok(None);
        }
        if !strings.is_empty() && !ints.is_empty() {
            return Ok(None);
        }
    }
    Ok(Some(if ints.is_empty() {
        AlgebraicValue::string_set(strings)
    } else {
        AlgebraicValue::int_set(ints)
    }))
}

/// Set elements for the set verbs (`add_to_set`, `remove_from_set`, `union`, `intersect`):
/// one `str` or integer, an iterable of all-`str` or all-integer elements, or a
/// `PyAlgebraicValue` holding a set — for string-set and integer-set columns alike.
fn elements(obj: &Bound<'_, PyAny>) -> Result<AlgebraicValue, Unconvertible> {
    if let Ok(v) = obj.cast::<PyAlgebraicValue>() {
        let held = &v.get().0;
        if matches!(
            held,
            AlgebraicValue::StringSet(_) | AlgebraicValue::IntSet(_)
        ) {
            return Ok(held.clone());
        }
        return Err(PyTypeError::new_err(format!(
            "set elements are one str or int, or an iterable of them; got a PyAlgebraicValue \
             holding {held}"
        ))
        .into());
    }
    // An array has `__index__` too, but it is a collection of elements.
    let iterable = obj.try_iter().is_ok();
    let single = obj.is_instance_of::<PyString>()
        || is_array_scalar(obj)?
        || (!obj.is_instance_of::<PyBool>()
            && (obj.is_instance_of::<PyInt>() || (!iterable && obj.hasattr("__index__")?)));
    if single {
        return Ok(match element(obj)? {
            Element::Text(text) => AlgebraicValue::string_set([text]),
            Element::Integer(i) => AlgebraicValue::int_set([i]),
        });
    }
    if !iterable {
        return Err(PyTypeError::new_err(format!(
            "set elements are one str or int, or an iterable of them; got {}",
            obj.get_type().name()?
        ))
        .into());
    }
    set_value(obj)
}

/// Set elements as an argument (see [`elements`]).
pub(crate) struct Elements(pub(crate) AlgebraicValue);

impl<'a, 'py> FromPyObject<'a, 'py> for Elements {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        elements(&obj.to_owned())
            .map(Self)
            .map_err(|err| err.into_pyerr(None))
    }
}

/// The elements of a set operation on `cell` (see [`elements`]); an integer out of range
/// raises `ValueOverflowError` naming the cell.
pub(crate) fn cell_elements(obj: &Bound<'_, PyAny>, cell: &CellKey) -> PyResult<AlgebraicValue> {
    elements(obj).map_err(|err| err.into_pyerr(Some(cell)))
}

/// A Rust value as a plain Python value: `None`, `bool`, `int`, `float`, `decimal.Decimal`,
/// `set[str]` or `set[int]`.
pub(crate) fn value_to_py<'py>(
    py: Python<'py>,
    value: &AlgebraicValue,
) -> PyResult<Bound<'py, PyAny>> {
    match value {
        AlgebraicValue::Null => Ok(py.None().into_bound(py)),
        AlgebraicValue::Integer(i) => i.into_bound_py_any(py),
        AlgebraicValue::Float(f) => f.0.into_bound_py_any(py),
        AlgebraicValue::Boolean(b) => b.into_bound_py_any(py),
        AlgebraicValue::Decimal(d) => DECIMAL
            .import(py, "decimal", "Decimal")?
            .call1((d.to_string(),)),
        AlgebraicValue::StringSet(set) => {
            PySet::new(py, set.iter().map(String::as_str))?.into_bound_py_any(py)
        }
        AlgebraicValue::IntSet(set) => PySet::new(py, set.iter())?.into_bound_py_any(py),
    }
}

/// Milliseconds (a Python number) as a `Duration`; anything else is a simulation setting out of
/// range (`SimulationConfigError`, a `ValueError`).
pub(crate) fn millis(ms: f64) -> PyResult<std::time::Duration> {
    if !ms.is_finite() || ms < 0.0 {
        let message =
            format!("a duration must be a finite, non-negative number of milliseconds, got {ms}");
        return Err(Raise::new(Exc::SimulationConfig, "InvalidDuration", message).into_pyerr());
    }
    Ok(std::time::Duration::from_micros(
        (ms * 1000.0).round() as u64
    ))
}
