"""Property distributions: density and number of elements, compared by 1-D Wasserstein distance (CDVAE)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import wasserstein_distance

from harness.protocol import N_WDIST_SAMPLES

__all__ = ["WdistSubset", "density", "num_elements", "wdist", "wdist_subset"]


def density(structure) -> float:
    """Mass density in g/cm³ (pymatgen ``Structure.density``)."""
    return float(structure.density)


def num_elements(structure) -> int:
    """Number of distinct elements (CDVAE: ``len(set(structure.species))`` on undecorated species)."""
    return len(structure.composition.element_composition)


@dataclass(frozen=True)
class WdistSubset:
    """Which valid samples enter the Wasserstein distances, and how they were drawn."""

    indices: tuple[int, ...]  # sample indices, in draw order
    seed: int
    n_valid: int
    requested: int
    note: str | None  # set when fewer than ``requested`` valid samples exist


def wdist_subset(valid_indices: Sequence[int], *, seed: int, n: int = N_WDIST_SAMPLES) -> WdistSubset:
    """Draw ``n`` of the valid sample indices without replacement (numpy ``default_rng(seed)``); all if fewer."""
    valid = np.asarray(list(valid_indices), dtype=np.int64)
    if len(valid) >= n:
        chosen = np.random.default_rng(seed).choice(len(valid), size=n, replace=False)
        return WdistSubset(tuple(int(i) for i in valid[chosen]), seed, len(valid), n, None)
    note = (
        f"only {len(valid)} valid samples (< {n}): all of them are used" if len(valid) else "no valid samples"
    )
    return WdistSubset(tuple(int(i) for i in valid), seed, len(valid), n, note)


def wdist(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """``scipy.stats.wasserstein_distance(values, reference)``; ``None`` if either side is empty."""
    values, reference = np.asarray(values, float), np.asarray(reference, float)
    if values.size == 0 or reference.size == 0:
        return None
    return float(wasserstein_distance(values, reference))
