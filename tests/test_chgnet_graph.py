"""CHGNet's crystal graph built with array operations equals, tensor for tensor, the one CHGNet's converter builds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from harness.stability.chgnet_graph import crystal_graph
from harness.stability.relax import load_relaxer
from tests.conftest import perovskite, protocol_relaxer_predictions, rocksalt

TENSORS = ("atomic_number", "atom_frac_coord", "atom_graph", "neighbor_image", "directed2undirected",
           "undirected2directed", "bond_graph", "lattice")


@pytest.fixture(scope="module")
def converter():
    return load_relaxer().model.graph_converter


def _random_cell(seed: int, n: int, min_distance: float | None = None) -> Structure:
    """A random crystal of ``n`` atoms of four elements; with ``min_distance`` None, atoms may nearly overlap, as in
    a generator's failed samples."""
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(3.0, 8.0, 3)
    angles = rng.uniform(70.0, 110.0, 3)
    lattice = Lattice.from_parameters(*lengths, *angles)
    species = list(rng.choice(["Li", "O", "Fe", "Si"], n))
    return Structure(lattice, species, rng.random((n, 3)))


def _structures() -> list[tuple[str, Structure]]:
    bcc = Structure(Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]])  # one atom: every edge joins it to its own images
    needle = Structure(Lattice.from_parameters(1.6, 1.7, 9.0, 90, 90, 90), ["C", "C"],
                       [[0, 0, 0], [0.5, 0.5, 0.1]])  # short axes: images several cells away
    close = Structure(Lattice.cubic(3.4), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.52, 0.5, 0.5]])
    out = [("rocksalt", rocksalt()), ("perovskite", perovskite()), ("bcc", bcc), ("needle", needle),
           ("close pair", close)]
    out += [(f"random {seed}", _random_cell(seed, 4 + 3 * seed)) for seed in range(6)]
    return out


@pytest.mark.parametrize("name,structure", _structures(), ids=[name for name, _ in _structures()])
def test_every_tensor_equals_chgnets_own(converter, name, structure):
    ours, theirs = crystal_graph(converter, structure), converter(structure)
    for key in TENSORS:
        a, b = getattr(ours, key), getattr(theirs, key)
        assert a.dtype == b.dtype and a.shape == b.shape, key
        assert torch.equal(a, b), key
    assert ours.composition == theirs.composition
    assert (ours.atom_graph_cutoff, ours.bond_graph_cutoff) == (theirs.atom_graph_cutoff, theirs.bond_graph_cutoff)
    assert len(theirs.bond_graph) > 0  # every case holds angles, so their order is compared too


def test_an_isolated_atom_is_left_to_chgnet_which_refuses_it_by_its_own_words(converter):
    lonely = Structure(Lattice.cubic(12.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # 10.4 Å apart
    with pytest.raises(ValueError) as ours:
        crystal_graph(converter, lonely)
    with pytest.raises(ValueError) as theirs:
        converter(lonely)
    assert str(ours.value) == str(theirs.value) and "isolated atom" in str(ours.value)


def test_the_relaxer_predicts_the_same_numbers_from_either_graph():
    structures = [perovskite(), _random_cell(3, 13)]
    array = protocol_relaxer_predictions(structures)
    chgnet = protocol_relaxer_predictions(structures, array_graphs=False)
    for a, b in zip(array, chgnet):
        for key in ("e", "f", "s"):
            np.testing.assert_array_equal(a[key], b[key])
