"""Rhizo: transactions whose algebraic operations commit locally and converge everywhere.

The native module ``_rhizo`` holds the roadmap's classes (``PyNodeId``, ``PyVectorClock``,
``PyAlgebraicTransaction``, ``PySimulatedCluster``, ..., and ``algebraic_merge``), called as the
roadmap's users call them, and Rhizo's own; this package re-exports the roadmap's under their
names and Rhizo's under friendlier ones (``NodeId``, ``VectorClock``, ``Engine``,
``EngineCluster``, ...), together with the ``RhizoError`` hierarchy; ``simulate(...)`` builds a
simulated cluster of engines for experiments.

A friendly name is the roadmap's class itself where the two take the same calls
(``NodeId is PyNodeId``). Where Rhizo's class takes other arguments, the friendly name is that
separate class: ``AlgebraicOperation``, ``AlgebraicTransaction``, ``VersionedUpdate`` and
``LocalCommitProtocol`` address cells of a schema (``PyAlgebraicOperation`` & co. take flat
keys), and ``SimulationBuilder`` and ``SimulatedCluster`` run in virtual time
(``PySimulationBuilder`` & co. run in rounds).

    >>> import rhizo
    >>> engine = rhizo.open(None)  # in memory; pass a directory to persist
    >>> with engine.transaction(mode="coordination_free") as tx:
    ...     _ = tx.increment("counters", "page_views", 1)
    ...     _ = tx.add_to_set("users", "user_123", "tags", "premium")
    >>> engine.read("counters", "page_views")
    1
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal

from _rhizo import (
    AlgebraicOperation,
    AlgebraicTransaction,
    ConditionFailedError,
    ConfigError,
    ConvergenceError,
    CorruptLogError,
    DeadlineError,
    DecodeError,
    DirectoryLockedError,
    InvalidDotError,
    InvalidNodeIdError,
    InvalidOperationError,
    InvalidTransactionError,
    InvalidValueError,
    LocalCommitProtocol,
    NodeStateError,
    PoisonedError,
    PyAlgebraicMerger,
    PyAlgebraicOperation,
    PyAlgebraicTransaction,
    PyAlgebraicValue,
    PyCausalOrder,
    PyClusterNode,
    PyCommitOutcome,
    PyDot,
    PyEngine,
    PyEngineCluster,
    PyLocalCommitProtocol,
    PyMergedState,
    PyMergeType,
    PyNetworkCondition,
    PyNodeId,
    PyOpType,
    PySchema,
    PySimulatedCluster,
    PySimulatedNode,
    PySimulationBuilder,
    PySimulationConfig,
    PySimulationStats,
    PyTransaction,
    PyValueType,
    PyVectorClock,
    PyVersionedUpdate,
    ReadConflictError,
    RemoteRejectedError,
    RequiresCoordinationError,
    RhizoError,
    SchemaError,
    SimulatedCluster,
    SimulationBuilder,
    SimulationConfigError,
    SimulationError,
    StorageError,
    TransactionFinishedError,
    TypeMismatchError,
    UnknownCellError,
    UnknownModeError,
    UnknownNodeError,
    ValueOverflowError,
    VersionedUpdate,
    algebraic_merge,
)
from _rhizo import __version__ as __version__

# Friendlier names: the same objects, not wrappers. (AlgebraicOperation, AlgebraicTransaction,
# VersionedUpdate, LocalCommitProtocol, SimulationBuilder and SimulatedCluster are imported
# above: they are Rhizo's classes, separate from the roadmap's of the same role.)
NodeId = PyNodeId
Dot = PyDot
VectorClock = PyVectorClock
CausalOrder = PyCausalOrder
OpType = PyOpType
MergeType = PyMergeType
ValueType = PyValueType
AlgebraicValue = PyAlgebraicValue
AlgebraicMerger = PyAlgebraicMerger
Schema = PySchema
MergedState = PyMergedState
Engine = PyEngine
Transaction = PyTransaction
CommitOutcome = PyCommitOutcome
EngineCluster = PyEngineCluster
ClusterNode = PyClusterNode

SyncPolicy = Literal["every_commit", "group", "none"]
Backend = Literal["single_node", "raft"]
NetworkCondition = Literal[
    "perfect", "reordered", "delayed", "partitioned", "lossy", "duplicating", "chaos"
]


def open(
    path: str | os.PathLike[str] | None = None,
    node_id: str | PyNodeId | None = None,
    *,
    schema: PySchema | None = None,
    members: Iterable[str | PyNodeId] | None = None,
    sync: SyncPolicy = "every_commit",
) -> PyEngine:
    """Opens (or creates) the node stored in directory ``path``; ``None`` keeps it in memory.

    Without ``schema`` the engine declares the roadmap's tables: ``counters.value`` (integer
    ADD) and ``users.tags`` (observed-remove string set).

    One engine owns a directory at a time: opening it again, in this process or another,
    raises ``DirectoryLockedError`` (and touches nothing) until that engine is closed or its
    process ends. ``sync``: ``"every_commit"`` makes each commit durable before it returns;
    ``"group"`` batches commits and a background thread makes each batch durable within its
    delay (``outcome.durable`` is ``False``, ``engine.is_durable(outcome)`` says when);
    ``"none"`` survives a crash of the process but not a power loss until ``flush()``.
    """
    return PyEngine(
        path,
        node_id,
        schema=schema,
        members=None if members is None else list(members),
        sync=sync,
    )


def simulate(
    nodes: int = 3,
    *,
    seed: int = 0,
    schema: PySchema | None = None,
    backend: Backend = "single_node",
    network: NetworkCondition = "perfect",
    sync: SyncPolicy = "every_commit",
    root: str | os.PathLike[str] | None = None,
) -> PyEngineCluster:
    """A cluster of ``nodes`` engines on a simulated ``network``, reproducible from ``seed``.

    ``backend="raft"`` orders coordinated transactions by Raft consensus over the simulated
    network; ``"single_node"`` allows coordination-free ones only. Without ``schema`` every
    engine declares the roadmap's tables. For finer network settings, build a
    ``SimulationBuilder`` and pass it to ``EngineCluster`` directly.

        >>> cluster = simulate(3, seed=1)
        >>> with cluster.node(0).transaction(mode="coordination_free") as tx:
        ...     _ = tx.increment("counters", "page_views", 1)
        >>> _ = cluster.run_until_quiescent(1000)
        >>> cluster.node(2).read("counters", "page_views")
        1
    """
    builder = SimulationBuilder().nodes(nodes).seed(seed).network_condition(network)
    return PyEngineCluster(builder, schema, backend=backend, sync=sync, root=root)


__all__ = [
    "AlgebraicMerger",
    "AlgebraicOperation",
    "AlgebraicTransaction",
    "AlgebraicValue",
    "Backend",
    "CausalOrder",
    "ClusterNode",
    "CommitOutcome",
    "ConditionFailedError",
    "ConfigError",
    "ConvergenceError",
    "CorruptLogError",
    "DeadlineError",
    "DecodeError",
    "DirectoryLockedError",
    "Dot",
    "Engine",
    "EngineCluster",
    "InvalidDotError",
    "InvalidNodeIdError",
    "InvalidOperationError",
    "InvalidTransactionError",
    "InvalidValueError",
    "LocalCommitProtocol",
    "MergeType",
    "MergedState",
    "NetworkCondition",
    "NodeId",
    "NodeStateError",
    "OpType",
    "PoisonedError",
    "PyAlgebraicMerger",
    "PyAlgebraicOperation",
    "PyAlgebraicTransaction",
    "PyAlgebraicValue",
    "PyCausalOrder",
    "PyClusterNode",
    "PyCommitOutcome",
    "PyDot",
    "PyEngine",
    "PyEngineCluster",
    "PyLocalCommitProtocol",
    "PyMergeType",
    "PyMergedState",
    "PyNetworkCondition",
    "PyNodeId",
    "PyOpType",
    "PySchema",
    "PySimulatedCluster",
    "PySimulatedNode",
    "PySimulationBuilder",
    "PySimulationConfig",
    "PySimulationStats",
    "PyTransaction",
    "PyValueType",
    "PyVectorClock",
    "PyVersionedUpdate",
    "ReadConflictError",
    "RemoteRejectedError",
    "RequiresCoordinationError",
    "RhizoError",
    "Schema",
    "SchemaError",
    "SimulatedCluster",
    "SimulationBuilder",
    "SimulationConfigError",
    "SimulationError",
    "StorageError",
    "SyncPolicy",
    "Transaction",
    "TransactionFinishedError",
    "TypeMismatchError",
    "UnknownCellError",
    "UnknownModeError",
    "UnknownNodeError",
    "ValueOverflowError",
    "VectorClock",
    "VersionedUpdate",
    "__version__",
    "algebraic_merge",
    "open",
    "simulate",
]
