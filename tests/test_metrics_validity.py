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
    validity_flags,
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
        ({"He": 1, "O": 1}, False),  # He has no SMACT 2.2.1 states: cannot balance charge
        ({"Ar": 1, "Cl": 2}, False),
        ({"Fe": 1, "O": 1}, True),
        ({"Na": 1, "O": 2}, False),  # no neutral combination
        ({"H": 2, "Cl": 1}, False),  # neutral only as H(-1)2 Cl(+2): fails the Pauling test
        ({"Na": 1, "B": 1}, False),  # neutral only as Na(-1) B(+1): fails the Pauling test
        # Pm has no electronegativity: SMACT 2.2.1 raised TypeError on the cation-anion pair -> pass (SMACT >= 2.6 fails it)
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
    # a pair of like charges with a missing value fails (SMACT 2.2.1's eneg_states_test), before any later pair
    assert pauling_test_smact2([2, 1], [None, 1.0]) is False
    assert pauling_test_smact2([2, 1, -1], [None, 1.0, 3.0]) is False
    with pytest.raises(TypeError):  # here the cation-anion pair comes first
        pauling_test_smact2([2, -1, 1], [None, 3.0, 1.0])


def test_pauling_not_used_when_disabled():
    assert smact_validity({"H": 2, "Cl": 1}, use_pauling_test=False) is True


def test_protocol_data_is_smact_2_2_1():
    # SMACT 2.2.1's Element.oxidation_states (the list SMACT >= 3 calls smact14, with Ir -2) and electronegativities
    from harness.metrics.validity import oxidation_data

    assert oxidation_data("Fe")[0] == (-2, -1, 1, 2, 3, 4, 5, 6)  # SMACT >= 3's default (ICSD24) has no negatives
    assert oxidation_data("He")[0] == ()
    assert oxidation_data("Ir") == ((-2, -1, 1, 2, 3, 4, 5, 6, 7, 8), 2.2)  # -3 from SMACT 2.3 on
    assert oxidation_data("Zr")[1] == 0.33  # 1.33 from SMACT 2.5.4 on
    assert oxidation_data("Pm")[1] is None
    with pytest.raises(KeyError):
        oxidation_data("Rf")  # SMACT 2.2.1 lists states for Rf..Hs but cannot build them (no element data)


def test_shipped_table_is_installed_smact14_but_for_ir_and_zr():
    """The shipped table against the installed SMACT: only the differences issue 25 found (a SMACT release that
    edits smact14 again shows up here, without moving xtalbench's numbers)."""
    smact = pytest.importorskip("smact")
    from harness.metrics.validity import smact_table

    table = smact_table()
    assert len(table["source"]["wheel_sha256"]) == 64 and table["source"]["package"] == "SMACT==2.2.1 (PyPI)"
    if not hasattr(smact.Element("Fe"), "oxidation_states_smact14"):
        pytest.skip("the installed SMACT has no oxidation_states_smact14")
    states, eneg = {}, {}
    for symbol in table["oxidation_states"]:
        element = smact.Element(symbol)
        if list(element.oxidation_states_smact14 or []) != table["oxidation_states"][symbol]:
            states[symbol] = element.oxidation_states_smact14
        if element.pauling_eneg != table["pauling_eneg"][symbol]:
            eneg[symbol] = element.pauling_eneg
    assert states == {"Ir": [-3, -1, 1, 2, 3, 4, 5, 6, 7, 8]}
    assert eneg == {"Zr": 1.33}
    assert frozenset(smact.metals) == frozenset(table["metals"])


@pytest.mark.parametrize(
    ("counts", "expected", "why"),
    [
        # DiffCSP's posted MP-20 samples where SMACT releases disagree (results/benchmarks/smact_tables_mp20_diffcsp.json)
        ({"Si": 2, "V": 6, "Cu": 1, "Ir": 4}, False, "balances only with Ir -3 (smact14, SMACT >= 2.3): valid there"),
        ({"Y": 1, "Pm": 1, "Ir": 1, "Au": 1}, False, "cation pair Y-Pm without an electronegativity fails first"),
        ({"Si": 1, "Sn": 1, "Pm": 1}, False, "like-charge pair with Pm fails first"),
        ({"Rh": 2, "Pm": 1, "Pt": 1}, True, "Pm's cation-anion comparison raises TypeError: pass (SMACT >= 2.6: fail)"),
        ({"Si": 1, "Ru": 1, "Pm": 2}, True, "as above"),
        ({"S": 1, "Pm": 1}, True, "as above"),
        ({"Cl": 3, "Pm": 1}, True, "as above"),
        ({"Sn": 1, "Pm": 1, "Au": 2}, True, "MP-20 val: as above"),
    ],
)
def test_decisive_compositions_as_smact_2_2_1(counts, expected, why):
    assert comp_validity(counts) is expected, why


def test_dict_counts_are_checked_in_atomic_number_order():
    # the Pauling test is order-sensitive; CDVAE sorts by atomic number, so comp_validity does too
    shuffled = {"Pm": 1, "Ir": 1, "Y": 1, "Au": 1}
    assert smact_validity(shuffled) is True  # in this order the Pm-Ir cation-anion pair raises first
    assert comp_validity(shuffled) is comp_validity({"Y": 1, "Pm": 1, "Ir": 1, "Au": 1}) is False


def test_comp_validity_accepts_formula_dict_and_composition():
    from pymatgen.core import Composition

    assert comp_validity({"Na": 2, "Cl": 2}) is True
    assert comp_validity(Composition("NaO2")) is False
    assert comp_validity("Fe2O3") is True
    assert comp_validity({"Og": 1, "O": 1}) is False  # unknown to SMACT 2.2.1


TRANSFORMS = CELL_TRANSFORMS


@settings(max_examples=40, deadline=None, derandomize=True)
@given(crystals(), st.integers(0, 1000), st.sampled_from(sorted(TRANSFORMS)))
def test_validity_invariances(structure, seed, name):
    other = TRANSFORMS[name](structure, seed)
    assert struct_validity(other) == struct_validity(structure)
    assert comp_validity(other) == comp_validity(structure)
    if name != "supercell":  # a supercell adds distances to a site's own images, which CDVAE never counts
        assert min_interatomic_distance(other) == pytest.approx(min_interatomic_distance(structure), abs=1e-6)


def test_validity_flags_count_a_missing_structure_and_a_failing_check_as_invalid():
    class Broken:  # a structure whose checks raise: counted invalid, never raised
        @property
        def composition(self):
            raise ValueError("no composition")

        def __len__(self):
            raise ValueError("no sites")

    struct, comp = validity_flags([rocksalt(), None, Broken(), imbalanced_oxide()])
    assert struct == [True, False, False, True]
    assert comp == [True, False, False, False]
