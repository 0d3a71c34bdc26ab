"""`PyNetworkCondition` as the roadmap's users build it; here a config applies it."""

from __future__ import annotations

import pytest
from roadmap_helpers import add

from _rhizo import PyNetworkCondition, PySimulatedCluster, PySimulationConfig


def test_constructors_and_reprs() -> None:
    assert repr(PyNetworkCondition.perfect()) == "NetworkCondition.Perfect"
    assert repr(PyNetworkCondition.reordered()) == "NetworkCondition.Reordered"
    assert repr(PyNetworkCondition.delayed(3)) == "NetworkCondition.Delayed(3)"
    assert repr(PyNetworkCondition.delayed(rounds=0)) == "NetworkCondition.Delayed(0)"
    assert repr(PyNetworkCondition.partitioned()) == "NetworkCondition.Partitioned"


def test_no_constructor_and_identity_equality() -> None:
    with pytest.raises(TypeError):
        PyNetworkCondition()  # type: ignore[call-arg]
    assert PyNetworkCondition.perfect() != PyNetworkCondition.perfect()
    with pytest.raises(OverflowError):
        PyNetworkCondition.delayed(-1)


def run(condition: PyNetworkCondition, rounds: int) -> PySimulatedCluster:
    config = PySimulationConfig()
    config.network_condition = condition
    config.max_rounds = 30
    cluster = PySimulatedCluster.with_config(4, config)
    cluster.commit_on_node(0, add("views", 1))
    for _ in range(rounds):
        cluster.propagate_round()
    return cluster


def holders(cluster: PySimulatedCluster) -> list[bool]:
    return [cluster.get_node_state(n, "views") is not None for n in range(cluster.num_nodes)]


def test_each_condition_changes_the_run() -> None:
    # The original stored these and changed nothing; here each one shapes the network.
    assert holders(run(PyNetworkCondition.perfect(), 1)) == [True] * 4
    delayed = run(PyNetworkCondition.delayed(3), 2)
    assert holders(delayed) == [True, False, False, False]
    delayed.propagate_all()
    assert holders(delayed) == [True] * 4
    stats = delayed.get_stats()
    assert stats.rounds_to_converge is not None and stats.rounds_to_converge >= 3
    split = run(PyNetworkCondition.partitioned(), 5)
    assert holders(split) == [True, True, False, False]
    split.heal_partitions()
    split.propagate_all()
    assert holders(split) == [True] * 4
    perfect, reordered = (
        run(PyNetworkCondition.perfect(), 3),
        run(PyNetworkCondition.reordered(), 3),
    )
    assert perfect.trace_hash != reordered.trace_hash
    assert holders(reordered) == [True] * 4
