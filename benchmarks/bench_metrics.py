"""Time the distribution metrics: CDVAE-style (featurize both sets, serial) vs our pool, cold and warm cache.

    XTALBENCH_DATA=/work/shared/datasets python benchmarks/bench_metrics.py --dataset perov5 --n 1000

Scores the first ``--n`` validation structures of ``--dataset`` against its test split and writes the wall
times, the metrics of each mode (they must agree), the per-structure fingerprint time, the hardware and the
package versions to ``results/benchmarks/metrics_<dataset>.json``. Cold runs use a fresh throwaway cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = ("cdvae", "cold", "warm")

from common import load_average, result_header  # noqa: E402  (benchmarks/ is the script's folder, first on sys.path)


@contextmanager
def cache_at(path: str):
    old = os.environ.get("XTALBENCH_CACHE")
    os.environ["XTALBENCH_CACHE"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XTALBENCH_CACHE", None)
        else:
            os.environ["XTALBENCH_CACHE"] = old


def run_mode(mode: str, samples, test, dataset: str, workers: int, cache: str, seed: int) -> dict:
    from harness.datasets import get_card
    from harness.metrics import coverage_cutoffs, evaluate
    from harness.parallel import ProcessExecutor, SerialExecutor

    executor = SerialExecutor(progress=False) if mode == "cdvae" else ProcessExecutor(workers, progress=False)
    cov_cutoffs = coverage_cutoffs(get_card(dataset))
    load_before = load_average()
    start = time.perf_counter()
    with cache_at(cache):
        try:
            result = evaluate(samples, test, cov_cutoffs=cov_cutoffs, seed=seed, executor=executor, progress=False)
        finally:
            executor.close()  # inside the timing: spawning and stopping workers is part of the cost
    wall = time.perf_counter() - start
    return {
        "mode": mode,
        "executor": type(executor).__name__,
        "workers": executor.workers,
        "wall_seconds": round(wall, 2),
        "stage_seconds": {k: round(v, 2) for k, v in result.info["wall_seconds"].items()},
        "reference_cache": result.info["reference_cache"]["cache"],
        "fingerprint_seconds_per_sample": result.info["fingerprint_seconds_per_sample"],
        "fingerprint_failures": result.info["fingerprint_failures"],
        "metrics": result.metrics,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def per_structure_time(dataset: str, n: int) -> dict:
    """Mean serial CrystalNN fingerprint time per structure over the first ``n`` test structures."""
    import numpy as np

    from harness.datasets import load_split
    from harness.metrics.fingerprints import structure_fingerprint_matminer as structure_fingerprint

    structures = load_split(dataset, "test").structures[:n]
    structure_fingerprint(structures[0])  # load the featurizer outside the timing
    seconds = []
    for structure in structures:
        start = time.perf_counter()
        structure_fingerprint(structure)
        seconds.append(time.perf_counter() - start)
    return {
        "dataset": dataset,
        "n": len(seconds),
        "mean_s": round(float(np.mean(seconds)), 4),
        "median_s": round(float(np.median(seconds)), 4),
        "max_s": round(float(np.max(seconds)), 4),
        "atoms_per_structure": round(float(np.mean([len(s) for s in structures])), 2),
        "load_average_after": load_average(),
    }


# Published validity of sample files under /work/shared/external-samples (docs/protocol.md's anchor table).
PUBLISHED_VALIDITY = {
    "diffcsp_mp20": {"struct_valid": 1.0, "comp_valid": 0.8325, "source": "DiffCSP paper (docs/protocol.md)"},
}


def validity_fidelity(path: Path) -> dict:
    """Structural/compositional validity of every row of a sample file, read the way ``bench evaluate`` reads it."""
    import numpy as np

    from harness.metrics.validity import comp_validity, struct_validity
    from harness.sample_formats import read_samples

    start = time.perf_counter()
    samples = read_samples(path)
    read_s = time.perf_counter() - start
    struct_flags, comp_flags = [], []
    for sample in samples:
        ok = sample.structure is not None
        struct_flags.append(ok and struct_validity(sample.structure))
        comp_flags.append(ok and comp_validity(sample.structure))
    struct_flags, comp_flags = np.array(struct_flags), np.array(comp_flags)
    name = path.name.split(".")[0]
    result = {
        "file": str(path),
        "n_samples": len(samples),
        "n_not_constructed": int(sum(s.structure is None for s in samples)),
        "struct_valid": float(struct_flags.mean()),
        "comp_valid": float(comp_flags.mean()),
        "valid": float((struct_flags & comp_flags).mean()),
        "read_seconds": round(read_s, 2),
        "validity_seconds": round(time.perf_counter() - start - read_s, 2),
    }
    if name in PUBLISHED_VALIDITY:
        published = PUBLISHED_VALIDITY[name]
        result["published"] = published
        result["abs_diff"] = {
            k: round(abs(result[k] - published[k]), 6) for k in ("struct_valid", "comp_valid")
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="perov5")
    parser.add_argument("--n", type=int, default=1000, help="validation structures scored as samples")
    parser.add_argument("--samples-split", default="val", help="split whose first --n structures are scored")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of cdvae,cold,warm")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-n", type=int, default=0, help="also time N single fingerprints per dataset")
    parser.add_argument("--timing-datasets", default="perov5,mp20")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--fidelity", type=Path, default=None, help="only: validity of every row of this sample file"
    )
    args = parser.parse_args(argv)

    if args.fidelity:
        from harness.io import atomic_write_json

        result = validity_fidelity(args.fidelity)
        result = {**result_header("bench_metrics", argv), "description": "validity fidelity", **result}
        out = (
            args.out or REPO / "results" / "benchmarks" / f"validity_{args.fidelity.name.split('.')[0]}.json"
        )
        atomic_write_json(out, result)
        print(
            {k: result[k] for k in ("n_samples", "struct_valid", "comp_valid", "valid")},
            result.get("abs_diff"),
        )
        print(f"wrote {out}")
        return 0
    from harness.datasets import load_split
    from harness.evaluation_types import Sample
    from harness.io import atomic_write_json

    workers = args.workers or os.cpu_count() or 1
    test = load_split(args.dataset, "test")
    pool = load_split(args.dataset, args.samples_split)
    samples = [Sample(i, s) for i, s in enumerate(pool.structures[: args.n])]
    modes = [m for m in args.modes.split(",") if m]
    report = {
        "dataset": args.dataset,
        "samples": f"first {len(samples)} structures of the {args.samples_split} split",
        "reference": f"{args.dataset} test split ({len(test)} structures, sha256 {test.sha256})",
        "note": "cdvae = featurize samples and test split every time, one process (the CDVAE scripts' approach); "
        "cold = process pool, empty cache; warm = process pool, test-split features from the cache. "
        "Wall times include starting and stopping the worker processes. The machine may be shared: "
        "see the load averages.",
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="xtalbench-bench-") as root:
        for mode in modes:
            cache = os.path.join(root, "cdvae" if mode == "cdvae" else "pool")
            if mode == "warm" and "cold" not in modes:
                run_mode("cold", samples[:1], test, args.dataset, workers, cache, args.seed)  # fill the cache
            print(f"[{mode}] scoring {len(samples)} samples ...", flush=True)
            run = run_mode(mode, samples, test, args.dataset, workers, cache, args.seed)
            print(f"[{mode}] {run['wall_seconds']} s", flush=True)
            report["runs"].append(run)
    walls = {run["mode"]: run["wall_seconds"] for run in report["runs"]}
    if "cold" in walls and "warm" in walls:
        report["cold_over_warm"] = round(walls["cold"] / walls["warm"], 2)
    if "cdvae" in walls and "warm" in walls:
        report["cdvae_over_warm"] = round(walls["cdvae"] / walls["warm"], 2)
    if "cdvae" in walls and "cold" in walls:
        report["cdvae_over_cold"] = round(walls["cdvae"] / walls["cold"], 2)
    metric_sets = [run["metrics"] for run in report["runs"]]
    report["modes_agree"] = all(m == metric_sets[0] for m in metric_sets)
    if args.timing_n:
        report["fingerprint_time_per_structure"] = [
            per_structure_time(name, args.timing_n) for name in args.timing_datasets.split(",") if name
        ]
    report = {**result_header("bench_metrics", argv), **report}  # after the runs: "created" is when they ended
    out = args.out or REPO / "results" / "benchmarks" / f"metrics_{args.dataset}.json"
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
