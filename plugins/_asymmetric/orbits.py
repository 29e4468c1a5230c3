"""Wyckoff orbits from cached affine tables: snap a point onto a Wyckoff position and replicate its orbit.

These are pyxtal 1.1.5's ``search_cloest_wp`` and ``Wyckoff_position.get_all_positions`` with the same tests,
tolerances and order, written as array operations over a space group's operations. The operations come from pyxtal's
Wyckoff tables once per group, so no pyxtal object is built per crystal (issue 22; benchmarks/structure_building.py
times both). ``pyxtal_reference`` keeps the former per-crystal path, which tests compare this one with.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

ON_POSITION_TOL = 1e-2  # pyxtal's Wyckoff_position.search_generator: L1 periodic distance of a point to its image
SNAP_MATCH_TOL = 1e-3  # pyxtal's search_cloest_wp: an image this close (L2) to the input is the input itself
MERGE_TOL = 1e-4  # orbit points closer than this (fractional, periodic) are one point


@dataclass(frozen=True)
class OrbitTables:
    """A space group's operations as (M, 4, 4) affine matrices, in pyxtal's order."""

    general: np.ndarray  # (G, 4, 4): the general position, i.e. every operation of the group (identity first)
    positions: tuple[np.ndarray, ...]  # per Wyckoff position (index as pyxtal's), its (m, 4, 4) operations
    ranks: tuple[int, ...]  # per position, rank of its first rotation: 0 a fixed point, 3 the general position


@functools.lru_cache(maxsize=256)
def orbit_tables(space_group: int) -> OrbitTables:
    """The affine tables of a space group (cached per group)."""
    from pyxtal.symmetry import get_wyckoffs

    positions = tuple(np.array([op.affine_matrix for op in ops]) for ops in get_wyckoffs(int(space_group)))
    ranks = tuple(int(np.linalg.matrix_rank(ops[0, :3, :3])) for ops in positions)
    return OrbitTables(positions[0], positions, ranks)


def _apply(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Every operation on every point: (..., 3) and (M, 4, 4) -> (..., M, 3), computed as pyxtal's ``apply_ops``."""
    affine = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    return np.inner(affine, matrices)[..., :-1]


def _on_position(first_op: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points a Wyckoff position's first operation maps onto themselves (pyxtal's generator test)."""
    diff = points - _apply(first_op, points)
    diff -= np.rint(diff)
    return np.abs(diff).sum(axis=-1) < ON_POSITION_TOL


def snap(tables: OrbitTables, index: int, pos: np.ndarray, block: int = 16) -> np.ndarray:
    """The point of Wyckoff position ``index`` that pyxtal's ``search_cloest_wp`` picks for ``pos`` (in [0, 1)^3),
    not reduced modulo 1."""
    first_op = tables.positions[index][0]
    if tables.ranks[index] == 0:
        return first_op[:3, 3].copy()
    if tables.ranks[index] == 3:
        return pos
    images = _apply(tables.general, pos)  # (G, 3)
    on = _on_position(first_op, images)
    if on.any():  # images of pos that lie on the position: the one the first operation maps closest to pos
        generators = images[on] - np.floor(images[on])
        candidates = _apply(first_op, generators)
        delta = candidates - pos
        delta -= np.rint(delta)
        dist = np.linalg.norm(delta, axis=1)
        close = np.flatnonzero(dist < SNAP_MATCH_TOL)
        return candidates[close[0]] if len(close) else candidates[np.argmin(dist)]
    # none does: the midpoint between pos and an image of it, nearest image first, whose midpoint lies on the position
    delta = images[1:] - pos
    delta -= np.rint(delta)
    midpoints = pos + delta[np.argsort(np.linalg.norm(delta, axis=1))] / 2
    for start in range(0, len(midpoints), block):  # pyxtal stops at the first; a block at a time keeps that cheap
        chunk = midpoints[start:start + block]
        hits = np.flatnonzero(_on_position(first_op, _apply(tables.general, chunk)).any(axis=-1))
        if len(hits):
            return chunk[hits[0]]
    return _apply(first_op, pos)


def replicate(tables: OrbitTables, index: int, point: np.ndarray) -> np.ndarray:
    """The orbit of ``point`` under Wyckoff position ``index`` in [0, 1)^3, in the position's operation order,
    points that coincide merged (pyxtal's ``get_all_positions`` and the former ``replicate_orbit``)."""
    ops = tables.positions[index]
    images = _apply(tables.general, point)
    on = np.flatnonzero(_on_position(ops[0], images))
    if len(on):  # expand from the first image of ``point`` that the position's first operation fixes
        generator = images[on[0]] - np.floor(images[on[0]])
        orbit = _apply(ops, generator)
        orbit -= np.floor(orbit)
    else:  # the point is not exactly on the position: apply the operations directly
        orbit = np.mod(_apply(ops, point), 1.0)
    return merge_duplicates(np.mod(orbit, 1.0))


def merge_duplicates(points: np.ndarray) -> np.ndarray:
    """``points`` without those within ``MERGE_TOL`` of an earlier kept one (periodic), order kept."""
    delta = points[:, None, :] - points[None, :, :]
    far = np.linalg.norm(delta - np.rint(delta), axis=-1) > MERGE_TOL
    np.fill_diagonal(far, True)
    if far.all():
        return points
    keep: list[int] = []
    for i in range(len(points)):
        if far[i, keep].all():
            keep.append(i)
    return points[keep]
