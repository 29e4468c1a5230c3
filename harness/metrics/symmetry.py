"""Space-group distribution distances: ``sg_jsd`` (protocol) and ``sg_jsd_symmcd`` (SymmCD's published variant)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import jensenshannon

from harness.protocol import SG_SYMPREC, SG_SYMPREC_TEST_SYMMCD

__all__ = ["analyse_spacegroup", "sg_histogram", "sg_jsd", "sg_jsd_symmcd", "spacegroup_number"]

ANGLE_TOLERANCE = 5.0  # degrees; pymatgen's default for both SpacegroupAnalyzer and get_space_group_info


def analyse_spacegroup(structure, symprec: float = SG_SYMPREC) -> tuple[int, str | None]:
    """(international number, error): spglib via pymatgen ``SpacegroupAnalyzer``; a failure counts as P1."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            number = SpacegroupAnalyzer(
                structure, symprec=symprec, angle_tolerance=ANGLE_TOLERANCE
            ).get_space_group_number()
        return int(number), None
    except Exception as exc:  # spglib could not analyse it: the protocol counts space group 1
        return 1, f"{type(exc).__name__}: {exc}"[:200]


def spacegroup_number(structure, symprec: float = SG_SYMPREC) -> int:
    """Space-group number at ``symprec`` (1 when spglib cannot analyse the structure)."""
    return analyse_spacegroup(structure, symprec)[0]


def sg_histogram(numbers: Sequence[int]) -> np.ndarray:
    """Counts of space groups 1..230 (230 bins)."""
    numbers = np.asarray(list(numbers), dtype=np.int64)
    if numbers.size and (numbers.min() < 1 or numbers.max() > 230):
        raise ValueError("space-group numbers must lie in 1..230")
    return np.bincount(numbers, minlength=231)[1:].astype(float)


def sg_jsd(sample_numbers: Sequence[int], reference_numbers: Sequence[int]) -> float | None:
    """Jensen-Shannon distance (natural log) between 230-bin histograms; ``None`` if either side is empty."""
    p, q = sg_histogram(sample_numbers), sg_histogram(reference_numbers)
    if p.sum() == 0 or q.sum() == 0:
        return None
    return float(jensenshannon(p, q))


def sg_jsd_symmcd(sample_numbers: Sequence[int], reference_numbers: Sequence[int]) -> float | None:
    """SymmCD's variant: ``np.histogram(bins=range(1, 231))`` (229 bins, 229 and 230 merged) and
    ``jensenshannon(test_hist, sample_hist)``. Samples at symprec 0.1, test crystals at 0.01 (caller's job)."""
    bins = np.arange(1, 231)
    sample_hist = np.histogram(np.asarray(list(sample_numbers)), bins=bins)[0].astype(float)
    test_hist = np.histogram(np.asarray(list(reference_numbers)), bins=bins)[0].astype(float)
    if sample_hist.sum() == 0 or test_hist.sum() == 0:
        return None
    return float(jensenshannon(test_hist, sample_hist))


SYMPRECS = {"sg_jsd": (SG_SYMPREC, SG_SYMPREC), "sg_jsd_symmcd": (SG_SYMPREC, SG_SYMPREC_TEST_SYMMCD)}
