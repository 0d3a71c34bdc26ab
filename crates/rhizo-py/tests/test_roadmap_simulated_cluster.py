"""`PySimulatedCluster` as the roadmap's users drive it: commits, rounds, partitions, reads."""

from __future__ import annotations

import pytest
from roadmap_helpers import add, cut_pair, transaction

import _rhizo
from _rhizo import (
    PyAlgebraicTransaction,
    PyNodeId,
    PySimulatedCluster,
    PySimulationConfig,
    PyVersionedUpdate,
)


def everywhere(cluster: PySimulatedCluster, key: str) -> list[str | None]:
    values = [cluster.get_node_state(n, key) for n in range(cluster.num_nodes)]
    return [None if v is None else str(v) for v in values]


def test_a_fresh_cluster() -> None:
    cluster = PySimulatedCluster(3)
    assert cluster.num_nodes == 3 and cluster.round == 0
    assert cluster.all_keys() == []
    assert cluster.verify_convergence()
    assert repr(cluster) == "SimulatedCluster(nodes=3, round=0, converged=true)"
    assert PySimulatedCluster(num_nodes=1).num_nodes == 1


def test_with_config() -> None:
    config = PySimulationConfig()
    config.max_rounds = 4
    cluster = PySimulatedCluster.with_config(num_nodes=2, config=config)
    assert cluster.num_nodes == 2


def test_commit_on_node_returns_the_update_and_applies_it_locally() -> None:
    cluster = PySimulatedCluster(3)
    update = cluster.commit_on_node(1, transaction(("views", "add", 5), ("best", "max", 2)))
    assert isinstance(update, PyVersionedUpdate)
    assert update.origin_node == PyNodeId("n1")
    assert str(update.clock) == "[n1:1]"
    assert [op.key for op in update.operations()] == ["views", "best"]
    assert everywhere(cluster, "views") == [None, "5", None]
    again = cluster.commit_on_node(node_index=1, tx=add("views", 1))
    assert str(again.clock) == "[n1:2]"
    assert update.compare(again).order == "before"


def test_propagate_round_and_all() -> None:
    cluster = PySimulatedCluster(4)
    for node in range(4):
        cluster.commit_on_node(
            node, transaction(("views", "add", node + 1), ("seen", "union", {f"u{node}"}))
        )
    cluster.propagate_round()
    assert cluster.round == 1
    cluster.propagate_all()
    assert cluster.verify_convergence()
    assert everywhere(cluster, "views") == ["10"] * 4
    assert everywhere(cluster, "seen") == ['["u0", "u1", "u2", "u3"]'] * 4
    assert cluster.get_stats().rounds_to_converge == cluster.round
    assert cluster.all_keys() == ["seen", "views"]
    assert repr(cluster) == f"SimulatedCluster(nodes=4, round={cluster.round}, converged=true)"


def test_a_partition_is_bypassed_through_a_relay() -> None:
    cluster = PySimulatedCluster(3)
    cluster.partition(0, 1)
    cluster.partition(node_a=0, node_b=1)  # again: allowed
    cluster.commit_on_node(0, add("views", 1))
    cluster.propagate_all()
    assert everywhere(cluster, "views") == ["1"] * 3


def test_a_partition_holds_until_healed_then_converges_without_requeue() -> None:
    cluster = cut_pair(max_rounds=5)
    cluster.commit_on_node(0, add("views", 1))
    cluster.commit_on_node(1, add("views", 2))
    cluster.propagate_all()
    assert not cluster.verify_convergence()
    assert everywhere(cluster, "views") == ["1", "2"]
    assert "converged=false" in repr(cluster)
    cluster.heal_partitions()
    cluster.propagate_all()  # ours: anti-entropy finds what was lost; no requeue needed
    assert everywhere(cluster, "views") == ["3", "3"]


def test_requeue_all_updates_sends_at_once() -> None:
    cluster = PySimulatedCluster(3)
    cluster.commit_on_node(0, add("views", 1))
    sent = cluster.get_stats().messages_sent
    assert cluster.requeue_all_updates() is None
    assert cluster.get_stats().messages_sent > sent
    cluster.propagate_all()
    assert everywhere(cluster, "views") == ["1"] * 3


def test_verify_convergence_compares_values() -> None:
    cluster = PySimulatedCluster(2)
    cluster.commit_on_node(0, add("views", 1))
    assert cluster.verify_convergence() is False  # a key missing somewhere is a difference
    cluster.propagate_all()
    assert cluster.verify_convergence() is True


def test_get_node_state_returns_a_copy_or_none() -> None:
    cluster = PySimulatedCluster(2)
    cluster.commit_on_node(0, add("views", 4))
    value = cluster.get_node_state(0, "views")
    assert value is not None and value.type_name() == "Integer"
    assert value is not cluster.get_node_state(node_index=0, key="views")
    assert cluster.get_node_state(0, "absent") is None


def test_a_key_written_two_ways_reads_as_an_error() -> None:
    cluster = PySimulatedCluster(2)
    cluster.commit_on_node(0, add("k", 1))
    cluster.commit_on_node(1, transaction(("k", "max", 5)))
    cluster.propagate_all()
    assert cluster.verify_convergence()  # every node holds both: nothing diverges
    for node in range(2):
        with pytest.raises(ValueError, match="do not merge") as info:
            cluster.get_node_state(node, "k")
        assert isinstance(info.value, _rhizo.InvalidOperationError)


def test_debug_state_lists_nodes() -> None:
    cluster = PySimulatedCluster(2)
    cluster.commit_on_node(0, transaction(("views", "add", 3), ("tags", "union", {"x"})))
    lines = cluster.debug_state().splitlines()
    assert lines == ['Node 0: {"tags": (UNION, {"x"}), "views": (ADD, 3)}', "Node 1: {}"]


def test_refused_commits_raise_value_errors_and_change_nothing() -> None:
    cluster = PySimulatedCluster(2)
    with pytest.raises(ValueError) as empty:
        cluster.commit_on_node(0, PyAlgebraicTransaction())
    assert isinstance(empty.value, _rhizo.InvalidTransactionError)
    with pytest.raises(ValueError) as coordinated:
        cluster.commit_on_node(0, transaction(("k", "overwrite", 1)))
    assert isinstance(coordinated.value, _rhizo.RequiresCoordinationError)
    assert coordinated.value.node == "n0"
    with pytest.raises(ValueError):
        cluster.commit_on_node(0, transaction(("k", "union", 1)))
    assert cluster.get_stats().operations_committed == 0
    assert cluster.all_keys() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.commit_on_node(2, add("k", 1)),
        lambda c: c.partition(0, 2),
        lambda c: c.get_node_state(5, "k"),
    ],
)
def test_an_index_out_of_range_raises_index_error(call: object) -> None:
    # The original panicked; ours raises IndexError (also our typed UnknownNodeError).
    with pytest.raises(IndexError) as info:
        call(PySimulatedCluster(2))  # type: ignore[operator]
    assert isinstance(info.value, _rhizo.UnknownNodeError)


def test_indices_are_unsigned_integers() -> None:
    cluster = PySimulatedCluster(2)
    with pytest.raises(OverflowError):
        cluster.partition(-1, 0)
    with pytest.raises(TypeError):
        cluster.get_node_state(0.5, "k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cluster.commit_on_node(0, "tx")  # type: ignore[arg-type]


def test_zero_nodes_are_refused() -> None:
    # Ours: a cluster has at least one node.
    with pytest.raises(ValueError) as info:
        PySimulatedCluster(0)
    assert isinstance(info.value, _rhizo.SimulationConfigError)
