"""The structure builder as it was before orbits were expanded from cached tables (issue 22): one pyxtal call chain
per representative (``search_cloest_wp``, ``Wyckoff_position.get_all_positions``).

Kept unchanged as the reference that ``representation.build_structure`` must reproduce (tests/test_asymmetric_orbits.py)
and as the baseline of benchmarks/structure_building.py; nothing else should call it.
"""

from __future__ import annotations

import numpy as np

from plugins._asymmetric.lattice import k_to_matrix, project_k
from plugins._asymmetric.representation import (
    RepresentationError,
    _overlaps,
    group_tables,
    project_site_symmetry,
)


def _snapped_candidates(space_group: int, candidates: list[int], frac_coords: np.ndarray) -> list[tuple]:
    """(distance, Wyckoff position, snapped point) for every candidate, nearest first (stable for ties)."""
    from pyxtal.symmetry import search_cloest_wp

    tables = group_tables(space_group)
    pos = np.mod(np.asarray(frac_coords, dtype=float), 1.0)
    out = []
    for index in candidates:
        wp = tables.wyckoffs[index]
        snapped = np.mod(np.asarray(search_cloest_wp(tables.group, wp, wp.ops[0], pos), dtype=float), 1.0)
        delta = snapped - pos
        out.append((float(np.linalg.norm(delta - np.rint(delta))), wp, snapped))
    return sorted(out, key=lambda item: item[0])


def replicate_orbit(wp, position: np.ndarray) -> np.ndarray:
    """All points of the orbit of ``position`` under the Wyckoff position's operations, duplicates merged."""
    orbit = wp.get_all_positions(position)
    if orbit is None:  # the snapped point is not exactly on ``wp``: apply the operations directly
        orbit = np.mod(np.array([op.operate(position) for op in wp.ops]), 1.0)
    unique: list[np.ndarray] = []
    for point in np.mod(orbit, 1.0):
        if all(np.linalg.norm((point - u) - np.rint(point - u)) > 1e-4 for u in unique):
            unique.append(point)
    return np.array(unique)


def build_structure_pyxtal(space_group: int, k, atomic_numbers, frac_coords, site_symmetries, *,
                           avoid_occupied: bool = False):
    """The former ``representation.build_structure``, line for line (same arguments, same result)."""
    from pymatgen.core import Lattice, Structure

    space_group = int(space_group)
    if not 1 <= space_group <= 230:
        raise RepresentationError(f"space group {space_group} out of range")
    if len(atomic_numbers) == 0:
        raise RepresentationError("no representatives")
    matrix = k_to_matrix(project_k(np.asarray(k, dtype=float), space_group))
    if not np.all(np.isfinite(matrix)):
        raise RepresentationError("non-finite lattice")
    species, coords = [], []
    for z, x, ss in zip(atomic_numbers, frac_coords, site_symmetries, strict=True):
        if not 1 <= int(z) <= 118:
            raise RepresentationError(f"atomic number {z} out of range")
        candidates = _snapped_candidates(space_group, project_site_symmetry(space_group, ss), x)
        _, wp, snapped = candidates[0]
        orbit = replicate_orbit(wp, snapped)
        if avoid_occupied and _overlaps(orbit, coords):
            for _, other_wp, other_point in candidates[1:]:
                other_orbit = replicate_orbit(other_wp, other_point)
                if not _overlaps(other_orbit, coords):
                    orbit = other_orbit
                    break
        species.extend([int(z)] * len(orbit))
        coords.extend(orbit)
    return Structure(Lattice(matrix), species, np.array(coords))


def structures_from_arrays_pyxtal(arrays: dict, *, avoid_occupied: bool = False) -> list:
    """The former ``representation.structures_from_arrays``: ``None`` where a crystal cannot be built."""
    out = []
    for i in range(len(arrays["space_group"])):
        keep = arrays["node_mask"][i]
        try:
            out.append(build_structure_pyxtal(int(arrays["space_group"][i]), arrays["k"][i],
                                              arrays["atomic_numbers"][i][keep], arrays["frac_coords"][i][keep],
                                              arrays["site_symmetry"][i][keep], avoid_occupied=avoid_occupied))
        except Exception:  # an unbuildable sample counts as invalid, never as a crash
            out.append(None)
    return out
