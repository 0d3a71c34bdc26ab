"""`PyAlgebraicValue` as the roadmap's users call it: inferred, built, classified, printed."""

from __future__ import annotations

import fractions
from decimal import Decimal

import pytest

import _rhizo
from _rhizo import PyAlgebraicValue


@pytest.mark.parametrize(
    ("python", "type_name", "text"),
    [
        (None, "Null", "null"),
        (True, "Boolean", "true"),
        (False, "Boolean", "false"),
        (42, "Integer", "42"),
        (-(2**63), "Integer", "-9223372036854775808"),
        (2**63, "Float", "9223372036854776000"),  # past 64 bits: a float
        (2.5, "Float", "2.5"),
        (3.0, "Float", "3"),  # a whole float prints as an integer
        (1e21, "Float", "1000000000000000000000"),  # never with an exponent
        (1e-7, "Float", "0.0000001"),
        (float("nan"), "Float", "NaN"),
        (float("inf"), "Float", "inf"),
        (float("-inf"), "Float", "-inf"),
        (Decimal("1.25"), "Float", "1.25"),  # float() takes it
        (fractions.Fraction(1, 4), "Float", "0.25"),
        ({"b", "a"}, "StringSet", '["a", "b"]'),
        (frozenset({3, 1}), "IntSet", "[1, 3]"),
        (["x", "y", "x"], "StringSet", '["x", "y"]'),
        ((5, 4), "IntSet", "[4, 5]"),
        (range(3), "IntSet", "[0, 1, 2]"),
        (set(), "StringSet", "[]"),
        ([], "StringSet", "[]"),
        (['say "hi"\n'], "StringSet", '["say \\"hi\\"\\n"]'),
    ],
)
def test_the_constructor_infers_the_kind(python: object, type_name: str, text: str) -> None:
    value = PyAlgebraicValue(python)
    assert value.type_name() == type_name
    assert str(value) == text
    assert repr(value) == f"PyAlgebraicValue({text})"
    assert value.is_null() == (type_name == "Null")
    assert value.is_numeric() == (type_name in ("Integer", "Float"))
    assert value.is_set() == (type_name in ("StringSet", "IntSet"))


def test_the_constructor_uses_index_before_float() -> None:
    class Index:
        def __index__(self) -> int:
            return 7

    assert PyAlgebraicValue(value=Index()).type_name() == "Integer"


@pytest.mark.parametrize(
    "python",
    ["text", b"bytes", {"a": 1}, [1, "a"], {1, "a"}, [1.5], [True], [2**64], object()],
)
def test_anything_else_raises_a_value_error(python: object) -> None:
    with pytest.raises(ValueError, match="Unsupported value type") as info:
        PyAlgebraicValue(python)
    assert isinstance(info.value, _rhizo.TypeMismatchError)


def test_a_large_set_prints_five_elements_and_its_size() -> None:
    value = PyAlgebraicValue.int_set(list(range(8)))
    assert str(value) == "{[0, 1, 2, 3, 4]... (8 total)}"
    five = PyAlgebraicValue.string_set(list("abcde"))
    assert str(five) == '["a", "b", "c", "d", "e"]'


def test_static_constructors() -> None:
    assert str(PyAlgebraicValue.integer(-3)) == "-3"
    assert str(PyAlgebraicValue.integer(v=4)) == "4"
    assert PyAlgebraicValue.float(2).type_name() == "Float"  # an int is taken as a float
    assert str(PyAlgebraicValue.float(v=0.5)) == "0.5"
    assert str(PyAlgebraicValue.string_set(["b", "a", "b"])) == '["a", "b"]'
    assert str(PyAlgebraicValue.string_set(values=("z",))) == '["z"]'
    assert str(PyAlgebraicValue.int_set([2, 1, 2])) == "[1, 2]"
    assert str(PyAlgebraicValue.int_set(values=[])) == "[]"
    assert str(PyAlgebraicValue.boolean(True)) == "true"
    assert str(PyAlgebraicValue.boolean(v=False)) == "false"
    assert PyAlgebraicValue.null().is_null()


@pytest.mark.parametrize(
    ("constructor", "argument"),
    [
        (PyAlgebraicValue.string_set, {"a"}),  # a set is not a sequence
        (PyAlgebraicValue.string_set, "abc"),  # nor is a bare str
        (PyAlgebraicValue.int_set, {1}),
        (PyAlgebraicValue.integer, 1.5),
        (PyAlgebraicValue.float, "1.5"),
        (PyAlgebraicValue.boolean, 1),
    ],
)
def test_static_constructors_are_strict(constructor: object, argument: object) -> None:
    with pytest.raises(TypeError):
        constructor(argument)  # type: ignore[operator]


def test_integer_out_of_range_raises_overflow() -> None:
    with pytest.raises(OverflowError):
        PyAlgebraicValue.integer(2**63)


def test_exact_decimals_and_plain_values_are_our_additions() -> None:
    exact = PyAlgebraicValue.decimal("1.50")
    assert exact.type_name() == "Decimal" and exact.is_numeric()
    assert str(exact) == "1.50"
    assert exact.value == Decimal("1.50")
    assert PyAlgebraicValue({"a"}).value == {"a"}
    assert PyAlgebraicValue(2).kind == "integer"
    assert PyAlgebraicValue(2) == PyAlgebraicValue.integer(2)
