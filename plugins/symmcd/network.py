"""The SymmCD denoiser (paper app. E.1, after DiffCSP): message passing over the fully connected graph of
representatives, not equivariant (the conventional cell's axes are the reference frame).

Node inputs: an embedding of the (noisy) atom type; the site symmetry, each of its 15 axes embedded by one shared
network and the 15 embeddings mixed by a second MLP; Fourier features of the absolute fractional coordinates; the
noisy lattice ``k`` and its space-group mask. Graph inputs: a sinusoidal time embedding and an MLP embedding of the
binary space-group representation (pyxtal's). Edges: Fourier features of coordinate differences. Readouts: the
normalised coordinate score, atom-type and site-symmetry logits per node; the lattice noise from the pooled graph.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from plugins._asymmetric import N_AXES, N_OPS, space_group_encoding
from plugins._asymmetric.layers import (
    MessageLayer,
    fourier,
    masked_mean,
    mlp,
    pair_differences,
    real_pairs,
    sinusoidal,
)
from plugins.symmcd.config import NUM_TYPES, NetworkConfig


def space_group_table() -> np.ndarray:
    """(231, D) binary encodings of every space group (row 0 unused), from pyxtal."""
    rows = [space_group_encoding(g) for g in range(1, 231)]
    return np.vstack([np.zeros_like(rows[0]), *rows])


class SymmCDNet(nn.Module):
    """Maps a noisy crystal at step t to the denoising targets of every variable."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = c = config
        table = torch.as_tensor(space_group_table(), dtype=torch.float32)
        self.register_buffer("sg_table", table, persistent=False)  # rebuilt from pyxtal, never stale
        self.sg_in = mlp(table.shape[1], c.hidden, c.sg_dim)
        self.type_in = nn.Linear(NUM_TYPES, c.hidden, bias=False)
        node_in = c.hidden + 3 * 2 * c.node_frequencies + 12
        if c.site_symmetry:
            self.axis_in = mlp(N_OPS, c.axis_dim, c.axis_dim)
            self.symmetry_in = mlp(N_AXES * c.axis_dim, c.hidden, c.hidden)
            node_in += c.hidden
        self.node_in = mlp(node_in, c.hidden, c.hidden)
        self.cond_in = nn.Linear(c.time_dim + c.sg_dim, c.hidden)
        self.layers = nn.ModuleList(MessageLayer(c.hidden, 3 * 2 * c.edge_frequencies) for _ in range(c.layers))
        self.out_norm = nn.LayerNorm(c.hidden)
        self.coords_out = mlp(c.hidden, c.hidden, 3)
        self.types_out = mlp(c.hidden, c.hidden, NUM_TYPES)
        if c.site_symmetry:
            self.symmetry_out = mlp(c.hidden, c.hidden, N_AXES * N_OPS)
        self.lattice_out = mlp(c.hidden, c.hidden, 6)

    def forward(self, *, space_group, t, k, lattice_mask, coords, types, ops, node_mask):
        """Shapes: space_group (B,) long, t (B,) in [0, 1], k/lattice_mask (B, 6), coords (B, N, 3), types (B, N)
        long, ops (B, N, 15) long (ignored without site symmetry), node_mask (B, N) bool."""
        c = self.config
        b, n, _ = coords.shape
        cond = torch.cat([sinusoidal(t, c.time_dim), self.sg_in(self.sg_table[space_group])], dim=-1)
        lattice = torch.cat([k, lattice_mask], dim=-1)
        parts = [self.type_in(nn.functional.one_hot(types, NUM_TYPES).to(coords.dtype)),
                 fourier(coords, c.node_frequencies), lattice[:, None].expand(b, n, 12)]
        if c.site_symmetry:
            axes = self.axis_in(nn.functional.one_hot(ops, N_OPS).to(coords.dtype))  # (B, N, 15, axis_dim)
            parts.append(self.symmetry_in(axes.flatten(-2)))
        h = self.node_in(torch.cat(parts, dim=-1)) + self.cond_in(cond)[:, None]
        pairs = real_pairs(node_mask)
        edge_feat = fourier(pair_differences(coords, pairs), c.edge_frequencies)
        for layer in self.layers:
            h = layer(h, k, edge_feat, pairs)
        h = self.out_norm(h)
        out = {
            "coords": self.coords_out(h),
            "type_logits": self.types_out(h),
            "eps_lattice": self.lattice_out(masked_mean(h, node_mask)),
        }
        if c.site_symmetry:
            out["ops_logits"] = self.symmetry_out(h).reshape(b, n, N_AXES, N_OPS)
        return out
