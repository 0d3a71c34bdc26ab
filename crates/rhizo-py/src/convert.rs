//! Conversions between Python objects and the core crates' argument and result types.

use std::str::FromStr;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyFloat, PyFrozenSet, PyInt, PySequence, PySet, PyString, PyType,
};
use pyo3::{Borrowed, IntoPyObjectExt};
use rhizo_algebra::{AlgebraError, AlgebraicValue, Decimal};
use rhizo_clock::NodeId;
use rhizo_sim::NodeRef;

use crate::algebra::PyAlgebraicValue;
use crate::clock::PyNodeId;
use crate::errors::{Exc, PyResultExt, Raise};

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

/// A value argument: `None`, `bool`, `int`, `float`, `decimal.Decimal`, a set (or frozenset,
/// list, tuple) of `str` or of `int`, or a `PyAlgebraicValue`.
pub(crate) struct ValueArg(pub(crate) AlgebraicValue);

impl<'a, 'py> FromPyObject<'a, 'py> for ValueArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        let value = if obj.is_none() {
            AlgebraicValue::Null
        } else if let Ok(v) = obj.cast::<PyAlgebraicValue>() {
            v.get().0.clone()
        } else if obj.is_instance_of::<PyBool>() {
            AlgebraicValue::Boolean(obj.extract()?)
        } else if obj.is_instance_of::<PyInt>() {
            AlgebraicValue::Integer(obj.extract()?)
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
            ));
        } else if obj.is_instance_of::<PySet>()
            || obj.is_instance_of::<PyFrozenSet>()
            || obj.is_instance_of::<pyo3::types::PyList>()
            || obj.is_instance_of::<pyo3::types::PyTuple>()
        {
            set_value(obj)?
        } else {
            return Err(PyTypeError::new_err(format!(
                "cannot use a {} as a Rhizo value (expected None, bool, int, float, \
                 decimal.Decimal, a set of str or a set of int)",
                obj.get_type().name()?
            )));
        };
        Ok(Self(value))
    }
}

/// A set value from an iterable of all-`str` or all-`int` elements (an empty one is a string set).
fn set_value(obj: Borrowed<'_, '_, PyAny>) -> PyResult<AlgebraicValue> {
    let mut strings: Vec<String> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        if item.is_instance_of::<PyString>() {
            strings.push(item.extract()?);
        } else if item.is_instance_of::<PyInt>() && !item.is_instance_of::<PyBool>() {
            ints.push(item.extract()?);
        } else {
            return Err(PyTypeError::new_err(format!(
                "set elements must be str or int, got {}",
                item.get_type().name()?
            )));
        }
        if !strings.is_empty() && !ints.is_empty() {
            return Err(AlgebraError::MixedKinds {
                first: "string".into(),
                other: "integer".into(),
            })
            .py();
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
/// one `str` or `int`, or an iterable of all-`str` or all-`int` elements — for string-set and
/// integer-set columns alike.
pub(crate) struct Elements(pub(crate) AlgebraicValue);

impl<'a, 'py> FromPyObject<'a, 'py> for Elements {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(one) = obj.cast::<PyString>() {
            return Ok(Self(AlgebraicValue::string_set([one.to_cow()?])));
        }
        if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
            return Ok(Self(AlgebraicValue::int_set([obj.extract::<i64>()?])));
        }
        if obj.try_iter().is_err() {
            return Err(PyTypeError::new_err(format!(
                "set elements are one str or int, or an iterable of them; got {}",
                obj.get_type().name()?
            )));
        }
        set_value(obj).map(Self)
    }
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
