"""`algebraic_merge` as the roadmap's users call it, by the rules every replica merges by."""

from __future__ import annotations

import itertools

import pytest

import _rhizo
from _rhizo import PyAlgebraicValue, PyOpType, algebraic_merge

V = PyAlgebraicValue


def merged(op: str, a: object, b: object) -> str:
    return str(algebraic_merge(PyOpType(op), V(a), V(b)))


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        ("max", 3, 9, "9"),
        ("min", 3, 9, "3"),
        ("max", 2.5, -1.0, "2.5"),
        ("min", 2.5, -1.0, "-1"),
        ("max", True, False, "true"),  # MAX of booleans is OR
        ("min", True, False, "false"),  # MIN is AND
        ("union", {"a"}, {"b"}, '["a", "b"]'),
        ("intersect", {1, 2}, {2, 3}, "[2]"),
        ("add", 2, 3, "5"),
        ("multiply", 4, -3, "-12"),
        ("add", 0.5, 0.25, "0.75"),
        ("multiply", 1.5, 2.0, "3"),
        ("add", None, 7, "7"),  # null is the identity
        ("union", {"a"}, None, '["a"]'),
        ("max", None, None, "null"),
    ],
)
def test_merges(op: str, a: object, b: object, expected: str) -> None:
    assert merged(op, a, b) == expected
    assert merged(op, b, a) == expected  # commutative


def test_keyword_arguments() -> None:
    result = algebraic_merge(op_type=PyOpType("add"), value1=V(1), value2=V(2))
    assert str(result) == "3" and isinstance(result, PyAlgebraicValue)


def test_integer_merges_are_associative() -> None:
    values = [V(n) for n in (5, -3, 11, 2)]
    for name in ("add", "multiply", "max", "min"):
        op = PyOpType(name)
        for a, b, c in itertools.permutations(values, 3):
            left = algebraic_merge(op, algebraic_merge(op, a, b), c)
            right = algebraic_merge(op, a, algebraic_merge(op, b, c))
            assert str(left) == str(right)


@pytest.mark.parametrize("op", ["overwrite", "conditional", "unknown"])
def test_kinds_that_need_coordination_are_refused(op: str) -> None:
    with pytest.raises(ValueError) as info:
        merged(op, 1, 2)
    assert isinstance(info.value, _rhizo.RequiresCoordinationError)


def test_integer_overflow_is_refused() -> None:
    with pytest.raises(ValueError) as info:
        merged("add", 2**63 - 1, 1)
    assert isinstance(info.value, _rhizo.ValueOverflowError)
    with pytest.raises(OverflowError):
        merged("multiply", 2**62, 4)


@pytest.mark.parametrize(
    ("op", "a", "b"),
    [
        ("add", {"a"}, {"b"}),  # sets do not add
        ("union", 1, 2),  # two integers have no union
        ("max", {"a"}, {"b"}),  # sets have no order
        ("add", 1, 1.5),  # an integer and a float are different kinds (ours)
        ("add", True, 1),
    ],
)
def test_operands_the_kind_cannot_merge_raise_value_error(op: str, a: object, b: object) -> None:
    with pytest.raises(ValueError) as info:
        merged(op, a, b)
    assert isinstance(info.value, _rhizo.RhizoError)


def test_arguments_must_be_the_roadmap_classes() -> None:
    with pytest.raises(TypeError):
        algebraic_merge("add", V(1), V(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        algebraic_merge(PyOpType("add"), 1, V(2))  # type: ignore[arg-type]
