"""SymmBFN: the BFN arithmetic, the network, training/resume with a tiny preset, deterministic sampling, the plugin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins._asymmetric import encode, pack
from plugins._asymmetric.batching import DataStats, make_batch
from plugins.symmbfn import bfn
from plugins.symmbfn.config import get_preset
from plugins.symmbfn.training import build_model

CHECKPOINTS = Path(__file__).resolve().parents[1] / "plugins" / "symmbfn" / "checkpoints"


# ---------------------------------------------------------------- BFN arithmetic

def test_continuous_flow_concentrates_on_the_data_at_t1():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 3, generator=gen)
    mu = bfn.continuous_flow(x, torch.ones(2000, 1), 0.01, gen)
    gamma = 1 - 0.01**2
    assert torch.allclose(mu.mean(0), gamma * x.mean(0), atol=1e-3)
    assert (mu - gamma * x).std() == pytest.approx(math.sqrt(gamma * (1 - gamma)), rel=0.05)


def test_continuous_estimate_with_the_true_noise_recovers_x():
    gen = torch.Generator().manual_seed(1)
    x, t, eps = torch.rand(10, 3, generator=gen), torch.full((10, 1), 0.7), torch.randn(10, 3, generator=gen)
    g = bfn.gamma(t, 0.01)
    mu = g * x + torch.sqrt(g * (1 - g)) * eps
    assert torch.allclose(bfn.continuous_estimate(mu, eps, t, 0.01), x, atol=1e-4)
    assert bfn.continuous_loss(x, x, t, 0.01).abs().max() == 0


def test_periodic_loss_ignores_whole_cell_shifts():
    x, x_hat, t = torch.tensor([0.02]), torch.tensor([0.98]), torch.tensor([0.5])
    assert bfn.continuous_loss(x, x_hat, t, 0.01, periodic=True) == pytest.approx(
        bfn.continuous_loss(torch.tensor([0.0]), torch.tensor([-0.04]), t, 0.01).item(), rel=1e-4)


def test_discrete_flow_is_uniform_at_t0_and_informative_late():
    gen = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 13, (500,), generator=gen)
    theta0 = bfn.discrete_flow(idx, 13, torch.zeros(500), 1.5, gen)
    assert torch.allclose(theta0, torch.full_like(theta0, 1 / 13))
    theta1 = bfn.discrete_flow(idx, 13, torch.ones(500), 20.0, gen)
    assert (theta1.argmax(-1) == idx).float().mean() > 0.95
    exact = torch.nn.functional.one_hot(idx, 13).float()
    assert bfn.discrete_loss(idx, exact, torch.ones(500), 1.5).abs().max() == 0


# ---------------------------------------------------------------- network and model

def test_network_is_equivariant_to_the_order_of_representatives(toy_split):
    crystals = [encode(s) for s in toy_split.structures[:4]]
    packed = pack(crystals)
    stats = DataStats.from_packed(packed)
    model = build_model(get_preset("tiny"), stats, seed=0).eval()
    batch = make_batch(packed, stats, "cpu")
    n = batch.coords.shape[1]
    gen = torch.Generator().manual_seed(3)
    args = {
        "space_group": batch.space_group, "t": torch.full((4,), 0.4), "mu_lattice": batch.k,
        "lattice_mask": batch.lattice_mask, "mu_coords": batch.coords,
        "theta_types": torch.softmax(torch.randn(4, n, 100, generator=gen), -1),
        "theta_ops": torch.softmax(torch.randn(4, n, 15, 13, generator=gen), -1), "node_mask": batch.node_mask,
    }
    out = model.net(**args)
    perm = torch.arange(n - 1, -1, -1)
    permuted = {k: (v[:, perm] if k in ("mu_coords", "theta_types", "theta_ops", "node_mask") else v) for k, v in args.items()}
    out_p = model.net(**permuted)
    assert torch.allclose(out["eps_lattice"], out_p["eps_lattice"], atol=1e-5)
    assert torch.allclose(out["type_logits"][:, perm], out_p["type_logits"], atol=1e-5)


def test_lattice_statistics_use_free_entries_only(toy_split):
    packed = pack([encode(s) for s in toy_split.structures])
    stats = DataStats.from_packed(packed)
    # k1 is free in none of these groups (cubic, hexagonal): it keeps the identity normalisation
    assert stats.k_mean[0] == 0 and stats.k_std[0] == 1
    assert stats.k_std[5] > 0.01 and stats.k_bound >= 4
    groups, sizes = stats.sample_groups_and_sizes(50, np.random.default_rng(0))
    assert set(groups) <= {225, 221, 186} and all(
        stats.n_counts[g][n] > 0 for g, n in zip(groups, sizes, strict=True))


# ---------------------------------------------------------------- decoding

@pytest.fixture(scope="module")
def test_unbuildable_arrays_give_none():
    from plugins._asymmetric import structures_from_arrays

    arrays = {"space_group": np.array([0]), "k": np.zeros((1, 6)), "atomic_numbers": np.array([[8]]),
              "frac_coords": np.zeros((1, 1, 3)), "site_symmetry": np.zeros((1, 1, 15, 13)),
              "node_mask": np.array([[True]])}
    assert structures_from_arrays(arrays) == [None]


# ---------------------------------------------------------------- plugin registration (training, sampling, checkpoints: test_asymmetric_generators.py)

def test_hook_registers_the_spec():
    from plugins.symmbfn import hooks

    specs = []
    hooks.xtalbench_register_generators(specs.append)
    (spec,) = specs
    assert spec.name == "symmbfn" and spec.datasets == ("mp20", "perov5", "carbon24")
    assert spec.load_class().name == "symmbfn"
