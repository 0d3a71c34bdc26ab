"""Node ids, dots, vector clocks and causal order, through the bindings."""

from __future__ import annotations

import copy
import random

import pytest

import rhizo
from rhizo import CausalOrder, Dot, NodeId, VectorClock


def test_node_id_round_trips_its_name() -> None:
    node = NodeId("frankfurt-2")
    assert node.name == "frankfurt-2"
    assert str(node) == "frankfurt-2"
    assert repr(node) == "NodeId('frankfurt-2')"


def test_node_id_numbered_matches_name() -> None:
    assert NodeId.numbered(7) == NodeId("n7")
    assert NodeId.numbered(0).name == "n0"


def test_node_ids_order_like_their_names() -> None:
    names = ["b", "a", "n10", "n9", "ab"]
    assert [n.name for n in sorted(NodeId(x) for x in names)] == sorted(names)


def test_node_id_hash_and_equality_agree() -> None:
    assert {NodeId("a"), NodeId("a"), NodeId("b")} == {NodeId("a"), NodeId("b")}
    assert NodeId("a") != NodeId("b")
    assert NodeId("a") != "a"  # a name is not an id


@pytest.mark.parametrize(
    ("name", "kind"),
    [("", "EmptyNodeName"), ("seventeen-bytes!!", "NodeNameTooLong"), ("a\0b", "NodeNameHasNul")],
)
def test_bad_node_names_raise_invalid_node_id(name: str, kind: str) -> None:
    with pytest.raises(rhizo.InvalidNodeIdError) as info:
        NodeId(name)
    assert info.value.kind == kind
    assert isinstance(info.value, ValueError)


def test_dot_exposes_node_and_counter() -> None:
    dot = Dot("a", 3)
    assert dot.node == NodeId("a")
    assert dot.counter == 3
    assert Dot(NodeId("a"), 3) == dot
    assert hash(Dot("a", 3)) == hash(dot)


def test_dot_counter_zero_is_refused() -> None:
    with pytest.raises(rhizo.InvalidDotError) as info:
        Dot("a", 0)
    assert info.value.kind == "ZeroDot"
    assert info.value.node == "a"


def test_empty_clock_knows_nothing() -> None:
    clock = VectorClock()
    assert clock.is_empty()
    assert len(clock) == 0
    assert clock.get("a") == 0
    assert clock.sum() == 0
    assert clock.to_dict() == {}


def test_clock_from_mapping_is_canonical() -> None:
    clock = VectorClock({"b": 2, "a": 1, "c": 0})
    assert clock.to_dict() == {"a": 1, "b": 2}  # sorted, zero entries dropped
    assert list(clock.to_dict()) == ["a", "b"]
    assert clock == VectorClock({"a": 1, "b": 2})


def test_ticks_are_successive_dots() -> None:
    clock = VectorClock()
    for _ in range(3):
        clock.tick("a")
    dots = [Dot("a", n) for n in (1, 2, 3)]
    assert clock.get("a") == 3
    assert all(clock.contains(d) and d in clock for d in dots)
    assert Dot("a", 4) not in clock


def test_set_and_get_accept_ids_and_names() -> None:
    clock = VectorClock()
    clock.set(NodeId("x"), 5)
    assert clock.get("x") == 5
    clock.set("x", 0)
    assert clock.is_empty()


def test_clock_argument_of_wrong_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        VectorClock().get(3)  # type: ignore[arg-type]


def test_tick_past_u64_max_raises_overflow() -> None:
    clock = VectorClock({"a": 2**64 - 1})
    with pytest.raises(rhizo.ValueOverflowError) as info:
        clock.tick("a")
    assert info.value.kind == "CounterOverflow"
    assert clock.get("a") == 2**64 - 1  # unchanged


def test_merge_takes_the_entrywise_maximum() -> None:
    left = VectorClock({"a": 3, "b": 1})
    left.merge(VectorClock({"b": 4, "c": 2}))
    assert left.to_dict() == {"a": 3, "b": 4, "c": 2}


def test_meet_takes_the_entrywise_minimum() -> None:
    meet = VectorClock({"a": 3, "b": 1}).meet(VectorClock({"a": 1, "b": 4, "c": 2}))
    assert meet.to_dict() == {"a": 1, "b": 1}


