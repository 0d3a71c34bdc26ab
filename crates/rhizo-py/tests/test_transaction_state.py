"""What a transaction says after a failed commit, an empty `with` block, and the errors and
values Python code sees: partial batches, integers out of range, numbers that are not
`int`/`float`, and `repr`."""

from __future__ import annotations

import pytest

import rhizo

SCHEMA = rhizo.Schema(
    {
        "counters": {"value": ("ADD", "integer")},
        "sums": {"total": ("ADD", "float")},
        "flags": {"on": ("MAX", "boolean")},
        "tags": {"ids": ("UNION", "int_set")},
        "profiles": {"name": ("REGISTER", "integer")},
    }
)


@pytest.fixture
def engine() -> rhizo.Engine:
    return rhizo.open(None, "n0", schema=SCHEMA)


def test_a_refused_commit_leaves_the_transaction_failed_and_not_retryable(
    engine: rhizo.Engine,
) -> None:
    tx = engine.transaction(mode="coordination_free")
    tx.increment("counters", "a", 1.5)
    with pytest.raises(rhizo.TypeMismatchError) as refused:
        tx.commit()
    assert refused.value.retryable is False
    assert (tx.state, tx.retryable, tx.outcome) == ("failed", False, None)
    with pytest.raises(rhizo.TransactionFinishedError, match="already failed; start a new one"):
        tx.commit()
    assert engine.read("counters", "a") == 0


def test_a_read_conflict_fails_the_transaction_as_retryable(engine: rhizo.Engine) -> None:
    engine.transaction().put("profiles", "p", "name", 1).commit()
    tx = engine.transaction()
    assert tx.read("profiles", "p", "name") == 1
    engine.transaction().put("profiles", "p", "name", 2).commit()
    tx.put("profiles", "p", "name", 3)
    with pytest.raises(rhizo.ReadConflictError) as conflict:
        tx.commit()
    assert conflict.value.retryable is True
    assert (tx.state, tx.retryable) == ("failed", True)
    assert engine.read("profiles", "p", "name") == 2


def test_no_raft_leader_fails_the_transaction_as_retryable() -> None:
    cluster = rhizo.simulate(3, seed=1, schema=SCHEMA, backend="raft")
    cluster.isolate(0)  # it can never learn of a leader
    with pytest.raises(rhizo.RhizoError) as no_leader:
        with cluster.node(0).transaction() as tx:
            tx.put("profiles", "p", "name", 1)
    assert no_leader.value.kind == "NoLeader"
    assert (tx.state, tx.retryable, no_leader.value.retryable) == ("failed", True, True)


def test_a_commit_on_a_closed_engine_fails() -> None:
    engine = rhizo.open(None)
    tx = engine.transaction(mode="coordination_free").increment("counters", "z", 1)
    engine.close()
    with pytest.raises(rhizo.StorageError, match="closed"):
        tx.commit()
    assert (tx.state, tx.retryable) == ("failed", False)


