"""``bench run --task optimise``: CDVAE's property optimisation (docs/protocol.md, "Tasks", optimise).

The first ``n`` structures of the test split are handed to the generator's ``optimise``; every decode it returns
is checked for validity and every valid one scored by the dataset's oracle (``harness.tasks.ORACLES``): on MP-20 its
formation energy from the protocol's CHGNet relaxation and the Materials Project references; on Perov-5 a graph
network trained on the dataset's own ``heat_ref`` (``harness.property_oracle``), applied as decoded. A start's value
is the best over its scored decodes; SR5/SR10/SR15 are taken at the protocol's pinned thresholds. The decodes are kept
in ``decodes.json.gz`` and the relaxations per structure, so an interrupted run resumes.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.costs import Invocation
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
    OPTIMISE,
    OPTIMISE_CHUNK,
    OPTIMISE_STARTS,
    OPTIMISED_PROPERTIES,
    ORACLES,
    SR_PERCENTS,
    TASKS,
    OptimisationRequest,
)

__all__ = ["OptimiseRunRequest", "oracle_for", "run_optimise"]
DECODES_NAME = "decodes.json.gz"
PARTIAL_DECODES_NAME = "decodes.partial.json.gz"


@dataclass(frozen=True)
class OptimiseRunRequest:
    plugin: str
    dataset: str
    seed: int = 0
    n_starts: int = OPTIMISE_STARTS
    checkpoint: Path | None = None
    out: Path | None = None
    results_dir: Path = Path("results")
    device: str | None = None
    workers: int | None = None
    progress: bool = True
    data_dir: Path | None = None


def oracle_for(dataset: str):
    """The oracle the protocol fixes for ``dataset``'s optimised property, or a RunError saying there is none."""
    from harness.runner import RunError

    prop = OPTIMISED_PROPERTIES[dataset]
    for oracle in ORACLES.values():
        if dataset in oracle.datasets and oracle.property == prop.column:
            return oracle
    raise RunError(f"no oracle is fixed for {prop.column!r} on {dataset} (docs/protocol.md, Tasks, optimise: an "
                   "oracle must give the quantity the thresholds are of, on the same scale); the optimise task runs "
                   f"where one is: {', '.join(sorted({d for o in ORACLES.values() for d in o.datasets}))}")


def _decodes_to_json(decodes: list[list]) -> dict[str, Any]:
    return {"decodes": [[None if s is None else s.as_dict() for s in row] for row in decodes]}


def _decodes_from_json(payload: dict[str, Any]) -> list[list]:
    from pymatgen.core import Structure

    return [[None if d is None else Structure.from_dict(d) for d in row] for row in payload["decodes"]]


def run_optimise(request: OptimiseRunRequest) -> Path:
    """Optimise, score and record; returns the path of ``record.json``. Rerunning resumes."""
    from harness.registry import get_registry
    from harness.runner import RunError, claim_run_dir, run_id_for

    registry = get_registry()
    card = registry.dataset(request.dataset)
    spec = registry.generator_spec(request.plugin)
    oracle = oracle_for(card.name)
    generator = registry.generator(request.plugin, card.name)
    checkpoint = request.checkpoint or generator.default_task_checkpoint(OPTIMISE)
    if checkpoint is None:
        raise RunError(f"{request.plugin} ships no optimisation checkpoint for {card.name}; train one (bench train "
                       "--condition COLUMN --init-from ...) and pass --checkpoint")
    if not Path(checkpoint).exists():
        raise RunError(f"checkpoint {checkpoint} does not exist")
    checkpoint_sha = sha256_file(checkpoint)
    tier = "full" if request.n_starts == OPTIMISE_STARTS else "custom"
    run_id = "optimise-" + run_id_for(tier if tier == "full" else f"n{request.n_starts}", request.seed, checkpoint_sha)
    run_dir = Path(request.out or request.results_dir / card.name / request.plugin / run_id)
    if (run_dir / RECORD_NAME).exists():
        return run_dir / RECORD_NAME
    params = {"plugin": request.plugin, "dataset": card.name, "task": OPTIMISE, "n_starts": request.n_starts,
              "seed": request.seed, "checkpoint_sha256": checkpoint_sha}
    claim_run_dir(run_dir, params)
    command = (f"bench run --plugin {request.plugin} --dataset {card.name} --task optimise --n-samples "
               f"{request.n_starts} --seed {request.seed}")
    with Invocation(run_dir, command) as invocation:
        return _run(request, card, spec, generator, oracle, checkpoint, checkpoint_sha, tier, run_id, run_dir,
                    invocation)


