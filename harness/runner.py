"""``bench run``: sample a generator in resumable batches, evaluate under the protocol, write the run record."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness import provenance
from harness.cards import DatasetCard
from harness.costs import Invocation
from harness.evaluation import EvaluationRequest, cost_metrics, evaluate
from harness.evaluation_types import Sample
from harness.io import atomic_write, atomic_write_gzip, atomic_write_json, sha256_file, sha256_text
from harness.protocol import PROTOCOL_VERSION, TIERS, Tier, custom_tier
from harness.records import PER_SAMPLE_NAME, RECORD_NAME, SAMPLES_NAME, SCHEMA_VERSION, write_record
from harness.relaxer import PROTOCOL_RELAXER
from harness.sample_formats import unlocated
from harness.samples import make_sample, structures_to_extxyz


class RunError(RuntimeError):
    """A run cannot start or go on (inconsistent resume, a generator that breaks its contract)."""


@dataclass(frozen=True)
class RunRequest:
    plugin: str
    dataset: str
    tier: str = "quick"
    seed: int = 0
    checkpoint: Path | None = None
    batch_size: int = 250
    out: Path | None = None  # the run folder itself; default results/<dataset>/<plugin>/<run_id>
    results_dir: Path = Path("results")
    device: str | None = None
    evaluation: EvaluationRequest = field(default_factory=lambda: EvaluationRequest(dataset=""))
    n_samples: int | None = None  # a custom size (tier "custom", never ranked as a protocol run)
    n_relax: int | None = None  # with n_samples: the relaxed subset size


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch``: fixed by (run seed, batch number), so a resumed run draws the same samples."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


def _encode(sample: Sample) -> dict[str, Any]:
    if sample.structure is None:
        return {"index": sample.index, "error": sample.reason}
    return {"index": sample.index, "structure": sample.structure.as_dict()}


def _decode(entry: dict[str, Any]) -> Sample:
    from pymatgen.core import Structure

    if "structure" in entry:
        return make_sample(entry["index"], Structure.from_dict(entry["structure"]))
    return Sample(entry["index"], None, entry["error"])


def _generate_batch(generator, start: int, count: int, seed: int, batch_size: int) -> list[Sample]:
    """One batch from the generator; a generator that raises or returns the wrong thing yields invalid slots."""
    try:
        produced = generator.sample(count, seed, batch_size)
    except Exception as exc:
        reason = f"generator raised {type(exc).__name__}: {exc}"
        return [Sample(start + i, None, reason) for i in range(count)]
    if not isinstance(produced, (list, tuple)):
        reason = f"generator returned {type(produced).__name__}, not a list of Structures"
        return [Sample(start + i, None, reason) for i in range(count)]
    produced = list(produced)[:count]
    samples = [make_sample(start + i, s) for i, s in enumerate(produced)]
    samples += [Sample(start + i, None, "generator returned fewer samples than asked") for i in range(len(produced), count)]
    return samples


def generate(generator, n: int, seed: int, batch_size: int, work_dir: Path, progress: bool = True) -> tuple[list[Sample], float]:
    """Samples ``n`` structures in batches, each written atomically as it finishes; finished batches are reused."""
    from tqdm.auto import tqdm

    batch_dir = work_dir / "batches"
    batch_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    seconds = 0.0
    n_batches = (n + batch_size - 1) // batch_size
    generator.progress = progress  # a generator's own bars (SymmCD's denoising steps) follow the runner's
    with tqdm(total=n, desc=f"sampling {generator.name}", unit="sample", disable=not progress) as bar:
        for batch in range(n_batches):
            start, count = batch * batch_size, min(batch_size, n - batch * batch_size)
            path = batch_dir / f"{batch:05d}.json.gz"
            if path.exists():
                payload = json.loads(gzip.decompress(path.read_bytes()))
                batch_samples = [_decode(e) for e in payload["samples"]]
            else:
                t0 = time.perf_counter()
                batch_samples = _generate_batch(generator, start, count, batch_seed(seed, batch), batch_size)
                elapsed = time.perf_counter() - t0
                payload = {"batch": batch, "seed": batch_seed(seed, batch), "seconds": elapsed,
                           "samples": [_encode(s) for s in batch_samples]}
                blob = gzip.compress(json.dumps(payload).encode())
                atomic_write(path, lambda p, b=blob: p.write_bytes(b))
            seconds += payload["seconds"]
            samples.extend(batch_samples)
            bar.update(count)
    return samples, seconds


def run_id_for(tier: str, seed: int, checkpoint_sha: str | None, relaxer: str = PROTOCOL_RELAXER) -> str:
    return f"{tier}-seed{seed}-{(checkpoint_sha or 'noweights')[:10]}{relaxer_suffix(relaxer)}"


def _relaxer_flag(relaxer: str) -> str:
    return "" if relaxer == PROTOCOL_RELAXER else f" --relaxer {relaxer}"


def relaxer_suffix(relaxer: str) -> str:
    """What a run id gains when its stability subset is relaxed by a relaxer other than the protocol's."""
    return "" if relaxer == PROTOCOL_RELAXER else f"-{relaxer}"


