"""SyMat's networks: an invariant message-passing backbone, the VAE (section 3.3) and the edge score model (3.4).

Why not SphereNet: the paper used SphereNet from DIG, which needs torch_geometric / torch_scatter / sympy-built
spherical bases and does not install against torch 2.13 here. The backbone below is plain torch (``index_add_``)
and sees the same invariants: interatomic distances through a Gaussian radial basis and bond angles through inner
products of learned per-atom vector sums, ``|sum_j w_j u_ij|^2 = sum_jk w_j w_k cos(theta_jik)``, which costs
O(edges) instead of SphereNet's O(triplets). Every feature is a function of distances and angles of multi-graph
edges, so node and edge outputs are invariant to rotation, translation, atom permutation and lattice-image shifts.
"""

from __future__ import annotations

import torch
from torch import nn

from plugins.symat.graph import MultiGraph, gaussian_rbf

MAX_Z = 100  # elements H..Fm: the element vocabulary of the decoders (E in the paper)


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    """Two linear layers with an activation between them (appendix D.1's decoder MLP shape)."""
    return nn.Sequential(nn.Linear(inp, hidden), nn.SiLU(), nn.Linear(hidden, out))


def edge_mlp(net: nn.Sequential, h: torch.Tensor, e: torch.Tensor, graph: MultiGraph) -> torch.Tensor:
    """``net(cat([h[src], h[dst], e]))`` computed with the first layer applied per node before the gather.

    Same parameters and result as the concatenated form, but the node blocks of the first weight cost
    O(atoms) instead of O(edges) -- the dominant cost of sampling on a CPU.
    """
    first = net[0]
    hidden = h.shape[1]
    w_src, w_dst, w_edge = (
        first.weight[:, :hidden],
        first.weight[:, hidden : 2 * hidden],
        first.weight[:, 2 * hidden :],
    )
    pre = (h @ w_src.T)[graph.src] + (h @ w_dst.T)[graph.dst] + e @ w_edge.T + first.bias
    return net[2](net[1](pre))


class InteractionBlock(nn.Module):
    """One round of edge and node updates from distances and angle invariants."""

    def __init__(self, hidden: int, vec_channels: int):
        super().__init__()
        self.message = mlp(3 * hidden, hidden, hidden)
        self.vec_weight = nn.Linear(hidden, vec_channels)
        self.node_update = mlp(2 * hidden + vec_channels, hidden, hidden)
        self.edge_update = mlp(2 * hidden, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h, e, graph: MultiGraph, unit):
        m = edge_mlp(self.message, h, e, graph)
        agg = torch.zeros_like(h).index_add_(0, graph.src, m)
        w = self.vec_weight(m)  # (E, C)
        vec = torch.zeros(h.shape[0], w.shape[1], 3, dtype=h.dtype, device=h.device)
        vec.index_add_(0, graph.src, w[:, :, None] * unit[:, None, :])
        angular = (vec * vec).sum(-1)  # (N, C): rotation-invariant, carries bond-angle cosines
        h = self.norm(h + self.node_update(torch.cat([h, agg, angular], -1)))
        e = e + self.edge_update(torch.cat([e, m], -1))
        return h, e


class InvariantGNN(nn.Module):
    """Atom-type embeddings and radial edge features refined by ``layers`` interaction blocks."""

    def __init__(
        self, hidden: int, layers: int, vec_channels: int, num_rbf: int, cutoff: float, num_levels: int = 0
    ):
        super().__init__()
        self.cutoff, self.num_rbf = cutoff, num_rbf
        self.atom_embed = nn.Embedding(MAX_Z + 1, hidden)
        self.level_embed = nn.Embedding(num_levels, hidden) if num_levels else None
        self.edge_embed = mlp(num_rbf, hidden, hidden)
        self.blocks = nn.ModuleList(InteractionBlock(hidden, vec_channels) for _ in range(layers))

    def forward(self, atomic_numbers, graph: MultiGraph, level_of_atom=None):
        h = self.atom_embed(atomic_numbers)
        if self.level_embed is not None:
            h = h + self.level_embed(level_of_atom)
        dist = graph.dist.clamp_min(1e-6)
        unit = graph.vec / dist[:, None]
        e = self.edge_embed(gaussian_rbf(dist, self.cutoff, self.num_rbf))
        for block in self.blocks:
            h, e = block(h, e, graph, unit)
        return h, e


