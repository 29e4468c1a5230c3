"""The structure builder from cached orbit tables (``orbits``) against the pyxtal path it replaced (issue 22).

For the same input both must give the same sites in the same order (species, fractional coordinates within 1e-6
modulo 1), the same lattice, or the same error: on real asymmetric units, on SymmBFN's samples, on random and jittered
points of every kind of Wyckoff position, and on edge cases.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins._asymmetric import (
    build_structure,
    encode,
    group_tables,
    matrix_to_k,
    project_k,
    structures_from_arrays,
)
from plugins._asymmetric.orbits import orbit_tables, replicate, snap
from plugins._asymmetric.pyxtal_reference import _snapped_candidates as snapped_candidates_pyxtal
from plugins._asymmetric.pyxtal_reference import (
    build_structure_pyxtal,
    replicate_orbit,
    structures_from_arrays_pyxtal,
)

COORD_TOL = 1e-6


def _periodic_max_delta(a: np.ndarray, b: np.ndarray) -> float:
    delta = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    delta -= np.rint(delta)
    return float(np.nanmax(np.abs(delta))) if delta.size else 0.0


def assert_same_structure(new, old) -> None:
    """Same number, species and order of sites, same lattice, coordinates within COORD_TOL modulo 1."""
    assert (new is None) == (old is None)
    if new is None:
        return
    assert [site.specie.Z for site in new] == [site.specie.Z for site in old]
    assert np.array_equal(new.lattice.matrix, old.lattice.matrix)
    assert np.array_equal(np.isnan(new.frac_coords), np.isnan(old.frac_coords))
    assert _periodic_max_delta(new.frac_coords, old.frac_coords) <= COORD_TOL


def _build_or_error(build, *args, **kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build(*args, **kwargs), None
    except Exception as exc:  # the reference's error is part of its behaviour
        return None, f"{type(exc).__name__}: {exc}"


def assert_builds_as_before(*args, avoid_occupied: bool) -> None:
    new, new_error = _build_or_error(build_structure, *args, avoid_occupied=avoid_occupied)
    old, old_error = _build_or_error(build_structure_pyxtal, *args, avoid_occupied=avoid_occupied)
    assert new_error == old_error
    assert_same_structure(new, old)


def _cubic_k(space_group: int, a: float = 5.0) -> np.ndarray:
    return project_k(matrix_to_k(np.eye(3) * a), space_group)


def _index_of(space_group: int, letter: str) -> int:
    return next(i for i, wp in enumerate(group_tables(space_group).wyckoffs) if wp.letter == letter)


# ---------------------------------------------------------------- real asymmetric units and samples

@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["perov5", "mp20"])
def test_real_asymmetric_units_build_as_before(dataset):
    """150 seeded validation structures: the encoded unit, and the same unit jittered (coordinates and site
    symmetries), with and without ``avoid_occupied``. Skipped where the split is not in $XTALBENCH_DATA."""
    from harness.datasets import DatasetError, load_split

    try:
        split = load_split(dataset, "val", download=False)
    except DatasetError:
        pytest.skip(f"{dataset} val split not available")
    rng = np.random.default_rng(0)
    for index in rng.choice(len(split), 150, replace=False):
        crystal = encode(split.structures[index])
        reps = crystal.representatives
        numbers = [r.atomic_number for r in reps]
        coords = [np.array(r.frac_coords) for r in reps]
        symmetries = [r.site_symmetry for r in reps]
        assert_builds_as_before(crystal.space_group, crystal.k, numbers, coords, symmetries, avoid_occupied=False)
        jittered = [c + rng.normal(0, 0.02, 3) for c in coords]
        noisy = [s + rng.uniform(0, 0.3, s.shape) for s in symmetries]
        for avoid in (False, True):
            assert_builds_as_before(crystal.space_group, crystal.k, numbers, jittered, noisy, avoid_occupied=avoid)


@pytest.mark.slow
def test_symmbfn_samples_build_as_before():
    """96 draws of the shipped MP-20 checkpoint (20 steps: rough samples, many snapped) built by both paths."""
    torch = pytest.importorskip("torch")
    from plugins._asymmetric.batching import size_batches
    from plugins.symmbfn.generator import SymmBFNGenerator

    generator = SymmBFNGenerator("mp20")
    if generator.default_checkpoint() is None:
        pytest.skip("no shipped SymmBFN MP-20 checkpoint")
    generator.load(None, "cpu")
    rng = np.random.default_rng(0)
    groups, sizes = generator.model.stats.sample_groups_and_sizes(96, rng)
    sizes = np.maximum(sizes, 1)
    for batch_index, index in enumerate(size_batches(sizes, 96)):
        arrays = generator.model.generate(groups[index], sizes[index], 20, torch.Generator().manual_seed(batch_index))
        for avoid in (True, False):
            new = structures_from_arrays(arrays, avoid_occupied=avoid)
            old = structures_from_arrays_pyxtal(arrays, avoid_occupied=avoid)
            for a, b in zip(new, old, strict=True):
                assert_same_structure(a, b)


# ---------------------------------------------------------------- random points (hypothesis)

representative = st.tuples(
    st.integers(0, 10_000),  # Wyckoff position, modulo the group's count
    st.sampled_from(["free", "on", "jittered", "shifted"]),
    st.tuples(*[st.floats(-2.0, 3.0, allow_nan=False)] * 3),
    st.integers(0, 191),  # which operation of the position puts a point on it
    st.tuples(*[st.floats(-0.03, 0.03)] * 3),
    st.booleans(),  # float32, as a model's output
)


def _point(space_group: int, pick) -> tuple[int, np.ndarray]:
    wp_pick, mode, xyz, op_pick, jitter, single = pick
    tables = group_tables(space_group)
    index = wp_pick % len(tables.wyckoffs)
    point = np.array(xyz, dtype=float)
    if mode != "free":
        ops = tables.wyckoffs[index].ops
        point = ops[op_pick % len(ops)].operate(point)
    if mode == "jittered":
        point = point + np.array(jitter)
    if mode == "shifted":
        point = point + np.rint(np.array(xyz))  # the same point a few cells away
    return index, point.astype(np.float32) if single else point


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 230), st.lists(representative, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_random_representatives_build_as_before(space_group, picks, noisy_symmetry, avoid_occupied):
    tables = group_tables(space_group)
    points = [_point(space_group, pick) for pick in picks]
    symmetries = [tables.one_hots[i] + (0.2 * (j % 3) / 3 if noisy_symmetry else 0.0) for j, (i, _) in enumerate(points)]
    numbers = [1 + (j * 7) % 90 for j in range(len(points))]
    k = project_k(np.array([0.05, -0.02, 0.03, 0.01, -0.04, math.log(6.0)]), space_group)
    assert_builds_as_before(space_group, k, numbers, [p for _, p in points], symmetries, avoid_occupied=avoid_occupied)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 230), representative)
def test_snap_and_replicate_match_pyxtal_on_every_position(space_group, pick):
    """Every Wyckoff position of the group snaps a point as ``search_cloest_wp`` and replicates it as
    ``get_all_positions``, including points that are not on the position (the direct-operations fallback)."""
    tables, orbits = group_tables(space_group), orbit_tables(space_group)
    _, point = _point(space_group, pick)
    candidates = list(range(len(tables.wyckoffs)))
    expected = snapped_candidates_pyxtal(space_group, candidates, point)
    pos = np.mod(np.asarray(point, dtype=float), 1.0)
    for _, wp, snapped in expected:
        assert _periodic_max_delta(np.mod(snap(orbits, wp.index, pos), 1.0), snapped) <= COORD_TOL
        for target in (snapped, pos):  # the snapped point, and the raw point (often off the position)
            new, old = replicate(orbits, wp.index, target), replicate_orbit(wp, target)
            assert new.shape == old.shape
            assert _periodic_max_delta(new, old) <= COORD_TOL


# ---------------------------------------------------------------- edge cases

@pytest.mark.parametrize("avoid_occupied", [False, True])
@pytest.mark.parametrize("space_group, letters, coords", [
    (225, "ab", [[0, 0, 0], [0.5, 0.5, 0.5]]),  # fixed points, exactly
    (225, "aa", [[0.01, 0, 0], [0.02, 0.01, 0]]),  # two orbits on one point: 4b taken when asked
    (225, "a", [[1.0, -0.0, 2.0]]),  # outside [0, 1), integers and a negative zero
    (225, "e", [[-1e-17, 0, 0]]),  # x00 with x just below 0 (x - floor(x) rounds to 1.0)
    (227, "a", [[0.125, 0.125, 0.125]]),  # origin choice 2 of Fd-3m
    (191, "c", [[1 / 3, 2 / 3, 0.0]]),  # hexagonal special position, thirds
    (194, "h", [[0.8 + 3, 0.6 - 5, 0.25]]),  # x 2x 1/4 a few cells away
    (166, "h", [[0.5, 0.5, 0.1]]),  # rhombohedral in hexagonal axes, snapped off the position
    (62, "c", [[0.3, 0.2, 0.7]]),  # a plane position given a general point: y snaps to 1/4
    (1, "a", [[1e9 + 0.3, -1e9, 0.25]]),  # far away
    (221, "a", [[math.nan, 0.1, 0.2]]),  # not a number (a structure with a NaN site, as before)
])
def test_edge_cases_build_as_before(space_group, letters, coords, avoid_occupied):
    symmetries = [group_tables(space_group).one_hots[_index_of(space_group, letter)] for letter in letters]
    numbers = [11, 17][: len(letters)]
    assert_builds_as_before(space_group, _cubic_k(space_group), numbers, [np.array(c, dtype=float) for c in coords],
                            symmetries, avoid_occupied=avoid_occupied)


@pytest.mark.parametrize("space_group, point, expected_sites", [
    (225, [0.0, 0.0, 0.0], 4),  # the general position (192) on a 4a point collapses to its 4 points
    (225, [0.25, 0.25, 0.25], 8),  # ... on an 8c point, to 8
    (221, [0.5, 0.5, 0.0], 3),  # Pm-3m general (48) on 3c
    (191, [0.0, 0.0, 0.3], 2),  # P6/mmm general (24) on 2e
])
def test_collapsing_orbits_merge_as_before(space_group, point, expected_sites):
    general = group_tables(space_group).one_hots[0]
    args = (space_group, _cubic_k(space_group), [8], [np.array(point)], [general])
    assert_builds_as_before(*args, avoid_occupied=False)
    assert len(build_structure(*args)) == expected_sites


@pytest.mark.parametrize("bad", [
    dict(space_group=0), dict(space_group=231), dict(numbers=[0]), dict(numbers=[119]), dict(numbers=[]),
    dict(k=[math.nan] * 6),
])
def test_errors_are_the_same(bad):
    args = dict(space_group=225, k=_cubic_k(225), numbers=[8], coords=[np.zeros(3)],
                symmetries=[group_tables(225).one_hots[0]])
    args.update(bad)
    if not args["numbers"]:
        args["coords"], args["symmetries"] = [], []
    assert_builds_as_before(args["space_group"], args["k"], args["numbers"], args["coords"], args["symmetries"],
                            avoid_occupied=False)
    assert _build_or_error(build_structure, args["space_group"], args["k"], args["numbers"], args["coords"],
                           args["symmetries"])[1] is not None
