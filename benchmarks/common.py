"""Small helpers the benchmark scripts share (run as ``python benchmarks/<script>.py``, so this is on sys.path)."""

from __future__ import annotations

from collections.abc import Sequence


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


def result_header(benchmark: str, argv: Sequence[str] | None = None, *, command: str | None = None) -> dict:
    """The opening keys of every benchmark result (harness/schema/benchmark.schema.json): which benchmark, the
    command that ran it, when, from which commit, on which machine, with which packages.

    ``benchmark`` is the script's name; ``command`` defaults to ``python benchmarks/<benchmark>.py ARGS`` with
    ``argv`` (else this process's arguments), quoted so that a shell runs it again."""
    import shlex
    import sys
    from datetime import datetime, timezone

    from harness.provenance import git_state, hardware, package_versions
    from harness.schemas import BENCHMARK_SCHEMA_VERSION

    if command is None:
        args = [str(arg) for arg in (argv if argv is not None else sys.argv[1:])]
        command = shlex.join(["python", f"benchmarks/{benchmark}.py", *args])
    return {
        "schema_version": BENCHMARK_SCHEMA_VERSION,
        "benchmark": benchmark,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_state(),
        "hardware": hardware(),
        "versions": package_versions(),
    }


def record_header(benchmark: str, argv, run_dir, record: dict, repo) -> dict:
    """``result_header`` and the record a benchmark's output is about: its folder, run and dataset."""
    return {
        **result_header(benchmark, argv),
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


def seeded_rows(frame, n: int, seed: int):
    """``n`` rows of ``frame`` drawn without replacement by a seeded generator (in file order), their CIFs parsed into
    a ``structure`` column."""
    import numpy as np

    from harness.datasets import parse_cif

    rng = np.random.default_rng(seed)
    chosen = frame.iloc[sorted(rng.choice(len(frame), size=min(n, len(frame)), replace=False))].copy()
    chosen["structure"] = [parse_cif(text) for text in chosen["cif"]]
    return chosen


def relax_rows(chosen, work_dir, progress: bool):
    """Protocol relaxations of ``chosen`` rows (columns ``split``, ``row``, ``structure``), one result file per row
    named ``<split>-<row>.json`` (a rerun resumes); (results in row order, relaxed now, seconds)."""
    import json
    import time
    from pathlib import Path

    from harness.stability import relax_into
    from harness.stability.relax import DEFAULT_SETTINGS, RelaxResult

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    keys = [f"{s}-{r}" for s, r in zip(chosen["split"], chosen["row"])]
    pending = [i for i, k in enumerate(keys) if not (work_dir / f"{k}.json").exists()]
    t0 = time.perf_counter()
    relax_into(work_dir, [keys[i] for i in pending], [chosen["structure"].iloc[i] for i in pending],
               DEFAULT_SETTINGS, progress=progress)
    seconds = time.perf_counter() - t0
    results = [RelaxResult.from_json(json.loads((work_dir / f"{k}.json").read_text())) for k in keys]
    return results, len(pending), seconds
