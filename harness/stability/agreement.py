"""Where two relaxers agree on stability: the same samples, relaxed by each, scored on the same hull."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.protocol import STABLE_EHULL

COMPARED_COLUMNS = ("relaxed_energy_per_atom", "e_hull", "stable", "stability_error")


def relaxer_agreement(table: pd.DataFrame, other: pd.DataFrame, names: tuple[str, str] = ("a", "b")
                      ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary and per-sample table of two per-sample tables of the same samples (index: sample index).

    Compared are the samples both relaxed subsets hold; a sample counts as *scored* by a relaxer when it has an
    E_hull there (relaxation finished, references present). The agreement rate is over samples scored by both:
    the fraction where both call it stable or both call it not stable (``stable`` as the records define it:
    converged and E_hull ≤ 0).
    """
    a, b = names
    if a == b:
        raise ValueError(f"two tables of the same relaxer {a!r}: nothing to compare")
    in_a = _relaxed_rows(table)
    in_b = _relaxed_rows(other)
    common = in_a.index.intersection(in_b.index).sort_values()
    rows = pd.DataFrame(index=common)
    rows.index.name = "index"
    if "formula" in table:
        rows["formula"] = table.loc[common, "formula"]
    for name, source in ((a, in_a), (b, in_b)):
        for column in COMPARED_COLUMNS:
            rows[f"{column}_{name}"] = source.loc[common, column] if column in source else None
    scored = rows[f"e_hull_{a}"].notna() & rows[f"e_hull_{b}"].notna()
    stable_a = rows[f"stable_{a}"].eq(True)  # None (not relaxed there) counts as not stable
    stable_b = rows[f"stable_{b}"].eq(True)
    rows["scored_by_both"] = scored
    rows["agree"] = np.where(scored, stable_a == stable_b, None)
    both = rows[scored]
    ehull_a = both[f"e_hull_{a}"].astype(float)
    ehull_b = both[f"e_hull_{b}"].astype(float)
    sa, sb = stable_a[scored], stable_b[scored]
    n = int(scored.sum())
    summary: dict[str, Any] = {
        "relaxers": [a, b],
        "n_relaxed": {a: len(in_a), b: len(in_b)},
        "n_common": len(common),
        "n_scored_by_both": n,
        "n_failed": {a: int(rows[f"e_hull_{a}"].isna().sum()), b: int(rows[f"e_hull_{b}"].isna().sum())},
        "agreement_rate": float((sa == sb).mean()) if n else None,
        "stable_rate_scored_by_both": {a: float(sa.mean()) if n else None, b: float(sb.mean()) if n else None},
        "stable_by_both": int((sa & sb).sum()),
        f"stable_by_{a}_only": int((sa & ~sb).sum()),
        f"stable_by_{b}_only": int((~sa & sb).sum()),
        "stable_by_neither": int((~sa & ~sb).sum()),
        "e_hull_mae": float((ehull_b - ehull_a).abs().mean()) if n else None,
        "e_hull_median_difference": float((ehull_b - ehull_a).median()) if n else None,
        "e_hull_spearman": _spearman(ehull_a, ehull_b),
        "energy_mae": _mae(both, a, b),
        "stable_definition": f"converged and E_hull <= {STABLE_EHULL} eV/atom",
    }
    return summary, rows


def _relaxed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a per-sample table that belong to its relaxed subset (they carry stability columns)."""
    if "stable" not in table:
        raise ValueError("the per-sample table has no stability columns: the record was not relaxed")
    return table[table["stable"].notna()]


def _spearman(x: pd.Series, y: pd.Series) -> float | None:
    if len(x) < 3:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x.to_numpy(), y.to_numpy()).statistic)


def _mae(rows: pd.DataFrame, a: str, b: str) -> float | None:
    ea = rows[f"relaxed_energy_per_atom_{a}"].astype(float)
    eb = rows[f"relaxed_energy_per_atom_{b}"].astype(float)
    both = ea.notna() & eb.notna()
    return float((eb[both] - ea[both]).abs().mean()) if both.any() else None
