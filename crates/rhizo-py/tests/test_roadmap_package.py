"""The names `_rhizo` and `rhizo` export: the roadmap's, and Rhizo's own beside them."""

from __future__ import annotations

import _rhizo
import rhizo

ROADMAP = [
    "PyOpType",
    "PyAlgebraicValue",
    "algebraic_merge",
    "PyNodeId",
    "PyCausalOrder",
    "PyVectorClock",
    "PyAlgebraicOperation",
    "PyAlgebraicTransaction",
    "PyVersionedUpdate",
    "PyLocalCommitProtocol",
    "PyNetworkCondition",
    "PySimulationConfig",
    "PySimulationStats",
    "PySimulatedNode",
    "PySimulatedCluster",
    "PySimulationBuilder",
]


def test_every_roadmap_name_is_exported_by_both_modules() -> None:
    for name in ROADMAP:
        assert getattr(rhizo, name) is getattr(_rhizo, name), name
        assert name in rhizo.__all__ and name in _rhizo.__dict__


def test_friendly_names_are_the_roadmap_classes_where_calls_agree() -> None:
    assert rhizo.NodeId is _rhizo.PyNodeId
    assert rhizo.VectorClock is _rhizo.PyVectorClock
    assert rhizo.OpType is _rhizo.PyOpType
    assert rhizo.AlgebraicValue is _rhizo.PyAlgebraicValue


def test_friendly_names_are_separate_classes_where_calls_differ() -> None:
    pairs = {
        "AlgebraicOperation": "PyAlgebraicOperation",
        "AlgebraicTransaction": "PyAlgebraicTransaction",
        "VersionedUpdate": "PyVersionedUpdate",
        "LocalCommitProtocol": "PyLocalCommitProtocol",
        "SimulationBuilder": "PySimulationBuilder",
        "SimulatedCluster": "PySimulatedCluster",
    }
    for friendly, roadmap in pairs.items():
        ours, theirs = getattr(rhizo, friendly), getattr(rhizo, roadmap)
        assert ours is getattr(_rhizo, friendly) and ours is not theirs
    # Rhizo's builder still chains and builds the virtual-time cluster engines run on.
    builder = rhizo.SimulationBuilder().nodes(2).seed(1)
    assert isinstance(builder.build(rhizo.Schema()), rhizo.SimulatedCluster)
