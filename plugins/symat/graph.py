"""The periodic multi-graph (Xie & Grossman's multi-graph, SyMat section 3.4) and lattice geometry, batched in torch.

Every edge is a triple (i, j, k): atom i, atom j and the integer image offset k such that
``|p_j + L k - p_i| <= cutoff`` (lattice vectors as rows, pymatgen's convention: cartesian = frac @ L).
Several edges may join the same two atoms; an atom is joined to its own images but never to itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_IMAGES_PER_AXIS = 3  # keeps a degenerate (very flat) sampled lattice from exhausting memory


@dataclass(frozen=True)
class MultiGraph:
    """Edges of a batch of crystals. ``vec[e] = (frac[dst] + offset[e] - frac[src]) @ L`` points from src to dst."""

    src: torch.Tensor  # (E,) long, atom index in the batch
    dst: torch.Tensor  # (E,) long
    offset: torch.Tensor  # (E, 3) long: image offset relative to the *given* fractional coordinates
    vec: torch.Tensor  # (E, 3) cartesian edge vectors
    dist: torch.Tensor  # (E,)


def crystal_pairs(num_atoms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ordered atom pairs (i, j) inside each crystal, i == j included: (src, dst, crystal) index tensors."""
    device = num_atoms.device
    starts = torch.cumsum(num_atoms, 0) - num_atoms
    sq = num_atoms * num_atoms
    crystal = torch.repeat_interleave(torch.arange(len(num_atoms), device=device), sq)
    local = torch.arange(int(sq.sum()), device=device) - torch.repeat_interleave(torch.cumsum(sq, 0) - sq, sq)
    n = num_atoms[crystal]
    src = starts[crystal] + torch.div(local, n, rounding_mode="floor")
    dst = starts[crystal] + local % n
    return src, dst, crystal


def interplanar_spacings(lattices: torch.Tensor) -> torch.Tensor:
    """(B, 3) distances between lattice planes: 1 / |b_a| for reciprocal vectors b_a (no 2 pi)."""
    inv = torch.linalg.inv(lattices)  # columns of inv(L) are the reciprocal vectors
    return 1.0 / inv.norm(dim=-2)


def build_multigraph(
    frac: torch.Tensor, lattices: torch.Tensor, num_atoms: torch.Tensor, cutoff: float
) -> MultiGraph:
    """Every edge (i, j, k) with distance <= ``cutoff`` in a batch (frac: (N, 3), lattices: (B, 3, 3))."""
    with torch.no_grad():
        src, dst, crystal = crystal_pairs(num_atoms)
        lat = lattices.to(frac.dtype)
        spacing = interplanar_spacings(lat.double()).to(frac.dtype)
        # Pairs are first moved to the nearest image in fractional space (|df_a| <= 1/2), so an image
        # k reaches the sphere only if |k_a| <= cutoff / spacing_a + 1/2.
        reach = torch.floor(cutoff / spacing.clamp_min(1e-6) + 0.5).clamp(0, MAX_IMAGES_PER_AXIS)
        m = reach.max(dim=0).values.long().tolist() if len(reach) else [0, 0, 0]
        axes = [torch.arange(-r, r + 1, device=frac.device) for r in m]
        images = torch.cartesian_prod(*axes).reshape(-1, 3)  # (I, 3)
        raw = frac[dst] - frac[src]
        shift = torch.round(raw)
        wrapped = raw - shift
        cand = wrapped[:, None, :] + images[None, :, :].to(frac.dtype)  # (P, I, 3)
        vec = torch.einsum("pia,pab->pib", cand, lat[crystal])
        dist = vec.norm(dim=-1)
        # the batch's image grid may exceed a crystal's own reach; those extra images are dropped
        within = (dist <= cutoff) & (images[None].abs() <= reach[crystal][:, None, :].long()).all(-1)
        self_loop = (src == dst)[:, None] & (images.abs().sum(-1) == 0)[None, :]
        keep = within & ~self_loop
        pair_idx, img_idx = keep.nonzero(as_tuple=True)
        offset = images[img_idx] - shift[pair_idx].long()
        return MultiGraph(
            src=src[pair_idx],
            dst=dst[pair_idx],
            offset=offset,
            vec=vec[pair_idx, img_idx],
            dist=dist[pair_idx, img_idx],
        )


def edge_vectors(
    frac: torch.Tensor, lattices: torch.Tensor, graph: MultiGraph, crystal_of_atom: torch.Tensor
):
    """Cartesian vectors of ``graph``'s edges for other fractional coordinates of the same atoms (same offsets)."""
    df = frac[graph.dst] - frac[graph.src] + graph.offset.to(frac.dtype)
    return torch.einsum("ea,eab->eb", df, lattices[crystal_of_atom[graph.src]].to(frac.dtype))


def lattice_params(lattices: torch.Tensor) -> torch.Tensor:
    """(B, 6): lengths l1, l2, l3 (Angstrom) and angles phi23, phi13, phi12 (degrees) -- pymatgen's a, b, c, alpha, beta, gamma."""
    a, b, c = lattices[:, 0], lattices[:, 1], lattices[:, 2]
    la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)

    def angle(u, v, nu, nv):
        return torch.rad2deg(torch.arccos(((u * v).sum(-1) / (nu * nv)).clamp(-1, 1)))

    return torch.stack([la, lb, lc, angle(b, c, lb, lc), angle(a, c, la, lc), angle(a, b, la, lb)], dim=-1)


def lattice_from_params(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice matrices (rows l1, l2, l3) from (B, 6) lengths/angles, as SyMat appendix B builds them.

    Returns ``(lattices, ok)``; ``ok`` is False where the angles admit no lattice (|cos gamma| > 1).
    """
    l1, l2, l3 = params[:, 0], params[:, 1], params[:, 2]
    phi23, phi13, phi12 = (torch.deg2rad(params[:, i]) for i in (3, 4, 5))
    cos_gamma = (torch.cos(phi23) * torch.cos(phi13) - torch.cos(phi12)) / (
        torch.sin(phi23) * torch.sin(phi13)
    )
    ok = (cos_gamma.abs() < 1.0) & torch.isfinite(cos_gamma) & (params[:, :3] > 0).all(-1)
    gamma = torch.arccos(cos_gamma.clamp(-1 + 1e-7, 1 - 1e-7))
    zero = torch.zeros_like(l1)
    v1 = torch.stack([l1 * torch.sin(phi13), zero, l1 * torch.cos(phi13)], -1)
    v2 = torch.stack(
        [
            -l2 * torch.sin(phi23) * torch.cos(gamma),
            l2 * torch.sin(phi23) * torch.sin(gamma),
            l2 * torch.cos(phi23),
        ],
        -1,
    )
    v3 = torch.stack([zero, zero, l3], -1)
    return torch.stack([v1, v2, v3], dim=1), ok


def gaussian_rbf(dist: torch.Tensor, cutoff: float, num: int) -> torch.Tensor:
    """Gaussian radial basis on [0, cutoff] times a smooth cosine envelope that vanishes at the cutoff."""
    centers = torch.linspace(0.0, cutoff, num, device=dist.device, dtype=dist.dtype)
    width = cutoff / num
    rbf = torch.exp(-(((dist[:, None] - centers[None]) / width) ** 2))
    envelope = 0.5 * (torch.cos(math.pi * (dist / cutoff).clamp(max=1.0)) + 1.0)
    return rbf * envelope[:, None]
