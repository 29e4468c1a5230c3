"""The supervised property oracle (harness/property_oracle.py, issue 24): its graph's invariances, determinism for a
seed, the held-out measures on a hand-made case, the shipped Perov-5 oracle against its manifest, and refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from harness.property_oracle import (
    GraphSettings,
    OracleError,
    PropertyOracle,
    crystal_graph,
    held_out_metrics,
    load_oracle,
    oracle_paths,
    train_oracle,
)
from tests.conftest import perovskite, rocksalt

SMALL = GraphSettings(hidden=8, layers=2, n_gaussians=8)


def crystals() -> list[Structure]:
    rng = np.random.default_rng(3)
    out = [perovskite(3.9 + 0.05 * i, a, b) for i, (a, b) in enumerate([("Sr", "Ti"), ("Ba", "Zr"), ("Ca", "Ti"),
                                                                         ("Ti", "Sr"), ("La", "Al"), ("K", "Nb")])]
    out += [Structure(Lattice.from_parameters(4.1, 5.2, 6.3, 80, 95, 100), ["Li", "O", "Fe"], rng.random((3, 3)))
            for _ in range(4)]
    return out


def untrained(settings: GraphSettings = SMALL) -> PropertyOracle:
    result = train_oracle(crystals()[:2], np.array([0.0, 1.0]), crystals()[:1], np.array([0.0]), settings=settings,
                          epochs=1, seed=0)
    return PropertyOracle("toy", result.state, {})


def test_the_graph_keeps_the_nearest_neighbours_within_the_cutoff():
    z, src, dst, length = crystal_graph(perovskite(), GraphSettings(max_neighbors=12))
    assert list(z) == [38, 22, 8, 8, 8]
    assert np.bincount(dst, minlength=5).tolist() == [12] * 5
    ti = dst == 1  # Ti's 12 nearest: six O at a/2, then six of the eight Sr at a*sqrt(3)/2
    np.testing.assert_allclose(sorted(length[ti]), [3.905 / 2] * 6 + [3.905 * np.sqrt(3) / 2] * 6, rtol=1e-6)
    assert set(z[src[ti][np.isclose(length[ti], 1.9525)]]) == {8}
    far = crystal_graph(Structure(Lattice.cubic(30.0), ["Na", "Cl"], [[0, 0, 0], [0.1, 0, 0]]), GraphSettings())
    assert len(far[1]) == 2  # only each other within 6 Å: fewer than max_neighbors, no error


def test_the_prediction_ignores_rotation_translation_atom_order_and_the_choice_of_cell():
    oracle = untrained()
    base = crystals()[6:]
    moved = []
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for s in base:
        turned = Structure(Lattice(s.lattice.matrix @ rotation.T), s.species, s.frac_coords)
        turned.translate_sites(range(len(turned)), [0.31, 0.17, 0.05])
        order = np.random.default_rng(0).permutation(len(turned))
        moved.append(Structure(turned.lattice, [turned.species[i] for i in order], turned.frac_coords[order]))
    a, _ = oracle.predict(base)
    b, _ = oracle.predict(moved)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    cell = rocksalt()
    one, _ = oracle.predict([cell, cell * (2, 1, 1)])
    assert one[0] == pytest.approx(one[1], abs=1e-6)


def test_training_is_deterministic_for_a_seed_and_depends_on_it():
    data = crystals()
    y = np.linspace(-1.0, 1.0, len(data))

    def weights(seed):
        state = train_oracle(data[:8], y[:8], data[8:], y[8:], settings=SMALL, epochs=3, batch_size=4, seed=seed).state
        return np.concatenate([v.numpy().ravel() for v in state["state_dict"].values()])

    assert np.array_equal(weights(0), weights(0))
    assert not np.array_equal(weights(0), weights(1))


def test_a_crystal_the_oracle_cannot_read_gets_nan_and_its_reason():
    oracle = untrained()
    heavy = Structure(Lattice.cubic(5.0), ["Fm"], [[0, 0, 0]])  # Z = 100 is in the table
    values, reasons = oracle.predict([None, heavy, perovskite()])
    assert np.isnan(values[0]) and reasons[0] == "no structure"
    assert np.isfinite(values[1:]).all() and reasons[1:] == [None, None]


def test_held_out_measures_on_a_hand_made_case():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    predicted = np.array([0.0, 2.0, 1.0, 4.0])
    m = held_out_metrics(truth, predicted, thresholds=(1.5,), better="lower")
    assert m["mae"] == pytest.approx(0.75) and m["rmse"] == pytest.approx(np.sqrt(3 / 4))
    assert m["r2"] == pytest.approx(1 - 3 / 5) and m["spearman"] == pytest.approx(0.8)
    hit = m["thresholds"]["1.5"]  # truth succeeds on rows 0, 1; the oracle on rows 0, 2
    assert (hit["n_success_truth"], hit["n_success_oracle"]) == (2, 2)
    assert hit["precision"] == hit["recall"] == 0.5 and hit["agreement"] == 0.5


def test_weights_that_do_not_match_their_manifest_are_refused(tmp_path):
    weights, manifest = oracle_paths("perov5_heat_ref")
    if not weights.exists():
        pytest.skip("the Perov-5 oracle is not shipped in this checkout")
    shutil.copy(weights, tmp_path / weights.name)
    meta = json.loads(manifest.read_text())
    (tmp_path / manifest.name).write_text(json.dumps({**meta, "weights_sha256": "0" * 64}))
    with pytest.raises(OracleError, match="does not match its manifest"):
        load_oracle("perov5_heat_ref", tmp_path)
    with pytest.raises(OracleError, match="is not shipped"):
        load_oracle("nothing_here", tmp_path)


def test_the_shipped_perov5_oracle_reproduces_its_manifest_on_the_test_split():
    from harness.datasets import load_split

    path = Path(os.environ.get("XTALBENCH_DATA", "")) / "perov5" / "test.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    oracle = load_oracle("perov5_heat_ref")
    check = oracle.manifest["check"]
    test = load_split("perov5", "test")
    values, reasons = oracle.predict([test.structures[i] for i in check["rows"]])
    assert reasons == [None] * len(check["rows"])
    np.testing.assert_allclose(values, check["values"], rtol=0, atol=1e-5)
    assert oracle.manifest["test"]["n"] == len(test.structures) and oracle.manifest["test"]["r2"] > 0.8


def test_the_optimise_board_says_how_each_dataset_is_scored():
    from harness.leaderboard import _oracle_sentence

    assert "`perov5_heat_ref`, a graph network trained here" in _oracle_sentence("perov5")
    assert "`chgnet_relaxed_mp_references` after a relaxation" in _oracle_sentence("mp20")
    assert "No oracle is fixed" in _oracle_sentence("carbon24")
