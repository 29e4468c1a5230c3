"""SymmCD: the noise processes, the denoiser, training/resume with a tiny preset, deterministic sampling, the plugin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from plugins._asymmetric import encode, pack
from plugins._asymmetric.batching import make_batch
from plugins.symmcd import diffusion as dif
from plugins.symmcd.config import get_preset
from plugins.symmcd.model import SymmCDStats
from plugins.symmcd.training import build_model

CHECKPOINTS = Path(__file__).resolve().parents[1] / "plugins" / "symmcd" / "checkpoints"


# ---------------------------------------------------------------- noise processes

def test_cosine_schedule_runs_from_clean_to_noise():
    ab = dif.cosine_alpha_bar(1000)
    assert ab[0] == 1 and np.all(np.diff(ab) < 0) and ab[-1] < 1e-4


def test_wrapped_normal_score_matches_autograd_and_is_periodic():
    x = torch.linspace(-0.7, 0.7, 29, dtype=torch.float64, requires_grad=True)
    sigma = torch.full_like(x, 0.3)
    images = torch.arange(-10, 11, dtype=torch.float64)
    log_p = torch.logsumexp(-((x[:, None] + images) ** 2) / (2 * 0.3**2), dim=-1).sum()
    (grad,) = torch.autograd.grad(log_p, x)
    assert torch.allclose(dif.wrapped_normal_neg_score(x.detach(), sigma), -grad, atol=1e-9)
    shifted = dif.wrapped_normal_neg_score(x.detach() + 1.0, sigma)
    assert torch.allclose(shifted, dif.wrapped_normal_neg_score(x.detach(), sigma), atol=1e-9)


def test_score_norm_is_gaussian_for_small_sigma_and_smaller_when_wrapped():
    assert dif.score_norm(0.01) == pytest.approx(1e4)
    assert dif.score_norm(0.03) == pytest.approx(1 / 0.03**2, rel=1e-6)
    assert dif.score_norm(0.5) < 0.5 / 0.5**2  # wrapping flattens the density


def test_noising_converges_to_the_marginals():
    gen = torch.Generator().manual_seed(0)
    marginals = torch.tensor([0.7, 0.2, 0.1, 0.0])
    x0 = torch.full((20000,), 3)
    noised = dif.noised_categorical(x0, torch.tensor(0.0), marginals, gen)
    freq = torch.bincount(noised, minlength=4).float() / 20000
    assert torch.allclose(freq, marginals, atol=0.02)
    assert (dif.noised_categorical(x0, torch.tensor(1.0), marginals, gen) == 3).all()


def test_posterior_is_bayes_rule_for_a_known_clean_class():
    """With p0 one-hot, p(x_{t-1} | x_t) must equal q(x_t | x_{t-1}) q(x_{t-1} | x_0) / q(x_t | x_0)."""
    k, m = 4, torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    ab_t, ab_prev = torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    a_t = ab_t / ab_prev
    q_step = a_t * torch.eye(k, dtype=torch.float64) + (1 - a_t) * m[None]  # Q_t[i, j]
    q_prev = ab_prev * torch.eye(k, dtype=torch.float64) + (1 - ab_prev) * m[None]
    for x0 in range(k):
        for xt in range(k):
            expected = q_step[:, xt] * q_prev[x0] / (q_step[:, xt] * q_prev[x0]).sum()
            got = dif.posterior(torch.tensor(xt), torch.nn.functional.one_hot(torch.tensor(x0), k).double(),
                                ab_t, ab_prev, m)
            assert torch.allclose(got, expected, atol=1e-12)


# ---------------------------------------------------------------- statistics, denoiser, loss

def test_marginals_are_per_space_group(toy_split):
    stats = SymmCDStats.from_packed(pack([encode(s) for s in toy_split.structures]))
    assert math.isclose(sum(stats.type_marginals), 1.0, rel_tol=1e-9)
    assert stats.type_marginals[8 - 1] > 0 and stats.type_marginals[118 - 19] == 0  # O present, nothing beyond
    ops = np.asarray(stats.ops_marginals)
    assert ops.shape == (231, 15, 13) and np.allclose(ops.sum(-1), 1)
    assert not np.allclose(ops[225], ops[186])  # m-3m sites differ from 3m sites


def test_denoiser_is_equivariant_to_the_order_of_representatives(toy_split):
    packed = pack([encode(s) for s in toy_split.structures[:4]])
    stats = SymmCDStats.from_packed(packed)
    model = build_model(get_preset("tiny"), stats, seed=0).eval()
    batch = make_batch(packed, stats.data, "cpu")
    n = batch.coords.shape[1]
    args = {"space_group": batch.space_group, "t": torch.full((4,), 0.4), "k": batch.k,
            "lattice_mask": batch.lattice_mask, "coords": batch.coords, "types": batch.types, "ops": batch.ops,
            "node_mask": batch.node_mask}
    out = model.net(**args)
    perm = torch.arange(n - 1, -1, -1)
    permuted = {k: (v[:, perm] if k in ("coords", "types", "ops", "node_mask") else v) for k, v in args.items()}
    out_p = model.net(**permuted)
    assert torch.allclose(out["eps_lattice"], out_p["eps_lattice"], atol=1e-5)
    assert torch.allclose(out["ops_logits"][:, perm], out_p["ops_logits"], atol=1e-5)


def test_full_cell_variant_has_no_site_symmetry_head(toy_split):
    from dataclasses import replace

    packed = pack([encode(s) for s in toy_split.structures[:3]])
    stats = SymmCDStats.from_packed(packed)
    preset = get_preset("tiny")
    model = build_model(replace(preset, network=replace(preset.network, site_symmetry=False)), stats, seed=0)
    losses = model.loss(make_batch(packed, stats.data, "cpu"), torch.Generator().manual_seed(0))
    assert losses["symmetry"].item() == 0 and not hasattr(model.net, "symmetry_out")


# ---------------------------------------------------------------- plugin registration (training, sampling, checkpoints: test_asymmetric_generators.py)

def test_hook_registers_the_spec():
    from plugins.symmcd import hooks

    specs = []
    hooks.xtalbench_register_generators(specs.append)
    (spec,) = specs
    assert spec.name == "symmcd" and spec.load_class().name == "symmcd"
