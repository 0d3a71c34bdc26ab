"""`PySimulatedNode`: a view of one node, from `PySimulatedCluster.get_node` (ours)."""

from __future__ import annotations

import pytest

import _rhizo
from _rhizo import PySimulatedCluster, PySimulatedNode


def test_id_index_and_repr() -> None:
    cluster = PySimulatedCluster(3)
    node = cluster.get_node(2)
    assert node.node_id == "n2"  # ours: nodes are named n0, n1, ...
    assert node.index == 2
    assert repr(node) == "SimulatedNode(id='n2', index=2)"
    assert cluster.get_node(node_index=0).node_id == "n0"


def test_no_constructor_and_read_only() -> None:
    with pytest.raises(TypeError):
        PySimulatedNode()  # type: ignore[call-arg]
    node = PySimulatedCluster(1).get_node(0)
    with pytest.raises(AttributeError):
        node.index = 1  # type: ignore[misc]


def test_an_index_out_of_range_raises_index_error() -> None:
    with pytest.raises(IndexError) as info:
        PySimulatedCluster(2).get_node(2)
    assert isinstance(info.value, _rhizo.UnknownNodeError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(OverflowError):
        PySimulatedCluster(2).get_node(-1)
