"""`PyLocalCommitProtocol` as the roadmap's users call it: static methods over flat keys."""

from __future__ import annotations

import itertools

import pytest
from roadmap_helpers import transaction as tx

import _rhizo
from _rhizo import (
    PyAlgebraicTransaction,
    PyLocalCommitProtocol,
    PyNodeId,
    PyVectorClock,
    PyVersionedUpdate,
)

P = PyLocalCommitProtocol


def commit(t: PyAlgebraicTransaction, node: str = "a") -> PyVersionedUpdate:
    return P.commit_local(t, PyNodeId(node), PyVectorClock())


def values(update: PyVersionedUpdate) -> dict[str, str]:
    return {op.key: str(op.value) for op in update.operations()}


def test_there_is_no_constructor() -> None:
    with pytest.raises(TypeError):
        P()


def test_can_commit_locally() -> None:
    assert P.can_commit_locally(tx(("k", "add", 1), ("s", "union", {"x"})))
    assert P.can_commit_locally(tx=tx(("k", "max", 1)))
    assert not P.can_commit_locally(PyAlgebraicTransaction())
    assert not P.can_commit_locally(tx(("k", "add", 1), ("r", "overwrite", 1)))


def test_commit_local_ticks_the_callers_clock_in_place() -> None:
    clock = PyVectorClock.with_node(PyNodeId("b"), 2)
    first = P.commit_local(tx(("k", "add", 1)), PyNodeId("a"), clock)
    second = P.commit_local(tx=tx(("k", "add", 1)), node_id=PyNodeId("a"), clock=clock)
    assert str(clock) == "[a:2, b:2]"
    assert str(first.clock) == "[a:1, b:2]" and second.clock == clock
    assert first.origin_node == PyNodeId("a")


def test_an_empty_transaction_is_refused_and_the_clock_kept() -> None:
    clock = PyVectorClock()
    with pytest.raises(ValueError, match="empty") as info:
        P.commit_local(PyAlgebraicTransaction(), PyNodeId("a"), clock)
    assert isinstance(info.value, _rhizo.InvalidTransactionError)
    assert clock.is_empty()


def test_operations_that_need_coordination_are_refused_naming_them() -> None:
    clock = PyVectorClock()
    t = tx(("r", "overwrite", 1), ("k", "add", 1), ("c", "conditional", 2))
    with pytest.raises(ValueError, match="coordination") as info:
        P.commit_local(t, PyNodeId("a"), clock)
    assert isinstance(info.value, _rhizo.RequiresCoordinationError)
    assert [(key[1], kind) for key, kind in info.value.operations] == [
        ("r", "OVERWRITE"),
        ("c", "CONDITIONAL"),
    ]
    assert clock.is_empty()


@pytest.mark.parametrize(
    ("key", "kind", "value"),
    [
        ("k", "union", 3),  # a number has no union (ours: refused when committed)
        ("k", "add", None),  # null is no operand
        ("k", "add", float("nan")),
        ("k" * 2000, "add", 1),  # a key longer than a row key may be
    ],
)
def test_operations_that_cannot_merge_are_refused_when_committed(
    key: str, kind: str, value: object
) -> None:
    clock = PyVectorClock()
    with pytest.raises(ValueError) as info:
        P.commit_local(tx((key, kind, value)), PyNodeId("a"), clock)
    assert isinstance(info.value, _rhizo.RhizoError)
    assert clock.is_empty()


def test_arguments_are_strictly_typed() -> None:
    with pytest.raises(TypeError):
        P.commit_local(tx(("k", "add", 1)), "a", PyVectorClock())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        P.commit_local(tx(("k", "add", 1)), PyNodeId("a"), {})  # type: ignore[arg-type]


def test_merge_updates_folds_each_key() -> None:
    a = commit(tx(("views", "add", 2), ("best", "max", 5), ("tags", "union", {"x"})), "a")
    b = commit(tx(("views", "add", 3), ("best", "max", 9), ("tags", "union", {"y"})), "b")
    merged = P.merge_updates(a, b)
    assert values(merged) == {"views": "5", "best": "9", "tags": '["x", "y"]'}
    assert str(merged.clock) == "[a:1, b:1]"
    assert merged.origin == "merged:a+b"
    assert values(P.merge_updates(update1=b, update2=a)) == values(merged)
    assert P.merge_updates(b, a).origin == "merged:b+a"


def test_merging_an_update_twice_counts_it_once() -> None:
    # The original counted an update merged with itself, or again with a merge holding it,
    # twice; ours merges each commit once.
    a = commit(tx(("views", "add", 2)), "a")
    b = commit(tx(("views", "add", 3)), "b")
    assert values(P.merge_updates(a, a)) == {"views": "2"}
    ab = P.merge_updates(a, b)
    assert values(P.merge_updates(ab, a)) == {"views": "5"}
    assert values(P.merge_updates(ab, ab)) == {"views": "5"}
    assert values(P.merge_all([a, b, a, ab])) == {"views": "5"}
    assert P.merge_updates(ab, a).origin == "merged:merged:a+b+a"


def test_repeated_keys_are_combined_by_a_merge() -> None:
    both = commit(tx(("k", "add", 1), ("k", "add", 2)))
    assert values(P.merge_updates(both, commit(tx(("other", "add", 1)), "b"))) == {
        "k": "3",
        "other": "1",
    }


def test_conflicting_kinds_on_a_key_are_refused() -> None:
    added = commit(tx(("k", "add", 1)), "a")
    maxed = commit(tx(("k", "max", 1)), "b")
    with pytest.raises(ValueError, match="do not merge") as info:
        P.merge_updates(added, maxed)
    assert isinstance(info.value, _rhizo.InvalidOperationError)
    as_float = commit(tx(("k", "add", 1.0)), "c")
    with pytest.raises(ValueError):
        P.merge_updates(added, as_float)


def test_an_overflowing_merge_is_refused() -> None:
    big = commit(tx(("k", "add", 2**63 - 1)), "a")
    one = commit(tx(("k", "add", 1)), "b")
    with pytest.raises(ValueError) as info:
        P.merge_updates(big, one)
    assert isinstance(info.value, _rhizo.ValueOverflowError)


def test_merge_all() -> None:
    updates = [commit(tx(("n", "add", i), ("m", "min", i)), f"n{i}") for i in range(1, 5)]
    merged = P.merge_all(updates)
    assert values(merged) == {"n": "10", "m": "1"}
    assert merged.origin == "merged:n1+n2+n3+n4"
    assert str(merged.clock) == "[n1:1, n2:1, n3:1, n4:1]"
    for order in itertools.permutations(updates):
        assert values(P.merge_all(updates=list(order))) == values(merged)
    assert values(P.merge_all(tuple(updates))) == values(merged)


def test_merge_all_of_one_returns_it_and_of_none_raises() -> None:
    both = commit(tx(("k", "add", 1), ("k", "add", 2)))
    alone = P.merge_all([both])
    assert [str(op.value) for op in alone.operations()] == ["1", "2"]  # not combined
    assert alone.origin_node == PyNodeId("a") and alone is not both
    with pytest.raises(ValueError, match="empty") as info:
        P.merge_all([])
    assert isinstance(info.value, _rhizo.InvalidTransactionError)
    with pytest.raises(TypeError):
        P.merge_all([both, "update"])  # type: ignore[list-item]
