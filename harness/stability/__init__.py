"""Stability, uniqueness and novelty (S.U.N.) of a seeded subset of samples; see docs/protocol.md."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cards import DatasetCard
from harness.evaluation_types import NOT_CONSTRUCTED_PREFIX, FamilyResult, Sample
from harness.io import atomic_write_json, sha256_text
from harness.protocol import METASTABLE_EHULL, STABLE_EHULL
from harness.relaxer import PROTOCOL_RELAXER
from harness.stability.relax import (
    MODEL_CALL_MAX_ATOMS,
    VOLUME_PER_ATOM_BOUNDS,
    RelaxResult,
    RelaxSettings,
    load_relaxer,
    relax_batched,
)

if TYPE_CHECKING:
    from harness.stability.hull import Hull

__all__ = ["HULL_SHA256_ENV", "evaluate", "relax_into", "score_row", "select_subset"]

# Pins the sha256 of a user-supplied MP hull file (the CLI's --hull-sha256 sets it).
HULL_SHA256_ENV = "XTALBENCH_HULL_SHA256"
TABLE_COLUMNS = (
    "relaxed_energy_per_atom",
    "e_hull",
    "stable",
    "metastable",
    "unique",
    "novel",
    "sun",
    "relax_converged",
    "relax_steps",
    "stability_error",
)


def train_split_info(train) -> dict[str, Any]:
    """What novelty was judged against, and how many of the dataset's training structures that includes."""
    from harness.protocol import TRAIN_SPLIT_SIZES

    sizes = train.part_sizes or [len(train)]
    known = sum(n for part, n in zip(train.name.split("+"), sizes) if part.startswith("train"))
    return {
        "dataset": train.dataset,
        "name": train.name,
        "size": len(train),
        "sha256": train.sha256,
        "training_structures_known": known,
        "training_split_size": TRAIN_SPLIT_SIZES.get(train.dataset),
    }


def select_subset(n_samples: int, n_relax: int, seed: int) -> list[int]:
    """Positions of the seeded subset, sorted; all positions when ``n_relax >= n_samples``."""
    import numpy as np

    if n_relax >= n_samples:
        return list(range(n_samples))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_samples, size=n_relax, replace=False))


def _result_path(relax_dir: Path, index: int) -> Path:
    return relax_dir / f"{index}.json"


def structure_sha256(structure) -> str:
    """A relaxation input's identity: its lattice, species and fractional coordinates (to 1e-6), hashed. A result file
    carries the hash of the structure it relaxed, so a resumed run never takes a result for another structure (a
    regenerated sample that came out different, or results carried over from elsewhere)."""
    import numpy as np

    payload = {"lattice": np.round(structure.lattice.matrix, 6).tolist(),
               "species": [site.species_string for site in structure],
               "frac": np.round(np.mod(structure.frac_coords, 1.0), 6).tolist()}
    return sha256_text(json.dumps(payload, sort_keys=True))


def _stored_result(relax_dir: Path, sample: Sample) -> RelaxResult | None:
    """``sample``'s result file when it holds the relaxation of this very structure (a file written before the input
    hash was kept is taken as it is), else None."""
    path = _result_path(relax_dir, sample.index)
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    recorded = stored.get("input_sha256")
    if recorded is not None and recorded != structure_sha256(sample.structure):
        return None
    return RelaxResult.from_json(stored)


def _relax_chunk(payload: tuple[list[tuple[int, dict]], dict, str]) -> int:
    """Worker entry: relax one chunk, writing each structure's result file as it finishes."""
    import torch
    from pymatgen.core import Structure

    torch.set_num_threads(1)
    items, settings_dict, relax_dir = payload
    settings = RelaxSettings(**settings_dict)
    structures = [Structure.from_dict(d) for _, d in items]
    relax_into(Path(relax_dir), [i for i, _ in items], structures, settings, progress=False)
    return len(items)


