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

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

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
    PyClient,
    PyClusterNode,
    PyCommitOutcome,
    PyDot,
    PyEngine,
    PyEngineCluster,
    PyLocalCommitProtocol,
    PyMergedState,
    PyMergeType,
    PyNetworkCondition,
    PyNode,
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
    tls_ca,
    tls_client,
    tls_node,
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
Node = PyNode
Client = PyClient

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


_PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Tls:
    """PEM files of a TLS identity in a cluster (``rhizo tls`` makes them): ``ca``, the cluster
    CA's certificate; ``cert`` and ``key``, this node's (or client's) certificate and key."""

    ca: _PathLike
    cert: _PathLike | None = None
    key: _PathLike | None = None


def _peer_map(peers: Mapping[str, str] | Iterable[str | tuple[str, str]] | None) -> dict[str, str]:
    """Peers as ``{node_id: "host:port"}``, from a mapping, ``(id, address)`` pairs or
    ``"id=host:port"`` strings."""
    if peers is None:
        return {}
    if isinstance(peers, Mapping):
        return {str(k): str(v) for k, v in peers.items()}
    out: dict[str, str] = {}
    for peer in peers:
        if isinstance(peer, str):
            node, sep, address = peer.partition("=")
            if not sep:
                raise ConfigError(f"peer {peer!r} is not 'id=host:port'")
            out[node] = address
        else:
            node, address = peer
            out[str(node)] = str(address)
    return out


def start_node(
    data_dir: _PathLike | None = None,
    node_id: str | PyNodeId | None = None,
    *,
    listen: str = "127.0.0.1:0",
    peers: Mapping[str, str] | Iterable[str | tuple[str, str]] | None = None,
    tls: Tls | None = None,
    insecure: bool = False,
    cluster_id: str = "rhizo",
    client_listen: str | None = None,
    schema: PySchema | None = None,
    sync: SyncPolicy = "every_commit",
    config: _PathLike | None = None,
    **settings: Any,
) -> PyNode:
    """Starts a networked node in this process and returns it (a ``Node``: ``transaction``,
    ``atransaction``, ``read``, ``status``, ``fingerprint``, ``declare_column``, ``close``, and
    a context manager). Its network runs on Rust threads.

    ``data_dir`` holds its log (``None``: in memory). ``peers`` are the other members,
    ``{"n2": "127.0.0.1:7002", ...}`` (or ``["n2=127.0.0.1:7002", ...]``); ``listen`` is
    where they reach this node. Peers and clients use mutual TLS with ``tls=Tls(ca, cert,
    key)``; plaintext only with ``insecure=True`` (a ``UserWarning`` says so).
    ``client_listen`` opens a listener for ``rhizo.connect`` and the ``rhizo`` CLI.
    ``**settings`` are further keys of the node configuration file (``docs/config.md``):
    ``tick_ms=5``, ``commit_timeout_ms=2000``, ``raft={"election_ticks": 20}``, ...; an
    unknown one raises ``ConfigError`` naming it. Without ``schema`` the node declares the
    roadmap's tables (``counters.value``, ``users.tags``), as ``rhizo.open`` does.

    Or ``start_node(config="n1.toml")`` starts the node a configuration file describes.
    """
    if config is not None:
        given = data_dir is not None or node_id is not None or peers or tls or settings
        if given or insecure or client_listen is not None:
            raise ConfigError("start_node(config=...) takes its settings from the file")
        return PyNode(config=config, schema=schema)
    if node_id is None:
        raise ConfigError("start_node needs a node_id (or config=...)")
    name = node_id.name if isinstance(node_id, PyNodeId) else str(node_id)
    members = _peer_map(peers)
    members[name] = listen
    document: dict[str, Any] = {
        "node_id": name,
        "cluster_id": cluster_id,
        "data_dir": None if data_dir is None else os.fspath(data_dir),
        "listen": listen,
        "members": members,
        "sync": {"policy": sync},
    }
    if tls is not None:
        if tls.cert is None or tls.key is None:
            raise ConfigError("a node's Tls needs ca, cert and key")
        document["tls"] = {
            "ca_cert": os.fspath(tls.ca),
            "cert": os.fspath(tls.cert),
            "key": os.fspath(tls.key),
        }
    if insecure:
        document["insecure"] = True
    if client_listen is not None:
        document["client"] = {"listen": client_listen}
    document.update(settings)
    return PyNode(json.dumps(document), schema=schema)


def connect(
    address: str,
    *,
    tls: Tls | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
) -> PyClient:
    """Connects to a running node's client listener at ``"host:port"`` (a ``rhizo agent``, or
    a ``Node`` started with ``client_listen``); returns a ``Client`` with the engine's
    transaction API. ``tls=Tls(ca, cert, key)``: the node must hold a certificate of that CA,
    and ``cert``/``key`` identify this client. Plaintext only with ``insecure=True`` (a
    ``UserWarning`` says so). ``timeout`` (seconds) bounds connecting and every request.
    """
    if tls is None:
        if not insecure:
            raise ConfigError("connect needs tls=Tls(...) or, on a trusted network, insecure=True")
        warnings.warn(
            "rhizo client connected insecure: neither encrypted nor authenticated",
            UserWarning,
            stacklevel=2,
        )
        return PyClient(address, timeout=timeout)
    if insecure:
        raise ConfigError("give tls or insecure=True, not both")
    return PyClient(address, ca=tls.ca, cert=tls.cert, key=tls.key, timeout=timeout)


__all__ = [
    "AlgebraicMerger",
    "AlgebraicOperation",
    "AlgebraicTransaction",
    "AlgebraicValue",
    "Backend",
    "CausalOrder",
    "Client",
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
    "Node",
    "NodeId",
    "NodeStateError",
    "OpType",
    "PoisonedError",
    "PyAlgebraicMerger",
    "PyAlgebraicOperation",
    "PyAlgebraicTransaction",
    "PyAlgebraicValue",
    "PyCausalOrder",
    "PyClient",
    "PyClusterNode",
    "PyCommitOutcome",
    "PyDot",
    "PyEngine",
    "PyEngineCluster",
    "PyLocalCommitProtocol",
    "PyMergeType",
    "PyMergedState",
    "PyNetworkCondition",
    "PyNode",
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
    "Tls",
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
    "connect",
    "open",
    "simulate",
    "start_node",
    "tls_ca",
    "tls_client",
    "tls_node",
]
