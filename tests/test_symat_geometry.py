"""SyMat plugin: the periodic multi-graph and the lattice construction of appendix B."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from plugins.symat.data import collate, from_structure
from plugins.symat.graph import build_multigraph, lattice_from_params, lattice_params


def triclinic() -> Structure:
    lattice = Lattice.from_parameters(3.1, 4.2, 5.3, 71.0, 98.0, 112.0)
    rng = np.random.default_rng(3)
    return Structure(lattice, ["Li", "O", "O", "Fe"], rng.random((4, 3)))


def rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.mark.parametrize("make", [triclinic, rocksalt])
@pytest.mark.parametrize("cutoff", [3.0, 4.5])
def test_multigraph_matches_pymatgen_neighbours(make, cutoff):
    structure = make()
    batch = collate([from_structure(structure)])
    graph = build_multigraph(batch.frac, batch.lattices, batch.num_atoms, cutoff)
    ours = sorted((i, round(d, 3)) for i, d in zip(graph.src.tolist(), graph.dist.tolist(), strict=True))
    theirs = sorted(
        (i, round(float(n.nn_distance), 3))
        for i, neighbours in enumerate(structure.get_all_neighbors(cutoff))
        for n in neighbours
    )
    assert ours == theirs
    # an edge vector really joins the two atoms: frac[dst] + offset - frac[src], in cartesian
    vec = (batch.frac[graph.dst] + graph.offset - batch.frac[graph.src]) @ batch.lattices[0]
    assert torch.allclose(vec, graph.vec, atol=1e-4)


def test_multigraph_keeps_crystals_apart():
    a, b = from_structure(triclinic()), from_structure(rocksalt())
    batch = collate([a, b])
    graph = build_multigraph(batch.frac, batch.lattices, batch.num_atoms, 4.0)
    assert (batch.crystal_of_atom[graph.src] == batch.crystal_of_atom[graph.dst]).all()
    single = build_multigraph(*(lambda c: (c.frac, c.lattices, c.num_atoms))(collate([b])), 4.0)
    assert int((batch.crystal_of_atom[graph.src] == 1).sum()) == len(single.src)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.tuples(*[st.floats(2.0, 12.0)] * 3),
    angles=st.tuples(*[st.floats(60.0, 120.0)] * 3),
)
def test_lattice_from_params_round_trip(lengths, angles):
    params = torch.tensor([[*lengths, *angles]], dtype=torch.float64)
    lattice, ok = lattice_from_params(params)
    a23, a13, a12 = np.deg2rad(angles)
    cos_gamma = (np.cos(a23) * np.cos(a13) - np.cos(a12)) / (np.sin(a23) * np.sin(a13))
    assert bool(ok[0]) == (abs(cos_gamma) < 1)
    if ok[0]:
        assert torch.allclose(lattice_params(lattice), params, atol=1e-6)
        reference = Lattice.from_parameters(*lengths, *angles)
        assert abs(abs(torch.linalg.det(lattice[0]).item()) - reference.volume) < 1e-6 * reference.volume


def test_impossible_angles_are_flagged():
    _, ok = lattice_from_params(torch.tensor([[4.0, 4.0, 4.0, 30.0, 30.0, 150.0]], dtype=torch.float64))
    assert not ok[0]


def test_collate_targets():
    batch = collate([from_structure(rocksalt()), from_structure(triclinic())])
    assert batch.num_types.tolist() == [2, 3]
    assert batch.element_set[0].nonzero().flatten().add(1).tolist() == [11, 17]
    assert batch.type_counts.tolist() == [4, 4, 1, 2, 1]  # Na4 Cl4 | sorted by Z: Li1 O2 Fe1
