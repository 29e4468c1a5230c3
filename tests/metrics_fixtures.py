"""Tiny hand-built crystals and a hypothesis strategy for the metrics tests (no dataset files needed)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure


def rocksalt(a: float = 5.64, species=("Na", "Cl")) -> Structure:
    """Conventional rock-salt cell (8 atoms)."""
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    coords = fcc + [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    return Structure(Lattice.cubic(a), [species[0]] * 4 + [species[1]] * 4, coords)


def unary() -> Structure:
    """bcc Fe, two atoms."""
    return Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def alloy() -> Structure:
    """CsCl-type CuZn: all metals."""
    return Structure(Lattice.cubic(2.95), ["Cu", "Zn"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def imbalanced_oxide() -> Structure:
    """NaO2 in a made-up cell: no smact14 oxidation states balance Na:O = 1:2."""
    return Structure(Lattice.cubic(4.0), ["Na", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.3], [0.5, 0.5, 0.7]])


def close_across_boundary(gap: float = 0.4) -> Structure:
    """Two atoms ``gap`` Å apart only through the periodic boundary (10 Å cubic cell)."""
    a = 10.0
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0.01, 0.5, 0.5], [1 - (gap - 0.1) / a, 0.5, 0.5]])


def tiny_cell() -> Structure:
    """One atom in a 0.4 Å cube: volume 0.064 Å³."""
    return Structure(Lattice.cubic(0.4), ["Na"], [[0, 0, 0]])


def perovskite(a: float = 3.9, species=("Sr", "Ti", "O")) -> Structure:
    """Cubic ABO3 perovskite, 5 atoms."""
    s_a, s_b, s_x = species
    return Structure(
        Lattice.cubic(a),
        [s_a, s_b, s_x, s_x, s_x],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


ELEMENTS = ("Na", "Cl", "Mg", "O", "Fe", "Si", "Cu", "Zn", "S", "Ti")


@st.composite
def crystals(draw, max_atoms: int = 4) -> Structure:
    """A random small crystal: lengths 3-7 Å, angles 70-110°, 1-``max_atoms`` atoms."""
    lengths = [draw(st.floats(3.0, 7.0)) for _ in range(3)]
    angles = [draw(st.floats(70.0, 110.0)) for _ in range(3)]
    lattice = Lattice.from_parameters(*lengths, *angles)
    if not np.isfinite(lattice.volume) or lattice.volume < 5.0:
        lattice = Lattice.cubic(lengths[0])
    n = draw(st.integers(1, max_atoms))
    species = [draw(st.sampled_from(ELEMENTS)) for _ in range(n)]
    coords = [[draw(st.floats(0.0, 0.999)) for _ in range(3)] for _ in range(n)]
    return Structure(lattice, species, coords)


def rotation_matrix(seed: int) -> np.ndarray:
    """A proper rotation drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rotated(structure: Structure, seed: int) -> Structure:
    rot = rotation_matrix(seed)
    lattice = Lattice(structure.lattice.matrix @ rot.T)
    return Structure(lattice, structure.species, structure.frac_coords)


def translated(structure: Structure, shift) -> Structure:
    return Structure(structure.lattice, structure.species, structure.frac_coords + np.asarray(shift))


def permuted(structure: Structure, seed: int) -> Structure:
    order = np.random.default_rng(seed).permutation(len(structure))
    return Structure(structure.lattice, [structure.species[i] for i in order], structure.frac_coords[order])


def imaged(structure: Structure, seed: int) -> Structure:
    """Every site moved by a random lattice vector (a different periodic image of the same crystal)."""
    shifts = np.random.default_rng(seed).integers(-2, 3, size=(len(structure), 3))
    return Structure(structure.lattice, structure.species, structure.frac_coords + shifts)


def supercell(structure: Structure, matrix=((2, 0, 0), (0, 1, 0), (0, 0, 1))) -> Structure:
    return structure.make_supercell(matrix, in_place=False)


def niggli(structure: Structure) -> Structure:
    return structure.get_reduced_structure("niggli")


def sheared(structure: Structure) -> Structure:
    """Same lattice points, another (unimodular) basis: a different choice of unit cell."""
    return structure.make_supercell(((1, 1, 0), (0, 1, 0), (0, 0, 1)), in_place=False)


# The changes of description a crystal metric must not see: (structure, seed) -> equivalent structure.
CELL_TRANSFORMS = {
    "permute": lambda s, k: permuted(s, k),
    "rotate": lambda s, k: rotated(s, k),
    "translate": lambda s, k: translated(s, [0.13 * k % 1, 0.37, 0.71]),
    "images": lambda s, k: imaged(s, k),
    "supercell": lambda s, k: supercell(s),
    "niggli": lambda s, k: niggli(s),
    "other cell": lambda s, k: sheared(s),
}
