"""Transactions of the roadmap's surface, for the simulator tests."""

from __future__ import annotations

from _rhizo import PyAlgebraicOperation, PyAlgebraicTransaction, PyAlgebraicValue, PyOpType


def transaction(*ops: tuple[str, str, object]) -> PyAlgebraicTransaction:
    """A transaction of `(key, kind, value)` operations."""
    tx = PyAlgebraicTransaction()
    for key, kind, value in ops:
        tx.add_operation(PyAlgebraicOperation(key, PyOpType(kind), PyAlgebraicValue(value)))
    return tx


def add(key: str, amount: int) -> PyAlgebraicTransaction:
    """A transaction that adds `amount` to `key`."""
    return transaction((key, "add", amount))
