"""Model-ready batches of asymmetric-unit crystals and the data statistics both SymmBFN and SymmCD learn from a split.

``DataStats`` holds the lattice normalisation and the empirical distributions of space groups and of the number of
representatives given the group (the sampling prior both papers use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from plugins._asymmetric.dataset import PackedCrystals
from plugins._asymmetric.lattice import fixed_k, k_mask

# The lattice estimate is clipped to the data range (normalised units), as Graves et al. clip continuous estimates:
# at small t, x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat amplifies noise-estimate errors. Checkpoints saved
# before ``k_bound`` existed use this default.
DEFAULT_K_BOUND = 6.0
TYPE_CLASSES = 100  # atom types are classes Z - 1 for Z = 1..100 (both models' NUM_TYPES)


@dataclass(frozen=True)
class DataStats:
    k_mean: tuple[float, ...]  # (6,), over the crystals whose group leaves that entry free
    k_std: tuple[float, ...]  # (6,), likewise (floored at 0.01)
    sg_counts: tuple[int, ...]  # (231,), index = space-group number
    n_counts: tuple[tuple[int, ...], ...]  # (231, n_max + 1): representatives per crystal, per group
    k_bound: float = DEFAULT_K_BOUND  # |normalised k| clip: 1.5 x the largest free value seen, at least 4
    # representatives per atomic number (index Z - 1, TYPE_CLASSES entries); None in checkpoints saved before it
    # existed (training resumed from one fills it in from the data, see ``plugins._asymmetric.training``)
    type_counts: tuple[int, ...] | None = None

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
        z = packed.atomic_numbers[packed.mask]
        if len(z) and (z.min() < 1 or z.max() > TYPE_CLASSES):
            raise ValueError(f"atomic numbers outside 1..{TYPE_CLASSES} in the training data: {sorted(set(z.tolist()))}")
        type_counts = np.bincount(z - 1, minlength=TYPE_CLASSES)
        return cls(tuple(float(x) for x in mean), tuple(float(x) for x in std), tuple(int(c) for c in sg_counts),
                   tuple(tuple(int(c) for c in row) for row in n_counts), bound, tuple(int(c) for c in type_counts))

    def type_mask(self, num_types: int) -> np.ndarray | None:
        """True for the atom-type classes (Z - 1) that occur in the training data; None when the counts are unknown."""
        if self.type_counts is None:
            return None
        counts = np.zeros(num_types, dtype=np.int64)
        counts[: min(num_types, len(self.type_counts))] = self.type_counts[:num_types]
        return counts > 0

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
    prop: torch.Tensor | None = None  # (B,) conditioning labels (conditional training only)


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
        None if packed.prop is None else tensor(packed.prop, torch.float32),
    )


# A sampling batch holds at most batch_size x PAIRS_PER_CRYSTAL representative pairs: both networks' cost is the
# (crystals x N_max^2) pair tensor, and MP-20's counts run from 1 to 20+ (mean ~4.6), so one padded batch of 250
# costs ~10x the sum over size-sorted smaller ones. Perov-5 (N <= 5) always fits in one batch.
PAIRS_PER_CRYSTAL = 64


def size_batches(sizes: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of ``sizes`` in ascending size, cut into batches of at most ``batch_size`` crystals whose padded pair
    count (crystals x largest size^2) stays within ``batch_size * PAIRS_PER_CRYSTAL`` (one crystal at least)."""
    order = np.argsort(sizes, kind="stable")
    budget = batch_size * PAIRS_PER_CRYSTAL
    batches, current = [], []
    for i in order:
        if current and (len(current) >= batch_size or (len(current) + 1) * int(sizes[i]) ** 2 > budget):
            batches.append(np.array(current))
            current = []
        current.append(int(i))
    if current:
        batches.append(np.array(current))
    return batches
