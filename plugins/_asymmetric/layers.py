"""Network building blocks shared by the asymmetric-unit denoisers (SymmBFN, SymmCD): both follow DiffCSP's
message passing over the fully connected graph of representatives."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of a scalar per row (x: (B,) in [0, 1] → (B, dim))."""
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
    """h_i += phi_h(h_i, mean_j phi_m(h_i, h_j, lattice, F(x_i - x_j))).

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


def pair_mask(node_mask: torch.Tensor, dtype) -> torch.Tensor:
    """(B, N, N): 1 between two distinct real nodes."""
    mask = node_mask.to(dtype)
    n = mask.shape[1]
    return mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(n, device=mask.device, dtype=dtype))


def masked_mean(h: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
    """Mean of node features over the real nodes: (B, N, H) → (B, H)."""
    mask = node_mask.to(h.dtype)
    return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
