"""The SymmBFN network (paper app. A.3, after DiffCSP's message passing): a fully connected graph of representatives.

Node inputs: the atom-type and site-symmetry probabilities (theta), the space-group embedding, a sinusoidal time
embedding, the lattice mean, and (our addition) Fourier features of each representative's coordinate mean: in the
asymmetric unit the origin is fixed by the symmetry elements, so absolute positions carry information that
differences alone cannot. Edges: Fourier features of differences of coordinate means. Readouts: coordinate noise,
atom-type logits and site-symmetry logits per node; lattice noise from the pooled graph.
"""

from __future__ import annotations

import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS
from plugins._asymmetric.layers import (
    MessageLayer,
    fourier,
    masked_mean,
    mlp,
    pair_differences,
    real_pairs,
    sinusoidal,
)
from plugins.symmbfn.config import NUM_TYPES, NetworkConfig


class SymmBFNNet(nn.Module):
    """Maps flow parameters at time t to output-distribution parameters for every variable."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        c = config
        node_in = NUM_TYPES + N_AXES * N_OPS + 3 * 2 * c.node_frequencies + 6 + 6
        self.node_in = mlp(node_in, c.hidden, c.hidden)
        self.sg_embedding = nn.Embedding(231, c.embedding)
        cond_dim = c.embedding * (3 if c.property_conditioning else 2)
        self.cond_in = nn.Linear(cond_dim, c.hidden)
        self.layers = nn.ModuleList(MessageLayer(c.hidden, 3 * 2 * c.edge_frequencies) for _ in range(c.layers))
        self.out_norm = nn.LayerNorm(c.hidden)
        self.coords_out = mlp(c.hidden, c.hidden, 3)
        self.types_out = mlp(c.hidden, c.hidden, NUM_TYPES)
        self.ops_out = mlp(c.hidden, c.hidden, N_AXES * N_OPS)
        self.lattice_out = mlp(c.hidden, c.hidden, 6)

    def forward(self, *, space_group, t, mu_lattice, lattice_mask, mu_coords, theta_types, theta_ops, node_mask,
                prop=None):
        """Shapes: space_group (B,), t (B,), mu_lattice/lattice_mask (B, 6), mu_coords (B, N, 3),
        theta_types (B, N, 100), theta_ops (B, N, 15, 13), node_mask (B, N) bool, prop (B,) or None."""
        b, n, _ = mu_coords.shape
        cond = [self.sg_embedding(space_group), sinusoidal(t, self.config.embedding)]
        if self.config.property_conditioning:
            cond.append(sinusoidal(prop if prop is not None else torch.zeros_like(t), self.config.embedding))
        lattice = torch.cat([mu_lattice, lattice_mask], dim=-1)
        nodes = torch.cat(
            [theta_types, theta_ops.flatten(-2), fourier(mu_coords, self.config.node_frequencies),
             lattice[:, None].expand(b, n, 12)],
            dim=-1,
        )
        h = self.node_in(nodes) + self.cond_in(torch.cat(cond, dim=-1))[:, None]
        pairs = real_pairs(node_mask)
        edge_feat = fourier(pair_differences(mu_coords, pairs), self.config.edge_frequencies)
        for layer in self.layers:
            h = layer(h, mu_lattice, edge_feat, pairs)
        h = self.out_norm(h)
        pooled = masked_mean(h, node_mask)
        return {
            "eps_coords": self.coords_out(h),
            "type_logits": self.types_out(h),
            "ops_logits": self.ops_out(h).reshape(b, n, N_AXES, N_OPS),
            "eps_lattice": self.lattice_out(pooled),
        }
