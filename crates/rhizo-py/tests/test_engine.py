"""The embedded engine: `engine.transaction(...)` as a context manager, reads, batches,
durability across reopening, replication between engines, and errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import rhizo
from rhizo import Engine, MergeType, Schema, ValueType

SCHEMA = Schema(
    {
        "counters": {"value": ("ADD", "integer")},
        "users": {"tags": ("OR_SET", "string_set")},
        "scores": {"best": ("MAX", "integer"), "low": ("MIN", "float")},
        "money": {"balance": ("ADD", "decimal(2)")},
        "flags": {"on": ("MAX", "boolean")},
        "profiles": {"name": ("REGISTER", "string_set")},
    }
)


@pytest.fixture
def engine() -> Engine:
    return rhizo.open(None, "n0", schema=SCHEMA)


def test_the_roadmap_example_verbatim() -> None:
    engine = rhizo.open(None)  # the default schema declares the roadmap's tables
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "page_views", 1)
        tx.add_to_set("users", "user_123", "tags", "premium")
    assert engine.read("counters", "page_views") == 1
    assert engine.read("users", "user_123", "tags") == {"premium"}
    assert tx.state == "committed"
    assert tx.outcome is not None and tx.outcome.dot is not None
    assert tx.outcome.dot.counter == 1
    assert tx.outcome.path == "local"


def test_reads_return_python_values(engine: Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 5)
        tx.max("scores", "s", "best", 7)
        tx.min("scores", "s", "low", 0.5)
        tx.increment_column("money", "m", "balance", Decimal("1.25"))
        tx.max("flags", "f", "on", True)
        tx.add_to_set("users", "u", "tags", ["a", "b"])
    assert engine.read("counters", "c") == 5
    assert engine.read("scores", "s", "best") == 7
    assert engine.read("scores", "s", "low") == 0.5
    assert engine.read("money", "m", "balance") == Decimal("1.25")
    assert engine.read("flags", "f", "on") is True
    assert engine.read("users", "u", "tags") == {"a", "b"}
    assert engine.read("scores", "never", "best") is None  # MAX of nothing
    assert engine.read("counters", "never") == 0  # identity of a sum


def test_default_mode_is_coordinated(engine: Engine) -> None:
    tx = engine.transaction()
    assert tx.mode == "coordinated"
    tx.put("profiles", "p", "name", {"ann"}).increment("counters", "c", 1)
    outcome = tx.commit()
    assert outcome.sequence == 1
    assert outcome.path == "consensus"
    assert engine.read("profiles", "p", "name") == {"ann"}
    assert engine.read("counters", "c") == 1
    assert engine.last_sequence == 1


def test_exception_in_block_aborts_and_propagates(engine: Engine) -> None:
    with pytest.raises(KeyError), engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 100)
        raise KeyError("boom")
    assert tx.state == "aborted"
    assert tx.outcome is None
    assert engine.read("counters", "c") == 0
    assert engine.clock.is_empty()


def test_coordination_free_refuses_register_writes_whole(engine: Engine) -> None:
    with pytest.raises(rhizo.RequiresCoordinationError) as info:
        with engine.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 1)
            tx.put("profiles", "p", "name", {"x"})
    assert info.value.kind == "NotAlgebraic"
    assert info.value.operations == [(("profiles", "p", "name"), "OVERWRITE")]
    assert engine.read("counters", "c") == 0  # nothing half-applied


def test_bad_mode_raises_value_error_naming_the_valid_modes(engine: Engine) -> None:
    with pytest.raises(ValueError, match='"coordination_free", "coordinated", "auto"') as info:
        engine.transaction(mode="eventual")  # type: ignore[arg-type]
    assert isinstance(info.value, rhizo.UnknownModeError)


def test_auto_mode_commits_locally_when_every_operation_is_algebraic(engine: Engine) -> None:
    with engine.transaction(mode="auto") as tx:
        tx.increment("counters", "c", 1).add_to_set("users", "u", "tags", "x")
    assert tx.mode == "auto"
    assert tx.outcome is not None
    assert (tx.outcome.path, tx.outcome.sequence) == ("local", None)
    with engine.transaction(mode="auto") as mixed:
        mixed.increment("counters", "c", 1).put("profiles", "p", "name", {"ann"})
    assert mixed.outcome is not None
    assert mixed.outcome.path == "consensus"
    assert mixed.outcome.sequence == 1
    assert engine.read("counters", "c") == 2
    assert engine.read("profiles", "p", "name") == {"ann"}


def test_bad_input_errors_leave_the_engine_usable(engine: Engine) -> None:
    cases: list[tuple[type[Exception], str, str, str, object]] = [
        (rhizo.TypeMismatchError, "increment", "counters", "value", 1.5),
        (rhizo.TypeMismatchError, "min", "scores", "low", float("nan")),
        (rhizo.InvalidOperationError, "increment", "scores", "low", 1.0),
        (rhizo.InvalidValueError, "increment", "money", "balance", Decimal("0.001")),
        (rhizo.UnknownCellError, "increment", "nope", "value", 1),
    ]
    for error, verb, table, column, value in cases:
        with pytest.raises(error), engine.transaction(mode="coordination_free") as tx:
            getattr(tx, "increment_column" if verb == "increment" else verb)(
                table, "r", column, value
            )
        assert engine.clock.is_empty()
    with pytest.raises(rhizo.InvalidTransactionError) as empty:
        engine.transaction(mode="coordination_free").commit()
    assert empty.value.kind == "EmptyTransaction"
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "r", 1)
    assert engine.read("counters", "r") == 1


def test_overflow_is_refused_before_commit(engine: Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "big", 2**63 - 1)
    with pytest.raises(rhizo.ValueOverflowError) as info:
        with engine.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "big", 1)
    assert info.value.key == ("counters", "big", "value")
    assert engine.read("counters", "big") == 2**63 - 1


def test_compare_and_set(engine: Engine) -> None:
    engine.transaction().put("profiles", "p", "name", {"a"}).commit()
    engine.transaction().compare_and_set("profiles", "p", "name", {"a"}, {"b"}).commit()
    assert engine.read("profiles", "p", "name") == {"b"}
    with pytest.raises(rhizo.ConditionFailedError):
        engine.transaction().compare_and_set("profiles", "p", "name", {"a"}, {"c"}).commit()
    assert engine.read("profiles", "p", "name") == {"b"}


def test_transaction_cannot_be_used_after_commit_or_abort(engine: Engine) -> None:
    tx = engine.transaction(mode="coordination_free")
    tx.increment("counters", "c", 1)
    tx.commit()
    for call in (lambda: tx.commit(), lambda: tx.increment("counters", "c", 1), tx.abort):
        with pytest.raises(rhizo.TransactionFinishedError):
            call()
    aborted = engine.transaction(mode="coordination_free")
    aborted.abort()
    with pytest.raises(rhizo.TransactionFinishedError):
        aborted.read("counters", "c")


def test_commit_inside_the_block_is_not_repeated_on_exit(engine: Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 2)
        tx.commit()
    assert engine.read("counters", "c") == 2
    assert engine.clock.get("n0") == 1


def test_remove_from_set_removes_what_was_observed(engine: Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.add_to_set("users", "u", "tags", ["a", "b"])
    with engine.transaction(mode="coordination_free") as tx:
        tx.remove_from_set("users", "u", "tags", "a")
    assert engine.read("users", "u", "tags") == {"b"}


def test_transaction_reads_committed_state(engine: Engine) -> None:
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 3)
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 4)
        assert tx.read("counters", "c") == 3  # not its own pending write
        assert len(tx) == 1


def test_batch_commits_many_transactions(engine: Engine) -> None:
    ops = [("increment", "counters", f"r{i % 10}", "value", 1) for i in range(1000)]
    assert engine.commit_batch(ops) == 1000
    assert engine.clock.get("n0") == 1000
    assert sum(engine.read("counters", f"r{i}") for i in range(10)) == 1000
    mixed = [
        ("max", "scores", "s", "best", 4),
        ("add_to_set", "users", "u", "tags", "x"),
        ("increment", "money", "m", "balance", Decimal("0.5")),
    ]
    assert engine.commit_batch(mixed, ops_per_transaction=None) == 1
    assert engine.read("users", "u", "tags") == {"x"}
    assert engine.commit_batch(mixed * 4, ops_per_transaction=5) == 3


def test_batch_stops_at_the_first_refused_transaction(engine: Engine) -> None:
    ops = [
        ("increment", "counters", "c", "value", 1),
        ("increment", "counters", "c", "value", 1.5),
        ("increment", "counters", "c", "value", 1),
    ]
    with pytest.raises(rhizo.TypeMismatchError) as stopped:
        engine.commit_batch(ops)
    assert engine.read("counters", "c") == 1
    # How far it got: one transaction committed, the refused one starts at operation 1, so a
    # retry from there (fixed) applies every operation exactly once.
    assert (stopped.value.committed, stopped.value.failed_at) == (1, 1)
    assert "stopped after 1 committed" in str(stopped.value)
    fixed = [("increment", "counters", "c", "value", 1), *ops[2:]]
    assert engine.commit_batch(fixed) == 2
    assert engine.read("counters", "c") == 3
    with pytest.raises(ValueError, match='"frob" is not an operation; the verbs are increment'):
        engine.commit_batch([("frob", "counters", "c", "value", 1)])
    with pytest.raises(TypeError):
        engine.commit_batch([("increment", "counters", "c")])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        engine.commit_batch([], ops_per_transaction=0)
    assert engine.commit_batch([]) == 0


def test_commits_survive_reopening(tmp_path: Path) -> None:
    with rhizo.open(tmp_path, "n0") as engine:
        with engine.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 1)
        assert tx.outcome is not None and tx.outcome.durable
        assert engine.is_durable(tx.outcome)
        engine.commit_batch([("increment", "counters", "page_views", "value", 1)] * 9)
    assert engine.closed
    with pytest.raises(rhizo.StorageError):
        engine.read("counters", "page_views")
    reopened = Engine(str(tmp_path), node_id="n0")
    assert reopened.read("counters", "page_views") == 10
    with reopened.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "page_views", 1)
    assert tx.outcome is not None and tx.outcome.dot is not None
    assert tx.outcome.dot.counter == 11  # a restarted node never reuses a dot
    reopened.close()
    reopened.close()  # closing twice is harmless


def test_data_directory_belongs_to_one_node(tmp_path: Path) -> None:
    rhizo.open(tmp_path, "n0").close()
    with pytest.raises(rhizo.ConfigError) as info:
        rhizo.open(tmp_path, "n1")
    assert info.value.kind == "WrongNode"


def test_sync_policies(tmp_path: Path) -> None:
    group = rhizo.open(tmp_path / "g", "n0", sync="group")
    tx = group.transaction(mode="coordination_free")
    outcome = tx.increment("counters", "c", 1).commit()
    group.flush()
    assert group.is_durable(outcome)
    rhizo.open(tmp_path / "x", "n0", sync="none").close()
    with pytest.raises(rhizo.ConfigError, match="unknown sync policy"):
        rhizo.open(tmp_path / "y", "n0", sync="sometimes")  # type: ignore[arg-type]


def test_declare_column_versions_the_schema(engine: Engine) -> None:
    version = engine.schema.version
    assert engine.declare_column("counters", "likes", MergeType.Add, ValueType.integer()) == (
        version + 1
    )
    assert engine.declare_column("counters", "likes", "ADD", "integer") == version + 1
    with pytest.raises(rhizo.SchemaError):
        engine.declare_column("counters", "likes", "MAX", "integer")
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "p", 2, column="likes")
    assert engine.read("counters", "p", "likes") == 2


def test_two_engines_replicate_through_their_messages() -> None:
    a = rhizo.open(None, "a", schema=SCHEMA, members=["a", "b"])
    b = rhizo.open(None, "b", schema=SCHEMA, members=["a", "b"])
    with a.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 2)
    with b.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 3)
    for _ in range(4):
        a.sync_with("b")
        b.sync_with("a")
        for sender, receiver in ((a, b), (b, a)):
            for to, message in sender.outgoing():
                assert to == receiver.node_id
                receiver.receive(sender.node_id, message)
    assert a.read("counters", "c") == b.read("counters", "c") == 5
    assert a.fingerprint() == b.fingerprint()
    assert a.clock == b.clock
    with pytest.raises(rhizo.DecodeError):
        a.receive("b", b"garbage")


def test_engine_repr_and_node_id(engine: Engine) -> None:
    assert engine.node_id == rhizo.NodeId("n0")
    assert repr(engine) == 'PyEngine(node_id="n0")'
    tx = engine.transaction(mode="coordination_free")
    assert "coordination_free" in repr(tx)


def test_every_exported_error_is_a_rhizo_error() -> None:
    errors = [getattr(rhizo, name) for name in rhizo.__all__ if name.endswith("Error")]
    assert len(errors) == 28  # RhizoError and its 27 subclasses
    for error in errors:
        assert issubclass(error, rhizo.RhizoError)
        assert error.__module__ == "rhizo"
    assert issubclass(rhizo.UnknownCellError, rhizo.SchemaError)
    assert issubclass(rhizo.TransactionFinishedError, rhizo.InvalidTransactionError)
    assert issubclass(rhizo.DeadlineError, rhizo.SimulationError)
