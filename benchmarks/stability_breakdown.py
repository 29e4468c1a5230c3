"""Where a record's stable samples come from: its relaxed subset split by atoms per cell and by whether the sample's
prototype (anonymised formula, e.g. ABC3) occurs in the training split.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/stability_breakdown.py \
        results/perov5/symat/full-seed0-67ee21885f results/perov5/symat/full-seed0-f988ba824d

Two records of one generator can differ in stability because the model got worse at what it learnt, or because it
now emits a different kind of crystal (Perov-5's training cells all have 5 atoms; a half-trained model also emits
small intermetallic cells, which lie near the Materials Project hull far more often than hypothetical perovskites).
This reads each record's ``per_sample.parquet`` and counts stable and metastable samples and the e_hull quantiles
per group, so the two are told apart. The totals must equal the record's, or the script stops. Writes
``results/benchmarks/stability_breakdown_<dataset>_<plugin>.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prototype(formula: str) -> str:
    """The anonymised reduced formula (``SrTiO3`` → ``ABC3``), or ``?`` where the formula does not parse."""
    from pymatgen.core import Composition

    try:
        return Composition(formula).anonymized_formula
    except (ValueError, KeyError):
        return "?"


def group_counts(frame, key: str) -> list[dict]:
    """Per value of ``key`` over the relaxed rows of ``frame``: n, stable, metastable, their rates and the e_hull
    median; sorted by the key's value."""
    rows = []
    for value, part in frame.groupby(key, sort=True):
        n = len(part)
        stable, metastable = int(part["stable"].sum()), int(part["metastable"].sum())
        rows.append({
            key: value.item() if hasattr(value, "item") else value,
            "n": n,
            "stable": stable,
            "metastable": metastable,
            "stable_rate": round(stable / n, 4),
            "metastable_rate": round(metastable / n, 4),
            "e_hull_median": round(float(part["e_hull"].median()), 4) if part["e_hull"].notna().any() else None,
        })
    return rows


def breakdown(per_sample, training_prototypes: set[str]) -> dict:
    """The relaxed subset of one record's per-sample table, grouped by atoms per cell and by training prototype."""
    relaxed = per_sample[per_sample["e_hull"].notna()].copy()
    for flag in ("stable", "metastable"):  # missing (a failed relaxation's row) counts as not stable
        relaxed[flag] = relaxed[flag].eq(True)
    relaxed["prototype"] = relaxed["formula"].map(prototype)
    relaxed["prototype_in_training"] = relaxed["prototype"].isin(training_prototypes)
    return {
        "n_relaxed_scored": len(relaxed),
        "n_stable": int(relaxed["stable"].sum()),
        "n_metastable": int(relaxed["metastable"].sum()),
        "stable_formulas": sorted(relaxed.loc[relaxed["stable"], "formula"]),
        "by_atoms_per_cell": group_counts(relaxed, "n_atoms"),
        "by_prototype_in_training": group_counts(relaxed, "prototype_in_training"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run folders of one dataset, with stability")
    parser.add_argument("--train-split", default=None,
                        help="split(s) whose prototypes count as seen, joined by '+' (default: each record's novelty "
                             "splits)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import pandas as pd
    from common import result_header

    from harness.datasets import load_split
    from harness.io import atomic_write_json

    records = []
    for run_dir in args.run_dirs:
        path = run_dir / "record.json"
        if not path.exists():
            raise SystemExit(f"{path}: no record")
        records.append((run_dir.resolve(), json.loads(path.read_text())))
    datasets = {record["dataset"] for _, record in records}
    if len(datasets) != 1:
        raise SystemExit(f"records of one dataset only; got {sorted(datasets)}")
    dataset = datasets.pop()

    prototypes_of: dict[str, set[str]] = {}
    results = []
    for run_dir, record in records:
        if record["metrics"].get("n_relaxed") is None:
            raise SystemExit(f"{run_dir}: the record has no stability (run with --stability)")
        splits = args.train_split or record["splits"]["novelty"]
        if splits not in prototypes_of:
            training = load_split(dataset, splits)
            prototypes_of[splits] = {s.composition.anonymized_formula for s in training.structures}
        per_sample = pd.read_parquet(run_dir / "per_sample.parquet")
        result = breakdown(per_sample, prototypes_of[splits])
        if result["n_stable"] != record["metrics"]["n_stable"]:
            raise SystemExit(f"{run_dir}: {result['n_stable']} stable rows in per_sample.parquet, the record says "
                             f"{record['metrics']['n_stable']}")
        results.append({
            "record": str(run_dir.relative_to(REPO)) if run_dir.is_relative_to(REPO) else str(run_dir),
            "run_id": record["run_id"],
            "plugin": record["plugin"]["name"],
            "checkpoint_sha256": (record.get("checkpoint") or {}).get("sha256"),
            "epochs": ((record.get("checkpoint") or {}).get("manifest") or {}).get("epochs"),
            "prototypes_from": splits,
            "n_training_prototypes": len(prototypes_of[splits]),
            **result,
        })
        print(f"{record['run_id']}: {result['n_stable']} stable, {result['n_metastable']} metastable of "
              f"{result['n_relaxed_scored']}")
        for row in result["by_atoms_per_cell"]:
            print(f"  {row['n_atoms']:>3} atoms: n {row['n']:>4}, stable {row['stable']:>3}, metastable "
                  f"{row['metastable']:>3}, median e_hull {row['e_hull_median']}")
        for row in result["by_prototype_in_training"]:
            print(f"  prototype in training {row['prototype_in_training']!s:>5}: n {row['n']:>4}, stable "
                  f"{row['stable']:>3}, metastable {row['metastable']:>3}, median e_hull {row['e_hull_median']}")
    plugins = sorted({r["plugin"] for r in results})
    out = {
        **result_header("stability_breakdown", argv),
        "dataset": dataset,
        "description": "each record's relaxed subset split by atoms per cell and by whether the sample's "
                       "anonymised formula occurs in the training split",
        "records": results,
    }
    path = args.out or REPO / "results" / "benchmarks" / f"stability_breakdown_{dataset}_{'-'.join(plugins)}.json"
    atomic_write_json(path, out)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
