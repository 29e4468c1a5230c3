"""benchmarks/stability_breakdown.py: the relaxed subset counted per atoms per cell and per training prototype."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stability_breakdown  # noqa: E402


def _per_sample():
    return pd.DataFrame({
        "formula": ["SrTiO3", "BaZrO3", "LaTl", "CaTlSb", "KNbO3", "SrTiO3"],
        "n_atoms": [5, 5, 2, 3, 5, 5],
        "e_hull": [0.30, 0.02, -0.01, 0.0, None, 0.5],  # one sample was not relaxed (not in the subset)
        "stable": [False, False, True, True, None, None],  # a failed relaxation's row leaves the flag missing
        "metastable": [False, True, True, True, None, False],
    })


def test_prototype_anonymises_the_reduced_formula():
    assert stability_breakdown.prototype("Sr2Ti2O6") == stability_breakdown.prototype("BaZrO3") == "ABC3"
    assert stability_breakdown.prototype("not a formula") == "?"


def test_counts_split_by_cell_size_and_by_prototype_seen_in_training():
    result = stability_breakdown.breakdown(_per_sample(), training_prototypes={"ABC3"})
    assert result["n_relaxed_scored"] == 5 and result["n_stable"] == 2 and result["n_metastable"] == 3
    assert result["stable_formulas"] == ["CaTlSb", "LaTl"]
    by_size = {row["n_atoms"]: row for row in result["by_atoms_per_cell"]}
    assert sorted(by_size) == [2, 3, 5]
    assert by_size[5]["n"] == 3 and by_size[5]["stable"] == 0 and by_size[5]["metastable"] == 1
    assert by_size[5]["e_hull_median"] == 0.3 and by_size[5]["metastable_rate"] == round(1 / 3, 4)
    seen = {row["prototype_in_training"]: row for row in result["by_prototype_in_training"]}
    assert seen[True]["n"] == 3 and seen[True]["stable"] == 0
    assert seen[False]["n"] == 2 and seen[False]["stable"] == 2 and seen[False]["stable_rate"] == 1.0
