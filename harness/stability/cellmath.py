"""The 3×3 matrix functions of ASE's ``FrechetCellFilter``, by eigendecomposition instead of scipy's general solvers.

Every relaxation step takes two matrix logs and nine exponential derivatives of the 3×3 deformation gradient.
scipy's ``logm`` and ``expm_frechet`` handle matrices of any size and spend about 7 ms per step on the 3×3 case;
for the 5-atom Perov-5 cells that was half of a batched relaxation's time, more than CHGNet itself. A diagonalisable
3×3 matrix needs one ``numpy.linalg.eig``: log F = V log(Λ) V⁻¹, and the Fréchet derivative of exp at A = V Λ V⁻¹ in
direction E is V (D ∘ V⁻¹ E V) V⁻¹ with D the divided differences of exp over the eigenvalues (Daleckii–Krein).
Where the eigenvectors are ill-conditioned, the decomposition's residual is off, or a real eigenvalue is not positive,
scipy's own routine is used; elsewhere the results agree with scipy's within 1e-9 (``tests/test_cellmath.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["expm_frechet", "install", "logm"]

# The exponential's derivative is V (...) V⁻¹ with V⁻¹ inside as well, so its rounding error grows as cond(V)²·eps.
# Above cond(V) = 100 (near-degenerate eigenvalues of a slightly non-normal matrix) scipy's routines take over.
_MAX_CONDITION = 100.0


@lru_cache(maxsize=8)
def _eigen(matrix_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Eigenvalues, eigenvectors and their inverse for a 3×3 matrix, or None where they are ill-conditioned."""
    matrix = np.frombuffer(matrix_bytes, dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(matrix)):
        return None
    values, vectors = np.linalg.eig(matrix)
    if np.linalg.cond(vectors) > _MAX_CONDITION:
        return None
    # LAPACK's balancing can return a wrong decomposition for entries spanning hundreds of decades; check it.
    if np.abs(matrix @ vectors - vectors * values).max() > 1e-12 * np.abs(matrix).max():
        return None
    return values, vectors, np.linalg.inv(vectors)


def _eigen_of(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    matrix = np.asarray(matrix)
    if matrix.shape != (3, 3) or np.iscomplexobj(matrix):
        return None
    return _eigen(np.ascontiguousarray(matrix, dtype=float).tobytes())


def logm(matrix: np.ndarray) -> np.ndarray:
    """Principal matrix logarithm of a real 3×3 matrix (scipy's ``logm`` where no real log exists or V is ill-posed)."""
    eigen = _eigen_of(matrix)
    if eigen is not None:
        values, vectors, inverse = eigen
        on_negative_axis = (np.abs(values.imag) == 0) & (values.real <= 0)
        if not on_negative_axis.any():
            result = (vectors * np.log(values)) @ inverse
            if np.all(np.abs(result.imag) <= 1e-12 * max(1.0, np.abs(result.real).max())):
                return result.real
    import scipy.linalg

    return scipy.linalg.logm(matrix)


def _exp_divided_differences(values: np.ndarray) -> np.ndarray:
    """D[i, j] = (exp λi − exp λj) / (λi − λj), and exp λi on the diagonal and for equal eigenvalues."""
    difference = values[:, None] - values[None, :]
    small = np.abs(difference) < 1e-12
    safe = np.where(small, 1.0, difference)
    ratio = np.where(small, 1.0 + difference / 2, np.expm1(safe) / safe)
    return np.exp(values)[None, :] * ratio


def expm_frechet(matrix: np.ndarray, direction: np.ndarray, compute_expm: bool = True, **kwargs):
    """Fréchet derivative of the matrix exponential at ``matrix`` in ``direction``, with scipy's signature."""
    eigen = _eigen_of(matrix) if not kwargs else None
    direction = np.asarray(direction)
    if eigen is not None and direction.shape == (3, 3) and not np.iscomplexobj(direction):
        values, vectors, inverse = eigen
        derivative = vectors @ (_exp_divided_differences(values) * (inverse @ direction @ vectors)) @ inverse
        if np.all(np.abs(derivative.imag) <= 1e-12 * max(1.0, np.abs(derivative.real).max())):
            if not compute_expm:
                return derivative.real
            exponential = ((vectors * np.exp(values)) @ inverse).real
            return exponential, derivative.real
    import scipy.linalg

    return scipy.linalg.expm_frechet(matrix, direction, compute_expm=compute_expm, **kwargs)


def install(cell_filter) -> bool:
    """Point a ``FrechetCellFilter``'s matrix functions at the ones here; False where its layout is not known.

    ASE keeps them as attributes of the filter and, in recent versions, of its ``_utility`` helper; a layout without
    them is left alone, so the relaxation is still right, only slower.
    """
    installed = False
    for holder in (cell_filter, getattr(cell_filter, "_utility", None)):
        if holder is not None and hasattr(holder, "logm") and hasattr(holder, "expm_frechet"):
            holder.logm = logm
            holder.expm_frechet = expm_frechet
            installed = True
    return installed