def relax_into(
    relax_dir: Path,
    indices: Sequence[int],
    structures: Sequence[Any],
    settings: RelaxSettings,
    *,
    progress: bool = True,
) -> None:
    """Relax ``structures`` (batched) and write ``<index>.json`` atomically as each one finishes."""

    inputs = {index: structure_sha256(structure) for index, structure in zip(indices, structures)}

    def save(index: int, result: RelaxResult) -> None:
        atomic_write_json(_result_path(relax_dir, index), {**result.to_json(), "input_sha256": inputs[index]})

    relax_batched(
        structures, settings, keys=list(indices), on_result=save, progress=progress, desc=f"relaxing ({settings.relaxer})"
    )


def relaxation_chunk_size(n_pending: int, workers: int, batch_size: int) -> int:
    """Structures per work unit when ``workers`` processes share ``n_pending`` relaxations: at least eight units per
    worker so the last ones balance, and never more than a batched call takes."""
    return max(1, min(batch_size, n_pending // (8 * workers)))


def _run_relaxations(
    pending: list[Sample], relax_dir: Path, settings: RelaxSettings, workers: int, progress: bool
) -> None:
    if not pending:
        return
    if workers <= 1 or len(pending) < 2 * settings.batch_size:
        relax_into(
            relax_dir, [s.index for s in pending], [s.structure for s in pending], settings, progress=progress
        )
        return
    from harness.parallel import ProcessExecutor

    # Many small chunks, handed to whichever worker is free, rather than one fixed share per worker: a share whose
    # structures run to the step cap kept one worker busy long after the other had finished. On the CPU a model
    # call's cost is linear in its atoms (a 600-atom cap relaxed 32 MP-20 samples no faster than the 128-atom one),
    # so the smaller batches cost nothing there.
    size = relaxation_chunk_size(len(pending), workers, settings.batch_size)
    payloads = [
        ([(s.index, s.structure.as_dict()) for s in pending[start:start + size]], settings.as_dict(), str(relax_dir))
        for start in range(0, len(pending), size)
    ]
    with ProcessExecutor(workers, progress=progress) as executor:
        executor.map(_relax_chunk, payloads, timeout_s=None, desc=f"relaxing ({settings.relaxer}, chunks)")
    # A chunk that died leaves its unfinished structures without a file; they are recorded as failures below.


def _load_hull(
    dataset: DatasetCard | str,
    hull: str | Path | None,
    hull_sha256: str | None,
    data_dir: Path | None,
    settings: RelaxSettings,
    progress: bool,
) -> Hull:
    """The hull to score against: ``mp`` (the protocol's default, shipped), ``dataset`` (the dataset's own CHGNet
    hull, its references relaxed on demand) or a file (xtalbench JSON, or an MP phase-diagram pickle)."""
    from harness.datasets import as_card
    from harness.protocol import DEFAULT_HULL
    from harness.stability.hull import ReferenceHull
    from harness.stability.mp_reference import FormationEnergyHull, load_hull, load_shipped_mp_hull
    from harness.stability.ondemand import relaxed_on_demand
    from harness.stability.reference import load_or_build_dataset_hull

    choice = str(hull) if hull is not None else DEFAULT_HULL
    if choice == "mp":
        return load_shipped_mp_hull()
    if choice == "dataset":
        if settings.relaxer != PROTOCOL_RELAXER:
            raise ValueError(f"--hull dataset holds CHGNet energies of the dataset's structures; relaxer "
                             f"{settings.relaxer!r} is scored against the Materials Project hull (--hull mp) or a "
                             "hull file, whose references are relaxed with it")
        dataset = as_card(dataset)
        loaded = load_or_build_dataset_hull(dataset, data_dir=data_dir, progress=progress)
    else:
        loaded = load_hull(Path(choice), hull_sha256 or os.environ.get(HULL_SHA256_ENV) or None)
    if isinstance(loaded, ReferenceHull) and not isinstance(loaded, FormationEnergyHull):
        # CHGNet references (an MP phase diagram or a formation-energy hull is DFT): relaxed like the samples.
        card = dataset if isinstance(dataset, DatasetCard) else None
        loaded = relaxed_on_demand(loaded, settings=settings, data_dir=data_dir, progress=progress, card=card)
    return loaded


def score_row(sample: Sample, result: RelaxResult | None, hull: Hull) -> dict[str, Any]:
    """One table row (before uniqueness/novelty) from a sample and its relaxation."""
    row: dict[str, Any] = {
        "relaxed_energy_per_atom": None,
        "e_hull": None,
        "relax_converged": False,
        "relax_steps": 0,
        "stability_error": None,
    }
    if not sample.constructed:
        row["stability_error"] = f"{NOT_CONSTRUCTED_PREFIX}{sample.reason}"
        return row
    if result is None:
        row["stability_error"] = "relaxation did not finish (worker died or was killed)"
        return row
    row.update(relax_converged=result.converged, relax_steps=result.steps)
    if result.error is not None:
        row["stability_error"] = f"relaxation failed: {result.error}"
        return row
    row["relaxed_energy_per_atom"] = result.energy_per_atom
    try:
        energy = hull.corrected_energy(result.structure, result.energy_per_atom)
    except Exception as exc:
        row["stability_error"] = f"energy correction failed: {type(exc).__name__}: {exc}"[:300]
        return row
    e_hull, error = hull.e_above_hull(result.structure.composition, energy)
    row["e_hull"] = e_hull
    if error is not None:
        row["stability_error"] = error
    elif not result.converged:
        row["stability_error"] = f"not converged within {result.steps} steps"
    return row


def evaluate(
    samples: Sequence[Sample],
    *,
    dataset: DatasetCard | str,
    train,
    n_relax: int,
    seed: int,
    hull: str | Path | None = None,
    hull_sha256: str | None = None,
    work_dir: Path | None = None,
    data_dir: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    relaxer: str = PROTOCOL_RELAXER,
) -> FamilyResult:
    """Relax a seeded subset (with CHGNet, the protocol's relaxer, unless told); E_hull, stability, uniqueness, novelty and S.U.N. (docs/protocol.md).

    ``dataset``: the card of the samples' dataset (a name is resolved only for the dataset's own hull).
    ``hull``: ``mp`` (default), ``dataset`` or a hull file; ``hull_sha256`` pins a user-supplied hull file (else ``$XTALBENCH_HULL_SHA256``). The references of the
    chemical systems the subset needs are relaxed (or read from their cache) in one batch before scoring.
    """
    import chgnet
    import pandas as pd

    from harness.stability.matching import novel_flags, train_formula_index, unique_flags

    timings: dict[str, float] = {}
    start = time.perf_counter()
    settings = RelaxSettings.for_relaxer(relaxer)
    potential = load_relaxer(settings.relaxer, settings.model)
    relaxer_info = potential.describe()  # fails early for a missing package
    hull = _load_hull(dataset, hull, hull_sha256, data_dir, settings, progress)
    timings["hull_load_s"] = time.perf_counter() - start

    subset = [samples[p] for p in select_subset(len(samples), n_relax, seed)]
    temp = tempfile.TemporaryDirectory(prefix="xtalbench-relax-") if work_dir is None else None
    root = Path(temp.name if temp else work_dir)
    relax_dir = root / f"relax-{sha256_text(json.dumps(settings.as_dict(), sort_keys=True))[:12]}"
    relax_dir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        stored = {s.index: _stored_result(relax_dir, s) for s in subset if s.constructed}  # each file read once
        results: dict[int, RelaxResult] = {i: r for i, r in stored.items() if r is not None}
        pending = [s for s in subset if s.constructed and s.index not in results]
        resumed = len(results)
        _run_relaxations(pending, relax_dir, settings, max(1, workers or 1), progress)
        timings["relax_s"] = time.perf_counter() - t0
        for s in pending:
            path = _result_path(relax_dir, s.index)
            if path.exists():
                results[s.index] = RelaxResult.from_json(json.loads(path.read_text()))
    finally:
        if temp is not None:
            temp.cleanup()

    t0 = time.perf_counter()
    hull.prepare(  # relaxed-on-demand references: all systems in one batch
        [s.structure.composition for s in subset if s.index in results and results[s.index].error is None],
        progress=progress,
    )
    timings["reference_relax_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = {s.index: score_row(s, results.get(s.index), hull) for s in subset}
    timings["hull_s"] = time.perf_counter() - t0
    # A sample is matched when its generated OR its relaxed structure matches: CHGNet may relax a DFT structure
    # (e.g. Perov-5's cubic cells) away from its reference geometry, which alone must not make it new.
    generated = [s.structure for s in subset]
    relaxed = [results[s.index].structure if s.index in results else None for s in subset]
    relaxed = [r if r is not None else g for r, g in zip(relaxed, generated)]
    t0 = time.perf_counter()
    unique = [a and b for a, b in zip(unique_flags(generated), unique_flags(relaxed))]
    timings["unique_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = train_formula_index(train)
    novel = [
        a and b
        for a, b in zip(
            novel_flags(generated, train, index=index, progress=progress),
            novel_flags(relaxed, train, index=index, progress=progress),
        )
    ]
    timings["novel_s"] = time.perf_counter() - t0

    for s, u, n in zip(subset, unique, novel):
        row = rows[s.index]
        ok = row["stability_error"] is None and row["e_hull"] is not None
        row["stable"] = bool(ok and row["e_hull"] <= STABLE_EHULL)
        row["metastable"] = bool(ok and row["e_hull"] <= METASTABLE_EHULL)
        row["unique"], row["novel"] = bool(u), bool(n)
        row["sun"] = row["stable"] and row["unique"] and row["novel"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(TABLE_COLUMNS))
    table.index.name = "index"

    n = len(subset)
    counts = {k: int(table[k].sum()) if n else 0 for k in ("stable", "metastable", "unique", "novel", "sun")}
    rate = (lambda c: c / n) if n else (lambda c: None)
    metrics = {
        "stable_rate": rate(counts["stable"]),
        "metastable_rate": rate(counts["metastable"]),
        "unique_rate": rate(counts["unique"]),
        "novel_rate": rate(counts["novel"]),
        "sun_rate": rate(counts["sun"]),
        "n_relaxed": n,
        "n_stable": counts["stable"],
        "n_sun": counts["sun"],
    }
    missing = sorted(
        {
            s.structure.composition.reduced_formula
            for s in subset
            if s.constructed and hull.missing_elements(s.structure.composition)
        }
    )
    timings["total_s"] = time.perf_counter() - start
    info = {
        "chgnet_version": chgnet.__version__,
        "model": settings.model,
        "relaxer": relaxer_info,
        "relax": {**settings.as_dict(), "volume_per_atom_bounds": list(VOLUME_PER_ATOM_BOUNDS),
                  "model_call_max_atoms": MODEL_CALL_MAX_ATOMS,
                  "model_call_flush_denormals": potential.flush_denormals},
        "hull": hull.describe(),
        "corrections": hull.describe().get("corrections"),
        "compositions_without_reference": missing,
        "train_split": train_split_info(train),
        "subset_seed": seed,
        "n_relax_requested": n_relax,
        "subset_size": n,
        "n_unconstructed_in_subset": sum(1 for s in subset if not s.constructed),
        "n_relax_failed": int(sum(1 for s in subset if s.index in results and results[s.index].error)),
        "n_not_converged": int(sum(1 for r in results.values() if r.error is None and not r.converged)),
        "n_resumed": resumed,
        "n_metastable": counts["metastable"],
        "n_unique": counts["unique"],
        "n_novel": counts["novel"],
        "stable_definition": f"converged and E_hull <= {STABLE_EHULL} eV/atom",
        "matcher": "pymatgen StructureMatcher() defaults, within reduced formula; a sample is matched when its "
        "generated or its relaxed structure matches (generated vs generated, relaxed vs relaxed for uniqueness)",
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    return FamilyResult(metrics, table, info)
