"""SymmBFN: the four Bayesian flows (coordinates, lattice k, atom types, site-symmetry operations) around the network.

``DataStats`` (shared with SymmCD, in ``plugins._asymmetric.batching``) holds what the model learns from the training
set besides weights: the lattice normalisation and the (space group, size) sampling prior.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS
from plugins._asymmetric.batching import Batch, DataStats, lattice_constraints
from plugins._asymmetric.draws import categorical, softmax
from plugins.symmbfn import bfn
from plugins.symmbfn.config import NUM_TYPES, FlowConfig, NetworkConfig
from plugins.symmbfn.network import SymmBFNNet


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
        p_types = softmax(out["type_logits"])
        l_types = (bfn.discrete_loss(batch.types, p_types, t[:, None], f.beta1_types) * node).sum() / n_nodes
        p_ops = softmax(out["ops_logits"])
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
        # elements the training data never shows get probability 0 (the output distribution is renormalised over
        # the rest); a checkpoint without type counts samples from all NUM_TYPES classes, as before
        mask = self.stats.type_mask(NUM_TYPES)
        unseen = None if mask is None else torch.as_tensor(~mask, device=device)
        for step in range(1, n_steps + 2):  # the last pass (t = 1) only reads the output distribution
            t = torch.full((b,), (step - 1) / n_steps, device=device)
            out = self._forward(batch, t, mu_lat, mu_x, theta_types, theta_ops, prop)
            x_hat = torch.remainder(bfn.continuous_estimate(mu_x, out["eps_coords"], t[:, None, None], f.sigma1_coords), 1.0)
            k_hat = bfn.continuous_estimate(mu_lat, out["eps_lattice"], t[:, None], f.sigma1_lattice).clamp(-self.stats.k_bound, self.stats.k_bound)
            k_hat = k_hat * lm + fixed * (1 - lm)
            type_logits = out["type_logits"] if unseen is None else out["type_logits"].masked_fill(unseen, float("-inf"))
            p_types = softmax(type_logits)
            p_ops = softmax(out["ops_logits"])
            if step == n_steps + 1:
                break
            mu_x, rho_x = bfn.continuous_sender_step(mu_x, rho_x, x_hat, step, n_steps, f.sigma1_coords, generator)
            mu_lat, rho_lat = bfn.continuous_sender_step(mu_lat, rho_lat, k_hat, step, n_steps, f.sigma1_lattice, generator)
            mu_lat = mu_lat * lm + fixed * (1 - lm)
            theta_types = bfn.discrete_sender_step(theta_types, p_types, step, n_steps, f.beta1_types, generator)
            theta_ops = bfn.discrete_sender_step(theta_ops, p_ops, step, n_steps, f.beta1_ops, generator)
        types = categorical(p_types, generator)
        ops = categorical(p_ops, generator)
        k = k_hat.cpu().numpy() * np.asarray(self.stats.k_std) + np.asarray(self.stats.k_mean)
        return {
            "space_group": np.asarray(groups),
            "k": k,
            "atomic_numbers": types.cpu().numpy() + 1,
            "frac_coords": x_hat.cpu().numpy(),
            "site_symmetry": torch.nn.functional.one_hot(ops, N_OPS).cpu().numpy(),
            "node_mask": node_mask.cpu().numpy(),
        }
