"""`PyOpType` as the roadmap's users call it: parsed from a spelling, classified, printed."""

from __future__ import annotations

import pytest

import _rhizo
from _rhizo import PyOpType

# (display name, spellings the constructor takes, family)
KINDS = [
    ("MAX", ["max", "semilattice_max"], "semilattice"),
    ("MIN", ["min", "semilattice_min"], "semilattice"),
    ("UNION", ["union", "semilattice_union"], "semilattice"),
    ("INTERSECT", ["intersect", "semilattice_intersect"], "semilattice"),
    ("ADD", ["add", "abelian_add"], "abelian"),
    ("MULTIPLY", ["multiply", "abelian_multiply"], "abelian"),
    ("OVERWRITE", ["overwrite", "generic_overwrite"], "coordinated"),
    ("CONDITIONAL", ["conditional", "generic_conditional"], "coordinated"),
    ("UNKNOWN", ["unknown"], "coordinated"),
]


@pytest.mark.parametrize(("name", "spellings", "family"), KINDS)
def test_every_spelling_in_any_case_parses_to_its_kind(
    name: str, spellings: list[str], family: str
) -> None:
    for spelling in spellings:
        for variant in (spelling, spelling.upper(), spelling.title()):
            op = PyOpType(variant)
            assert str(op) == name
            assert repr(op) == f"PyOpType({name})"
    op = PyOpType(op_type=spellings[0])
    assert op.is_conflict_free() == (family != "coordinated")
    assert op.is_semilattice() == (family == "semilattice")
    assert op.is_abelian() == (family == "abelian")


@pytest.mark.parametrize("spelling", ["", "plus", "abelian_max", "semilattice_add", "ADD "])
def test_other_spellings_raise_a_value_error_listing_the_valid_ones(spelling: str) -> None:
    with pytest.raises(ValueError, match=r"Valid: max, min, union, intersect, add") as info:
        PyOpType(spelling)
    assert str(info.value).startswith(f"Invalid operation type: '{spelling}'.")
    assert isinstance(info.value, _rhizo.SchemaError)


def test_the_constructor_takes_only_strings() -> None:
    with pytest.raises(TypeError):
        PyOpType(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PyOpType()  # type: ignore[call-arg]


def test_can_merge_with_needs_the_same_conflict_free_kind() -> None:
    add, max_, overwrite = PyOpType("add"), PyOpType("max"), PyOpType("overwrite")
    assert add.can_merge_with(PyOpType("ADD"))
    assert add.can_merge_with(other=PyOpType("abelian_add"))
    assert not add.can_merge_with(max_)
    assert not overwrite.can_merge_with(PyOpType("overwrite"))
    assert not PyOpType("unknown").can_merge_with(PyOpType("unknown"))
    with pytest.raises(TypeError):
        add.can_merge_with("add")  # type: ignore[arg-type]


def test_description_is_a_method_returning_one_sentence_per_kind() -> None:
    descriptions = {name: PyOpType(name).description() for name, _, _ in KINDS}
    assert all(isinstance(text, str) and text for text in descriptions.values())
    assert len(set(descriptions.values())) == len(KINDS)
    assert "coordination" in descriptions["OVERWRITE"]


def test_kinds_parsed_from_one_spelling_are_interchangeable() -> None:
    # Our addition: kinds compare and hash by value.
    assert PyOpType("add") == PyOpType("ABELIAN_ADD") == PyOpType.AbelianAdd
    assert len({PyOpType("min"), PyOpType("MIN"), PyOpType("max")}) == 2