class SyMatVAE(nn.Module):
    """Encoder GNN -> (z_A, z_L); decoders MLP^e, MLP^k, MLP^n, MLP^L (section 3.3)."""

    def __init__(self, cfg: dict, max_atoms: int):
        super().__init__()
        hidden, mlp_hidden = cfg["hidden"], cfg["mlp_hidden"]
        self.latent_a, self.latent_l, self.max_atoms = cfg["latent_a"], cfg["latent_l"], max_atoms
        self.encoder = InvariantGNN(hidden, cfg["layers"], cfg["vec_channels"], cfg["num_rbf"], cfg["cutoff"])
        self.to_latent = mlp(hidden, mlp_hidden, 2 * (self.latent_a + self.latent_l))
        self.mlp_e = mlp(self.latent_a, mlp_hidden, MAX_Z)  # element z=1..100 present? (index z-1)
        self.mlp_k = mlp(self.latent_a, mlp_hidden, max_atoms)  # k in 1..N (index k-1)
        self.element_embed = nn.Embedding(MAX_Z + 1, mlp_hidden)
        self.mlp_n = mlp(self.latent_a + mlp_hidden, mlp_hidden, max_atoms)  # count in 1..N (index n-1)
        self.mlp_l = mlp(self.latent_l, mlp_hidden, 6)  # standardised lengths and angles

    def encode(self, atomic_numbers, graph, crystal_of_atom, num_crystals):
        """Sum-pooled node embeddings -> means and log-variances of z_A and z_L."""
        h, _ = self.encoder(atomic_numbers, graph)
        pooled = torch.zeros(num_crystals, h.shape[1], dtype=h.dtype, device=h.device).index_add_(
            0, crystal_of_atom, h
        )
        out = self.to_latent(pooled)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    def split(self, z):
        return z[:, : self.latent_a], z[:, self.latent_a :]

    def count_logits(self, z_a, elements, crystal):
        """Logits over counts 1..N for element ``elements[i]`` of crystal ``crystal[i]``."""
        return self.mlp_n(torch.cat([z_a[crystal], self.element_embed(elements)], -1))


class EdgeScoreModel(nn.Module):
    """Noise-conditioned GNN giving one scalar per multi-graph edge: the (scaled) score of its distance."""

    def __init__(self, cfg: dict, num_levels: int):
        super().__init__()
        hidden = cfg["hidden"]
        self.gnn = InvariantGNN(
            hidden, cfg["layers"], cfg["vec_channels"], cfg["num_rbf"], cfg["cutoff"], num_levels
        )
        self.head = mlp(3 * hidden, hidden, 1)

    def forward(self, atomic_numbers, graph: MultiGraph, level_of_atom):
        h, e = self.gnn(atomic_numbers, graph, level_of_atom)
        return edge_mlp(self.head, h, e, graph).squeeze(-1)


def coordinate_score(edge_score: torch.Tensor, graph: MultiGraph, num_atoms_total: int) -> torch.Tensor:
    """Equation (3): s_i = sum over edges (i, j, k) of s_ijk * d(d_ijk)/dp_i, with d(d)/dp_i = -(vec / d)."""
    unit = graph.vec / graph.dist.clamp_min(1e-6)[:, None]
    out = torch.zeros(num_atoms_total, 3, dtype=edge_score.dtype, device=edge_score.device)
    return out.index_add_(0, graph.src, -edge_score[:, None] * unit)