def _run_params(request: RunRequest, n: int, checkpoint_sha: str | None) -> dict[str, Any]:
    return {"plugin": request.plugin, "dataset": request.dataset, "n_samples": n,
            "seed": request.seed, "batch_size": request.batch_size, "checkpoint_sha256": checkpoint_sha}


def run(request: RunRequest) -> Path:
    """Sample, evaluate and record one run; returns the path of ``record.json``. Rerunning resumes."""
    from harness.registry import get_registry

    registry = get_registry()
    card = registry.dataset(request.dataset)  # resolved once here; everything below is handed the card
    spec = registry.generator_spec(request.plugin)
    generator = registry.generator(request.plugin, card.name)
    tier = TIERS[request.tier] if request.n_samples is None else custom_tier(request.n_samples, request.n_relax)
    checkpoint = request.checkpoint or generator.default_checkpoint()
    if checkpoint is not None and not Path(checkpoint).exists():
        raise RunError(f"checkpoint {checkpoint} does not exist")
    checkpoint_sha = sha256_file(checkpoint) if checkpoint else None
    run_dir = request.out or (request.results_dir / request.dataset / request.plugin / run_id_for(tier.name, request.seed, checkpoint_sha, request.evaluation.relaxer))
    run_dir = Path(run_dir)
    if (run_dir / RECORD_NAME).exists():
        return run_dir / RECORD_NAME  # complete already: the same command gives the same record

    params = {**_run_params(request, tier.n_samples, checkpoint_sha), "tier": tier.name}
    if request.evaluation.relaxer != PROTOCOL_RELAXER:
        params["relaxer"] = request.evaluation.relaxer
    params_path = run_dir / "run.json"
    if params_path.exists():
        previous = json.loads(params_path.read_text())
        if previous != params:
            changed = sorted(k for k in params if previous.get(k) != params[k])
            raise RunError(f"{run_dir} holds a run with other settings ({', '.join(changed)}); use another --out")
    else:
        atomic_write_json(params_path, params)

    with Invocation(run_dir, f"bench run --plugin {request.plugin} --dataset {request.dataset} --tier {tier.name} "
                             f"--seed {request.seed}{_relaxer_flag(request.evaluation.relaxer)}") as invocation:
        return _run(request, card, generator, spec, tier, checkpoint, checkpoint_sha, run_dir, invocation)


def _run(request: RunRequest, card: DatasetCard, generator, spec, tier: Tier, checkpoint, checkpoint_sha,
         run_dir: Path, invocation: Invocation) -> Path:
    from harness.generator import resolve_device

    device = resolve_device(request.device)
    t0 = time.perf_counter()
    try:
        generator.load(Path(checkpoint) if checkpoint else None, device)
        samples, generation_s = generate(generator, tier.n_samples, request.seed, request.batch_size, run_dir,
                                         request.evaluation.progress)
    finally:
        invocation.add("generation", time.perf_counter() - t0)
    trained_on = generator.training_splits()
    evaluation_request = replace(request.evaluation, n_relax=tier.n_relax)
    if trained_on and evaluation_request.novelty_split in (None, "train"):
        # Novelty is judged against what the model was trained on, so a 'val'-trained model is not flattered.
        evaluation_request = replace(evaluation_request, novelty_split="+".join(trained_on))
    manifest = _checkpoint_manifest(checkpoint)
    return finish_run(
        samples, run_dir, evaluation_request, card, tier=tier.name,
        plugin={"name": spec.name, "version": spec.version, "distribution": spec.distribution or None,
                "distribution_version": spec.distribution_version or None},
        sample_seed=request.seed, generation_s=generation_s, device=device,
        checkpoint={"path": portable_path(checkpoint), "sha256": checkpoint_sha, "manifest": manifest}
        if checkpoint else None,
        sampling={**generator.sampling_settings(), "batch_size": request.batch_size, "device": device},
        model_trained_on="+".join(trained_on) if trained_on else None, invocation=invocation,
    )


