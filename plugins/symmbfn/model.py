"""SymmBFN: the four Bayesian flows (coordinates, lattice k, atom types, site-symmetry operations) around the network.

``DataStats`` holds what the model learns from the training set besides weights: the lattice normalisation and the
empirical distributions of space groups and of the number of representatives given the group (sampling prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS, PackedCrystals, fixed_k, k_mask
from plugins.symmbfn import bfn
from plugins.symmbfn.config import NUM_TYPES, FlowConfig, NetworkConfig
from plugins.symmbfn.network import SymmBFNNet

# The lattice estimate is clipped to the data range (normalised units), as Graves et al. clip continuous estimates:
# at small t, x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat amplifies noise-estimate errors. Checkpoints saved
# before ``k_bound`` existed use this default.
DEFAULT_K_BOUND = 6.0


@dataclass(frozen=True)
class DataStats:
    k_mean: tuple[float, ...]  # (6,), over the crystals whose group leaves that entry free
    k_std: tuple[float, ...]  # (6,), likewise (floored at 0.01)
    sg_counts: tuple[int, ...]  # (231,), index = space-group number
    n_counts: tuple[tuple[int, ...], ...]  # (231, n_max + 1): representatives per crystal, per group
    k_bound: float = DEFAULT_K_BOUND  # |normalised k| clip: 1.5 x the largest free value seen, at least 4

    @classmethod
    def from_packed(cls, packed: PackedCrystals) -> DataStats:
        k = packed.k.astype(np.float64)
        free = np.stack([k_mask(int(g)) for g in packed.space_group]) > 0
        mean, std = np.zeros(6), np.ones(6)
        for i in range(6):
            if free[:, i].any():
                mean[i], std[i] = k[free[:, i], i].mean(), max(k[free[:, i], i].std(), 1e-2)
        bound = max(4.0, 1.5 * float(np.abs(((k - mean) / std)[free]).max()))
        n = packed.mask.sum(1)
        sg_counts = np.bincount(packed.space_group, minlength=231)
        n_counts = np.zeros((231, int(n.max()) + 1), dtype=np.int64)
        np.add.at(n_counts, (packed.space_group, n), 1)
        return cls(tuple(float(x) for x in mean), tuple(float(x) for x in std), tuple(int(c) for c in sg_counts),
                   tuple(tuple(int(c) for c in row) for row in n_counts), bound)

    def sample_groups_and_sizes(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Space groups from the training marginal, then representative counts given each group."""
        sg_p = np.asarray(self.sg_counts, dtype=float)
        groups = rng.choice(231, size=n, p=sg_p / sg_p.sum())
        counts = np.asarray(self.n_counts, dtype=float)
        sizes = np.array([rng.choice(counts.shape[1], p=counts[g] / counts[g].sum()) for g in groups])
        return groups, sizes


@dataclass(frozen=True)
class Batch:
    """Model-ready tensors of a batch (see ``PackedCrystals``); ``k`` normalised, types as class Z - 1."""

    space_group: torch.Tensor
    k: torch.Tensor
    lattice_mask: torch.Tensor
    lattice_fixed: torch.Tensor  # normalised fixed values
    coords: torch.Tensor
    types: torch.Tensor
    ops: torch.Tensor
    node_mask: torch.Tensor