def _run(request, card, spec, generator, oracle, checkpoint, checkpoint_sha, tier, run_id, run_dir, invocation):
    import pandas as pd

    from harness import stability
    from harness.datasets import load_split
    from harness.generator import resolve_device
    from harness.metrics.optimisation import success_rates_at
    from harness.metrics.validity import validity_flags
    from harness.property_oracle import load_oracle
    from harness.runner import checkpoint_block
    from harness.samples import make_sample, structures_to_extxyz
    from harness.stability.mp_reference import load_shipped_mp_hull

    task = TASKS[OPTIMISE]
    prop = OPTIMISED_PROPERTIES[card.name]
    optimisation = OptimisationRequest(property=prop.column, better=prop.better)
    device = resolve_device(request.device)
    test = load_split(card, "test", request.data_dir)
    starts = test.structures[: request.n_starts]
    with invocation.phase("generation"):
        # loaded even when every chunk is decoded already: the checkpoint says what the model was trained on
        generator.load(Path(checkpoint), device)
        generator.progress = request.progress
        decodes, predicted, generation_s = _optimise_in_chunks(generator, starts, optimisation, request, run_dir)
    per_start = len(optimisation.decode_steps)

    samples = [make_sample(i * per_start + k, s) for i, row in enumerate(decodes) for k, s in enumerate(row)]
    struct, comp = validity_flags([s.structure for s in samples])
    valid = [s for s, a, b in zip(samples, struct, comp, strict=True) if a and b]
    trained_on = generator.training_splits()
    train = load_split(card, "+".join(trained_on) if trained_on else "train", request.data_dir)
    oracle_block = {"name": oracle.name, "kind": oracle.kind, "version": "1", "description": oracle.description}
    scored, supervised, domain = None, {}, None
    with invocation.phase("evaluation"):
        if oracle.kind == "supervised":
            network = load_oracle(oracle.name)
            oracle_block.update(version=network.manifest["weights_sha256"][:12],
                                weights_sha256=network.manifest["weights_sha256"],
                                test={k: network.manifest["test"][k] for k in ("n", "mae", "rmse", "r2", "spearman")})
            found, reasons = network.predict([s.structure for s in valid])
            supervised = {s.index: (v, r) for s, v, r in zip(valid, found, reasons, strict=True)}
            domain = oracle_domain(network.manifest, card, request.data_dir)
        elif valid:
            scored = stability.evaluate(valid, dataset=card, train=train, n_relax=len(valid), seed=request.seed,
                                        work_dir=run_dir / "stability", data_dir=request.data_dir,
                                        workers=request.workers, progress=request.progress)
    hull = load_shipped_mp_hull() if scored is not None else None
    values = np.full((len(starts), per_start), np.nan)
    table_rows = []
    for sample, is_struct, is_comp in zip(samples, struct, comp, strict=True):
        start, k = divmod(sample.index, per_start)
        row = {"index": sample.index, "start": start, "decode_step": optimisation.decode_steps[k],
               "constructed": sample.structure is not None, "struct_valid": is_struct, "comp_valid": is_comp,
               "formula": sample.structure.composition.reduced_formula if sample.structure is not None else None,
               "predicted": predicted[start][k] if predicted else None, "oracle_value": np.nan,
               "relaxed_energy_per_atom": np.nan, "e_hull": np.nan, "relax_converged": False, "oracle_error": None}
        if domain is not None:
            row["in_oracle_domain"] = row["formula"] is not None and \
                sample.structure.composition.anonymized_formula in domain
        if sample.index in supervised:
            value, reason = supervised[sample.index]
            row["oracle_error"] = reason
            if reason is None:
                row["oracle_value"] = values[start, k] = float(value)
        elif scored is not None and sample.index in scored.table.index:
            r = scored.table.loc[sample.index]
            row.update(relaxed_energy_per_atom=r["relaxed_energy_per_atom"], e_hull=r["e_hull"],
                       relax_converged=bool(r["relax_converged"]), oracle_error=r["stability_error"])
            if r["stability_error"] is None and r["relaxed_energy_per_atom"] is not None \
                    and np.isfinite(r["relaxed_energy_per_atom"]):
                value = hull.sample_energy(sample.structure.composition, float(r["relaxed_energy_per_atom"]))
                row["oracle_value"] = value
                values[start, k] = value
        elif not (is_struct and is_comp):
            row["oracle_error"] = "not valid (structural or compositional)"
        table_rows.append(row)
    rates = success_rates_at(values, dict(zip((f"sr{p}" for p in SR_PERCENTS), prop.thresholds, strict=True)),
                             prop.better)
    best = np.where(np.isfinite(values), values, np.inf if prop.better == "lower" else -np.inf)
    best = best.min(axis=1) if prop.better == "lower" else best.max(axis=1)
    start_values = [float(v) if np.isfinite(v) else None for v in best]
    table = pd.DataFrame(table_rows)
    atomic_write(run_dir / PER_SAMPLE_NAME, lambda p: table.to_parquet(p, index=False))
    extxyz = structures_to_extxyz(samples)
    atomic_write_gzip(run_dir / SAMPLES_NAME, extxyz.encode())
    metrics = empty_metrics()
    n_valid = len(valid)
    details = {
        "n_decodes": len(samples), "n_constructed": int(sum(s.structure is not None for s in samples)),
        "n_valid": n_valid, "n_scored": int(np.isfinite(values).sum()),
        "struct_valid_rate": float(np.mean(struct)) if samples else None,
        "comp_valid_rate": float(np.mean(comp)) if samples else None,
        "start_values": start_values,
        "start_value_median": float(np.nanmedian([v for v in start_values if v is not None]))
        if any(v is not None for v in start_values) else None,
        "starts_own_values": None,
        "predicted_first_last_median": ([float(np.median([r[0] for r in predicted])),
                                         float(np.median([r[-1] for r in predicted]))] if predicted else None),
        "stability": None if scored is None else {k: scored.info[k] for k in ("relax", "hull", "n_relax_failed",
                                                                             "n_not_converged", "timings")
                                                  if k in scored.info},
    }
    if domain is not None:
        details["in_oracle_domain"] = _in_domain_rates(table_rows, values, prop, per_start)
    labels = _start_labels(test, prop.column, request.n_starts)
    if labels is not None:
        details["starts_own_values"] = {"median": float(np.nanmedian(labels)), "source": f"test split {prop.column}"}
    device = resolve_device(request.device)
    origin = Origin(
        plugin=spec.record_block(), tier=tier, sample_seed=request.seed, generation_s=generation_s, device=device,
        checkpoint=checkpoint_block(checkpoint, checkpoint_sha),
        sampling={**generator.sampling_settings(), "device": device})
    record = task_record(
        origin, run_id=run_id, dataset=card.name, n_samples=len(samples),
        splits={"reference": "test (the starts)", "novelty": train.name,
                "model_trained_on": "+".join(trained_on) if trained_on else None, "paper_training_split": False},
        data={"reference_sha256": test.sha256, "novelty_sha256": train.sha256, "samples_sha256": sha256_text(extxyz)},
        invocation=invocation, generation_note="the optimisation and its decodes", metrics=metrics,
        details={"optimise": details},
        task={**task.as_record(), "optimise": {
            "property": prop.column, "better": prop.better,
            "oracle": oracle_block,
            "reference": {"source": "CDVAE's pinned training-split percentiles (harness.tasks.OPTIMISED_PROPERTIES)",
                          "percents": list(SR_PERCENTS), "thresholds": list(prop.thresholds)},
            "starts": {"split": "test", "n": len(starts)},
            "metrics": rates.metrics()}})
    return write_record(run_dir, record)


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed ``generator.optimise`` gets for chunk ``chunk`` of the starts: the run's own for the first (so a run of
    at most one chunk is what one call with the run's seed gives), one derived from (seed, chunk) for the others."""
    if chunk == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(chunk), 10]).generate_state(1)[0])


