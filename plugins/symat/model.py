"""SyMat = VAE for (element set, lattice) + distance score model for coordinates; its losses (section 3.3, 3.4, app. B)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from plugins.symat.data import Batch, per_atom_lengths
from plugins.symat.graph import build_multigraph, edge_vectors
from plugins.symat.nets import EdgeScoreModel, SyMatVAE

# Appendix D.1 loss weights.
LOSS_WEIGHTS = {"k": 1.0, "elements": 30.0, "counts": 1.0, "lattice": 10.0, "kl": 0.01, "score": 10.0}
# The latent property predictor's loss weight (CDVAE's cost_property): mean squared error of the standardised label.
PROPERTY_WEIGHT = 1.0


def noise_levels(sigma_max: float, sigma_min: float, num: int) -> torch.Tensor:
    """Geometrically decreasing coordinate noise levels sigma_1 > ... > sigma_T (appendix D.1: 10 -> 0.01, T=50)."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), num))


class SyMat(nn.Module):
    """Both networks plus the dataset statistics sampling needs (lattice standardisation, sigma-hat per level).

    ``cfg["lattice_scale"]``: the lattice decoder regresses lengths / N^(1/3) (see ``data.per_atom_lengths``);
    checkpoints written before it existed lack the key and keep regressing plain lengths.

    ``cfg["property"]`` (a dataset column, with ``property_mean`` / ``property_std``): a predictor of that property
    from the latent z, trained jointly (CDVAE's ``fc_property``), which the optimisation task steps the latents
    along (``plugins.symat.optimise``).
    """

    def __init__(self, cfg: dict, max_atoms: int, lattice_mean, lattice_std):
        super().__init__()
        self.cfg = {**cfg, "lattice_scale": bool(cfg.get("lattice_scale", False))}
        self.max_atoms = max_atoms
        self.vae = SyMatVAE(cfg, max_atoms)
        self.score = EdgeScoreModel(cfg, cfg["num_levels"])
        self.register_buffer("sigmas", noise_levels(cfg["sigma_max"], cfg["sigma_min"], cfg["num_levels"]))
        self.register_buffer("sigma_hat", torch.ones(cfg["num_levels"]))  # set by estimate_sigma_hat
        self.register_buffer("lattice_mean", torch.tensor(lattice_mean, dtype=torch.float32))
        self.register_buffer("lattice_std", torch.tensor(lattice_std, dtype=torch.float32))
        self.property_head = None
        if cfg.get("property"):
            from plugins.symat.nets import mlp

            self.property_head = mlp(cfg["latent_a"] + cfg["latent_l"], cfg["mlp_hidden"], 1)

    @property
    def property_name(self) -> str | None:
        return self.cfg.get("property") if self.property_head is not None else None

    def predict_property(self, z: torch.Tensor) -> torch.Tensor:
        """The property predicted from latents z (B, latent), in the label's unit."""
        return self.property_head(z)[:, 0] * self.cfg["property_std"] + self.cfg["property_mean"]

    # ----- VAE -----
    def lattice_items(self, params: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
        """The six items the lattice decoder regresses, from lengths/angles and atom counts."""
        return per_atom_lengths(params, num_atoms) if self.cfg["lattice_scale"] else params

    def vae_losses(self, batch: Batch, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Reconstruction losses of c = {(e_i, n_i)}, the lattice items, and the KL term."""
        graph = build_multigraph(batch.frac, batch.lattices, batch.num_atoms, self.cfg["cutoff"])
        num_crystals = len(batch.num_atoms)
        mu, logvar = self.vae.encode(batch.numbers, graph, batch.crystal_of_atom, num_crystals)
        eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)
        z_a, z_l = self.vae.split(z)
        max_n = self.max_atoms
        k_target = (batch.num_types - 1).clamp(0, max_n - 1)
        count_target = (batch.type_counts - 1).clamp(0, max_n - 1)
        lattice_target = (
            self.lattice_items(batch.lattice_params, batch.num_atoms) - self.lattice_mean
        ) / self.lattice_std
        extra = {}
        if self.property_head is not None and batch.y is not None:
            labelled = torch.isfinite(batch.y)
            if labelled.any():
                target = (batch.y[labelled] - self.cfg["property_mean"]) / self.cfg["property_std"]
                extra["property"] = F.mse_loss(self.property_head(z)[labelled, 0], target)
            else:
                extra["property"] = torch.zeros((), device=z.device)
        parts = {
            "k": F.cross_entropy(self.vae.mlp_k(z_a), k_target),
            "elements": F.binary_cross_entropy_with_logits(self.vae.mlp_e(z_a), batch.element_set),
            "counts": F.cross_entropy(
                self.vae.count_logits(z_a, batch.type_elements, batch.type_crystal), count_target
            ),
            "lattice": F.mse_loss(self.vae.mlp_l(z_l), lattice_target),
            "kl": (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean(),
        }
        return {**parts, **extra}

    # ----- coordinate score model -----
    def perturb(self, batch: Batch, levels: torch.Tensor, generator: torch.Generator | None):
        """Noisy fractional coordinates (cartesian noise N(0, sigma_t^2 I)) and the per-atom level index."""
        level_of_atom = levels[batch.crystal_of_atom]
        noise = torch.randn(batch.frac.shape, generator=generator, device="cpu").to(batch.frac.device)
        noise = noise * self.sigmas[level_of_atom][:, None]
        inv = torch.linalg.inv(batch.lattices)[batch.crystal_of_atom]
        noisy = batch.frac + torch.einsum("na,nab->nb", noise, inv)
        return noisy, level_of_atom

    def distance_targets(self, batch: Batch, noisy_frac: torch.Tensor):
        """Multi-graph of the noisy crystal, its edge distances d~ and the aligned clean distances d^ (appendix B)."""
        graph = build_multigraph(noisy_frac, batch.lattices, batch.num_atoms, self.cfg["cutoff"])
        # p^_i = p_i + L u with u the lattice shift that brings p_i nearest to p~_i (CDVAE-style alignment)
        aligned = batch.frac + torch.round(noisy_frac - batch.frac)
        clean_vec = edge_vectors(aligned, batch.lattices, graph, batch.crystal_of_atom)
        return graph, graph.dist, clean_vec.norm(dim=-1)

    def score_loss(self, batch: Batch, generator: torch.Generator | None) -> torch.Tensor:
        """Denoising score matching on edge distances: mean over edges of (o + (d~ - d^) / sigma^_t)^2.

        The network output o is the edge score scaled by sigma^_t (score = o / sigma^_t), so this equals the
        paper's sigma^_t^2 * |score + (d~ - d^) / sigma^_t^2|^2 weighting.
        """
        levels = torch.randint(
            0, len(self.sigmas), (len(batch.num_atoms),), generator=generator, device="cpu"
        ).to(batch.frac.device)
        noisy, level_of_atom = self.perturb(batch, levels, generator)
        graph, d_noisy, d_clean = self.distance_targets(batch, noisy)
        if len(graph.src) == 0:
            return torch.zeros((), device=batch.frac.device)
        out = self.score(batch.numbers, graph, level_of_atom)
        sigma_hat = self.sigma_hat[level_of_atom[graph.src]]
        return ((out + (d_noisy - d_clean) / sigma_hat) ** 2).mean() * 0.5

    def edge_scores(self, numbers, graph, level_of_atom):
        """Distance scores s_ijk = o_ijk / sigma^_t for every edge."""
        return self.score(numbers, graph, level_of_atom) / self.sigma_hat[level_of_atom[graph.src]]

    def losses(self, batch: Batch, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        parts = self.vae_losses(batch, generator)
        parts["score"] = self.score_loss(batch, generator)
        parts["total"] = sum((PROPERTY_WEIGHT if k == "property" else LOSS_WEIGHTS[k]) * v for k, v in parts.items())
        return parts


@torch.no_grad()
def estimate_sigma_hat(model: SyMat, batches: list[Batch], seed: int) -> torch.Tensor:
    """Per level, the empirical standard deviation of d~ - d^ over edges of perturbed training crystals."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.ones(len(model.sigmas))
    for t in range(len(model.sigmas)):
        diffs = []
        for batch in batches:
            levels = torch.full((len(batch.num_atoms),), t, dtype=torch.long)
            noisy, _ = model.perturb(batch, levels, gen)
            _, d_noisy, d_clean = model.distance_targets(batch, noisy)
            diffs.append(d_noisy - d_clean)
        diffs = torch.cat(diffs)
        if len(diffs) > 1:
            out[t] = diffs.std().clamp_min(1e-4)
    return out
