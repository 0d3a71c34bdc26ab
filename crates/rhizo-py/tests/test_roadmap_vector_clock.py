"""`PyVectorClock` as the roadmap's users call it."""

from __future__ import annotations

import json

import pytest

import _rhizo
from _rhizo import PyNodeId, PyVectorClock

A, B, C = PyNodeId("a"), PyNodeId("b"), PyNodeId("c")


def clock(**entries: int) -> PyVectorClock:
    c = PyVectorClock()
    for name, time in entries.items():
        c.set(PyNodeId(name), time)
    return c


def test_an_empty_clock() -> None:
    c = PyVectorClock()
    assert c.is_empty() and c.node_count() == 0 and c.sum() == 0
    assert c.get(A) == 0
    assert str(c) == "[]" and repr(c) == "VectorClock([])"


def test_with_node_tick_get_and_set() -> None:
    c = PyVectorClock.with_node(A, 3)
    assert c.get(A) == 3 and c.get(node_id=B) == 0
    assert PyVectorClock.with_node(node_id=B, time=2).get(B) == 2
    assert c.tick(A) is None
    c.tick(node_id=B)
    assert (c.get(A), c.get(B)) == (4, 1)
    c.set(A, 1)  # may lower an entry
    c.set(node_id=C, time=5)
    assert (c.get(A), c.get(C)) == (1, 5)
    assert c.node_count() == 3 and c.sum() == 7 and not c.is_empty()


def test_zero_entries_are_no_entries() -> None:
    # Ours: a clock keeps no zero entry, so a clock set to 0 equals one never set.
    c = clock(a=2)
    c.set(A, 0)
    assert c.is_empty() and c.node_count() == 0 and c == PyVectorClock()
    assert PyVectorClock.with_node(A, 0) == PyVectorClock()


def test_merge_takes_the_maximum_in_place() -> None:
    left, right = clock(a=3, b=1), clock(b=4, c=2)
    assert left.merge(right) is None
    assert str(left) == "[a:3, b:4, c:2]"
    assert str(right) == "[b:4, c:2]"
    left.merge(other=PyVectorClock())
    assert left == clock(a=3, b=4, c=2)


def test_max_is_a_new_clock() -> None:
    a, b = clock(a=3, b=1), clock(b=4)
    both = PyVectorClock.max(a, b)
    assert both == clock(a=3, b=4)
    assert PyVectorClock.max(a=b, b=a) == both
    assert (a, b) == (clock(a=3, b=1), clock(b=4))  # neither input changes


def test_ticked_is_a_new_clock() -> None:
    c = clock(a=1)
    ticked = c.ticked(A)
    assert ticked == clock(a=2) and c == clock(a=1)
    assert c.ticked(node_id=B) == clock(a=1, b=1)


def test_causal_relations() -> None:
    small, big, other = clock(a=1), clock(a=2, b=1), clock(c=1)
    assert small.happened_before(big) and not big.happened_before(small)
    assert big.happened_after(small) and big.happened_after(other=small)
    assert not small.happened_before(small) and not small.happened_after(small)
    assert small.concurrent_with(other) and other.concurrent_with(other=small)
    assert not small.concurrent_with(small) and not small.concurrent_with(big)
    assert not PyVectorClock().concurrent_with(small)  # empty: concurrent with nothing
    assert small.compare(big).order == "before"
    assert big.compare(other=small).order == "after"
    assert small.compare(other).order == "concurrent"
    assert small.compare(clock(a=1)).order == "equal"


def test_json_round_trips() -> None:
    c = clock(a=1, b=2**64 - 1)
    text = c.to_json()
    assert json.loads(text) == {"clocks": {"a": 1, "b": 2**64 - 1}}
    assert PyVectorClock.from_json(text) == c
    assert PyVectorClock.from_json(json='{"clocks": {}, "extra": 1}') == PyVectorClock()
    assert PyVectorClock().to_json() == '{"clocks":{}}'


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"clocks": []}',
        '{"clocks": {"a": -1}}',
        '{"clocks": {"a": 1.5}}',
        '{"clocks": {"a": "1"}}',
        '{"clocks": {"a": 18446744073709551616}}',
    ],
)
def test_bad_json_raises_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Deserialization error: ") as info:
        PyVectorClock.from_json(text)
    assert isinstance(info.value, _rhizo.DecodeError)


def test_json_naming_an_invalid_node_raises_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        PyVectorClock.from_json('{"clocks": {"": 1}}')
    assert isinstance(info.value, _rhizo.InvalidNodeIdError)


def test_equality_is_structural_and_clocks_are_unhashable() -> None:
    assert clock(a=1, b=2) == clock(b=2, a=1)
    assert clock(a=1) != clock(a=2)
    assert clock(a=1) != "[a:1]"
    with pytest.raises(TypeError):
        hash(clock(a=1))


def test_str_and_repr_list_entries() -> None:
    c = clock(b=2, a=1)
    assert str(c) == "[a:1, b:2]"
    assert repr(c) == "VectorClock([a:1, b:2])"


def test_unsigned_arguments() -> None:
    with pytest.raises(OverflowError):
        PyVectorClock.with_node(A, -1)
    with pytest.raises(TypeError):
        PyVectorClock().set(A, 1.5)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        clock(a=2**64 - 1).tick(A)  # the counter is full: nothing changes
