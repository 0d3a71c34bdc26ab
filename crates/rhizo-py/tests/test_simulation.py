"""A simulated cluster of replicas: commits, partitions, crashes and convergence."""

from __future__ import annotations

import pytest

import rhizo
from rhizo import AlgebraicTransaction, Schema, SimulatedCluster, SimulationBuilder

SCHEMA = Schema(
    {
        "counters": {"value": ("ADD", "integer")},
        "users": {"tags": ("OR_SET", "string_set")},
        "scores": {"best": ("MAX", "integer")},
    }
)


def increment(amount: int, row: str = "page_views") -> AlgebraicTransaction:
    return AlgebraicTransaction().increment("counters", row, "value", amount)


def cluster(nodes: int = 3, seed: int = 1) -> SimulatedCluster:
    return SimulationBuilder().nodes(nodes).seed(seed).build(SCHEMA)


def test_builder_defaults_and_chaining() -> None:
    builder = SimulationBuilder().nodes(5).seed(9).latency_lan().loss_rate(0.1)
    assert builder.configured_nodes == 5
    assert builder.configured_seed == 9
    built = builder.build(SCHEMA)
    assert len(built) == 5
    assert [n.name for n in built.node_ids] == ["n0", "n1", "n2", "n3", "n4"]
    assert built.seed == 9
    assert built.now_ms == 0.0


def test_bad_settings_raise_simulation_config_error() -> None:
    with pytest.raises(rhizo.SimulationConfigError) as info:
        SimulationBuilder().nodes(0).build(SCHEMA)
    assert info.value.kind == "NoNodes"
    with pytest.raises(rhizo.SimulationConfigError) as rate:
        SimulationBuilder().loss_rate(1.5).build(SCHEMA)
    assert rate.value.kind == "InvalidRate"
    assert isinstance(rate.value, ValueError)
    with pytest.raises(rhizo.SimulationConfigError):
        SimulationBuilder().gossip_push_pull(0).build(SCHEMA)
    with pytest.raises(ValueError, match="valid conditions"):
        SimulationBuilder().network_condition("sunny")
    with pytest.raises(rhizo.SimulationConfigError) as duration:
        SimulationBuilder().latency_constant(-1.0)
    assert duration.value.kind == "InvalidDuration"


def test_commit_on_node_returns_its_dot_and_is_local_at_once() -> None:
    c = cluster()
    dot = c.commit_on_node(0, increment(5))
    assert (dot.node.name, dot.counter) == ("n0", 1)
    assert c.read(0, "counters", "page_views", "value") == 5
    assert c.read("n1", "counters", "page_views", "value") == 0  # not delivered yet


def test_three_nodes_converge() -> None:
    c = cluster()
    for i, node in enumerate([0, 1, 2, 0]):
        c.commit_on_node(node, increment(i + 1))
    c.commit_on_node(1, AlgebraicTransaction().add_to_set("users", "u", "tags", "premium"))
    c.run_until_quiescent(1_000)
    c.verify_convergence()
    assert c.is_converged()
    for node in range(3):
        assert c.read(node, "counters", "page_views", "value") == 10
        assert c.read(node, "users", "u", "tags") == {"premium"}


def test_refused_commit_raises_the_replica_error_naming_the_node() -> None:
    c = cluster()
    with pytest.raises(rhizo.TypeMismatchError) as info:
        c.commit_on_node(2, increment(1).increment("counters", "x", "value", 1.5))
    assert info.value.node == "n2"
    assert c.clock(2).is_empty()


def test_unknown_node_raises_unknown_node_error() -> None:
    c = cluster()
    with pytest.raises(rhizo.UnknownNodeError):
        c.commit_on_node(7, increment(1))
    with pytest.raises(rhizo.UnknownNodeError):
        c.crash("n9")
    with pytest.raises(TypeError):
        c.crash(1.5)  # type: ignore[arg-type]


