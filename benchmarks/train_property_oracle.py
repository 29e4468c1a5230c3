"""Train, measure and ship the supervised property oracle the optimise task scores with (issue 24).

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/train_property_oracle.py --dataset perov5 --epochs 80

Trains ``harness.property_oracle``'s graph network on the training split's ``--property`` column, keeps the epoch
with the lowest validation MAE, and measures it on the whole test split: MAE, RMSE, R², Spearman's rho and, at each
of the protocol's SR thresholds, how often oracle and DFT agree on "a success" (precision, recall). Writes the
weights and a manifest to ``harness/data/oracles/<dataset>_<property>.pt`` / ``.manifest.json`` (the manifest keeps
the oracle's values for the first 16 test rows, which tests/test_property_oracle.py checks the shipped weights
reproduce) and the curve and measures to ``results/benchmarks/property_oracle_<dataset>_<property>.json``.
One torch thread; the same seed gives the same weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "benchmarks"

from common import result_header  # noqa: E402  (benchmarks/ is the script's folder, first on sys.path)

CHECK_ROWS = 16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="perov5")
    parser.add_argument("--property", default=None, help="the column (default: the optimise task's for the dataset)")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--oracle-dir", type=Path, default=None, help="where the weights go (default: shipped place)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from harness.datasets import load_split, read_split_column
    from harness.io import atomic_write, atomic_write_json, sha256_file
    from harness.property_oracle import (
        ORACLE_DIR,
        GraphSettings,
        PropertyOracle,
        held_out_metrics,
        oracle_paths,
        train_oracle,
    )
    from harness.tasks import OPTIMISED_PROPERTIES

    torch.set_num_threads(1)
    prop = OPTIMISED_PROPERTIES[args.dataset]
    column = args.property or prop.column
    thresholds = prop.thresholds if column == prop.column else ()
    splits = {name: load_split(args.dataset, name, args.data_dir) for name in ("train", "val", "test")}
    values = {name: read_split_column(split, column) for name, split in splits.items()}
    for name, v in values.items():
        if not len(v) or not np.isfinite(v).all():
            print(f"{args.dataset} {name}: column {column!r} is missing or has empty cells", file=sys.stderr)
            return 2
    settings = GraphSettings()

    def show(row):
        print(f"epoch {row['epoch']:3d}  train mse (scaled) {row['train_mse_scaled']:.4f}  val MAE "
              f"{row['val_mae']:.4f}  {row['seconds']:.0f} s", flush=True)

    trained = train_oracle(splits["train"].structures, values["train"], splits["val"].structures, values["val"],
                           settings=settings, epochs=args.epochs, seed=args.seed, progress=show)
    name = f"{args.dataset}_{column}"
    weights, manifest_path = oracle_paths(name, args.oracle_dir or ORACLE_DIR)
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights, lambda p: torch.save(trained.state, p), mode=0o644)
    header = result_header("train_property_oracle", argv)
    manifest = {
        "schema_version": 1, "name": name, "dataset": args.dataset, "property": column,
        "weights_sha256": sha256_file(weights), "settings": trained.state["settings"],
        "trained_on": {"split": "train", "sha256": splits["train"].sha256, "n": len(values["train"])},
        "epoch_chosen_on": {"split": "val", "sha256": splits["val"].sha256, "n": len(values["val"])},
        "epochs": args.epochs, "best_epoch": trained.best_epoch, "seed": args.seed,
        "train_seconds": round(trained.seconds, 1), "command": header["command"], "git": header["git"],
        "versions": {"torch": header["versions"].get("torch")},
    }
    predicted, reasons = PropertyOracle(name, trained.state, manifest).predict(splits["test"].structures)
    failed = [i for i, r in enumerate(reasons) if r is not None]
    measured = held_out_metrics(values["test"], predicted, thresholds, prop.better)
    measured["split"], measured["sha256"], measured["n_failed"] = "test", splits["test"].sha256, len(failed)
    manifest["test"] = measured
    manifest["check"] = {"split": "test", "rows": list(range(CHECK_ROWS)),
                         "values": [float(v) for v in predicted[:CHECK_ROWS]]}
    atomic_write_json(manifest_path, manifest)
    out = args.out or OUT / f"property_oracle_{name}.json"
    atomic_write_json(out, {**header, "dataset": args.dataset, "property": column, "oracle": manifest,
                            "history": trained.history,
                            "test_label_percentiles": {str(p): float(np.percentile(values["test"], p))
                                                       for p in (5, 10, 15, 50)}})
    print(f"test: MAE {measured['mae']:.4f}, R² {measured['r2']:.3f}, Spearman {measured['spearman']:.3f}; "
          f"best epoch {trained.best_epoch}; wrote {weights}, {manifest_path.name}, {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
