"""Every column type the schema accepts is writable and readable from Python: through a
transaction's verbs and through `commit_batch`."""

from __future__ import annotations

from decimal import Decimal

import pytest

import rhizo

MERGES = ["ADD", "MULTIPLY", "MAX", "MIN", "UNION", "INTERSECT", "OR_SET", "REGISTER"]
VALUE_TYPES = ["integer", "float", "decimal(2)", "boolean", "string_set", "int_set"]

# A value of each type, and a second one to write after it.
SAMPLES: dict[str, tuple[object, object]] = {
    "integer": (3, 4),
    "float": (1.5, 2.0),
    "decimal(2)": (Decimal("1.25"), Decimal("2.00")),
    "boolean": (False, True),
    "string_set": ({"a", "b"}, {"b", "c"}),
    "int_set": ({1, 2}, {2, 3}),
}

# The verb that writes each merge type, its mode, and what two writes leave in the cell.
VERBS = {
    "ADD": ("increment_column", "coordination_free"),
    "MULTIPLY": ("multiply", "coordination_free"),
    "MAX": ("max", "coordination_free"),
    "MIN": ("min", "coordination_free"),
    "UNION": ("union", "coordination_free"),
    "INTERSECT": ("intersect", "coordination_free"),
    "OR_SET": ("add_to_set", "coordination_free"),
    "REGISTER": ("put", "coordinated"),
}


def expected(merge: str, first: object, second: object) -> object:
    if merge == "ADD":
        return first + second  # type: ignore[operator]
    if merge == "MULTIPLY":
        return first * second  # type: ignore[operator]
    if merge == "MAX":
        return max(first, second)  # type: ignore[type-var]
    if merge == "MIN":
        return min(first, second)  # type: ignore[type-var]
    if merge in ("UNION", "OR_SET"):
        return first | second  # type: ignore[operator]
    if merge == "INTERSECT":
        return first & second  # type: ignore[operator]
    return second


def accepted() -> list[tuple[str, str]]:
    pairs = []
    for merge in MERGES:
        for value_type in VALUE_TYPES:
            try:
                rhizo.Schema({"t": {"c": (merge, value_type)}})
            except rhizo.SchemaError:
                continue
            pairs.append((merge, value_type))
    return pairs


def test_the_schema_accepts_set_columns_of_both_element_types() -> None:
    pairs = accepted()
    for merge in ("UNION", "INTERSECT", "OR_SET"):
        assert (merge, "string_set") in pairs
        assert (merge, "int_set") in pairs


@pytest.mark.parametrize(("merge", "value_type"), accepted())
def test_every_accepted_column_is_written_by_its_verb(merge: str, value_type: str) -> None:
    engine = rhizo.open(None, schema=rhizo.Schema({"t": {"c": (merge, value_type)}}))
    verb, mode = VERBS[merge]
    first, second = SAMPLES[value_type]
    for value in (first, second):
        with engine.transaction(mode=mode) as tx:
            getattr(tx, verb)("t", "r", "c", value)
    assert engine.read("t", "r", "c") == expected(merge, first, second)
    # The same through a batch, on another row.
    ops = [(verb.removesuffix("_column"), "t", "b", "c", v) for v in (first, second)]
    assert engine.commit_batch(ops, mode=mode) == 2
    assert engine.read("t", "b", "c") == expected(merge, first, second)


def test_set_verbs_take_one_element_an_iterable_or_an_algebraic_value() -> None:
    schema = rhizo.Schema(
        {
            "t": {
                "tags": ("OR_SET", "int_set"),
                "seen": ("UNION", "int_set"),
                "common": ("INTERSECT", "string_set"),
            }
        }
    )
    engine = rhizo.open(None, schema=schema)
    assert engine.read("t", "r", "common") is None  # never intersected: everything
    with engine.transaction(mode="coordination_free") as tx:
        tx.add_to_set("t", "r", "tags", 7)
        tx.add_to_set("t", "r", "tags", rhizo.AlgebraicValue.int_set([8, 9]))
        tx.union("t", "r", "seen", [1, 2])
        tx.union("t", "r", "seen", 3)
        tx.intersect("t", "r", "common", {"a", "b"})
    with engine.transaction(mode="coordination_free") as tx:
        tx.remove_from_set("t", "r", "tags", [8])
        tx.intersect("t", "r", "common", "b")
    assert engine.read("t", "r", "tags") == {7, 9}
    assert engine.read("t", "r", "seen") == {1, 2, 3}
    assert engine.read("t", "r", "common") == {"b"}
    with pytest.raises(rhizo.InvalidOperationError):
        with engine.transaction(mode="coordination_free") as tx:
            tx.add_to_set("t", "r", "common", "a")  # an INTERSECT column only shrinks
    with pytest.raises(TypeError):
        engine.transaction().add_to_set("t", "r", "tags", rhizo.AlgebraicValue(3))
