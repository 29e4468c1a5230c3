"""A relaxation worker's peak memory and time with and without an atom budget per model call, side by side.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/relax_memory.py \\
        /work/shared/external-samples/diffcsp_mp20.csv.gz --n 64 --budgets none 128 --rounds 2 \\
        --out results/benchmarks/relax_memory_mp20_diffcsp.json

The same ``--n`` seeded structures of a sample file are relaxed by ``relax_batched`` (the protocol's settings, one
torch thread), each configuration in a fresh process so that its peak resident set is its own; the configurations
alternate for ``--rounds`` rounds so that a change of load falls on all of them. Written: each run's peak RSS (the
process, sampled every 0.1 s, and ``ru_maxrss``), its RSS before relaxing, its wall time and FIRE steps, and, against
the first configuration, the largest energy difference and how many structures ended with another step count or
convergence flag. Wall ratios are of the medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parents[1]


def worker(path: str, n: int, seed: int, budget: int | None, out: str) -> None:
    """One configuration, in this process: relax and write what it measured to ``out``."""
    import resource
    import threading
    import time

    import psutil
    import torch

    torch.set_num_threads(1)
    from harness.sample_formats import read_samples
    from harness.stability import select_subset
    from harness.stability.relax import DEFAULT_SETTINGS, load_relaxer, relax_batched

    samples = read_samples(path)
    structures = [samples[i].structure for i in select_subset(len(samples), n, seed) if samples[i].structure is not None]
    del samples
    _ = load_relaxer().model  # the weights, before the baseline is taken
    process = psutil.Process()
    before = process.memory_info().rss
    peak = [before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    results = relax_batched(structures, DEFAULT_SETTINGS, max_atoms=budget)
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    Path(out).write_text(json.dumps({
        "budget": budget,
        "n_structures": len(structures),
        "atoms": sum(len(s) for s in structures),
        "wall_s": round(wall, 2),
        "rss_before_relax_gb": round(before / 2**30, 3),
        "peak_rss_gb": round(max(peak[0], process.memory_info().rss) / 2**30, 3),
        "ru_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 3),
        "steps": [r.steps for r in results],
        "converged": [r.converged for r in results],
        "energies": [r.energy_per_atom for r in results],
        "errors": [r.error for r in results],
    }))


def compare(reference: dict, other: dict) -> dict:
    pairs = [(a, b) for a, b in zip(reference["energies"], other["energies"]) if a is not None and b is not None]
    return {
        "max_abs_energy_diff_ev_per_atom": max((abs(a - b) for a, b in pairs), default=None),
        "n_steps_differ": sum(a != b for a, b in zip(reference["steps"], other["steps"])),
        "n_converged_differ": sum(a != b for a, b in zip(reference["converged"], other["converged"])),
        "n_errors_differ": sum((a is None) != (b is None) for a, b in zip(reference["errors"], other["errors"])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", help="a sample file bench evaluate reads")
    parser.add_argument("--n", type=int, default=64, help="structures relaxed (a seeded subset, as the protocol's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", nargs="+", default=["none", "128"], help="atoms per model call; 'none': no bound")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--worker", nargs=2, metavar=("BUDGET", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        budget = None if args.worker[0] == "none" else int(args.worker[0])
        worker(args.samples, args.n, args.seed, budget, args.worker[1])
        return 0

    from common import load_average, result_header

    from harness.io import atomic_write_json

    load_before = load_average()
    runs: dict[str, list[dict]] = {b: [] for b in args.budgets}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for budget in args.budgets:
                out = Path(tmp) / f"{budget}-{round_}.json"
                command = [sys.executable, __file__, args.samples, "--n", str(args.n), "--seed", str(args.seed),
                           "--out", str(out), "--worker", budget, str(out)]
                subprocess.run(command, check=True)
                run = json.loads(out.read_text())
                runs[budget].append(run)
                print(f"round {round_} budget {budget}: {run['wall_s']} s, peak {run['peak_rss_gb']} GB", file=sys.stderr)
    first = args.budgets[0]
    reference = runs[first][0]
    summary = {}
    for budget, done in runs.items():
        wall = statistics.median(r["wall_s"] for r in done)
        summary[budget] = {
            "peak_rss_gb": max(r["peak_rss_gb"] for r in done),
            "rss_before_relax_gb": max(r["rss_before_relax_gb"] for r in done),
            "peak_above_start_gb": round(max(r["peak_rss_gb"] - r["rss_before_relax_gb"] for r in done), 3),
            "wall_s_median": wall,
            "wall_ratio_to_first": round(wall / statistics.median(r["wall_s"] for r in runs[first]), 3),
            "against_first": [compare(reference, r) for r in done],
            "against_itself": [compare(done[0], r) for r in done[1:]],
        }
    result = {
        **result_header("relax_memory", argv),
        "samples": Path(args.samples).name,
        "n_structures": reference["n_structures"],
        "atoms": reference["atoms"],
        "threads": 1,
        "rounds": args.rounds,
        "configurations": summary,
        "runs": {b: [{k: v for k, v in r.items() if k not in ("steps", "converged", "energies", "errors")} for r in done]
                 for b, done in runs.items()},
        "load_average": {"before": load_before, "after": load_average()},
    }
    atomic_write_json(args.out, result)
    print(json.dumps(summary, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
