"""COV-R / COV-P on fingerprint arrays small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cards import BUILTIN_CARDS, DatasetCard
from harness.metrics.coverage import coverage, coverage_cutoffs


def test_separately_minimised_and():
    # one reference crystal; sample 0 matches its structure only, sample 1 its composition only
    ref_s, ref_c = np.array([[0.0, 0.0]]), np.array([[0.0, 0.0]])
    gen_s = np.array([[0.0, 0.0], [5.0, 0.0]])
    gen_c = np.array([[10.0, 0.0], [0.0, 0.0]])
    recall, precision = coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.4, comp_cutoff=1.0)
    assert recall == 1.0  # nearest structure (sample 0) and nearest composition (sample 1) taken separately
    assert precision == 0.0  # neither sample is close in both


def test_comparisons_are_inclusive():
    ref_s, ref_c = np.array([[0.0]]), np.array([[0.0]])
    gen_s, gen_c = np.array([[0.25]]), np.array([[4.0]])  # exactly at the composition cutoff
    assert coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.25, comp_cutoff=4.0) == (1.0, 1.0)
    assert coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.2499, comp_cutoff=4.0) == (0.0, 0.0)


def test_hand_computed_values_and_prefilter_denominator():
    ref_s = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    ref_c = np.array([[0.0], [1.0], [2.0]])
    gen_s = np.array([[0.1, 0.0], [1.0, 0.3], [9.0, 9.0]])
    gen_c = np.array([[0.0], [1.5], [2.0]])
    # struct distances (gen x ref): g0 -> (0.1, 0.9, 3.0), g1 -> (1.04, 0.3, 2.9), g2 -> far
    # comp distances: g0 -> (0, 1, 2), g1 -> (1.5, 0.5, 0.5), g2 -> (2, 1, 0)
    # cutoffs (0.35, 0.6): recall r0 yes (0.1, 0), r1 yes (0.3, 0.5), r2 no (struct 2.9)
    # precision: g0 yes, g1 yes (0.3, 0.5), g2 no
    recall, precision = coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.35, comp_cutoff=0.6)
    assert recall == pytest.approx(2 / 3)
    assert precision == pytest.approx(2 / 3)
    # five samples were requested; two had no fingerprint: denominator stays 5
    _, precision = coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.35, comp_cutoff=0.6, n_generated=5)
    assert precision == pytest.approx(2 / 5)


def test_failed_reference_rows_count_as_not_covered():
    ref_s, ref_c = np.array([[0.0], [np.nan]]), np.array([[0.0], [np.nan]])
    gen_s, gen_c = np.array([[0.0]]), np.array([[0.0]])
    recall, precision = coverage(
        gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.1, comp_cutoff=0.1, ref_ok=np.array([True, False])
    )
    assert (recall, precision) == (0.5, 1.0)


def test_chunking_matches_one_matrix():
    rng = np.random.default_rng(0)
    gen_s, gen_c = rng.normal(size=(2500, 3)), rng.normal(size=(2500, 4))
    ref_s, ref_c = rng.normal(size=(300, 3)), rng.normal(size=(300, 4))
    from scipy.spatial.distance import cdist

    ds, dc = cdist(gen_s, ref_s), cdist(gen_c, ref_c)
    expected_r = np.mean((ds.min(0) <= 0.3) & (dc.min(0) <= 0.8))
    expected_p = np.mean((ds.min(1) <= 0.3) & (dc.min(1) <= 0.8))
    assert coverage(gen_s, gen_c, ref_s, ref_c, struct_cutoff=0.3, comp_cutoff=0.8) == (
        pytest.approx(expected_r),
        pytest.approx(expected_p),
    )


def test_edge_cases_and_cutoffs():
    empty = np.zeros((0, 2))
    ref = np.zeros((3, 2))
    assert coverage(empty, empty, ref, ref, struct_cutoff=1, comp_cutoff=1, n_generated=4) == (0.0, 0.0)
    assert coverage(ref, ref, empty, empty, struct_cutoff=1, comp_cutoff=1) == (None, None)
    with pytest.raises(ValueError):
        coverage(ref, ref, ref, ref, struct_cutoff=1, comp_cutoff=1, n_generated=2)
    assert coverage_cutoffs(BUILTIN_CARDS["mp20"]) == (0.4, 10.0)
    assert coverage_cutoffs(BUILTIN_CARDS["perov5"]) == coverage_cutoffs(BUILTIN_CARDS["carbon24"]) == (0.2, 4.0)
    assert coverage_cutoffs(DatasetCard("own", "own", {}, cov_cutoffs=(0.3, 5.0))) == (0.3, 5.0)
    with pytest.raises(KeyError, match="'nope': its DatasetCard must set cov_cutoffs"):
        coverage_cutoffs(DatasetCard("nope", "nope", {}))
