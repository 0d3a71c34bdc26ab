"""`PyNodeId` as the roadmap's users call it."""

from __future__ import annotations

import pytest

import _rhizo
from _rhizo import PyNodeId


def test_str_is_the_id_and_repr_names_it() -> None:
    node = PyNodeId("node-0")
    assert str(node) == "node-0"
    assert repr(node) == "NodeId('node-0')"
    assert str(PyNodeId(id="x")) == "x"


def test_equal_ids_are_equal_and_hash_equally() -> None:
    assert PyNodeId("a") == PyNodeId("a")
    assert PyNodeId("a") != PyNodeId("b")
    assert not (PyNodeId("a") != PyNodeId("a"))
    assert hash(PyNodeId("a")) == hash(PyNodeId("a"))
    counts = {PyNodeId("a"): 1}
    counts[PyNodeId("a")] += 1
    assert counts == {PyNodeId("a"): 2}
    assert len({PyNodeId("a"), PyNodeId("a"), PyNodeId("b")}) == 2


def test_a_foreign_type_compares_unequal_without_raising() -> None:
    assert PyNodeId("a") != "a"
    assert (PyNodeId("a") == "a") is False
    assert PyNodeId("a") != 1


@pytest.mark.parametrize("id_", ["", "seventeen-bytes!!", "a\0b"])
def test_ids_outside_our_limits_raise_a_value_error(id_: str) -> None:
    # Ours: 1 to 16 bytes without NUL (a node's name is packed into two machine words).
    with pytest.raises(ValueError) as info:
        PyNodeId(id_)
    assert isinstance(info.value, _rhizo.InvalidNodeIdError)


def test_the_constructor_takes_a_string() -> None:
    with pytest.raises(TypeError):
        PyNodeId(3)  # type: ignore[arg-type]
