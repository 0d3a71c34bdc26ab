"""`PyVersionedUpdate` as the roadmap's users read it: from commits and merges."""

from __future__ import annotations

import pytest
from roadmap_helpers import transaction as tx

from _rhizo import (
    PyAlgebraicTransaction,
    PyLocalCommitProtocol,
    PyNodeId,
    PyVectorClock,
    PyVersionedUpdate,
)


def commit(t: PyAlgebraicTransaction, node: str, clock: PyVectorClock) -> PyVersionedUpdate:
    return PyLocalCommitProtocol.commit_local(t, PyNodeId(node), clock)


def test_a_commit_lists_its_operations_in_transaction_order() -> None:
    clock = PyVectorClock()
    update = commit(tx(("z", "add", 1), ("a", "max", 2), ("z", "add", 3)), "n0", clock)
    ops = update.operations()
    assert [(o.key, str(o.op_type), str(o.value)) for o in ops] == [
        ("z", "ADD", "1"),
        ("a", "MAX", "2"),
        ("z", "ADD", "3"),
    ]
    assert update.operations()[0] is not ops[0]  # copies
    assert update.origin_node == PyNodeId("n0")
    assert update.update_id is None
    assert update.clock == clock == PyVectorClock.with_node(PyNodeId("n0"), 1)
    assert repr(update) == "VersionedUpdate(origin='n0', ops=3, clock=[n0:1])"


def test_the_clock_is_a_copy() -> None:
    update = commit(tx(("k", "add", 1)), "n0", PyVectorClock())
    taken = update.clock
    taken.tick(PyNodeId("n0"))
    assert update.clock.get(PyNodeId("n0")) == 1


def test_compare_and_concurrency_follow_the_clocks() -> None:
    on_a, on_b = PyVectorClock(), PyVectorClock()
    first = commit(tx(("k", "add", 1)), "a", on_a)
    second = commit(tx(("k", "add", 1)), "a", on_a)
    other = commit(tx(("k", "add", 1)), "b", on_b)
    assert first.compare(second).order == "before"
    assert second.compare(other=first).order == "after"
    assert first.compare(first).order == "equal"
    assert first.compare(other).order == "concurrent"
    assert first.is_concurrent_with(other) and other.is_concurrent_with(other=first)
    assert not first.is_concurrent_with(second)


def test_a_merge_has_no_origin_node() -> None:
    a = commit(tx(("k", "add", 1)), "a", PyVectorClock())
    b = commit(tx(("k", "add", 2)), "b", PyVectorClock())
    merged = PyLocalCommitProtocol.merge_updates(a, b)
    # Ours: no node committed a merge, and a node id is a name of 16 bytes at most.
    assert merged.origin_node is None
    assert merged.origin == "merged:a+b"
    assert repr(merged) == "VersionedUpdate(origin='merged:a+b', ops=1, clock=[a:1, b:1])"


def test_updates_have_no_constructor_and_compare_by_identity() -> None:
    with pytest.raises(TypeError):
        PyVersionedUpdate()  # type: ignore[call-arg]
    a = commit(tx(("k", "add", 1)), "a", PyVectorClock())
    b = PyLocalCommitProtocol.merge_all([a])
    assert a != b and a == a
    with pytest.raises(AttributeError):
        a.clock = PyVectorClock()  # type: ignore[misc]
