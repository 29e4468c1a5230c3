"""Wasserstein distances, the seeded valid subset, and space-group JSDs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_fixtures import (
    CELL_TRANSFORMS,
    crystals,
    perovskite,
    rocksalt,
)
from scipy.spatial.distance import jensenshannon

from harness.metrics.distributions import density, num_elements, wdist, wdist_subset
from harness.metrics.symmetry import (
    analyse_spacegroup,
    sg_histogram,
    sg_jsd,
    sg_jsd_symmcd,
    spacegroup_number,
)


def test_density_and_num_elements_golden():
    nacl = rocksalt(5.64)
    # 4 NaCl per 5.64^3 Å^3
    expected = 4 * (22.98976928 + 35.453) / 6.02214076e23 / (5.64e-8) ** 3
    assert density(nacl) == pytest.approx(expected, rel=1e-3)
    assert num_elements(nacl) == 2
    assert num_elements(perovskite()) == 3


def test_wdist_golden():
    assert wdist([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert wdist([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]) == pytest.approx(1.0)
    assert wdist([], [1.0]) is None


def test_subset_is_seeded_and_recorded():
    valid = list(range(0, 5000, 2))
    first = wdist_subset(valid, seed=7, n=1000)
    again = wdist_subset(valid, seed=7, n=1000)
    other = wdist_subset(valid, seed=8, n=1000)
    assert first.indices == again.indices and first.indices != other.indices
    assert len(set(first.indices)) == 1000 and set(first.indices) <= set(valid)
    assert first.note is None and first.seed == 7 and first.n_valid == 2500
    few = wdist_subset([3, 9], seed=0, n=1000)
    assert few.indices == (3, 9) and "only 2 valid" in few.note
    assert wdist_subset([], seed=0).note == "no valid samples"


def test_sg_jsd_golden():
    assert sg_jsd([1, 2, 225], [225, 2, 1]) == 0.0
    # disjoint supports: JS distance = sqrt(ln 2)
    assert sg_jsd([1, 1], [2]) == pytest.approx(np.sqrt(np.log(2)))
    p = np.zeros(230)
    p[[0, 1]] = [3, 1]
    q = np.zeros(230)
    q[[0, 224]] = [1, 1]
    assert sg_jsd([1, 1, 1, 2], [1, 225]) == pytest.approx(jensenshannon(p, q))
    assert sg_jsd([], [1]) is None
    assert sg_histogram([230, 1]).shape == (230,)


def test_sg_jsd_symmcd_merges_229_and_230():
    assert sg_jsd_symmcd([229], [230]) == 0.0  # same last bin in np.histogram(bins=range(1, 231))
    assert sg_jsd([229], [230]) == pytest.approx(np.sqrt(np.log(2)))
    test_hist = np.histogram([1, 2, 2], bins=range(1, 231))[0]
    sample_hist = np.histogram([1, 1, 2], bins=range(1, 231))[0]
    assert sg_jsd_symmcd([1, 1, 2], [1, 2, 2]) == pytest.approx(jensenshannon(test_hist, sample_hist))


def test_spacegroup_golden():
    assert spacegroup_number(rocksalt()) == 225
    assert spacegroup_number(perovskite()) == 221
    # a perovskite with O displaced by 0.03 Å: cubic at symprec 0.1, lower at 0.01
    s = perovskite()
    s.translate_sites([2], [0.0, 0.0, 0.03 / 3.9])
    assert spacegroup_number(s, 0.1) == 221 and spacegroup_number(s, 0.01) != 221


def test_unanalysable_structure_counts_as_p1():
    number, error = analyse_spacegroup(object())
    assert number == 1 and error


TRANSFORMS = CELL_TRANSFORMS


@settings(max_examples=30, deadline=None, derandomize=True)
@given(crystals(), st.integers(0, 1000), st.sampled_from(sorted(TRANSFORMS)))
def test_property_invariances(structure, seed, name):
    other = TRANSFORMS[name](structure, seed)
    assert density(other) == pytest.approx(density(structure), rel=1e-9)
    assert num_elements(other) == num_elements(structure)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.sampled_from(["NaCl", "SrTiO3", "MgO"]), st.integers(0, 1000), st.sampled_from(sorted(TRANSFORMS)))
def test_spacegroup_invariances(which, seed, name):
    structure = {"NaCl": rocksalt(), "SrTiO3": perovskite(), "MgO": rocksalt(4.21, ("Mg", "O"))}[which]
    other = TRANSFORMS[name](structure, seed)
    assert spacegroup_number(other) == spacegroup_number(structure)
