"""``bench run --task conditional``: sample a generator at each target property value, relax every sample, and
record the stability and the achieved property per target (docs/protocol.md, "Tasks", conditional).

A run folder holds one sub-folder per target (``targets/<name>/batches``: the samples, resumable batch by batch)
and the relaxations under ``stability/<name>/`` (resumable structure by structure); ``per_sample.parquet`` (one row
per sample and target), ``samples.extxyz.gz`` (every target's samples in target order) and ``record.json`` are
written when every target is done. Every target is sampled with the run's seed, so the space groups and sizes drawn
are the same at each target and only the condition differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.costs import Invocation
from harness.evaluation_types import Sample
from harness.io import atomic_write, atomic_write_gzip, sha256_file, sha256_text
from harness.recording import Origin, task_record
from harness.records import (
    PER_SAMPLE_NAME,
    RECORD_NAME,
    SAMPLES_NAME,
    empty_metrics,
    write_record,
)
from harness.tasks import (
    CONDITION_PROPERTIES,
    CONDITIONAL,
    CONDITIONAL_SAMPLES_PER_TARGET,
    TASKS,
    PropertyTarget,
)

__all__ = ["ConditionalRequest", "achieved_summary", "run_conditional", "target_name"]


@dataclass(frozen=True)
class ConditionalRequest:
    plugin: str
    dataset: str
    targets: tuple[PropertyTarget, ...]
    seed: int = 0
    n_per_target: int = CONDITIONAL_SAMPLES_PER_TARGET
    checkpoint: Path | None = None
    batch_size: int = 250
    out: Path | None = None
    results_dir: Path = Path("results")
    device: str | None = None
    workers: int | None = None
    progress: bool = True
    data_dir: Path | None = None


def target_name(target: PropertyTarget) -> str:
    """A target's folder name, e.g. ``formation_energy_per_atom=-2.8``."""
    return f"{target.property}={target.value:g}"


class _AtTarget:
    """A generator seen through one target: ``sample`` draws conditioned samples (what ``runner.generate`` calls)."""

    def __init__(self, generator, target: PropertyTarget):
        self.generator, self.target = generator, target
        self.name = generator.name

    @property
    def progress(self) -> bool:
        return getattr(self.generator, "progress", True)

    @progress.setter
    def progress(self, value: bool) -> None:
        self.generator.progress = value

    def sample(self, n: int, seed: int, batch_size: int) -> list:
        return self.generator.sample_conditional(n, self.target, seed, batch_size)


