"""Network building blocks shared by the asymmetric-unit denoisers (SymmBFN, SymmCD): both follow DiffCSP's
message passing over the fully connected graph of representatives."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Pairs:
    """The ordered pairs (i, j), i != j, of real nodes of a padded (B, N) batch, as flat indices b * N + i.

    The networks pass these instead of a dense (B, N, N) pair tensor, so padding and the diagonal are never
    computed (in MP-20's size-sorted sampling batches they were most of the dense tensor).
    """

    receiver: torch.Tensor  # (P,) flat index of i, ascending
    sender: torch.Tensor  # (P,) flat index of j
    graph: torch.Tensor  # (P,) b
    degree: torch.Tensor  # (B * N, 1) pairs per receiving node, at least 1 (padded and lone nodes aggregate 0)


def real_pairs(node_mask: torch.Tensor) -> Pairs:
    """Every ordered pair of distinct real nodes of ``node_mask`` (B, N) bool."""
    b, n = node_mask.shape
    eye = torch.eye(n, dtype=torch.bool, device=node_mask.device)
    graph, i, j = torch.nonzero(node_mask[:, :, None] & node_mask[:, None, :] & ~eye, as_tuple=True)
    receiver = graph * n + i
    degree = torch.bincount(receiver, minlength=b * n).clamp_min(1)[:, None]
    return Pairs(receiver, graph * n + j, graph, degree)


def pair_differences(x: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """x_i - x_j for every pair: (B, N, D) → (P, D)."""
    flat = x.reshape(-1, x.shape[-1])
    return flat[pairs.receiver] - flat[pairs.sender]


class MessageLayer(nn.Module):
    """h_i += phi_h(h_i, mean_j phi_m(h_i, h_j, lattice, F(x_i - x_j))) over the real pairs (j != i).

    phi_m's first linear layer acts on the concatenation; it is applied as a sum of per-part projections (the same
    function) so that pair features are formed only after projecting to the hidden size.
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

    def forward(self, h, lattice, edge_feat, pairs: Pairs):
        """h (B, N, H), lattice (B, 6), edge_feat (P, E) in the order of ``pairs``."""
        b, n, hidden = h.shape
        hn = self.norm(h).reshape(b * n, hidden)
        first = (self.src(hn)[pairs.receiver] + self.dst(hn)[pairs.sender] + self.lattice(lattice)[pairs.graph]
                 + self.edge_in(edge_feat))
        messages = self.edge_out(first)
        agg = torch.zeros_like(hn).index_add(0, pairs.receiver, messages) / pairs.degree
        return h + self.node(torch.cat([hn, agg], dim=-1)).reshape(b, n, hidden)


def masked_mean(h: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
    """Mean of node features over the real nodes: (B, N, H) → (B, H)."""
    mask = node_mask.to(h.dtype)
    return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
