"""SymmCD's efficiency claim (paper table 4), measured here: the same denoiser trained on the asymmetric unit vs on
the full conventional cell.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/symmcd_efficiency.py --dataset mp20 --n 1024

A seeded subset of the split's crystals is held two ways: the asymmetric unit (one node per orbit, with its site
symmetry) and the full conventional cell the same crystal decodes to (one node per atom, no site symmetry: the
paper's "essentially DiffCSP" comparison). For each representation and batch size, a fresh process builds the
``cpu``-preset SymmCD denoiser (the full-cell one without its site-symmetry input and head), trains one epoch over
the subset on one thread and reports the wall time per epoch (and per crystal) and the peak resident memory of
the training. Writes ``results/benchmarks/symmcd_efficiency_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) so that the peak measured is that of the training alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def representations(dataset: str, split: str, n: int, seed: int):
    """(asymmetric-unit PackedCrystals, full-cell PackedCrystals, split sha256) for a seeded subset."""
    import numpy as np

    from harness.datasets import load_split
    from plugins._asymmetric import PackedCrystals, convert_split, decode, pack

    data = load_split(dataset, split)
    crystals = convert_split(data).valid()
    pick = np.random.default_rng(seed).choice(len(crystals), size=min(n, len(crystals)), replace=False)
    chosen = [crystals[i] for i in sorted(pick)]
    unit = pack(chosen)
    cells = [decode(c) for c in chosen]
    n_max = max(len(s) for s in cells)
    b = len(cells)
    z = np.zeros((b, n_max), dtype=np.int64)
    x = np.zeros((b, n_max, 3), dtype=np.float32)
    mask = np.zeros((b, n_max), dtype=bool)
    for i, s in enumerate(cells):
        z[i, :len(s)] = s.atomic_numbers
        x[i, :len(s)] = np.mod(s.frac_coords, 1.0)
        mask[i, :len(s)] = True
    full = PackedCrystals(unit.space_group, unit.k, z, x, np.zeros((b, n_max, 15), dtype=np.int64), mask)
    return unit, full, data.sha256


def one_epoch(args) -> dict:
    """Child process: train one epoch of one representation; print a JSON line."""
    from dataclasses import replace

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from plugins._asymmetric.batching import make_batch
    from plugins._asymmetric.training import size_bucketed_batches, subset
    from plugins.symmcd.config import get_preset
    from plugins.symmcd.model import SymmCDStats
    from plugins.symmcd.training import build_model

    unit, full, _ = representations(args.dataset, args.split, args.n, args.seed)
    packed = unit if args.child == "asymmetric" else full
    preset = get_preset(args.preset)
    if args.child == "full":
        preset = replace(preset, network=replace(preset.network, site_symmetry=False))
    stats = SymmCDStats.from_packed(unit)  # the lattice/size statistics are the same crystals' either way
    model = build_model(preset, stats, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = size_bucketed_batches(packed, args.batch_size, np.random.default_rng(0))
    generator = torch.Generator().manual_seed(0)
    rss_before = _status_mb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    for index in batches:
        losses = model.loss(make_batch(subset(packed, index), stats.data, "cpu"), generator)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    nodes = packed.mask.sum(1)
    print(json.dumps({
        "representation": args.child, "batch_size": args.batch_size, "crystals": int(len(nodes)),
        "batches": len(batches), "epoch_seconds": round(seconds, 2),
        "ms_per_crystal": round(1000 * seconds / len(nodes), 3),
        "nodes_per_crystal_mean": round(float(nodes.mean()), 2), "nodes_per_crystal_max": int(nodes.max()),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1), "rss_before_training_mb": round(rss_before, 1),
        "training_peak_mb": round(_status_mb("VmHWM") - rss_before, 1),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }))
    return {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mp20")
    parser.add_argument("--split", default="val+train_partial",
                        help="the training split(s) the shipped checkpoints use; their conversion is cached")
    parser.add_argument("--n", type=int, default=1024, help="crystals in the seeded subset (one epoch = all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--child", choices=("asymmetric", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.child:
        one_epoch(args)
        return 0

    from common import result_header

    from harness.io import atomic_write_json

    unit, full, sha = representations(args.dataset, args.split, args.n, args.seed)
    runs = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        for child in ("asymmetric", "full"):
            cmd = [sys.executable, __file__, "--dataset", args.dataset, "--split", args.split, "--n", str(args.n),
                   "--seed", str(args.seed), "--preset", args.preset, "--child", child, "--batch-size", str(batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                runs.append({"representation": child, "batch_size": batch_size,
                             "error": (done.stderr.strip().splitlines() or ["no output"])[-1]})
            else:
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    ratios = {}
    for batch_size in {r["batch_size"] for r in runs}:
        pair = {r["representation"]: r for r in runs if r["batch_size"] == batch_size and "error" not in r}
        if len(pair) == 2:
            ratios[str(batch_size)] = {
                "time_full_over_asymmetric": round(pair["full"]["epoch_seconds"] / pair["asymmetric"]["epoch_seconds"], 2),
                "training_memory_full_over_asymmetric": round(
                    pair["full"]["training_peak_mb"] / max(pair["asymmetric"]["training_peak_mb"], 1e-9), 2),
            }
    result = {
        **result_header("symmcd_efficiency", argv),
        "description": "SymmCD asymmetric unit vs full conventional cell (paper table 4)",
        "dataset": args.dataset, "split": args.split, "split_sha256": sha, "subset": args.n, "seed": args.seed,
        "preset": args.preset, "threads": 1,
        "nodes": {"asymmetric_mean": round(float(unit.mask.sum(1).mean()), 2),
                  "full_mean": round(float(full.mask.sum(1).mean()), 2),
                  "asymmetric_max": int(unit.mask.sum(1).max()), "full_max": int(full.mask.sum(1).max())},
        "runs": runs, "ratios": ratios,
        "paper_table_4": {"hardware": "NVIDIA MIG A100, 40 GB", "max_batch_asymmetric": 8192, "max_batch_full": 512,
                          "memory_batch_512_gb": {"asymmetric": 3.6, "full": 31},
                          "epoch_seconds": {"asymmetric": 27, "full": 52}},
        "peak_memory_note": "training_peak_mb: peak resident memory during the epoch above the resident memory before it (CPU RAM, /proc VmHWM after resetting it); the paper's figures are GPU memory",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    out = args.out or REPO / "results" / "benchmarks" / f"symmcd_efficiency_{args.dataset}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
