"""`PyAlgebraicTransaction` as the roadmap's users call it."""

from __future__ import annotations

import pytest

from _rhizo import PyAlgebraicOperation, PyAlgebraicTransaction, PyAlgebraicValue, PyOpType


def op(key: str, kind: str, value: object) -> PyAlgebraicOperation:
    return PyAlgebraicOperation(key, PyOpType(kind), PyAlgebraicValue(value))


def test_an_empty_transaction() -> None:
    tx = PyAlgebraicTransaction()
    assert tx.len() == 0 and tx.is_empty()
    assert tx.is_fully_algebraic()
    assert repr(tx) == "AlgebraicTransaction(ops=0, algebraic=true)"


def test_add_operation_appends_any_kind_and_repeated_keys() -> None:
    tx = PyAlgebraicTransaction()
    assert tx.add_operation(op("k", "add", 1)) is None
    tx.add_operation(op=op("k", "add", 2))
    assert (tx.len(), tx.is_empty(), tx.is_fully_algebraic()) == (2, False, True)
    tx.add_operation(op("r", "overwrite", 3))
    assert tx.len() == 3 and not tx.is_fully_algebraic()
    assert repr(tx) == "AlgebraicTransaction(ops=3, algebraic=false)"


def test_len_is_a_method_only() -> None:
    with pytest.raises(TypeError):
        len(PyAlgebraicTransaction())  # type: ignore[arg-type]


def test_metadata() -> None:
    tx = PyAlgebraicTransaction()
    assert tx.get_metadata("request") is None
    assert tx.set_metadata("request", "1") is None
    tx.set_metadata(key="request", value="2")
    tx.set_metadata("user", "ada")
    assert tx.get_metadata("request") == "2"
    assert tx.get_metadata(key="user") == "ada"
    with pytest.raises(TypeError):
        tx.set_metadata("n", 1)  # type: ignore[arg-type]


def test_transactions_compare_by_identity_and_take_operations_only() -> None:
    a, b = PyAlgebraicTransaction(), PyAlgebraicTransaction()
    assert a != b and a == a
    with pytest.raises(TypeError):
        a.add_operation("k")  # type: ignore[arg-type]
