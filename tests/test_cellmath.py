"""The cell filter's 3×3 matrix functions agree with scipy's, and the filter uses them."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.stability import cellmath

near_identity = st.tuples(
    arrays(np.float64, (3, 3), elements=st.floats(-1, 1)),
    st.sampled_from([1e-8, 1e-4, 1e-2, 0.1, 0.4]),
).map(lambda pair: np.eye(3) + pair[0] * pair[1])


@settings(max_examples=300, deadline=None)
@given(near_identity)
def test_logm_matches_scipy(matrix):
    assert np.allclose(cellmath.logm(matrix), scipy.linalg.logm(matrix), rtol=0, atol=1e-11)


# Rounding in V (D ∘ V⁻¹ E V) V⁻¹ grows as cond(V)²·eps; with cond(V) ≤ 100 that stays below 1e-9, a millionth
# of what FIRE's fmax = 0.1 eV/Å resolves. A wrong formula misses by order one.
FRECHET_TOLERANCE = 1e-9


@settings(max_examples=300, deadline=None)
@given(near_identity, st.integers(0, 2), st.integers(0, 2))
def test_expm_frechet_matches_scipy(matrix, row, column):
    log = scipy.linalg.logm(matrix)
    direction = np.zeros((3, 3))
    direction[row, column] = 1.0
    expected_exp, expected = scipy.linalg.expm_frechet(log, direction)
    derivative = cellmath.expm_frechet(log, direction, compute_expm=False)
    assert np.allclose(derivative, expected, rtol=0, atol=FRECHET_TOLERANCE)
    exponential, derivative = cellmath.expm_frechet(log, direction)
    assert np.allclose(exponential, expected_exp, rtol=0, atol=FRECHET_TOLERANCE)
    assert np.allclose(derivative, expected, rtol=0, atol=FRECHET_TOLERANCE)


@pytest.mark.parametrize(
    "matrix",
    [
        np.eye(3),  # the undeformed cell: a triple eigenvalue
        1.07 * np.eye(3),  # isotropic strain of a cubic cell
        np.diag([1.1, 1.1, 0.9]),  # a tetragonal strain: a double eigenvalue
        np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1.1]]),  # complex pair
        np.array([[1.0, 1e-3, 0], [0, 1.0, 0], [0, 0, 1.0]]),  # defective: scipy takes over
    ],
)
def test_special_matrices_match_scipy(matrix):
    log = scipy.linalg.logm(matrix)
    assert np.allclose(cellmath.logm(matrix), log, rtol=0, atol=1e-12)
    direction = np.arange(9.0).reshape(3, 3)
    expected = scipy.linalg.expm_frechet(log, direction, compute_expm=False)
    assert np.allclose(cellmath.expm_frechet(log, direction, compute_expm=False), expected, rtol=0, atol=1e-10)


def test_defective_matrix_uses_scipy():
    assert cellmath._eigen_of(np.array([[1.0, 1e-3, 0], [0, 1.0, 0], [0, 0, 1.0]])) is None


def test_negative_eigenvalue_gives_scipys_complex_log():
    matrix = np.diag([-1.0, 1.0, 2.0])
    assert np.allclose(cellmath.logm(matrix), scipy.linalg.logm(matrix))


def test_installed_filter_gives_scipys_forces():
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter

    filters = []
    for _ in range(2):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
        atoms.rattle(0.05, seed=1)
        atoms.calc = EMT()
        filters.append(FrechetCellFilter(atoms))
    reference, fast = filters
    assert cellmath.install(fast), "the installed ASE's FrechetCellFilter no longer exposes logm/expm_frechet"
    used = getattr(fast, "_utility", fast)  # where ASE's get_forces and get_positions look the functions up
    assert used.logm is cellmath.logm and used.expm_frechet is cellmath.expm_frechet
    step = np.random.default_rng(0).normal(scale=0.02, size=reference.get_positions().shape)
    for cell_filter in filters:
        cell_filter.set_positions(cell_filter.get_positions() + step)  # moves atoms and strains the cell
    assert not np.allclose(fast.atoms.cell, bulk("Cu", "fcc", a=3.7, cubic=True).cell)
    assert np.allclose(fast.get_positions(), reference.get_positions(), rtol=0, atol=1e-12)
    assert np.allclose(fast.get_forces(), reference.get_forces(), rtol=0, atol=1e-10)
