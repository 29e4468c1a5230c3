"""The SymmBFN network (paper app. A.3, after DiffCSP's message passing): a fully connected graph of representatives.

Node inputs: the atom-type and site-symmetry probabilities (theta), the space-group embedding, a sinusoidal time
embedding, the lattice mean, and (our addition) Fourier features of each representative's coordinate mean: in the
asymmetric unit the origin is fixed by the symmetry elements, so absolute positions carry information that
differences alone cannot. Edges: Fourier features of differences of coordinate means. Readouts: coordinate noise,
atom-type logits and site-symmetry logits per node; lattice noise from the pooled graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS
from plugins.symmbfn.config import NUM_TYPES, NetworkConfig


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of a scalar per row (x: (B,) → (B, dim))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=x.dtype) / half)
    args = x[:, None] * freqs[None] * 1000.0  # t in [0, 1] spread over the periods
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def fourier(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """sin/cos(2 pi f x) for f = 1..F, flattened over the last dimension."""
    f = torch.arange(1, frequencies + 1, device=x.device, dtype=x.dtype)
    args = 2 * math.pi * x[..., None] * f
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).flatten(-2)


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, d_out))


class MessageLayer(nn.Module):
    """h_i += phi_h(h_i, mean_j phi_m(h_i, h_j, lattice, F(mu_i - mu_j))).

    phi_m's first linear layer acts on the concatenation; it is applied as a sum of per-part projections (the same
    function) so that the (N x N) pair tensor is formed only after projecting to the hidden size.
    """

    def __init__(self, hidden: int, edge_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.src = nn.Linear(hidden, hidden)
        self.dst = nn.Linear(hidden, hidden, bias=False)
        self.lattice = nn.Linear(6, hidden, bias=False)
        self.edge_in = nn.Linear(edge_dim, hidden, bias=False)
        self.edge_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.node = mlp(2 * hidden, hidden, hidden)

    def forward(self, h, lattice, edge_feat, pair_mask):
        hn = self.norm(h)
        first = (self.src(hn)[:, :, None] + self.dst(hn)[:, None, :] + self.lattice(lattice)[:, None, None]
                 + self.edge_in(edge_feat))
        messages = self.edge_out(first) * pair_mask[..., None]
        agg = messages.sum(2) / pair_mask.sum(2, keepdim=True).clamp_min(1)
        return h + self.node(torch.cat([hn, agg], dim=-1))


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
        mask = node_mask.to(h.dtype)
        pair_mask = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(n, device=h.device, dtype=h.dtype))
        edge_feat = fourier(mu_coords[:, :, None] - mu_coords[:, None, :], self.config.edge_frequencies)
        for layer in self.layers:
            h = layer(h, mu_lattice, edge_feat, pair_mask)
        h = self.out_norm(h)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return {
            "eps_coords": self.coords_out(h),
            "type_logits": self.types_out(h),
            "ops_logits": self.ops_out(h).reshape(b, n, N_AXES, N_OPS),
            "eps_lattice": self.lattice_out(pooled),
        }