def test_an_empty_with_block_commits_nothing_and_raises_nothing(engine: rhizo.Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        pass
    assert (tx.state, tx.outcome, tx.retryable) == ("empty", None, False)
    assert engine.clock.is_empty()
    with pytest.raises(rhizo.TransactionFinishedError, match="nothing to commit"):
        tx.increment("counters", "c", 1)
    # An explicit commit of nothing is still a mistake, and says so.
    explicit = engine.transaction(mode="coordination_free")
    with pytest.raises(rhizo.InvalidTransactionError) as empty:
        explicit.commit()
    assert (empty.value.kind, explicit.state) == ("EmptyTransaction", "failed")


def test_outcome_repr_is_python(engine: rhizo.Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 1)
    assert repr(tx.outcome) == (
        "PyCommitOutcome(dot=PyDot(\"n0\", 1), sequence=None, durable=False, path='local')"
    )
    coordinated = engine.transaction().put("profiles", "p", "name", 1).commit()
    assert "sequence=1," in repr(coordinated)
    assert "Some(" not in repr(coordinated)
    assert repr(tx) == "PyTransaction(mode='coordination_free', 0 operations, committed)"


def test_a_stopped_batch_says_where_to_resume_exactly_once(engine: rhizo.Engine) -> None:
    ops = [("increment", "counters", "c", "value", 1)] * 5
    ops += [("increment", "counters", "c", "value", 1.5)]
    ops += [("increment", "counters", "c", "value", 1)] * 5
    with pytest.raises(rhizo.TypeMismatchError) as stopped:
        engine.commit_batch(ops, ops_per_transaction=2)
    err = stopped.value
    # Transactions of 2: [0,1] [2,3] committed, [4,5] refused (5 is the float).
    assert (err.committed, err.failed_at, err.retryable) == (2, 4, False)
    assert engine.read("counters", "c") == 4
    rest = ops[err.failed_at :]
    rest[1] = ("increment", "counters", "c", "value", 1)
    assert engine.commit_batch(rest, ops_per_transaction=2) == 4
    assert engine.read("counters", "c") == 11  # every operation applied once
    other = engine.commit_batch
    for size in (0, -1):
        with pytest.raises(rhizo.ConfigError):
            other([("increment", "counters", "c", "value", 1)], ops_per_transaction=size)
    # Errors that are not a batch's carry no position.
    with pytest.raises(rhizo.TypeMismatchError) as single:
        engine.transaction(mode="coordination_free").increment("counters", "c", 0.5).commit()
    assert (single.value.committed, single.value.failed_at) == (None, None)


def test_integers_beyond_64_bits_raise_value_overflow_naming_the_cell(
    engine: rhizo.Engine,
) -> None:
    tx = engine.transaction(mode="coordination_free")
    with pytest.raises(rhizo.ValueOverflowError, match=r'counters\["big"\]\.value') as big:
        tx.increment("counters", "big", 2**64)
    assert big.value.key == ("counters", "big", "value")
    assert isinstance(big.value, OverflowError)
    with pytest.raises(rhizo.ValueOverflowError) as in_set:
        tx.union("tags", "t", "ids", [1, -(2**63) - 1])
    assert in_set.value.key == ("tags", "t", "ids")
    with pytest.raises(rhizo.ValueOverflowError) as in_batch:
        engine.commit_batch([("increment", "counters", "b", "value", 1 << 70)])
    assert in_batch.value.key == ("counters", "b", "value")
    assert len(tx) == 0 and engine.clock.is_empty()


class Index:
    """An integer-like number that is not an `int` (as `numpy.int64` is)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class Real:
    """A float-like number that is not a `float` (as `numpy.float32` is)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


class ArrayScalar:
    """A zero-dimensional array scalar as numpy's are: `dtype`, `ndim == 0`, `item()`."""

    ndim = 0

    def __init__(self, value: object, dtype: str) -> None:
        self.value = value
        self.dtype = dtype

    def item(self) -> object:
        return self.value


def test_numbers_that_are_not_int_or_float_are_accepted(engine: rhizo.Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", Index(3))
        tx.increment("counters", "c", ArrayScalar(4, "int64"))
        tx.increment_column("sums", "s", "total", Real(1.5))
        tx.increment_column("sums", "s", "total", ArrayScalar(0.25, "float32"))
        tx.max("flags", "f", "on", ArrayScalar(True, "bool"))
        tx.union("tags", "t", "ids", [Index(5), ArrayScalar(6, "uint8")])
        tx.union("tags", "t", "ids", Index(7))
    assert engine.read("counters", "c") == 7
    assert engine.read("sums", "s", "total") == 1.75
    assert engine.read("flags", "f", "on") is True
    assert engine.read("tags", "t", "ids") == {5, 6, 7}
    assert engine.commit_batch([("increment", "counters", "c", "value", Index(1))]) == 1
    with pytest.raises(rhizo.ValueOverflowError) as big:
        engine.transaction().increment("counters", "c", ArrayScalar(2**63, "uint64"))
    assert big.value.key == ("counters", "c", "value")
    with pytest.raises(TypeError, match="__index__ or __float__"):
        engine.transaction().increment("counters", "c", object())
