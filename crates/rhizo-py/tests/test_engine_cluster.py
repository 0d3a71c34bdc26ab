"""A simulated cluster of engines: transactions on nodes, partitions, crashes, Raft."""

from __future__ import annotations

from pathlib import Path

import pytest

import rhizo
from rhizo import EngineCluster, Schema, SimulationBuilder

SCHEMA = Schema(
    {
        "counters": {"value": ("ADD", "integer")},
        "users": {"tags": ("OR_SET", "string_set"), "email": ("REGISTER", "integer")},
    }
)


def raft(seed: int = 1) -> EngineCluster:
    return rhizo.simulate(3, seed=seed, schema=SCHEMA, backend="raft")


def test_three_nodes_converge_after_a_partition_heals() -> None:
    cluster = rhizo.simulate(3, seed=2, network="lossy")
    cluster.partition(0, 1)
    cluster.partition(0, 2)
    with cluster.node(0).transaction(mode="coordination_free") as tx:
        tx.increment("counters", "page_views", 1)
        tx.add_to_set("users", "user_123", "tags", "premium")
    with cluster.node("n1").transaction(mode="coordination_free") as tx:
        tx.increment("counters", "page_views", 2)
    cluster.run_for(100)
    assert cluster.node(0).read("counters", "page_views") == 1
    assert cluster.read(2, "counters", "page_views") == 2
    with pytest.raises(rhizo.ConvergenceError):
        cluster.verify_convergence()
    cluster.heal()
    assert cluster.run_until_quiescent(5_000) > 100
    assert cluster.is_quiescent()
    cluster.verify_convergence()
    for node in range(3):
        assert cluster.node(node).read("counters", "page_views") == 3
        assert cluster.node(node).read("users", "user_123", "tags") == {"premium"}
    assert len({cluster.fingerprint(n) for n in range(3)}) == 1
    stats = cluster.stats()
    assert stats["dropped_by_partition"] > 0
    assert cluster.faults() == []
    assert len(cluster) == 3 and [n.name for n in cluster.node_ids] == ["n0", "n1", "n2"]


def test_crash_and_restart_keep_acknowledged_commits(tmp_path: Path) -> None:
    builder = SimulationBuilder().nodes(3).seed(5)
    cluster = EngineCluster(builder, SCHEMA, root=tmp_path)
    assert Path(cluster.root) == tmp_path
    node = cluster.node(1)
    node.isolate()
    with node.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 7)
    assert tx.outcome is not None and tx.outcome.durable
    node.crash()  # before any peer heard of the commit
    assert node.crashed and cluster.is_crashed("n1")
    with pytest.raises(rhizo.NodeStateError):
        node.read("counters", "c")
    with pytest.raises(rhizo.NodeStateError):
        cluster.restart(0)
    node.restart()
    assert node.read("counters", "c") == 7
    cluster.heal()
    cluster.run_until_quiescent(5_000)
    assert [cluster.read(n, "counters", "c") for n in range(3)] == [7, 7, 7]
    assert cluster.stats()["crashes"] == 1 and cluster.stats()["restarts"] == 1
    del node, tx, cluster

    # The same root, reopened: every node recovers its directory.
    reopened = EngineCluster(SimulationBuilder().nodes(3).seed(6), SCHEMA, root=tmp_path)
    assert reopened.read(2, "counters", "c") == 7


