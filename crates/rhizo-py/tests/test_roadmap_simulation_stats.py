"""`PySimulationStats` as the roadmap's users read it: a snapshot of a cluster's counters."""

from __future__ import annotations

import pytest
from roadmap_helpers import add, transaction

from _rhizo import PySimulatedCluster, PySimulationStats


def test_a_fresh_cluster() -> None:
    stats = PySimulatedCluster(3).get_stats()
    assert (stats.messages_sent, stats.messages_delivered, stats.messages_dropped) == (0, 0, 0)
    assert stats.rounds_to_converge is None
    assert stats.operations_committed == 0
    assert repr(stats) == "SimulationStats(sent=0, delivered=0, dropped=0, converged=None, ops=0)"


def test_counters_after_a_run_and_the_snapshot_does_not_change() -> None:
    cluster = PySimulatedCluster(3)
    cluster.commit_on_node(0, transaction(("a", "add", 1), ("b", "max", 2)))
    cluster.commit_on_node(1, add("a", 1))
    before = cluster.get_stats()
    assert before.operations_committed == 3  # operations, not transactions
    cluster.propagate_all()
    after = cluster.get_stats()
    assert after.messages_sent > 0
    assert after.messages_delivered == after.messages_sent
    assert after.rounds_to_converge == cluster.round
    assert repr(after).endswith(f"converged=Some({cluster.round}), ops=3)")
    assert (before.messages_sent, before.rounds_to_converge) == (0, None)


def test_dropped_messages_are_counted() -> None:
    cluster = PySimulatedCluster(2)
    cluster.partition(0, 1)
    cluster.commit_on_node(0, add("a", 1))
    cluster.propagate_round()
    assert cluster.get_stats().messages_dropped > 0


def test_read_only_without_constructor() -> None:
    with pytest.raises(TypeError):
        PySimulationStats()  # type: ignore[call-arg]
    stats = PySimulatedCluster(1).get_stats()
    with pytest.raises(AttributeError):
        stats.messages_sent = 3  # type: ignore[misc]
