"""Values, schemas, operations, transactions, versioned updates and the local commit protocol."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest

import rhizo
from rhizo import (
    AlgebraicMerger,
    AlgebraicOperation,
    AlgebraicTransaction,
    AlgebraicValue,
    LocalCommitProtocol,
    MergeType,
    OpType,
    Schema,
    ValueType,
    VersionedUpdate,
)


@pytest.fixture
def schema() -> Schema:
    return Schema(
        {
            "counters": {"value": ("ADD", "integer")},
            "scores": {"best": ("MAX", "integer"), "low": ("MIN", "float")},
            "money": {"balance": ("ADD", "decimal(2)")},
            "growth": {"factor": ("MULTIPLY", "integer")},
            "tags": {"seen": ("UNION", "string_set")},
            "users": {"tags": ("OR_SET", "string_set")},
            "profiles": {"name": ("REGISTER", "string_set")},
        }
    )


def protocol(schema: Schema, node: str = "a") -> LocalCommitProtocol:
    return LocalCommitProtocol(node, schema)


def test_op_type_names_and_classes() -> None:
    assert OpType.AbelianAdd.name == "ADD"
    assert OpType.from_name("MAX") == OpType.SemilatticeMax
    assert str(OpType.OrSetAdd) == "OR_ADD"
    assert len(OpType.all()) == 11
    assert OpType.AbelianAdd.is_abelian() and OpType.AbelianAdd.is_conflict_free()
    assert OpType.SemilatticeMax.is_semilattice()
    assert OpType.OrSetRemove.is_observed_remove()
    assert not OpType.GenericOverwrite.is_conflict_free()
    assert "exactly once" in OpType.AbelianAdd.description()


def test_unknown_op_name_is_a_schema_error() -> None:
    with pytest.raises(rhizo.SchemaError) as info:
        OpType.from_name("FROBNICATE")
    assert info.value.kind == "UnknownName"


def test_merge_types_accept_their_operations() -> None:
    assert MergeType.Add.accepts(OpType.AbelianAdd)
    assert not MergeType.Add.accepts(OpType.AbelianMultiply)
    assert not MergeType.Register.is_conflict_free()
    assert MergeType.from_name("OR_SET") == MergeType.ObservedRemoveSet
    assert {m.name for m in MergeType.all()} >= {"ADD", "MAX", "REGISTER"}


def test_value_types() -> None:
    assert ValueType.decimal(2).scale == 2
    assert ValueType.integer().scale is None
    assert ValueType.string_set().is_set()
    assert ValueType.integer() == ValueType.integer()
    assert repr(ValueType.decimal(3)) == "PyValueType.decimal(3)"


@pytest.mark.parametrize(
    ("python", "kind"),
    [
        (None, "null"),
        (True, "boolean"),
        (5, "integer"),
        (2.5, "float"),
        ({"a", "b"}, "string set"),
        ({1, 2}, "int set"),
    ],
)
def test_values_round_trip_from_python(python: object, kind: str) -> None:
    value = AlgebraicValue(python)  # type: ignore[arg-type]
    assert value.kind == kind
    assert value.value == python
    assert type(value.value) is type(python)


def test_value_constructors_and_ordering() -> None:
    assert AlgebraicValue.integer(3) == AlgebraicValue(3)
    assert AlgebraicValue.decimal("1.50").value == Decimal("1.50")
    assert AlgebraicValue.string_set(["b", "a", "a"]).value == {"a", "b"}
    assert AlgebraicValue.int_set([3, 1]).value == {1, 3}
    assert AlgebraicValue.null().is_null()
    assert AlgebraicValue.boolean(False).value is False
    assert AlgebraicValue(1) < AlgebraicValue(2)
    assert len({AlgebraicValue(1), AlgebraicValue(1), AlgebraicValue(2)}) == 2


def test_decimal_in_exponent_notation_is_read_exactly() -> None:
    op = AlgebraicOperation("money", "m", "balance", "ADD", Decimal("1E+3"))
    assert op.value.value == Decimal("1000")
    assert op.value.kind == "decimal"


def test_bad_values_raise_typed_errors() -> None:
    def operation(value: object) -> AlgebraicOperation:
        return AlgebraicOperation("t", "r", "c", "ADD", value)  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        operation("plain string")
    with pytest.raises(rhizo.TypeMismatchError) as info:
        operation({"a", 1})
    assert info.value.kind == "MixedKinds"
    with pytest.raises(rhizo.InvalidValueError):
        operation(Decimal("NaN"))
    with pytest.raises(OverflowError):
        operation(2**70)


def test_schema_declares_and_reports_columns(schema: Schema) -> None:
    assert schema.version == 1
    merge, value_type = schema.column("money", "balance")
    assert merge == MergeType.Add and value_type == ValueType.decimal(2)
    assert set(schema.tables()) == {
        "counters",
        "scores",
        "money",
        "growth",
        "tags",
        "users",
        "profiles",
    }
    grown = schema.with_column("counters", "likes", MergeType.Add, ValueType.integer())
    assert grown.version == 2 and schema.version == 1
    assert Schema().version == 0


def test_schema_refuses_bad_definitions(schema: Schema) -> None:
    with pytest.raises(rhizo.SchemaError) as info:
        Schema({"t": {"c": ("MULTIPLY", "decimal(2)")}})
    assert info.value.kind == "InvalidColumn"
    with pytest.raises(rhizo.SchemaError) as redefined:
        schema.with_column("counters", "value", "MAX", "integer")
    assert redefined.value.kind == "ColumnRedefined"
    with pytest.raises(rhizo.SchemaError, match="not a known value type") as unknown:
        Schema({"t": {"c": ("ADD", "complex")}})
    assert unknown.value.kind == "UnknownName"


def test_schema_validate(schema: Schema) -> None:
    schema.validate("counters", "value", "ADD", 1)
    with pytest.raises(rhizo.TypeMismatchError):
        schema.validate("counters", "value", "ADD", 1.5)
    with pytest.raises(rhizo.TypeMismatchError) as nan:
        schema.validate("scores", "low", "MIN", float("nan"))
    assert nan.value.kind == "NonFiniteFloat"
    with pytest.raises(rhizo.UnknownCellError):
        schema.validate("nope", "value", "ADD", 1)


def test_merger_merges_plain_values() -> None:
    assert AlgebraicMerger.merge(OpType.AbelianAdd, 2, 3) == 5
    assert AlgebraicMerger.merge("MAX", 2, 9) == 9
    assert AlgebraicMerger.merge("UNION", {"a"}, {"b"}) == {"a", "b"}
    assert AlgebraicMerger.merge_all("ADD", [1, 2, 3, None]) == 6
    with pytest.raises(rhizo.RequiresCoordinationError) as info:
        AlgebraicMerger.merge("OVERWRITE", 1, 2)
    assert info.value.kind == "NotConflictFree"
    with pytest.raises(rhizo.ValueOverflowError):
        AlgebraicMerger.merge("ADD", 2**63 - 1, 1)


def test_transaction_builder_chains_and_lists_operations() -> None:
    tx = AlgebraicTransaction()
    tx.increment("counters", "page_views", "value", 1).add_to_set(
        "users", "user_123", "tags", "premium"
    )
    assert len(tx) == 2
    first, second = tx.operations
    assert first.key == ("counters", "page_views", "value")
    assert first.op_type == OpType.AbelianAdd
    assert first.value.value == 1
    assert second.op_type == OpType.OrSetAdd
    assert second.value.value == {"premium"}


def test_transaction_from_operations_and_tag() -> None:
    op = AlgebraicOperation("counters", "x", "value", "ADD", 2)
    tx = AlgebraicTransaction([op, op], tag=42)
    assert tx.tag == 42
    assert tx.operations == [op, op]
    tx.tag = None
    assert tx.tag is None
    assert AlgebraicTransaction().is_empty()


def test_can_commit_locally_for_algebraic_operations(schema: Schema) -> None:
    p = protocol(schema)
    tx = AlgebraicTransaction().increment("counters", "x", "value", 1)
    assert p.can_commit_locally(tx)
    p.check(tx)


def test_overwrite_requires_coordination(schema: Schema) -> None:
    p = protocol(schema)
    tx = AlgebraicTransaction().put("profiles", "u", "name", {"bob"})
    assert not p.can_commit_locally(tx)
    with pytest.raises(rhizo.RequiresCoordinationError) as info:
        p.commit_local(tx)
    assert info.value.kind == "RequiresCoordination"
    assert info.value.operations == [(("profiles", "u", "name"), "OVERWRITE")]
    assert p.clock.is_empty()  # nothing changed


def test_empty_transaction_is_refused(schema: Schema) -> None:
    with pytest.raises(rhizo.InvalidTransactionError) as info:
        protocol(schema).commit_local(AlgebraicTransaction())
    assert info.value.kind == "EmptyTransaction"


def test_invalid_operation_raises_the_reason_class(schema: Schema) -> None:
    p = protocol(schema)
    tx = AlgebraicTransaction().increment("counters", "x", "value", 1.5)
    with pytest.raises(rhizo.TypeMismatchError) as info:
        p.commit_local(tx)
    assert info.value.kind == "InvalidOperations"
    assert info.value.key == ("counters", "x", "value")
    [(key, reason)] = info.value.errors
    assert key == ("counters", "x", "value")
    assert isinstance(reason, rhizo.TypeMismatchError) and reason.kind == "TypeMismatch"


def test_unknown_column_raises_unknown_cell(schema: Schema) -> None:
    tx = AlgebraicTransaction().increment("counters", "x", "nope", 1)
    with pytest.raises(rhizo.UnknownCellError) as info:
        protocol(schema).commit_local(tx)
    assert isinstance(info.value, LookupError)


def test_wrong_operation_for_column_is_invalid_operation(schema: Schema) -> None:
    tx = AlgebraicTransaction().multiply("counters", "x", "value", 2)
    with pytest.raises(rhizo.InvalidOperationError) as info:
        protocol(schema).commit_local(tx)
    assert info.value.errors[0][1].kind == "OpNotAccepted"


def test_row_key_too_long_is_refused(schema: Schema) -> None:
    tx = AlgebraicTransaction().increment("counters", "r" * 2000, "value", 1)
    with pytest.raises(rhizo.InvalidTransactionError) as info:
        protocol(schema).commit_local(tx)
    assert info.value.kind == "RowKeyTooLong"


def test_commit_local_ticks_the_clock_and_stamps_the_update(schema: Schema) -> None:
    p = protocol(schema)
    first = p.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 1))
    second = p.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 2))
    assert (first.dot.counter, second.dot.counter) == (1, 2)
    assert first.origin == rhizo.NodeId("a")
    assert first.clock.happened_before(second.clock)
    assert p.clock.get("a") == 2
    assert first.schema_version == schema.version
    assert first.effects() == [(("counters", "x", "value"), [OpType.AbelianAdd])]
    assert first.op_count() == 1


def test_update_serializes_to_bytes_and_back(schema: Schema) -> None:
    tx = AlgebraicTransaction(tag=9).increment("counters", "x", "value", 5)
    update = protocol(schema).commit_local(tx.add_to_set("users", "u", "tags", ["p", "q"]))
    data = update.to_bytes()
    assert isinstance(data, bytes)
    decoded = VersionedUpdate.from_bytes(data)
    assert decoded == update
    assert hash(decoded) == hash(update)
    assert decoded.tag == 9


def test_garbage_bytes_raise_decode_error() -> None:
    with pytest.raises(rhizo.DecodeError):
        VersionedUpdate.from_bytes(b"\x01\xff\xff\xff")
    with pytest.raises(rhizo.DecodeError) as info:
        VersionedUpdate.from_bytes(b"\x07")  # version 7: from the future
    assert info.value.kind == "UnsupportedFormat"


def test_merge_updates_is_commutative(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    ua = a.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 2))
    ub = b.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 3))
    ab = a.merge_updates(ua, ub)
    ba = a.merge_updates(ub, ua)
    assert ab == ba
    assert ab.get("counters", "x", "value") == 5
    assert ab.clock.to_dict() == {"a": 1, "b": 1}


def test_merge_all_is_order_independent_and_deduplicates(schema: Schema) -> None:
    nodes = [protocol(schema, n) for n in "abc"]
    rng = random.Random(3)
    updates = []
    total, best, seen = 0, None, set()
    for _ in range(12):
        node = rng.choice(nodes)
        amount, score, element = rng.randrange(-5, 6), rng.randrange(100), f"e{rng.randrange(5)}"
        total += amount
        best = score if best is None else max(best, score)
        seen.add(element)
        tx = AlgebraicTransaction()
        tx.increment("counters", "x", "value", amount)
        tx.max("scores", "s", "best", score)
        tx.min("scores", "s", "low", rng.random())
        tx.add_to_set("tags", "t", "seen", element)
        updates.append(node.commit_local(tx))
    expected = nodes[0].merge_all(updates)
    for order in itertools.islice(itertools.permutations(updates), 0, 50, 7):
        assert nodes[0].merge_all(list(order)) == expected
    shuffled = updates[:]
    rng.shuffle(shuffled)
    assert nodes[1].merge_all(shuffled) == expected
    assert nodes[0].merge_all(updates + updates[:5]) == expected  # duplicates count once
    assert expected.get("counters", "x", "value") == total
    assert expected.get("scores", "s", "best") == best
    assert expected.get("tags", "t", "seen") == seen


def test_merge_all_sums_exactly(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    amounts = [5, -2, 7, 11, -3]
    updates = [
        (a if i % 2 else b).commit_local(
            AlgebraicTransaction().increment("counters", "x", "value", n)
        )
        for i, n in enumerate(amounts)
    ]
    merged = a.merge_all(list(reversed(updates)))
    assert merged.get("counters", "x", "value") == sum(amounts)
    assert ("counters", "x", "value") in merged
    assert merged.get("counters", "untouched", "value") is None
    assert len(merged) == 1


def test_max_min_union_and_decimal_merge(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    ua = a.commit_local(
        AlgebraicTransaction()
        .max("scores", "s", "best", 10)
        .min("scores", "s", "low", 0.5)
        .add_to_set("tags", "t", "seen", "x")
        .increment("money", "m", "balance", Decimal("1.25"))
    )
    ub = b.commit_local(
        AlgebraicTransaction()
        .max("scores", "s", "best", 7)
        .min("scores", "s", "low", 0.25)
        .add_to_set("tags", "t", "seen", ["y", "z"])
        .increment("money", "m", "balance", Decimal("2.5"))
    )
    merged = a.merge_updates(ua, ub)
    assert merged.get("scores", "s", "best") == 10
    assert merged.get("scores", "s", "low") == 0.25
    assert merged.get("tags", "t", "seen") == {"x", "y", "z"}
    assert merged.get("money", "m", "balance") == Decimal("3.75")
    assert merged.values()[("money", "m", "balance")] == Decimal("3.75")


def test_multiply_column(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    ua = a.commit_local(AlgebraicTransaction().multiply("growth", "g", "factor", 3))
    ub = b.commit_local(AlgebraicTransaction().multiply("growth", "g", "factor", 4))
    assert a.merge_updates(ua, ub).get("growth", "g", "factor") == 12


def test_counter_overflow_is_reported_on_read(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    ua = a.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 2**63 - 1))
    ub = b.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 1))
    merged = a.merge_updates(ua, ub)
    with pytest.raises(rhizo.ValueOverflowError) as info:
        merged.get("counters", "x", "value")
    assert info.value.key == ("counters", "x", "value")


def test_observe_makes_later_commits_depend_on_the_update(schema: Schema) -> None:
    a, b = protocol(schema, "a"), protocol(schema, "b")
    ua = a.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 1))
    b.observe(ua)
    ub = b.commit_local(AlgebraicTransaction().increment("counters", "x", "value", 1))
    assert ua.clock.happened_before(ub.clock)
    assert ub.clock.to_dict() == {"a": 1, "b": 1}


def test_protocol_exposes_node_and_schema(schema: Schema) -> None:
    p = protocol(schema, "z")
    assert p.node_id == rhizo.NodeId("z")
    assert p.schema == schema
    assert repr(p) == 'LocalCommitProtocol("z")'