def achieved_summary(values: Sequence[float], target: float) -> dict[str, Any]:
    """How the achieved property values of a set of samples sit against the target: count, mean, median, quartiles,
    mean absolute difference to the target and the fraction within 0.25 and 0.5 of it (non-finite values skipped)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return {"n": 0, "mean": None, "median": None, "q25": None, "q75": None, "mae_to_target": None,
                "within_0.25": None, "within_0.5": None}
    diff = np.abs(v - target)
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "q25": float(np.percentile(v, 25)), "q75": float(np.percentile(v, 75)),
            "mae_to_target": float(diff.mean()), "within_0.25": float((diff <= 0.25).mean()),
            "within_0.5": float((diff <= 0.5).mean())}


def _evaluate_target(samples: list[Sample], target: PropertyTarget, *, card, train, hull, seed: int, work_dir: Path,
                     workers: int | None, progress: bool, data_dir: Path | None):
    """Relax every sample of one target on the MP hull; (metrics, details, table)."""
    from harness import stability
    from harness.metrics.validity import validity_flags

    n = len(samples)
    result = stability.evaluate(samples, dataset=card, train=train, n_relax=n, seed=seed, work_dir=work_dir,
                                data_dir=data_dir, workers=workers, progress=progress)
    table = result.table.copy()
    formation = []
    for s in samples:
        energy = table.at[s.index, "relaxed_energy_per_atom"] if s.index in table.index else None
        value = None
        if s.structure is not None and energy is not None and np.isfinite(energy) \
                and not hull.missing_elements(s.structure.composition):
            value = hull.sample_energy(s.structure.composition, float(energy))
        formation.append(value)
    table["formation_energy_per_atom"] = [np.nan if v is None else v for v in formation]
    struct, comp = validity_flags([s.structure for s in samples])
    table["struct_valid"], table["comp_valid"] = struct, comp
    table["formula"] = [s.structure.composition.reduced_formula if s.structure is not None else None for s in samples]
    table["constructed"] = [s.structure is not None for s in samples]
    stable = table["stable"].astype(bool)
    meta = table["metastable"].astype(bool)
    metrics = {"stable_rate": int(stable.sum()) / n if n else None,
               "metastable_rate": int(meta.sum()) / n if n else None,
               "n_relaxed": n, "n_stable": int(stable.sum()), "n_metastable": int(meta.sum())}
    values = table["formation_energy_per_atom"].to_numpy()
    details = {
        "n_constructed": int(sum(s.structure is not None for s in samples)),
        "struct_valid_rate": float(np.mean(struct)) if n else None,
        "comp_valid_rate": float(np.mean(comp)) if n else None,
        "unique_rate": result.metrics.get("unique_rate"), "novel_rate": result.metrics.get("novel_rate"),
        "sun_rate": result.metrics.get("sun_rate"), "n_sun": result.metrics.get("n_sun"),
        "n_relax_failed": result.info.get("n_relax_failed"), "n_not_converged": result.info.get("n_not_converged"),
        "achieved": {"all_relaxed": achieved_summary(values, target.value),
                     "metastable": achieved_summary(values[meta.to_numpy()], target.value)},
        "timings_s": dict(result.info.get("timings") or {}),
    }
    return metrics, details, table, result.info


def run_conditional(request: ConditionalRequest) -> Path:
    """Sample, relax and record a conditional run; returns the path of ``record.json``. Rerunning resumes."""
    from harness.registry import get_registry
    from harness.runner import RunError, claim_run_dir, run_id_for

    registry = get_registry()
    card = registry.dataset(request.dataset)
    spec = registry.generator_spec(request.plugin)
    generator = registry.generator(request.plugin, card.name)
    task = TASKS[CONDITIONAL]
    prop = CONDITION_PROPERTIES[request.targets[0].property]
    if any(t.property != prop.name for t in request.targets):
        raise RunError("a conditional run targets one property")
    checkpoint = request.checkpoint or generator.default_task_checkpoint(CONDITIONAL)
    if checkpoint is None:
        raise RunError(f"{request.plugin} ships no conditional checkpoint for {card.name}; train one (bench train "
                       f"--condition {prop.name} ...) and pass --checkpoint")
    if not Path(checkpoint).exists():
        raise RunError(f"checkpoint {checkpoint} does not exist")
    checkpoint_sha = sha256_file(checkpoint)
    tier = "full" if request.n_per_target == CONDITIONAL_SAMPLES_PER_TARGET else "custom"
    run_id = "conditional-" + run_id_for(tier if tier == "full" else f"n{request.n_per_target}", request.seed,
                                         checkpoint_sha)
    run_dir = Path(request.out or request.results_dir / card.name / request.plugin / run_id)
    if (run_dir / RECORD_NAME).exists():
        return run_dir / RECORD_NAME
    params = {"plugin": request.plugin, "dataset": card.name, "task": CONDITIONAL,
              "targets": [[t.property, t.value] for t in request.targets], "n_per_target": request.n_per_target,
              "seed": request.seed, "batch_size": request.batch_size, "checkpoint_sha256": checkpoint_sha}
    claim_run_dir(run_dir, params)
    targets_text = " ".join(f"--target {t}" for t in request.targets)
    command = (f"bench run --plugin {request.plugin} --dataset {card.name} --task conditional {targets_text} "
               f"--n-samples {request.n_per_target} --seed {request.seed}")
    with Invocation(run_dir, command) as invocation:
        return _run(request, card, spec, generator, task, prop, checkpoint, checkpoint_sha, tier, run_id, run_dir,
                    invocation)


def _run(request, card, spec, generator, task, prop, checkpoint, checkpoint_sha, tier, run_id, run_dir, invocation):
    import pandas as pd

    from harness.datasets import load_split
    from harness.generator import resolve_device
    from harness.recording import reason_counts
    from harness.runner import checkpoint_block, generate
    from harness.samples import structures_to_extxyz
    from harness.stability.mp_reference import load_shipped_mp_hull

    device = resolve_device(request.device)
    with invocation.phase("generation"):
        generator.load(Path(checkpoint), device)
    trained_on = generator.training_splits()
    train = load_split(card, "+".join(trained_on) if trained_on else "train", request.data_dir)
    hull = load_shipped_mp_hull()
    blocks, tables, all_samples, generation_s, stability_info = [], [], [], 0.0, None
    for target in request.targets:
        name = target_name(target)
        with invocation.phase("generation"):
            samples, seconds = generate(_AtTarget(generator, target), request.n_per_target, request.seed,
                                        request.batch_size, run_dir / "targets" / name, request.progress)
        generation_s += seconds
        with invocation.phase("evaluation"):
            metrics, details, table, stability_info = _evaluate_target(
                samples, target, card=card, train=train, hull=hull, seed=request.seed,
                work_dir=run_dir / "stability" / name, workers=request.workers, progress=request.progress,
                data_dir=request.data_dir)
        details["construction_failures"] = reason_counts(samples)
        details["generation_s"] = round(seconds, 2)
        blocks.append({"value": target.value, "n_samples": len(samples), "seed": request.seed, "metrics": metrics,
                       "details": details})
        table.insert(0, "target", target.value)
        tables.append(table.reset_index())
        all_samples.extend(samples)

    per_sample = pd.concat(tables, ignore_index=True)
    atomic_write(run_dir / PER_SAMPLE_NAME, lambda p: per_sample.to_parquet(p, index=False))
    extxyz = structures_to_extxyz(all_samples)
    atomic_write_gzip(run_dir / SAMPLES_NAME, extxyz.encode())
    n_total = len(all_samples)
    metrics = empty_metrics()
    metrics["seconds_per_sample"] = generation_s / n_total if n_total else None
    origin = Origin(
        plugin=spec.record_block(), tier=tier, sample_seed=request.seed, generation_s=generation_s, device=device,
        checkpoint=checkpoint_block(checkpoint, checkpoint_sha),
        sampling={**generator.sampling_settings(), "batch_size": request.batch_size, "device": device,
                  "seed_per_target": "the run's seed at every target (same space groups and sizes)"})
    record = task_record(
        origin, run_id=run_id, dataset=card.name, n_samples=n_total,
        splits={"reference": "none (the conditional task compares with no reference split)",
                "novelty": train.name, "model_trained_on": "+".join(trained_on) if trained_on else None,
                "paper_training_split": False},
        data={"reference_sha256": "", "novelty_sha256": train.sha256, "samples_sha256": sha256_text(extxyz)},
        invocation=invocation, generation_note="from the batches' times", metrics=metrics,
        details={"stability": _stability_settings(stability_info),
                 "n_constructed": int(sum(s.structure is not None for s in all_samples))},
        task={**task.as_record(), "conditional": {
            "property": prop.name, "unit": prop.unit, "labels": prop.labels, "evaluation": prop.evaluation,
            "targets": blocks}})
    return write_record(run_dir, record)


def _stability_settings(info: dict[str, Any] | None) -> dict[str, Any]:
    """The relaxation and hull settings every target shared (the last target's stability details, less counts)."""
    if not info:
        return {}
    keep = ("chgnet_version", "model", "relaxer", "relax", "hull", "corrections", "train_split")
    return {k: info[k] for k in keep if k in info}
