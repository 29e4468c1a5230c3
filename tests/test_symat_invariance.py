"""SyMat plugin: edge scores and latents are invariant, coordinate scores equivariant (propositions 3.1 and 3.2)."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from plugins.symat.data import collate, from_structure
from plugins.symat.graph import build_multigraph
from plugins.symat.model import SyMat
from plugins.symat.nets import coordinate_score
from plugins.symat.training import build_model

TINY = {
    "hidden": 16,
    "layers": 2,
    "mlp_hidden": 16,
    "latent_a": 4,
    "latent_l": 3,
    "cutoff": 4.0,
    "num_rbf": 8,
    "vec_channels": 4,
    "num_levels": 5,
    "sigma_max": 1.0,
    "sigma_min": 0.1,
}
MODEL: SyMat = build_model(TINY, 8, [4.0] * 3 + [90.0] * 3, [1.0] * 6, seed=0).eval().double()

BASE = Structure(
    Lattice.from_parameters(3.3, 3.9, 4.4, 78.0, 95.0, 104.0),
    ["Li", "O", "O", "Fe", "Fe"],
    np.random.default_rng(7).random((5, 3)),
)


def rotation(q) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def scores(numbers, frac, lattice, level=2):
    """Edge scores keyed by (src, dst, rounded edge vector), the per-atom coordinate score, and the latent mean."""
    numbers = torch.as_tensor(numbers)
    frac = torch.as_tensor(frac, dtype=torch.float64)
    lattices = torch.as_tensor(lattice, dtype=torch.float64)[None]
    num_atoms = torch.tensor([len(numbers)])
    graph = build_multigraph(frac, lattices, num_atoms, TINY["cutoff"])
    with torch.no_grad():
        edge = MODEL.edge_scores(numbers, graph, torch.full_like(numbers, level))
        coord = coordinate_score(edge, graph, len(numbers))
        mu, _ = MODEL.vae.encode(numbers, graph, torch.zeros_like(numbers), 1)
    return graph, edge, coord, mu[0]


def keyed(graph, edge, relabel=None, rot=None):
    vec = graph.vec.numpy() if rot is None else graph.vec.numpy() @ rot
    src, dst = graph.src.numpy(), graph.dst.numpy()
    if relabel is not None:
        src, dst = relabel[src], relabel[dst]
    return sorted(
        (int(s), int(d), *np.round(v, 5).tolist(), round(float(e), 6))
        for s, d, v, e in zip(src, dst, vec, edge.numpy(), strict=True)
    )


def reference():
    batch = collate([from_structure(BASE)])
    return batch.numbers, batch.frac.double(), batch.lattices[0].double()


def assert_same(a, b):
    assert len(a) == len(b)
    np.testing.assert_allclose(np.array(a, dtype=float), np.array(b, dtype=float), atol=1e-4)


@settings(max_examples=8, deadline=None)
@given(q=st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_rotation(q):
    rot = rotation(q)
    numbers, frac, lattice = reference()
    g0, e0, c0, mu0 = scores(numbers, frac, lattice)
    # rows are lattice vectors: a rotated crystal has L' = L R^T (fractional coordinates unchanged)
    g1, e1, c1, mu1 = scores(numbers, frac, lattice.numpy() @ rot.T)
    assert_same(keyed(g0, e0, rot=rot.T), keyed(g1, e1))
    np.testing.assert_allclose(c1.numpy(), c0.numpy() @ rot.T, atol=1e-6)
    np.testing.assert_allclose(mu1.numpy(), mu0.numpy(), atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(shift=st.tuples(*[st.floats(-3, 3)] * 3))
def test_translation(shift):
    numbers, frac, lattice = reference()
    g0, e0, c0, mu0 = scores(numbers, frac, lattice)
    g1, e1, c1, mu1 = scores(numbers, np.mod(frac.numpy() + np.array(shift), 1.0), lattice)
    assert_same(keyed(g0, e0), keyed(g1, e1))
    np.testing.assert_allclose(c1.numpy(), c0.numpy(), atol=1e-6)
    np.testing.assert_allclose(mu1.numpy(), mu0.numpy(), atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(perm=st.permutations(list(range(5))))
def test_permutation(perm):
    perm = np.array(perm)
    numbers, frac, lattice = reference()
    g0, e0, c0, mu0 = scores(numbers, frac, lattice)
    g1, e1, c1, mu1 = scores(numbers[perm], frac[perm], lattice)
    # atom perm[i] of the original is atom i of the permuted crystal
    inverse = np.argsort(perm)
    assert_same(keyed(g0, e0, relabel=inverse), keyed(g1, e1))
    np.testing.assert_allclose(c1.numpy(), c0.numpy()[perm], atol=1e-6)
    np.testing.assert_allclose(mu1.numpy(), mu0.numpy(), atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(images=st.lists(st.tuples(*[st.integers(-3, 3)] * 3), min_size=5, max_size=5))
def test_periodic_image_shift(images):
    numbers, frac, lattice = reference()
    g0, e0, c0, mu0 = scores(numbers, frac, lattice)
    g1, e1, c1, mu1 = scores(numbers, frac + torch.tensor(images, dtype=torch.float64), lattice)
    assert_same(keyed(g0, e0), keyed(g1, e1))
    np.testing.assert_allclose(c1.numpy(), c0.numpy(), atol=1e-6)
    np.testing.assert_allclose(mu1.numpy(), mu0.numpy(), atol=1e-6)


def test_scores_depend_on_geometry():
    """Guards the tests above against a model that ignores its input."""
    numbers, frac, lattice = reference()
    _, _, c0, mu0 = scores(numbers, frac, lattice)
    moved = frac.clone()
    moved[0] += 0.05
    _, _, c1, mu1 = scores(numbers, moved, lattice)
    assert not torch.allclose(c0, c1, atol=1e-4)
    assert not torch.allclose(mu0, mu1, atol=1e-6)
