"""How much of a record's stable -> S.U.N. loss the partial MP-20 training set can see (issue #20's residual).

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/sun_novelty_residual.py \\
        results/mp20/external-diffcsp/custom-a37ae76e0023-seed0 results/mp20/external-diffcsppp/custom-aca3feb0d7d6-seed0

Novelty for MP-20 is judged against val + ``train_recovered``: 13,637 structures, of which only 4,590 of the 27,136
training structures. Papers judge it against the whole training set, so a stable sample that repeats a training
structure outside the recovered 4,590 counts as S.U.N. here and not in the paper. For each record this takes the
stable samples (the per-sample table), matches each generated structure against the recovered training rows and
the validation rows separately (the protocol's matcher: pymatgen ``StructureMatcher`` defaults, within a reduced
formula), and extrapolates the training-side matches to the full training set at the recovered fraction. The
extrapolation assumes the recovered rows are a random draw of the training split, which ``../shared/datasets/
SOURCES.md`` does not promise; the figure is an estimate with that assumption named, not a correction applied to
any record. Writes ``results/benchmarks/sun_novelty_residual_mp20.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks" / "sun_novelty_residual_mp20.json"
FULL_TRAIN = 27136  # MP-20's training split (CDVAE), of which train_recovered holds 4,590
UNIFORM_SOURCE = "cdvae_first1000"  # the first 1,000 rows of CDVAE's (shuffled) training file: a uniform draw


def _poisson_upper(k: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a Poisson mean after observing ``k`` events."""
    from scipy.stats import chi2

    return float(chi2.ppf(level, 2 * (k + 1)) / 2)


def _matched_sources(structure, split, sources: dict[str, str]) -> set[str]:
    """The ``source`` of every row of ``split`` that matches ``structure`` (the protocol's matcher)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()
    formula = structure.composition.reduced_formula
    return {sources[mid] for other, mid in zip(split.structures, split.material_ids, strict=True)
            if other.composition.reduced_formula == formula and matcher.fit(other, structure)}


def _matches(structures, split) -> list[bool]:
    from harness.stability.matching import novel_flags

    return [not flag for flag in novel_flags(structures, split)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import pandas as pd
    from common import result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json
    from harness.records import load_record
    from harness.run_samples import record_samples

    start = time.perf_counter()
    from harness.datasets import get_card
    from harness.paths import data_dir as resolve_data_dir

    recovered = load_split("mp20", "train_recovered", data_dir=args.data_dir)
    card_file = get_card("mp20").files["train_recovered"].filename
    sources = dict(pd.read_csv(resolve_data_dir(args.data_dir) / "mp20" / card_file,
                               usecols=["material_id", "source"]).itertuples(index=False, name=None))
    val = load_split("mp20", "val", data_dir=args.data_dir)
    rows = []
    for run_dir in args.records:
        record = load_record(run_dir / "record.json")
        table = pd.read_parquet(run_dir / record["files"]["per_sample"])
        samples = record_samples(run_dir, record, data_dir=args.data_dir)
        stable = table.index[table["stable"].astype("boolean").fillna(False).astype(bool)].tolist()
        structures = [samples[i].structure for i in stable]
        in_train = _matches(structures, recovered)
        in_val = _matches(structures, val)
        sun = table.loc[stable, "sun"].astype("boolean").fillna(False).astype(bool).tolist()
        unique = table.loc[stable, "unique"].astype("boolean").fillna(False).astype(bool).tolist()
        n_stable = len(stable)
        n_train = sum(in_train)
        estimate = n_train * FULL_TRAIN / len(recovered)
        by_source: dict[str, int] = {}
        for structure, matched in zip(structures, in_train, strict=True):
            if matched:
                for source in _matched_sources(structure, recovered, sources):
                    by_source[source] = by_source.get(source, 0) + 1
        uniform = by_source.get(UNIFORM_SOURCE, 0)
        n_uniform = sum(1 for v in sources.values() if v == UNIFORM_SOURCE)
        rows.append({
            "record": str(run_dir.resolve().relative_to(REPO)) if run_dir.resolve().is_relative_to(REPO) else str(run_dir),
            "run_id": record["run_id"],
            "n_samples_relaxed": int(table["e_hull"].notna().sum()),
            "n_stable": n_stable,
            "n_sun": int(sum(sun)),
            "stable_not_unique": int(sum(not u for u in unique)),
            "stable_generated_matches_train_recovered": n_train,
            "stable_generated_matches_val": int(sum(in_val)),
            "stable_matches_both": int(sum(a and b for a, b in zip(in_train, in_val, strict=True))),
            "stable_lost_to_novelty_here_fraction": round(1 - sum(sun) / n_stable, 4) if n_stable else None,
            "stable_matches_train_recovered_by_source": by_source,
            "estimated_train_matches_full_training_set": round(estimate, 1),
            "uniform_part": {
                "source": UNIFORM_SOURCE, "rows": n_uniform, "stable_matches": uniform,
                "estimated_full_train_matches": round(uniform * FULL_TRAIN / n_uniform, 1),
                "poisson_95_upper_full_train_matches": round(_poisson_upper(uniform) * FULL_TRAIN / n_uniform, 1),
            },
            "estimated_sun_rate_novelty_vs_full_train": round(
                (sum(sun) - (estimate - n_train)) / int(table["e_hull"].notna().sum()), 4
            ),
            "matched_formulas_train_recovered": sorted(
                {s.composition.reduced_formula for s, m in zip(structures, in_train, strict=True) if m}
            ),
        })
        print(json.dumps(rows[-1]))
    result = {
        **result_header("sun_novelty_residual", argv),
        "train_recovered_rows": len(recovered),
        "val_rows": len(val),
        "full_training_rows": FULL_TRAIN,
        "matcher": "pymatgen StructureMatcher defaults within a reduced formula, on the generated structures",
        "assumption": "estimated_*: recovered rows a uniform draw of the training split, which they are not (3,590 of "
                      "them come from MPTS-52's time-split val/test and Chemeleon's test files); uniform_part uses "
                      "only the 1,000 rows of CDVAE's own first 1,000, with a Poisson 95 % upper bound",
        "rows": rows,
        "seconds_total": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(args.out, result)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
