"""Builders of tiny run records that validate against the real schema (used by the leaderboard/report tests)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.protocol import METRIC_KEYS, PROTOCOL_VERSION
from harness.records import PER_SAMPLE_NAME, empty_metrics, validate, write_record


def make_record(plugin: str = "trainset", *, dataset: str = "mp20", run_id: str = "run-a", tier: str = "quick",
                n_samples: int | None = None, created: str = "2026-11-20T10:00:00+00:00",
                metrics: dict[str, Any] | None = None, kind: str = "generated",
                external: dict[str, Any] | None = None, trained_on: str = "train",
                paper_split: bool = True, novelty: str = "train", gpu: str | None = None) -> dict[str, Any]:
    """A minimal valid record; ``metrics`` overrides the all-null defaults."""
    values = empty_metrics()
    values.update(metrics or {})
    return {
        "schema_version": 1, "protocol_version": PROTOCOL_VERSION, "run_id": run_id, "kind": kind,
        "dataset": dataset, "plugin": {"name": plugin, "version": "1.0", "distribution": None},
        "tier": tier, "n_samples": n_samples or {"full": 10_000, "quick": 1_000}.get(tier, 10),
        "seeds": {"sample": 0, "wdist_subset": 0, "relax_subset": 0},
        "splits": {"reference": "test", "novelty": novelty, "model_trained_on": trained_on,
                   "paper_training_split": paper_split},
        "data": {"reference_sha256": "0" * 64},
        "external": external,
        "provenance": {"git": {"commit": None}, "packages": {}, "python": "3.11",
                       "hardware": {"cpu": "Test CPU", "cores": 2, "gpu": gpu}},
        "timings": {"generation_s": None, "evaluation_s": None},
        "metrics": values, "files": {"samples": None, "per_sample": PER_SAMPLE_NAME}, "created": created,
    }


def external_record(name: str, *, status: str = "raw", n_samples: int = 10_000, model: str | None = None,
                    caveats: tuple[str, ...] = (), **kwargs) -> dict[str, Any]:
    external = {"model": model or name.upper(), "paper": "A paper", "source": "owner/repo@abc/file",
                "status": status, "caveats": list(caveats)}
    return make_record(f"external-{name}", kind="external", tier="custom", n_samples=n_samples,
                       external=external, **kwargs)


def per_sample_table(n: int = 40, seed: int = 0, relaxed: int = 10) -> pd.DataFrame:
    """A per-sample table with the protocol's columns; the first ``relaxed`` rows carry stability columns."""
    rng = np.random.default_rng(seed)
    valid = rng.random(n) < 0.8
    table = pd.DataFrame({
        "formula": ["NaCl"] * n, "struct_valid": valid, "comp_valid": valid, "valid": valid,
        "density": rng.uniform(1.0, 8.0, n), "num_elems": rng.integers(1, 5, n),
        "spacegroup": rng.choice([1, 2, 14, 62, 225], n), "fingerprint_error": [None] * n,
        "invalid_reason": [None if v else "atoms closer than 0.5 Å" for v in valid],
    }, index=pd.RangeIndex(n, name="index"))
    if relaxed:
        ehull = np.full(n, np.nan)
        ehull[:relaxed] = rng.normal(0.1, 0.2, relaxed)
        table["e_hull"] = ehull
    return table


def write_run(results: Path, record: dict[str, Any], table: pd.DataFrame | None = None) -> Path:
    """Write ``record`` (and a per-sample table) to results/<dataset>/<plugin>/<run_id>/; returns record.json."""
    run_dir = results / record["dataset"] / record["plugin"]["name"] / record["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if table is not None:
        table.to_parquet(run_dir / PER_SAMPLE_NAME)
    return write_record(run_dir, copy.deepcopy(record))


def test_builders_validate_against_the_real_schema():
    validate(make_record())
    validate(make_record(tier="full", metrics={k: 0.5 for k in METRIC_KEYS if not k.startswith("n_")}))
    validate(external_record("diffcsp", status="filtered", caveats=("subset",)))
