"""`PySimulationConfig` as the roadmap's users set it."""

from __future__ import annotations

import pytest
from roadmap_helpers import add, cut_pair

from _rhizo import PyNetworkCondition, PySimulatedCluster, PySimulationConfig


def test_defaults_and_repr() -> None:
    config = PySimulationConfig()
    assert config.max_rounds == 100
    assert config.randomize_order is False
    assert repr(config) == "SimulationConfig(max_rounds=100, randomize_order=false)"
    # Ours: the network condition and the seed are settings too.
    assert repr(config.network_condition) == "NetworkCondition.Perfect"
    assert config.seed == 0


def test_settings_are_read_write() -> None:
    config = PySimulationConfig()
    config.max_rounds = 7
    config.randomize_order = True
    config.network_condition = PyNetworkCondition.delayed(2)
    config.seed = 11
    assert (config.max_rounds, config.randomize_order, config.seed) == (7, True, 11)
    assert repr(config.network_condition) == "NetworkCondition.Delayed(2)"
    assert repr(config) == "SimulationConfig(max_rounds=7, randomize_order=true)"


def test_settings_are_typed() -> None:
    config = PySimulationConfig()
    with pytest.raises(OverflowError):
        config.max_rounds = -1
    with pytest.raises(TypeError):
        config.max_rounds = 1.5  # type: ignore[assignment]
    with pytest.raises(TypeError):
        config.randomize_order = "yes"  # type: ignore[assignment]


def test_max_rounds_bounds_propagate_all() -> None:
    cluster = cut_pair(max_rounds=3)
    cluster.commit_on_node(0, add("views", 1))
    cluster.propagate_all()
    assert cluster.round == 3
    cluster.propagate_all()  # a fresh budget per call
    assert cluster.round == 6
    assert cluster.get_stats().rounds_to_converge is None


def test_randomize_order_changes_the_run_not_the_result() -> None:
    # The original stored randomize_order and always delivered in order; here it reorders.
    def run(randomize: bool) -> tuple[int, str]:
        config = PySimulationConfig()
        config.randomize_order = randomize
        cluster = PySimulatedCluster.with_config(4, config)
        for i in range(12):
            cluster.commit_on_node(i % 4, add("views", i))
            cluster.propagate_round()
        cluster.propagate_all()
        assert cluster.verify_convergence()
        return cluster.trace_hash, str(cluster.get_node_state(3, "views"))

    in_order, shuffled = run(False), run(True)
    assert in_order[0] != shuffled[0]
    assert in_order[1] == shuffled[1] == "66"


def test_the_cluster_takes_a_copy() -> None:
    config = PySimulationConfig()
    config.max_rounds = 2
    cluster = PySimulatedCluster.with_config(2, config)
    config.max_rounds = 50
    cluster.partition(0, 1)
    cluster.commit_on_node(0, add("k", 1))
    cluster.propagate_all()
    assert cluster.round == 2


def test_the_seed_decides_the_run() -> None:
    def run(seed: int) -> int:
        config = PySimulationConfig()
        config.seed = seed
        config.randomize_order = True
        cluster = PySimulatedCluster.with_config(3, config)
        for i in range(6):
            cluster.commit_on_node(i % 3, add("k", 1))
        cluster.propagate_all()
        return cluster.trace_hash

    assert run(4) == run(4)
    assert run(4) != run(5)
