"""Success rates of property optimisation (task ``optimise``; CDVAE's ``OptEval.get_success_rate``).

SR_p is the fraction of starting points whose best decoded crystal has a property, as an oracle scores it, within the
dataset's best p %: at or below ``numpy.percentile(reference, p)`` (linear interpolation, CDVAE's thresholds) when
lower is better, at or above ``numpy.percentile(reference, 100 - p)`` when higher is. A value equal to the threshold
counts, as CDVAE's ``<=`` does; a start with no finite value (every decode failed, was invalid or unscored) counts in
the denominator as a failure and is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.tasks import SR_PERCENTS

DIRECTIONS = ("lower", "higher")


@dataclass(frozen=True)
class SuccessRates:
    """SR_p per percent (keys ``sr5``, ``sr10`` ...), the thresholds they used, and the failed starts."""

    rates: dict[str, float]
    thresholds: dict[str, float]
    better: str
    n_starts: int
    failed: tuple[int, ...]  # indices of the starts with no finite value

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    def metrics(self) -> dict[str, float | int]:
        """The ``task.optimise.metrics`` block of a record."""
        return {**self.rates, "n_starts": self.n_starts, "n_failed": self.n_failed}


def sr_key(percent: float) -> str:
    return f"sr{percent:g}"


def property_thresholds(reference_values: Sequence[float] | np.ndarray, better: str = "lower",
                        percents: Sequence[float] = SR_PERCENTS) -> dict[str, float]:
    """The property value that bounds the dataset's best ``p`` % for each percent (``numpy.percentile``, linear)."""
    _check_direction(better)
    reference = np.asarray(reference_values, dtype=float).ravel()
    if reference.size == 0:
        raise ValueError("the reference distribution is empty")
    if not np.isfinite(reference).all():
        raise ValueError(f"the reference distribution holds {int((~np.isfinite(reference)).sum())} values that are "
                         "not finite; a dataset's property must be known for every row")
    for p in percents:
        if not 0 < p <= 100:
            raise ValueError(f"percent {p!r} is not in (0, 100]")
    qs = [p if better == "lower" else 100 - p for p in percents]
    return {sr_key(p): float(t) for p, t in zip(percents, np.percentile(reference, qs), strict=True)}


def success_rates(values, reference_values, better: str = "lower",
                  percents: Sequence[float] = SR_PERCENTS) -> SuccessRates:
    """SR_p of the oracle's ``values`` against the dataset's ``reference_values``.

    ``values`` holds one value per start, or a row per start with one value per decode (CDVAE decodes each start
    along its trajectory and keeps the best); NaN, ±inf and None are failed or unscored decodes.
    """
    return success_rates_at(values, property_thresholds(reference_values, better, percents), better)


def success_rates_at(values, thresholds: dict[str, float], better: str = "lower") -> SuccessRates:
    """SR against given thresholds (e.g. CDVAE's pinned ones, :data:`harness.tasks.OPTIMISED_PROPERTIES`)."""
    _check_direction(better)
    best = best_per_start(values, better)
    if best.size == 0:
        raise ValueError("no starts to score")
    finite = np.isfinite(best)
    n = best.size
    rates = {}
    for key, threshold in thresholds.items():
        hits = best[finite] <= threshold if better == "lower" else best[finite] >= threshold
        rates[key] = float(hits.sum() / n)
    return SuccessRates(rates, dict(thresholds), better, n, tuple(int(i) for i in np.flatnonzero(~finite)))


def best_per_start(values, better: str = "lower") -> np.ndarray:
    """One value per start: the value itself (1-D), or the best finite value of each row (2-D); NaN where none."""
    array = np.asarray(values, dtype=float)  # None becomes NaN
    if array.ndim == 1:
        return np.where(np.isfinite(array), array, np.nan)
    if array.ndim != 2:
        raise ValueError(f"values must be one per start or a row of decodes per start, not of shape {array.shape}")
    if array.shape[1] == 0:
        return np.full(array.shape[0], np.nan)
    masked = np.where(np.isfinite(array), array, np.inf if better == "lower" else -np.inf)
    best = masked.min(axis=1) if better == "lower" else masked.max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def _check_direction(better: str) -> None:
    if better not in DIRECTIONS:
        raise ValueError(f"better must be one of {DIRECTIONS}, not {better!r}")
