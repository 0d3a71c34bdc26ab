"""Transactions of the roadmap's surface, for the simulator tests."""

from __future__ import annotations

from _rhizo import (
    PyAlgebraicOperation,
    PyAlgebraicTransaction,
    PyAlgebraicValue,
    PyOpType,
    PySimulatedCluster,
    PySimulationConfig,
)


def transaction(*ops: tuple[str, str, object]) -> PyAlgebraicTransaction:
    """A transaction of `(key, kind, value)` operations."""
    tx = PyAlgebraicTransaction()
    for key, kind, value in ops:
        tx.add_operation(PyAlgebraicOperation(key, PyOpType(kind), PyAlgebraicValue(value)))
    return tx


def add(key: str, amount: int) -> PyAlgebraicTransaction:
    """A transaction that adds `amount` to `key`."""
    return transaction((key, "add", amount))


def cut_pair(max_rounds: int) -> PySimulatedCluster:
    """Two nodes cut off from each other, whose `propagate_all()` runs `max_rounds` rounds."""
    config = PySimulationConfig()
    config.max_rounds = max_rounds
    cluster = PySimulatedCluster.with_config(2, config)
    cluster.partition(0, 1)
    return cluster