def test_compare_before_after_equal() -> None:
    small = VectorClock({"a": 1})
    big = VectorClock({"a": 2, "b": 1})
    assert small.compare(big) == CausalOrder.Before
    assert big.compare(small) == CausalOrder.After
    assert small.compare(VectorClock({"a": 1})) == CausalOrder.Equal


def test_compare_concurrent() -> None:
    left = VectorClock({"a": 2})
    right = VectorClock({"b": 1})
    assert left.compare(right) == CausalOrder.Concurrent
    assert left.concurrent(right) and right.concurrent(left)
    assert not left.happened_before(right)


def test_happened_before_and_dominated_by() -> None:
    small = VectorClock({"a": 1})
    big = VectorClock({"a": 1, "b": 1})
    assert small.happened_before(big)
    assert small.dominated_by(big)
    assert small.dominated_by(small)
    assert not small.happened_before(small)


def test_comparison_operators_follow_causality() -> None:
    small = VectorClock({"a": 1})
    big = VectorClock({"a": 1, "b": 1})
    assert small < big and small <= big and big > small and big >= small
    concurrent = VectorClock({"c": 1})
    assert not (small < concurrent or small > concurrent or small <= concurrent)


def test_causally_ready_needs_the_previous_event_and_dependencies() -> None:
    local = VectorClock({"a": 1})
    assert local.causally_ready(Dot("a", 2), VectorClock({"a": 2}))
    assert not local.causally_ready(Dot("a", 3), VectorClock({"a": 3}))  # gap
    assert not local.causally_ready(Dot("a", 2), VectorClock({"a": 2, "b": 1}))  # missing b:1


def test_copy_is_independent() -> None:
    original = VectorClock({"a": 1})
    for duplicate in (original.copy(), copy.copy(original)):
        duplicate.tick("a")
        assert original.get("a") == 1
        assert duplicate.get("a") == 2


def test_equal_clocks_compare_equal_and_clocks_are_unhashable() -> None:
    assert VectorClock({"a": 1, "b": 2}) == VectorClock({"b": 2, "a": 1})
    assert VectorClock({"a": 1}) != VectorClock({"a": 2})
    with pytest.raises(TypeError):
        hash(VectorClock())  # mutable: a clock in a set would be lost when it ticks


def test_repr_lists_entries() -> None:
    assert repr(VectorClock({"b": 2, "a": 1})) == "VectorClock([a:1, b:2])"


def test_node_count_and_sum() -> None:
    clock = VectorClock({"a": 2, "b": 3})
    assert clock.node_count() == 2
    assert clock.sum() == 5


def test_merge_laws_hold_on_random_clocks() -> None:
    rng = random.Random(7)
    nodes = ["a", "b", "c", "d"]

    def random_clock() -> VectorClock:
        return VectorClock({n: rng.randrange(0, 5) for n in rng.sample(nodes, rng.randrange(5))})

    for _ in range(200):
        x, y, z = random_clock(), random_clock(), random_clock()
        xy = x.copy()
        xy.merge(y)
        yx = y.copy()
        yx.merge(x)
        assert xy == yx  # commutative
        xy_z = xy.copy()
        xy_z.merge(z)
        yz = y.copy()
        yz.merge(z)
        x_yz = x.copy()
        x_yz.merge(yz)
        assert xy_z == x_yz  # associative
        xx = x.copy()
        xx.merge(x)
        assert xx == x  # idempotent
        assert x.dominated_by(xy) and y.dominated_by(xy)  # upper bound


def test_compare_is_antisymmetric_on_random_clocks() -> None:
    rng = random.Random(11)
    flip = {
        CausalOrder.Before: CausalOrder.After,
        CausalOrder.After: CausalOrder.Before,
        CausalOrder.Equal: CausalOrder.Equal,
        CausalOrder.Concurrent: CausalOrder.Concurrent,
    }
    for _ in range(200):
        x = VectorClock({n: rng.randrange(3) for n in "abc"})
        y = VectorClock({n: rng.randrange(3) for n in "abc"})
        assert y.compare(x) == flip[x.compare(y)]
        assert (x.compare(y) == CausalOrder.Equal) == (x == y)


def test_friendly_names_are_the_roadmap_classes() -> None:
    assert rhizo.NodeId is rhizo.PyNodeId
    assert rhizo.VectorClock is rhizo.PyVectorClock
    assert rhizo.CausalOrder is rhizo.PyCausalOrder
