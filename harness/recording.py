"""Recording a run: a sample set evaluated under the protocol and written as its folder (samples, per-sample table,
``record.json``), the same way for ``bench run`` (a generator's samples) and ``bench evaluate`` (a sample file)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import provenance
from harness.cards import DatasetCard
from harness.costs import Invocation, cost_metrics, ledger_timings
from harness.evaluation import Evaluation, EvaluationRequest, evaluate
from harness.evaluation_types import Sample
from harness.io import atomic_write, atomic_write_gzip, sha256_text
from harness.protocol import PROTOCOL_VERSION
from harness.records import PER_SAMPLE_NAME, SAMPLES_NAME, SCHEMA_VERSION, write_record
from harness.relaxer import PROTOCOL_RELAXER
from harness.sample_formats import unlocated
from harness.samples import structures_to_extxyz

__all__ = ["Origin", "build_record", "posted_samples", "reason_counts", "record_run", "relaxer_flag", "relaxer_suffix",
           "run_timings", "stage_seconds", "task_record"]


@dataclass(frozen=True)
class Origin:
    """Where a run's samples came from, as its record tells it: a generator's samples (``bench run``) or a sample
    file (``bench evaluate``, with ``external`` for a published set's manifest)."""

    plugin: dict[str, Any]  # name, version, distribution, distribution_version
    tier: str
    sample_seed: int | None = None
    generation_s: float | None = None  # the samples' generation wall time, when known (fills the cost metrics)
    device: str | None = None
    checkpoint: dict[str, Any] | None = None  # path (portable), sha256, manifest
    sampling: dict[str, Any] | None = None  # settings that shaped the samples, or the file they were read from
    model_trained_on: str | None = None
    external: dict[str, Any] | None = None
    samples_sha256: str | None = None  # of the file read; default: of the samples as written
    run_id: str | None = None  # default: the run folder's name

    @property
    def kind(self) -> str:
        return "external" if self.external else "generated"


def relaxer_suffix(relaxer: str) -> str:
    """What a run id gains when its stability subset is relaxed by a relaxer other than the protocol's."""
    return "" if relaxer == PROTOCOL_RELAXER else f"-{relaxer}"


def relaxer_flag(relaxer: str) -> str:
    """What the command a run's ledger records gains for a relaxer other than the protocol's."""
    return "" if relaxer == PROTOCOL_RELAXER else f" --relaxer {relaxer}"


def record_run(samples: Sequence[Sample], run_dir: Path, request: EvaluationRequest, card: DatasetCard,
               origin: Origin, invocation: Invocation | None = None) -> Path:
    """Write ``samples`` into ``run_dir`` (unless they are an external set's posted file, which the record names
    instead), evaluate them against ``card`` and write the per-sample table and the record; returns the record's
    path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    posted = posted_samples(origin)
    if posted is not None:
        files = {"samples": None, "per_sample": PER_SAMPLE_NAME, "posted_samples": posted}
        samples_sha256 = origin.samples_sha256
    else:
        extxyz = structures_to_extxyz(samples)
        atomic_write_gzip(run_dir / SAMPLES_NAME, extxyz.encode())
        files = {"samples": SAMPLES_NAME, "per_sample": PER_SAMPLE_NAME}
        samples_sha256 = origin.samples_sha256 or sha256_text(extxyz)
    with invocation.phase("evaluation") if invocation is not None else contextlib.nullcontext():
        result = evaluate(samples, request, card, work_dir=run_dir)
    atomic_write(run_dir / PER_SAMPLE_NAME, lambda p: result.table.to_parquet(p))
    record = build_record(samples, request, result, origin, run_id=origin.run_id or run_dir.name,
                          samples_sha256=samples_sha256, invocation=invocation, files=files)
    return write_record(run_dir, record)


def posted_samples(origin: Origin) -> dict[str, str] | None:
    """The posted file a record of an external set names instead of a samples copy (``files.posted_samples``): its
    package manifest's, when the samples read were that very file (same sha256); else None and the samples are
    written beside the record."""
    from harness.external import ManifestError, get_manifest

    name = (origin.external or {}).get("manifest")
    if not name:
        return None
    try:
        manifest = get_manifest(name)
    except ManifestError:  # a manifest from outside the package: a later reader could not find the file
        return None
    return manifest.posted_samples() if manifest.sha256 == origin.samples_sha256 else None


def _head(origin: Origin, run_id: str, dataset: str, n_samples: int) -> dict[str, Any]:
    """The keys every record opens with: versions, the run, what made the samples, their tier and number."""
    return {"schema_version": SCHEMA_VERSION, "protocol_version": PROTOCOL_VERSION, "run_id": run_id,
            "kind": origin.kind, "dataset": dataset, "plugin": origin.plugin, "tier": origin.tier,
            "n_samples": n_samples}


def build_record(samples: Sequence[Sample], request: EvaluationRequest, result: Evaluation, origin: Origin, *,
                 run_id: str, samples_sha256: str, invocation: Invocation | None = None,
                 files: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of ``samples`` from ``origin`` and their evaluation ``result`` (docs/protocol.md, Records);
    ``files`` defaults to the samples and per-sample table beside it."""
    metrics = {**result.metrics, **cost_metrics(origin.generation_s, len(samples), result.metrics)}
    novelty = result.novelty
    return {
        **_head(origin, run_id, request.dataset, len(samples)),
        "seeds": {"sample": origin.sample_seed, "wdist_subset": request.eval_seed,
                  "relax_subset": request.eval_seed if request.stability else None},
        "splits": {"reference": result.reference.name, "novelty": novelty.name if novelty is not None else None,
                   "model_trained_on": origin.model_trained_on,
                   "paper_training_split": origin.model_trained_on in (None, "train")},
        "data": {"reference_sha256": result.reference.sha256,
                 "novelty_sha256": novelty.sha256 if novelty is not None else None,
                 "samples_sha256": samples_sha256},
        "checkpoint": origin.checkpoint,
        "sampling": origin.sampling,
        "external": origin.external,
        "provenance": {**provenance.collect(), "device": origin.device},
        "timings": run_timings(origin.generation_s, result, invocation),
        "metrics": metrics,
        "details": {**result.details, "n_constructed": int(sum(s.structure is not None for s in samples)),
                    "construction_failures": reason_counts(samples)},
        "files": files or {"samples": SAMPLES_NAME, "per_sample": PER_SAMPLE_NAME},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def task_record(origin: Origin, *, run_id: str, dataset: str, n_samples: int, splits: dict[str, Any],
                data: dict[str, Any], invocation: Invocation, generation_note: str, metrics: dict[str, Any],
                details: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """The record of a protocol task other than unconditional generation (``bench run --task conditional`` or
    ``optimise``): the same head as :func:`build_record` (schema and protocol versions, plugin, tier, seeds, data and
    checkpoint hashes, provenance, timings over every invocation) around the task's own ``splits``, ``data``,
    ``metrics``, ``details`` and ``task`` block. ``generation_note`` says what the generation time covers."""
    totals = invocation.totals()
    seed = origin.sample_seed
    return {
        **_head(origin, run_id, dataset, n_samples),
        "seeds": {"sample": seed, "wdist_subset": seed, "relax_subset": seed},
        "splits": splits,
        "data": data,
        "checkpoint": origin.checkpoint,
        "sampling": origin.sampling,
        "external": origin.external,
        "provenance": {**provenance.collect(), "device": origin.device},
        "timings": {"generation_s": origin.generation_s, "evaluation_s": totals["phases_s"].get("evaluation"),
                    **ledger_timings(totals),
                    "accounting": f"summed over every invocation (invocations.jsonl); generation_s: {generation_note}"},
        "metrics": metrics,
        "details": details,
        "files": {"samples": SAMPLES_NAME, "per_sample": PER_SAMPLE_NAME},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
    }


def stage_seconds(details: dict[str, Any]) -> dict[str, float]:
    """Seconds per evaluation stage (fingerprints, relaxation, hull, matching) from the families' own timings."""
    walls = (details.get("metrics") or {}).get("wall_seconds") or {}
    stab = (details.get("stability") or {}).get("timings") or {}
    stages = {"fingerprints": walls.get("fingerprints")}
    if stab:
        stages.update({
            "relaxation": (stab.get("relax_s") or 0.0) + (stab.get("reference_relax_s") or 0.0),
            "hull": (stab.get("hull_load_s") or 0.0) + (stab.get("hull_s") or 0.0),
            "matching": (stab.get("unique_s") or 0.0) + (stab.get("novel_s") or 0.0),
        })
    return {k: round(float(v), 2) for k, v in stages.items() if v is not None}


def run_timings(generation_s: float | None, result: Evaluation, invocation: Invocation | None) -> dict[str, Any]:
    """The record's timings: generation from the batches' own times, evaluation and wall/CPU time summed over
    every invocation of this run (resumes included), peak memory, and the final invocation's stages."""
    timings: dict[str, Any] = {"generation_s": generation_s, "evaluation_s": result.seconds}
    if invocation is not None:
        totals = invocation.totals()
        timings.update({
            "evaluation_s": totals["phases_s"].get("evaluation", result.seconds),
            "evaluation_s_final_invocation": result.seconds,
            **ledger_timings(totals),
            "accounting": "summed over every invocation (invocations.jsonl); generation_s from the batches' times",
        })
    timings["stages_final_invocation_s"] = stage_seconds(result.details)
    return timings


def reason_counts(samples: Sequence[Sample]) -> dict[str, int]:
    """How many samples could not be built, by reason (a reason's position in its file left out), most common first."""
    counts: dict[str, int] = {}
    for sample in samples:
        if sample.reason:
            key = unlocated(sample.reason)[:120]  # "s.csv row 3: X" and "s.csv row 9: X" count as one
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
