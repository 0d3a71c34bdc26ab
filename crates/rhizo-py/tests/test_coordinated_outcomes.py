"""What a coordinated transaction's client is told is what the log decided: a failed
compare-and-set is refused on every member, a refused transaction leaves no trace, read-modify-
writes are serializable, and the consensus log's name is not a node's."""

from __future__ import annotations

import sys
import threading

import pytest

import rhizo
from rhizo import Schema

REGISTERS = Schema({"users": {"email": ("REGISTER", "integer")}})
ACCOUNTS = Schema({"acct": {"bal": ("REGISTER", "integer")}})


def test_a_failed_compare_and_set_is_never_acknowledged_on_raft() -> None:
    # A follower may learn the entry of its own compare-and-set by anti-entropy before Raft
    # applies it there; it must still answer with the condition's failure.
    acknowledged = []
    for seed in range(15):
        cluster = rhizo.simulate(
            3, seed=seed, schema=REGISTERS, backend="raft", network="reordered"
        )
        with cluster.node(0).transaction(mode="coordinated") as tx:
            tx.put("users", "u", "email", 1)
        for k in range(10):
            leader = cluster.leader
            assert leader is not None
            follower = (leader + 1 + k % 2) % 3
            try:
                with cluster.node(follower).transaction(mode="coordinated") as tx:
                    tx.compare_and_set("users", "u", "email", 999, 2)
                acknowledged.append((seed, k))
            except rhizo.ConditionFailedError:
                pass
            cluster.run_for(50)
        assert [cluster.read(n, "users", "u", "email") for n in range(3)] == [1, 1, 1]
    assert acknowledged == []


def test_a_refused_coordinated_transaction_leaves_no_trace() -> None:
    schema = Schema({"m": {"f": ("ADD", "float"), "n": ("ADD", "integer")}})
    engine = rhizo.open(None, node_id="a", schema=schema)

    def coordinated(column: str, amount: float) -> int | None:
        with engine.transaction(mode="coordinated") as tx:
            tx.increment_column("m", "r", column, amount)
        assert tx.outcome is not None
        return tx.outcome.sequence

    first = coordinated("f", 1e308)
    with pytest.raises(rhizo.ValueOverflowError):
        coordinated("f", 1e308)  # leaves the finite range: refused
    # The refusal consumed nothing: later coordinated transactions take the next index.
    assert first is not None
    assert [coordinated("n", 1) for _ in range(3)] == [first + 1, first + 2, first + 3]
    assert engine.read("m", "r", "n") == 3
    assert engine.read("m", "r", "f") == 1e308


def test_the_consensus_origin_is_refused_as_a_node_id() -> None:
    with pytest.raises(rhizo.ConfigError, match="reserved"):
        rhizo.open(None, node_id="consensus-log")


def test_interleaved_read_modify_writes_conflict_instead_of_losing_an_update() -> None:
    engine = rhizo.open(None, schema=ACCOUNTS)
    with engine.transaction() as tx:
        tx.put("acct", "a", "bal", 0)
    first, second = engine.transaction(), engine.transaction()
    seen_first = first.read("acct", "a", "bal")
    seen_second = second.read("acct", "a", "bal")
    first.put("acct", "a", "bal", seen_first + 10)
    second.put("acct", "a", "bal", seen_second + 20)
    first.commit()
    with pytest.raises(rhizo.ReadConflictError):
        second.commit()
    assert engine.read("acct", "a", "bal") == 10


def test_threads_read_modify_writing_one_register_count_every_increment() -> None:
    engine = rhizo.open(None, schema=ACCOUNTS)
    with engine.transaction() as tx:
        tx.put("acct", "a", "bal", 0)
    # Switch threads as often as possible, so that transactions interleave.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def increment(times: int) -> None:
        done = 0
        while done < times:
            try:
                with engine.transaction() as tx:
                    value = tx.read("acct", "a", "bal")
                    tx.put("acct", "a", "bal", value + 1)
                done += 1
            except rhizo.ReadConflictError:
                continue  # another thread wrote in between: read again

    try:
        threads = [threading.Thread(target=increment, args=(500,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert engine.read("acct", "a", "bal") == 2000