def test_a_coordinated_put_through_raft_is_seen_on_every_node() -> None:
    cluster = raft()
    assert cluster.leader is None  # nobody has been elected yet
    # Committing waits for an election, then for the Raft log to decide.
    with cluster.node(1).transaction(mode="coordinated") as tx:
        tx.put("users", "u", "email", 42)
        tx.increment("counters", "c", 1)
    assert tx.outcome is not None and tx.outcome.path == "consensus"
    assert tx.outcome.sequence is not None
    assert cluster.leader is not None
    with cluster.node(2).transaction(mode="coordinated") as tx:
        tx.compare_and_set("users", "u", "email", 42, 43)
    cluster.run_until_quiescent(5_000)
    cluster.verify_convergence()
    for node in range(3):
        assert cluster.read(node, "users", "u", "email") == 43
        assert cluster.read(node, "counters", "c") == 1
        assert cluster.last_sequence(node) == tx.outcome.sequence
    with pytest.raises(rhizo.ConditionFailedError):
        with cluster.node(0).transaction(mode="coordinated") as tx:
            tx.compare_and_set("users", "u", "email", 42, 7)
    assert cluster.read(0, "users", "u", "email") == 43


def test_raft_keeps_acknowledged_writes_through_a_leader_crash() -> None:
    cluster = raft(seed=3)
    with cluster.transaction(0, mode="coordinated") as tx:
        tx.put("users", "u", "email", 1)
    leader = cluster.leader
    assert leader is not None
    cluster.crash(leader)
    cluster.run_for(500)  # the survivors elect a new leader
    assert cluster.leader not in (None, leader)
    survivor = (leader + 1) % 3
    with cluster.node(survivor).transaction(mode="auto") as tx:
        tx.put("users", "u", "email", 2)
    assert tx.outcome is not None and tx.outcome.path == "consensus"
    cluster.restart(leader)
    cluster.run_until_quiescent(5_000)
    assert [cluster.read(n, "users", "u", "email") for n in range(3)] == [2, 2, 2]


def test_the_single_node_backend_refuses_coordinated_transactions_in_a_cluster() -> None:
    cluster = rhizo.simulate(2)
    with pytest.raises(rhizo.ConfigError, match="Raft"):
        with cluster.node(0).transaction(mode="coordinated") as tx:
            tx.increment("counters", "page_views", 1)
    with cluster.node(0).transaction(mode="auto") as tx:
        tx.increment("counters", "page_views", 1)
    assert tx.outcome is not None and tx.outcome.path == "local"


def test_bad_arguments_raise_errors_of_the_hierarchy() -> None:
    cluster = rhizo.simulate(3)
    with pytest.raises(ValueError, match='"coordination_free", "coordinated", "auto"') as mode:
        cluster.node(0).transaction(mode="eventually")  # type: ignore[arg-type]
    assert isinstance(mode.value, rhizo.UnknownModeError)
    with pytest.raises(rhizo.UnknownModeError):
        cluster.transaction(0, mode="whenever")  # type: ignore[arg-type]
    with pytest.raises(rhizo.UnknownNodeError):
        cluster.node(7)
    with pytest.raises(rhizo.UnknownNodeError):
        cluster.crash("n9")
    with pytest.raises(rhizo.ConfigError, match='unknown backend "paxos"'):
        rhizo.simulate(3, backend="paxos")  # type: ignore[arg-type]
    with pytest.raises(rhizo.SimulationConfigError, match="valid conditions"):
        rhizo.simulate(3, network="sunny")  # type: ignore[arg-type]
    with pytest.raises(rhizo.SimulationConfigError):
        rhizo.simulate(0)
    with pytest.raises(rhizo.RequiresCoordinationError):
        with cluster.node(0).transaction(mode="coordination_free") as tx:
            tx.put("counters", "page_views", "value", 1)
    with pytest.raises(rhizo.UnknownCellError):
        cluster.read(0, "nope", "r")
    with pytest.raises(rhizo.DeadlineError):
        cluster.isolate(0)
        with cluster.node(0).transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 1)
        cluster.run_until_quiescent(50)


def test_an_aborted_transaction_changes_nothing() -> None:
    cluster = rhizo.simulate(3)
    with pytest.raises(RuntimeError):
        with cluster.node(0).transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 5)
            raise RuntimeError("changed my mind")
    assert tx.state == "aborted"
    assert cluster.node(0).read("counters", "page_views") == 0
