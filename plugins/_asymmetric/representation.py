"""A crystal as its space group, lattice ``k`` and asymmetric unit, and back (SymmCD section 3, SymmBFN section 3).

``encode`` runs pyxtal's symmetry finder at a recorded tolerance and keeps one representative per orbit: atomic
number, fractional coordinates, site symmetry (pyxtal's 15 axes x 13 operations one-hot), Wyckoff label and
multiplicity. ``build_structure`` goes back from (possibly generated, hence imperfect) arrays: each site symmetry is
projected to the nearest one a Wyckoff position of the group has (Frobenius norm), the coordinates are snapped to
the closest point of such a position (pyxtal ``search_cloest_wp``), and the orbits are replicated (both from cached
affine tables, ``orbits``).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from plugins._asymmetric.lattice import k_to_matrix, matrix_to_k, project_k
from plugins._asymmetric.orbits import orbit_tables, replicate, snap

N_AXES, N_OPS = 15, 13
DEFAULT_TOLERANCES = (0.01, 0.001, 0.1)  # tried in order; the one that worked is recorded


class RepresentationError(ValueError):
    """A structure could not be encoded, or arrays could not be built into a structure; the message says why."""


@dataclass(frozen=True)
class Representative:
    """One orbit of the crystal: its representative atom and Wyckoff position."""

    atomic_number: int
    frac_coords: tuple[float, float, float]
    site_symmetry: np.ndarray  # (15, 13) one-hot: the operation on each of the 15 symmetry axes
    wyckoff_label: str  # e.g. "4c"
    multiplicity: int


@dataclass(frozen=True)
class AsymmetricCrystal:
    """A crystal in its conventional cell as space group + lattice ``k`` + asymmetric unit."""

    space_group: int
    k: np.ndarray  # (6,), already obeying the group's constraints
    representatives: tuple[Representative, ...]
    tolerance: float  # the symprec at which pyxtal found ``space_group``

    @property
    def num_atoms(self) -> int:
        return sum(r.multiplicity for r in self.representatives)


@dataclass(frozen=True)
class _GroupTables:
    group: object  # pyxtal.symmetry.Group
    wyckoffs: tuple  # pyxtal Wyckoff_position objects, general position first
    one_hots: np.ndarray  # (W, 15, 13)


@functools.lru_cache(maxsize=256)
def group_tables(space_group: int) -> _GroupTables:
    """pyxtal's Group, its Wyckoff positions and their site-symmetry one-hots (cached per group)."""
    from pyxtal.symmetry import Group

    group = Group(space_group)
    wyckoffs = tuple(group)
    one_hots = np.stack([w.get_site_symmetry_object().to_one_hot() for w in wyckoffs]).astype(float)
    return _GroupTables(group, wyckoffs, one_hots)


@functools.lru_cache(maxsize=256)
def space_group_encoding(space_group: int) -> np.ndarray:
    """SymmCD's binary space-group encoding: pyxtal's lattice id (one-hot of 16; ids 0..15 occur) + the flattened
    15-axis symmetry matrix pyxtal 1.1.5 returns (15 x 48)."""
    from pyxtal.symmetry import Group

    lattice_id, matrix = Group(space_group).get_spg_representation()
    return np.concatenate([np.eye(16)[lattice_id], np.asarray(matrix, dtype=float).ravel()])


def encode(structure, tolerances: tuple[float, ...] = DEFAULT_TOLERANCES) -> AsymmetricCrystal:
    """Structure → asymmetric representation, at the first tolerance pyxtal accepts (raises RepresentationError)."""
    from pyxtal import pyxtal

    errors = []
    for tol in tolerances:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal = pyxtal()
                crystal.from_seed(structure, tol=tol)
        except Exception as exc:  # pyxtal raises many types; we only need the reason
            errors.append(f"tol={tol}: {type(exc).__name__}: {exc}")
            continue
        if not crystal.valid or not crystal.atom_sites:
            errors.append(f"tol={tol}: pyxtal returned an invalid crystal")
            continue
        number = int(crystal.group.number)
        reps = tuple(
            Representative(
                atomic_number=int(_atomic_number(site.specie)),
                frac_coords=tuple(float(c) for c in np.mod(site.position, 1.0)),
                site_symmetry=site.wp.get_site_symmetry_object().to_one_hot().astype(np.int8),
                wyckoff_label=site.wp.get_label(),
                multiplicity=int(site.wp.multiplicity),
            )
            for site in crystal.atom_sites
        )
        k = project_k(matrix_to_k(crystal.lattice.matrix), number)
        return AsymmetricCrystal(number, k, reps, float(tol))
    raise RepresentationError("; ".join(errors) or "no tolerance given")


