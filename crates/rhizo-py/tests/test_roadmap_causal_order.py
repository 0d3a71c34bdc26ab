"""`PyCausalOrder` as the roadmap's users call it: read from `compare`."""

from __future__ import annotations

import pytest

from _rhizo import PyCausalOrder, PyNodeId, PyVectorClock

A, B = PyNodeId("a"), PyNodeId("b")


def clock(a: int = 0, b: int = 0) -> PyVectorClock:
    c = PyVectorClock()
    if a:
        c.set(A, a)
    if b:
        c.set(B, b)
    return c


@pytest.mark.parametrize(
    ("left", "right", "order", "needs_merge", "should_apply"),
    [
        (clock(a=1), clock(a=2), "before", False, True),
        (clock(a=2), clock(a=1), "after", False, False),
        (clock(a=1, b=1), clock(a=1, b=1), "equal", False, False),
        (clock(a=2), clock(b=1), "concurrent", True, True),
        (clock(), clock(), "equal", False, False),
    ],
)
def test_order_read_from_the_receivers_side(
    left: PyVectorClock, right: PyVectorClock, order: str, needs_merge: bool, should_apply: bool
) -> None:
    relation = left.compare(right)
    assert relation.order == order
    assert relation.needs_merge() is needs_merge
    assert relation.should_apply() is should_apply
    assert str(relation) == order
    assert repr(relation) == f"CausalOrder('{order}')"


def test_order_is_read_only() -> None:
    relation = clock(a=1).compare(clock())
    with pytest.raises(AttributeError):
        relation.order = "before"  # type: ignore[misc]


def test_there_is_no_constructor() -> None:
    with pytest.raises(TypeError):
        PyCausalOrder()  # type: ignore[call-arg]


def test_relations_compare_by_value() -> None:
    # Our addition: the four relations are also class attributes that compare with ==.
    assert clock(a=1).compare(clock(a=2)) == PyCausalOrder.Before
    assert clock(a=1).compare(clock(a=2)) == clock(a=3).compare(clock(a=4))