def test_partition_blocks_and_heal_converges() -> None:
    c = cluster()
    c.partition(0, 1)
    c.partition(0, 2)
    assert c.is_link_blocked(0, 1) and c.is_link_blocked(1, 0)
    c.commit_on_node(0, increment(4))
    c.commit_on_node(1, increment(6))
    c.run_for(200)
    assert c.read(1, "counters", "page_views", "value") == 6  # n0's update cannot arrive
    assert c.stats()["dropped_by_partition"] > 0
    c.heal()
    c.run_until_quiescent(2_000)
    c.verify_convergence()
    assert c.read(1, "counters", "page_views", "value") == 10


def test_crash_and_restart_keep_acknowledged_commits() -> None:
    c = cluster()
    c.commit_on_node(2, increment(3))
    c.crash(2)
    assert c.is_crashed(2)
    with pytest.raises(rhizo.NodeStateError) as info:
        c.commit_on_node(2, increment(1))
    assert info.value.kind == "NodeCrashed"
    c.commit_on_node(0, increment(4))
    c.restart(2)
    assert not c.is_crashed(2)
    with pytest.raises(rhizo.NodeStateError):
        c.restart(2)
    c.run_until_quiescent(2_000)
    c.verify_convergence()
    assert c.read(0, "counters", "page_views", "value") == 7
    assert c.stats()["crashes"] == 1 and c.stats()["restarts"] == 1
    assert c.node_faults() == []


def test_same_seed_same_trace() -> None:
    def run(seed: int) -> tuple[int, float]:
        c = SimulationBuilder().nodes(4).seed(seed).network_condition("chaos").build(SCHEMA)
        for i in range(20):
            c.commit_on_node(i % 4, increment(i))
        at = c.run_until_quiescent(60_000)
        c.verify_convergence()
        return c.trace_hash, at

    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize(
    "condition",
    ["perfect", "reordered", "delayed", "partitioned", "lossy", "duplicating", "chaos"],
)
def test_every_network_condition_converges(condition: str) -> None:
    c = SimulationBuilder().nodes(4).seed(3).network_condition(condition).build(SCHEMA)
    for i in range(12):
        c.commit_on_node(i % 4, increment(1).max("scores", "s", "best", i))
    if condition == "partitioned":
        c.run_for(100)
        assert not c.is_converged()
        c.heal()
    c.run_until_quiescent(120_000)
    c.verify_convergence()
    assert {c.read(n, "counters", "page_views", "value") for n in range(4)} == {12}
    assert c.read(3, "scores", "s", "best") == 11


def test_run_until_quiescent_deadline() -> None:
    c = SimulationBuilder().nodes(3).latency_constant(500).build(SCHEMA)
    c.commit_on_node(0, increment(1))
    with pytest.raises(rhizo.DeadlineError) as info:
        c.run_until_quiescent(10)
    assert info.value.kind == "NotQuiescent"
    assert isinstance(info.value, TimeoutError)


def test_get_node_state_and_stats() -> None:
    c = cluster()
    c.commit_on_node(0, increment(2))
    c.run_until_quiescent(1_000)
    state = c.get_node_state(1)
    assert state["node"] == rhizo.NodeId("n1")
    assert state["clock"].to_dict() == {"n0": 1}
    assert state["values"] == {("counters", "page_views", "value"): 2}
    assert state["fingerprint"] == c.get_node_state(2)["fingerprint"]
    stats = c.stats()
    assert stats["messages_sent"] >= 2
    assert stats["messages_sent"] + stats["duplicated"] >= stats["messages_delivered"]
    assert c.in_flight == 0


def test_run_until_converged_with_push_pull_gossip() -> None:
    c = SimulationBuilder().nodes(8).seed(2).gossip_push_pull(2).latency_lan().build(SCHEMA)
    for n in range(8):
        c.commit_on_node(n, increment(n))
    at = c.run_until_converged(10_000, 0.5)
    assert at > 0
    c.verify_convergence()
    assert c.read(5, "counters", "page_views", "value") == sum(range(8))


def test_step_and_run_for_advance_virtual_time() -> None:
    c = cluster()
    c.commit_on_node(0, increment(1))
    assert c.step()
    c.run_for(25)
    assert c.now_ms >= 25
    assert "3 nodes" in repr(c)
