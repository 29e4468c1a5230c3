"""The fast CrystalNN fingerprint equals matminer's (max |delta| <= 1e-9) on hand-made, dataset and perturbed crystals."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_fixtures import alloy, perovskite, rocksalt
from pymatgen.core import Lattice, Structure

from harness.metrics.crystalnn_fast import _Geometry, _order_parameter, _preset, structure_fingerprint_fast
from harness.metrics.fingerprints import N_STRUCT_FEATURES, structure_fingerprint_matminer

TOLERANCE = 1e-9


def wurtzite() -> Structure:
    """Hexagonal ZnO (4 atoms)."""
    lattice = Lattice.hexagonal(3.25, 5.21)
    coords = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]]
    return Structure(lattice, ["Zn", "Zn", "O", "O"], coords)


def single_atom() -> Structure:
    """Primitive fcc Cu: one site."""
    return Structure(Lattice.from_parameters(2.55, 2.55, 2.55, 60, 60, 60), ["Cu"], [[0, 0, 0]])


def vacancy_cell() -> Structure:
    """Rock salt with one Cl removed and two neighbours nudged: a low-symmetry arrangement."""
    structure = rocksalt()
    structure.remove_sites([7])
    structure.translate_sites([0, 4], [0.013, -0.021, 0.008])
    return structure


def perturbed(structure: Structure, seed: int, sigma: float = 0.05) -> Structure:
    """A copy with every site displaced by a seeded Gaussian (sigma in angstrom)."""
    rng = np.random.default_rng(seed)
    copy = structure.copy()
    for i, shift in enumerate(rng.normal(scale=sigma, size=(len(copy), 3))):
        copy.translate_sites([i], shift, frac_coords=False)
    return copy


HAND_MADE = {"rocksalt": rocksalt, "cscl": alloy, "perovskite": perovskite, "wurtzite": wurtzite,
             "single_atom": single_atom, "vacancy": vacancy_cell}


def assert_same(structure: Structure, label: str = "") -> None:
    reference = structure_fingerprint_matminer(structure)
    fast = structure_fingerprint_fast(structure)
    assert fast.shape == (N_STRUCT_FEATURES,)
    delta = np.abs(reference - fast).max()
    assert delta <= TOLERANCE, f"{label}: max |delta| = {delta:.3g}"


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_crystals(name):
    from harness.metrics import crystalnn_fast

    crystalnn_fast.FALLBACKS.clear()
    assert_same(HAND_MADE[name](), name)
    assert not crystalnn_fast.FALLBACKS, f"{name}: handed to matminer: {dict(crystalnn_fast.FALLBACKS)}"


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_perturbed_hand_made_crystals(name):
    for seed in range(3):
        assert_same(perturbed(HAND_MADE[name](), seed), f"{name} seed {seed}")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["perov5", "mp20"])
def test_seeded_validation_rows_and_perturbed_copies(dataset):
    """20 seeded validation rows and perturbed copies of 5 of them; reads $XTALBENCH_DATA, skipped without it."""
    from harness.datasets import DatasetError, load_split

    try:
        split = load_split(dataset, "val", download=False)
    except DatasetError:
        pytest.skip(f"{dataset} validation split not available (set XTALBENCH_DATA)")
    rows = np.random.default_rng(0).choice(len(split), 20, replace=False)
    for row in rows:
        assert_same(split.structures[row], split.material_ids[row])
    for seed, row in enumerate(rows[:5]):
        assert_same(perturbed(split.structures[row], seed, sigma=0.02), f"{split.material_ids[row]} perturbed")


def test_every_preset_order_parameter_matches_pymatgen():
    """Each of the preset's order parameters on random and near-regular neighbour shells, against pymatgen."""
    from pymatgen.core.local_env import LocalStructOrderParams

    class Point:
        def __init__(self, coords):
            self.coords = np.asarray(coords, dtype=float)

    preset = _preset()
    rng = np.random.default_rng(1)
    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 1, 1], [-1, -1, -1],
                     [1, -1, 1], [-1, 1, -1], [1, 1, 0], [-1, -1, 0]], dtype=float)
    for op in (op for op in preset.ops if op.kind != "wt"):
        reference_op = LocalStructOrderParams([op.kind], parameters=[op.params])
        n = op.cn
        shells = [rng.normal(size=(n, 3)) * 2, axes[:n] * 2.1, axes[:n] * 2.1 + rng.normal(size=(n, 3)) * 1e-3]
        for shell in shells:
            centre = rng.normal(size=3)
            neighbours = centre + shell
            sites = [Point(centre)] + [Point(x) for x in neighbours]
            reference = reference_op.get_order_parameters(sites, 0, indices_neighs=list(range(1, n + 1)))[0]
            value = _order_parameter(op, _Geometry(centre, neighbours, preset.thresholds), n)
            assert (reference is None) == (value is None), op
            if reference is not None:
                assert abs(reference - value) <= 1e-12, (op.kind, n, reference, value)


def test_disordered_structure_fails_like_matminer():
    structure = Structure(Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(Exception) as matminer_error:
        structure_fingerprint_matminer(structure)
    with pytest.raises(type(matminer_error.value)):
        structure_fingerprint_fast(structure)


def test_the_evaluation_uses_the_fast_path_unless_told_matminer(monkeypatch):
    from harness.metrics import crystalnn_fast, fingerprints

    calls = []
    monkeypatch.setattr(crystalnn_fast, "structure_fingerprint_fast", lambda s: calls.append("fast") or np.zeros(61))
    monkeypatch.delenv(fingerprints.IMPL_ENV, raising=False)
    fingerprints.structure_fingerprint(rocksalt())
    assert calls == ["fast"] and fingerprints.structure_fingerprint_impl() == "crystalnn_fast"
    monkeypatch.setenv(fingerprints.IMPL_ENV, "matminer")
    assert np.abs(fingerprints.structure_fingerprint(rocksalt()) - structure_fingerprint_matminer(rocksalt())).max() == 0
    assert calls == ["fast"]
    monkeypatch.setenv(fingerprints.IMPL_ENV, "voronoi")
    with pytest.raises(ValueError, match="XTALBENCH_FINGERPRINTS"):
        fingerprints.structure_fingerprint(rocksalt())
