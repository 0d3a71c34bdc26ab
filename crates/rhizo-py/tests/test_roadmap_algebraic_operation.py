"""`PyAlgebraicOperation` as the roadmap's users call it: a kind and a value on a flat key."""

from __future__ import annotations

import pytest

from _rhizo import PyAlgebraicOperation, PyAlgebraicValue, PyOpType


def test_properties_and_repr() -> None:
    op = PyAlgebraicOperation("page_views", PyOpType("add"), PyAlgebraicValue(5))
    assert op.key == "page_views"
    assert op.op_type == PyOpType("add")
    assert str(op.value) == "5"
    assert op.is_algebraic()
    assert repr(op) == "AlgebraicOperation(key='page_views', op=ADD, value=5)"


def test_keyword_arguments_and_any_pairing() -> None:
    # Nothing is checked here: a kind that cannot take the value is refused when committed.
    op = PyAlgebraicOperation(key="k", op_type=PyOpType("union"), value=PyAlgebraicValue.integer(3))
    assert repr(op) == "AlgebraicOperation(key='k', op=UNION, value=3)"
    tags = PyAlgebraicOperation("", PyOpType("union"), PyAlgebraicValue({"x"}))
    assert repr(tags) == """AlgebraicOperation(key='', op=UNION, value=["x"])"""


@pytest.mark.parametrize(("kind", "algebraic"), [("max", True), ("overwrite", False)])
def test_is_algebraic_is_the_kinds_conflict_freedom(kind: str, algebraic: bool) -> None:
    op = PyAlgebraicOperation("k", PyOpType(kind), PyAlgebraicValue(1))
    assert op.is_algebraic() is algebraic is op.op_type.is_conflict_free()


def test_properties_are_read_only_copies_and_operations_compare_by_identity() -> None:
    op = PyAlgebraicOperation("k", PyOpType("add"), PyAlgebraicValue(1))
    with pytest.raises(AttributeError):
        op.key = "other"  # type: ignore[misc]
    assert op.value is not op.value
    twin = PyAlgebraicOperation("k", PyOpType("add"), PyAlgebraicValue(1))
    assert op != twin and op == op
    assert len({op, twin}) == 2


def test_arguments_are_strictly_typed() -> None:
    with pytest.raises(TypeError):
        PyAlgebraicOperation("k", "add", PyAlgebraicValue(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PyAlgebraicOperation("k", PyOpType("add"), 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PyAlgebraicOperation(1, PyOpType("add"), PyAlgebraicValue(1))  # type: ignore[arg-type]