def _atomic_number(specie) -> int:
    from pymatgen.core import Element

    return Element(str(specie)).Z


def project_site_symmetry(space_group: int, site_symmetry: np.ndarray) -> list[int]:
    """Indices of the group's Wyckoff positions whose site symmetry is nearest (Frobenius) to ``site_symmetry``."""
    tables = group_tables(space_group)
    dist = np.linalg.norm((tables.one_hots - np.asarray(site_symmetry, dtype=float)[None]).reshape(len(tables.one_hots), -1), axis=1)
    return [int(i) for i in np.flatnonzero(dist <= dist.min() + 1e-9)]


def _snapped_candidates(space_group: int, candidates: list[int], frac_coords: np.ndarray) -> list[tuple]:
    """(distance, Wyckoff position index, snapped point) for every candidate, nearest first (stable for ties)."""
    tables = orbit_tables(space_group)
    pos = np.mod(np.asarray(frac_coords, dtype=float), 1.0)
    out = []
    for index in candidates:
        snapped = np.mod(snap(tables, index, pos), 1.0)
        delta = snapped - pos
        out.append((float(np.linalg.norm(delta - np.rint(delta))), index, snapped))
    return sorted(out, key=lambda item: item[0])


def _overlaps(orbit: np.ndarray, placed: list[np.ndarray], tol: float = 1e-4) -> bool:
    """Whether any point of ``orbit`` coincides (periodic fractional distance < ``tol``) with a placed point."""
    if not placed:
        return False
    delta = orbit[:, None, :] - np.asarray(placed)[None, :, :]
    return bool((np.linalg.norm(delta - np.rint(delta), axis=-1) < tol).any())


def build_structure(space_group: int, k, atomic_numbers, frac_coords, site_symmetries, *,
                    avoid_occupied: bool = False):
    """Arrays (possibly generated) → pymatgen Structure: project, snap, replicate (raises RepresentationError).

    ``avoid_occupied``: a representative whose nearest Wyckoff position (among those with its projected site
    symmetry) would put its orbit on atoms already placed takes the nearest such position that does not (e.g. 4b
    when 4a is taken); when every candidate overlaps it keeps the nearest, and the crystal stays as generated.
    """
    from pymatgen.core import Lattice, Structure

    space_group = int(space_group)
    if not 1 <= space_group <= 230:
        raise RepresentationError(f"space group {space_group} out of range")
    if len(atomic_numbers) == 0:
        raise RepresentationError("no representatives")
    matrix = k_to_matrix(project_k(np.asarray(k, dtype=float), space_group))
    if not np.all(np.isfinite(matrix)):
        raise RepresentationError("non-finite lattice")
    tables = orbit_tables(space_group)
    species, coords = [], []
    for z, x, ss in zip(atomic_numbers, frac_coords, site_symmetries, strict=True):
        if not 1 <= int(z) <= 118:
            raise RepresentationError(f"atomic number {z} out of range")
        candidates = _snapped_candidates(space_group, project_site_symmetry(space_group, ss), x)
        _, index, snapped = candidates[0]
        orbit = replicate(tables, index, snapped)
        if avoid_occupied and _overlaps(orbit, coords):
            for _, other_index, other_point in candidates[1:]:
                other_orbit = replicate(tables, other_index, other_point)
                if not _overlaps(other_orbit, coords):
                    orbit = other_orbit
                    break
        species.extend([int(z)] * len(orbit))
        coords.extend(orbit)
    return Structure(Lattice(matrix), species, np.array(coords))


def decode(crystal: AsymmetricCrystal):
    """Asymmetric representation → pymatgen Structure, through the same path generated samples take."""
    reps = crystal.representatives
    return build_structure(
        crystal.space_group,
        crystal.k,
        [r.atomic_number for r in reps],
        [r.frac_coords for r in reps],
        [r.site_symmetry for r in reps],
    )


def structures_from_arrays(arrays: dict, *, avoid_occupied: bool = False) -> list:
    """Build each crystal of a model's output arrays (project, snap, replicate); ``None`` where one cannot be built."""
    out = []
    for i in range(len(arrays["space_group"])):
        keep = arrays["node_mask"][i]
        try:
            out.append(build_structure(int(arrays["space_group"][i]), arrays["k"][i], arrays["atomic_numbers"][i][keep],
                                       arrays["frac_coords"][i][keep], arrays["site_symmetry"][i][keep],
                                       avoid_occupied=avoid_occupied))
        except Exception:  # an unbuildable sample counts as invalid, never as a crash
            out.append(None)
    return out
