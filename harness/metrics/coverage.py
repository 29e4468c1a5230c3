"""COV-R and COV-P (CDVAE's ``compute_cov``), with the protocol's cutoffs and pre-filter denominator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.distance import cdist

from harness.protocol import COV_CUTOFFS

if TYPE_CHECKING:
    from harness.cards import DatasetCard

__all__ = ["coverage", "coverage_cutoffs"]

_CHUNK_ROWS = 1024


def coverage_cutoffs(card: DatasetCard) -> tuple[float, float]:
    """(structure, composition) cutoffs of a dataset card: the protocol's fixed values for the CDVAE datasets, else
    those the card declares."""
    if card.name in COV_CUTOFFS:
        return COV_CUTOFFS[card.name]
    if card.cov_cutoffs is None:
        raise KeyError(f"no coverage cutoffs for dataset {card.name!r}: its DatasetCard must set cov_cutoffs")
    return card.cov_cutoffs


def coverage(
    gen_struct: np.ndarray,
    gen_comp: np.ndarray,
    ref_struct: np.ndarray,
    ref_comp: np.ndarray,
    *,
    struct_cutoff: float,
    comp_cutoff: float,
    n_generated: int | None = None,
    ref_ok: np.ndarray | None = None,
) -> tuple[float | None, float | None]:
    """(COV-R, COV-P) from fingerprints of the generated samples that have them and of the reference set.

    For each reference crystal the nearest generated structure fingerprint and the nearest generated composition
    fingerprint are found **separately** and both must be within their cutoffs (≤); precision likewise over
    reference crystals. COV-P is divided by ``n_generated`` (every requested sample, before dropping those
    without fingerprints; default: the rows given). Reference rows flagged False in ``ref_ok`` (no fingerprint)
    count as not covered. ``None`` where the quantity is undefined (no generated rows, or no reference rows).
    """
    gen_struct, gen_comp = np.asarray(gen_struct, float), np.asarray(gen_comp, float)
    ref_struct, ref_comp = np.asarray(ref_struct, float), np.asarray(ref_comp, float)
    if len(gen_struct) != len(gen_comp) or len(ref_struct) != len(ref_comp):
        raise ValueError("structure and composition fingerprints must have one row per crystal")
    n_generated = len(gen_struct) if n_generated is None else int(n_generated)
    if n_generated < len(gen_struct):
        raise ValueError(
            f"n_generated={n_generated} is smaller than the {len(gen_struct)} fingerprinted samples"
        )
    ref_ok = np.ones(len(ref_struct), dtype=bool) if ref_ok is None else np.asarray(ref_ok, dtype=bool)
    n_ref = len(ref_struct)
    if n_ref == 0:
        return None, None
    if len(gen_struct) == 0:
        return 0.0, (0.0 if n_generated else None)
    usable_ref = np.flatnonzero(ref_ok)
    recall_hits = np.zeros(n_ref, dtype=bool)
    precision_hits = np.zeros(len(gen_struct), dtype=bool)
    if usable_ref.size:
        ref_s, ref_c = ref_struct[usable_ref], ref_comp[usable_ref]
        nearest_struct = np.full(usable_ref.size, np.inf)
        nearest_comp = np.full(usable_ref.size, np.inf)
        for start in range(0, len(gen_struct), _CHUNK_ROWS):  # bounded memory; same minima as one cdist
            stop = start + _CHUNK_ROWS
            struct_dist = cdist(gen_struct[start:stop], ref_s)
            comp_dist = cdist(gen_comp[start:stop], ref_c)
            nearest_struct = np.minimum(nearest_struct, struct_dist.min(axis=0))
            nearest_comp = np.minimum(nearest_comp, comp_dist.min(axis=0))
            precision_hits[start:stop] = (struct_dist.min(axis=1) <= struct_cutoff) & (
                comp_dist.min(axis=1) <= comp_cutoff
            )
        recall_hits[usable_ref] = (nearest_struct <= struct_cutoff) & (nearest_comp <= comp_cutoff)
    cov_recall = float(recall_hits.mean())
    cov_precision = float(precision_hits.sum() / n_generated) if n_generated else None
    return cov_recall, cov_precision
