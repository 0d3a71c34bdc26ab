"""`PySimulationBuilder` as the roadmap's users script a scenario with it."""

from __future__ import annotations

import pytest
from roadmap_helpers import add, transaction

import _rhizo
from _rhizo import (
    PyAlgebraicOperation,
    PyAlgebraicValue,
    PyNetworkCondition,
    PyOpType,
    PySimulatedCluster,
    PySimulationBuilder,
)


def test_setters_return_none_and_repr_counts() -> None:
    builder = PySimulationBuilder(3)
    assert repr(builder) == "SimulationBuilder(nodes=3, ops=0, max_rounds=100)"
    assert builder.set_max_rounds(20) is None
    assert builder.set_reordering(True) is None
    assert builder.add_partition(0, 1) is None
    assert builder.add_operation(0, add("views", 1)) is None
    assert builder.add_operation(node=2, tx=add("views", 2)) is None
    assert repr(builder) == "SimulationBuilder(nodes=3, ops=2, max_rounds=20)"
    assert (
        repr(PySimulationBuilder(num_nodes=1))
        == "SimulationBuilder(nodes=1, ops=0, max_rounds=100)"
    )


def test_run_commits_in_order_then_propagates() -> None:
    builder = PySimulationBuilder(3)
    builder.add_operation(0, transaction(("views", "add", 2), ("best", "max", 4)))
    builder.add_operation(2, transaction(("views", "add", 3), ("best", "max", 9)))
    cluster = builder.run()
    assert isinstance(cluster, PySimulatedCluster)
    assert cluster.verify_convergence()
    assert [str(cluster.get_node_state(n, "views")) for n in range(3)] == ["5"] * 3
    assert str(cluster.get_node_state(1, "best")) == "9"
    stats = cluster.get_stats()
    assert stats.operations_committed == 4
    assert stats.rounds_to_converge == cluster.round


def test_each_run_is_an_independent_cluster() -> None:
    builder = PySimulationBuilder(2)
    builder.add_operation(0, add("views", 1))
    first, second = builder.run(), builder.run()
    assert first is not second
    first.commit_on_node(1, add("views", 10))
    assert str(second.get_node_state(1, "views")) == "1"
    assert repr(builder) == "SimulationBuilder(nodes=2, ops=1, max_rounds=100)"


def test_the_builder_keeps_a_copy_of_each_transaction() -> None:
    builder = PySimulationBuilder(2)
    tx = add("views", 1)
    builder.add_operation(0, tx)
    tx.add_operation(PyAlgebraicOperation("later", PyOpType("add"), PyAlgebraicValue(1)))
    assert builder.run().all_keys() == ["views"]


def test_partitions_are_in_place_from_the_start() -> None:
    builder = PySimulationBuilder(2)
    builder.set_max_rounds(5)
    builder.add_partition(0, 1)
    builder.add_operation(0, add("views", 1))
    cluster = builder.run()
    assert cluster.round == 5 and not cluster.verify_convergence()
    assert cluster.get_node_state(1, "views") is None
    cluster.heal_partitions()
    cluster.propagate_all()
    assert str(cluster.get_node_state(1, "views")) == "1"


def test_reordering_and_network_condition_reach_the_cluster() -> None:
    def trace(configure: object) -> int:
        builder = PySimulationBuilder(3)
        configure(builder)  # type: ignore[operator]
        for i in range(6):
            builder.add_operation(i % 3, add("k", i))
        cluster = builder.run()
        assert str(cluster.get_node_state(0, "k")) == "15"
        return cluster.trace_hash

    plain = trace(lambda b: None)
    assert trace(lambda b: b.set_reordering(True)) != plain
    assert trace(lambda b: b.set_network_condition(PyNetworkCondition.delayed(2))) != plain


def test_the_first_refused_commit_raises_and_returns_no_cluster() -> None:
    builder = PySimulationBuilder(2)
    builder.add_operation(0, add("views", 1))
    builder.add_operation(1, transaction(("k", "overwrite", 1)))
    with pytest.raises(ValueError) as info:
        builder.run()
    assert isinstance(info.value, _rhizo.RequiresCoordinationError)
    bad_index = PySimulationBuilder(2)
    bad_index.add_operation(5, add("views", 1))
    with pytest.raises(IndexError):
        bad_index.run()
    bad_partition = PySimulationBuilder(2)
    bad_partition.add_partition(0, 9)
    with pytest.raises(IndexError):
        bad_partition.run()
