"""Seconds per sample of the shipped generators, measured back to back on the same machine, thread count and batch.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/sampling_cost.py --dataset perov5 --n 250

Each plugin loads its shipped checkpoint for ``--dataset`` and generates ``--n`` samples (seed 0) in one batch of
``--batch-size`` on one torch thread; the wall time covers the model and the rebuilding of structures. Plugins run
in turn, so they see the same machine load as far as one can arrange; the load average is recorded beside each.
Writes ``results/benchmarks/sampling_cost_<dataset>.json``. (The SymmBFN paper reports SymmBFN ~70x cheaper per
sample than SymmCD on a GPU.)

``--preset paper`` times the papers' network sizes instead (SymmBFN 512 x 6; SymmCD 1024 x 8 with 128 distance
frequencies), which cannot be trained here: each plugin's shipped checkpoint gives its data statistics and priors
(space groups, sizes, elements), its network is replaced by a seeded random initialisation of the paper preset, and
the same sampler runs. The cost of a network evaluation does not depend on its weights, only on the sizes drawn;
what is built from random weights is not evaluated, only timed. Writes ``sampling_cost_<dataset>_paper.json``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="perov5")
    parser.add_argument("--plugins", default="symmbfn,symmcd")
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default=None, help="time this network preset, randomly initialised (e.g. paper)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch
    from common import result_header

    torch.set_num_threads(1)
    from harness.io import atomic_write_json, sha256_file
    from harness.registry import get_registry

    registry = get_registry()
    rows = []
    for name in args.plugins.split(","):
        generator = registry.generator(name, args.dataset)
        generator.load(None, "cpu")
        if args.preset:
            training = importlib.import_module(generator.training_module)
            generator.model = training.build_model(training.KIND.get_preset(args.preset), generator.model.stats, 0).eval()
        if hasattr(generator, "progress"):
            generator.progress = False
        load_before = os.getloadavg()
        start = time.perf_counter()
        samples = generator.sample(args.n, args.seed, args.batch_size)
        seconds = time.perf_counter() - start
        rows.append({
            "plugin": name, "checkpoint": str(Path(generator.checkpoint_path).relative_to(REPO)),
            "checkpoint_sha256": sha256_file(generator.checkpoint_path),
            "epochs": None if args.preset else generator.manifest.get("epochs"),
            "network": {"preset": args.preset or generator.manifest.get("preset"),
                        "weights": "random (seed 0)" if args.preset else "trained",
                        "parameters": sum(p.numel() for p in generator.model.parameters())},
            "sampling_settings": generator.sampling_settings(),
            "n": args.n, "built": sum(s is not None for s in samples),
            "mean_atoms_built": round(sum(len(s) for s in samples if s is not None)
                                      / max(sum(s is not None for s in samples), 1), 2),
            "seconds": round(seconds, 2),
            "seconds_per_sample": round(seconds / args.n, 4),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        })
        print(rows[-1], flush=True)
    by_name = {r["plugin"]: r for r in rows}
    ratio = None
    if {"symmbfn", "symmcd"} <= set(by_name):
        ratio = round(by_name["symmcd"]["seconds_per_sample"] / by_name["symmbfn"]["seconds_per_sample"], 1)
    result = {
        **result_header("sampling_cost", argv),
        "description": f"seconds per sample, {args.preset} preset with random weights and the shipped checkpoints' "
        "priors, back to back" if args.preset else "seconds per sample of shipped checkpoints, back to back",
        "preset": args.preset,
        "dataset": args.dataset, "seed": args.seed, "batch_size": args.batch_size, "torch_threads": 1,
        "rows": rows, "symmcd_over_symmbfn": ratio,
        "paper": "SymmBFN paper: 0.007 s/sample (SymmBFN) vs 0.514 (SymmCD) on an RTX A5000, ~70x",
    }
    suffix = f"_{args.preset}" if args.preset else ""
    out = args.out or REPO / "results" / "benchmarks" / f"sampling_cost_{args.dataset}{suffix}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
