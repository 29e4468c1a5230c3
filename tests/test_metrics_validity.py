"""Validity: golden values on hand-built crystals, SMACT 2.x quirks, and invariances."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_fixtures import (
    CELL_TRANSFORMS,
    alloy,
    close_across_boundary,
    crystals,
    imbalanced_oxide,
    perovskite,
    rocksalt,
    tiny_cell,
    unary,
)

from harness.metrics.validity import (
    comp_validity,
    element_counts,
    min_interatomic_distance,
    pauling_test_smact2,
    smact_validity,
    struct_validity,
)


@pytest.mark.parametrize(
    ("structure", "struct_ok", "comp_ok"),
    [
        (rocksalt(), True, True),
        (perovskite(), True, True),
        (unary(), True, True),
        (alloy(), True, True),
        (imbalanced_oxide(), True, False),
        (close_across_boundary(0.4), False, True),
        (close_across_boundary(0.6), True, True),
        (tiny_cell(), False, True),
    ],
    ids=[
        "NaCl",
        "SrTiO3",
        "unary",
        "alloy",
        "NaO2",
        "0.4A-across-boundary",
        "0.6A-across-boundary",
        "tiny-cell",
    ],
)
def test_golden_validity(structure, struct_ok, comp_ok):
    assert struct_validity(structure) is struct_ok
    assert comp_validity(structure) is comp_ok


def test_distance_is_minimum_image():
    assert min_interatomic_distance(close_across_boundary(0.4)) == pytest.approx(0.4)
    assert min_interatomic_distance(tiny_cell()) == math.inf  # a site's own image is not counted (CDVAE)


def test_counts_reduced_by_gcd_in_atomic_number_order():
    assert element_counts(rocksalt()) == {"Na": 1, "Cl": 1}
    assert list(element_counts(perovskite())) == ["O", "Ti", "Sr"]
    assert element_counts(perovskite()) == {"O": 3, "Ti": 1, "Sr": 1}


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"He": 1}, True),  # a single element is always valid
        ({"He": 1, "O": 1}, False),  # He has no smact14 states: cannot balance charge
        ({"Ar": 1, "Cl": 2}, False),
        ({"Fe": 1, "O": 1}, True),
        ({"Na": 1, "O": 2}, False),  # no neutral combination
        ({"H": 2, "Cl": 1}, False),  # neutral only as H(-1)2 Cl(+2): fails the Pauling test
        ({"Na": 1, "B": 1}, False),  # neutral only as Na(-1) B(+1): fails the Pauling test
        # Pm has no electronegativity: SMACT 2.x raised TypeError -> pass (SMACT 4 fails it)
        ({"S": 1, "Pm": 1}, True),
        ({"Cu": 3, "Zn": 1, "Fe": 2}, True),  # all metals
        # more than 10^7 oxidation-state combinations: DiffCSP's cap
        ({"Mn": 1, "Os": 1, "Ir": 1, "Re": 1, "Tc": 1, "Ru": 1, "Cl": 1, "N": 1}, False),
    ],
)
def test_smact_golden(counts, expected):
    assert smact_validity(counts) is expected


def test_pauling_test_is_order_sensitive_like_smact2():
    # an earlier violating pair returns False before the missing electronegativity is ever compared
    assert pauling_test_smact2([1, -1, 2], [3.0, 1.0, None]) is False
    with pytest.raises(TypeError):
        pauling_test_smact2([1, -1, 2], [1.0, None, 1.5])
    assert pauling_test_smact2([2, 1], [None, 1.0]) is True  # two cations: nothing is compared


def test_pauling_not_used_when_disabled():
    assert smact_validity({"H": 2, "Cl": 1}, use_pauling_test=False) is True


def test_smact14_list_not_current_default():
    # smact14 gives Fe -2..+6; SMACT 4's default (ICSD24) does not include the negative states
    from harness.metrics.validity import oxidation_data

    assert oxidation_data("Fe")[0] == (-2, -1, 1, 2, 3, 4, 5, 6)
    assert oxidation_data("He")[0] == ()


def test_comp_validity_accepts_formula_dict_and_composition():
    from pymatgen.core import Composition

    assert comp_validity({"Na": 2, "Cl": 2}) is True
    assert comp_validity(Composition("NaO2")) is False
    assert comp_validity("Fe2O3") is True
    assert comp_validity({"Og": 1, "O": 1}) is False  # unknown to SMACT


TRANSFORMS = CELL_TRANSFORMS


@settings(max_examples=40, deadline=None, derandomize=True)
@given(crystals(), st.integers(0, 1000), st.sampled_from(sorted(TRANSFORMS)))
def test_validity_invariances(structure, seed, name):
    other = TRANSFORMS[name](structure, seed)
    assert struct_validity(other) == struct_validity(structure)
    assert comp_validity(other) == comp_validity(structure)
    if name != "supercell":  # a supercell adds distances to a site's own images, which CDVAE never counts
        assert min_interatomic_distance(other) == pytest.approx(min_interatomic_distance(structure), abs=1e-6)
