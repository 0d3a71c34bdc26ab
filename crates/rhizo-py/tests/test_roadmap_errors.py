"""Every domain error `_rhizo` raises is a `ValueError` and stays a typed `RhizoError`."""

from __future__ import annotations

import inspect

import pytest

import _rhizo
import rhizo

CLASSES = [
    cls for _, cls in inspect.getmembers(_rhizo, inspect.isclass) if issubclass(cls, BaseException)
]
STORAGE = {
    _rhizo.StorageError,
    _rhizo.PoisonedError,
    _rhizo.CorruptLogError,
    _rhizo.DirectoryLockedError,
}


def test_the_hierarchy_is_complete() -> None:
    assert len(CLASSES) == 28
    assert all(issubclass(cls, _rhizo.RhizoError) for cls in CLASSES)


@pytest.mark.parametrize(
    "cls", [c for c in CLASSES if c is not _rhizo.RhizoError], ids=lambda cls: cls.__name__
)
def test_every_domain_error_is_a_value_error(cls: type[BaseException]) -> None:
    # Storage failures are OSErrors only: a handler for bad arguments must not swallow them.
    assert issubclass(cls, ValueError) is (cls not in STORAGE)
    assert issubclass(cls, OSError) is (cls in STORAGE or issubclass(cls, TimeoutError))


def test_the_base_class_is_not_a_value_error() -> None:
    # Because the storage family derives from it.
    assert not issubclass(_rhizo.RhizoError, ValueError)
    assert issubclass(_rhizo.RhizoError, Exception)


def test_precise_built_in_bases_stay() -> None:
    assert issubclass(_rhizo.TypeMismatchError, TypeError)
    assert issubclass(_rhizo.ValueOverflowError, OverflowError)
    assert issubclass(_rhizo.UnknownCellError, LookupError)
    assert issubclass(_rhizo.UnknownNodeError, IndexError)
    assert issubclass(_rhizo.DeadlineError, TimeoutError)


def test_raised_errors_are_caught_as_value_errors_everywhere() -> None:
    # One call per class family, through the roadmap's classes and through Rhizo's own.
    calls = [
        lambda: _rhizo.PyNodeId(""),
        lambda: _rhizo.PyOpType("frobnicate"),
        lambda: _rhizo.PyOpType.from_name("add"),
        lambda: _rhizo.PyVectorClock.from_json("{"),
        lambda: _rhizo.PySimulatedCluster(0),
        lambda: rhizo.Schema({"t": {"c": ("MULTIPLY", "decimal(2)")}}),
        lambda: rhizo.AlgebraicMerger.merge("OVERWRITE", 1, 2),
        lambda: rhizo.open(None).transaction(mode="sideways"),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert isinstance(info.value, rhizo.RhizoError), info.value
