"""Small helpers the benchmark scripts share (run as ``python benchmarks/<script>.py``, so this is on sys.path)."""

from __future__ import annotations


def quantiles(values, thresholds=(0.0, 0.025, 0.1)) -> dict:
    """n, mean, min/p5/p25/median/p75/p95/max and the fraction at or below each threshold of the finite values."""
    import numpy as np

    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not len(arr):
        return {"n": 0}
    q = np.quantile(arr, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return {
        "n": int(len(arr)),
        "mean": round(float(arr.mean()), 4),
        **{k: round(float(v), 4) for k, v in zip(("min", "p5", "p25", "median", "p75", "p95", "max"), q, strict=True)},
        **{f"frac_le_{t:g}": round(float((arr <= t).mean()), 4) for t in thresholds},
    }


def record_header(benchmark: str, script: str, argv, run_dir, record: dict, repo) -> dict:
    """The opening keys of a benchmark's output about one record: what ran, on which record and run."""
    import sys

    return {
        "benchmark": benchmark,
        "command": f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "record": str(run_dir.relative_to(repo)) if run_dir.is_relative_to(repo) else str(run_dir),
        "run_id": record["run_id"],
        "dataset": record["dataset"],
    }


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, rounded, or None where the platform has none."""
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