def _optimise_in_chunks(generator, starts, optimisation, request, run_dir: Path):
    """The decodes of every start, asked of the generator ``OPTIMISE_CHUNK`` starts at a time; each finished chunk is
    kept in ``decodes.partial.json.gz`` so an interrupted run resumes at the next, and the whole in ``DECODES_NAME``.
    Returns (decodes, predictor values or None, generation seconds over every session)."""
    from tqdm.auto import tqdm

    final, partial = run_dir / DECODES_NAME, run_dir / PARTIAL_DECODES_NAME
    if final.exists():
        payload = json.loads(gzip.decompress(final.read_bytes()))
        return _decodes_from_json(payload), payload["predicted"], payload["seconds"]
    decodes, predicted, seconds, finished = [], [], 0.0, []
    if partial.exists():
        payload = json.loads(gzip.decompress(partial.read_bytes()))
        decodes, predicted, seconds = _decodes_from_json(payload), payload["predicted"], payload["seconds"]
        finished = payload.get("finished_at", [])
    chunks = range(0, len(starts), OPTIMISE_CHUNK)
    per_start = len(optimisation.decode_steps)
    for first in tqdm(chunks, desc="optimising starts, by chunk", unit="chunk", initial=len(decodes) // OPTIMISE_CHUNK,
                      total=len(chunks), disable=not request.progress):
        if first < len(decodes):
            continue
        t0 = time.perf_counter()
        part = starts[first:first + OPTIMISE_CHUNK]
        rows = generator.optimise(part, optimisation, chunk_seed(request.seed, first // OPTIMISE_CHUNK))
        if len(rows) != len(part) or any(len(row) != per_start for row in rows):
            raise ValueError(f"{request.plugin}.optimise returned {len(rows)} rows for {len(part)} starts (each must "
                             f"hold {per_start} decodes)")
        values = getattr(generator, "predicted_at_decodes", None)
        decodes += rows
        predicted += values if values is not None else [None] * len(part)
        seconds += time.perf_counter() - t0
        finished.append(time.time())  # when each chunk was done, for bench progress's rate
        blob = gzip.compress(json.dumps({**_decodes_to_json(decodes), "predicted": predicted,
                                         "seconds": seconds, "finished_at": finished}).encode())
        atomic_write(partial, lambda p, blob=blob: p.write_bytes(blob))
    if all(row is None for row in predicted):
        predicted = None
    blob = gzip.compress(json.dumps({**_decodes_to_json(decodes), "predicted": predicted, "seconds": seconds}).encode())
    atomic_write(final, lambda p: p.write_bytes(blob))
    partial.unlink(missing_ok=True)
    return decodes, predicted, seconds


def _start_labels(test, column: str, n: int) -> np.ndarray | None:
    """The starts' own dataset values of the property (what the optimisation started from), when the file has them."""
    from harness.datasets import DatasetError, read_split_column

    try:
        return read_split_column(test, column)[:n]
    except DatasetError:
        return None


def oracle_domain(manifest: dict[str, Any], card, data_dir) -> frozenset[str]:
    """The composition types (pymatgen's anonymized reduced formulas, e.g. ABC3) of the crystals a supervised oracle
    was trained on: outside them its value is an extrapolation. Read from the split its manifest names, checked by
    sha256."""
    from harness.datasets import load_split
    from harness.runner import RunError

    trained = manifest["trained_on"]
    split = load_split(card, trained["split"], data_dir)
    if split.sha256 != trained["sha256"]:
        raise RunError(f"the oracle {manifest['name']} was trained on {card.name} {trained['split']} with sha256 "
                       f"{trained['sha256'][:12]}, but this data directory's file has {split.sha256[:12]}")
    return frozenset(s.composition.anonymized_formula for s in split.structures)


def _in_domain_rates(rows: list[dict[str, Any]], values: np.ndarray, prop, per_start: int) -> dict[str, Any]:
    """SR counting only decodes whose composition type the oracle was trained on (a diagnosis beside the protocol's
    SR, which counts every valid decode as CDVAE's does)."""
    from harness.metrics.optimisation import success_rates_at

    inside = np.zeros_like(values, dtype=bool)
    for row in rows:
        if row.get("in_oracle_domain"):
            inside[divmod(row["index"], per_start)] = True
    kept = np.where(inside, values, np.nan)
    rates = success_rates_at(kept, dict(zip((f"sr{p}" for p in SR_PERCENTS), prop.thresholds, strict=True)),
                             prop.better)
    scored = np.isfinite(values)
    best_k = np.where(scored, values, np.inf if prop.better == "lower" else -np.inf)
    best_k = best_k.argmin(axis=1) if prop.better == "lower" else best_k.argmax(axis=1)
    with_score = scored.any(axis=1)
    return {"rule": "the decode's anonymized reduced formula occurs among the oracle's training crystals",
            "n_scored": int(scored.sum()), "n_scored_in_domain": int((scored & inside).sum()),
            "best_decode_in_domain": int(inside[np.arange(len(values)), best_k][with_score].sum()),
            "n_starts_with_a_score": int(with_score.sum()),
            "in_domain_by_decode_step": [float(inside[:, k][scored[:, k]].mean()) if scored[:, k].any() else None
                                         for k in range(per_start)],
            "metrics": rates.metrics()}
