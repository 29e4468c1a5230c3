"""The lattice as the 6-vector ``k`` of the symmetric-matrix basis (DiffCSP++, Jiao et al. 2024; SymmCD app. B).

Any lattice matrix ``L`` (vectors as columns) factors as ``L = Q exp(S)`` with ``Q`` orthogonal and ``S`` symmetric.
``Q`` changes nothing physical, and ``S = sum_i k_i B_i`` in the basis below. The crystal family of a space group
fixes some ``k_i`` (mask 0, value in :func:`fixed_k`) and leaves the others free (mask 1).
"""

from __future__ import annotations

import math

import numpy as np

# B1..B6: off-diagonals xy, xz, yz; then diag(1,-1,0), diag(1,1,-2), identity.
K_BASIS = np.array(
    [
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]],
        [[0, 0, 1], [0, 0, 0], [1, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 1, 0]],
        [[1, 0, 0], [0, -1, 0], [0, 0, 0]],
        [[1, 0, 0], [0, 1, 0], [0, 0, -2]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    ],
    dtype=float,
)

# A hexagonal cell with gamma = 120 deg has k1 = -log(3)/4 (DiffCSP++ table 1).
HEXAGONAL_K1 = -math.log(3.0) / 4.0


def crystal_family(space_group: int) -> str:
    """The crystal family that fixes the lattice constraints (trigonal groups use hexagonal axes)."""
    if not 1 <= space_group <= 230:
        raise ValueError(f"space group must be in 1..230, got {space_group}")
    for upper, family in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                          (194, "hexagonal"), (230, "cubic")):
        if space_group <= upper:
            return family
    raise AssertionError  # unreachable


_FREE = {
    "triclinic": (1, 1, 1, 1, 1, 1),
    "monoclinic": (0, 1, 0, 1, 1, 1),  # b unique: only the a-c angle is free
    "orthorhombic": (0, 0, 0, 1, 1, 1),
    "tetragonal": (0, 0, 0, 0, 1, 1),
    "hexagonal": (0, 0, 0, 0, 1, 1),
    "cubic": (0, 0, 0, 0, 0, 1),
}


def k_mask(space_group: int) -> np.ndarray:
    """1 where ``k_i`` is free in this space group, 0 where it is fixed."""
    return np.array(_FREE[crystal_family(space_group)], dtype=float)


def fixed_k(space_group: int) -> np.ndarray:
    """The values of the fixed entries of ``k`` (zero except hexagonal ``k1``); free entries read 0."""
    values = np.zeros(6)
    if crystal_family(space_group) == "hexagonal":
        values[0] = HEXAGONAL_K1
    return values


def project_k(k: np.ndarray, space_group: int) -> np.ndarray:
    """Impose the space group's constraints on ``k`` (works on a (..., 6) array)."""
    mask = k_mask(space_group)
    return np.asarray(k) * mask + fixed_k(space_group) * (1 - mask)


def matrix_to_k(matrix: np.ndarray) -> np.ndarray:
    """``k`` of a lattice given as pymatgen rows (a, b, c); the Gram matrix determines it."""
    gram = np.asarray(matrix, dtype=float) @ np.asarray(matrix, dtype=float).T
    eigval, eigvec = np.linalg.eigh(gram)
    log_s = eigvec @ np.diag(0.5 * np.log(eigval)) @ eigvec.T  # log of sqrt(Gram) = S
    return np.array(
        [log_s[0, 1], log_s[0, 2], log_s[1, 2], (log_s[0, 0] - log_s[1, 1]) / 2,
         (log_s[0, 0] + log_s[1, 1] - 2 * log_s[2, 2]) / 6, np.trace(log_s) / 3]
    )


def k_to_matrix(k: np.ndarray) -> np.ndarray:
    """The symmetric lattice matrix ``exp(sum k_i B_i)`` (rows are the lattice vectors)."""
    s = np.tensordot(np.asarray(k, dtype=float), K_BASIS, axes=1)
    eigval, eigvec = np.linalg.eigh(s)
    return eigvec @ np.diag(np.exp(eigval)) @ eigvec.T