def portable_path(path: str | Path) -> str:
    """A path as a record may hold it: relative to the installed packages' root when inside it (a shipped
    checkpoint: ``plugins/<name>/checkpoints/...``), else relative to the working folder, else the file name."""
    path = Path(path).resolve()
    for root in (Path(__file__).resolve().parents[1], Path.cwd().resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def _checkpoint_manifest(checkpoint: Path | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    for candidate in (path.with_suffix(".manifest.json"), path.parent / f"{path.stem}.manifest.json"):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return None


def finish_run(
    samples: Sequence[Sample], run_dir: Path, request: EvaluationRequest, card: DatasetCard, *, tier: str,
    plugin: dict[str, Any], sample_seed: int | None, generation_s: float | None, device: str | None = None,
    checkpoint: dict | None = None, sampling: dict | None = None, model_trained_on: str | None = None,
    external: dict | None = None, samples_sha256: str | None = None, run_id: str | None = None,
    invocation: Invocation | None = None,
) -> Path:
    """Evaluate ``samples`` and write samples, per-sample table and record into ``run_dir``; returns the record path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    extxyz = structures_to_extxyz(samples)
    atomic_write_gzip(run_dir / SAMPLES_NAME, extxyz.encode())
    t0 = time.perf_counter()
    try:
        result = evaluate(samples, request, card, work_dir=run_dir)
    finally:
        if invocation is not None:
            invocation.add("evaluation", time.perf_counter() - t0)
    metrics = {**result.metrics, **cost_metrics(generation_s, len(samples), result.metrics)}
    atomic_write(run_dir / PER_SAMPLE_NAME, lambda p: result.table.to_parquet(p))
    paper_split = model_trained_on in (None, "train")
    record = {
        "schema_version": SCHEMA_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "run_id": run_id or run_dir.name,
        "kind": "external" if external else "generated",
        "dataset": request.dataset,
        "plugin": plugin,
        "tier": tier,
        "n_samples": len(samples),
        "seeds": {"sample": sample_seed, "wdist_subset": request.eval_seed,
                  "relax_subset": request.eval_seed if request.stability else None},
        "splits": {"reference": result.reference.name, "novelty": result.novelty.name if result.novelty else None,
                   "model_trained_on": model_trained_on, "paper_training_split": paper_split},
        "data": {"reference_sha256": result.reference.sha256,
                 "novelty_sha256": result.novelty.sha256 if result.novelty else None,
                 "samples_sha256": samples_sha256 or sha256_text(extxyz)},
        "checkpoint": checkpoint,
        "sampling": sampling,
        "external": external,
        "provenance": {**provenance.collect(), "device": device},
        "timings": run_timings(generation_s, result, invocation),
        "metrics": metrics,
        "details": {**result.details, "n_constructed": int(sum(s.structure is not None for s in samples)),
                    "construction_failures": _reason_counts(samples)},
        "files": {"samples": SAMPLES_NAME, "per_sample": PER_SAMPLE_NAME},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return write_record(run_dir, record)


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


def run_timings(generation_s: float | None, result, invocation: Invocation | None) -> dict[str, Any]:
    """The record's timings: generation from the batches' own times, evaluation and wall/CPU time summed over
    every invocation of this run (resumes included), peak memory, and the final invocation's stages."""
    timings: dict[str, Any] = {"generation_s": generation_s, "evaluation_s": result.seconds}
    if invocation is not None:
        totals = invocation.totals()
        timings.update({
            "evaluation_s": totals["phases_s"].get("evaluation", result.seconds),
            "evaluation_s_final_invocation": result.seconds,
            "wall_s": totals["wall_s"],
            "cpu_s": totals["cpu_s"],
            "max_rss_gb": totals["max_rss_gb"],
            "invocations": totals["invocations"],
            "accounting": "summed over every invocation (invocations.jsonl); generation_s from the batches' times",
        })
    timings["stages_final_invocation_s"] = stage_seconds(result.details)
    return timings


def _reason_counts(samples: Sequence[Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        if sample.reason:
            key = unlocated(sample.reason)[:120]  # "s.csv row 3: X" and "s.csv row 9: X" count as one
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
