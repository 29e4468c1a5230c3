"""Crystals as tensors: per-structure records, batching, and the invariant VAE targets (element set, k, counts, lattice)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CrystalTensors:
    """One structure: atomic numbers (n,), fractional coordinates (n, 3) in [0, 1), lattice rows (3, 3)."""

    numbers: torch.Tensor
    frac: torch.Tensor
    lattice: torch.Tensor


@dataclass(frozen=True)
class Batch:
    """Crystals concatenated atom-wise, with the VAE targets of section 3.3."""

    numbers: torch.Tensor  # (N,)
    frac: torch.Tensor  # (N, 3)
    lattices: torch.Tensor  # (B, 3, 3)
    num_atoms: torch.Tensor  # (B,)
    crystal_of_atom: torch.Tensor  # (N,)
    element_set: torch.Tensor  # (B, MAX_Z) multi-hot, index z-1
    num_types: torch.Tensor  # (B,) k
    type_elements: torch.Tensor  # (K,) element of each (crystal, element) pair
    type_crystal: torch.Tensor  # (K,)
    type_counts: torch.Tensor  # (K,) n_i
    lattice_params: torch.Tensor  # (B, 6) lengths and angles
    y: torch.Tensor | None = None  # (B,) property labels, NaN where a crystal has none (property training only)

    def to(self, device: str) -> Batch:
        return Batch(**{k: None if getattr(self, k) is None else getattr(self, k).to(device)
                        for k in self.__dataclass_fields__})


def from_structure(structure) -> CrystalTensors:
    """A pymatgen Structure (ordered) as tensors; fractional coordinates wrapped into [0, 1)."""
    numbers = torch.tensor([site.specie.Z for site in structure], dtype=torch.long)
    frac = torch.tensor(np.mod(structure.frac_coords, 1.0), dtype=torch.float32)
    lattice = torch.tensor(structure.lattice.matrix, dtype=torch.float32)
    return CrystalTensors(numbers, frac, lattice)


def collate(crystals: list[CrystalTensors], y=None) -> Batch:
    """Concatenate crystals and compute their composition and lattice targets; ``y``: one property label per crystal
    (NaN for none)."""
    from plugins.symat.graph import lattice_params
    from plugins.symat.nets import MAX_Z

    num_atoms = torch.tensor([len(c.numbers) for c in crystals], dtype=torch.long)
    numbers = torch.cat([c.numbers for c in crystals])
    element_set = torch.zeros(len(crystals), MAX_Z)
    type_elements, type_crystal, type_counts, num_types = [], [], [], []
    for b, c in enumerate(crystals):
        counts = Counter(c.numbers.tolist())
        for z, count in sorted(counts.items()):
            element_set[b, z - 1] = 1.0
            type_elements.append(z)
            type_crystal.append(b)
            type_counts.append(count)
        num_types.append(len(counts))
    lattices = torch.stack([c.lattice for c in crystals])
    return Batch(
        numbers=numbers,
        frac=torch.cat([c.frac for c in crystals]),
        lattices=lattices,
        num_atoms=num_atoms,
        crystal_of_atom=torch.repeat_interleave(torch.arange(len(crystals)), num_atoms),
        element_set=element_set,
        num_types=torch.tensor(num_types, dtype=torch.long),
        type_elements=torch.tensor(type_elements, dtype=torch.long),
        type_crystal=torch.tensor(type_crystal, dtype=torch.long),
        type_counts=torch.tensor(type_counts, dtype=torch.long),
        lattice_params=lattice_params(lattices.double()).float(),
        y=None if y is None else torch.as_tensor(y, dtype=torch.float32),
    )


def per_atom_lengths(params: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
    """(B, 6) lattice items with the lengths divided by N^(1/3): what a ``lattice_scale`` decoder regresses.

    The authors' code does this (divelab/AIRS OpenMat/SyMat, ``lattice_scale=True``, after CDVAE's
    ``scale_length``); the paper does not say so. Without it the lattice is decoded independently of the atom
    count, so a cell's volume does not follow its number of atoms (issue 23).
    """
    scale = num_atoms.to(params.dtype).clamp_min(1).pow(1.0 / 3.0)[:, None]
    return torch.cat([params[:, :3] / scale, params[:, 3:]], dim=-1)


def from_per_atom_lengths(items: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`per_atom_lengths`: lengths times N^(1/3)."""
    scale = num_atoms.to(items.dtype).clamp_min(1).pow(1.0 / 3.0)[:, None]
    return torch.cat([items[:, :3] * scale, items[:, 3:]], dim=-1)


def lattice_stats(
    crystals: list[CrystalTensors], lattice_scale: bool = False
) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of the six lattice items the decoder regresses (lengths per N^(1/3) where
    ``lattice_scale``) over a training set (for standardised regression)."""
    from plugins.symat.graph import lattice_params

    params = lattice_params(torch.stack([c.lattice for c in crystals]).double())
    if lattice_scale:
        params = per_atom_lengths(params, torch.tensor([len(c.numbers) for c in crystals]))
    return params.mean(0).tolist(), params.std(0).clamp_min(1e-3).tolist()
