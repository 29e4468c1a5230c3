"""A generator's learning curve: validity, coverage and distances of seeded samples from checkpoints along training.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/learning_curve.py --plugin symmbfn --dataset mp20 \\
        --n 500 runs/train/symmbfn/mp20-recovered-snapshots/*.pt

Each checkpoint (a training ``last.pt`` or a ``model.pt``) is sampled with the same seed through ``bench run``'s
own path (``harness.runner.run``, custom tier, no stability) into ``--work-dir``, so a point is an ordinary,
resumable run record; the curve is written to ``results/training/<plugin>/learning_curve_<dataset>.json`` with the
epoch and training loss each checkpoint holds. It tells a model limited by its training from one limited by its
method: validity and coverage still rising with epochs say "train longer".
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]

KEYS = ("struct_valid", "comp_valid", "valid", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems",
        "sg_jsd", "sg_jsd_symmcd", "seconds_per_sample")


def checkpoint_info(path: Path) -> dict:
    """Epoch, losses and training splits a checkpoint holds (whatever of them it has)."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False)
    manifest = payload.get("manifest") or {}
    history = payload.get("history") or []
    epoch = payload.get("epoch", manifest.get("epochs"))
    info = {
        "epoch": epoch,
        "losses": history[-1] if history else manifest.get("final_losses", payload.get("last_losses")),
        "wall_seconds": payload.get("wall_seconds", manifest.get("wall_seconds")),
        "splits": manifest.get("splits"),
        "epochs_in_all": epoch,
    }
    source = manifest.get("init_from")
    if source:  # a fine-tune counts its epochs from 0: the curve orders it after its source's
        info["init_from"] = {k: source.get(k) for k in ("sha256", "epochs", "splits")}
        if epoch is not None and source.get("epochs") is not None:
            info["epochs_in_all"] = source["epochs"] + epoch
    return info


def training_elements(checkpoint: Path, dataset: str, data_dir) -> set[int] | None:
    """Atomic numbers of the split the checkpoint was trained on (from its manifest), or None when unnamed."""
    import torch

    from harness.datasets import load_split

    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    splits = (payload.get("manifest") or {}).get("splits")
    if not splits:
        return None
    return {site.specie.Z for s in load_split(dataset, splits, data_dir=data_dir).structures for site in s}


def failure_counts(run_dir: Path, record: dict, elements: set[int] | None) -> dict:
    """The failure modes issue 22 names, counted over the run's samples."""
    import pandas as pd

    from harness.run_samples import record_samples

    table = pd.read_parquet(run_dir / record["files"]["per_sample"])
    reason = table["validity_reason"].fillna("")
    same_point = reason.str.startswith("atoms 0 Å apart")
    counts = {
        "not_constructed": int((~table["constructed"].astype(bool)).sum()),
        "atoms_on_the_same_point": int(same_point.sum()),  # two orbits on one position
        "atoms_closer_than_0.5_not_same_point": int((reason.str.startswith("atoms") & ~same_point).sum()),
        "not_charge_balanced": int(reason.str.contains("not charge balanced").sum()),
    }
    if elements is not None:
        samples = record_samples(run_dir, record)
        counts["with_elements_outside_training"] = sum(
            1 for s in samples if s.structure is not None and any(site.specie.Z not in elements for site in s.structure)
        )
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "learning_curve")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--merge", action="store_true",
                        help="keep the points already in --out that this call does not measure again (a point is "
                             "its checkpoint's sha256 and the plugin version that sampled it)")
    args = parser.parse_args(argv)

    import torch
    from common import result_header

    from harness.evaluation import EvaluationRequest
    from harness.io import atomic_write_json, sha256_file
    from harness.records import load_record
    from harness.runner import RunRequest, run

    torch.set_num_threads(1)
    points = []
    for checkpoint in args.checkpoints:
        info = checkpoint_info(checkpoint)
        sha = sha256_file(checkpoint)
        out = args.work_dir / args.plugin / args.dataset / f"{checkpoint.stem}-{sha[:10]}"
        evaluation = EvaluationRequest(dataset=args.dataset, stability=False, workers=args.workers, progress=False,
                                       data_dir=args.data_dir)
        t0 = time.perf_counter()
        record = load_record(run(RunRequest(plugin=args.plugin, dataset=args.dataset, seed=args.seed,
                                            checkpoint=checkpoint, n_samples=args.n, n_relax=1, out=out,
                                            evaluation=evaluation)))
        elements = training_elements(checkpoint, args.dataset, args.data_dir)
        points.append({"checkpoint": checkpoint.name, "sha256": sha, **info,
                       "metrics": {k: record["metrics"].get(k) for k in KEYS},
                       "failures": failure_counts(out, record, elements),
                       "element_mask": (record.get("sampling") or {}).get("element_mask"),
                       "plugin_version": record["plugin"]["version"],
                       "n_samples": record["n_samples"], "seconds_this_call": round(time.perf_counter() - t0, 1)})
        print(checkpoint.name, info["epoch"], {k: points[-1]["metrics"][k] for k in ("struct_valid", "valid",
                                                                                      "cov_precision", "wdist_density")})
    out = args.out or REPO / "results" / "training" / args.plugin / f"learning_curve_{args.dataset}.json"
    if args.merge and out.exists():
        import json

        measured = {(p["sha256"], p.get("plugin_version")) for p in points}
        points += [p for p in json.loads(out.read_text())["points"]
                   if (p["sha256"], p.get("plugin_version")) not in measured]
    def order(point):  # points written before epochs_in_all was recorded are plain trainings
        epochs = point.get("epochs_in_all", point["epoch"])
        return epochs is None, epochs or 0, point.get("plugin_version") or ""

    points.sort(key=order)
    atomic_write_json(out, {
        **result_header("learning_curve", argv),
        "plugin": args.plugin, "dataset": args.dataset, "n_samples": args.n, "sample_seed": args.seed,
        "definition": "custom-tier bench run per checkpoint, no stability; metrics as the protocol computes them "
                      "(sg JSD is biased upward at this size: compare points with each other, not with full runs)",
        "points": points,
    })
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
