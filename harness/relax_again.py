"""A record's stability subset relaxed again by another relaxer: a sibling record of the very same samples.

The samples, their validity, coverage and distribution metrics are the source record's (copied, not recomputed);
stability and S.U.N. are computed anew with the other relaxer on the same seeded subset, the same hull and the same
novelty split. The sibling lies beside the source as ``<run_id>-<relaxer>``, so the leaderboards show it apart from
protocol rows and ``bench report`` compares the two sample by sample.
"""

from __future__ import annotations

import copy
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["RelaxAgainError", "relax_again"]


class RelaxAgainError(RuntimeError):
    """A record cannot be relaxed again; the message names the record and why."""


def _hull_choice(info: dict[str, Any], record_path: Path) -> str:
    from harness.stability.mp_reference import MP_HULL_SHA256

    hull = info.get("hull") or {}
    if hull.get("sha256") == MP_HULL_SHA256:
        return "mp"
    raise RelaxAgainError(f"{record_path}: scored on hull {hull.get('name')!r}, not the shipped Materials Project "
                          "hull; `bench rescore` it first")


def relax_again(run_dir: str | Path, relaxer: str, *, workers: int | None = None, data_dir: str | Path | None = None,
                progress: bool = True) -> Path:
    """Write (or, when complete, return) the sibling record of ``run_dir`` relaxed by ``relaxer``."""
    import pandas as pd

    from harness import stability
    from harness.costs import Invocation, cost_metrics, ledger_timings
    from harness.datasets import load_split
    from harness.io import atomic_write, atomic_write_gzip, sha256_file
    from harness.provenance import collect
    from harness.recording import relaxer_suffix
    from harness.records import PER_SAMPLE_NAME, RECORD_NAME, load_record, write_record
    from harness.registry import get_registry
    from harness.run_samples import record_samples
    from harness.samples import SampleFileError

    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_NAME
    record = load_record(record_path)
    info = (record.get("details") or {}).get("stability")
    if not info or not record["metrics"].get("n_relaxed"):
        raise RelaxAgainError(f"{record_path}: the record has no relaxed subset to relax again")
    source_relaxer = (info.get("relaxer") or {}).get("name", stability.PROTOCOL_RELAXER)
    get_registry().relaxer(relaxer)
    if relaxer == source_relaxer:
        raise RelaxAgainError(f"{record_path}: already relaxed by {relaxer}")
    if source_relaxer != stability.PROTOCOL_RELAXER:
        raise RelaxAgainError(f"{record_path}: relaxed by {source_relaxer}; relax the protocol record instead")
    hull = _hull_choice(info, record_path)
    out_dir = run_dir.with_name(run_dir.name + relaxer_suffix(relaxer))
    if (out_dir / RECORD_NAME).exists():
        return out_dir / RECORD_NAME

    try:
        samples = record_samples(run_dir, record, data_dir=data_dir)
    except SampleFileError as exc:
        raise RelaxAgainError(f"{record_path}: cannot read its samples: {exc}") from exc
    train = load_split(record["dataset"], record["splits"]["novelty"], data_dir)
    if train.sha256 != record["data"].get("novelty_sha256"):
        raise RelaxAgainError(f"{record_path}: novelty split {train.name} differs from the record's (sha256)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with Invocation(out_dir, f"bench relax {run_dir.name} --relaxer {relaxer}") as invocation:
        with invocation.phase("evaluation"):
            result = stability.evaluate(
                samples, dataset=record["dataset"], train=train, n_relax=info["n_relax_requested"],
                seed=info["subset_seed"], hull=hull, work_dir=out_dir / "stability", data_dir=data_dir,
                workers=workers, progress=progress, relaxer=relaxer,
            )
        totals = invocation.totals()

    table = pd.read_parquet(run_dir / (record["files"].get("per_sample") or PER_SAMPLE_NAME))
    table = table.drop(columns=[c for c in (*stability.TABLE_COLUMNS, "e_hull_dataset") if c in table.columns])
    table = table.join(result.table, how="left")
    atomic_write(out_dir / PER_SAMPLE_NAME, lambda p: table.to_parquet(p))
    sibling = copy.deepcopy(record)
    if record["files"].get("samples"):  # an external set's sibling names the same posted file instead
        shutil.copyfile(run_dir / record["files"]["samples"], out_dir / record["files"]["samples"])
    elif record["files"].get("retired_samples"):  # a retired record's sibling holds its samples again
        from harness.retire import read_retired

        name = record["files"]["retired_samples"]["file"]
        atomic_write_gzip(out_dir / name, read_retired(run_dir, record).encode())
        files = {k: v for k, v in record["files"].items() if k != "retired_samples"}
        sibling["files"] = {**files, "samples": name}
    metrics = {**record["metrics"], **result.metrics}
    metrics.update(cost_metrics((record.get("timings") or {}).get("generation_s"), record["n_samples"], metrics))
    sibling.update({
        "run_id": out_dir.name,
        "metrics": metrics,
        "provenance": {**collect(), "device": (record.get("provenance") or {}).get("device")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "timings": {
            "generation_s": (record.get("timings") or {}).get("generation_s"),
            "evaluation_s": totals["phases_s"].get("evaluation"),
            **ledger_timings(totals),
            "accounting": "stability only (bench relax), summed over its invocations; the other metrics and "
                          "generation_s are the source record's",
            "stages_final_invocation_s": {"relaxation": round(result.info["timings"].get("relax_s", 0.0), 2)},
        },
    })
    sibling["details"] = {**record["details"], "stability": {
        **result.info,
        "relaxed_again_from": {"run_id": record["run_id"], "record_sha256": sha256_file(record_path),
                               "relaxer": source_relaxer},
    }}
    return write_record(out_dir, sibling)