def lattice_constraints(groups, stats: DataStats, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-crystal mask of free k entries and the normalised fixed values."""
    mean, std = np.asarray(stats.k_mean), np.asarray(stats.k_std)
    mask = np.stack([k_mask(int(g)) for g in groups])
    fixed = np.stack([(fixed_k(int(g)) - mean) / std for g in groups])
    return (torch.as_tensor(mask, dtype=torch.float32, device=device),
            torch.as_tensor(fixed, dtype=torch.float32, device=device))


def make_batch(packed: PackedCrystals, stats: DataStats, device) -> Batch:
    mask, fixed = lattice_constraints(packed.space_group, stats, device)
    k = (packed.k - np.asarray(stats.k_mean)) / np.asarray(stats.k_std)

    def tensor(a, dtype):
        return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

    return Batch(
        tensor(packed.space_group, torch.long), tensor(k, torch.float32), mask, fixed,
        tensor(packed.frac_coords, torch.float32), tensor(np.maximum(packed.atomic_numbers - 1, 0), torch.long),
        tensor(packed.site_ops, torch.long), tensor(packed.mask, torch.bool),
    )


class SymmBFN(nn.Module):
    """The network plus the flow hyperparameters: ``loss`` for training, ``generate`` for sampling."""

    def __init__(self, network: NetworkConfig, flow: FlowConfig, stats: DataStats):
        super().__init__()
        self.net = SymmBFNNet(network)
        self.flow = flow
        self.stats = stats

    def _forward(self, batch: Batch, t, mu_lat, mu_x, theta_types, theta_ops, prop=None):
        return self.net(space_group=batch.space_group, t=t, mu_lattice=mu_lat, lattice_mask=batch.lattice_mask,
                        mu_coords=mu_x, theta_types=theta_types, theta_ops=theta_ops, node_mask=batch.node_mask,
                        prop=prop)

    def loss(self, batch: Batch, generator: torch.Generator, prop=None) -> dict[str, torch.Tensor]:
        """The four continuous-time BFN losses (and their weighted sum as ``total``) at t ~ U(0, 1) per crystal."""
        f = self.flow
        t = torch.rand(batch.space_group.shape, generator=generator, device=batch.k.device)
        lm = batch.lattice_mask
        mu_lat = bfn.continuous_flow(batch.k, t[:, None], f.sigma1_lattice, generator) * lm + batch.lattice_fixed * (1 - lm)
        mu_x = bfn.continuous_flow(batch.coords, t[:, None, None], f.sigma1_coords, generator)
        theta_types = bfn.discrete_flow(batch.types, NUM_TYPES, t[:, None], f.beta1_types, generator)
        theta_ops = bfn.discrete_flow(batch.ops, N_OPS, t[:, None, None], f.beta1_ops, generator)
        out = self._forward(batch, t, mu_lat, mu_x, theta_types, theta_ops, prop)

        node = batch.node_mask.float()
        n_nodes = node.sum().clamp_min(1)
        x_hat = bfn.continuous_estimate(mu_x, out["eps_coords"], t[:, None, None], f.sigma1_coords)
        l_coords = (bfn.continuous_loss(batch.coords, x_hat, t[:, None, None], f.sigma1_coords, periodic=True)
                    .sum(-1) * node).sum() / n_nodes
        k_hat = bfn.continuous_estimate(mu_lat, out["eps_lattice"], t[:, None], f.sigma1_lattice).clamp(-self.stats.k_bound, self.stats.k_bound)
        l_lattice = (bfn.continuous_loss(batch.k, k_hat, t[:, None], f.sigma1_lattice) * lm).sum(-1).mean()
        p_types = torch.softmax(out["type_logits"], -1)
        l_types = (bfn.discrete_loss(batch.types, p_types, t[:, None], f.beta1_types) * node).sum() / n_nodes
        p_ops = torch.softmax(out["ops_logits"], -1)
        l_ops = (bfn.discrete_loss(batch.ops, p_ops, t[:, None, None], f.beta1_ops).sum(-1) * node).sum() / n_nodes
        total = (f.weight_coords * l_coords + f.weight_lattice * l_lattice + f.weight_types * l_types
                 + f.weight_ops * l_ops)
        return {"total": total, "coords": l_coords, "lattice": l_lattice, "types": l_types, "ops": l_ops}

    @torch.no_grad()
    def generate(self, groups: np.ndarray, sizes: np.ndarray, n_steps: int, generator: torch.Generator,
                 prop=None) -> dict[str, np.ndarray]:
        """Run ``n_steps`` of BFN sampling for crystals with the given groups and representative counts.

        Returns numpy arrays: space_group (B,), k (B, 6) unnormalised, atomic_numbers (B, N), frac_coords (B, N, 3),
        site_symmetry (B, N, 15, 13) one-hot, node_mask (B, N).
        """
        f = self.flow
        device = next(self.parameters()).device
        b, n = len(groups), int(max(sizes))
        node_mask = torch.as_tensor(np.arange(n)[None] < np.asarray(sizes)[:, None], device=device)
        lm, fixed = lattice_constraints(groups, self.stats, device)
        batch = Batch(torch.as_tensor(np.asarray(groups), dtype=torch.long, device=device), None, lm, fixed,
                      None, None, None, node_mask)
        mu_x, rho_x = torch.zeros(b, n, 3, device=device), 1.0
        mu_lat, rho_lat = fixed * (1 - lm), 1.0
        theta_types = torch.full((b, n, NUM_TYPES), 1.0 / NUM_TYPES, device=device)
        theta_ops = torch.full((b, n, N_AXES, N_OPS), 1.0 / N_OPS, device=device)
        for step in range(1, n_steps + 2):  # the last pass (t = 1) only reads the output distribution
            t = torch.full((b,), (step - 1) / n_steps, device=device)
            out = self._forward(batch, t, mu_lat, mu_x, theta_types, theta_ops, prop)
            x_hat = torch.remainder(bfn.continuous_estimate(mu_x, out["eps_coords"], t[:, None, None], f.sigma1_coords), 1.0)
            k_hat = bfn.continuous_estimate(mu_lat, out["eps_lattice"], t[:, None], f.sigma1_lattice).clamp(-self.stats.k_bound, self.stats.k_bound)
            k_hat = k_hat * lm + fixed * (1 - lm)
            p_types = torch.softmax(out["type_logits"], -1)
            p_ops = torch.softmax(out["ops_logits"], -1)
            if step == n_steps + 1:
                break
            mu_x, rho_x = bfn.continuous_sender_step(mu_x, rho_x, x_hat, step, n_steps, f.sigma1_coords, generator)
            mu_lat, rho_lat = bfn.continuous_sender_step(mu_lat, rho_lat, k_hat, step, n_steps, f.sigma1_lattice, generator)
            mu_lat = mu_lat * lm + fixed * (1 - lm)
            theta_types = bfn.discrete_sender_step(theta_types, p_types, step, n_steps, f.beta1_types, generator)
            theta_ops = bfn.discrete_sender_step(theta_ops, p_ops, step, n_steps, f.beta1_ops, generator)
        types = torch.multinomial(p_types.reshape(-1, NUM_TYPES), 1, generator=generator).reshape(b, n)
        ops = torch.multinomial(p_ops.reshape(-1, N_OPS), 1, generator=generator).reshape(b, n, N_AXES)
        k = k_hat.cpu().numpy() * np.asarray(self.stats.k_std) + np.asarray(self.stats.k_mean)
        return {
            "space_group": np.asarray(groups),
            "k": k,
            "atomic_numbers": types.cpu().numpy() + 1,
            "frac_coords": x_hat.cpu().numpy(),
            "site_symmetry": torch.nn.functional.one_hot(ops, N_OPS).cpu().numpy(),
            "node_mask": node_mask.cpu().numpy(),
        }
