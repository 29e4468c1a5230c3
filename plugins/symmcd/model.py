"""SymmCD: the four diffusion processes (lattice k, coordinates, atom types, site symmetries) around the denoiser.

``SymmCDStats`` is what the model learns from the training split besides weights: the shared ``DataStats`` (lattice
normalisation, space-group and size prior) and the marginals the discrete processes converge to: atom types over all
representatives, and the operation on each of the 15 axes **per space group** (paper app. D).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS, PackedCrystals
from plugins._asymmetric.batching import Batch, DataStats, lattice_constraints
from plugins._asymmetric.draws import softmax
from plugins.symmcd import diffusion as dif
from plugins.symmcd.config import NUM_TYPES, DiffusionConfig, NetworkConfig
from plugins.symmcd.network import SymmCDNet


@dataclass(frozen=True)
class SymmCDStats:
    data: DataStats
    type_marginals: tuple[float, ...]  # (100,)
    ops_marginals: tuple  # (231, 15, 13) nested tuples; groups unseen in training get the pooled marginal

    @classmethod
    def from_packed(cls, packed: PackedCrystals) -> SymmCDStats:
        real = packed.mask
        types = np.bincount(packed.atomic_numbers[real] - 1, minlength=NUM_TYPES).astype(np.float64)
        counts = np.zeros((231, N_AXES, N_OPS))
        groups = np.broadcast_to(packed.space_group[:, None], real.shape)[real]
        ops = packed.site_ops[real]  # (R, 15)
        for axis in range(N_AXES):
            np.add.at(counts, (groups, axis, ops[:, axis]), 1)
        pooled = counts.sum(0)
        pooled /= pooled.sum(-1, keepdims=True)
        totals = counts.sum(-1, keepdims=True)
        marginals = np.where(totals > 0, counts / np.maximum(totals, 1), pooled[None])
        return cls(DataStats.from_packed(packed), tuple((types / types.sum()).tolist()),
                   tuple(tuple(tuple(row) for row in g) for g in marginals.tolist()))

    def to_dict(self) -> dict:
        return {"data": asdict(self.data), "type_marginals": list(self.type_marginals),
                "ops_marginals": self.ops_marginals}

    @classmethod
    def from_dict(cls, payload: dict) -> SymmCDStats:
        def tupled(value):
            return tuple(tupled(v) for v in value) if isinstance(value, list | tuple) else value

        data = DataStats(**{k: tupled(v) for k, v in payload["data"].items()})
        return cls(data, tupled(payload["type_marginals"]), tupled(payload["ops_marginals"]))


class SymmCD(nn.Module):
    """The denoiser plus the diffusion hyperparameters: ``loss`` for training, ``generate`` for sampling."""

    def __init__(self, network: NetworkConfig, diffusion: DiffusionConfig, stats: SymmCDStats):
        super().__init__()
        self.net = SymmCDNet(network)
        self.diffusion = diffusion
        self.stats = stats
        self.register_buffer("type_m", torch.tensor(stats.type_marginals, dtype=torch.float32), persistent=False)
        self.register_buffer("ops_m", torch.tensor(stats.ops_marginals, dtype=torch.float32), persistent=False)
        d = diffusion
        self.schedules = dif.Schedules(d.timesteps, d.cosine_s, d.sigma_begin, d.sigma_end)

    def _sched(self, device) -> dif.Schedules:
        if self.schedules.alpha_bar.device != torch.device(device):
            self.schedules.to(device)
        return self.schedules

    def _forward(self, batch: Batch, step, k, x, types, ops):
        t = step.to(k.dtype) / self.diffusion.timesteps
        return self.net(space_group=batch.space_group, t=t, k=k, lattice_mask=batch.lattice_mask, coords=x,
                        types=types, ops=ops, node_mask=batch.node_mask)

    def loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The four denoising losses (and their weighted sum as ``total``) at one uniform step per crystal."""
        d, device = self.diffusion, batch.k.device
        s = self._sched(device)
        b = batch.space_group.shape[0]
        step = torch.randint(1, d.timesteps + 1, (b,), generator=generator, device=device)
        ab = s.alpha_bar[step]
        lm = batch.lattice_mask
        eps = torch.randn(batch.k.shape, generator=generator, device=device)
        k_t = (ab.sqrt()[:, None] * batch.k + (1 - ab).sqrt()[:, None] * eps) * lm + batch.lattice_fixed * (1 - lm)
        sigma = s.sigma[step][:, None, None]
        z = torch.randn(batch.coords.shape, generator=generator, device=device)
        x_t = torch.remainder(batch.coords + sigma * z, 1.0)
        target = dif.wrapped_normal_neg_score(sigma * z, sigma.expand_as(z)) / s.sigma_norm[step].sqrt()[:, None, None]
        types_t = dif.noised_categorical(batch.types, ab[:, None], self.type_m, generator)
        ops_m = self.ops_m[batch.space_group][:, None].expand(*batch.ops.shape, N_OPS)
        ops_t = dif.noised_categorical(batch.ops, ab[:, None, None], ops_m, generator)
        out = self._forward(batch, step, k_t, x_t, types_t, ops_t)

        node = batch.node_mask.to(k_t.dtype)
        n_nodes = node.sum().clamp_min(1)
        l_lattice = (((out["eps_lattice"] - eps) ** 2) * lm).sum() / lm.sum().clamp_min(1)
        l_coords = (((out["coords"] - target) ** 2).mean(-1) * node).sum() / n_nodes
        ce = nn.functional.cross_entropy
        l_types = (ce(out["type_logits"].transpose(1, 2), batch.types, reduction="none") * node).sum() / n_nodes
        if "ops_logits" in out:
            per_axis = ce(out["ops_logits"].permute(0, 3, 1, 2), batch.ops, reduction="none")  # (B, N, 15)
            l_ops = (per_axis.mean(-1) * node).sum() / n_nodes
        else:
            l_ops = torch.zeros((), device=device)
        total = (d.weight_lattice * l_lattice + d.weight_coords * l_coords + d.weight_types * l_types
                 + d.weight_symmetry * l_ops)
        return {"total": total, "lattice": l_lattice, "coords": l_coords, "types": l_types, "symmetry": l_ops}

    @torch.no_grad()
    def generate(self, groups: np.ndarray, sizes: np.ndarray, generator: torch.Generator,
                 corrector_step: float | None = None, progress=None) -> dict[str, np.ndarray]:
        """Run the T reverse steps for crystals with the given groups and representative counts.

        Coordinates take DiffCSP's predictor-corrector step (a Langevin corrector of size ``corrector_step``
        scaled by (sigma_t / sigma_1)^2, then the reverse-SDE predictor); k takes the DDPM ancestral step; types
        and site symmetries are drawn from the posterior averaged over the predicted clean class. Returns numpy
        arrays: space_group (B,), k (B, 6) unnormalised, atomic_numbers (B, N), frac_coords (B, N, 3),
        site_symmetry (B, N, 15, 13) one-hot, node_mask (B, N).
        """
        d = self.diffusion
        corrector = d.corrector_step if corrector_step is None else corrector_step
        device = next(self.parameters()).device
        s = self._sched(device)
        b, n = len(groups), int(max(sizes))
        node_mask = torch.as_tensor(np.arange(n)[None] < np.asarray(sizes)[:, None], device=device)
        lm, fixed = lattice_constraints(groups, self.stats.data, device)
        sg = torch.as_tensor(np.asarray(groups), dtype=torch.long, device=device)
        batch = Batch(sg, None, lm, fixed, None, None, None, node_mask)

        def randn(*shape):
            return torch.randn(*shape, generator=generator, device=device)

        k = randn(b, 6) * lm + fixed * (1 - lm)
        x = torch.rand(b, n, 3, generator=generator, device=device)
        types = dif.sample_categorical(self.type_m.expand(b, n, NUM_TYPES), generator)
        ops_m = self.ops_m[sg][:, None].expand(b, n, N_AXES, N_OPS)
        ops = dif.sample_categorical(ops_m, generator)
        for t in range(d.timesteps, 0, -1):
            step = torch.full((b,), t, device=device, dtype=torch.long)
            sigma, sigma_prev = s.sigma[t], s.sigma[t - 1]
            if corrector > 0:
                out = self._forward(batch, step, k, x, types, ops)
                size = corrector * (sigma / s.sigma[1]) ** 2
                x = torch.remainder(x - size * out["coords"] * s.sigma_norm[t].sqrt() + (2 * size).sqrt() * randn(b, n, 3), 1.0)
            out = self._forward(batch, step, k, x, types, ops)
            size = sigma**2 - sigma_prev**2
            std = (sigma_prev**2 * size / sigma**2).sqrt()
            x = torch.remainder(x - size * out["coords"] * s.sigma_norm[t].sqrt() + std * randn(b, n, 3), 1.0)
            ab, ab_prev, beta = s.alpha_bar[t], s.alpha_bar[t - 1], s.beta[t]
            mean = (k - beta / (1 - ab).sqrt() * out["eps_lattice"]) / (1 - beta).sqrt()
            var = beta * (1 - ab_prev) / (1 - ab)
            k = (mean + var.sqrt() * randn(b, 6)) * lm + fixed * (1 - lm)
            k = k.clamp(-self.stats.data.k_bound, self.stats.data.k_bound)
            abt, abp = ab.expand(b, n), ab_prev.expand(b, n)
            types = dif.sample_categorical(
                dif.posterior(types, softmax(out["type_logits"]), abt, abp, self.type_m.expand(b, n, NUM_TYPES)),
                generator)
            if "ops_logits" in out:
                ops = dif.sample_categorical(
                    dif.posterior(ops, softmax(out["ops_logits"]), abt[..., None].expand(b, n, N_AXES),
                                  abp[..., None].expand(b, n, N_AXES), ops_m),
                    generator)
            if progress is not None:
                progress(1)
        data = self.stats.data
        k_out = (k * lm + fixed * (1 - lm)).cpu().numpy() * np.asarray(data.k_std) + np.asarray(data.k_mean)
        return {
            "space_group": np.asarray(groups),
            "k": k_out,
            "atomic_numbers": types.cpu().numpy() + 1,
            "frac_coords": x.cpu().numpy(),
            "site_symmetry": nn.functional.one_hot(ops, N_OPS).cpu().numpy(),
            "node_mask": node_mask.cpu().numpy(),
        }
